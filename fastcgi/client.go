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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/defaults"
	"github.com/ferrygw/ferry/internal/linelog"
	"github.com/rs/zerolog"
)

// Defaults for the zero fields of [Client].
const (
	DefaultDialTimeout   = 3 * time.Second
	DefaultReadTimeout   = 60 * time.Second // nginx's fastcgi_read_timeout
	DefaultWriteTimeout  = 60 * time.Second
	DefaultQueueTimeout  = 30 * time.Second
	DefaultClientIdle    = 60 * time.Second
	DefaultClientMaxConn = 64
)

// Errors a [Client] returns. Those answered with another status than 502
// are [*cgi.StatusError]s, read with cgi.StatusOf; a timeout wraps
// context.DeadlineExceeded (504).
var (
	// ErrPoolTimeout: every connection stayed busy for QueueTimeout (503).
	ErrPoolTimeout error = &cgi.StatusError{Status: http.StatusServiceUnavailable, Err: errors.New("fastcgi: no backend connection free in time")}
	// ErrOverloaded: the application answered OVERLOADED (503).
	ErrOverloaded error = &cgi.StatusError{Status: http.StatusServiceUnavailable, Err: errors.New("fastcgi: application overloaded")}
	// ErrUnknownRole: the application does not take the role (502).
	ErrUnknownRole = errors.New("fastcgi: application refused the role")
	// ErrCantMpxConn: the application refused a second request on a
	// connection (502).
	ErrCantMpxConn = errors.New("fastcgi: application cannot multiplex")
	// ErrNoEndRequest: the connection ended before END_REQUEST (502).
	ErrNoEndRequest = errors.New("fastcgi: connection closed before END_REQUEST")
	// ErrNoGetValues: the application answered GET_VALUES with
	// UNKNOWN_TYPE: it does not know the record, so it says nothing of
	// its limits.
	ErrNoGetValues = errors.New("fastcgi: the application does not know GET_VALUES (it answered UNKNOWN_TYPE)")
)

// Client sends requests to a FastCGI application (php-fpm, php-cgi -b,
// Perl FCGI, uwsgi, ferry) over a pool of kept-alive connections
// (FCGI_KEEP_CONN). The pool is capped at MaxConns; more requests wait in
// ferry, up to QueueTimeout, rather than pile up in the application's
// listen backlog. The zero value needs only Network and Address; sizes
// and durations that are zero or negative take their defaults.
//
// A Client is a [cgi.Transport]: [NewHandler] forwards HTTP requests
// through it. [Client.Do] is the lower-level call, for the other roles
// (Authorizer, Filter), the application's stderr and its exit status.
type Client struct {
	// Network and Address name the application: "tcp" and "127.0.0.1:9000",
	// or "unix" and "/run/php/php-fpm.sock".
	Network, Address string
	// MaxConns caps the connections, and so the requests in progress; set
	// it to the application's worker count (php-fpm's pm.max_children). If
	// zero, the application's FCGI_MAX_CONNS answer to GET_VALUES is used
	// (php-cgi -b and ferry give one; php-fpm does not). When neither is
	// known, connections are not kept (FCGI_KEEP_CONN is not asked), as
	// nginx does by default: a kept connection holds a worker, and a pool
	// larger than the workers would leave requests waiting in the
	// application's backlog behind idle connections for ever. Then at most
	// DefaultClientMaxConn requests run at once.
	MaxConns int
	// The timeouts, each DefaultXxx when zero or negative: QueueTimeout
	// bounds the wait for a free connection, DialTimeout connecting,
	// ReadTimeout the wait for each record of the response, WriteTimeout
	// each write of the request; IdleTimeout closes connections idle for
	// longer (DefaultClientIdle).
	QueueTimeout, DialTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// NoKeepConn asks the application to close the connection after each
	// request.
	NoKeepConn bool
	// NoMultiplex keeps to one request per connection even when the
	// application answers FCGI_MPXS_CONNS=1. Otherwise such an application
	// that allows fewer than 64 connections (MaxConns, or its
	// FCGI_MAX_CONNS) gets its requests multiplexed over them (request
	// IDs, FastCGI 1.0 § 3.3), as many at once as its FCGI_MAX_REQS says.
	// One that allows more gets a kept connection per request in
	// progress, as if NoMultiplex were set.
	NoMultiplex bool
	// Logger receives the application's stderr lines and connection
	// errors. If nil, nothing is logged.
	Logger *zerolog.Logger
	// MaxStderrBytes bounds the STDERR logged per request: past it, one
	// line says so and the rest is read and dropped, as a CGI script's
	// ([cgi.Handler]). If zero or negative, cgi.DefaultMaxStderrBytes.
	MaxStderrBytes int64

	initMu sync.Mutex // serialises init until it is done (state.ready)
	// initFails counts the inits that could not reach the application;
	// initErr is the last one's error, under initMu. A request that
	// waited for an init to fail takes its error rather than dialling
	// in turn: with an application that drops connections (a host gone,
	// a full backlog), each would wait its own dial timeout, one after
	// another.
	initFails atomic.Uint64
	initErr   error

	keep     bool         // connections are kept: the pool size is known
	slots    *cgi.Limiter // the requests allowed in progress
	multi    bool         // requests are multiplexed
	mpxConns int          // the cap on multiplexed connections
	mu       sync.Mutex   // guards idle and mpx
	idle     []*clientConn
	mpx      []*mpxConn
	state    clientState // for Stats
}

