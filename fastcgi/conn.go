package fastcgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/defaults"
	"github.com/ferrygw/ferry/internal/serving"
)

// reqState is where a request is in its record sequence (spec § 6):
// BEGIN_REQUEST -> PARAMS* -> empty PARAMS -> STDIN* -> empty STDIN
// [-> DATA* -> empty DATA for a Filter].
type reqState uint8

const (
	stateParams reqState = iota // reading PARAMS
	stateStdin                  // the handler runs; STDIN streams
	stateData                   // Filter: STDIN ended; DATA streams
	stateDone                   // every input stream ended
)

// request is one request on a connection. The read loop owns state, params,
// paramsTooBig; the rest is set before the handler starts.
type request struct {
	id     uint16
	role   Role
	keep   bool
	state  reqState
	params []byte
	// paramsDropped: the PARAMS stream exceeded the limit and is dropped.
	paramsDropped bool
	stdin         *bodyBuffer
	data          *bodyBuffer
	ctx           context.Context
	cancel        context.CancelFunc
	started       bool // the handler goroutine runs
	httpReq       *http.Request
	// waitStdin: PARAMS had no CONTENT_LENGTH (Apache sends none for a
	// chunked body), so the handler starts at the first STDIN record, which
	// tells whether a body follows.
	waitStdin bool
	vars      map[string]string
	bad       error // PARAMS did not parse: a *cgi.StatusError to answer with
	// began is when BEGIN_REQUEST came: ReadHeaderTimeout runs from it
	// until the request starts.
	began time.Time
	// expired: ReadHeaderTimeout passed in setup; the request is being
	// answered 408, and its records are ignored.
	expired bool
	// abortRequested: ABORT_REQUEST came, so the web server takes no more
	// of the response.
	abortRequested atomic.Bool
}

// conn is one FastCGI connection. Its read loop (Serve) owns the request
// table's contents; mu guards the table against the handler goroutines that
// remove their requests, and wmu serialises writes.
type conn struct {
	srv    *Server
	rwc    net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	slot   *serving.Slot // the connection's place among MaxConns; nil for ServeConn's

	// setup and setupBytes count the requests in setup (not started) and
	// their PARAMS bytes; owned by the read loop.
	setup      int
	setupBytes int
	saidSetup  bool // the bound on setup was logged

	mu      sync.Mutex // guards reqs, running, closing, inline, multiplexed, readerDone
	reqs    map[uint16]*request
	running int  // requests started and not finished
	closing bool // close once the last request ends
	wg      sync.WaitGroup

	// A request whose input has all come, alone on its connection with
	// nothing more to read, runs in the read loop's goroutine (see
	// runInline); cr is the loop's reader.
	cr          *connReader
	inline      inlineState
	multiplexed bool          // a request began beside another: none runs in the read loop
	readerDone  chan struct{} // the last reader ended the connection; made at the first hand-over
	// ending counts the requests out of reqs whose END_REQUEST is being
	// written: the connection is not idle yet, and Shutdown must not cut
	// the record off. Incremented with mu held.
	ending atomic.Int32

	wmu sync.Mutex // guards bw and wbuf, and orders records
	// bw is the connection's write buffer while records wait in it: taken
	// from writerPool by the first write and given back by the flush
	// that empties it, so that an idle connection holds none (64 KiB
	// each; a web server keeps hundreds of connections open).
	bw      *bufio.Writer
	wbuf    []byte
	wbroken bool // a write failed: the connection is gone
}

// inlineState is where a request run in the read loop's goroutine is.
type inlineState uint8

const (
	inlineNone      inlineState = iota // no request runs in the read loop
	inlineRunning                      // one does; no other goroutine reads
	inlineHandedOff                    // one does, and another goroutine reads on
)

// errHandedOff ends a read loop whose reading another goroutine took over.
var errHandedOff = errors.New("fastcgi: reading handed on")

// Serve runs the read loop until the connection ends, then ends every
// request and waits for the handlers.
func (c *conn) Serve() {
	rd := readerPool.Get().(*connReader)
	rd.br.Reset(c.rwc)
	defer func() {
		rd.br.Reset(nil)
		readerPool.Put(rd)
	}()
	c.cr = rd
	if err := c.readLoop(); err == errHandedOff {
		// The goroutine reading now ends the connection's requests.
		<-c.readerDone
	} else {
		c.endRequests(err)
	}
	c.wg.Wait()
	c.wmu.Lock()
	c.release()
	c.wbroken = true
	c.wmu.Unlock()
}

