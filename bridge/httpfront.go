package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ferrygw/ferry/internal/h1"
	"github.com/ferrygw/ferry/internal/serving"
	"github.com/rs/zerolog"
)

// Defaults for zero fields of [FrontLimits].
const (
	DefaultHeaderTimeout = DefaultReadHeaderTimeout
	DefaultBodyTimeout   = 60 * time.Second
	DefaultSendTimeout   = 60 * time.Second
	// DefaultHTTPMaxConns bounds an HTTP front's connections (at most half
	// the open-file limit); FastCGI and SCGI fronts keep their packages'
	// defaults (1024).
	DefaultHTTPMaxConns = 10000
)

// FrontLimits are the bounds every front puts on the clients or web
// servers talking to it: how long they may take, and how many
// connections they may hold.
type FrontLimits struct {
	// HeaderTimeout bounds the wait for a request head once a connection
	// has been accepted or has finished its previous request: HTTP request
	// line and headers (closed with no answer, as net/http and nginx do;
	// logged 408 once a byte of the head came, as nginx logs it), and before
	// them an https:// front's TLS handshake (closed), a FastCGI
	// request's PARAMS (answered 408), an SCGI header block (closed). If
	// zero, DefaultHeaderTimeout; if negative, none.
	HeaderTimeout time.Duration
	// BodyTimeout bounds each wait for more of an HTTP request body, as
	// nginx's client_body_timeout: a client that stops sending its body
	// for this long has its connection closed, and the access log says
	// 408. If zero, DefaultBodyTimeout; if negative, none.
	BodyTimeout time.Duration
	// SendTimeout bounds each wait for an HTTP client to take more of a
	// response, as nginx's send_timeout: one that stops reading for this
	// long has its connection closed. If zero, DefaultSendTimeout; if
	// negative, none.
	SendTimeout time.Duration
	// KeepaliveTimeout bounds how long an HTTP client's connection may
	// stay idle between two requests, as nginx's keepalive_timeout; past
	// it the connection is closed. If zero, DefaultIdleTimeout; if
	// negative, none (until the client or max_conns closes it).
	KeepaliveTimeout time.Duration
	// MaxConns bounds the connections open on each front. A connection
	// waiting for a request (its head not all come, or idle between
	// requests) or, on HTTP, for more of a request body, gives its place
	// to a new one when all are taken, the one waiting longest first; when
	// every connection is serving a request, new ones wait in the listen
	// backlog. If zero, DefaultHTTPMaxConns for HTTP fronts and 1024 for
	// FastCGI and SCGI ones, each at most half the open-file limit.
	MaxConns int
}

// keepalive returns the http.Server IdleTimeout for a KeepaliveTimeout
// of d: net/http takes zero for "the read timeout", and ferry sets none,
// so "none" is a bound no connection reaches.
func keepalive(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultIdleTimeout
	case d < 0:
		return math.MaxInt64
	}
	return d
}

