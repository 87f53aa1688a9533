package bridge

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"
)

// reqInfo collects what the access log line reports about a request.
type reqInfo struct {
	id      string
	backend string
}

type infoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	i, _ := ctx.Value(infoKey{}).(*reqInfo)
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
//
// The line says what the client really got. On the HTTP front, a request
// whose body never came in full (the client stopped sending it for the
// body timeout, or went away) has its response aborted, not sent, and is
// logged with status 408 or 499 (nginx's "client closed request") and
// aborted=true, the handler's status beside it: a 404 or a 200 written
// for a request that never arrived is not an answer the client saw.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		start := time.Now()
		info := &reqInfo{id: newRequestID()}
		l := s.log.With().Str("req_id", info.id).Logger()
		ctx := context.WithValue(l.WithContext(r.Context()), infoKey{}, info)
		lw := &logWriter{ResponseWriter: w}
		lw.Header().Set("X-Request-Id", info.id)
		defer func() {
			p := recover()
			var bodyErr error
			if p == nil || p == http.ErrAbortHandler {
				bodyErr = finishBody(r, p == nil)
			}
			status := lw.status
			if status == 0 && p == nil {
				status = http.StatusOK
			}
			if s.cfg.AccessLog || p != nil || bodyErr != nil {
				ev := s.log.Info()
				switch {
				case bodyErr != nil:
					logged := http.StatusRequestTimeout
					if !isTimeout(bodyErr) {
						logged = statusClientClosed
					}
					ev = s.log.Warn().Bool("aborted", true).Int("handler_status", status).Str("cause", "request body: "+bodyErrText(bodyErr))
					status = logged
				case p != nil:
					ev = s.log.Warn().Bool("aborted", true)
				case lw.err != nil:
					// The client did not take the whole response.
					ev = s.log.Warn().Bool("aborted", true).Str("cause", "response: "+sendErrText(lw.err))
				}
				ev.Str("req_id", info.id).Str("method", r.Method).Str("path", r.URL.RequestURI()).
					Str("remote", r.RemoteAddr).Int("status", status).Int64("bytes", lw.bytes).
					Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).Str("backend", info.backend).Msg("request")
			}
			if p == nil && bodyErr != nil {
				p = http.ErrAbortHandler // nothing more reaches a client that never sent its request
			}
			if p != nil {
				panic(p) // net/http ends the connection, and logs any panic but ErrAbortHandler
			}
		}()
		next.ServeHTTP(lw, r.WithContext(ctx))
	})
}

// statusClientClosed is nginx's status for a request whose client closed
// the connection before it was answered.
const statusClientClosed = 499

// maxPostHandlerDrain is how much of a body its handler left unread is
// read after it, as net/http does before sending the response.
const maxPostHandlerDrain = 256 << 10

// finishBody returns why r's body failed to come from an HTTP client, if
// it did. If drain, the part of a body the handler left unread is read
// first (up to what net/http would read itself before answering), so
// that a body that never comes shows here, within the body timeout.
func finishBody(r *http.Request, drain bool) error {
	if err := bodyFailure(r); err != nil || !drain {
		return err
	}
	c, _ := r.Context().Value(httpConnKey{}).(*httpConn)
	if c == nil || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 ||
		strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		// Not the HTTP front's, no body, or one net/http will not wait
		// for: it closes the connection rather than ask for it.
		return nil
	}
	_, _ = io.CopyN(io.Discard, r.Body, maxPostHandlerDrain+1) // a failure reading from the client shows in bodyFailure
	return bodyFailure(r)
}

// sendErrText says why a response could not be sent, for the log.
func sendErrText(err error) string {
	if isTimeout(err) {
		return "the client took nothing within the send timeout (send_timeout)"
	}
	return err.Error()
}

// bodyErrText says why a body did not come, for the log.
func bodyErrText(err error) string {
	switch {
	case isTimeout(err):
		return "no data within the body timeout (client_body_timeout)"
	case errors.Is(err, io.EOF):
		return "the client closed the connection"
	}
	return err.Error()
}

// logWriter records the status and body size of a response. Flush, Hijack
// and the rest reach the underlying writer through Unwrap
// (http.ResponseController).
type logWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    error // the first write that failed
}

func (lw *logWriter) WriteHeader(code int) {
	if lw.status == 0 && code >= 200 {
		lw.status = code
	}
	lw.ResponseWriter.WriteHeader(code)
}

func (lw *logWriter) Write(p []byte) (int, error) {
	if lw.status == 0 {
		lw.status = http.StatusOK
	}
	n, err := lw.ResponseWriter.Write(p)
	lw.bytes += int64(n)
	if err != nil && lw.err == nil {
		lw.err = err
	}
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
			c.lw.status = code
		}
	}
	n, err := c.Conn.Write(p)
	c.lw.bytes += int64(n)
	return n, err
}
