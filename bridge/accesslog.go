package bridge

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/h1"
	"github.com/rs/zerolog"
)

// reqInfo collects what the access log line reports about a request.
type reqInfo struct {
	id      string
	backend string
	base    *zerolog.Logger                // the server's, for logger
	log     atomic.Pointer[zerolog.Logger] // base with req_id, built at the first line logged
	liveRequest
}

var _ cgi.RequestLogger = (*reqInfo)(nil)

// Logger implements cgi.RequestLogger: the server's logger with the
// request's ID as req_id. It is built when the request first logs a line
// (most never do), and is safe to call from any goroutine.
func (i *reqInfo) Logger() *zerolog.Logger {
	if l := i.log.Load(); l != nil {
		return l
	}
	l := i.base.With().Str("req_id", i.id).Logger()
	i.log.CompareAndSwap(nil, &l)
	return i.log.Load()
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

// maxRequestID bounds the length of a request ID taken from a client.
const maxRequestID = 128

// validRequestID reports whether id, from a client or a front web server,
// can be the request's ID: 1 to 128 printable ASCII characters, no space.
// Anything else could forge log lines or headers further on.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// requestID returns the ID of r: the one in header h if there is exactly
// one and it is valid, else a new one, and whether r's header must be
// changed to carry it on.
func requestID(r *http.Request, h string) (string, bool) {
	if v := r.Header[h]; len(v) == 1 && validRequestID(v[0]) {
		return v[0], false
	}
	return newRequestID(), true
}

// requestIDHeader returns the header a request's ID comes in, goes on
// in, and is answered in.
func (s *Server) requestIDHeader() string {
	if s.cfg.RequestIDHeader == "" {
		return DefaultRequestIDHeader
	}
	return http.CanonicalHeaderKey(s.cfg.RequestIDHeader)
}

// accessLog gives each request an ID (its own, if valid, else a new one),
// passed on to the application and answered in the request ID header,
// and a logger carrying it as req_id; it counts the request as in flight,
// and logs one line when it ends: method, path, status, bytes, duration,
// backend, remote address, host, user agent and referer.
//
// The line says what the client really got. On the HTTP front, a request
// whose body never came in full (the client stopped sending it for the
// body timeout, or went away) has its response aborted, not sent, and is
// logged with status 408 or 499 (nginx's "client closed request") and
// aborted=true, the handler's status beside it: a 404 or a 200 written
// for a request that never arrived is not an answer the client saw.
func (s *Server) accessLog(next http.Handler) http.Handler {
	hdr := s.requestIDHeader()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		start := time.Now()
		id, replace := requestID(r, hdr)
		// The request's observer and its response writer come in one
		// allocation, and so do the two one-value lists of its ID.
		st := &accessState{info: reqInfo{id: id, base: &s.log, liveRequest: liveRequest{start: start}}, lw: logWriter{ResponseWriter: w, ctx: r.Context()}}
		info, lw := &st.info, &st.lw
		ctx := cgi.WithObserver(r.Context(), info)
		st.ids = [2]string{info.id, info.id}
		ids := st.ids[:]
		lw.Header()[hdr] = ids[0:1:1] // hdr is canonical
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
				e := &accessEntry{r: r, id: info.id, backend: info.backend, start: start,
					status: status, bytes: lw.bytes, dur: time.Since(start), aborted: p != nil}
				switch {
				case bodyErr != nil:
					e.handlerStatus, e.aborted = status, true
					e.status = http.StatusRequestTimeout
					if !isTimeout(bodyErr) {
						e.status = statusClientClosed
					}
					e.cause = "request body: " + bodyErrText(bodyErr)
				case p == nil && lw.unanswered():
					// The handler answered a request that had ended:
					// the answer went nowhere. A client that left is
					// nginx's 499, as for a body that never came; a
					// request the shutdown cut off keeps the handler's
					// status, aborted.
					e.aborted = true
					if errors.Is(context.Cause(r.Context()), errStopped) {
						e.cause = "response: ferry stopped the request (shutdown) before it was sent"
					} else {
						e.handlerStatus, e.status = lw.status, statusClientClosed // 0 (none) when it wrote nothing
						e.cause = "response: the client closed the connection or aborted the request before it"
					}
				case p == nil && lw.err != nil:
					// The client did not take the whole response.
					e.aborted, e.cause = true, "response: "+sendErrText(lw.err)
				}
				s.logRequest(e)
			}
			if p == nil && bodyErr != nil {
				p = http.ErrAbortHandler // nothing more reaches a client that never sent its request
			}
			if p != nil {
				panic(p) // net/http ends the connection, and logs any panic but ErrAbortHandler
			}
		}()
		r = r.WithContext(ctx)
		switch {
		case !replace:
		case r.Header != nil && h1.HeaderOwned(ctx):
			// The next hop gets the ID this line logs. ferry's own
			// HTTP/1.1 server leaves the header to the handler.
			r.Header[hdr] = ids[1:2:2]
		default:
			// net/http's request is not ours to change: a copy.
			h := make(http.Header, len(r.Header)+1)
			for k, v := range r.Header {
				h[k] = v
			}
			h[hdr] = ids[1:2:2]
			r.Header = h
		}
		next.ServeHTTP(lw, r)
	})
}

