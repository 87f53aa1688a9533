package scgi

import (
	"bufio"
	"context"
	"errors"
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
// never more than CONTENT_LENGTH bytes. Once it has been read and the
// handler has run for 10 ms or more (10-20 ms when the sweeps that look
// run on time), the server watches the connection: when the web server
// closes it (its client went away) the request's context ends, so a CGI
// script ferry runs for the request is stopped. Shorter requests are
// spared the watch's goroutine and reads.
type Server struct {
	// Handler serves the requests. If nil, http.DefaultServeMux is used.
	Handler http.Handler
	// Limits bounds the header block. Limits.MaxContentLength, if zero,
	// is MaxRequestBody.
	Limits Limits
	// MaxConns bounds the connections open at once. A connection whose
	// header block has not all come gives its place to a new connection
	// when all are taken (the one that has waited longest goes first), so
	// that slow or silent connections cannot keep a request out; when
	// every connection is serving a request, new ones wait to be
	// accepted. If zero, DefaultMaxConns, or half the open-file limit if
	// that is less.
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

	serving serving.Server  // listeners, connections, Shutdown and Close
	sweep   serving.Sweeper // starts the watches of long requests
}

// Serve accepts SCGI connections on l and serves h on them, until l fails.
// If l is nil, it serves on the listening socket passed as file descriptor
// 0, as a web server that spawns its application (lighttpd's
// "bin-path") passes it. If h is nil, http.DefaultServeMux is used.
func Serve(l net.Listener, h http.Handler) error {
	return (&Server{Handler: h}).Serve(l)
}

func (s *Server) handler() http.Handler { return serving.Handler(s.Handler) }

func (s *Server) log() *zerolog.Logger { return serving.Logger(s.Logger) }

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
// If l is nil, it serves on the listening socket at file descriptor 0, as
// [Serve] does.
func (s *Server) Serve(l net.Listener) error {
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = serving.FDBound(DefaultMaxConns)
	}
	return s.serving.Serve(l, serving.Config{MaxConns: maxConns, BaseContext: s.BaseContext, NewConn: s.newConn,
		Closed: ErrServerClosed, Protocol: "scgi", Logger: s.Logger})
}

// ServeConn serves the one request of a connection the caller accepted,
// and closes it.
func (s *Server) ServeConn(rwc net.Conn) {
	s.serving.ServeConn(rwc, s.newConn)
}

// newConn makes the conn serving rwc; the server's lifecycle tracks it.
func (s *Server) newConn(rwc net.Conn, base context.Context, slot *serving.Slot) serving.Conn {
	ctx, cancel := context.WithCancel(base)
	return &conn{srv: s, rwc: rwc, ctx: ctx, cancel: cancel, slot: slot}
}

// Shutdown stops the server gracefully: the listeners close, and the
// connections accepted already are served to their end (each holds one
// request, whose header is bounded by ReadHeaderTimeout). If ctx ends
// first, Close ends the rest and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.serving.Shutdown(ctx)
}

// Close closes the listeners and every connection at once, ending their
// requests' contexts, and waits for the handlers to return.
func (s *Server) Close() error {
	return s.serving.Close()
}

// readerPool holds the connections' header readers. The buffer is small:
// nginx's header block is 1-2 KiB, and the body is read through it too.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}
