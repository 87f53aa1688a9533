package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/internal/serving"
)

// BodyConn may be implemented by the connections a listener gives a
// Server: it is told when the reads that follow are for a request body
// (true), and when they no longer are (false).
type BodyConn interface {
	BodyReads(bool)
}

// connKey is the context key of a request's *conn.
type connKey struct{}

// BodyError says why reading the body of the request whose context is
// ctx failed, if it did (a timeout, or the client went away), and whether
// the request came through a Server at all.
func BodyError(ctx context.Context) (err error, ok bool) {
	c, _ := ctx.Value(connKey{}).(*conn)
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bodyErr, true
}

// HeaderOwned reports whether the request whose context is ctx came
// through a Server, whose handler owns the request's Header: unlike
// net/http's server, a Server reads nothing of it once the head is parsed
// (what it needs is kept apart), so a handler may change it in place
// where with net/http it must copy it first.
func HeaderOwned(ctx context.Context) bool {
	c, _ := ctx.Value(connKey{}).(*conn)
	return c != nil
}

// newIdleClose is how long a connection may wait for its first request
// before CloseIfIdle (Shutdown, keep-alives off) may close it: a client
// that has just connected is about to send its request.
const newIdleClose = time.Second

// readBufSize is a connection's read buffer, kept while it is open.
const readBufSize = 4 << 10

// rstAvoidanceDelay is how long a connection closed with unread request
// bytes waits after its FIN before the close, so that the client reads
// the answer before the RST its unread bytes cause, as net/http does.
const rstAvoidanceDelay = 500 * time.Millisecond

// aLongTimeAgo is a deadline that has passed: it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one connection of a Server.
type conn struct {
	srv      *Server
	rwc      net.Conn
	bc       BodyConn // rwc's, if it has one
	slot     *serving.Slot
	ctx      context.Context
	cancel   context.CancelFunc
	remote   string
	br       *bufio.Reader
	accepted time.Time
	rdl, wdl time.Time // the deadlines set on rwc
	lastPOST bool
	headAt   time.Time // when the first byte of the request being read came

	// dlMu orders a handler's read deadline against the body reads of
	// another of its goroutines, which move the body timeout on.
	dlMu sync.Mutex
	// handlerRead: the handler set the read deadline (through
	// http.ResponseController); the server leaves it alone until the
	// request ends, and a read it cuts is not the client's failure.
	handlerRead bool

	inBody   atomic.Bool // reads are a body's
	bodyDone atomic.Bool // the request's body is all read, or there is none

	// The watch's catch: a byte of the next request, read while the
	// connection was being watched.
	peek     [1]byte
	havePeek bool

	mu        sync.Mutex // guards what follows
	reading   bool       // a request is being read or served (not idle)
	since     time.Time  // when it last became idle or new
	closed    bool
	hijacked  bool
	handling  bool // a request is in its handler
	cancelReq context.CancelFunc
	watching  chan struct{} // closed when the watch is over; nil if none
	gone      bool          // the watch saw the client close
	bodyErr   error
}

func (s *Server) newConn(rwc net.Conn, base context.Context, slot *serving.Slot) serving.Conn {
	c := &conn{srv: s, rwc: rwc, slot: slot, accepted: time.Now()}
	c.since = c.accepted
	c.bc, _ = rwc.(BodyConn)
	ctx := context.WithValue(base, http.LocalAddrContextKey, rwc.LocalAddr())
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, rwc)
	}
	ctx = context.WithValue(ctx, connKey{}, c)
	c.ctx, c.cancel = context.WithCancel(ctx)
	return c
}

// CloseIfIdle closes the connection if it waits for a request: idle
// between two, or new for over newIdleClose.
func (c *conn) CloseIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading || c.closed || c.hijacked {
		return
	}
	if c.since.Equal(c.accepted) && time.Since(c.accepted) < newIdleClose {
		return
	}
	c.closed = true
	c.rwc.Close()
}

// Close closes the connection at once and ends its requests' contexts.
func (c *conn) Close() {
	c.mu.Lock()
	hijacked := c.hijacked
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	if !hijacked {
		c.rwc.Close()
	}
}

// Serve serves the connection's requests until it closes.
func (c *conn) Serve() {
	c.remote = c.rwc.RemoteAddr().String()
	c.srv.setState(c.rwc, http.StateNew)
	c.slot.SetWaiting(true)
	c.br = bufio.NewReaderSize(connReader{c}, readBufSize)
	defer func() {
		c.cancel()
		c.mu.Lock()
		hijacked := c.hijacked
		c.closed = true
		c.mu.Unlock()
		if hijacked {
			return
		}
		c.rwc.Close()
		c.srv.setState(c.rwc, http.StateClosed)
	}()
	for first := true; ; first = false {
		w, err := c.readRequest(first)
		if err != nil {
			c.answerError(w, err)
			return
		}
		if !c.serveRequest(w) {
			return
		}
		c.mu.Lock()
		c.reading, c.since = false, time.Now()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		c.slot.SetWaiting(true)
		c.srv.setState(c.rwc, http.StateIdle)
	}
}