// readOn continues the read loop in a goroutine of its own, for a request
// that runs in the loop's goroutine (StartWatch).
func (c *conn) readOn() {
	err := c.readLoop()
	if err == errHandedOff {
		return // handed on again; the last reader ends the connection
	}
	c.endRequests(err)
	c.readerDone <- struct{}{}
}

// StartWatch hands the reading on to a goroutine of its own when a request
// running in the read loop's goroutine (runInline) has run for a sweep or
// two: the connection's other records (its ABORT_REQUEST, other
// requests, the web server closing it) are read again. It reports true:
// the Sweeper is done with the request.
func (c *conn) StartWatch() bool {
	c.mu.Lock()
	if c.inline != inlineRunning {
		c.mu.Unlock()
		return true // the request has ended
	}
	c.inline = inlineHandedOff
	if c.readerDone == nil {
		c.readerDone = make(chan struct{}, 1)
	}
	c.mu.Unlock()
	go c.readOn()
	return true
}

// runInline runs r, whose input has all come, in the read loop's
// goroutine (start has set c.inline): no goroutine is started and woken
// for it, which is most of what a short request would cost the scheduler.
// While it runs, nothing reads the connection; a request still running
// after a sweep or two hands the reading on (StartWatch). It reports
// whether it did: this goroutine's read loop then ends. c.inline is back
// to inlineNone only once this is known, so the reader it handed on to
// runs no request of its own here before then.
func (c *conn) runInline(r *request) (handedOff bool) {
	c.srv.sweep.Begin(c)
	c.serveRequest(r, false)
	c.srv.sweep.End(c)
	c.mu.Lock()
	handedOff = c.inline == inlineHandedOff
	c.inline = inlineNone
	c.mu.Unlock()
	return handedOff
}

// endRequests ends the connection once its read loop has ended with err:
// it closes, and every request's context and input end.
func (c *conn) endRequests(err error) {
	var ce *ConnError
	if errors.As(err, &ce) {
		c.srv.log().Warn().Err(err).Str("remote", c.rwc.RemoteAddr().String()).Msg("fastcgi: closing connection")
	}
	c.rwc.Close()
	c.cancel()
	c.mu.Lock()
	for id, r := range c.reqs {
		r.cancel()
		r.stdin.abort(ErrRequestAborted)
		if r.data != nil {
			r.data.abort(ErrRequestAborted)
		}
		if !r.started {
			// No handler will finish it.
			delete(c.reqs, id)
		}
	}
	c.mu.Unlock()
}

// connReader is a connection's record reader and its buffer, pooled: a
// connection per request (nginx without fastcgi_keep_conn) must not cost
// 130 KB of fresh buffers each time.
type connReader struct {
	br *bufio.Reader
	rd *Reader
}

var readerPool = sync.Pool{New: func() any {
	br := bufio.NewReaderSize(nil, 16<<10)
	return &connReader{br: br, rd: NewReader(br)}
}}

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// writer returns the connection's write buffer, taking one from the pool
// if it holds none. Called with wmu held.
func (c *conn) writer() *bufio.Writer {
	if c.bw == nil {
		c.bw = writerPool.Get().(*bufio.Writer)
		c.bw.Reset(c.rwc)
	}
	return c.bw
}

// release gives the write buffer back to the pool; what it holds unsent
// is dropped. Called with wmu held.
func (c *conn) release() {
	if c.bw != nil {
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
		c.bw = nil
	}
}

