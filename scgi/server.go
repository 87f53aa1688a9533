package scgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/serving"
	"github.com/rs/zerolog"
)

// Defaults for the zero fields of [Server].
const (
	DefaultMaxConns          = 1024
	DefaultReadHeaderTimeout = 30 * time.Second
	DefaultMaxRequestBody    = cgi.DefaultMaxRequestBody
)

// ErrServerClosed is returned by [Server.Serve] after [Server.Shutdown] or
// [Server.Close].
var ErrServerClosed = errors.New("scgi: server closed")

// Server serves an [http.Handler] over SCGI as the application, behind a
// web server: one request per connection (protocol.txt § 2). The zero
// value serves http.DefaultServeMux with the default limits.
//
// The request body is read from the connection as the handler reads it,
// never more than CONTENT_LENGTH bytes. Once it has been read, the server
// watches the connection: when the web server closes it (its client went
// away) the request's context ends, so a CGI script ferry runs for the
// request is stopped.
type Server struct {
	// Handler serves the requests. If nil, http.DefaultServeMux is used.
	Handler http.Handler
	// Limits bounds the header block. Limits.MaxContentLength, if zero,
	// is MaxRequestBody.
	Limits Limits
	// MaxConns bounds the connections served at once; more wait to be
	// accepted. If zero, DefaultMaxConns.
	MaxConns int
	// ReadHeaderTimeout bounds the wait for the header block once a
	// connection is accepted. If zero, DefaultReadHeaderTimeout; if
	// negative, none.
	ReadHeaderTimeout time.Duration
	// MaxRequestBody bounds CONTENT_LENGTH: a larger request is answered
	// 413 before the handler runs. If zero, DefaultMaxRequestBody.
	MaxRequestBody int64
	// Logger receives protocol errors and handler panics. If nil, nothing
	// is logged.
	Logger *zerolog.Logger
	// BaseContext, if set, gives the base context of the requests of a
	// listener; when it ends, their contexts end.
	BaseContext func(net.Listener) context.Context

	mu        sync.Mutex // guards listeners, conns, closed
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	wg        sync.WaitGroup // connections being served
}

// Serve accepts SCGI connections on l and serves h on them, until l fails.
// If l is nil, it serves on the listening socket passed as file descriptor
// 0, as a web server that spawns its application (lighttpd's
// "bin-path") passes it. If h is nil, http.DefaultServeMux is used.
func Serve(l net.Listener, h http.Handler) error {
	if l == nil {
		var err error
		if l, err = ListenerFromFD(0); err != nil {
			return err
		}
	}
	return (&Server{Handler: h}).Serve(l)
}

// ListenerFromFD returns the listening socket at file descriptor fd: 0 from
// a spawning web server, 3 and up from systemd socket activation.
func ListenerFromFD(fd int) (net.Listener, error) {
	l, err := serving.ListenerFromFD(fd)
	if err != nil {
		return nil, fmt.Errorf("scgi: %w", err)
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

func (s *Server) maxRequestBody() int64 {
	if s.MaxRequestBody <= 0 {
		return DefaultMaxRequestBody
	}
	return s.MaxRequestBody
}

func (s *Server) limits() Limits {
	lim := s.Limits
	if lim.MaxContentLength <= 0 {
		lim.MaxContentLength = s.maxRequestBody()
	}
	return lim
}

func (s *Server) readHeaderTimeout() time.Duration {
	if s.ReadHeaderTimeout == 0 {
		return DefaultReadHeaderTimeout
	}
	return s.ReadHeaderTimeout
}

// Serve accepts connections on l and serves each in its own goroutine,
// until l fails or the server is shut down, then returns ErrServerClosed.
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
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	err := serving.Accept(l, maxConns, s.isClosed, func(rwc net.Conn) func() {
		if c := s.newConn(rwc, base); c != nil {
			return c.serve
		}
		return nil
	})
	if errors.Is(err, serving.ErrClosed) {
		return ErrServerClosed
	}
	if err != nil {
		return fmt.Errorf("scgi: %w", err)
	}
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ServeConn serves the one request of a connection the caller accepted,
// and closes it.
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
	c := &conn{srv: s, rwc: rwc, ctx: ctx, cancel: cancel}
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

// Shutdown stops the server gracefully: the listeners close, and the
// connections accepted already are served to their end (each holds one
// request, whose header is bounded by ReadHeaderTimeout). If ctx ends
// first, Close ends the rest and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
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

// readerPool holds the connections' header readers. The buffer is small:
// nginx's header block is 1-2 KiB, and the body is read through it too.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}