// clientConn is one connection to the application.
type clientConn struct {
	nc       net.Conn
	cr       *connReader // pooled: a connection per request must not cost fresh buffers
	br       *bufio.Reader
	rd       *Reader
	lastUsed time.Time
}

// close closes the connection and gives its buffers back.
func (cc *clientConn) close() {
	cc.nc.Close()
	if cc.cr != nil {
		cc.cr.br.Reset(nil)
		readerPool.Put(cc.cr)
		cc.cr, cc.br, cc.rd = nil, nil, nil
	}
}

// maxPool and maxPoolRequests cap what an application's GET_VALUES answer
// can make a pool: connections, and requests in progress when multiplexed.
const (
	maxPool         = 1024
	maxPoolRequests = 16384
)

// multiplexBelow is the connection cap under which a Client multiplexes an
// application that allows it (FCGI_MPXS_CONNS=1). With that many
// connections or more, each request in progress has a kept connection of
// its own, as nginx and Apache keep them, and requests past the cap
// queue: a connection read by its request's own goroutine costs less than
// one read by a goroutine of its own that hands each response on (in
// BenchmarkKeptOrMultiplexed, 5 allocations and about 4 µs of CPU a
// request less, a tenth, both sides counted). Below it, connections are scarce, and
// requests share them up to the application's FCGI_MAX_REQS rather than
// queue.
const multiplexBelow = DefaultClientMaxConn

