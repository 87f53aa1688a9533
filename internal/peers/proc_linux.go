package peers

import "syscall"

// newGroupAttr makes the child the leader of a new process group, so that
// the program and everything it forks can be signalled together.
//
// Being in its own group, the peer does not get the terminal's SIGINT, so it
// gets SIGTERM when we die (a test binary killed by go test -timeout, say)
// instead of lingering on its port. Pdeathsig follows the OS thread that
// started the child, not the process; the Go runtime only ends threads that
// a goroutine locked and never unlocked, which this package does not do.
func newGroupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