// accessState is what accessLog keeps of one request.
type accessState struct {
	info reqInfo
	lw   logWriter
	ids  [2]string // the request ID header's two values (the answer's, the next hop's): no list of their own
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
	_, plain := h1.BodyError(r.Context())
	c, _ := r.Context().Value(httpConnKey{}).(*httpConn)
	if (c == nil && !plain) || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 ||
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

// accessEntry is what one access log line says.
type accessEntry struct {
	r       *http.Request
	id      string
	backend string
	start   time.Time
	status  int
	bytes   int64
	dur     time.Duration
	aborted bool
	// cause says why an aborted request's client did not get its
	// response; handlerStatus is what the handler answered when status is
	// not it (a body that never came). Both are empty otherwise.
	cause         string
	handlerStatus int
	// line is the request line as it came, for a request whose head
	// failed: r then holds only what could be read of it.
	line string
}

// logBadHead logs the access line of a request whose head failed on the
// HTTP front, as nginx logs one: its request line as it came and the
// status (408 for the header timeout, 400 for a client that closed), with
// no request ID; and counts it in the metrics.
func (s *Server) logBadHead(remote string, h *h1.BadHead) {
	s.adminStats().badHead(h.Status)
	if !s.cfg.AccessLog {
		return
	}
	r := &http.Request{Method: h.Method, RequestURI: h.RequestURI, Proto: h.Proto, Header: h.Header, Host: h.Host,
		RemoteAddr: remote, URL: &url.URL{}}
	s.logRequest(&accessEntry{r: r, start: h.Start, status: h.Status, bytes: h.BodyBytes, dur: time.Since(h.Start), line: h.RequestLine()})
}

// fields adds the entry's fields to ev, those the console format leads
// with first ([consoleFieldsOrder]).
func (e *accessEntry) fields(ev *zerolog.Event) *zerolog.Event {
	r := e.r
	path := r.RequestURI
	if e.line == "" {
		path = r.URL.RequestURI()
	}
	ev = ev.Str("method", r.Method).Str("path", path).Int("status", e.status).
		Float64("duration_ms", float64(e.dur.Microseconds())/1000).Int64("bytes", e.bytes).
		Str("req_id", e.id).Str("backend", e.backend).Str("remote", r.RemoteAddr).Str("host", r.Host)
	if ua := r.UserAgent(); ua != "" {
		ev = ev.Str("user_agent", ua)
	}
	if ref := r.Referer(); ref != "" {
		ev = ev.Str("referer", ref)
	}
	if e.cause != "" {
		ev = ev.Str("cause", e.cause)
	}
	if e.handlerStatus != 0 {
		ev = ev.Int("handler_status", e.handlerStatus)
	}
	if e.line != "" {
		ev = ev.Str("request", e.line)
	}
	return ev
}

// consoleFieldsOrder puts the fields a person reads first at the front of
// a console line.
var consoleFieldsOrder = []string{"method", "path", "status", "duration_ms"}

// NewConsoleWriter returns the writer of ferry's console log format to w:
// the time, the level and the message, then an access line's method, path,
// status and duration, then the other fields.
func NewConsoleWriter(w io.Writer, color bool) zerolog.ConsoleWriter {
	return zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !color, FieldsOrder: consoleFieldsOrder}
}

