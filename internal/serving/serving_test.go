package serving

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flaky fails its first Accepts with a temporary error.
type flaky struct {
	net.Listener
	fails atomic.Int32
}

type tempErr struct{}

func (tempErr) Error() string   { return "too many open files" }
func (tempErr) Timeout() bool   { return true }
func (tempErr) Temporary() bool { return true }

func (f *flaky) Accept() (net.Conn, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, tempErr{}
	}
	return f.Listener.Accept()
}

func TestAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &flaky{Listener: ln}
	l.fails.Store(2)
	var closed atomic.Bool
	release := make(chan struct{})
	var running, peak atomic.Int32
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- Accept(l, 2, closed.Load, func(c net.Conn) func() {
			return func() {
				n := running.Add(1)
				mu.Lock()
				peak.Store(max(peak.Load(), n))
				mu.Unlock()
				<-release
				running.Add(-1)
				c.Close()
			}
		})
	}()
	var conns []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond)
	if got := running.Load(); got != 2 {
		t.Errorf("%d connections served at once; want the cap, 2", got)
	}
	close(release)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("a connection was not served")
		}
		c.Close()
	}
	if peak.Load() != 2 {
		t.Errorf("peak %d; want 2", peak.Load())
	}
	closed.Store(true)
	ln.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after close = %v; want ErrClosed", err)
	}
}

func TestAcceptRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go net.Dial("tcp", ln.Addr().String())
	err = Accept(ln, 1, func() bool { return false }, func(net.Conn) func() { return nil })
	if !errors.Is(err, ErrClosed) {
		t.Errorf("start refusing = %v; want ErrClosed", err)
	}
}

func TestListenerFromFD(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := syscall.Dup(int(f.Fd())) // ListenerFromFD closes the descriptor it is given
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ListenerFromFD(fd); err == nil {
		t.Error("a plain file was taken for a listening socket")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := ln.(*net.TCPListener).File()
	ln.Close()
	fd, err = syscall.Dup(int(lf.Fd()))
	lf.Close()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ListenerFromFD(fd)
	if err != nil {
		t.Fatalf("a listening socket: %v", err)
	}
	l.Close()
}
