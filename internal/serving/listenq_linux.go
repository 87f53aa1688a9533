package serving

import "golang.org/x/sys/unix"

// canPollListener says whether readable works here.
const canPollListener = true

// readable reports whether the socket fd has something to read: for a
// listening socket, a connection in its accept queue. It does not block.
func readable(fd uintptr) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(p, 0)
	return err == nil && n > 0 && p[0].Revents&unix.POLLIN != 0
}
