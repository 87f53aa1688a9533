package serving

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/rs/zerolog"
)

// TestGateClosesWaiting: at the bound, a new connection closes the one
// that has waited longest for a request, never one serving a request, and
// the log says so once.
func TestGateClosesWaiting(t *testing.T) {
	leakcheck.Check(t)
	logs := &testlog.Buffer{}
	log := zerolog.New(logs)
	ls := startLineServerOn(t, listen(t), Config{MaxConns: 3, Protocol: "test", Logger: &log})

	busy, busyR, _ := ls.dial()
	send(t, busy, busyR, "begin\n")
	silent1, silent1R, _ := ls.dial() // sends nothing: waiting
	silent2, _, _ := ls.dial()
	// The bound is reached: the next connection is served, and the
	// connection that waited longest is closed for it.
	next, nextR, _ := ls.dial()
	send(t, next, nextR, "begin\n")
	wantClosed(t, silent1R, silent1)
	send(t, busy, busyR, "end\n") // the busy one was left alone
	silent2.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := silent2.Read(make([]byte, 1)); !isTimeout(err) {
		t.Errorf("the younger waiting connection: %v; want it still open", err)
	}
	if n := strings.Count(logs.String(), "closing the connections that waited longest"); n != 1 {
		t.Errorf("%d log lines about the bound; want 1:\n%s", n, logs)
	}
}

// TestGateAllServing: when every connection serves a request, a new one
// waits in the backlog until one ends.
func TestGateAllServing(t *testing.T) {
	leakcheck.Check(t)
	ls := startLineServer(t, 1, nil)
	a, aR, _ := ls.dial()
	send(t, a, aR, "begin\n")
	b, err := net.Dial("tcp", ls.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	select {
	case <-ls.conns:
		t.Fatal("a connection was accepted past the bound while every one served a request")
	case <-time.After(100 * time.Millisecond):
	}
	send(t, a, aR, "end\n") // waiting now: the one in the backlog takes its place
	select {
	case <-ls.conns:
	case <-time.After(timeout):
		t.Fatal("the connection in the backlog was never accepted")
	}
	wantClosed(t, aR, a)
}

// emfile fails Accept with EMFILE while fail is set: the connection that
// came is closed, as the kernel leaves it in the backlog.
type emfile struct {
	net.Listener
	fail atomic.Bool
	n    atomic.Int32
}

func (l *emfile) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil && l.fail.Load() {
		c.Close()
		l.n.Add(1)
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return c, err
}

// TestAcceptEMFILE: running out of descriptors does not end Serve (it
// backs off), and it closes the connection waiting longest to get one back.
func TestAcceptEMFILE(t *testing.T) {
	leakcheck.Check(t)
	ln := &emfile{Listener: listen(t)}
	ls := startLineServerOn(t, ln, Config{MaxConns: 8})
	idle, idleR, _ := ls.dial()
	ln.fail.Store(true)
	probe, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	wantClosed(t, idleR, idle)
	if ln.n.Load() != 1 {
		t.Fatalf("%d accepts failed; want 1", ln.n.Load())
	}
	ln.fail.Store(false)
	c, cR, _ := ls.dial()
	send(t, c, cR, "begin\n")
	select {
	case err := <-ls.done:
		t.Fatalf("Serve returned %v", err)
	default:
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// closeCounter is a connection that counts its closes.
type closeCounter struct{ n atomic.Int32 }

func (c *closeCounter) Close() error { c.n.Add(1); return nil }

// TestGateSparesNewConns: a full Gate does not close a connection that has
// waited less than minWait for a new one, and closes it once it has.
func TestGateSparesNewConns(t *testing.T) {
	g := NewGate(1, "test", nil)
	stop := make(chan struct{})
	first, second := &closeCounter{}, &closeCounter{}
	admitted := time.Now()
	if g.Admit(first, stop) == nil {
		t.Fatal("Admit on an empty Gate returned nil")
	}
	// Wait returns false only once stop is closed, which it is after
	// minWait/2: sooner, it would have found first old enough.
	time.AfterFunc(minWait/2, func() { close(stop) })
	if g.Wait(stop) && time.Since(admitted) < minWait {
		t.Fatalf("Wait let a new connection in %v after the only one was admitted; want at least %v", time.Since(admitted), minWait)
	}
	if first.n.Load() != 0 {
		t.Fatal("the connection was closed before it had waited minWait")
	}
	time.Sleep(minWait - time.Since(admitted))
	if !g.Wait(nil) {
		t.Fatal("Wait returned false without stop")
	}
	if g.Admit(second, nil) == nil {
		t.Fatal("Admit returned nil without stop")
	}
	if first.n.Load() != 1 || second.n.Load() != 0 {
		t.Errorf("closes: first %d, second %d; want 1, 0", first.n.Load(), second.n.Load())
	}
}

// wrappedConn is a connection as a wrapping listener hands it out: the
// Gate reaches the socket through NetConn. It counts its closes.
type wrappedConn struct {
	net.Conn
	closes atomic.Int32
}

func (c *wrappedConn) NetConn() net.Conn { return c.Conn }

func (c *wrappedConn) Close() error { c.closes.Add(1); return c.Conn.Close() }

// connPair returns both ends of a connection over network ("unix" or
// "tcp"), closed at cleanup.
func connPair(t *testing.T, network string) (server, client net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "gate.sock")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial(network, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

// queue sends a request head on client and waits until the server's
// receive queue holds it.
func queue(t *testing.T, server, client net.Conn) []byte {
	t.Helper()
	head := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := client.Write(head); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		n, ok := queuedBytes(&wrappedConn{Conn: server})
		if !ok {
			t.Fatalf("queuedBytes cannot see the queue of a %T", server)
		}
		if n == len(head) {
			return head
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes queued; want %d", n, len(head))
		}
		time.Sleep(time.Millisecond)
	}
}

// age makes s look as if it had begun to wait d ago.
func age(s *Slot, d time.Duration) {
	s.g.mu.Lock()
	s.since = time.Now().Add(-d)
	s.g.mu.Unlock()
}

// TestGateSparesQueuedRequest: a full Gate does not close a waiting
// connection whose request sits unread in its receive queue for a new
// one, though it has waited past minWait: its goroutine is late on a
// loaded machine. Such closes failed spawn's TestPoolWorkersShareSocket
// now and then ("connection reset by peer"), where php-cgi-style workers
// of one connection each share a socket. Once the request is read and
// nothing more comes, the connection is closed as before.
func TestGateSparesQueuedRequest(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			leakcheck.Check(t)
			server, client := connPair(t, network)
			first := &wrappedConn{Conn: server}
			g := NewGate(1, "test", nil)
			slot := g.Admit(first, nil)
			head := queue(t, server, client)
			age(slot, 2*minWait)

			// No room to be made: Wait sleeps until stop.
			stop := make(chan struct{})
			time.AfterFunc(3*minWait, func() { close(stop) })
			if g.Wait(stop) {
				t.Fatal("Wait let a connection in for one whose request is queued")
			}
			second := &closeCounter{}
			admitted := make(chan *Slot, 1)
			go func() { admitted <- g.Admit(second, nil) }()
			select {
			case <-admitted:
				t.Fatal("Admit made room by closing the connection whose request is queued")
			case <-time.After(3 * minWait):
			}
			if n := first.closes.Load(); n != 0 {
				t.Fatalf("the connection whose request is queued was closed %d times", n)
			}

			// The request is read and the connection waits again,
			// silent: it goes.
			if _, err := io.ReadFull(server, make([]byte, len(head))); err != nil {
				t.Fatal(err)
			}
			select {
			case s := <-admitted:
				if s == nil {
					t.Fatal("Admit returned nil without stop")
				}
			case <-time.After(timeout):
				t.Fatal("Admit never closed the silent connection")
			}
			if first.closes.Load() != 1 || second.n.Load() != 0 {
				t.Errorf("closes: first %d, second %d; want 1, 0", first.closes.Load(), second.n.Load())
			}
		})
	}
}

