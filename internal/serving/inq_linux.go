package serving

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// inq returns the bytes in the receive queue of the socket rc controls
// (SIOCINQ, which is FIONREAD: for TCP and Unix stream sockets alike, the
// bytes not yet read), and whether it could tell.
func inq(rc syscall.RawConn) (int, bool) {
	n, ioErr := 0, error(nil)
	if err := rc.Control(func(fd uintptr) { n, ioErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil || ioErr != nil {
		return 0, false
	}
	return n, true
}
