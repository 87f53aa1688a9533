package serving

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
)

const timeout = 10 * time.Second

// errTestClosed is the protocol's error for a closed server, given to Serve.
var errTestClosed = errors.New("test: server closed")

// lineConn is a Conn of a toy protocol: "begin\n" starts a request and
// "end\n" ends it, each answered "ok\n"; between the two the connection is
// busy.
type lineConn struct {
	slot   *Slot // told when the connection serves a request
	rwc    net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	served chan struct{} // closed when Serve returns
	busy   atomic.Bool
	// finishing, if not nil, holds Serve after the connection has ended,
	// as handlers still running would.
	finishing *sync.WaitGroup
}

func newLineConn(rwc net.Conn, base context.Context) *lineConn {
	ctx, cancel := context.WithCancel(base)
	return &lineConn{rwc: rwc, ctx: ctx, cancel: cancel, served: make(chan struct{})}
}

func (c *lineConn) Serve() {
	defer close(c.served)
	defer c.cancel()
	defer c.rwc.Close()
	br := bufio.NewReader(c.rwc)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if c.finishing != nil {
				c.finishing.Wait()
			}
			return
		}
		// Busy before the answer to "begin"; idle once the answer to "end"
		// is out, so that Shutdown does not cut it off.
		begin := line == "begin\n"
		if begin {
			c.busy.Store(true)
			c.slot.SetWaiting(false)
		}
		if _, err := io.WriteString(c.rwc, "ok\n"); err != nil {
			return
		}
		if !begin {
			c.busy.Store(false)
			c.slot.SetWaiting(true)
		}
	}
}

func (c *lineConn) CloseIfIdle() {
	if !c.busy.Load() {
		c.rwc.Close()
	}
}

func (c *lineConn) Close() {
	c.rwc.Close()
	c.cancel()
}

// lineServer serves the toy protocol on a loopback listener and records
// the conns it makes.
type lineServer struct {
	t     *testing.T
	s     Server
	l     net.Listener
	conns chan *lineConn
	done  chan error // Serve's result
	// finishing holds the conns' Serve once their connection has ended.
	finishing sync.WaitGroup
}

func startLineServer(t *testing.T, maxConns int, base func(net.Listener) context.Context) *lineServer {
	t.Helper()
	return startLineServerOn(t, listen(t), Config{MaxConns: maxConns, BaseContext: base})
}

// startLineServerOn serves the toy protocol on l with cfg (its NewConn and
// Closed filled in).
func startLineServerOn(t *testing.T, l net.Listener, cfg Config) *lineServer {
	t.Helper()
	ls := &lineServer{t: t, l: l, conns: make(chan *lineConn, 16), done: make(chan error, 1)}
	cfg.Closed = errTestClosed
	cfg.NewConn = func(rwc net.Conn, ctx context.Context, slot *Slot) Conn {
		c := newLineConn(rwc, ctx)
		c.slot = slot
		c.finishing = &ls.finishing
		ls.conns <- c
		return c
	}
	go func() { ls.done <- ls.s.Serve(l, cfg) }()
	t.Cleanup(func() { ls.s.Close() })
	return ls
}

// dial opens a connection and waits for the server's side of it.
func (ls *lineServer) dial() (net.Conn, *bufio.Reader, *lineConn) {
	ls.t.Helper()
	nc, err := net.Dial("tcp", ls.l.Addr().String())
	if err != nil {
		ls.t.Fatal(err)
	}
	ls.t.Cleanup(func() { nc.Close() })
	return nc, bufio.NewReader(nc), <-ls.conns
}

// send writes a line and waits for "ok".
func send(t *testing.T, nc net.Conn, br *bufio.Reader, line string) {
	t.Helper()
	nc.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(nc, line); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
	if got, err := br.ReadString('\n'); got != "ok\n" {
		t.Fatalf("answer to %q: %q, %v", line, got, err)
	}
}

// wantClosed checks that the server closed its end of nc.
func wantClosed(t *testing.T, br *bufio.Reader, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(timeout))
	if b, err := br.ReadByte(); err == nil {
		t.Errorf("read %q from a connection the server should have closed", b)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("the server left the connection open")
	}
}