// accessOutput is where access log lines go when they are not lines of
// the process log: a file, reopened on request, or Stderr.
type accessOutput struct {
	format string   // "json", "console" or "combined"
	file   *logFile // nil: to w
	w      io.Writer
	zl     zerolog.Logger // json and console
}

// newAccessOutput returns the access log's own output for cfg, or nil
// when its lines go to the process log. keep, if not nil, is the access
// log file of the configuration in force, which a reload's goes on
// writing to if it names the same file.
func newAccessOutput(cfg *Config, keep *logFile) *accessOutput {
	format := cfg.AccessLogFormat
	if format == "" || format == "auto" {
		if cfg.AccessLogFile == "" {
			return nil
		}
		format = "json"
	}
	o := &accessOutput{format: format, w: cfg.Stderr}
	if o.w == nil {
		o.w = os.Stderr
	}
	if cfg.AccessLogFile != "" {
		o.file = keep
		if keep == nil || keep.name != cfg.AccessLogFile {
			o.file = &logFile{name: cfg.AccessLogFile}
		}
		o.w = o.file
	}
	switch format {
	case "json":
		o.zl = zerolog.New(o.w).With().Timestamp().Logger()
	case "console":
		o.zl = zerolog.New(NewConsoleWriter(o.w, false)).With().Timestamp().Logger()
	}
	return o
}

// checkAccessLog checks the access log settings of cfg.
func checkAccessLog(cfg *Config) error {
	switch cfg.AccessLogFormat {
	case "", "auto", "json", "console", "combined":
	default:
		return fmt.Errorf("bridge: access log format %q: want json, console, combined or auto", cfg.AccessLogFormat)
	}
	if h := cfg.RequestIDHeader; h != "" && !validHeaderName(h) {
		return fmt.Errorf("bridge: request ID header %q: want %s", h, HeaderName)
	}
	return nil
}

// logRequest writes the access line of e: to the process log, or to the
// access log's own output; an aborted request gets a warning in the
// process log either way.
//
// An access line in the process log is written whatever the process log's
// level (as nginx's error_log level never touches access_log): with
// level = "warn", its info lines went nowhere, and the access log with
// them. A warning for an aborted request that is not the access line
// (the access log is off, or has its own output) keeps to the level.
func (s *Server) logRequest(e *accessEntry) {
	o := s.access
	if o == nil || e.aborted {
		l := &s.log
		if o == nil && s.cfg.AccessLog && s.log.GetLevel() != zerolog.Disabled { // disabled: no logger (zerolog.Nop)
			all := s.log.Level(zerolog.TraceLevel) // the global level (zerolog.SetGlobalLevel, which ferry leaves alone) still applies
			l = &all
		}
		ev := l.Info()
		if e.aborted {
			ev = l.Warn().Bool("aborted", true)
		}
		e.fields(ev).Msg("request")
	}
	if o == nil || !s.cfg.AccessLog {
		return
	}
	if o.format == "combined" {
		o.w.Write(appendCombined(make([]byte, 0, 256), e)) // a log line that cannot be written has nowhere else to go
		return
	}
	e.fields(o.zl.Log()).Msg("request")
}

// appendCombined appends e as a line of Apache's combined log format,
//
//	%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"
//
// as Apache writes it: "-" for what is missing or empty (%b for no body
// bytes), and in the quoted fields '"' and '\' escaped with '\', and
// control and non-ASCII bytes as \xhh.
func appendCombined(b []byte, e *accessEntry) []byte {
	r := e.r
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	user := ""
	if o := cgi.Origin(r.Context()); o != nil {
		user = o["REMOTE_USER"] // authenticated by the front web server
	}
	b = appendField(b, host)
	b = append(b, " - "...)
	b = appendField(b, user)
	b = append(b, " ["...)
	b = e.start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, `] "`...)
	if e.line != "" {
		b = appendEscaped(b, e.line)
	} else {
		uri := r.RequestURI
		if uri == "" {
			uri = r.URL.RequestURI()
		}
		b = appendEscaped(b, r.Method+" "+uri+" "+r.Proto)
	}
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, ' ')
	if e.bytes > 0 {
		b = strconv.AppendInt(b, e.bytes, 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, ` "`...)
	b = appendField(b, r.Referer())
	b = append(b, `" "`...)
	b = appendField(b, r.UserAgent())
	return append(b, "\"\n"...)
}

