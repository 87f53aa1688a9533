package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/defaults"
	"github.com/ferrygw/ferry/internal/linelog"
)

// Request-ID multiplexing (FastCGI 1.0 § 3.3): when the application answers
// FCGI_MPXS_CONNS=1 and allows few connections (multiplexBelow), a Client
// sends several requests over one connection, each with its own request
// ID. One goroutine per connection reads the records and hands each
// request's STDOUT to a stream buffer that never blocks it (memory, then a
// temporary file), so a slow consumer of one response cannot stall the
// others sharing the connection. Writes are serialized record by record.

const (
	// mpxStreamMemory bounds the memory one unread response holds before it
	// spills to a temporary file.
	mpxStreamMemory = 256 << 10
	// mpxStreamMax bounds one response not yet read by its consumer, as
	// nginx's fastcgi_max_temp_file_size does.
	mpxStreamMax = 1 << 30
)

// errResponseTooLarge fails a multiplexed response that its consumer left
// unread beyond mpxStreamMax bytes.
var errResponseTooLarge = errors.New("fastcgi: unread response too large")

// mpxConn is one multiplexed connection.
type mpxConn struct {
	c     *Client
	ready chan struct{} // closed once dialled: nc and cr are set, or dead
	nc    net.Conn
	cr    *connReader

	wmu sync.Mutex // serializes writes, record by record

	mu      sync.Mutex // guards the fields below
	streams map[uint16]*mpxStream
	nextID  uint16
	dead    error // set once the connection failed or closed
}

// mpxStream is one request on a multiplexed connection.
type mpxStream struct {
	mc     *mpxConn
	id     uint16
	out    *bodyBuffer
	stderr io.Writer
	ctx    context.Context // the request's, for its logger
	lines  *linelog.Writer // the STDERR stream's log, once it has some (read loop only)

	got     atomic.Bool     // a record for this request came back
	last    atomic.Int64    // when the last record came, unix nanoseconds
	ended   atomic.Bool     // END_REQUEST seen or the connection died
	aborted atomic.Bool     // ABORT_REQUEST sent
	timer   *time.Timer     // the read timeout
	release sync.Once       // gives back the client's slot
	resp    *Response       // gets the application status; nil for RoundTrip
	app     cgi.AppResponse // what the caller reads

	// The consumer's side.
	stop    func() bool // undoes the context.AfterFunc
	bodyErr chan error  // the body writer's result, when there is a body
	closed  bool
}

// errNotWritten marks a multiplexed request that failed before its
// records were written (doMpx turns it into cgi.ErrNotSent).
var errNotWritten = errors.New("fastcgi: request not written")

// doMpx sends req as a new request on a multiplexed connection; resp, if
// not nil, gets the application status.
func (c *Client) doMpx(ctx context.Context, req *Request, resp *Response) (*cgi.AppResponse, error) {
	retryable := req.Body == nil
	for attempt := 0; ; attempt++ {
		if err := c.takeSlot(ctx); err != nil {
			return nil, cgi.NotSent(err)
		}
		st, reused, err := c.openStream(ctx, attempt > 0, req.Stderr, resp)
		if err != nil {
			return nil, cgi.NotSent(err) // the failed stream gave its slot back
		}
		st.ctx = ctx // its stderr lines go to the request's logger
		app, err := st.start(ctx, req)
		if err == nil {
			return app, nil
		}
		// The application closed the idle connection (net.ErrClosed: the
		// read loop saw it first and closed our end under the write).
		stale := errors.Is(err, ErrNoEndRequest) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
		if attempt == 0 && reused && retryable && !st.got.Load() && ctx.Err() == nil && stale {
			continue // the connection was closed under us: once more on a new one
		}
		if errors.Is(err, errNotWritten) {
			err = cgi.NotSent(err)
		} else if stale && !st.got.Load() {
			err = cgi.NoAnswer(err) // sent whole: the application may have run it
		}
		return nil, err
	}
}