// listen returns a loopback listener, closed at the end of the test if
// nothing closed it before.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestShutdown(t *testing.T) {
	leakcheck.Check(t)
	ls := startLineServer(t, 8, nil)
	idle, idleR, idleC := ls.dial()
	send(t, idle, idleR, "end\n")
	busy, busyR, busyC := ls.dial()
	send(t, busy, busyR, "begin\n")

	shut := make(chan error, 1)
	go func() { shut <- ls.s.Shutdown(context.Background()) }()
	if err := <-ls.done; err != errTestClosed {
		t.Errorf("Serve = %v; want the closed error", err)
	}
	if _, err := net.Dial("tcp", ls.l.Addr().String()); err == nil {
		t.Errorf("the listener still accepts after Shutdown")
	}
	wantClosed(t, idleR, idle) // an idle connection is woken and closed at once
	<-idleC.served
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in progress", err)
	case <-time.After(3 * shutdownPoll):
	}
	if closed(busyC.served) || busyC.ctx.Err() != nil {
		t.Fatalf("Shutdown ended the busy connection")
	}
	// The request ends: the connection is idle, and Shutdown closes it.
	send(t, busy, busyR, "end\n")
	wantClosed(t, busyR, busy)
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v; want nil", err)
	}
	if !closed(busyC.served) {
		t.Errorf("Shutdown returned before the connection's Serve")
	}

	// A second Shutdown, and Serve after it, return at once.
	if err := ls.s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown = %v; want nil", err)
	}
	l2 := listen(t)
	if err := ls.s.Serve(l2, Config{MaxConns: 1, Closed: errTestClosed}); err != errTestClosed {
		t.Errorf("Serve after Shutdown = %v; want the closed error", err)
	}
	if _, err := l2.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve after Shutdown left its listener open: Accept = %v", err)
	}
}

// TestStopAtOnce: Close, and Shutdown once its context ends, close every
// connection, busy or idle, end their contexts and wait for their Serve.
func TestStopAtOnce(t *testing.T) {
	for _, tt := range []struct {
		name string
		stop func(*Server) error
		want error
	}{
		{"Close", (*Server).Close, nil},
		{"Shutdown", func(s *Server) error {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			return s.Shutdown(ctx)
		}, context.DeadlineExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			ls := startLineServer(t, 8, nil)
			busy, busyR, busyC := ls.dial()
			send(t, busy, busyR, "begin\n")
			idle, idleR, idleC := ls.dial()
			conns := []*lineConn{busyC, idleC}
			ls.finishing.Add(1)
			stopped := make(chan error, 1)
			go func() { stopped <- tt.stop(&ls.s) }()
			for _, c := range conns {
				<-c.ctx.Done() // the requests' contexts end...
			}
			select { // ...and the server waits for the handlers
			case err := <-stopped:
				t.Fatalf("%s returned %v while a connection's Serve ran", tt.name, err)
			case <-time.After(3 * shutdownPoll):
			}
			ls.finishing.Done()
			if err := <-stopped; err != tt.want {
				t.Errorf("%s = %v; want %v", tt.name, err, tt.want)
			}
			for _, c := range conns {
				if !closed(c.served) {
					t.Errorf("%s returned before a connection's Serve", tt.name)
				}
			}
			wantClosed(t, busyR, busy)
			wantClosed(t, idleR, idle)
			if err := <-ls.done; err != errTestClosed {
				t.Errorf("Serve = %v; want the closed error", err)
			}
			if !ls.s.Closed() {
				t.Errorf("Closed() = false after %s", tt.name)
			}
			wantServeConnRefused(t, &ls.s)
		})
	}
}

func TestServeConn(t *testing.T) {
	leakcheck.Check(t)
	var s Server
	sc, cc := net.Pipe()
	defer cc.Close()
	made := make(chan *lineConn, 1)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		s.ServeConn(sc, func(rwc net.Conn, ctx context.Context, _ *Slot) Conn {
			c := newLineConn(rwc, ctx)
			made <- c
			return c
		})
	}()
	br := bufio.NewReader(cc)
	send(t, cc, br, "begin\n")
	c := <-made
	if c.ctx.Err() != nil {
		t.Errorf("the connection's context ended early")
	}
	// Shutdown waits for a connection served by ServeConn too.
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in progress", err)
	case <-time.After(3 * shutdownPoll):
	}
	send(t, cc, br, "end\n")
	<-returned
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v; want nil", err)
	}
	wantServeConnRefused(t, &s)
}

