// Package serving holds what ferry's FastCGI and SCGI servers and clients
// share and no user should import: the accept loop, listening sockets
// handed over as file descriptors, and the wait for a request slot.
package serving

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// ErrClosed is returned by Accept when the server was closed.
var ErrClosed = errors.New("serving: server closed")

// Accept accepts connections on l until it fails or closed reports true,
// with at most maxConns served at once (more wait in the listen backlog).
// start registers an accepted connection with the server and returns the
// function that serves it, run in its own goroutine; it returns nil when
// the server was closed meanwhile (the connection is then closed).
// Temporary accept errors (too many open files) back off from 5 ms,
// doubling up to 1 s.
func Accept(l net.Listener, maxConns int, closed func() bool, start func(net.Conn) func()) error {
	slots := make(chan struct{}, maxConns)
	var delay time.Duration
	for {
		slots <- struct{}{}
		rwc, err := l.Accept()
		if err != nil {
			<-slots
			if closed() {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		delay = 0
		serve := start(rwc)
		if serve == nil {
			<-slots
			rwc.Close()
			return ErrClosed
		}
		go func() {
			defer func() { <-slots }()
			serve()
		}()
	}
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

// ErrQueueTimeout is returned by TakeSlot when no slot came free in time.
var ErrQueueTimeout = errors.New("serving: no slot free in time")

// TakeSlot waits up to wait for room in slots, a semaphore of requests in
// progress (send to take, receive to give back). It returns
// ErrQueueTimeout when wait passes first, or ctx's error.
func TakeSlot(ctx context.Context, slots chan struct{}, wait time.Duration) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrQueueTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}