// readRequest waits for a request and reads its head. A head that fails
// returns the request as far as it came with the error, unless no byte
// of it came (errIdleEnd).
func (c *conn) readRequest(first bool) (*response, error) {
	hdrTimeout := c.srv.ReadHeaderTimeout
	switch {
	case first:
		if hdrTimeout > 0 {
			c.setRead(c.accepted.Add(hdrTimeout))
		}
	case c.br.Buffered() > 0:
		// Pipelined: the head is here, or on its way.
	case c.srv.IdleTimeout > 0:
		c.setReadLoose(c.srv.IdleTimeout)
	default:
		c.setRead(time.Time{})
	}
	if _, err := c.br.Peek(1); err != nil {
		return nil, errIdleEnd{err}
	}
	c.headAt = time.Now()
	c.mu.Lock()
	c.reading = true
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, errIdleEnd{net.ErrClosed}
	}
	if c.lastPOST {
		// RFC 9112 § 2.2: a client may send a CRLF after a POST body;
		// net/http skips up to 4 CR or LF bytes there.
		peek, _ := c.br.Peek(min(4, max(c.br.Buffered(), 1)))
		skip := 0
		for skip < len(peek) && (peek[skip] == '\r' || peek[skip] == '\n') {
			skip++
		}
		c.br.Discard(skip)
	}
	if !first && hdrTimeout > 0 && !headInBuffer(c.br) {
		c.setRead(time.Now().Add(hdrTimeout))
	}
	h := headReader{br: c.br, budget: c.srv.maxHeaderBytes() + 4096}
	w := &response{c: c, contentLength: -1}
	if err := readHead(&h, &w.rq); err != nil {
		return w, err
	}
	c.lastPOST = w.rq.req.Method == "POST"
	return w, nil
}