// wantServeConnRefused checks that ServeConn on a closed server closes the
// connection without making a Conn.
func wantServeConnRefused(t *testing.T, s *Server) {
	t.Helper()
	sc, cc := net.Pipe()
	defer cc.Close()
	s.ServeConn(sc, func(net.Conn, context.Context, *Slot) Conn {
		t.Errorf("ServeConn on a closed server made a Conn")
		return nil
	})
	if _, err := cc.Write([]byte("x")); err == nil {
		t.Errorf("ServeConn on a closed server left the connection open")
	}
}

func TestServeBaseContext(t *testing.T) {
	leakcheck.Check(t)
	type key struct{}
	var gotListener atomic.Bool
	ls := startLineServer(t, 8, func(l net.Listener) context.Context {
		gotListener.Store(l != nil)
		return context.WithValue(context.Background(), key{}, "base")
	})
	_, _, c := ls.dial()
	if v := c.ctx.Value(key{}); v != "base" || !gotListener.Load() {
		t.Errorf("connection context value = %v (listener passed: %v); want \"base\" from BaseContext(l)", v, gotListener.Load())
	}
}

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

// blockConn is a Conn whose Serve waits for release, counting how many run;
// it is serving a request from the start.
type blockConn struct {
	slot          *Slot
	rwc           net.Conn
	release       <-chan struct{}
	running, peak *atomic.Int32
	mu            *sync.Mutex
}

func (c *blockConn) Serve() {
	c.slot.SetWaiting(false)
	n := c.running.Add(1)
	c.mu.Lock()
	c.peak.Store(max(c.peak.Load(), n))
	c.mu.Unlock()
	<-c.release
	c.running.Add(-1)
	c.rwc.Close()
}

func (c *blockConn) CloseIfIdle() {}
func (c *blockConn) Close()       { c.rwc.Close() }

func TestServeMaxConns(t *testing.T) {
	leakcheck.Check(t)
	ln := listen(t)
	l := &flaky{Listener: ln}
	l.fails.Store(2)
	var s Server
	release := make(chan struct{})
	var running, peak atomic.Int32
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- s.Serve(l, Config{MaxConns: 2, NewConn: func(rwc net.Conn, _ context.Context, slot *Slot) Conn {
			return &blockConn{slot: slot, rwc: rwc, release: release, running: &running, peak: &peak, mu: &mu}
		}, Closed: errTestClosed})
	}()
	var conns []net.Conn
	for i := range 4 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		for deadline := time.Now().Add(timeout); i < 2 && running.Load() <= int32(i) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond) // serving (not waiting) before the next comes
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := running.Load(); got != 2 {
		t.Errorf("%d connections served at once; want the cap, 2", got)
	}
	close(release)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(timeout))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("a connection was not served")
		}
		c.Close()
	}
	if peak.Load() != 2 {
		t.Errorf("peak %d; want 2", peak.Load())
	}
	s.Close()
	if err := <-done; err != errTestClosed {
		t.Errorf("Serve after Close = %v; want the closed error", err)
	}
}

func TestServeListenerFails(t *testing.T) {
	leakcheck.Check(t)
	ln := listen(t)
	ln.Close() // closed by someone else: not a shutdown
	var s Server
	err := s.Serve(ln, Config{MaxConns: 1, Closed: errTestClosed})
	if err == nil || errors.Is(err, errTestClosed) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve on a failing listener = %v; want its error", err)
	}
}

func TestAcceptRefused(t *testing.T) {
	leakcheck.Check(t)
	ln := listen(t)
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var s Server
	err = s.accept(ln, NewGate(1, "test", nil), make(chan struct{}), func(net.Conn, *Slot) Conn { return nil })
	if err != errClosed {
		t.Errorf("start refusing = %v; want errClosed", err)
	}
	nc.SetReadDeadline(time.Now().Add(timeout))
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read from a refused connection = %v; want EOF", err)
	}
}
