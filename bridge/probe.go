package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/rs/zerolog"
)

// DefaultProbeTimeout bounds a probe whose Timeout is zero.
const DefaultProbeTimeout = 10 * time.Second

// MaxProbeBody is how much of a probed response's body [ProbeResult] keeps.
const MaxProbeBody = 1 << 20

// ProbeRequest is the one request [Probe] sends to a backend.
type ProbeRequest struct {
	// Backend is where the request goes, in ferry's address spelling:
	// fastcgi://, fastcgi+unix://, scgi://, scgi+unix://, cgi:/path (a
	// script or a directory) or http://; fastcgi+exec:, wsgi:, psgi: and
	// cgi:DIR?persist= are not, as their workers run under ferry serve
	// only.
	Backend Address
	// Method is the request method. If empty, GET, or POST with a Body.
	Method string
	// Path is the request's path and query, such as "/ping?full". If
	// empty, "/".
	Path string
	// ScriptName is the URL prefix the application is mounted at:
	// SCRIPT_NAME, the rest of the path being PATH_INFO; "/" makes
	// SCRIPT_NAME empty. If empty, for FastCGI the whole path, with
	// SCRIPT_FILENAME the same unless Params give one, as users of
	// cgi-fcgi set them for php-fpm's ping.path and pm.status_path; for
	// the others none: PATH_INFO is the whole path (the WSGI convention).
	ScriptName string
	// Params are meta-variables, "NAME=value": an HTTP_* one is sent as
	// its header (HTTP_X_FOO as X-Foo, HTTP_HOST as the Host), as is
	// CONTENT_TYPE; SCRIPT_FILENAME, DOCUMENT_ROOT and PATH_TRANSLATED
	// are given to the application as they are; the others (REMOTE_ADDR,
	// HTTPS, SERVER_NAME, ...) as a front web server's, which ferry passes
	// on. Those the request itself makes (REQUEST_METHOD, SCRIPT_NAME,
	// QUERY_STRING, ...) are refused: Method, ScriptName and Path set them.
	Params []string
	// Body is the request body, if any.
	Body []byte
	// Timeout bounds the whole probe. If zero, DefaultProbeTimeout.
	Timeout time.Duration
	// Logger receives what serving the request logs: errors, and the
	// application's stderr. If nil, nothing is logged.
	Logger *zerolog.Logger
	// Version is reported in SERVER_SOFTWARE as "ferry/VERSION".
	Version string
}

// ProbeResult is what a backend answered to [Probe], and when.
type ProbeResult struct {
	// Status, Header and Body are the response as ferry passes it on
	// (Body: the first MaxProbeBody bytes; BodySize counts them all).
	Status   int
	Header   http.Header
	Body     []byte
	BodySize int64
	// Connected reports whether a connection to the backend was made;
	// Connect is how long it took (zero for a CGI script).
	Connected bool
	Connect   time.Duration
	// FirstByte is the time from the start to the response's header; Total
	// to its end.
	FirstByte, Total time.Duration
	// Values is a FastCGI application's answer to FCGI_GET_VALUES
	// (FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS), asked on a
	// connection of its own after the request; ValuesErr says why there
	// is none.
	Values    map[string]string
	ValuesErr error
	// TimedOut reports that there was no answer within the timeout;
	// Status is then 504.
	TimedOut bool
}

// ErrUnreachable is wrapped by the error [Probe] returns when no
// connection to the backend could be made.
var ErrUnreachable = errors.New("bridge: backend unreachable")

// madeVars are the meta-variables the request itself makes: Probe takes
// them from Method, Path, ScriptName and Body, never from Params.
var madeVars = []string{"GATEWAY_INTERFACE", "SERVER_SOFTWARE", "REQUEST_METHOD", "QUERY_STRING", "REQUEST_URI",
	"SCRIPT_NAME", "PATH_INFO", "CONTENT_LENGTH"}

// scriptVars are meta-variables the application gets as Params give them.
var scriptVars = []string{"SCRIPT_FILENAME", "DOCUMENT_ROOT", "PATH_TRANSLATED"}

