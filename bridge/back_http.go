package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/defaults"
	"github.com/rs/zerolog"
)

// Timeouts of an http:// back, as nginx's proxy_connect_timeout and
// proxy_read_timeout (the read_timeout option's default): the wait for the
// response header, and for each read of its body.
const (
	proxyDialTimeout = 3 * time.Second
	proxyReadTimeout = 60 * time.Second
)

// httpBackend reaches an HTTP application as a reverse proxy.
func httpBackend() Backend {
	return Backend{
		Schemes: []string{"http"},
		Summary: "an HTTP application, as a reverse proxy with X-Forwarded-For/-Proto/-Host/-Port/-Prefix",
		Options: []Option{
			{Name: "max_conns", Type: PositiveInt, Default: "no limit", Doc: "connections to the application at once"},
			readTimeoutOption(),
		},
		Group: true,
		build: func(b *builder, m Mount, o options) (http.Handler, error) {
			hb := newHTTPBack(m, *b.logger("http-proxy"), o.positive("max_conns"), o.duration("read_timeout"))
			if !m.isGroup() {
				return hb, nil
			}
			g, err := b.newGroup(m, o, func(a Address, o options) (*member, error) {
				n := o.positive("max_conns")
				tr := newProxyTransport(n, o.duration("read_timeout"))
				tr.DialContext = dialHeadConns(tr.DialContext)
				return &member{rt: tr, host: a.Host, limit: int64(n)}, nil
			})
			if err != nil {
				return nil, err
			}
			hb.proxy.Transport = httpGroup{g}
			hb.backend = g
			return hb, nil
		},
	}
}

// httpBack is a reverse proxy to an HTTP application, so that any HTTP app
// can be reached through every front (an app attached to Apache through
// FastCGI or SCGI, say).
//
// As nginx's proxy_pass does, the request path goes unchanged when the
// address has no path, and with the mount prefix replaced by the address's
// path when it has one (http://127.0.0.1:5000/base/). The application
// learns what the client's connection was from X-Forwarded-For,
// X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Port and
// X-Forwarded-Prefix (the mount prefix), taken from what the front web
// server said (REMOTE_ADDR, HTTPS, SERVER_PORT) when ferry sits behind one.
type httpBack struct {
	prefix      string
	target      *url.URL
	proxy       *httputil.ReverseProxy
	log         zerolog.Logger
	readTimeout time.Duration // the longest wait for each read of a response body
	// backend names the application in log lines: target, or a group's
	// backends (its errors name the one that failed).
	backend fmt.Stringer
}

// newHTTPBack returns the reverse proxy of mount m, which allows maxConns
// connections (0: no limit) and waits readTimeout (0: proxyReadTimeout)
// for the response header and for each read of its body.
func newHTTPBack(m Mount, log zerolog.Logger, maxConns int, readTimeout time.Duration) *httpBack {
	b := &httpBack{prefix: m.Prefix, target: &url.URL{Scheme: "http", Host: m.Backend.Host, Path: m.Backend.Path}, log: log,
		readTimeout: defaults.Or(readTimeout, proxyReadTimeout)}
	b.backend = b.target
	b.proxy = &httputil.ReverseProxy{
		Rewrite:       b.rewrite,
		Transport:     newProxyTransport(maxConns, readTimeout),
		FlushInterval: -1, // stream: every write of the application goes on at once
		ErrorHandler:  b.fail,
		BufferPool:    proxyBuffers{},
		// ModifyResponse watches the body: a read error, a read that
		// waits too long (see ServeHTTP).
		ModifyResponse: b.watchBody,
		// Every failure is logged by fail or ServeHTTP, with the request's
		// fields; ReverseProxy's own lines would go to the standard logger,
		// one of them a "suppressing panic ... in test" for every cut body.
		ErrorLog: stdlog.New(io.Discard, "", 0),
	}
	return b
}