// init sizes the pool once, from the application's GET_VALUES answer
// unless NoKeepConn; ctx is the request's that asks. An application that
// cannot be reached is asked again by the next request (the one that
// asked fails, as its own connect would have), so that one down at the first request is not taken for good
// for one that says neither FCGI_MAX_CONNS nor FCGI_MPXS_CONNS: never
// multiplexed, its connections kept only with MaxConns.
func (c *Client) init(ctx context.Context) error {
	if c.state.ready.Load() {
		return nil
	}
	fails := c.initFails.Load()
	c.initMu.Lock()
	defer c.initMu.Unlock()
	if c.state.ready.Load() {
		return nil
	}
	if c.initFails.Load() != fails {
		return c.initErr // an init failed while this request waited for it
	}
	n, known := c.MaxConns, c.MaxConns > 0
	if c.NoKeepConn {
		if !known {
			n = DefaultClientMaxConn
		}
		c.slots = c.newLimiter(n)
		c.state.ready.Store(true)
		return nil
	}
	// Ask even when the size is given, for FCGI_MPXS_CONNS, but
	// briefly: an application that ignores management records must
	// not hold up the first request.
	wait := defaults.Or(c.DialTimeout, DefaultDialTimeout)
	if known {
		wait = min(wait, 500*time.Millisecond)
	}
	// The request's context without its end: the dial is traced as the
	// request's (httptrace, as ferry probe reads it), but a request
	// that goes away does not fail the init the others wait for.
	vals, err := c.getValues(context.WithoutCancel(ctx), wait, "FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS")
	if oe := (*net.OpError)(nil); errors.As(err, &oe) && oe.Op == "dial" {
		c.initErr = err
		c.initFails.Add(1)
		return err
	}
	if !known {
		for _, k := range []string{"FCGI_MAX_CONNS", "FCGI_MAX_REQS"} {
			if v, err := strconv.Atoi(vals[k]); err == nil && v > 0 {
				n, known = min(v, maxPool), true
				c.log().Info().Str("backend", c.Address).Int("max_conns", n).Str("from", k).Msg("fastcgi: pool sized by the application; connections kept")
				break
			}
		}
		if !known {
			// A kept pool larger than the application's workers
			// starves it: a worker stays with its kept connection
			// while requests wait in the listen backlog.
			c.log().Warn().AnErr("get_values", err).Str("backend", c.Address).Msg("fastcgi: the application does not say FCGI_MAX_CONNS: a connection per request; set max_conns to its worker count (php-fpm pm.max_children) for kept connections")
			n = DefaultClientMaxConn
		}
	}
	c.keep = known
	if known && !c.NoMultiplex && vals["FCGI_MPXS_CONNS"] == "1" && n < multiplexBelow {
		reqs := n
		if v, err := strconv.Atoi(vals["FCGI_MAX_REQS"]); err == nil && v > 0 {
			reqs = min(v, maxPoolRequests)
		}
		c.multi, c.mpxConns, n = true, n, reqs
		c.log().Info().Str("backend", c.Address).Int("max_requests", reqs).Int("max_conns", c.mpxConns).Msg("fastcgi: the application multiplexes: requests share connections")
	}
	c.slots = c.newLimiter(n)
	c.state.ready.Store(true)
	return nil
}

// newLimiter bounds the requests in progress at n, with no bound on the
// requests waiting for one to end: only QueueTimeout.
func (c *Client) newLimiter(n int) *cgi.Limiter {
	return cgi.NewLimiter(n, -1, defaults.Or(c.QueueTimeout, DefaultQueueTimeout))
}

func (c *Client) log() *zerolog.Logger {
	if c.Logger == nil {
		l := zerolog.Nop()
		return &l
	}
	return c.Logger
}

func (c *Client) dial(ctx context.Context) (*clientConn, error) {
	// No TCP keep-alive probes: idle connections are closed after
	// IdleTimeout anyway, and the setsockopt calls cost on every dial.
	d := net.Dialer{Timeout: defaults.Or(c.DialTimeout, DefaultDialTimeout), KeepAlive: -1}
	nc, err := d.DialContext(ctx, c.Network, c.Address)
	if err != nil {
		return nil, fmt.Errorf("fastcgi: connecting to %s:%s: %w", c.Network, c.Address, err)
	}
	cr := readerPool.Get().(*connReader)
	cr.br.Reset(nc)
	return &clientConn{nc: nc, cr: cr, br: cr.br, rd: cr.rd}, nil
}

// GetValues asks the application for the named variables (FCGI_MAX_CONNS,
// FCGI_MAX_REQS, FCGI_MPXS_CONNS) on a connection of its own. An
// application that answers UNKNOWN_TYPE, not knowing the record, gives
// [ErrNoGetValues].
func (c *Client) GetValues(ctx context.Context, names ...string) (map[string]string, error) {
	return c.getValues(ctx, defaults.Or(c.DialTimeout, DefaultDialTimeout), names...)
}

