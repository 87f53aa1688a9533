package ownertemp

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/ferrygw/ferry/internal/procfs"
)

// TestRemoveStale: of what a temporary directory holds, RemoveStale
// removes only the directories Mkdir named for a process no longer
// running, one that was reaped or one whose pid another process now has
// (another start time); the directories of this process and of another
// running one stay, and so does anything else.
func TestRemoveStale(t *testing.T) {
	self, ok := procfs.Stat(os.Getpid())
	if !ok {
		t.Skip("no /proc here")
	}
	dir := t.TempDir()
	mine, err := Mkdir(dir, "ferry-x-")
	if err != nil {
		t.Fatal(err)
	}
	if want := "ferry-x-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(self.Start, 10) + "-"; filepath.Dir(mine) != dir || len(filepath.Base(mine)) <= len(want) || filepath.Base(mine)[:len(want)] != want {
		t.Fatalf("Mkdir made %s; want %s/%s and a random part", mine, dir, want)
	}
	// A process that ran and was reaped: its pid is free.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skip(err)
	}
	parent, ok := procfs.Stat(os.Getppid())
	if !ok {
		t.Fatal("no /proc entry for the parent")
	}
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "worker.sock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pid := strconv.Itoa(os.Getpid())
	deadDir := mk("ferry-x-" + strconv.Itoa(gone.Process.Pid) + "-1-123")
	reusedDir := mk("ferry-x-" + pid + "-" + strconv.FormatUint(self.Start+1, 10) + "-456")
	parentDir := mk("ferry-x-" + strconv.Itoa(os.Getppid()) + "-" + strconv.FormatUint(parent.Start, 10) + "-789")
	others := []string{
		mk("ferry-y-" + strconv.Itoa(gone.Process.Pid) + "-1-123"), // another prefix
		mk("ferry-x-123456789"), // no owner in the name
		mk("ferry-x-" + strconv.Itoa(gone.Process.Pid) + "-1-12a"),
	}
	file := filepath.Join(dir, "ferry-x-"+strconv.Itoa(gone.Process.Pid)+"-1-1")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveStale(dir, "ferry-x-")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	want := []string{deadDir, reusedDir}
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("RemoveStale removed %q; want %q", removed, want)
	}
	for _, p := range append([]string{mine, parentDir, file}, others...) {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v; want it kept", p, err)
		}
	}
	for _, p := range want {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s: %v; want it removed", p, err)
		}
	}
}