// newProxyTransport returns the transport of an HTTP backend that allows
// maxConns connections (0: no limit) and waits readTimeout (0:
// proxyReadTimeout) for a response header.
func newProxyTransport(maxConns int, readTimeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: proxyDialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		MaxConnsPerHost:       maxConns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: defaults.Or(readTimeout, proxyReadTimeout),
		// The bound of every application's header block (README: Limits),
		// not net/http's 10 MiB.
		MaxResponseHeaderBytes: cgi.DefaultMaxHeaderBytes,
		DisableCompression:     true, // pass the client's Accept-Encoding and the answer as they are
	}
}

// proxyBuffers lends the 32 KiB buffers response bodies are copied
// through, instead of one new buffer per request.
type proxyBuffers struct{}

var proxyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (proxyBuffers) Get() []byte  { return *proxyBufPool.Get().(*[]byte) }
func (proxyBuffers) Put(b []byte) { proxyBufPool.Put(&b) }

// ServeHTTP proxies r. A request body goes on while the answer comes
// back, as nginx sends it: an application may answer before it has read
// its body, and the front must not then read the rest of the body for
// itself (see cgi.Forwarder). ReverseProxy closes the body before it
// returns, as net/http needs in full duplex.
//
// A response body that breaks off (the application closed or reset its
// connection, a chunked body without its last chunk) or stops coming for
// the read timeout, as nginx's proxy_read_timeout, is logged, and the
// client's connection cut (http.ErrAbortHandler), as cgi.Forwarder does:
// ReverseProxy aborts only under net/http's server (it looks for
// http.ServerContextKey), and ferry's HTTP/1 front, FastCGI and SCGI fronts
// are not that server, so it would end a chunked response cleanly and the
// client would take the part for the whole.
func (b *httpBack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		_ = http.NewResponseController(w).EnableFullDuplex() // HTTP/2 is full duplex already
	}
	wb := &watchedBody{}
	defer func() {
		// Also when ReverseProxy panicked itself (under net/http's server).
		if wb.err != nil && r.Context().Err() == nil {
			cgi.LoggerFrom(r.Context(), &b.log).Warn().Err(wb.err).Stringer("backend", b.backend).Str("path", r.URL.Path).Msg("http: response cut short")
		}
	}()
	b.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), watchedBodyKey{}, wb)))
	if wb.err != nil && r.Context().Err() == nil {
		panic(http.ErrAbortHandler) // the client must not take it for whole
	}
}

// watchedBody is an application's response body that keeps the error a
// read of it ended with, but for its end and the client going away, and
// closes it when a read waits longer than timeout: http.Transport bounds
// the wait for the header only.
type watchedBody struct {
	io.ReadCloser
	err     error
	timeout time.Duration
	timer   *time.Timer // runs during a read: made at the first
	expired atomic.Bool // the timer closed the body
	closing sync.Once   // the body is closed once, by the timer or Close
	member  string      // in a group, the backend's HOST:PORT, which err names
}

type watchedBodyKey struct{}

func (wb *watchedBody) Read(p []byte) (int, error) {
	// Only the wait for the application counts, not the time the proxy
	// spends writing to a slow client between two reads.
	if wb.timer == nil {
		wb.timer = time.AfterFunc(wb.timeout, wb.expire)
	} else {
		wb.timer.Reset(wb.timeout)
	}
	n, err := wb.ReadCloser.Read(p)
	wb.timer.Stop()
	if err != nil && err != io.EOF {
		if wb.expired.Load() {
			err = fmt.Errorf("http: no more of the answer within %v: %w", wb.timeout, context.DeadlineExceeded)
		}
		if !errors.Is(err, context.Canceled) {
			wb.err = err
			if wb.member != "" {
				wb.err = fmt.Errorf("http: http://%s: %w", wb.member, err)
			}
		}
	}
	return n, err
}

// expire ends a read that waited for the timeout: closing the body wakes it.
func (wb *watchedBody) expire() {
	wb.expired.Store(true)
	wb.close()
}

func (wb *watchedBody) Close() error {
	if wb.timer != nil {
		wb.timer.Stop()
	}
	wb.close()
	return nil
}

