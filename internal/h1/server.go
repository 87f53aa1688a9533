package h1

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/internal/serving"
	"github.com/rs/zerolog"
)

// Defaults for zero fields of [Server].
const (
	// DefaultMaxHeaderBytes bounds a request's line and header fields, as
	// net/http's DefaultMaxHeaderBytes; past it (and net/http's 4 KiB of
	// slack) a request gets 431.
	DefaultMaxHeaderBytes = 1 << 20
	// DefaultMaxConns is the connection bound of a Server with no
	// MaxConns, at most half the open-file limit.
	DefaultMaxConns = 10000
)

// BadHead is a request whose head failed, as [Server.BadHead] is told
// of it.
type BadHead struct {
	// Status is what the request gets in the access log: the status
	// answered, or 408 (the header timeout) or 400 (the client closed
	// the connection) when nothing was answered.
	Status int
	// Line is the request line, or as much of it as came, cut at 8 KiB,
	// when it could not be parsed; else it is empty, and Method,
	// RequestURI and Proto hold its parts.
	Line                      string
	Method, RequestURI, Proto string
	// Host is the Host field, if one came.
	Host string
	// Header holds the fields when they were all read; else nil.
	Header http.Header
	// Reason says what was wrong, for the error log.
	Reason string
	// Start is when the head's first byte came; BodyBytes is the size of
	// the answer's body sent, 0 when none was.
	Start     time.Time
	BodyBytes int64
	// Framing is set for a head refused for its framing, which Refused
	// is told of too.
	Framing bool
}

// RequestLine returns the request line as it came, or as much of it as
// came.
func (h *BadHead) RequestLine() string {
	if h.Line != "" || h.Method == "" {
		return h.Line
	}
	return h.Method + " " + h.RequestURI + " " + h.Proto
}

// Server serves HTTP/1.x on the listeners given to Serve. The zero value
// serves http.DefaultServeMux with no timeouts.
type Server struct {
	// Handler answers the requests; nil means http.DefaultServeMux.
	Handler http.Handler
	// ReadHeaderTimeout bounds the wait for a request head: from the
	// accept for the first request, from its first byte for the next
	// ones. A connection that passes it is closed without an answer, as
	// net/http does. Zero or negative: none.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept
	// connection. Zero or negative: none.
	IdleTimeout time.Duration
	// BodyTimeout bounds each wait for more of a request body; a read
	// that passes it fails with a timeout error, and the connection is
	// closed after the response. Zero or negative: none.
	BodyTimeout time.Duration
	// SendTimeout bounds each wait for the client to take more of a
	// response; a write that passes it fails, and the connection is
	// closed. Zero or negative: none.
	SendTimeout time.Duration
	// MaxHeaderBytes bounds the request line and header fields; zero
	// means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxConns bounds the connections open at once on each listener, as
	// [serving.Gate] does: past it, the connection that has waited
	// longest for a request (or for more of its body) is closed for a
	// new one. Zero means DefaultMaxConns, at most half the open-file
	// limit.
	MaxConns int
	// BaseContext, if not nil, gives the base context of a listener's
	// requests.
	BaseContext func(net.Listener) context.Context
	// ConnContext, if not nil, derives a connection's context, the parent
	// of its requests' contexts, as http.Server.ConnContext.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// ConnState, if not nil, is told of a connection's states as
	// http.Server.ConnState is, except that StateActive comes when the
	// request head is whole, not at its first byte.
	ConnState func(net.Conn, http.ConnState)
	// Refused, if not nil, is told of each request refused for its
	// framing (400 and the connection closed), with the reason.
	Refused func(c net.Conn, reason string)
	// BadHead, if not nil, is told of each request whose head did not
	// come whole and right, as nginx logs such requests: refused with
	// an answer (400, 414, 431, 501, 505; those refused for their framing
	// are told to Refused as well), timed out at ReadHeaderTimeout
	// (408, closed with no answer), or cut off by the client (400, no
	// answer). A connection that ends before the first byte of a
	// request is not told of.
	BadHead func(c net.Conn, h *BadHead)
	// Logger receives the server's own lines (a panic in a handler, the
	// connection bound); nil means none.
	Logger *zerolog.Logger

	serving serving.Server
	noKeep  atomic.Bool
	sweep   serving.Sweeper
}

// Serve accepts connections on l and serves each in its own goroutine
// until l fails or the server is shut down; l is closed when Serve
// returns. Serve returns http.ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	return s.serving.Serve(l, serving.Config{
		MaxConns:    s.maxConns(),
		BaseContext: s.BaseContext,
		NewConn:     s.newConn,
		Closed:      http.ErrServerClosed,
		Protocol:    "http",
		Logger:      s.Logger,
	})
}

// Shutdown stops the server gracefully: the listeners close, idle
// connections close at once and others once their response is out, and
// Shutdown returns nil when none is left, or ctx's error if ctx ends
// first, after closing the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.noKeep.Store(true)
	return s.serving.Shutdown(ctx)
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error { return s.serving.Close() }

// SetKeepAlivesEnabled turns keep-alive on or off, as net/http's: off,
// each response says "Connection: close" and closes its connection, and
// the connections idle now are closed.
func (s *Server) SetKeepAlivesEnabled(on bool) {
	s.noKeep.Store(!on)
	if !on {
		s.serving.CloseIdle()
	}
}

func (s *Server) maxConns() int {
	if s.MaxConns > 0 {
		return s.MaxConns
	}
	return serving.FDBound(DefaultMaxConns)
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

// handler returns the handler of r: OPTIONS * gets 200 and an empty
// body, as net/http answers it, before any handler sees it.
func (s *Server) handler(r *http.Request) http.Handler {
	if r.RequestURI == "*" && r.Method == "OPTIONS" {
		return http.HandlerFunc(optionsStar)
	}
	if s.Handler == nil {
		return http.DefaultServeMux
	}
	return s.Handler
}

func optionsStar(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 4<<10))
	}
}

func (s *Server) setState(c net.Conn, st http.ConnState) {
	if s.ConnState != nil {
		s.ConnState(c, st)
	}
}