func timeoutOr(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// httpFront is the server of an HTTP front. A plain http:// front is
// served by ferry's own HTTP/1.1 server ([h1.Server]): the connection
// bound, the timeouts and the framing refusals are its own. An https://
// front is served by net/http's http.Server (HTTP/1.1 and HTTP/2 over
// TLS), with what the front wraps around its listener and connections:
// the connection bound, the body and send timeouts, and the framing
// checks ([http1Framer]) on HTTP/1.1.
type httpFront struct {
	srv                      *http.Server
	plain                    *h1.Server
	handler                  http.Handler
	log                      zerolog.Logger
	bodyTimeout, sendTimeout time.Duration
	maxConns                 int
	// access, if not nil, logs the access line of a request whose head
	// failed on the plain front, and counts it.
	access func(remote string, h *h1.BadHead)
}

// newHTTPFront configures the http.Server serving h on the HTTP fronts.
func newHTTPFront(h http.Handler, lim FrontLimits, base func(net.Listener) context.Context, l zerolog.Logger) *httpFront {
	f := &httpFront{
		handler:     h,
		log:         l.With().Str("component", "http").Logger(),
		bodyTimeout: timeoutOr(lim.BodyTimeout, DefaultBodyTimeout),
		sendTimeout: timeoutOr(lim.SendTimeout, DefaultSendTimeout),
		maxConns:    lim.MaxConns,
	}
	if f.maxConns <= 0 {
		f.maxConns = serving.FDBound(DefaultHTTPMaxConns)
	}
	f.plain = &h1.Server{
		Handler:           h,
		ReadHeaderTimeout: timeoutOr(lim.HeaderTimeout, DefaultHeaderTimeout),
		IdleTimeout:       timeoutOr(lim.KeepaliveTimeout, DefaultIdleTimeout),
		BodyTimeout:       f.bodyTimeout,
		SendTimeout:       f.sendTimeout,
		MaxConns:          f.maxConns,
		BaseContext:       base,
		Logger:            &f.log,
		Refused: func(c net.Conn, why string) {
			f.log.Warn().Str("remote", c.RemoteAddr().String()).Str("reason", why).
				Msg("http: request refused (400) and connection closed: ambiguous framing, as in request smuggling")
		},
		BadHead: f.badHead,
	}
	f.srv = &http.Server{
		Handler:           http.HandlerFunc(f.serveHTTP),
		ReadHeaderTimeout: timeoutOr(lim.HeaderTimeout, DefaultHeaderTimeout),
		IdleTimeout:       keepalive(lim.KeepaliveTimeout),
		BaseContext:       base,
		ErrorLog:          log.New(f.log, "", 0),
		ConnState:         f.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if hc, ok := c.(*httpConn); ok {
				ctx = context.WithValue(ctx, httpConnKey{}, hc)
			}
			return ctx
		},
	}
	return f
}

// badHead logs a request whose head failed on the plain front as nginx
// logs it: a line at info saying why (one refused for its framing has
// Refused's warning instead), and its access line.
func (f *httpFront) badHead(c net.Conn, h *h1.BadHead) {
	remote := c.RemoteAddr().String()
	if !h.Framing {
		f.log.Info().Str("remote", remote).Str("request", h.RequestLine()).Int("status", h.Status).Msg("http: " + h.Reason)
	}
	if f.access != nil {
		f.access(remote, h)
	}
}

// logBadHead logs the access line of a request whose head failed, in the
// configuration in force.
func (r *runner) logBadHead(remote string, h *h1.BadHead) {
	s := r.enter()
	defer s.reqs.leave()
	s.logBadHead(remote, h)
}

// serve serves HTTP on l until the server shuts down. On an https://
// front (a *tlsListener), the connection bound and the send timeout apply
// below TLS, from the handshake on, and the framing checks and the body
// timeout above it, on what the client sends over HTTP/1.1 (an HTTP/2
// connection has no HTTP/1 framing to check).
func (f *httpFront) serve(l net.Listener) error {
	tl, ok := l.(*tlsListener)
	if !ok {
		return f.plain.Serve(l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hl := &httpListener{Listener: tl.Listener, tls: tl.config, front: f, gate: serving.NewGate(f.maxConns, "http", &f.log), ctx: ctx, cancel: cancel}
	hl.ready, hl.failed = make(chan net.Conn), make(chan error, 1)
	return f.srv.Serve(hl)
}

// Shutdown shuts the front's server down gracefully.
func (f *httpFront) Shutdown(ctx context.Context) error {
	err := f.plain.Shutdown(ctx)
	if err2 := f.srv.Shutdown(ctx); err == nil {
		err = err2
	}
	return err
}

// Close closes the front's server and its connections at once.
func (f *httpFront) Close() error {
	f.plain.Close()
	return f.srv.Close()
}

// SetKeepAlivesEnabled turns keep-alive on or off on the front's server;
// off, the idle connections close.
func (f *httpFront) SetKeepAlivesEnabled(on bool) {
	f.plain.SetKeepAlivesEnabled(on)
	f.srv.SetKeepAlivesEnabled(on)
}

// serveHTTP is the front's handler: an HTTP/1.1 request over TLS gets its
// connection's TLS state, which net/http sets only on the connections it
// sees as *tls.Conn (the front hands it an httpConn above TLS), so that a
// script sees HTTPS=on.
func (f *httpFront) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		if c, _ := r.Context().Value(httpConnKey{}).(*httpConn); c != nil && c.tlsState != nil {
			c.watch.handling.Store(true)
			r = r.WithContext(r.Context()) // a shallow copy: the server's request is not ours to change
			r.TLS = c.tlsState
		}
	}
	f.handler.ServeHTTP(w, r)
}