// getValues is GetValues waiting at most wait for the answer.
func (c *Client) getValues(ctx context.Context, wait time.Duration, names ...string) (map[string]string, error) {
	cc, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer cc.close()
	var q []byte
	for _, n := range names {
		q = AppendPair(q, n, "")
	}
	cc.nc.SetDeadline(time.Now().Add(wait))
	if _, err := cc.nc.Write(AppendRecord(nil, TypeGetValues, 0, q)); err != nil {
		return nil, fmt.Errorf("fastcgi: GET_VALUES: %w", err)
	}
	for {
		rec, err := cc.rd.Next()
		if err != nil {
			return nil, fmt.Errorf("fastcgi: GET_VALUES: %w", err)
		}
		if rec.Type == TypeUnknownType && rec.RequestID == 0 && len(rec.Content) > 0 && RecordType(rec.Content[0]) == TypeGetValues {
			// The application's answer to a management record it does
			// not know (FastCGI 1.0 § 4.2): no GET_VALUES_RESULT comes.
			return nil, ErrNoGetValues
		}
		if rec.Type != TypeGetValuesResult {
			continue
		}
		vals := make(map[string]string)
		err = ParsePairs(rec.Content, func(n, v []byte) error {
			vals[string(n)] = string(v)
			return nil
		})
		return vals, err
	}
}

// acquire takes a connection slot and a connection: an idle one that is
// still open, or a new one.
//
// With check false, an idle connection is taken without probing it: the
// caller retries on a fresh one if it turns out closed.
// With fresh, it always dials.
func (c *Client) acquire(ctx context.Context, check, fresh bool) (*clientConn, bool, error) {
	if err := c.takeSlot(ctx); err != nil {
		return nil, false, err
	}
	idleFor := defaults.Or(c.IdleTimeout, DefaultClientIdle)
	for !fresh {
		c.mu.Lock()
		var cc *clientConn
		if n := len(c.idle); n > 0 {
			cc = c.idle[n-1]
			c.idle = c.idle[:n-1]
		}
		c.mu.Unlock()
		if cc == nil {
			break
		}
		if time.Since(cc.lastUsed) < idleFor && (!check || cc.alive()) {
			return cc, true, nil
		}
		cc.close()
	}
	cc, err := c.dial(ctx)
	if err != nil {
		c.slots.Release()
		return nil, false, err
	}
	return cc, false, nil
}

// takeSlot waits for room for one more request in progress, up to the
// queue timeout.
func (c *Client) takeSlot(ctx context.Context) error {
	err := c.slots.Acquire(ctx)
	if errors.Is(err, cgi.ErrNoSlot) {
		return ErrPoolTimeout
	}
	return err
}

// alive reports whether an idle connection is still open: the application
// has neither closed it nor sent anything unasked.
func (cc *clientConn) alive() bool {
	if cc.br.Buffered() > 0 {
		return false
	}
	cc.nc.SetReadDeadline(time.Now())
	_, err := cc.br.Peek(1)
	cc.nc.SetReadDeadline(time.Time{})
	return isTimeout(err)
}

// release returns a connection: to the idle pool if reusable, else closed.
func (c *Client) release(cc *clientConn, reusable bool) {
	if reusable && c.keep {
		cc.lastUsed = time.Now()
		c.mu.Lock()
		c.idle = append(c.idle, cc)
		c.mu.Unlock()
	} else {
		cc.close()
	}
	c.slots.Release()
}

// CloseIdle closes the idle connections.
func (c *Client) CloseIdle() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, cc := range idle {
		cc.close()
	}
	c.closeIdleMpx()
}

// Request is one request to send: the meta-variables ("NAME=value") and the
// body of CONTENT_LENGTH bytes, if any.
type Request struct {
	Role   Role // zero: RoleResponder
	Params []string
	// Body is sent as the STDIN stream; nil for none.
	Body io.Reader
	// ContentLength, if positive, bounds what is read of Body: once the
	// application has answered, net/http may close a request body under
	// a read that only waits for its EOF. A Body that ends before fails the
	// request, whose STDIN is then never ended. If zero or negative, Body
	// is read to EOF.
	ContentLength int64
	// Stderr, if set, receives the application's STDERR stream; else it is
	// logged line by line.
	Stderr io.Writer
}

// Response is the application's answer: Stdout streams the STDOUT records
// (a CGI response). It must be read to EOF or closed.
type Response struct {
	Stdout io.ReadCloser
	// Ready reports whether the next Stdout read returns without waiting
	// for the application (for [cgi.CopyResponseReady]).
	Ready func() bool
	// AppStatus is END_REQUEST's application status, valid after EOF.
	AppStatus uint32
}

