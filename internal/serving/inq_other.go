//go:build !linux

package serving

import "syscall"

// inq reports that it cannot tell the bytes queued on a socket here: a
// Gate closes a waiting connection without looking at its queue.
func inq(syscall.RawConn) (int, bool) { return 0, false }