// flushLocked sends what the write buffer holds and gives the buffer back.
// Called with wmu held.
func (c *conn) flushLocked() error {
	if c.bw == nil {
		return nil
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	c.release()
	return nil
}

// readLoop reads and handles records until the connection ends. Between
// records it waits at most until the idle timeout (no request) or the
// ReadHeaderTimeout of the oldest request in setup, whichever applies;
// a record that has begun to arrive must end within ReadHeaderTimeout.
func (c *conn) readLoop() error {
	cr := c.cr
	idle, headerTimeout := c.srv.idleTimeout(), c.srv.readHeaderTimeout()
	arm := func(d time.Time) {
		// Set each time, not only when it changes: finish sets the idle
		// deadline from the handler's goroutine.
		_ = c.rwc.SetReadDeadline(d) // a closed conn fails the read that follows
	}
	for {
		arm(c.nextDeadline(idle, headerTimeout))
		if _, err := cr.br.Peek(1); err != nil {
			switch {
			case isTimeout(err) && c.setup > 0:
				c.expire(headerTimeout)
				continue
			case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isTimeout(err):
				return nil
			}
			return &ConnError{err}
		}
		if headerTimeout > 0 && !recordBuffered(cr.br) {
			// A record has begun: the rest must follow.
			arm(time.Now().Add(headerTimeout))
		}
		rec, err := cr.rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if isTimeout(err) {
				err = fmt.Errorf("a record did not end within %v: %w", headerTimeout, err)
			}
			return &ConnError{err}
		}
		if err := c.handleRecord(rec); err != nil {
			if err == errDone {
				return nil
			}
			return err
		}
	}
}

// recordBuffered reports whether the next record is all in br.
func recordBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < HeaderLen {
		return false
	}
	h, _ := br.Peek(HeaderLen)
	return n >= HeaderLen+int(h[4])<<8+int(h[5])+int(h[6])
}

// nextDeadline is the read deadline until the next record begins: the
// ReadHeaderTimeout of the oldest request in setup, else the idle timeout
// if no request is in progress, else none.
func (c *conn) nextDeadline(idle, headerTimeout time.Duration) time.Time {
	if c.setup > 0 && headerTimeout > 0 {
		var oldest time.Time
		c.mu.Lock()
		for _, r := range c.reqs {
			if !r.started && !r.expired && (oldest.IsZero() || r.began.Before(oldest)) {
				oldest = r.began
			}
		}
		c.mu.Unlock()
		if !oldest.IsZero() {
			return oldest.Add(headerTimeout)
		}
	}
	if idle > 0 {
		c.mu.Lock()
		n := len(c.reqs)
		c.mu.Unlock()
		if n == 0 {
			return time.Now().Add(idle)
		}
	}
	return time.Time{}
}

// expire answers 408 to the requests whose setup has taken longer than
// headerTimeout: a web server sends PARAMS at once, so one that does not
// is stuck or hostile, and the request must not hold its place.
func (c *conn) expire(headerTimeout time.Duration) {
	now := time.Now()
	var late []*request
	c.mu.Lock()
	for _, r := range c.reqs {
		if !r.started && !r.expired && now.Sub(r.began) >= headerTimeout {
			late = append(late, r)
		}
	}
	c.mu.Unlock()
	for _, r := range late {
		r.expired = true
		c.leaveSetup(r)
		r.params, r.vars = nil, nil
		r.bad = &cgi.StatusError{Status: http.StatusRequestTimeout,
			Err: fmt.Errorf("fastcgi: request %d: PARAMS not complete within %v", r.id, headerTimeout)}
		c.start(r, false)
	}
}

// leaveSetup takes r, whose PARAMS have ended or expired, out of the
// connection's setup counts.
func (c *conn) leaveSetup(r *request) {
	c.setup--
	c.setupBytes -= len(r.params)
}

// errDone ends the read loop without an error: the connection is done.
var errDone = errors.New("fastcgi: connection done")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// protocolError makes a ConnError for records out of the spec's order.
func protocolError(format string, args ...any) error {
	return &ConnError{fmt.Errorf(format, args...)}
}