// TestGateQueuedSpareEnds: a waiting connection whose bytes stay unread
// for queuedSpare is closed for a new one: its goroutine is held
// elsewhere, not about to serve a request.
func TestGateQueuedSpareEnds(t *testing.T) {
	server, client := connPair(t, "unix")
	first := &wrappedConn{Conn: server}
	g := NewGate(1, "test", nil)
	slot := g.Admit(first, nil)
	queue(t, server, client)
	age(slot, queuedSpare)
	stop := make(chan struct{})
	time.AfterFunc(timeout, func() { close(stop) })
	if !g.Wait(stop) {
		t.Fatal("Wait did not make room past queuedSpare")
	}
	if g.Admit(&closeCounter{}, stop) == nil {
		t.Fatal("Admit did not make room past queuedSpare")
	}
	if n := first.closes.Load(); n != 1 {
		t.Errorf("the connection was closed %d times; want 1", n)
	}
}

// TestGateSkipsQueuedToIdle: when the connection that has waited longest
// has its request queued, a full Gate closes the next longest waiting, a
// silent one, instead.
func TestGateSkipsQueuedToIdle(t *testing.T) {
	busySrv, busyCli := connPair(t, "tcp")
	silentSrv, _ := connPair(t, "tcp")
	busy, silent := &wrappedConn{Conn: busySrv}, &wrappedConn{Conn: silentSrv}
	g := NewGate(2, "test", nil)
	busySlot := g.Admit(busy, nil)
	silentSlot := g.Admit(silent, nil)
	queue(t, busySrv, busyCli)
	age(busySlot, 3*minWait)
	age(silentSlot, 2*minWait)
	if g.Admit(&closeCounter{}, nil) == nil {
		t.Fatal("Admit returned nil without stop")
	}
	if busy.closes.Load() != 0 || silent.closes.Load() != 1 {
		t.Errorf("closes: queued %d, silent %d; want 0, 1", busy.closes.Load(), silent.closes.Load())
	}
}

// TestSharedSocketLeftToFreeWorker: two servers of one connection each
// share a listening socket, as php-cgi's workers do. The first holds a
// connection that has sent nothing for over minWait (its client held off
// the CPU); a new connection goes to the second, free, even though the
// second begins to accept only after it came: the first takes only what
// is left over, and keeps its connection. It took it at once and closed
// its own, which failed spawn's TestPoolWorkersShareSocket now and then
// under load ("connection closed before END_REQUEST").
func TestSharedSocketLeftToFreeWorker(t *testing.T) {
	leakcheck.Check(t)
	l := listen(t)
	busy := startLineServerOn(t, l, Config{MaxConns: 1})
	held, heldR, _ := busy.dial()
	// The held connection waits past minWait, and the worker holding it
	// looks at its Gate again once it has (it would accept then).
	time.Sleep(3 * minWait)
	next, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	free := startLineServerOn(t, l, Config{MaxConns: 1})
	select {
	case <-free.conns:
	case c := <-busy.conns:
		c.rwc.Close()
		t.Fatal("the worker holding a connection took the new one from its free sibling")
	case <-time.After(timeout):
		t.Fatal("the new connection was never accepted")
	}
	held.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := heldR.ReadByte(); !isTimeout(err) {
		t.Errorf("the held connection: %v; want it still open", err)
	}
	send(t, held, heldR, "begin\n")
}
