package benchmarks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/rs/zerolog"
)

// Request is the request a target sends, the same every time.
type Request struct {
	// Method is the HTTP method. If empty, GET.
	Method string
	// Path is the request path and query for targets whose address does
	// not give one (fastcgi+unix, scgi+unix, cgi). If empty, "/".
	Path string
	// Header holds extra request header fields.
	Header http.Header
	// Body is sent with every request.
	Body []byte
	// Root is DOCUMENT_ROOT for FastCGI targets: SCRIPT_FILENAME is Root
	// joined with the path's script part, as nginx's
	// $document_root$fastcgi_script_name. If empty, the current directory.
	// For SCGI targets it is DOCUMENT_ROOT if set.
	Root string
	// Script, if set, is SCRIPT_FILENAME for FastCGI and SCGI targets,
	// whatever the path (php-fpm runs the file it names).
	Script string
}

func (r *Request) method() string {
	if r.Method == "" {
		return http.MethodGet
	}
	return r.Method
}

// errUnsupportedTarget is wrapped by newTarget's error for an address it
// cannot load.
var errUnsupportedTarget = errors.New("benchmarks: unsupported target")

// newTarget returns a target for addr, one of the addresses [RunTarget]
// takes. conns is the load's concurrency: it sizes the HTTP connection
// pool and the CGI concurrency limit, and is the default of max_conns.
func newTarget(addr string, req Request, conns int) (loadTarget, error) {
	conns = max(conns, 1)
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("benchmarks: target %q: %w", addr, err)
	}
	switch u.Scheme {
	case "http", "https":
		return newHTTPTarget(u.String(), req, conns)
	case "fastcgi", "fastcgi+unix":
		return newFastCGITarget(u, req, conns)
	case "cgi":
		script := u.Opaque
		if script == "" {
			script = u.Path
		}
		return newCGITarget(script, req, conns)
	case "scgi", "scgi+unix":
		return newSCGITarget(u, req, conns)
	}
	return nil, fmt.Errorf("%w: %q: want http://, fastcgi://, fastcgi+unix://, scgi://, scgi+unix:// or cgi:", errUnsupportedTarget, addr)
}

// httpTarget sends requests with a keep-alive net/http client.
type httpTarget struct {
	url    string
	req    Request
	client *http.Client
	tr     *http.Transport
}

