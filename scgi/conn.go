package scgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/serving"
)

// Bounds of the lingering close: after answering a request whose input was
// not all read, the server reads and drops what the web server still
// sends, so that closing does not reset the connection under the response
// (a close with unread data sends RST on Linux, and the web server may
// lose the response).
const (
	lingerTimeout = time.Second
	maxLinger     = 1 << 20
)

// aLongTimeAgo is a deadline in the past, set to wake a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one SCGI connection: one request. Its serve goroutine owns it;
// the watcher goroutine only reads, once the body has been consumed.
type conn struct {
	srv    *Server
	rwc    net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	slot   *serving.Slot // the connection's place among MaxConns; nil for ServeConn's

	watchOnce sync.Once
	watchDone chan struct{} // closed when the watcher has returned; nil if none started
	stopping  atomic.Bool   // the response is done: a read error is no disconnect
	bodyDone  atomic.Bool   // the body has been read whole: a read now sees only the close
}

// connWatcher reads from a connection whose request has been read in
// full, to notice the web server closing it: nginx, Apache and lighttpd
// close the upstream connection when their client goes away.
type connWatcher struct{ c *conn }

func (w connWatcher) run() {
	defer close(w.c.watchDone)
	var b [1]byte
	for {
		if _, err := w.c.rwc.Read(b[:]); err != nil {
			if !w.c.stopping.Load() {
				w.c.cancel()
			}
			return
		}
		// Bytes after the body are not part of any request: dropped.
	}
}

// StartWatch starts the watcher once the body has been read whole, for a
// request its handler has been serving for two of the server's sweeps
// (serving.Watcher): a request over sooner is spared the goroutine and its
// reads. It reports whether the sweeper is done with the request.
func (c *conn) StartWatch() bool {
	if !c.bodyDone.Load() {
		return false // the handler may still read its body
	}
	c.watch()
	return true
}

// watch starts the watcher, once.
func (c *conn) watch() {
	c.watchOnce.Do(func() {
		c.watchDone = make(chan struct{})
		go connWatcher{c}.run()
	})
}

// stopWatch stops the watcher, if one runs, and waits for it.
func (c *conn) stopWatch() {
	c.stopping.Store(true)
	c.watchOnce.Do(func() {}) // no watcher may start from now on
	if c.watchDone != nil {
		_ = c.rwc.SetReadDeadline(aLongTimeAgo) // an error means the conn is closed: the read returns anyway
		<-c.watchDone
	}
}

// Serve reads the request, runs the handler and closes the connection.
func (c *conn) Serve() {
	defer c.cancel()
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(c.rwc)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()
	if d := c.srv.readHeaderTimeout(); d > 0 {
		_ = c.rwc.SetReadDeadline(time.Now().Add(d)) // a closed conn fails the read below
	}
	h, err := ReadHeader(br, c.srv.limits())
	if err != nil {
		c.refuse(err)
		return
	}
	_ = c.rwc.SetReadDeadline(time.Time{}) // as above
	c.slot.SetWaiting(false)               // a request: the connection keeps its place
	noBodyMeansUnset(h.Vars)
	req, err := cgi.RequestFromEnv(c.ctx, h.Vars)
	if err != nil {
		c.refuse(fmt.Errorf("scgi: %w", err))
		return
	}
	if h.ContentLength > c.srv.maxRequestBody() {
		c.refuse(fmt.Errorf("%w: %d bytes, over %d", ErrContentTooLarge, h.ContentLength, c.srv.maxRequestBody()))
		return
	}
	b := &body{c: c, br: br, n: h.ContentLength}
	req.ContentLength = h.ContentLength
	if h.ContentLength == 0 {
		req.Body = http.NoBody
		c.bodyDone.Store(true)
	} else {
		req.Body = b
	}
	rw := cgi.NewResponseWriter(c.rwc, req)
	c.srv.sweep.Begin(c)
	p, aborted := rw.Run(c.srv.handler(), req)
	c.srv.sweep.End(c)
	if p != nil && p != http.ErrAbortHandler {
		c.srv.log().Error().Interface("panic", p).Str("remote", req.RemoteAddr).Str("path", req.URL.Path).Msg("scgi: handler panic")
	}
	if !aborted {
		_ = rw.Close() // a write error: the web server is gone, and closing is all that is left
	}
	c.stopWatch()
	unread := b.close()
	if aborted {
		c.abort()
		return
	}
	c.close(unread)
}