// Probe sends one request to a backend through the handler a mount of it
// would have (the backend table's), and records the answer and its
// timings. The error is for a request that could not be made (bad
// Params, a backend that cannot be mounted) or, wrapping ErrUnreachable,
// a backend that could not be reached; a status the backend (or ferry,
// for a broken exchange) answered with is in the result.
func Probe(ctx context.Context, p ProbeRequest) (*ProbeResult, error) {
	a := p.Backend
	switch {
	case a.Scheme == "fastcgi+exec":
		return nil, fmt.Errorf("bridge: probe %s: fastcgi+exec: workers run under ferry serve; probe their socket or an application that runs", a)
	case a.Scheme == "wsgi", a.Scheme == "psgi":
		return nil, fmt.Errorf("bridge: probe %s: %s: workers run under ferry serve; probe the ferry that serves it", a, a.Scheme)
	case a.Query.Has("persist"):
		return nil, fmt.Errorf("bridge: probe %s: persist: workers run under ferry serve; probe the ferry that serves it, or the directory without persist", a)
	}
	path := p.Path
	if path == "" {
		path = "/"
	}
	u, err := url.ParseRequestURI(path)
	if err != nil || !strings.HasPrefix(u.Path, "/") {
		return nil, fmt.Errorf("bridge: probe: path %q: want /PATH[?QUERY]", path)
	}
	prefix := p.ScriptName
	switch {
	case a.Protocol() == "http":
		prefix = "/"
	case prefix == "" && a.Protocol() == "fastcgi":
		prefix = u.Path
	case prefix == "":
		prefix = "/"
	case !strings.HasPrefix(prefix, "/"):
		return nil, fmt.Errorf("bridge: probe: script name %q: want /PREFIX", prefix)
	}
	if a.Protocol() == "cgi" && !strings.HasSuffix(prefix, "/") {
		if fi, err := os.Stat(a.Path); err == nil && fi.IsDir() {
			prefix += "/" // a cgi-bin's prefix ends in /
		}
	}
	if a.Protocol() == "fastcgi" && !a.Query.Has("max_conns") {
		// One request: one kept connection, and no warning that the
		// application does not say FCGI_MAX_CONNS.
		a.Query = cloneQuery(a.Query)
		a.Query.Set("max_conns", "1")
	}
	header, origin, env, host, err := probeParams(a, p.Params)
	if err != nil {
		return nil, err
	}
	if a.Protocol() == "fastcgi" && p.ScriptName == "" && !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "SCRIPT_FILENAME=") }) {
		env = append(env, "SCRIPT_FILENAME="+u.Path) // php-fpm refuses a request without one, and its ping answers before looking
	}

	log := zerolog.Nop()
	if p.Logger != nil {
		log = *p.Logger
	}
	cfg := Config{Settings: DefaultSettings(), Mounts: []Mount{{Prefix: prefix, Backend: a}}, Logger: &log, Version: p.Version}
	cfg.Settings.Env = env
	s, err := New(cfg)
	if err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // not "mount PREFIX=...": there is no mount to name
		}
		return nil, fmt.Errorf("bridge: probe %s: %w", p.Backend, err)
	}
	defer s.closeIdle()
	if s.rt.match(u.Path) == nil {
		return nil, fmt.Errorf("bridge: probe: path %s is not under the script name %s", u.Path, prefix)
	}

	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &connTrace{}
	ctx = httptrace.WithClientTrace(ctx, tr.clientTrace())
	if origin != nil {
		ctx = cgi.WithOrigin(ctx, origin)
	}
	method := p.Method
	if method == "" {
		method = http.MethodGet
		if p.Body != nil {
			method = http.MethodPost
		}
	}
	r, err := http.NewRequestWithContext(ctx, method, "http://localhost"+path, bytes.NewReader(p.Body))
	if err != nil {
		return nil, fmt.Errorf("bridge: probe: %w", err)
	}
	if p.Body == nil {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	r.RequestURI, r.RemoteAddr = path, "127.0.0.1:0"
	if a.Protocol() == "http" {
		r.Host = a.Host // as a client of it would say
	}
	if host != "" {
		r.Host = host
	}
	for k, v := range header {
		r.Header[k] = v
	}

	rec := &probeRecorder{start: time.Now(), header: http.Header{}}
	s.Handler().ServeHTTP(rec, r)
	res := &ProbeResult{Status: rec.status, Header: rec.header, Body: rec.body.Bytes(), BodySize: rec.size,
		FirstByte: rec.firstByte, Total: time.Since(rec.start)}
	switch {
	case res.Status == 0 && ctx.Err() != nil:
		// The handler saw its client (the probe) give up, and answered
		// nothing: what a gateway says for it.
		res.Status, res.TimedOut = http.StatusGatewayTimeout, true
	case res.Status == 0:
		res.Status = http.StatusOK
	}
	s.closeIdle() // the application may have one worker, which GET_VALUES needs next
	res.Connected, res.Connect = tr.result()
	if err := tr.failure(); err != nil && !res.Connected {
		return res, fmt.Errorf("%w: %s: %w", ErrUnreachable, p.Backend, err)
	}
	if a.Protocol() == "fastcgi" {
		addr := a.Host
		if a.Network() == "unix" {
			addr = a.Path
		}
		wait := min(timeout, fastcgi.DefaultDialTimeout) // bounds the dial and the answer
		c := &fastcgi.Client{Network: a.Network(), Address: addr, DialTimeout: wait}
		res.Values, res.ValuesErr = c.GetValues(context.Background(), "FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS")
	}
	return res, nil
}