var _ cgi.Transport = (*Client)(nil)

// String names the application as log lines do: "network:address".
func (c *Client) String() string { return c.Network + ":" + c.Address }

// Do sends req and returns the response once the first STDOUT byte is
// there. The request body is written concurrently with reading the
// response, so an application that answers before it has read everything
// cannot deadlock. Ending ctx aborts the request (ABORT_REQUEST) and closes
// the connection.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	resp := &Response{}
	app, err := c.send(ctx, req, resp)
	if err != nil {
		return nil, err
	}
	// Both exchanges (one request per connection, multiplexed) give
	// their Ready as the Body's method.
	resp.Stdout, resp.Ready = app.Body, app.Body.(interface{ Ready() bool }).Ready
	return resp, nil
}

// RoundTrip sends req as a Responder request, as [Client.Do] does, and
// returns the STDOUT stream: a [cgi.Transport].
func (c *Client) RoundTrip(ctx context.Context, req *cgi.AppRequest) (*cgi.AppResponse, error) {
	return c.send(ctx, &Request{Params: req.Params, Body: req.Body, ContentLength: req.ContentLength}, nil)
}

// send sends req; resp, if not nil, gets the application status. The
// response returned is part of the request's stream: no allocation of its
// own.
func (c *Client) send(ctx context.Context, req *Request, resp *Response) (*cgi.AppResponse, error) {
	// A request without a body can be sent again: a kept connection the
	// application closed meanwhile (php-fpm's pm.max_requests) is not
	// probed first, and on failure before any answer the request goes once
	// more on a new connection, as nginx's next upstream does.
	if err := c.init(ctx); err != nil {
		return nil, cgi.NotSent(err) // the application is not reachable
	}
	if c.multi {
		return c.doMpx(ctx, req, resp)
	}
	retryable := req.Body == nil
	app, reused, err := c.do(ctx, req, resp, !retryable, false)
	if err != nil && reused && retryable && ctx.Err() == nil && errors.Is(err, errStale) {
		// Again on a new connection: other idle ones may be as stale.
		app, _, err = c.do(ctx, req, resp, false, true)
	}
	return app, err
}

// errStale marks a failure on a reused connection before any answer.
var errStale = errors.New("fastcgi: kept connection closed by the application")