// headInBuffer reports whether a whole head is in br's buffer.
func headInBuffer(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// errIdleEnd is the end of a connection between requests (or within a
// head): it closes with no answer.
type errIdleEnd struct{ err error }

func (e errIdleEnd) Error() string { return e.err.Error() }

// answerError answers a head that could not be read, if it deserves an
// answer, as net/http does, and tells Server.BadHead of it. w is the
// request as far as it came; nil if none did.
func (c *conn) answerError(w *response, err error) {
	if w == nil {
		return // the connection ended between requests
	}
	c.mu.Lock()
	c.reading = true
	closed := c.closed
	c.mu.Unlock()
	he, ok := isHeadError(err)
	if !ok && closed {
		return // the server closed it (Close, or the end of Shutdown): not the client's doing
	}
	rq := &w.rq
	bh := &BadHead{Line: rq.line, Method: rq.req.Method, RequestURI: rq.req.RequestURI, Proto: rq.req.Proto,
		Header: rq.req.Header, Start: c.headAt}
	if rq.line != "" {
		bh.Method, bh.RequestURI, bh.Proto = "", "", ""
	}
	if bh.Host = rq.req.Host; bh.Host == "" && len(bh.Header["Host"]) == 1 {
		bh.Host = bh.Header["Host"][0]
	}
	part := "request headers"
	if rq.req.URL == nil {
		part = "request line"
	}
	switch {
	case ok:
		bh.Status, bh.Reason, bh.Framing = he.status, "client sent an invalid request: "+he.reason(), he.refuse != ""
		if he.refuse != "" {
			c.refuse(he.refuse)
		}
		if c.srv.SendTimeout > 0 {
			c.rwc.SetWriteDeadline(time.Now().Add(c.srv.SendTimeout))
		}
		answer, body := errorAnswer(he)
		if n, _ := c.rwc.Write(answer); n == len(answer) { // a failed write: the client is gone, and got no body
			bh.BodyBytes = int64(body)
		}
	case isTimeout(err):
		// No answer, as net/http; nginx logs 408 and sends none either.
		bh.Status, bh.Reason = http.StatusRequestTimeout, "client timed out while reading the "+part
	default:
		bh.Status, bh.Reason = http.StatusBadRequest, "client closed the connection while reading the "+part
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			bh.Reason += ": " + err.Error()
		}
	}
	if c.srv.BadHead != nil {
		c.srv.BadHead(c.rwc, bh)
	}
	if he == errTooLarge || he == errLineTooLong {
		c.closeWriteAndWait() // the rest of the head is unread
	}
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// refuse reports a request refused for its framing.
func (c *conn) refuse(reason string) {
	if c.srv.Refused != nil {
		c.srv.Refused(c.rwc, reason)
	}
}

// closeWriteAndWait sends a FIN and waits a little before the close, so
// that the answer reaches a client whose unread bytes will cause an RST.
func (c *conn) closeWriteAndWait() {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.rwc.(closeWriter); ok {
		cw.CloseWrite()
	} else if nc, ok := c.rwc.(interface{ NetConn() net.Conn }); ok {
		if cw, ok := nc.NetConn().(closeWriter); ok {
			cw.CloseWrite()
		}
	}
	time.Sleep(rstAvoidanceDelay)
}

// serveRequest runs the handler on a request and finishes its response.
// It reports whether the connection may carry another request.
func (c *conn) serveRequest(w *response) (keep bool) {
	rq := &w.rq
	ctx, cancel := context.WithCancel(c.ctx)
	// The parsed request is this request's own (w is made per request,
	// and nothing here reads rq.req after this): it takes its context in
	// place, with no copy on the heap.
	rq.req = *rq.req.WithContext(ctx)
	req := &rq.req
	req.RemoteAddr = c.remote
	w.req, w.header, w.isHEAD = req, make(http.Header, 4), req.Method == "HEAD"
	switch {
	case rq.contentLen == 0:
		req.Body = http.NoBody
		c.bodyDone.Store(true)
	default:
		b := &body{c: c, req: req, chunked: rq.contentLen < 0, remain: max(rq.contentLen, 0)}
		if rq.expect100 {
			b.w = w
			w.canContinue = true
		}
		w.body = b
		req.Body = b
		c.bodyDone.Store(false)
		c.inBody.Store(true)
		if c.bc != nil {
			c.bc.BodyReads(true)
		}
		if c.srv.BodyTimeout > 0 {
			c.setReadLoose(c.srv.BodyTimeout)
		}
	}
	c.slot.SetWaiting(false)
	c.srv.setState(c.rwc, http.StateActive)
	if rq.expectFailed {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusExpectationFailed)
		w.finish()
		cancel()
		c.endBody()
		return false
	}

	c.mu.Lock()
	c.handling, c.cancelReq, c.gone = true, cancel, false
	c.mu.Unlock()
	c.srv.sweep.Begin(c)
	ok := c.runHandler(w, req)
	c.srv.sweep.End(c)
	if ok && !w.hijacked {
		w.finish()
	}
	c.stopWatch()
	c.endHandlerRead()
	if !ok {
		cancel()
		c.endBody()
		return false
	}
	if w.hijacked {
		cancel()
		return false
	}
	cancel()
	keep = w.err == nil && !w.closeAfter
	if keep && w.body != nil && !w.body.discardRest() {
		keep = false
	}
	// A body the client may still be sending, unread: closed at once,
	// the connection would send an RST, and the client could lose the
	// answer it has not read yet (as net/http's closedRequestBodyEarly).
	linger := w.tooBig || (!keep && w.body != nil && w.body.unfinished())
	c.endBody()
	c.mu.Lock()
	gone := c.gone
	c.mu.Unlock()
	if linger && w.err == nil && !gone {
		c.closeWriteAndWait()
	}
	return keep && !gone && !c.srv.noKeep.Load()
}

// runHandler calls the handler; it reports false if the handler
// panicked, after logging any panic but http.ErrAbortHandler. What was
// written and not sent then is dropped, so that the client sees a broken
// response and never a whole-looking one.
func (c *conn) runHandler(w *response, req *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler && c.srv.Logger != nil {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.srv.Logger.Error().Str("remote", c.remote).Interface("panic", p).Bytes("stack", buf).
					Msg("http: panic serving " + c.remote)
			}
			w.abort()
			ok = false
		}
	}()
	c.srv.handler(req).ServeHTTP(w, req)
	return true
}

// endBody marks the end of a request's body reads.
func (c *conn) endBody() {
	if c.inBody.Swap(false) && c.bc != nil {
		c.bc.BodyReads(false)
	}
}

// bodyEnded is called by the body when it has all been read, or failed.
func (c *conn) bodyEnded() {
	c.bodyDone.Store(true)
	c.endBody()
}

// setBodyErr records why a body read failed.
func (c *conn) setBodyErr(err error) {
	c.mu.Lock()
	if c.bodyErr == nil {
		c.bodyErr = err
	}
	c.mu.Unlock()
}

