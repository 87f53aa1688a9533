package procfs

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
)

func TestStatAndGroupMembers(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	self, ok := Stat(os.Getpid())
	if !ok || self.PPID != os.Getppid() || self.PGID != syscall.Getpgrp() || self.State == 'Z' {
		t.Errorf("Stat(self) = %+v, %v; want ppid %d, pgid %d, alive", self, ok, os.Getppid(), syscall.Getpgrp())
	}
	// A child in a group of its own is the group's one member.
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	pid := cmd.Process.Pid
	if got := GroupMembers(pid); !slices.Equal(got, []int{pid}) {
		t.Errorf("GroupMembers(%d) = %v; want [%d]", pid, got, pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, ok := Stat(pid); ok {
		t.Errorf("Stat(%d) found the process after it was reaped", pid)
	}
	if _, ok := Stat(-1); ok {
		t.Errorf("Stat(-1) found a process")
	}
}
