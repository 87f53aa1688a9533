package bridge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"

	"github.com/ferrygw/ferry/internal/serving"
)

// front is one listener and the address it was opened for.
type front struct {
	addr Address
	l    net.Listener
}

// String names the front in logs, with the port actually bound.
func (f front) String() string {
	switch f.addr.Network() {
	case "tcp":
		return f.addr.Scheme + "://" + f.l.Addr().String()
	}
	return f.addr.String()
}

// cleanup removes the socket file of a unix front.
func (f front) cleanup() {
	if f.addr.Network() == "unix" {
		os.Remove(f.addr.Path)
	}
}

// listen opens the listener for a front address. A unix socket replaces a
// stale socket file (never any other kind of file) and takes the mode given
// as ?mode=0660 (default 0666, as the process umask allows).
func listen(a Address) (net.Listener, error) {
	switch a.Network() {
	case "fd":
		n, _ := strconv.Atoi(a.Host)
		l, err := serving.ListenerFromFD(n)
		if err != nil {
			return nil, fmt.Errorf("bridge: listen %s: %w", a, err)
		}
		return l, nil
	case "unix":
		if fi, err := os.Lstat(a.Path); err == nil {
			if fi.Mode()&fs.ModeSocket == 0 {
				return nil, fmt.Errorf("bridge: listen %s: %s exists and is not a socket", a, a.Path)
			}
			if c, err := net.Dial("unix", a.Path); err == nil {
				c.Close()
				return nil, fmt.Errorf("bridge: listen %s: another process is serving on %s", a, a.Path)
			}
			os.Remove(a.Path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("bridge: listen %s: %w", a, err)
		}
		l, err := net.Listen("unix", a.Path)
		if err != nil {
			return nil, fmt.Errorf("bridge: listen %s: %w", a, err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false) // cleanup removes it once serving ends
		if m := a.Query.Get("mode"); m != "" {
			if err := chmodSocket(a); err != nil {
				l.Close()
				os.Remove(a.Path)
				return nil, fmt.Errorf("bridge: listen %s: mode %q: %v", a, m, err)
			}
		}
		return l, nil
	}
	var lc net.ListenConfig
	if a.Protocol() != "http" {
		// A web server's connections to its FastCGI or SCGI application
		// are short (SCGI: one per request) or watched by both ends'
		// idle timeouts: TCP keep-alive probes would only cost three
		// setsockopt calls per accepted connection.
		lc.KeepAlive = -1
	}
	l, err := lc.Listen(context.Background(), "tcp", a.Host)
	if err != nil {
		return nil, fmt.Errorf("bridge: listen %s: %w", a, err)
	}
	return l, nil
}