// noBodyMeansUnset removes CONTENT_LENGTH "0" from the variables of a
// request whose method carries no content. SCGI must send CONTENT_LENGTH
// even then (protocol.txt § 3), where CGI leaves it unset (RFC 3875
// § 4.1.2): a GET through SCGI then looks to a script as it does through
// CGI or FastCGI. For POST, PUT and PATCH, an empty body is a body, sent
// with "Content-Length: 0" (RFC 9110 § 8.6), and "0" stays.
func noBodyMeansUnset(vars map[string]string) {
	if vars["CONTENT_LENGTH"] != "0" {
		return
	}
	switch vars["REQUEST_METHOD"] {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return
	}
	delete(vars, "CONTENT_LENGTH")
}

// CloseIfIdle does nothing: a connection carries its one request from the
// start, and Shutdown waits for it (its header is bounded by
// ReadHeaderTimeout).
func (c *conn) CloseIfIdle() {}

// Close closes the connection at once and ends its request's context.
func (c *conn) Close() {
	c.rwc.Close()
	c.cancel()
}

// refuse answers a request that cannot be served, logs why, and closes.
func (c *conn) refuse(err error) {
	if errors.Is(err, io.EOF) {
		c.rwc.Close() // closed before a request: a health check, or a web server giving up
		return
	}
	remote := c.rwc.RemoteAddr().String()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.srv.log().Warn().Err(err).Str("remote", remote).Msg("scgi: no complete header block in time; closing")
		c.rwc.Close()
		return
	}
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, ErrHeaderTooLarge), errors.Is(err, ErrTooManyHeaders):
		status = http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, ErrContentTooLarge):
		status = http.StatusRequestEntityTooLarge
	}
	c.srv.log().Warn().Err(err).Str("remote", remote).Int("status", status).Msg("scgi: bad request")
	text := http.StatusText(status)
	resp := fmt.Sprintf("Status: %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%d %s\n", status, text, status, text)
	_ = c.rwc.SetWriteDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.WriteString(c.rwc, resp) // best effort: the connection closes next either way
	c.close(true)
}

// close closes the connection; if unread, after a lingering close.
func (c *conn) close(unread bool) {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok && unread {
		if cw.CloseWrite() == nil {
			_ = c.rwc.SetReadDeadline(time.Now().Add(lingerTimeout)) // a failure ends the drain below at once
			_, _ = io.CopyN(io.Discard, c.rwc, maxLinger)            // whatever happens, the connection closes next
		}
	}
	c.rwc.Close()
}

// abort ends a response that must not look complete. SCGI has no end
// marker but the close, so on TCP the connection is reset (SO_LINGER 0):
// nginx then logs "upstream prematurely closed" or a reset and does not
// cache or pass the response as whole.
func (c *conn) abort() {
	c.srv.log().Warn().Str("remote", c.rwc.RemoteAddr().String()).Msg("scgi: response aborted; resetting the connection")
	if tc, ok := c.rwc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // if it fails, a plain close is what remains
	}
	c.rwc.Close()
}

// errBodyClosed is returned by reads of a request body after its handler
// returned.
var errBodyClosed = errors.New("scgi: read of request body after the handler returned")

// body is a request body: exactly CONTENT_LENGTH bytes read from the
// connection as the handler asks.
type body struct {
	mu  sync.Mutex // guards the fields below: handlers may read from several goroutines
	c   *conn
	br  *bufio.Reader // nil once closed
	n   int64         // bytes left
	err error

	reading atomic.Bool // a Read waits on the connection
	closing atomic.Bool // the handler closed the body
}

// Read reads the body. A body shorter than CONTENT_LENGTH fails with an
// error wrapping io.ErrUnexpectedEOF.
func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if b.br == nil {
		return 0, errBodyClosed
	}
	if b.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	b.reading.Store(true)
	if b.closing.Load() {
		b.reading.Store(false)
		return 0, errBodyClosedByHandler
	}
	n, err := b.br.Read(p)
	b.reading.Store(false)
	b.n -= int64(n)
	if b.n == 0 {
		b.c.bodyDone.Store(true) // the sweeper may start the watch now
		return n, nil
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		b.err = fmt.Errorf("scgi: request body: %d bytes missing: %w", b.n, err)
		return n, b.err
	}
	return n, nil
}

// errBodyClosedByHandler is returned by reads of a request body after the
// handler closed it.
var errBodyClosedByHandler = errors.New("scgi: read of request body after Close")

// Close ends the handler's reading: later reads fail, and a read waiting
// for the web server returns at once, so that a handler giving up on a
// body that does not come (a CGI script killed before the web server sent
// all of CONTENT_LENGTH) is not held by it. What is left of the body is
// read or dropped by the server once the handler has returned.
func (b *body) Close() error {
	b.closing.Store(true)
	if b.reading.Load() {
		_ = b.c.rwc.SetReadDeadline(aLongTimeAgo) // an error means the conn is closed: the read returns anyway
	}
	return nil
}

// close ends the body and reports whether some of it was not read.
func (b *body) close() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.br = nil
	return b.n > 0 && (b.err == nil || b.closing.Load())
}
