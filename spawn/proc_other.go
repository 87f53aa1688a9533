//go:build !linux

package spawn

import "syscall"

// workerProcAttr returns how a worker starts: as cred (nil: ferry's own
// user), in its own process group.
// There is no parent-death signal here: a worker ferry could not stop is
// killed with its process group by its guard (guard.go).
func workerProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