// close closes the body once, whether the timer or the proxy comes first.
func (wb *watchedBody) close() { wb.closing.Do(func() { wb.ReadCloser.Close() }) }

// errInvalidStatus is the failure of an application that answered a
// status outside 100-599, which RFC 9110 § 15 calls invalid: the client
// gets 502, as for a CGI, FastCGI or SCGI answer with such a Status.
var errInvalidStatus = errors.New("http: the application answered an invalid status (want 100 to 599)")

// watchBody refuses an answer with an invalid status (errInvalidStatus;
// net/http's Transport takes any three digits, 000 and 999 too), a
// failure of its backend in a group, and puts the request's watchedBody
// around the response body.
func (b *httpBack) watchBody(res *http.Response) error {
	_, group := b.proxy.Transport.(httpGroup)
	if res.StatusCode < 100 || res.StatusCode > 599 {
		err := fmt.Errorf("%w: %q", errInvalidStatus, res.Status)
		if group {
			err = fmt.Errorf("http: http://%s: %w", res.Request.URL.Host, err) // the log line names the group
			if gb, ok := res.Body.(*httpGroupBody); ok {
				gb.failed(res.Request.Context(), err)
			}
		}
		return err
	}
	if wb, ok := res.Request.Context().Value(watchedBodyKey{}).(*watchedBody); ok && res.StatusCode != http.StatusSwitchingProtocols {
		wb.ReadCloser, wb.timeout = res.Body, b.readTimeout
		if group {
			wb.member = res.Request.URL.Host // the log line names the group
		}
		res.Body = wb
	}
	return nil
}

// rewrite builds the outgoing request.
func (b *httpBack) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	out.URL.Scheme, out.URL.Host = b.target.Scheme, b.target.Host
	if b.target.Path != "" {
		rest := strings.TrimPrefix(in.URL.Path, strings.TrimSuffix(b.prefix, "/"))
		out.URL.Path = strings.TrimSuffix(b.target.Path, "/") + "/" + strings.TrimPrefix(rest, "/")
		out.URL.RawPath = ""
	}
	out.Host = in.Host // the application builds its URLs for the client's host

	// What the client's connection was: from the front web server's
	// meta-variables when there is one, else from this connection.
	remote, proto, port := in.RemoteAddr, "http", ""
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	if in.TLS != nil {
		proto = "https"
	}
	if o := cgi.Origin(in.Context()); o != nil {
		if v := o["REMOTE_ADDR"]; v != "" {
			remote = v
		}
		if v := o["HTTPS"]; strings.EqualFold(v, "on") || v == "1" {
			proto = "https"
		} else if v := o["REQUEST_SCHEME"]; v != "" {
			proto = v
		}
		port = o["SERVER_PORT"]
	}
	if port == "" {
		if la, ok := in.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			_, port, _ = net.SplitHostPort(la.String())
		}
	}
	prior := in.Header.Values("X-Forwarded-For")
	out.Header.Del("X-Forwarded-For")
	out.Header.Set("X-Forwarded-For", strings.Join(append(prior, remote), ", "))
	out.Header.Set("X-Forwarded-Proto", proto)
	out.Header.Set("X-Forwarded-Host", in.Host)
	if port != "" {
		out.Header.Set("X-Forwarded-Port", port)
	}
	out.Header.Set("X-Forwarded-Prefix", strings.TrimSuffix(b.prefix, "/"))
	out.Header.Del("Forwarded")
}

// fail answers for a failed exchange with the application: 504 when it did
// not answer in time, else 502, with a log line naming it.
func (b *httpBack) fail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away: nobody to answer
	}
	status := cgi.StatusOf(err) // 504 for a timeout, 503 for a group's full queue, else 502
	log := cgi.LoggerFrom(r.Context(), &b.log)
	log.Error().Err(err).Stringer("backend", b.backend).Int("status", status).Msg("http: request to the application failed")
	cgi.ObserverFrom(r.Context()).Failed(status, err)
	http.Error(w, http.StatusText(status), status)
}