// StartWatch gives the request in the handler a read that ends its
// context if the client closes the connection. It reports whether the
// sweeper is done with the request: watched, or over (serving.Watcher).
func (c *conn) StartWatch() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.handling || c.hijacked || c.closed || c.watching != nil {
		return true
	}
	if !c.bodyDone.Load() {
		return false // the handler may still read its body
	}
	done := make(chan struct{})
	c.watching = done
	c.rwc.SetReadDeadline(time.Time{}) // here, under c.mu, so that stopWatch's comes after
	go c.watch(c.cancelReq, done)
	return true
}

// stopWatch ends the request's watch, if it has one, and waits for it:
// the handler has returned.
func (c *conn) stopWatch() {
	c.mu.Lock()
	c.handling = false
	watch := c.watching
	if watch != nil {
		c.rwc.SetReadDeadline(aLongTimeAgo)
	}
	c.mu.Unlock()
	if watch == nil {
		return
	}
	<-watch
	c.mu.Lock()
	c.watching = nil
	c.mu.Unlock()
	c.rdl = aLongTimeAgo // set anew at the next read
}

// watch reads from the connection while a request is in its handler: a
// byte is the next request's (kept for it); the end of the connection
// ends the request's context; the deadline set when the handler returns
// ends the watch.
func (c *conn) watch(cancel context.CancelFunc, done chan struct{}) {
	defer close(done)
	n, err := c.rwc.Read(c.peek[:])
	if n == 1 {
		c.havePeek = true
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return
	}
	c.mu.Lock()
	c.gone = true
	c.mu.Unlock()
	cancel()
}

// setHandlerRead sets the read deadline t for the handler.
func (c *conn) setHandlerRead(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.handlerRead = true
	c.rdl = t
	return c.rwc.SetReadDeadline(t)
}

// endHandlerRead gives the read deadline back to the server at the end
// of a request whose handler set one.
func (c *conn) endHandlerRead() {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if c.handlerRead {
		c.handlerRead = false
		c.rdl = aLongTimeAgo // set anew at the next read
	}
}

// cutByHandler reports whether err, from a body read, is the handler's
// own read deadline passing: the handler stopped reading (a CGI script
// that exited with its body unread), the client did not fail.
func (c *conn) cutByHandler(err error) bool {
	c.dlMu.Lock()
	h := c.handlerRead
	c.dlMu.Unlock()
	var ne net.Error
	return h && errors.As(err, &ne) && ne.Timeout()
}

// setRead sets the read deadline t, if it is not set already.
func (c *conn) setRead(t time.Time) {
	if !t.Equal(c.rdl) {
		c.rdl = t
		c.rwc.SetReadDeadline(t)
	}
}

// setReadLoose sets a read deadline between 3/4 of d and d from now:
// moved on only when a quarter of it has gone, it costs a timer update
// per quarter of d rather than per read.
func (c *conn) setReadLoose(d time.Duration) {
	now := time.Now()
	if c.rdl.IsZero() || c.rdl.Before(now.Add(d*3/4)) || c.rdl.After(now.Add(d)) {
		c.rdl = now.Add(d)
		c.rwc.SetReadDeadline(c.rdl)
	}
}

// setWriteLoose is setReadLoose for writes.
func (c *conn) setWriteLoose(d time.Duration) {
	now := time.Now()
	if c.wdl.IsZero() || c.wdl.Before(now.Add(d*3/4)) || c.wdl.After(now.Add(d)) {
		c.wdl = now.Add(d)
		c.rwc.SetWriteDeadline(c.wdl)
	}
}

// connReader is what a connection's bufio.Reader reads: the byte a watch
// caught first, then the connection; in a body, within the body timeout,
// with the connection marked waiting in its Gate while it waits.
type connReader struct{ c *conn }

func (r connReader) Read(p []byte) (int, error) {
	c := r.c
	if c.havePeek {
		c.havePeek = false
		p[0] = c.peek[0]
		return 1, nil
	}
	if !c.inBody.Load() {
		return c.rwc.Read(p)
	}
	if d := c.srv.BodyTimeout; d > 0 {
		c.dlMu.Lock()
		if !c.handlerRead {
			c.setReadLoose(d)
		}
		c.dlMu.Unlock()
	}
	c.slot.SetWaiting(true)
	n, err := c.rwc.Read(p)
	c.slot.SetWaiting(false)
	if err != nil && !c.cutByHandler(err) {
		c.setBodyErr(err)
	}
	return n, err
}

// connWriter is what a response's bufio.Writer writes to: the
// connection, within the send timeout.
type connWriter struct{ c *conn }

func (w connWriter) Write(p []byte) (int, error) {
	if d := w.c.srv.SendTimeout; d > 0 {
		w.c.setWriteLoose(d)
	}
	return w.c.rwc.Write(p)
}