func (c *conn) handleRecord(rec Record) error {
	id := rec.RequestID
	switch rec.Type {
	case TypeGetValues:
		if id != 0 {
			return protocolError("GET_VALUES on request %d; want 0", id)
		}
		return c.getValues(rec.Content)
	case TypeBeginRequest:
		return c.begin(id, rec.Content)
	case TypeAbortRequest, TypeParams, TypeStdin, TypeData:
	default:
		if id == 0 || rec.Type > TypeUnknownType {
			// Spec § 4.2: unknown management records get UNKNOWN_TYPE.
			body := [8]byte{byte(rec.Type)}
			return c.write(func(b []byte) []byte { return AppendRecord(b, TypeUnknownType, 0, body[:]) }, true)
		}
		return protocolError("unexpected %s record from the web server", rec.Type)
	}
	if id == 0 {
		return protocolError("%s record on request 0", rec.Type)
	}
	c.mu.Lock()
	r := c.reqs[id]
	c.mu.Unlock()
	if r == nil || r.expired {
		return nil // spec § 3.3: records of inactive requests are ignored
	}
	switch rec.Type {
	case TypeAbortRequest:
		c.abort(r)
	case TypeParams:
		if r.state != stateParams {
			return protocolError("PARAMS after the end of PARAMS on request %d", id)
		}
		if len(rec.Content) == 0 {
			c.paramsDone(r)
			return nil
		}
		if r.paramsDropped || c.setupBytes+len(rec.Content) > defaults.Or(c.srv.MaxParamsBytes, DefaultMaxParamsBytes) {
			// Read and dropped: memory stays bounded whatever is sent.
			c.setupBytes -= len(r.params)
			r.paramsDropped, r.params = true, nil
			return nil
		}
		r.params = append(r.params, rec.Content...)
		c.setupBytes += len(rec.Content)
	case TypeStdin:
		switch {
		case r.state == stateParams:
			return protocolError("STDIN before the end of PARAMS on request %d", id)
		case r.state != stateStdin:
			if len(rec.Content) == 0 {
				return nil // a repeated end of stream is harmless
			}
			return protocolError("STDIN after the end of STDIN on request %d", id)
		case r.waitStdin:
			// The first STDIN record: empty means no body.
			r.waitStdin = false
			if len(rec.Content) > 0 {
				c.start(r, true)
				return c.handleRecord(rec)
			}
			c.endStdin(r)
			if c.start(r, false) {
				// It ran here long enough for another goroutine to take
				// the reading over: that one reads on.
				return errHandedOff
			}
		case len(rec.Content) == 0:
			c.endStdin(r)
		default:
			r.stdin.write(rec.Content)
		}
	case TypeData:
		// DATA may interleave with STDIN once PARAMS have ended.
		switch {
		case r.role != RoleFilter:
			return protocolError("DATA for a %s request %d", r.role, id)
		case r.state == stateParams:
			return protocolError("DATA before the end of PARAMS on request %d", id)
		case len(rec.Content) == 0:
			r.data.end()
			if r.state == stateData {
				r.state = stateDone
			}
		default:
			r.data.write(rec.Content)
		}
	}
	return nil
}

// endStdin ends r's STDIN stream.
func (c *conn) endStdin(r *request) {
	r.stdin.end()
	r.state = stateDone
	if r.role == RoleFilter {
		r.state = stateData
	}
}

// getValues answers FCGI_GET_VALUES with the variables it knows.
func (c *conn) getValues(q []byte) error {
	var names []string
	err := ParsePairs(q, func(name, _ []byte) error {
		names = append(names, string(name))
		return nil
	})
	if err != nil {
		return &ConnError{err}
	}
	var body []byte
	for _, n := range names {
		switch n {
		case "FCGI_MAX_CONNS":
			body = AppendPair(body, n, strconv.Itoa(c.srv.maxConns()))
		case "FCGI_MAX_REQS":
			body = AppendPair(body, n, strconv.Itoa(defaults.Or(c.srv.MaxRequests, DefaultMaxRequests)))
		case "FCGI_MPXS_CONNS":
			body = AppendPair(body, n, "1")
		}
	}
	if len(body) > MaxContent {
		body = nil // a query naming each variable thousands of times
	}
	return c.write(func(b []byte) []byte { return AppendRecord(b, TypeGetValuesResult, 0, body) }, true)
}

