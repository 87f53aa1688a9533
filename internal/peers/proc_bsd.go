//go:build unix && !linux

package peers

import "syscall"

// newGroupAttr makes the child the leader of a new process group, so that
// the program and everything it forks can be signalled together.
func newGroupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
