package serving

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// errClosed ends the accept loop of a closed server.
var errClosed = errors.New("serving: server closed")

// Conn is a connection as its [Server] sees it: a protocol's connection
// type implements it. The Server calls CloseIfIdle and Close while Serve
// runs, with its own lock held: they must be safe to call concurrently
// with Serve, and must not call back into the Server.
type Conn interface {
	// Serve serves the connection until it ends, and closes it.
	Serve()
	// CloseIfIdle closes the connection if no request is in progress on
	// it and no response is being written: Shutdown does not wait for a
	// connection that is only kept open. A protocol whose connections
	// carry a request from the start (SCGI) does nothing.
	CloseIfIdle()
	// Close closes the connection at once and ends its requests' contexts.
	Close()
}

// NewConn makes the Conn that serves rwc; ctx is the base of its requests'
// contexts, and slot its place in its listener's [Gate] (nil for a
// connection given to ServeConn), which the Conn marks waiting or serving
// as requests come and go ([Slot.SetWaiting]). It runs with the Server's
// lock held.
type NewConn func(rwc net.Conn, ctx context.Context, slot *Slot) Conn

// Server is the lifecycle of a protocol server, the same for every
// protocol: its listeners, the connections being served, the accept loop,
// Shutdown and Close. A protocol's server holds one; the zero value is
// ready to serve.
type Server struct {
	mu        sync.Mutex // guards listeners, conns, closed, drained
	listeners map[net.Listener]struct{}
	conns     map[Conn]*Slot // the slot in its listener's Gate; nil for ServeConn's
	closed    bool
	quit      chan struct{}  // closed once closed; made by quitLocked
	drained   chan struct{}  // made by Shutdown; closed once closed and conns is empty
	wg        sync.WaitGroup // connections being served
}

// shutdownPoll is how often Shutdown looks again for connections that have
// become idle.
const shutdownPoll = 20 * time.Millisecond

// Config says how [Server.Serve] serves a listener.
type Config struct {
	// MaxConns bounds the connections open at once on the listener
	// ([Gate]): past it, the connection that has waited longest for a
	// request ([Slot.SetWaiting]) is closed to make room, and when every
	// connection is serving a request, new ones wait in the listen
	// backlog. A full server takes a new connection only once it has
	// waited 20 ms in the backlog (leftWait), so that on a socket shared
	// by several processes a free one takes it first.
	MaxConns int
	// BaseContext, if not nil, gives the base context of the requests of
	// the listener.
	BaseContext func(net.Listener) context.Context
	// NewConn makes the Conn serving an accepted connection.
	NewConn NewConn
	// Closed is the protocol's error for a closed server.
	Closed error
	// Protocol names the front in log lines: "fastcgi", "scgi".
	Protocol string
	// Logger receives the lines about the bound and accept failures; nil
	// means none.
	Logger *zerolog.Logger
}