// cloneQuery returns a copy of q that can be changed.
func cloneQuery(q url.Values) url.Values {
	c := make(url.Values, len(q)+1)
	for k, v := range q {
		c[k] = slices.Clone(v)
	}
	return c
}

// probeParams sorts a probe's "NAME=value" params into request headers
// (and the Host), a front web server's meta-variables (origin), and the
// variables given to the application as they are (env).
func probeParams(a Address, params []string) (header http.Header, origin map[string]string, env []string, host string, err error) {
	header = http.Header{}
	for _, kv := range params {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.ContainsAny(kv, "\x00\r\n") {
			return nil, nil, nil, "", fmt.Errorf("bridge: probe: param %q: want NAME=value", kv)
		}
		switch {
		case name == "HTTP_HOST":
			host = value
		case strings.HasPrefix(name, "HTTP_") && len(name) > 5:
			header.Add(strings.ReplaceAll(name[5:], "_", "-"), value)
		case name == "CONTENT_TYPE":
			header.Set("Content-Type", value)
		case slices.Contains(madeVars, name):
			return nil, nil, nil, "", fmt.Errorf("bridge: probe: param %s: the request makes it; set it with --method, --path, --script-name or --data", name)
		case a.Protocol() == "http" && !slices.Contains([]string{"REMOTE_ADDR", "HTTPS", "REQUEST_SCHEME", "SERVER_PORT"}, name):
			return nil, nil, nil, "", fmt.Errorf("bridge: probe: param %s: an http:// backend gets headers (HTTP_NAME=value) and X-Forwarded-* from REMOTE_ADDR, HTTPS, SERVER_PORT", name)
		default:
			if origin == nil {
				origin = map[string]string{}
			}
			origin[name] = value // cgi.FilenameDir reads SCRIPT_FILENAME here
			if slices.Contains(scriptVars, name) && a.Protocol() != "cgi" {
				env = append(env, kv)
			}
		}
	}
	return header, origin, env, host, nil
}

// closeIdle closes the connections the server's FastCGI clients keep
// (its HTTP backends' transports close theirs when idle for 90 s, and
// SCGI keeps none).
func (s *Server) closeIdle() {
	for _, rt := range s.rt.routes {
		var f *cgi.Forwarder
		switch h := rt.handler.(type) {
		case *cgi.Forwarder:
			f = h
		case *phpSite:
			f = h.app
		}
		if f == nil {
			continue
		}
		if c, ok := f.Transport.(*fastcgi.Client); ok {
			c.CloseIdle()
		}
	}
}

// connTrace records the connections a request made (httptrace, which
// net.Dialer reports to, under the FastCGI and SCGI clients too).
type connTrace struct {
	mu      sync.Mutex
	start   time.Time
	connect time.Duration
	ok      bool
	err     error
}

func (c *connTrace) clientTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		DNSDone: func(i httptrace.DNSDoneInfo) {
			if i.Err != nil {
				c.mu.Lock()
				c.err = i.Err
				c.mu.Unlock()
			}
		},
		ConnectStart: func(string, string) {
			c.mu.Lock()
			if c.start.IsZero() {
				c.start = time.Now()
			}
			c.mu.Unlock()
		},
		ConnectDone: func(_, _ string, err error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if err != nil {
				c.err = err
				return
			}
			if !c.ok {
				c.ok, c.connect = true, time.Since(c.start)
			}
		},
	}
}

// result reports whether a connection was made, and how long it took.
func (c *connTrace) result() (bool, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, c.connect
}

// failure returns the last connection error.
func (c *connTrace) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// probeRecorder is the response writer of a probe: it keeps the status,
// the header, the start of the body, and when the response began.
type probeRecorder struct {
	start     time.Time
	header    http.Header
	status    int
	firstByte time.Duration
	body      bytes.Buffer
	size      int64
}

func (w *probeRecorder) Header() http.Header { return w.header }

func (w *probeRecorder) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return
	}
	w.status, w.firstByte = code, time.Since(w.start)
	w.header = w.header.Clone() // later changes are not sent
}

func (w *probeRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.size += int64(len(p))
	if room := MaxProbeBody - w.body.Len(); room > 0 {
		w.body.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Flush lets handlers that stream flush; there is nothing to push.
func (w *probeRecorder) Flush() {}
