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

// TestStatusKiB reads this process's memory fields, a field no process
// has, and a process that does not exist.
func TestStatusKiB(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc here")
	}
	rss, ok, err := StatusKiB(os.Getpid(), "VmRSS")
	if err != nil || !ok || rss <= 0 {
		t.Errorf("StatusKiB(self, VmRSS) = %d, %v, %v; want a positive size", rss, ok, err)
	}
	if hwm, ok, err := StatusKiB(os.Getpid(), "VmHWM"); err != nil || !ok || hwm < rss {
		t.Errorf("StatusKiB(self, VmHWM) = %d, %v, %v; want at least VmRSS, %d", hwm, ok, err, rss)
	}
	if v, ok, err := StatusKiB(os.Getpid(), "VmNoSuchField"); err != nil || ok || v != 0 {
		t.Errorf("StatusKiB(self, VmNoSuchField) = %d, %v, %v; want not found, no error", v, ok, err)
	}
	// Name is a size field: a line that is not one is malformed.
	if _, _, err := StatusKiB(os.Getpid(), "Name"); err == nil {
		t.Error("StatusKiB(self, Name): no error for a line that is not a size")
	}
	if _, _, err := StatusKiB(-1, "VmRSS"); err == nil {
		t.Error("StatusKiB(-1, VmRSS): no error for a process that does not exist")
	}
}
