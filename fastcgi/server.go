package fastcgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/internal/defaults"
	"github.com/ferrygw/ferry/internal/serving"
	"github.com/rs/zerolog"
)

// Defaults for the zero fields of [Server].
const (
	DefaultMaxConns        = 1024
	DefaultMaxRequests     = 4096
	DefaultMaxConnRequests = 256
	DefaultMaxParamsBytes  = 1 << 20
	DefaultMaxParams       = 2000
	DefaultBodyMemory      = 1 << 20
	DefaultMaxRequestBody  = 1 << 30
	DefaultIdleTimeout     = 5 * time.Minute
)

// ErrServerClosed is returned by [Server.Serve] after [Server.Shutdown] or
// [Server.Close].
var ErrServerClosed = errors.New("fastcgi: server closed")

// ConnError reports a broken record stream: the connection is closed, and
// every request on it ends.
type ConnError struct {
	Err error
}

func (e *ConnError) Error() string { return "fastcgi: connection error: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ConnError) Unwrap() error { return e.Err }

// Server serves an [http.Handler] over FastCGI as the application: the
// Responder, Authorizer and Filter roles, several requests multiplexed on a
// connection (FCGI_MPXS_CONNS=1), FCGI_KEEP_CONN, FCGI_GET_VALUES,
// FCGI_ABORT_REQUEST. The zero value serves http.DefaultServeMux with the
// default limits.
type Server struct {
	// Handler serves the requests. If nil, http.DefaultServeMux is used.
	Handler http.Handler
	// MaxConns bounds open connections; more wait to be accepted. It is
	// reported as FCGI_MAX_CONNS. If zero, DefaultMaxConns.
	MaxConns int
	// MaxRequests bounds the requests in progress over all connections,
	// reported as FCGI_MAX_REQS; past it, BEGIN_REQUEST is answered with
	// OVERLOADED. If zero, DefaultMaxRequests.
	MaxRequests int
	// MaxConnRequests bounds the requests in progress on one connection;
	// past it, BEGIN_REQUEST is answered with OVERLOADED. If zero,
	// DefaultMaxConnRequests.
	MaxConnRequests int
	// MaxParamsBytes bounds a request's PARAMS stream; a larger one is read
	// and dropped, and the request answered 431. If zero,
	// DefaultMaxParamsBytes.
	MaxParamsBytes int
	// MaxParams bounds the number of name-value pairs in PARAMS; past it the
	// request is answered 431. If zero, DefaultMaxParams.
	MaxParams int
	// BodyMemory is how much of a request's STDIN is held in memory before
	// the rest goes to a temporary file in TempDir. If zero,
	// DefaultBodyMemory.
	BodyMemory int64
	// MaxRequestBody bounds a request's STDIN; reading past it fails with
	// ErrBodyTooLarge. If zero, DefaultMaxRequestBody.
	MaxRequestBody int64
	// TempDir holds spilled request bodies. If empty, os.TempDir().
	TempDir string
	// IdleTimeout closes a kept-alive connection with no request in
	// progress after this long. If zero, DefaultIdleTimeout; if negative,
	// never.
	IdleTimeout time.Duration
	// Logger receives protocol errors and handler panics. If nil, nothing is
	// logged.
	Logger *zerolog.Logger
	// BaseContext, if set, gives the base context of the requests of a
	// listener; when it ends, their contexts end.
	BaseContext func(net.Listener) context.Context

	mu        sync.Mutex // guards listeners, conns, closed
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	requests  atomic.Int64
	wg        sync.WaitGroup // connections being served
}

// Serve accepts FastCGI connections on l and serves h on them, until l
// fails. If l is nil, it serves on the listening socket passed as file
// descriptor 0 (FCGI_LISTENSOCK_FILENO), as web servers that spawn FastCGI
// applications do. It is a drop-in for net/http/fcgi.Serve.
func Serve(l net.Listener, h http.Handler) error {
	if l == nil {
		var err error
		if l, err = ListenerFromFD(0); err != nil {
			return err
		}
	}
	return (&Server{Handler: h}).Serve(l)
}

// ListenerFromFD returns the listening socket at file descriptor fd, such as
// FCGI_LISTENSOCK_FILENO (0) from spawn-fcgi or mod_fcgid, or 3 and up from
// systemd socket activation.
func ListenerFromFD(fd int) (net.Listener, error) {
	l, err := serving.ListenerFromFD(fd)
	if err != nil {
		return nil, fmt.Errorf("fastcgi: %w", err)
	}
	return l, nil
}

func (s *Server) handler() http.Handler {
	if s.Handler == nil {
		return http.DefaultServeMux
	}
	return s.Handler
}

func (s *Server) log() *zerolog.Logger {
	if s.Logger == nil {
		l := zerolog.Nop()
		return &l
	}
	return s.Logger
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout == 0 {
		return DefaultIdleTimeout
	}
	return s.IdleTimeout
}

// Serve accepts connections on l and serves them until l fails or the
// server is shut down, then returns ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
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

	base := context.Background()
	if s.BaseContext != nil {
		base = s.BaseContext(l)
	}
	err := serving.Accept(l, defaults.Or(s.MaxConns, DefaultMaxConns), s.isClosed, func(rwc net.Conn) func() {
		if c := s.newConn(rwc, base); c != nil {
			return c.serve
		}
		return nil
	})
	if errors.Is(err, serving.ErrClosed) {
		return ErrServerClosed
	}
	if err != nil {
		return fmt.Errorf("fastcgi: %w", err)
	}
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ServeConn serves one connection, returning when it closes. It is how an
// application serves a connection it accepted itself.
func (s *Server) ServeConn(rwc net.Conn) {
	c := s.newConn(rwc, context.Background())
	if c == nil {
		rwc.Close()
		return
	}
	c.serve()
}

func (s *Server) newConn(rwc net.Conn, base context.Context) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	ctx, cancel := context.WithCancel(base)
	c := &conn{
		srv:    s,
		rwc:    rwc,
		bw:     newConnWriter(rwc),
		reqs:   make(map[uint16]*request),
		ctx:    ctx,
		cancel: cancel,
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops the server gracefully: listeners close, idle connections
// close, and connections close once their requests have ended. If ctx ends
// first, the remaining connections are closed, their requests' contexts end,
// and ctx's error is returned once their handlers have returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			c.closeIfIdle()
		}
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		}
	}
}

// Close closes the listeners and every connection at once, ending their
// requests' contexts, and waits for the handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.rwc.Close()
		c.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

type roleKey struct{}
type dataKey struct{}

// RoleOf returns the FastCGI role of the request r, or 0 if r did not come
// through a FastCGI Server.
func RoleOf(r *http.Request) Role {
	role, _ := r.Context().Value(roleKey{}).(Role)
	return role
}

// FilterData returns the FCGI_DATA stream of a Filter request (the file to
// filter; its length is in FCGI_DATA_LENGTH), or nil for other roles.
func FilterData(r *http.Request) io.Reader {
	d, _ := r.Context().Value(dataKey{}).(*bodyBuffer)
	if d == nil {
		return nil
	}
	return d
}

func newConnWriter(rwc net.Conn) *bufio.Writer {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(rwc)
	return bw
}