// begin starts a request on BEGIN_REQUEST.
func (c *conn) begin(id uint16, content []byte) error {
	if id == 0 {
		return protocolError("BEGIN_REQUEST on request 0")
	}
	br, err := ParseBeginRequest(content)
	if err != nil {
		return &ConnError{err}
	}
	c.mu.Lock()
	_, dup := c.reqs[id]
	n := len(c.reqs)
	if n > 0 {
		// The web server multiplexes here: a request run in the read loop
		// would keep the next ones unread until it hands the reading on.
		c.multiplexed = true
	}
	c.mu.Unlock()
	if dup {
		return protocolError("BEGIN_REQUEST for request %d, which is in progress", id)
	}
	end := func(ps ProtocolStatus) error {
		if err := c.write(func(b []byte) []byte { return AppendEndRequest(b, id, 0, ps) }, true); err != nil {
			return err
		}
		if br.Flags&FlagKeepConn == 0 && n == 0 {
			return errDone // spec § 5.1: without KEEP_CONN the application closes
		}
		return nil
	}
	if br.Role < RoleResponder || br.Role > RoleFilter {
		return end(UnknownRole)
	}
	if n >= defaults.Or(c.srv.MaxConnRequests, DefaultMaxConnRequests) ||
		c.srv.requests.Load() >= int64(defaults.Or(c.srv.MaxRequests, DefaultMaxRequests)) {
		c.srv.log().Warn().Uint16("request", id).Msg("fastcgi: overloaded; answering OVERLOADED")
		return end(Overloaded)
	}
	if c.setup >= defaults.Or(c.srv.MaxConnSetup, DefaultMaxConnSetup) {
		if !c.saidSetup { // once per connection: a flood must not flood the log
			c.saidSetup = true
			c.srv.log().Warn().Uint16("request", id).Int("in_setup", c.setup).Str("remote", c.rwc.RemoteAddr().String()).
				Msg("fastcgi: too many requests on the connection wait for their PARAMS; answering OVERLOADED")
		}
		return end(Overloaded)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	r := &request{
		id:     id,
		role:   br.Role,
		keep:   br.Flags&FlagKeepConn != 0,
		ctx:    ctx,
		cancel: cancel,
		began:  time.Now(),
		stdin: newBodyBuffer(defaults.Or(c.srv.BodyMemory, DefaultBodyMemory),
			defaults.Or(c.srv.MaxRequestBody, DefaultMaxRequestBody), c.srv.TempDir),
	}
	if r.role == RoleFilter {
		r.data = newBodyBuffer(defaults.Or(c.srv.BodyMemory, DefaultBodyMemory),
			defaults.Or(c.srv.MaxRequestBody, DefaultMaxRequestBody), c.srv.TempDir)
	}
	c.mu.Lock()
	c.reqs[id] = r
	if !r.keep {
		c.closing = true
	}
	c.mu.Unlock()
	c.setup++
	return nil
}

// abort handles ABORT_REQUEST: a running handler sees its context end and
// its body fail; a request still reading PARAMS ends at once.
func (c *conn) abort(r *request) {
	r.abortRequested.Store(true)
	r.cancel()
	r.stdin.abort(ErrRequestAborted)
	if r.data != nil {
		r.data.abort(ErrRequestAborted)
	}
	if !r.started {
		c.leaveSetup(r)
		c.finish(r, nil, 0)
	}
}

// paramsDone parses PARAMS once they have ended and starts the handler, or
// waits for the first STDIN record when the body's length is not given.
func (c *conn) paramsDone(r *request) {
	r.state = stateStdin
	r.vars, r.bad = c.parseParams(r)
	if r.bad == nil && r.role != RoleAuthorizer && r.vars["CONTENT_LENGTH"] == "" {
		// Still in setup until the first STDIN record, but its PARAMS
		// no longer take memory.
		c.setupBytes -= len(r.params)
		r.params = nil
		r.waitStdin = true
		return
	}
	c.start(r, false)
}

// start runs the handler; chunked says a body of unknown length follows.
// The request leaves setup. It reports whether the handler ran in the read
// loop's goroutine and handed the reading on (runInline).
func (c *conn) start(r *request, chunked bool) (handedOff bool) {
	if !r.expired {
		c.leaveSetup(r)
	}
	r.params = nil
	r.started = true
	c.srv.requests.Add(1)
	c.mu.Lock()
	c.running++
	first := c.running == 1
	// Alone on the connection, its input all come and nothing more
	// received (nginx's and ferry's way with a request without a body on
	// a kept connection), on a connection that has not carried two
	// requests at once, and no request run in a read loop before it still
	// there after its finish: it runs here.
	inline := first && c.inline == inlineNone && !c.multiplexed && r.state == stateDone && c.cr.br.Buffered() == 0
	if inline {
		c.inline = inlineRunning
	}
	c.mu.Unlock()
	if first {
		c.slot.SetWaiting(false) // for good: see finish
	}
	c.wg.Add(1)
	if inline {
		return c.runInline(r)
	}
	go c.serveRequest(r, chunked)
	return false
}

// parseParams parses the PARAMS stream, or returns a *cgi.StatusError
// saying which status to answer with.
func (c *conn) parseParams(r *request) (map[string]string, error) {
	if r.paramsDropped {
		return nil, &cgi.StatusError{Status: http.StatusRequestHeaderFieldsTooLarge, Err: fmt.Errorf("fastcgi: PARAMS longer than %d bytes", defaults.Or(c.srv.MaxParamsBytes, DefaultMaxParamsBytes))}
	}
	// The names and values are substrings of one copy of the stream: one
	// allocation, not two per pair. ParsePairs hands out subslices of
	// r.params, whose offsets their capacities give.
	all, end := string(r.params), cap(r.params)
	maxParams := defaults.Or(c.srv.MaxParams, DefaultMaxParams)
	n := 0
	_ = ParsePairs(r.params, func(_, _ []byte) error { n++; return nil }) // its errors come again below
	vars := make(map[string]string, min(n, maxParams))
	err := ParsePairs(r.params, func(name, value []byte) error {
		if len(vars) >= maxParams {
			return fmt.Errorf("fastcgi: more than %d params", maxParams)
		}
		ni, vi := end-cap(name), end-cap(value)
		vars[all[ni:ni+len(name)]] = all[vi : vi+len(value)]
		return nil
	})
	switch {
	case errors.Is(err, ErrMalformedPairs):
		return nil, &cgi.StatusError{Status: http.StatusBadRequest, Err: err}
	case err != nil:
		return nil, &cgi.StatusError{Status: http.StatusRequestHeaderFieldsTooLarge, Err: err}
	}
	return vars, nil
}

// serveRequest runs the handler for r and ends the request.
func (c *conn) serveRequest(r *request, chunked bool) {
	defer c.wg.Done()
	sw := &streamWriter{c: c, id: r.id}
	if err := c.buildRequest(r, chunked); err != nil {
		status := cgi.StatusOf(err)
		// Answer as a web server would: the client sees why.
		c.srv.log().Warn().Err(err).Uint16("request", r.id).Msg("fastcgi: bad request")
		rw := cgi.NewResponseWriter(sw, nil)
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.WriteHeader(status)
		fmt.Fprintf(rw, "%d %s\n", status, http.StatusText(status))
		c.finish(r, rw, 0)
		return
	}
	req := r.httpReq
	rw := cgi.NewResponseWriter(sw, req)
	p, aborted := rw.Run(c.srv.handler(), req)
	if p != nil && p != http.ErrAbortHandler {
		c.srv.log().Error().Interface("panic", p).Str("path", req.URL.Path).Msg("fastcgi: handler panic")
	}
	if aborted && r.abortRequested.Load() {
		// The web server asked for the abort and takes no more of this
		// response: it ends with END_REQUEST (spec § 5.4), and the
		// connection goes on.
		c.finish(r, rw, 1)
		return
	}
	if aborted {
		// The response must not look complete; on FastCGI only a closed
		// connection says so to the web server (and ends any other request
		// multiplexed on it).
		c.srv.log().Warn().Uint16("request", r.id).Str("path", req.URL.Path).Msg("fastcgi: response aborted; closing the connection")
		c.rwc.Close()
		c.finish(r, nil, 1)
		return
	}
	c.finish(r, rw, 0)
}

// buildRequest turns the parsed PARAMS into the http.Request, or returns a
// *cgi.StatusError saying which status to answer with.
func (c *conn) buildRequest(r *request, chunked bool) error {
	if r.bad != nil {
		return r.bad
	}
	vars := r.vars
	ctx := context.WithValue(r.ctx, roleKey{}, r.role)
	if r.data != nil {
		ctx = context.WithValue(ctx, dataKey{}, r.data)
	}
	req, err := cgi.RequestFromEnv(ctx, vars)
	if err != nil {
		return &cgi.StatusError{Status: http.StatusBadRequest, Err: err}
	}
	switch r.role {
	case RoleAuthorizer:
		req.Body = http.NoBody // spec § 6.3: no request body
		req.ContentLength = 0
	default:
		req.Body = r.stdin
		if chunked {
			req.ContentLength = -1 // the body's length is not known
		}
	}
	r.httpReq = req
	return nil
}

// roleKey and dataKey are the context keys buildRequest sets.
type roleKey struct{}
type dataKey struct{}

// RoleOf returns the FastCGI role of the request r, or 0 if r did not come
// through a FastCGI Server.
func RoleOf(r *http.Request) Role {
	role, _ := r.Context().Value(roleKey{}).(Role)
	return role
}

// FilterData returns the FCGI_DATA stream of a Filter request (the file to
// filter; its length is in FCGI_DATA_LENGTH), or nil for other roles.
func FilterData(r *http.Request) io.Reader {
	d, _ := r.Context().Value(dataKey{}).(*bodyBuffer)
	if d == nil {
		return nil
	}
	return d
}

// finish ends the request: the rest of its output, the empty STDOUT record
// and exactly one END_REQUEST, in one write. rw may be nil when nothing is
// to be sent on STDOUT.
func (c *conn) finish(r *request, rw *cgi.ResponseWriter, appStatus uint32) {
	if rw != nil {
		_ = rw.Close() // a write error means the connection is gone; END_REQUEST below fails the same way
	}
	r.cancel()
	r.stdin.Close()
	if r.data != nil {
		r.data.Close()
	}
	// The request leaves the table before END_REQUEST goes out: the web
	// server may reuse its ID as soon as it reads it (spec § 3.3).
	c.mu.Lock()
	delete(c.reqs, r.id)
	last := len(c.reqs) == 0
	closeNow := last && c.closing
	c.ending.Add(1)
	if r.started {
		// A connection that has served a request keeps its place when
		// idle: the web server keeps it on purpose (nginx's keepalive),
		// and a worker serving one connection at a time, as php-cgi
		// does, is held by it.
		c.running--
	}
	c.mu.Unlock()
	if r.started {
		c.srv.requests.Add(-1)
	}
	_ = c.write(func(b []byte) []byte {
		if rw != nil {
			b = AppendRecord(b, TypeStdout, r.id, nil)
		}
		return AppendEndRequest(b, r.id, appStatus, RequestComplete)
	}, true) // an error: the web server went away, and the read loop sees it too
	c.ending.Add(-1)
	switch {
	case closeNow || (last && c.srv.serving.Closed()):
		// Without FCGI_KEEP_CONN the application closes the connection
		// (spec § 5.1); on shutdown an idle connection goes too.
		c.rwc.Close()
	case last && c.srv.idleTimeout() > 0:
		// The read loop armed no deadline while this request ran.
		_ = c.rwc.SetReadDeadline(time.Now().Add(c.srv.idleTimeout())) // a closed conn: nothing to time out
	}
}

// CloseIfIdle closes the connection if no request is in progress: on
// Shutdown, a kept connection does not hold the server up.
func (c *conn) CloseIfIdle() {
	c.mu.Lock()
	idle := len(c.reqs) == 0 && c.ending.Load() == 0
	c.mu.Unlock()
	if idle {
		c.rwc.Close()
	}
}

// Close closes the connection at once and ends its requests' contexts.
func (c *conn) Close() {
	c.rwc.Close()
	c.cancel()
}

// write appends records with fn into the connection's buffer and, if flush,
// sends them.
func (c *conn) write(fn func([]byte) []byte, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wbroken {
		return net.ErrClosed
	}
	c.wbuf = fn(c.wbuf[:0])
	_, err := c.writer().Write(c.wbuf)
	if err == nil && flush {
		err = c.flushLocked()
	}
	if err != nil {
		c.wbroken = true
	}
	return err
}

// streamWriter frames a request's output as STDOUT records. Write fills the
// connection's buffer; Flush sends it.
type streamWriter struct {
	c  *conn
	id uint16
}

func (sw *streamWriter) Write(p []byte) (int, error) {
	c := sw.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wbroken {
		return 0, net.ErrClosed
	}
	n := 0
	bw := c.writer()
	for n < len(p) {
		chunk := p[n:min(len(p), n+MaxContent)]
		pad := -len(chunk) & 7
		hdr := [HeaderLen]byte{Version1, byte(TypeStdout), byte(sw.id >> 8), byte(sw.id), byte(len(chunk) >> 8), byte(len(chunk)), byte(pad), 0}
		bw.Write(hdr[:])
		bw.Write(chunk)
		if _, err := bw.Write(zeros[:pad]); err != nil {
			c.wbroken = true
			return n, err
		}
		n += len(chunk)
	}
	return n, nil
}

// Flush sends what the connection has buffered.
func (sw *streamWriter) Flush() error {
	c := sw.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wbroken {
		return net.ErrClosed
	}
	if err := c.flushLocked(); err != nil {
		c.wbroken = true
		return err
	}
	return nil
}
