package serving

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
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
// contexts. It runs with the Server's lock held.
type NewConn func(rwc net.Conn, ctx context.Context) Conn

// Server is the lifecycle of a protocol server, the same for every
// protocol: its listeners, the connections being served, the accept loop,
// Shutdown and Close. A protocol's server holds one; the zero value is
// ready to serve.
type Server struct {
	mu        sync.Mutex // guards listeners, conns, closed, drained
	listeners map[net.Listener]struct{}
	conns     map[Conn]struct{}
	closed    bool
	drained   chan struct{}  // made by Shutdown; closed once closed and conns is empty
	wg        sync.WaitGroup // connections being served
}

// shutdownPoll is how often Shutdown looks again for connections that have
// become idle.
const shutdownPoll = 20 * time.Millisecond

// Serve accepts connections on l and serves each in its own goroutine,
// with at most maxConns served at once (more wait in the listen backlog),
// until l fails or the server is closed; l is closed when Serve returns.
// If l is nil, Serve takes the listening socket at file descriptor 0, as
// a web server that spawns its application passes it. base, if not nil,
// gives the base context of the requests of l. Serve returns closed, the
// protocol's error, once the server is closed, and otherwise l's error as
// net/http does. Temporary accept errors (too many open files) back off
// from 5 ms, doubling up to 1 s.
func (s *Server) Serve(l net.Listener, maxConns int, base func(net.Listener) context.Context, newConn NewConn, closed error) error {
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
		return closed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	ctx := context.Background()
	if base != nil {
		ctx = base(l)
	}
	err := s.accept(l, maxConns, func(rwc net.Conn) Conn { return s.track(rwc, ctx, newConn) })
	if err == errClosed {
		return closed
	}
	return err
}

// accept is Serve's loop: start registers an accepted connection, or
// returns nil when the server was closed meanwhile (the connection is then
// closed). It returns errClosed once the server is closed.
func (s *Server) accept(l net.Listener, maxConns int, start func(net.Conn) Conn) error {
	slots := make(chan struct{}, maxConns)
	var delay time.Duration
	for {
		slots <- struct{}{}
		rwc, err := l.Accept()
		if err != nil {
			<-slots
			if s.Closed() {
				return errClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := start(rwc)
		if c == nil {
			<-slots
			rwc.Close()
			return errClosed
		}
		go s.serveAccepted(c, slots)
	}
}

// serveAccepted serves an accepted connection and gives its slot back.
func (s *Server) serveAccepted(c Conn, slots chan struct{}) {
	defer func() { <-slots }()
	s.serve(c)
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
	c := s.track(rwc, context.Background(), newConn)
	if c == nil {
		rwc.Close()
		return
	}
	s.serve(c)
}

// track registers the connection newConn makes for rwc, or returns nil if
// the server is closed.
func (s *Server) track(rwc net.Conn, ctx context.Context, newConn NewConn) Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.conns == nil {
		s.conns = make(map[Conn]struct{})
	}
	c := newConn(rwc, ctx)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

// forget removes a connection whose Serve has returned.
func (s *Server) forget(c Conn) {
	s.mu.Lock()
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

// closeListeners marks the server closed and closes its listeners, so
// that Serve returns; s.mu is held.
func (s *Server) closeListeners() {
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