// frontConn returns the front's connection of c, as net/http has it: c
// itself, or the one below TLS of an HTTP/2 connection.
func frontConn(c net.Conn) *httpConn {
	switch c := c.(type) {
	case *httpConn:
		return c
	case *tls.Conn:
		hc, _ := c.NetConn().(*httpConn)
		return hc
	}
	return nil
}

// connState keeps the connection's place in its Gate up to date: it waits
// (and may be closed for a new connection) while net/http waits for a
// request head, and serves from the moment the head is in. An HTTP/2
// connection serves from its handshake on: net/http reports no states of
// its streams.
func (f *httpFront) connState(c net.Conn, st http.ConnState) {
	hc := frontConn(c)
	if hc == nil {
		return
	}
	if _, h2 := c.(*tls.Conn); h2 {
		hc.slot.SetWaiting(false)
		return
	}
	switch st {
	case http.StateNew, http.StateIdle:
		hc.watch.handling.Store(false)
		hc.slot.SetWaiting(true)
	case http.StateActive:
		hc.slot.SetWaiting(false)
	case http.StateHijacked:
		hc.slot.SetWaiting(false)
		hc.hijacked()
	}
}

// httpListener gives each connection a place in the front's Gate and
// wraps it in an httpConn. On an https:// front, connections are handed
// to net/http once their handshake is done, each done in its own
// goroutine so that a slow one holds up no other.
type httpListener struct {
	net.Listener
	front     *httpFront
	gate      *serving.Gate
	ctx       context.Context // ended by Close
	cancel    context.CancelFunc
	tls       *tls.Config   // nil: plain HTTP
	ready     chan net.Conn // connections past their handshake
	failed    chan error    // the error that ended the accept loop
	startTLS  sync.Once
	closeOnce sync.Once
}

func (l *httpListener) Accept() (net.Conn, error) {
	if l.tls == nil {
		return l.accept()
	}
	l.startTLS.Do(func() { go l.acceptTLS() })
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.failed:
		return nil, err
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// accept waits for a place in the Gate and accepts a connection.
func (l *httpListener) accept() (*httpConn, error) {
	if !l.gate.Wait(l.ctx.Done()) {
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		if serving.IsFDExhausted(err) {
			l.gate.Shed() // net/http retries after a pause
		}
		return nil, err
	}
	hc := &httpConn{Conn: c, front: l.front}
	hc.slot = l.gate.Admit(c, l.ctx.Done())
	if hc.slot == nil {
		c.Close()
		return nil, net.ErrClosed
	}
	return hc, nil
}

// acceptTLS is the accept loop of an https:// front: it starts each
// connection's handshake, and backs off from temporary failures as
// net/http does (5 ms, doubling up to 1 s).
func (l *httpListener) acceptTLS() {
	var delay time.Duration
	for {
		c, err := l.accept()
		if err != nil {
			var ne net.Error
			if serving.IsFDExhausted(err) || (errors.As(err, &ne) && ne.Timeout()) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-l.ctx.Done():
					return
				}
			}
			l.failed <- err // buffered: the loop sends once
			return
		}
		delay = 0
		go l.handshake(c)
	}
}