// openStream reserves a request ID on a connection: an idle one (reused
// is then true), else a
// new one while there are fewer than the connection cap, else the least
// busy; or a new one if fresh is set. So requests spread over connections
// (and the worker processes behind them) as without multiplexing, and only
// share connections past the cap, where they would otherwise queue.
//
// The stream's stderr and resp are set before the read loop can see it.
func (c *Client) openStream(ctx context.Context, fresh bool, stderr io.Writer, resp *Response) (*mpxStream, bool, error) {
	c.mu.Lock()
	if !fresh {
		var best *mpxConn
		bestN := 0
		for _, mc := range c.mpx {
			mc.mu.Lock()
			n, ok := len(mc.streams), mc.dead == nil
			mc.mu.Unlock()
			if ok && (best == nil || n < bestN) {
				best, bestN = mc, n
			}
		}
		if best != nil && (bestN == 0 || len(c.mpx) >= c.mpxConns) {
			st, err := best.newStream(stderr, resp)
			c.mu.Unlock()
			if err == nil {
				// Only an idle connection can have been closed by the
				// application unseen (the retry case).
				return st, bestN == 0, nil
			}
			return c.openStream(ctx, true, stderr, resp)
		}
	}
	// A new connection, in the list before it is dialled so that
	// concurrent requests count it (and wait for it) instead of dialling
	// past the cap.
	mc := &mpxConn{c: c, streams: make(map[uint16]*mpxStream), ready: make(chan struct{})}
	st, _ := mc.newStream(stderr, resp)
	c.mpx = append(c.mpx, mc)
	c.mu.Unlock()
	cc, err := c.dial(ctx)
	if err != nil {
		mc.kill(err)
		close(mc.ready)
		return nil, false, err
	}
	mc.nc, mc.cr = cc.nc, cc.cr
	close(mc.ready)
	go mc.readLoop()
	return st, false, nil
}

// newStream reserves the next free request ID for a request whose
// application stderr goes to stderr (nil: the log) and whose application
// status to resp (nil: nowhere).
func (mc *mpxConn) newStream(stderr io.Writer, resp *Response) (*mpxStream, error) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.dead != nil {
		return nil, mc.dead
	}
	for {
		mc.nextID++
		if mc.nextID == 0 {
			mc.nextID = 1
		}
		if _, busy := mc.streams[mc.nextID]; !busy {
			break
		}
	}
	out := newBodyBuffer(mpxStreamMemory, mpxStreamMax, "")
	out.what, out.tooLarge = "response", errResponseTooLarge
	st := &mpxStream{mc: mc, id: mc.nextID, out: out, stderr: stderr, resp: resp}
	st.app = cgi.AppResponse{Body: st} // its Ready is st's: no method value to allocate
	st.last.Store(time.Now().UnixNano())
	st.timer = time.AfterFunc(defaults.Or(mc.c.ReadTimeout, DefaultReadTimeout), st.checkTimeout)
	mc.streams[st.id] = st
	return st, nil
}

// start sends the request and waits for its first output.
func (st *mpxStream) start(ctx context.Context, req *Request) (*cgi.AppResponse, error) {
	mc := st.mc
	<-mc.ready
	if mc.nc == nil {
		st.fail(mc.err())
		return nil, fmt.Errorf("%w: %w", errNotWritten, mc.err())
	}
	role := req.Role
	if role == 0 {
		role = RoleResponder
	}
	bp := sendPool.Get().(*sendBufs)
	b := AppendBeginRequest(bp.rec[:0], st.id, role, FlagKeepConn)
	pairs := bp.pairs[:0]
	for _, kv := range req.Params {
		name, value, _ := strings.Cut(kv, "=")
		pairs = AppendPair(pairs, name, value)
	}
	b = AppendStream(b, TypeParams, st.id, pairs)
	b = AppendRecord(b, TypeParams, st.id, nil)
	if req.Body == nil {
		b = AppendRecord(b, TypeStdin, st.id, nil)
	}
	err := mc.write(b)
	if cap(b) <= 64<<10 {
		bp.rec, bp.pairs = b, pairs
	}
	sendPool.Put(bp)
	if err != nil {
		st.fail(err)
		st.Close()
		// The request's records go in one write: a failed one left it
		// incomplete, so the application cannot have started it.
		return nil, fmt.Errorf("%w: %w", errNotWritten, err)
	}
	st.stop = context.AfterFunc(ctx, func() { st.abort(ctx.Err()) })
	if req.Body != nil {
		st.bodyErr = make(chan error, 1)
		go st.writeBody(limitBody(req))
	}
	if err := st.out.wait(); err != nil {
		st.Close()
		return nil, err
	}
	return &st.app, nil
}

// write writes b whole, under the write lock; a failed write kills the
// connection.
func (mc *mpxConn) write(b []byte) error {
	mc.wmu.Lock()
	defer mc.wmu.Unlock()
	mc.nc.SetWriteDeadline(time.Now().Add(defaults.Or(mc.c.WriteTimeout, DefaultWriteTimeout)))
	if _, err := mc.nc.Write(b); err != nil {
		err = fmt.Errorf("fastcgi: sending to %s: %w", mc.c.Address, err)
		mc.kill(err)
		return err
	}
	return nil
}