func (c *Client) do(ctx context.Context, req *Request, resp *Response, check, fresh bool) (*cgi.AppResponse, bool, error) {
	cc, reused, err := c.acquire(ctx, check, fresh)
	if err != nil {
		// No connection (none free in time, or the dial failed): the
		// application never saw the request.
		return nil, false, cgi.NotSent(err)
	}
	x := &exchange{c: c, cc: cc, ctx: ctx, stderr: req.Stderr, resp: resp}
	x.stop = context.AfterFunc(ctx, func() {
		// Wake blocked reads and writes; the reader then aborts.
		cc.nc.SetDeadline(time.Unix(1, 0))
	})
	if err := x.send(req); err != nil {
		x.close(err)
		if reused {
			err = fmt.Errorf("%w: %w", errStale, err)
		}
		// BEGIN_REQUEST, PARAMS and their end go in one write, ahead of
		// any body: a failed write left the request incomplete, so the
		// application cannot have started it, and the body is unread.
		return nil, reused, cgi.NotSent(err)
	}
	x.app = cgi.AppResponse{Body: x} // its Ready is x's: no method value to allocate
	// Wait for the first output so that connection failures show here, as
	// a dial-time error would, and map to 502 before anything is sent.
	if _, err := x.fill(); err != nil && err != io.EOF {
		x.close(err)
		lost := !x.answered && (errors.Is(err, ErrNoEndRequest) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
		if reused && lost {
			err = fmt.Errorf("%w: %w", errStale, err)
		}
		if lost {
			// The request went out whole; the application may have run
			// it before the connection broke.
			err = cgi.NoAnswer(err)
		}
		return nil, reused, err
	}
	return &x.app, reused, nil
}

// exchange is one request in flight on a connection; it reads the STDOUT
// stream record by record.
type exchange struct {
	c        *Client
	cc       *clientConn
	ctx      context.Context
	stop     func() bool
	stderr   io.Writer
	resp     *Response       // gets the application status; nil for RoundTrip
	app      cgi.AppResponse // what the caller reads
	buf      []byte          // unread STDOUT content of the current record, in cc's reader
	done     atomic.Bool     // END_REQUEST seen; the body writer stops sending then
	answered bool            // a record came back
	err      error
	closed   bool
	bodyErr  chan error // the body writer's result, when there is a body
	// bodyFailure is why reading the request body failed, once it has:
	// the response's reader stops waiting.
	bodyFailure atomic.Pointer[error]

	lines *linelog.Writer // the STDERR stream's log, once it has some
}

const requestID = 1

// sendBufs are the buffers a request's first records are built in.
type sendBufs struct{ rec, pairs []byte }

var sendPool = sync.Pool{New: func() any { return &sendBufs{rec: make([]byte, 0, 4096), pairs: make([]byte, 0, 4096)} }}

// send writes BEGIN_REQUEST and PARAMS, and starts the body.
func (x *exchange) send(req *Request) error {
	role := req.Role
	if role == 0 {
		role = RoleResponder
	}
	flags := uint8(FlagKeepConn)
	if !x.c.keep {
		flags = 0
	}
	bp := sendPool.Get().(*sendBufs)
	defer sendPool.Put(bp)
	b := AppendBeginRequest(bp.rec[:0], requestID, role, flags)
	pairs := bp.pairs[:0]
	for _, kv := range req.Params {
		name, value, _ := strings.Cut(kv, "=")
		pairs = AppendPair(pairs, name, value)
	}
	b = AppendStream(b, TypeParams, requestID, pairs)
	b = AppendRecord(b, TypeParams, requestID, nil)
	if req.Body == nil {
		b = AppendRecord(b, TypeStdin, requestID, nil)
	}
	if cap(b) <= 64<<10 {
		bp.rec, bp.pairs = b, pairs
	}
	x.cc.nc.SetWriteDeadline(time.Now().Add(defaults.Or(x.c.WriteTimeout, DefaultWriteTimeout)))
	if _, err := x.cc.nc.Write(b); err != nil {
		return fmt.Errorf("fastcgi: sending request: %w", err)
	}
	if req.Body != nil {
		x.bodyErr = make(chan error, 1)
		go x.writeBody(limitBody(req))
	}
	return nil
}

// limitBody returns req's body, bounded by its ContentLength when that is
// positive. A body that ends short of that length fails with
// io.ErrUnexpectedEOF, so that its STDIN is never ended: the application
// must not take a cut body for a whole one.
func limitBody(req *Request) io.Reader {
	if req.ContentLength <= 0 {
		return req.Body
	}
	return &exactBody{r: req.Body, n: req.ContentLength}
}

// exactBody reads exactly n bytes of r.
type exactBody struct {
	r io.Reader
	n int64 // bytes left
}

func (b *exactBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	n, err := b.r.Read(p[:min(int64(len(p)), b.n)])
	b.n -= int64(n)
	switch {
	case b.n == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, fmt.Errorf("%d bytes short of CONTENT_LENGTH: %w", b.n, io.ErrUnexpectedEOF)
	}
	return n, err
}

// writeBody streams the request body as STDIN records.
func (x *exchange) writeBody(body io.Reader) {
	buf := make([]byte, 32<<10)
	var hdr [HeaderLen]byte
	var err error
	for !x.done.Load() {
		n, rerr := body.Read(buf)
		if x.done.Load() {
			break // the application ended the request while the read waited
		}
		if n > 0 {
			x.cc.nc.SetWriteDeadline(time.Now().Add(defaults.Or(x.c.WriteTimeout, DefaultWriteTimeout)))
			pad := -n & 7
			hdr = [HeaderLen]byte{Version1, byte(TypeStdin), 0, requestID, byte(n >> 8), byte(n), byte(pad), 0}
			bufs := net.Buffers{hdr[:], buf[:n], zeros[:pad]}
			if _, err = bufs.WriteTo(x.cc.nc); err != nil {
				err = fmt.Errorf("fastcgi: sending request body: %w", err)
				break
			}
		}
		if rerr == io.EOF {
			_, err = x.cc.nc.Write(AppendRecord(nil, TypeStdin, requestID, nil))
			break
		}
		if rerr != nil {
			err = fmt.Errorf("fastcgi: reading request body: %w", rerr)
			x.failBody(err)
			break
		}
	}
	x.bodyErr <- err
}

// failBody ends the exchange for a request body that failed to come: the
// application would wait for the rest of its STDIN until the read
// timeout, holding its worker. The connection then closes (a request
// left unended makes it useless), which ends the request there.
func (x *exchange) failBody(err error) {
	x.bodyFailure.Store(&err)
	x.cc.nc.SetReadDeadline(time.Unix(1, 0)) // wakes a read under way; fill checks bodyFailure before the next
}

// fill reads records until STDOUT content or the end of the request.
func (x *exchange) fill() (int, error) {
	for len(x.buf) == 0 {
		if x.done.Load() {
			return 0, io.EOF
		}
		if x.err != nil {
			return 0, x.err
		}
		x.cc.nc.SetReadDeadline(time.Now().Add(defaults.Or(x.c.ReadTimeout, DefaultReadTimeout)))
		if failed := x.bodyFailure.Load(); failed != nil { // after the deadline is set: see failBody
			x.err = *failed
			return 0, x.err
		}
		rec, err := x.cc.rd.Next()
		if err != nil {
			x.err = x.readError(err)
			return 0, x.err
		}
		x.answered = true
		if rec.RequestID == 0 {
			continue // management records: nothing was asked
		}
		if rec.RequestID != requestID {
			// The only request on the connection is ours: a record of
			// another is the application's error (nginx: "unexpected
			// FastCGI request id"), and waiting for ours to come would
			// end at the read timeout, in a 504.
			x.err = fmt.Errorf("fastcgi: %s sent a record of request ID %d on a connection carrying request ID %d", x.c.Address, rec.RequestID, requestID)
			return 0, x.err
		}
		switch rec.Type {
		case TypeStdout:
			// The record stays in the connection's reader until the
			// next fill, which comes only once x.buf is read: no copy.
			x.buf = rec.Content
		case TypeStderr:
			x.logStderr(rec.Content)
		case TypeEndRequest:
			er, err := ParseEndRequest(rec.Content)
			if err != nil {
				x.err = err
				return 0, err
			}
			x.flushStderr()
			switch er.ProtocolStatus {
			case RequestComplete:
				x.done.Store(true)
				if x.resp != nil {
					x.resp.AppStatus = er.AppStatus
				}
			case Overloaded:
				x.err = ErrOverloaded
			case UnknownRole:
				x.err = ErrUnknownRole
			case CantMpxConn:
				x.err = ErrCantMpxConn
			default:
				x.err = fmt.Errorf("fastcgi: END_REQUEST with protocol status %d", er.ProtocolStatus)
			}
		default:
			x.err = x.c.unexpectedRecord(rec.Header)
			return 0, x.err
		}
	}
	return len(x.buf), nil
}

// errUnexpectedRecord is wrapped by the error for a record of a request
// whose type the application must not send (see [Client.unexpectedRecord]).
var errUnexpectedRecord = errors.New("fastcgi: unexpected record from the application")

// unexpectedRecord is the error for a record of a request's ID whose type
// is not one an application sends for a request: only STDOUT, STDERR and
// END_REQUEST go that way (FastCGI 1.0 § 5.3, § 5.5); BEGIN_REQUEST,
// PARAMS, STDIN, DATA and ABORT_REQUEST go to the application, and the
// management types (GET_VALUES_RESULT, UNKNOWN_TYPE) come with request ID
// 0 (§ 3.3, § 4). The application's framing cannot be trusted past it:
// the request fails with 502, and its connection is closed, as nginx
// does ("upstream sent invalid FastCGI record type").
func (c *Client) unexpectedRecord(h Header) error {
	return fmt.Errorf("%w: %s sent a record of type %s for request ID %d, where only STDOUT, STDERR and END_REQUEST may come", errUnexpectedRecord, c.Address, h.Type, h.RequestID)
}

// Ready reports whether Read can return without waiting on the network:
// STDOUT content is at hand, the request has ended, or a whole record is
// buffered.
func (x *exchange) Ready() bool {
	if len(x.buf) > 0 || x.done.Load() || x.err != nil {
		return true
	}
	if x.cc.br.Buffered() < HeaderLen {
		return false
	}
	h, _ := x.cc.br.Peek(HeaderLen) // buffered: does not read
	need := HeaderLen + (int(h[4])<<8 | int(h[5])) + int(h[6])
	return x.cc.br.Buffered() >= need
}

// readError describes why reading the response failed.
func (x *exchange) readError(err error) error {
	switch {
	case x.ctx.Err() != nil:
		return x.ctx.Err()
	case x.bodyFailure.Load() != nil:
		return *x.bodyFailure.Load()
	case isTimeout(err):
		return fmt.Errorf("fastcgi: no response from %s within %v: %w", x.c.Address, defaults.Or(x.c.ReadTimeout, DefaultReadTimeout), context.DeadlineExceeded)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w (%s)", ErrNoEndRequest, x.c.Address)
	}
	return fmt.Errorf("fastcgi: reading from %s: %w", x.c.Address, err)
}

// errReadClosed is what a Read after Close returns: the connection may
// carry another request by then.
var errReadClosed = errors.New("fastcgi: read of a closed response")

// Read reads the STDOUT stream.
func (x *exchange) Read(p []byte) (int, error) {
	if x.closed {
		return 0, errReadClosed
	}
	if _, err := x.fill(); err != nil {
		return 0, err
	}
	n := copy(p, x.buf)
	x.buf = x.buf[n:]
	return n, nil
}

// Close ends the exchange: a connection whose request ended cleanly goes
// back to the pool.
func (x *exchange) Close() error {
	x.close(nil)
	return nil
}

func (x *exchange) close(err error) {
	if x.closed {
		return
	}
	x.closed = true
	x.buf = nil // it points into the connection's reader
	x.stop()
	reusable := x.done.Load() && err == nil && x.ctx.Err() == nil
	if x.bodyErr != nil {
		if !reusable {
			// Wake a body write stuck on a full socket.
			x.cc.nc.SetWriteDeadline(time.Unix(1, 0))
		}
		if berr := <-x.bodyErr; berr != nil {
			reusable = false
		}
	}
	if !x.done.Load() && x.ctx.Err() != nil {
		// The client went away: tell the application, then let the
		// connection go (a partly written record makes it useless anyway).
		x.cc.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		x.cc.nc.Write(AppendRecord(nil, TypeAbortRequest, requestID, nil)) // best effort: the connection closes next
	}
	if reusable {
		x.cc.nc.SetDeadline(time.Time{})
	}
	x.c.release(x.cc, reusable)
}

// logStderr sends the application's stderr on, line by line.
func (x *exchange) logStderr(p []byte) {
	if x.stderr != nil {
		x.stderr.Write(p)
		return
	}
	if x.lines == nil {
		x.lines = x.c.stderrLog(x.ctx)
	}
	x.lines.Write(p)
}

func (x *exchange) flushStderr() {
	if x.lines != nil {
		x.lines.Flush()
	}
}

// stderrLog returns the logger of one request's STDERR stream: the
// request's own logger ([cgi.LoggerFrom]), so that its lines carry the
// request's fields (ferry's req_id), else the client's.
func (c *Client) stderrLog(ctx context.Context) *linelog.Writer {
	l := cgi.LoggerFrom(ctx, nil)
	if l == nil {
		l = c.log()
	}
	return &linelog.Writer{
		Event:    func() *zerolog.Event { return l.Warn().Str("backend", c.Address) },
		Msg:      "fastcgi: application stderr",
		MaxBytes: defaults.Or(c.MaxStderrBytes, cgi.DefaultMaxStderrBytes),
		DropMsg:  "fastcgi: application stderr limit reached; dropping the rest",
	}
}
