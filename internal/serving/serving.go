// Package serving holds what ferry's FastCGI and SCGI servers share and no
// user should import: the lifecycle of a server ([Server]: the accept
// loop, the connections being served, Shutdown and Close), the bound on a
// listener's connections that makes slow or silent peers give their place
// first ([Gate], which ferry's HTTP front uses too), and listening sockets
// handed over as file descriptors. Each protocol keeps only its framing.
package serving

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/rs/zerolog"
)

// Handler returns h, or http.DefaultServeMux if h is nil, as net/http
// servers do.
func Handler(h http.Handler) http.Handler {
	if h == nil {
		return http.DefaultServeMux
	}
	return h
}

// Logger returns l, or a logger that drops everything if l is nil.
func Logger(l *zerolog.Logger) *zerolog.Logger {
	if l == nil {
		nop := zerolog.Nop()
		return &nop
	}
	return l
}

// ListenerFromFD returns the listening socket at file descriptor fd, such
// as 0 from spawn-fcgi or mod_fcgid, or 3 and up from systemd socket
// activation.
func ListenerFromFD(fd int) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), "fd"+strconv.Itoa(fd))
	if f == nil {
		return nil, fmt.Errorf("no file descriptor %d", fd)
	}
	l, err := net.FileListener(f)
	f.Close() // FileListener made its own copy
	if err != nil {
		return nil, fmt.Errorf("file descriptor %d is not a listening socket: %w", fd, err)
	}
	return l, nil
}