// handshake does c's TLS handshake, within the header timeout, and hands
// the connection to net/http: an HTTP/2 one as the *tls.Conn, which
// net/http serves with its HTTP/2 server, an HTTP/1.1 one in an httpConn
// of its own that checks what comes over TLS.
func (l *httpListener) handshake(c *httpConn) {
	c.fr.dead = true // TLS records: the checks apply above TLS
	tc := tls.Server(c, l.tls)
	ctx := l.ctx
	if d := l.front.srv.ReadHeaderTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		l.front.log.Info().Err(err).Str("remote", c.RemoteAddr().String()).Msg("http: TLS handshake failed")
		tc.Close()
		return
	}
	var hc net.Conn = tc
	if st := tc.ConnectionState(); st.NegotiatedProtocol != "h2" {
		hc = &httpConn{Conn: tc, front: l.front, slot: c.slot, tlsState: &st}
	}
	select {
	case l.ready <- hc:
	case <-l.ctx.Done():
		hc.Close()
	}
}

func (l *httpListener) Close() error {
	l.closeOnce.Do(l.cancel)
	return l.Listener.Close()
}

// httpConnKey is the context key of a request's *httpConn.
type httpConnKey struct{}

// httpConn is a connection of the HTTP front. Reads go through the
// framer, and in a request body they must make progress within the body
// timeout; writes within the send timeout. The deadlines net/http sets
// (ReadHeaderTimeout, IdleTimeout, waking its background read) are kept:
// the earlier of its deadline and the connection's own applies.
type httpConn struct {
	net.Conn
	front    *httpFront
	slot     *serving.Slot
	tlsState *tls.ConnectionState // an HTTP/1.1 connection over TLS: its state, for requests; else nil

	// Owned by the reader (net/http reads from one goroutine at a time).
	fr      http1Framer
	poison  []byte // what to give net/http instead of a refused message
	ended   bool   // the refused message's poison is out: reads see EOF
	refused string // why, for the log of the head

	watch headWatch // over TLS: a head net/http fails, to log and count it

	mu         sync.Mutex // guards the deadlines and the outcome below
	extRead    time.Time  // as net/http set them
	extWrite   time.Time
	ownRead    time.Time // the body timeout's, while in a body
	ownWrite   time.Time // the send timeout's
	setRead    time.Time // as applied to the socket
	setWrite   time.Time
	bodyErr    error // why a body read failed: timeout, or the client went
	releaseOne sync.Once
}

// poisonLine is what net/http gets instead of a refused message: a header
// line with no colon, so it answers 400 and closes the connection.
const poisonLine = "\x00\r\n\r\n"

func (c *httpConn) Read(p []byte) (int, error) {
	if len(c.poison) > 0 {
		n := copy(p, c.poison)
		c.poison = c.poison[n:]
		return n, nil
	}
	if c.ended {
		return 0, io.EOF
	}
	inBody := c.fr.inBody()
	c.armRead(inBody)
	if inBody {
		// Waiting on the client: if every connection is taken, the one
		// whose body has stalled longest is closed for a new one, as are
		// those waiting for a request head.
		c.slot.SetWaiting(true)
	}
	n, err := c.Conn.Read(p)
	if inBody {
		c.slot.SetWaiting(false)
	}
	if err != nil && inBody {
		c.mu.Lock()
		if c.bodyErr == nil {
			c.bodyErr = err
		}
		c.mu.Unlock()
	}
	if n > 0 && !c.fr.dead {
		pass, why := c.fr.scan(p[:n])
		if why != "" {
			c.front.log.Warn().Str("remote", c.RemoteAddr().String()).Str("reason", why).
				Msg("http: request refused (400) and connection closed: ambiguous framing, as in request smuggling")
			c.ended, c.refused = true, why
			c.poison = []byte(poisonLine)
			m := copy(p[pass:], c.poison)
			c.poison = c.poison[m:]
			if c.tlsState != nil {
				c.watchRead(nil)
			}
			return pass + m, nil
		}
	}
	if c.tlsState != nil {
		c.watchRead(err)
	}
	return n, err
}

// armRead sets the read deadline before a read: the body timeout's in a
// body, none of ours elsewhere.
func (c *httpConn) armRead(inBody bool) {
	d := c.front.bodyTimeout
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case inBody && d > 0:
		// Moved on only when a quarter of it has gone: a read that makes
		// no progress fails between 3/4 and all of the timeout.
		if now := time.Now(); c.ownRead.Sub(now) < d*3/4 {
			c.ownRead = now.Add(d)
		}
	default:
		c.ownRead = time.Time{}
	}
	c.applyLocked(&c.setRead, earliest(c.extRead, c.ownRead), c.Conn.SetReadDeadline)
}

