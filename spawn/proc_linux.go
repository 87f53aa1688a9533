package spawn

import "syscall"

// workerProcAttr returns how a worker starts: as cred (nil: ferry's own
// user), in its own process group, and killed (SIGKILL) if ferry dies
// first, however it ends (SIGKILL, a panic, SIGQUIT), so that no worker is
// left under PID 1. The parent-death
// signal follows the OS thread that started the worker, not the process
// (go.dev/issue/27505); Go ends a thread only when a goroutine locked to
// it returns without unlocking, which the pool never does, so in practice
// it fires when ferry ends.
func workerProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}
