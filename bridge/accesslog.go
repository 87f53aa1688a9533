package bridge

import (
	"bufio"
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/ferrygw/ferry/cgi"
)

// reqInfo collects what the access log line reports about a request.
type reqInfo struct {
	id      string
	backend string
	liveRequest
}

func infoFrom(ctx context.Context) *reqInfo {
	i, _ := cgi.ObserverFrom(ctx).(*reqInfo)
	return i
}

// newRequestID returns 16 random hex digits.
func newRequestID() string {
	var b [8]byte
	v := rand.Uint64()
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

// accessLog gives each request an ID and a logger carrying it, counts it as
// in flight, and logs one line when it ends: method, path, status, bytes,
// duration and backend.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		start := time.Now()
		info := &reqInfo{id: newRequestID(), liveRequest: liveRequest{start: start}}
		l := s.log.With().Str("req_id", info.id).Logger()
		ctx := cgi.WithObserver(l.WithContext(r.Context()), info)
		lw := &logWriter{ResponseWriter: w}
		lw.Header().Set("X-Request-Id", info.id)
		defer func() {
			p := recover()
			status := lw.status
			if status == 0 && p == nil {
				status = http.StatusOK
			}
			if s.cfg.AccessLog || p != nil {
				ev := s.log.Info()
				if p != nil {
					ev = s.log.Warn().Bool("aborted", true)
				}
				ev.Str("req_id", info.id).Str("method", r.Method).Str("path", r.URL.RequestURI()).
					Str("remote", r.RemoteAddr).Int("status", status).Int64("bytes", lw.bytes).
					Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).Str("backend", info.backend).Msg("request")
			}
			if p != nil {
				panic(p) // net/http ends the connection, and logs any panic but ErrAbortHandler
			}
		}()
		next.ServeHTTP(lw, r.WithContext(ctx))
	})
}

// logWriter records the status and body size of a response. Flush, Hijack
// and the rest reach the underlying writer through Unwrap
// (http.ResponseController).
type logWriter struct {
	http.ResponseWriter
	status  int
	bytes   int64
	started time.Time // when the status was sent
}

func (lw *logWriter) WriteHeader(code int) {
	if lw.status == 0 && code >= 200 {
		lw.status, lw.started = code, time.Now()
	}
	lw.ResponseWriter.WriteHeader(code)
}

func (lw *logWriter) Write(p []byte) (int, error) {
	if lw.status == 0 {
		lw.status, lw.started = http.StatusOK, time.Now()
	}
	n, err := lw.ResponseWriter.Write(p)
	lw.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher for handlers that assert it.
func (lw *logWriter) Flush() {
	_ = http.NewResponseController(lw.ResponseWriter).Flush() // Flusher has no way to report it
}

// Hijack hands over the connection (NPH scripts); bytes written to it and the
// status line they start with are still counted.
func (lw *logWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(lw.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &countConn{Conn: c, lw: lw}, rw, nil
}

// Unwrap returns the underlying writer.
func (lw *logWriter) Unwrap() http.ResponseWriter { return lw.ResponseWriter }

// countConn counts bytes written to a hijacked connection, and takes the
// status from the status line they start with.
type countConn struct {
	net.Conn
	lw *logWriter
}

func (c *countConn) Write(p []byte) (int, error) {
	if c.lw.status == 0 && len(p) >= 12 && string(p[:5]) == "HTTP/" {
		if i := 9; p[i-1] == ' ' {
			code := 0
			for _, d := range p[i : i+3] {
				if d < '0' || d > '9' {
					code = 0
					break
				}
				code = code*10 + int(d-'0')
			}
			c.lw.status, c.lw.started = code, time.Now()
		}
	}
	n, err := c.Conn.Write(p)
	c.lw.bytes += int64(n)
	return n, err
}