// writeBody streams the request body as STDIN records, one record per
// write so other requests' records interleave.
func (st *mpxStream) writeBody(body io.Reader) {
	mc := st.mc
	buf := make([]byte, 32<<10)
	var err error
	for !st.ended.Load() && !st.aborted.Load() {
		n, rerr := body.Read(buf)
		if n > 0 {
			pad := -n & 7
			hdr := [HeaderLen]byte{Version1, byte(TypeStdin), byte(st.id >> 8), byte(st.id), byte(n >> 8), byte(n), byte(pad), 0}
			mc.wmu.Lock()
			mc.nc.SetWriteDeadline(time.Now().Add(defaults.Or(mc.c.WriteTimeout, DefaultWriteTimeout)))
			bufs := net.Buffers{hdr[:], buf[:n], zeros[:pad]}
			_, err = bufs.WriteTo(mc.nc)
			mc.wmu.Unlock()
			if err != nil {
				err = fmt.Errorf("fastcgi: sending request body: %w", err)
				mc.kill(err)
				break
			}
		}
		if rerr == io.EOF {
			err = mc.write(AppendRecord(nil, TypeStdin, st.id, nil))
			break
		}
		if rerr != nil {
			// The application would wait for a body that will not come,
			// until the read timeout: the request is over, whether or not
			// its answer has begun (a client that never sent its request
			// does not get it whole either).
			err = fmt.Errorf("fastcgi: reading request body: %w", rerr)
			st.abort(err)
			break
		}
	}
	st.bodyErr <- err
}

// checkTimeout fails the request if nothing came for it within the read
// timeout, and otherwise waits again.
func (st *mpxStream) checkTimeout() {
	if st.ended.Load() {
		return
	}
	rt := defaults.Or(st.mc.c.ReadTimeout, DefaultReadTimeout)
	if left := rt - time.Since(time.Unix(0, st.last.Load())); left > 0 {
		st.timer.Reset(left)
		return
	}
	st.abort(fmt.Errorf("fastcgi: no response from %s within %v: %w", st.mc.c.Address, rt, context.DeadlineExceeded))
}

// abort fails the stream with err and asks the application to stop the
// request (ABORT_REQUEST); its ID stays taken until END_REQUEST.
func (st *mpxStream) abort(err error) {
	if st.ended.Load() || !st.aborted.CompareAndSwap(false, true) {
		return
	}
	st.out.abort(err)
	st.mc.write(AppendRecord(nil, TypeAbortRequest, st.id, nil)) // on failure the connection dies, ending the request
}

// fail fails the stream for good: its connection is gone.
func (st *mpxStream) fail(err error) {
	st.ended.Store(true)
	st.timer.Stop()
	st.out.abort(err)
	st.release.Do(func() { st.mc.c.slots.Release() })
}

// Ready reports whether Read can return without waiting for the
// application.
func (st *mpxStream) Ready() bool { return st.out.ready() }

// Read reads the STDOUT stream.
func (st *mpxStream) Read(p []byte) (int, error) {
	return st.out.Read(p)
}

// Close ends the consumer's side: a request still running is aborted.
func (st *mpxStream) Close() error {
	if st.closed {
		return nil
	}
	st.closed = true
	if st.stop != nil {
		st.stop()
	}
	if !st.ended.Load() {
		st.abort(context.Canceled)
	}
	if st.bodyErr != nil {
		<-st.bodyErr
	}
	st.out.Close()
	return nil
}

// end finishes a request on END_REQUEST.
func (st *mpxStream) end(er EndRequest) {
	st.flushStderr()
	// Ended before the consumer can see the end: its Close must not
	// abort a request that is over.
	st.ended.Store(true)
	st.timer.Stop()
	switch er.ProtocolStatus {
	case RequestComplete:
		if st.resp != nil {
			st.resp.AppStatus = er.AppStatus
		}
		st.out.end()
	case Overloaded:
		st.out.abort(ErrOverloaded)
	case UnknownRole:
		st.out.abort(ErrUnknownRole)
	case CantMpxConn:
		st.out.abort(ErrCantMpxConn)
	default:
		st.out.abort(fmt.Errorf("fastcgi: END_REQUEST with protocol status %d", er.ProtocolStatus))
	}
	st.release.Do(func() { st.mc.c.slots.Release() })
}