// Serve accepts connections on l and serves each in its own goroutine,
// with at most cfg.MaxConns open at once, until l fails or the server is
// closed; l is closed when Serve returns. If l is nil, Serve takes the
// listening socket at file descriptor 0, as a web server that spawns its
// application passes it. Serve returns cfg.Closed once the server is
// closed, and otherwise l's error as net/http does. Temporary accept
// errors back off from 5 ms, doubling up to 1 s; running out of file
// descriptors (EMFILE) also closes the connection that has waited longest
// for a request, to give its descriptor back.
func (s *Server) Serve(l net.Listener, cfg Config) error {
	if l == nil {
		var err error
		if l, err = ListenerFromFD(0); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return cfg.Closed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[l] = struct{}{}
	stop := s.quitLocked()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	ctx := context.Background()
	if cfg.BaseContext != nil {
		ctx = cfg.BaseContext(l)
	}
	g := NewGate(cfg.MaxConns, cfg.Protocol, cfg.Logger)
	err := s.accept(l, g, stop, func(rwc net.Conn, slot *Slot) Conn { return s.track(rwc, ctx, cfg.NewConn, slot) })
	if err == errClosed {
		return cfg.Closed
	}
	return err
}

// accept is Serve's loop: start registers an accepted connection, or
// returns nil when the server was closed meanwhile (the connection is then
// closed). It returns errClosed once the server is closed.
func (s *Server) accept(l net.Listener, g *Gate, stop <-chan struct{}, start func(net.Conn, *Slot) Conn) error {
	var delay time.Duration
	q := newListenQueue(l)
	for {
		if !g.Wait(stop) {
			return errClosed
		}
		if q != nil && g.full() {
			if !q.leftOver(stop) {
				continue // look at the Gate again
			}
			// The connection to close may have begun serving a
			// request during leftWait: then the new one is not
			// taken, to wait in the backlog rather than here.
			if ok, _ := g.look(); !ok {
				continue
			}
		}
		rwc, err := l.Accept()
		if err != nil {
			if s.Closed() {
				return errClosed
			}
			var ne net.Error
			fds := IsFDExhausted(err)
			if fds || (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.ECONNABORTED) {
				if fds {
					g.Shed()
				}
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		slot := g.Admit(rwc, stop)
		if slot == nil {
			rwc.Close()
			return errClosed
		}
		c := start(rwc, slot)
		if c == nil {
			slot.Release()
			rwc.Close()
			return errClosed
		}
		go s.serve(c)
	}
}

// serve serves a tracked connection, then forgets it.
func (s *Server) serve(c Conn) {
	defer s.forget(c)
	c.Serve()
}

// ServeConn serves rwc, a connection the caller accepted, with the Conn
// newConn makes, and returns when it ends. On a closed server it closes
// rwc at once.
func (s *Server) ServeConn(rwc net.Conn, newConn NewConn) {
	c := s.track(rwc, context.Background(), newConn, nil)
	if c == nil {
		rwc.Close()
		return
	}
	s.serve(c)
}

// track registers the connection newConn makes for rwc, holding slot, or
// returns nil if the server is closed.
func (s *Server) track(rwc net.Conn, ctx context.Context, newConn NewConn, slot *Slot) Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.conns == nil {
		s.conns = make(map[Conn]*Slot)
	}
	c := newConn(rwc, ctx, slot)
	s.conns[c] = slot
	s.wg.Add(1)
	return c
}

// forget removes a connection whose Serve has returned.
func (s *Server) forget(c Conn) {
	s.mu.Lock()
	s.conns[c].Release()
	delete(s.conns, c)
	if len(s.conns) == 0 && s.drained != nil {
		// Only Shutdown makes drained, after closing: no connection
		// comes after the last one leaves, so this runs once.
		close(s.drained)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// Closed reports whether Shutdown or Close has been called.
func (s *Server) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// quitLocked returns a channel closed once the server is; s.mu is held.
func (s *Server) quitLocked() chan struct{} {
	if s.quit == nil {
		s.quit = make(chan struct{})
		if s.closed {
			close(s.quit)
		}
	}
	return s.quit
}

// closeListeners marks the server closed and closes its listeners, so
// that Serve returns; s.mu is held.
func (s *Server) closeListeners() {
	if !s.closed {
		close(s.quitLocked())
	}
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
}

// Shutdown stops the server gracefully: the listeners close, so that Serve
// returns; idle connections close, at once and as they become idle; and
// Shutdown returns nil once every connection has ended. If ctx ends first,
// Close ends the rest and Shutdown returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closeListeners()
	if s.drained == nil {
		s.drained = make(chan struct{})
		if len(s.conns) == 0 {
			close(s.drained)
		}
	}
	drained := s.drained
	s.mu.Unlock()
	t := time.NewTicker(shutdownPoll)
	defer t.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			c.CloseIfIdle()
		}
		s.mu.Unlock()
		select {
		case <-drained:
			return nil
		case <-t.C:
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		}
	}
}

// Close closes the listeners and every connection at once, ending their
// requests' contexts, and waits for the connections' Serve to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closeListeners()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// CloseIdle closes the connections that are idle now ([Conn.CloseIfIdle]),
// without closing the server.
func (s *Server) CloseIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.CloseIfIdle()
	}
}
