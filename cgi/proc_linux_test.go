package cgi

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

// TestPipeHoldersWriteEndOnly: a process with the read end of a script's
// stdout pipe (a child ferry forked for another worker, before its exec
// closes ferry's descriptors) is not a holder to stop; one with the write
// end (the script's background child) is. The first used to be listed, and
// sent SIGTERM, when a script left its stdout open at that moment.
func TestPipeHoldersWriteEndOnly(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := func(f *os.File) *exec.Cmd {
		cmd := exec.Command("sleep", "30")
		cmd.ExtraFiles = []*os.File{f}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	reader := start(r)
	writer := start(w)
	w.Close()
	got := pipeHolders(r)
	if !slices.Contains(got, writer.Process.Pid) {
		t.Errorf("pipeHolders = %v; want the write end's holder %d in it", got, writer.Process.Pid)
	}
	if slices.Contains(got, reader.Process.Pid) {
		t.Errorf("pipeHolders = %v; want the read end's holder %d left out", got, reader.Process.Pid)
	}
}