// readLoop reads the connection's records and hands them to their
// requests, until the connection fails or stays idle for the idle timeout.
func (mc *mpxConn) readLoop() {
	c := mc.c
	idle := defaults.Or(c.IdleTimeout, DefaultClientIdle)
	var err error
	for {
		mc.mu.Lock()
		n, dead := len(mc.streams), mc.dead
		mc.mu.Unlock()
		if dead != nil {
			err = dead
			break
		}
		if n == 0 {
			mc.nc.SetReadDeadline(time.Now().Add(idle))
		} else {
			mc.nc.SetReadDeadline(time.Time{})
		}
		var rec Record
		rec, err = mc.cr.rd.Next()
		if err != nil {
			if isTimeout(err) {
				mc.mu.Lock()
				n = len(mc.streams)
				if n == 0 {
					mc.dead = errIdle
				}
				mc.mu.Unlock()
				if n > 0 {
					continue // a request began just as the idle deadline passed
				}
			}
			break
		}
		mc.mu.Lock()
		st := mc.streams[rec.RequestID]
		if st != nil && rec.Type == TypeEndRequest {
			delete(mc.streams, rec.RequestID)
		}
		mc.mu.Unlock()
		if st == nil {
			continue // management records, or a request already given up
		}
		st.got.Store(true)
		st.last.Store(time.Now().UnixNano())
		switch rec.Type {
		case TypeStdout:
			if len(rec.Content) > 0 {
				st.out.write(rec.Content)
			}
		case TypeStderr:
			st.logStderr(rec.Content)
		case TypeEndRequest:
			er, perr := ParseEndRequest(rec.Content)
			if perr != nil {
				err = &ConnError{Err: perr}
				st.fail(perr)
				break
			}
			st.end(er)
		default:
			// The connection's framing cannot be trusted past it: its
			// requests all fail, as a malformed END_REQUEST fails them.
			err = c.unexpectedRecord(rec.Header)
		}
		if err != nil {
			break
		}
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("%w (%s)", ErrNoEndRequest, c.Address)
	case errors.Is(err, errIdle), errors.Is(err, net.ErrClosed), errors.Is(err, errUnexpectedRecord):
	default:
		err = fmt.Errorf("fastcgi: reading from %s: %w", c.Address, err)
	}
	mc.kill(err)
	mc.cr.br.Reset(nil)
	readerPool.Put(mc.cr)
}

// errIdle ends a multiplexed connection nobody used for the idle timeout.
var errIdle = errors.New("fastcgi: idle connection closed")

// kill marks the connection dead, fails its requests and removes it from
// the client. The read loop then ends.
func (mc *mpxConn) kill(err error) {
	mc.mu.Lock()
	if mc.dead == nil || mc.dead == errIdle {
		mc.dead = err
	}
	streams := mc.streams
	mc.streams = nil
	mc.mu.Unlock()
	for _, st := range streams {
		st.fail(fmt.Errorf("%w", err))
	}
	c := mc.c
	c.mu.Lock()
	for i, x := range c.mpx {
		if x == mc {
			c.mpx = append(c.mpx[:i], c.mpx[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	if !errors.Is(err, errIdle) && len(streams) > 0 {
		c.log().Warn().Err(err).Str("backend", c.Address).Int("requests", len(streams)).Msg("fastcgi: multiplexed connection lost")
	}
	if mc.nc != nil {
		mc.nc.Close() // wakes the read loop
	}
}

// err returns why the connection died.
func (mc *mpxConn) err() error {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.dead
}

// closeIdleMpx closes the multiplexed connections without requests.
func (c *Client) closeIdleMpx() {
	c.mu.Lock()
	conns := append([]*mpxConn(nil), c.mpx...)
	c.mu.Unlock()
	for _, mc := range conns {
		mc.mu.Lock()
		idle := len(mc.streams) == 0
		mc.mu.Unlock()
		if idle {
			mc.kill(errIdle)
		}
	}
}

// logStderr sends the application's stderr on, line by line.
func (st *mpxStream) logStderr(p []byte) {
	if st.stderr != nil {
		st.stderr.Write(p)
		return
	}
	if st.lines == nil {
		st.lines = st.mc.c.stderrLog(st.ctx)
	}
	st.lines.Write(p)
}

func (st *mpxStream) flushStderr() {
	if st.lines != nil {
		st.lines.Flush()
	}
}
