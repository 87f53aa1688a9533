//go:build !linux

package cgi

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// sysProcAttr returns how a script starts: in its own process group, with
// the handler's user and groups. Outside Linux there is no parent-death
// signal: scripts are stopped through their process group while ferry
// lives.
func (h *Handler) sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: h.cred}
}

// startScript starts cmd. Resource limits are set only on Linux.
func startScript(cmd *exec.Cmd, limits []rlimit) error {
	if len(limits) > 0 {
		return errors.New("cgi: per-script resource limits are supported on Linux only")
	}
	return cmd.Start()
}

// groupMembers would list process group pgid; without /proc it knows none.
func groupMembers(pgid int) []int { return nil }

// pipeHolders would list the processes holding pipe f; without /proc it
// knows none.
func pipeHolders(f *os.File) []int { return nil }
