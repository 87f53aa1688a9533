package bridge

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerTookAll reports whether the peer of c has read everything sent on
// it: on a unix socket, what was written stays charged to the sender
// (SIOCOUTQ) until the receiver reads it, in an accepted connection or in
// one still waiting in the listener's backlog.
func peerTookAll(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := -1
	if err := rc.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); err == nil {
			n = v
		}
	}); err != nil {
		return false
	}
	return n == 0
}
