package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/internal/serving"
	"github.com/rs/zerolog"
)

// Defaults for the zero fields of [Server].
const (
	DefaultMaxConns        = 1024
	DefaultMaxRequests     = 4096
	DefaultMaxConnRequests = 256
	DefaultMaxConnSetup    = 16
	DefaultMaxParamsBytes  = 1 << 20
	DefaultMaxParams       = 2000
	DefaultBodyMemory      = 1 << 20
	DefaultMaxRequestBody  = 1 << 30
	DefaultIdleTimeout     = 5 * time.Minute
	// DefaultReadHeaderTimeout is SCGI's (scgi.DefaultReadHeaderTimeout).
	DefaultReadHeaderTimeout = 30 * time.Second
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
	// MaxConns bounds open connections, and is reported as
	// FCGI_MAX_CONNS. A connection whose first request has not started
	// (its PARAMS have not all come) gives its place to a new connection
	// when all are taken; once it has served a request it keeps its place,
	// kept idle or not, and when every place is so held, new connections
	// wait to be accepted. If zero,
	// DefaultMaxConns, or half the open-file limit if that is less.
	MaxConns int
	// MaxRequests bounds the requests running (their PARAMS complete) over
	// all connections, reported as FCGI_MAX_REQS; past it, BEGIN_REQUEST is
	// answered with OVERLOADED. If zero, DefaultMaxRequests.
	MaxRequests int
	// MaxConnRequests bounds the requests in progress on one connection;
	// past it, BEGIN_REQUEST is answered with OVERLOADED. If zero,
	// DefaultMaxConnRequests.
	MaxConnRequests int
	// MaxConnSetup bounds the requests of one connection whose PARAMS
	// have not all come (in setup); past it, BEGIN_REQUEST is answered
	// with OVERLOADED. If zero, DefaultMaxConnSetup.
	MaxConnSetup int
	// MaxParamsBytes bounds the PARAMS of the requests in setup on one
	// connection, together: the request whose PARAMS go past it has them
	// read and dropped, and is answered 431. So PARAMS held in memory never
	// exceed MaxConns × MaxParamsBytes. If zero, DefaultMaxParamsBytes.
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
	// ReadHeaderTimeout bounds the time from a request's BEGIN_REQUEST to
	// the end of its PARAMS (and its first STDIN record when PARAMS give
	// no CONTENT_LENGTH): past it the request is answered 408 and ended.
	// It also bounds the time a record that has begun to arrive may take
	// to end; past that the connection is closed. If zero,
	// DefaultReadHeaderTimeout; if negative, none.
	ReadHeaderTimeout time.Duration
	// Logger receives protocol errors and handler panics. If nil, nothing is
	// logged.
	Logger *zerolog.Logger
	// BaseContext, if set, gives the base context of the requests of a
	// listener; when it ends, their contexts end.
	BaseContext func(net.Listener) context.Context

	serving  serving.Server  // listeners, connections, Shutdown and Close
	requests atomic.Int64    // requests running over all connections
	sweep    serving.Sweeper // hands the reading on from requests run in their read loop
}

// Serve accepts FastCGI connections on l and serves h on them, until l
// fails. If l is nil, it serves on the listening socket passed as file
// descriptor 0 (FCGI_LISTENSOCK_FILENO), as web servers that spawn FastCGI
// applications do. It is a drop-in for net/http/fcgi.Serve.
func Serve(l net.Listener, h http.Handler) error {
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

func (s *Server) handler() http.Handler { return serving.Handler(s.Handler) }

func (s *Server) log() *zerolog.Logger { return serving.Logger(s.Logger) }

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout == 0 {
		return DefaultIdleTimeout
	}
	return s.IdleTimeout
}

func (s *Server) readHeaderTimeout() time.Duration {
	if s.ReadHeaderTimeout == 0 {
		return DefaultReadHeaderTimeout
	}
	return s.ReadHeaderTimeout
}

// maxConns is MaxConns, or DefaultMaxConns bounded by the open-file limit.
func (s *Server) maxConns() int {
	if s.MaxConns > 0 {
		return s.MaxConns
	}
	return serving.FDBound(DefaultMaxConns)
}

// Serve accepts connections on l and serves them until l fails or the
// server is shut down, then returns ErrServerClosed. If l is nil, it
// serves on the listening socket at file descriptor 0, as [Serve] does.
func (s *Server) Serve(l net.Listener) error {
	return s.serving.Serve(l, serving.Config{MaxConns: s.maxConns(), BaseContext: s.BaseContext, NewConn: s.newConn,
		Closed: ErrServerClosed, Protocol: "fastcgi", Logger: s.Logger})
}

// ServeConn serves one connection, returning when it closes. It is how an
// application serves a connection it accepted itself.
func (s *Server) ServeConn(rwc net.Conn) {
	s.serving.ServeConn(rwc, s.newConn)
}

// newConn makes the conn serving rwc; the server's lifecycle tracks it.
func (s *Server) newConn(rwc net.Conn, base context.Context, slot *serving.Slot) serving.Conn {
	ctx, cancel := context.WithCancel(base)
	return &conn{
		srv:    s,
		rwc:    rwc,
		slot:   slot,
		reqs:   make(map[uint16]*request),
		ctx:    ctx,
		cancel: cancel,
	}
}

// Shutdown stops the server gracefully: listeners close, idle connections
// close, and connections close once their requests have ended. If ctx ends
// first, the remaining connections are closed, their requests' contexts end,
// and ctx's error is returned once their handlers have returned.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.serving.Shutdown(ctx)
}

// Close closes the listeners and every connection at once, ending their
// requests' contexts, and waits for the handlers to return.
func (s *Server) Close() error {
	return s.serving.Close()
}