// appendField appends v escaped, or "-" when it is empty.
func appendField(b []byte, v string) []byte {
	if v == "" {
		return append(b, '-')
	}
	return appendEscaped(b, v)
}

// appendEscaped appends v as Apache escapes logged text.
func appendEscaped(b []byte, v string) []byte {
	const hexDigits = "0123456789abcdef"
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < ' ' || c >= 0x7f:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return b
}

// ReopenLogs opens the access log file again under its name, as logrotate
// needs once it has renamed the file (ferry serve does it on SIGUSR1):
// that of the configuration in force while Run serves. Lines go on to the
// old file until the new one is open. It does nothing without an access
// log file.
func (s *Server) ReopenLogs() error {
	if r := s.run.Load(); r != nil {
		s = r.cur.Load()
	}
	if f := s.accessFile(); f != nil {
		return f.reopen()
	}
	return nil
}

// AccessLogFile returns the name of the access log file of the
// configuration in force while Run serves (of s otherwise), or "" when
// the access log has no file: the one ReopenLogs reopens.
func (s *Server) AccessLogFile() string {
	if r := s.run.Load(); r != nil {
		s = r.cur.Load()
	}
	if f := s.accessFile(); f != nil {
		return f.name
	}
	return ""
}

// accessFile returns the access log file of s, or nil.
func (s *Server) accessFile() *logFile {
	if s == nil || s.access == nil {
		return nil
	}
	return s.access.file
}

// logWriter records the status and body size of a response. Flush, Hijack
// and the rest reach the underlying writer through Unwrap
// (http.ResponseController).
type logWriter struct {
	http.ResponseWriter
	ctx     context.Context // the request's, as the front gave it
	status  int
	bytes   int64
	started time.Time // when the status was sent
	err     error     // the first write that failed
	// late: the status came after the request's context had ended (the
	// client closed the connection or aborted the request, or ferry
	// stopped it at shutdown), so the client never got it.
	late bool
}

// unanswered reports whether the client got no answer: the status came
// after the request's context ended, or none came before it did (net/http
// would answer 200 once the handler returns, to a request that is over).
func (lw *logWriter) unanswered() bool {
	return lw.late || lw.status == 0 && lw.ctx != nil && lw.ctx.Err() != nil
}

// answer records the status the handler answers with.
func (lw *logWriter) answer(code int) {
	lw.status, lw.started = code, time.Now()
	lw.late = lw.ctx != nil && lw.ctx.Err() != nil
}

func (lw *logWriter) WriteHeader(code int) {
	if lw.status == 0 && code >= 200 {
		lw.answer(code)
	}
	lw.ResponseWriter.WriteHeader(code)
}

func (lw *logWriter) Write(p []byte) (int, error) {
	if lw.status == 0 {
		lw.answer(http.StatusOK)
	}
	n, err := lw.ResponseWriter.Write(p)
	lw.bytes += int64(n)
	if err != nil && lw.err == nil {
		lw.err = err
	}
	return n, err
}

// BodyBytes returns the body bytes written so far (bodyCounter).
func (lw *logWriter) BodyBytes() int64 { return lw.bytes }

// ReadFrom hands src to the underlying writer's own ReadFrom, counting
// what it sends: http.ServeContent's io.Copy then reaches h1's and
// net/http's, which send a static file with sendfile. Without it, every
// file went through a 32 KiB buffer, a read and a write a piece.
func (lw *logWriter) ReadFrom(src io.Reader) (int64, error) {
	if lw.status == 0 {
		lw.answer(http.StatusOK)
	}
	var n int64
	var err error
	if rf, ok := lw.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{lw.ResponseWriter}, src)
	}
	lw.bytes += n
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
			c.lw.status, c.lw.started = code, time.Now()
		}
	}
	n, err := c.Conn.Write(p)
	c.lw.bytes += int64(n)
	return n, err
}