func newHTTPTarget(u string, req Request, conns int) (*httpTarget, error) {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &httpTarget{url: u, req: req, tr: tr, client: &http.Client{
		Transport: tr,
		// A redirect is an answer: count its status, do not follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

func (t *httpTarget) Do(ctx context.Context) (int, error) {
	var body io.Reader
	if len(t.req.Body) > 0 {
		body = bytes.NewReader(t.req.Body)
	}
	r, err := http.NewRequestWithContext(ctx, t.req.method(), t.url, body)
	if err != nil {
		return 0, fmt.Errorf("benchmarks: %w", err)
	}
	for k, vs := range t.req.Header {
		r.Header[k] = vs
	}
	if h := t.req.Header.Get("Host"); h != "" {
		r.Host = h
	}
	resp, err := t.client.Do(r)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func (t *httpTarget) Close() error {
	t.tr.CloseIdleConnections()
	return nil
}

// handlerTarget calls an in-process gateway handler (ferry's CGI runner or
// FastCGI client) with a response writer that counts and drops the body.
type handlerTarget struct {
	h       http.Handler
	req     Request
	target  string // request URI
	closeFn func()
}

func (t *handlerTarget) Do(ctx context.Context) (int, error) {
	var body io.Reader = http.NoBody
	if len(t.req.Body) > 0 {
		body = bytes.NewReader(t.req.Body)
	}
	r, err := http.NewRequestWithContext(ctx, t.req.method(), "http://127.0.0.1"+t.target, body)
	if err != nil {
		return 0, fmt.Errorf("benchmarks: %w", err)
	}
	r.RemoteAddr = "127.0.0.1:40000"
	r.RequestURI = t.target
	r.Host = "127.0.0.1"
	for k, vs := range t.req.Header {
		r.Header[k] = vs
	}
	w := &discardWriter{header: make(http.Header)}
	t.h.ServeHTTP(w, r)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.status, nil
}

func (t *handlerTarget) Close() error {
	if t.closeFn != nil {
		t.closeFn()
	}
	return nil
}

// discardWriter is an http.ResponseWriter that keeps the status and drops
// the body.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

// Flush does nothing: there is no client to flush to.
func (w *discardWriter) Flush() {}

func requestPath(p string) string {
	if p == "" {
		return "/"
	}
	if !strings.HasPrefix(p, "/") {
		return "/" + p
	}
	return p
}

func newCGITarget(script string, req Request, conns int) (*handlerTarget, error) {
	if !filepath.IsAbs(script) {
		return nil, fmt.Errorf("benchmarks: cgi:%s: want an absolute script path", script)
	}
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("benchmarks: cgi target: %w", err)
	}
	nop := zerolog.Nop()
	h := &cgi.Handler{
		Path: script,
		// PATH only, as net/http/cgi and Apache give: LANG would make Perl
		// and Python set up their locale, which costs more than the gateway.
		InheritEnv:    []string{"PATH"},
		MaxConcurrent: conns,
		Settings:      cgi.Settings{Logger: &nop},
	}
	return &handlerTarget{h: h, req: req, target: requestPath(req.Path)}, nil
}

// appAddress is where a FastCGI or SCGI target's application is, and what
// its address says about the request.
type appAddress struct {
	network, address string
	target           string // request URI
	maxConns         int
}

// parseAppAddress reads a fastcgi://, fastcgi+unix://, scgi:// or
// scgi+unix:// address: the application's socket, ?max_conns=N (if absent,
// conns), and for TCP the request's path and query (else req.Path).
func parseAppAddress(u *url.URL, req Request, conns int) (appAddress, error) {
	q := u.Query()
	a := appAddress{maxConns: conns, target: requestPath(req.Path)}
	if s := q.Get("max_conns"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return a, fmt.Errorf("benchmarks: %s: max_conns=%q: want a positive number", u.Redacted(), s)
		}
		a.maxConns = n
		q.Del("max_conns")
	}
	if unix, ok := strings.CutSuffix(u.Scheme, "+unix"); ok {
		if u.Path == "" {
			return a, fmt.Errorf("benchmarks: %s: want %s+unix:///PATH/TO/SOCKET", u.Redacted(), unix)
		}
		a.network, a.address = "unix", u.Path
		return a, nil
	}
	if u.Host == "" {
		return a, fmt.Errorf("benchmarks: %s: want %s://HOST:PORT/PATH", u.Redacted(), u.Scheme)
	}
	a.network, a.address = "tcp", u.Host
	if u.Path != "" && u.Path != "/" || len(q) > 0 {
		a.target = requestPath(u.Path)
		if len(q) > 0 {
			a.target += "?" + q.Encode()
		}
	}
	return a, nil
}

func newFastCGITarget(u *url.URL, req Request, conns int) (*handlerTarget, error) {
	a, err := parseAppAddress(u, req, conns)
	if err != nil {
		return nil, err
	}
	nop := zerolog.Nop()
	c := &fastcgi.Client{Network: a.network, Address: a.address, MaxConns: a.maxConns, Logger: &nop}
	target := a.target
	root := req.Root
	if root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("benchmarks: fastcgi target: %w", err)
		}
		root = wd
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("benchmarks: fastcgi target: %w", err)
	}
	scriptPath, _, _ := strings.Cut(target, "?")
	s := cgi.Script{Name: scriptPath, Root: root, Filename: filepath.Join(root, filepath.FromSlash(path.Clean(scriptPath)))}
	if req.Script != "" {
		s.Filename = req.Script
	}
	h := fastcgi.NewHandler(c, cgi.ResolverFunc(func(*http.Request) (cgi.Script, error) { return s, nil }), cgi.Settings{Logger: &nop})
	return &handlerTarget{h: h, req: req, target: target, closeFn: c.CloseIdle}, nil
}
