//go:build !linux

package bridge

import (
	"fmt"
	"syscall"
)

// lowestPriority lowers this process to nice 19, the lowest CPU priority
// the systems other than Linux offer it, and returns what it got, for the
// log.
func lowestPriority() string {
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, 19); err != nil {
		return fmt.Sprintf("normal priority (setpriority 19: %v)", err)
	}
	return "nice 19"
}