// armWrite sets the write deadline before a write.
func (c *httpConn) armWrite() {
	d := c.front.sendTimeout
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); c.ownWrite.Sub(now) < d*3/4 {
		c.ownWrite = now.Add(d)
	}
	c.applyLocked(&c.setWrite, earliest(c.extWrite, c.ownWrite), c.Conn.SetWriteDeadline)
}

// applyLocked sets deadline d with set if it is not the one set already.
func (c *httpConn) applyLocked(cur *time.Time, d time.Time, set func(time.Time) error) {
	if !d.Equal(*cur) {
		*cur = d
		_ = set(d) // fails only on a closed connection, which the read or write then reports
	}
}

// earliest returns the earlier of two deadlines, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func (c *httpConn) Write(p []byte) (int, error) {
	c.armWrite()
	n, err := c.Conn.Write(p)
	if c.tlsState != nil && !c.watch.handling.Load() {
		c.watchAnswer(p, n == len(p))
	}
	return n, err
}

// ReadFrom sends a file with sendfile, as net/http does for static
// files, in pieces so that the send timeout applies to each.
func (c *httpConn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok || c.front.sendTimeout <= 0 {
		if ok {
			return rf.ReadFrom(r)
		}
		return io.Copy(struct{ io.Writer }{c}, r)
	}
	// A piece is an *io.LimitedReader over r's own reader, which
	// sendfile recognises.
	src, left := r, int64(-1)
	if lr, ok := r.(*io.LimitedReader); ok {
		src, left = lr.R, lr.N
	}
	var total int64
	var err error
	for left != 0 {
		piece := int64(1 << 20)
		if left > 0 {
			piece = min(piece, left)
		}
		c.armWrite()
		var n int64
		n, err = rf.ReadFrom(&io.LimitedReader{R: src, N: piece})
		total += n
		if left > 0 {
			left -= n
		}
		if err != nil || n < piece {
			break
		}
	}
	if lr, ok := r.(*io.LimitedReader); ok {
		lr.N = left
	}
	return total, err
}

func (c *httpConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.extRead, c.extWrite = t, t
	c.applyLocked(&c.setRead, earliest(c.extRead, c.ownRead), c.Conn.SetReadDeadline)
	c.applyLocked(&c.setWrite, earliest(c.extWrite, c.ownWrite), c.Conn.SetWriteDeadline)
	return nil
}

func (c *httpConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.extRead = t
	c.applyLocked(&c.setRead, earliest(c.extRead, c.ownRead), c.Conn.SetReadDeadline)
	return nil
}

func (c *httpConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.extWrite = t
	c.applyLocked(&c.setWrite, earliest(c.extWrite, c.ownWrite), c.Conn.SetWriteDeadline)
	return nil
}

func (c *httpConn) Close() error {
	err := c.Conn.Close()
	c.releaseOne.Do(c.slot.Release)
	if c.tlsState != nil {
		c.watchClose()
	}
	return err
}

// hijacked stops the checks: the connection is no longer HTTP's (an NPH
// script, an Upgrade).
func (c *httpConn) hijacked() {
	c.fr.dead = true
	c.mu.Lock()
	c.ownRead, c.ownWrite = time.Time{}, time.Time{}
	c.applyLocked(&c.setRead, c.extRead, c.Conn.SetReadDeadline)
	c.applyLocked(&c.setWrite, c.extWrite, c.Conn.SetWriteDeadline)
	c.mu.Unlock()
}

// bodyFailure says why reading r's body from the client failed, if it did:
// the body timeout passed, or the client went away.
func bodyFailure(r *http.Request) error {
	if err, ok := h1.BodyError(r.Context()); ok {
		return err
	}
	c, _ := r.Context().Value(httpConnKey{}).(*httpConn)
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bodyErr
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
