package scgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/defaults"
	"github.com/rs/zerolog"
)

// Defaults for the zero fields of [Client].
const (
	DefaultDialTimeout  = 3 * time.Second
	DefaultReadTimeout  = 60 * time.Second // nginx's scgi_read_timeout
	DefaultWriteTimeout = 60 * time.Second // nginx's scgi_send_timeout
	DefaultQueueTimeout = 30 * time.Second
	DefaultClientConns  = 64
)

// Errors a [Client] returns. Those answered with another status than 502
// are [*cgi.StatusError]s, read with cgi.StatusOf; a timeout wraps
// context.DeadlineExceeded (504).
var (
	// ErrPoolTimeout: MaxConns requests stayed in progress for
	// QueueTimeout (503).
	ErrPoolTimeout error = &cgi.StatusError{Status: http.StatusServiceUnavailable, Err: errors.New("scgi: no backend connection free in time")}
	// ErrNoResponse: the application closed the connection without a byte
	// of response (502).
	ErrNoResponse = errors.New("scgi: connection closed without a response")
)

// Client sends requests to an SCGI application (uwsgi --scgi-socket,
// python scgi, ferry's [Server]): a connection per request, as SCGI has it
// (protocol.txt § 2). At most MaxConns requests are in progress at once;
// more wait in ferry, up to QueueTimeout, rather than pile up in the
// application's listen backlog. The zero value needs only Network and
// Address; sizes and durations that are zero or negative take their
// defaults. A Client must not be copied after first use.
//
// A Client is a [cgi.Transport]: [NewHandler] forwards HTTP requests
// through it, and [Client.RoundTrip] is the call for other uses.
type Client struct {
	// Network and Address name the application: "tcp" and
	// "127.0.0.1:4000", or "unix" and "/run/app.sock".
	Network, Address string
	// MaxConns bounds the requests in progress; set it to the
	// application's worker count. If zero or negative, DefaultClientConns.
	MaxConns int
	// QueueTimeout bounds the wait for a request slot, DialTimeout
	// connecting, ReadTimeout each read of the response (the first byte
	// included), WriteTimeout each write of the request. Each is
	// DefaultXxx when zero or negative.
	QueueTimeout, DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// Logger receives connection errors. If nil, nothing is logged.
	Logger *zerolog.Logger

	once  sync.Once
	slots *cgi.Limiter // the requests in progress
}

var _ cgi.Transport = (*Client)(nil)

func (c *Client) init() {
	c.once.Do(func() {
		// No bound on the requests waiting for a slot: only QueueTimeout.
		c.slots = cgi.NewLimiter(defaults.Or(c.MaxConns, DefaultClientConns), -1, defaults.Or(c.QueueTimeout, DefaultQueueTimeout))
	})
}

func (c *Client) log() *zerolog.Logger {
	if c.Logger == nil {
		l := zerolog.Nop()
		return &l
	}
	return c.Logger
}

func (c *Client) backend() string { return c.Network + ":" + c.Address }

// String names the application as log lines do: "network:address".
func (c *Client) String() string { return c.backend() }

// takeSlot waits for room for one more request in progress, up to the
// queue timeout.
func (c *Client) takeSlot(ctx context.Context) error {
	err := c.slots.Acquire(ctx)
	if errors.Is(err, cgi.ErrNoSlot) {
		return fmt.Errorf("%w (%s, %d in progress)", ErrPoolTimeout, c.backend(), c.slots.Cap())
	}
	return err
}

// RoundTrip sends req on a new connection and returns the response once
// its first byte has arrived, so that a failing application shows here
// (502, 504) before anything goes to the client.
//
// The header block holds req.Params, the CGI meta-variables
// ([cgi.AppendEnv]), with CONTENT_LENGTH (req.ContentLength) first and
// SCGI=1 (protocol.txt § 3); those two among Params are replaced. Exactly
// ContentLength bytes are read from req.Body and sent; fewer fail the
// request. The body is written concurrently with reading the response: an
// application that answers before reading everything cannot deadlock.
//
// The response's Body streams the answer as the application sent it,
// header block included: a CGI response, or an HTTP status line and
// header from servers such as uwsgi (StatusLine is set). It must be read
// to EOF or closed; closing it early closes the connection. Ending ctx
// closes the connection, which tells the application its client is gone.
func (c *Client) RoundTrip(ctx context.Context, req *cgi.AppRequest) (*cgi.AppResponse, error) {
	c.init()
	if req.ContentLength < 0 {
		return nil, fmt.Errorf("scgi: negative ContentLength %d", req.ContentLength)
	}
	if req.ContentLength > 0 && req.Body == nil {
		return nil, fmt.Errorf("scgi: ContentLength %d with no Body", req.ContentLength)
	}
	hdr, err := appendRequest(nil, req.Params, req.ContentLength)
	if err != nil {
		return nil, err
	}
	if err := c.takeSlot(ctx); err != nil {
		return nil, cgi.NotSent(err)
	}
	// No TCP keep-alive probes: a connection carries one request.
	d := net.Dialer{Timeout: defaults.Or(c.DialTimeout, DefaultDialTimeout), KeepAlive: -1}
	nc, err := d.DialContext(ctx, c.Network, c.Address)
	if err != nil {
		c.slots.Release()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, cgi.NotSent(fmt.Errorf("scgi: connecting to %s: %w", c.backend(), err))
	}
	x := &exchange{c: c, nc: nc, ctx: ctx}
	if sc, ok := nc.(syscall.Conn); ok {
		x.raw, _ = sc.SyscallConn() // without it, ready waits for nothing and reports false
	}
	x.br = clientReaderPool.Get().(*bufio.Reader)
	x.br.Reset((*connSide)(x))
	x.stop = context.AfterFunc(ctx, x.interrupt)
	_ = nc.SetWriteDeadline(time.Now().Add(defaults.Or(c.WriteTimeout, DefaultWriteTimeout))) // a dead conn fails the write
	if _, err := nc.Write(hdr); err != nil {
		x.close()
		// The netstring goes in one write, ahead of the body: a failed
		// write left it incomplete, so the application cannot have
		// started the request (protocol.txt § 3).
		return nil, cgi.NotSent(x.wrap("sending request header", err))
	}
	if req.ContentLength > 0 {
		x.bodyDone = make(chan struct{})
		go bodyWriter{x}.run(req.Body, req.ContentLength)
	}
	if _, err := x.br.Peek(1); err != nil {
		x.close()
		if errors.Is(err, io.EOF) {
			if berr := x.bodyErr(); berr != nil {
				return nil, berr
			}
			// Sent whole: the application may have run it.
			return nil, cgi.NoAnswer(fmt.Errorf("%w (%s)", ErrNoResponse, c.backend()))
		}
		err = x.wrap("reading response", err)
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			err = cgi.NoAnswer(err)
		}
		return nil, err
	}
	x.app = cgi.AppResponse{Body: x, StatusLine: true} // its Ready is x's: no method value to allocate
	return &x.app, nil
}

// Ready reports whether the next read returns without waiting: a byte is
// buffered, or one non-blocking read of the connection finds more, or its
// end. An application answers and closes (SCGI has a connection per
// request), so the end is usually there with the last bytes: seeing it
// here, before the copy flushes what it has, lets net/http send the whole
// response in one write with a Content-Length instead of a chunked body
// and a second write for its last chunk.
func (x *exchange) Ready() bool {
	if x.br.Buffered() > 0 || x.eof {
		return true
	}
	if x.raw == nil {
		return false
	}
	x.probing = true
	_, err := x.br.Peek(1)
	x.probing = false
	return !errors.Is(err, errWouldBlock)
}

// errWouldBlock is what a probing read returns when nothing is at hand.
var errWouldBlock = errors.New("scgi: read would block")

// probe reads what the connection has at hand into p without waiting:
// errWouldBlock if nothing, io.EOF at its end.
func (x *exchange) probe(p []byte) (int, error) {
	if x.probeFD == nil {
		x.probeFD = x.probeRead // one closure for the exchange, not one per probe
	}
	x.pbuf = p
	err := x.raw.Read(x.probeFD)
	n, rerr := x.pn, x.perr
	x.pbuf, x.perr = nil, nil
	switch {
	case err != nil:
		return 0, err
	case rerr == syscall.EAGAIN || rerr == syscall.EINTR:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, os.NewSyscallError("read", rerr)
	case n == 0 && len(p) > 0:
		x.eof = true
		return 0, io.EOF
	}
	return n, nil
}

// probeRead is probe's read of the descriptor: into x.pbuf, the result in
// x.pn and x.perr.
func (x *exchange) probeRead(fd uintptr) bool {
	x.pn, x.perr = syscall.Read(int(fd), x.pbuf)
	return true // do not wait
}

// clientReaderPool holds response readers.
var clientReaderPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

// connSide is an exchange as the reader of its connection, behind the
// bufio.Reader callers read (a pointer: no closure per request).
type connSide exchange

func (c *connSide) Read(p []byte) (int, error) { return (*exchange)(c).read(p) }

// exchange is one request in flight.
type exchange struct {
	c    *Client
	nc   net.Conn
	ctx  context.Context
	br   *bufio.Reader
	stop func() bool
	app  cgi.AppResponse // what the caller reads
	raw  syscall.RawConn // nc's descriptor, for ready's probe; nil if nc has none

	probing bool // the next read is ready's: it must not wait
	eof     bool // a probe saw the end of the response

	// probe's read: its function (made at the first probe), its buffer and
	// its result.
	probeFD func(fd uintptr) bool
	pbuf    []byte
	pn      int
	perr    error

	mu       sync.Mutex // guards canceled, closed, bodyFail and the read deadline
	canceled bool
	closed   bool
	bodyFail error // why sending the body failed

	bodyDone chan struct{} // closed when the body writer returns; nil without a body
}

// interrupt wakes blocked reads and writes when ctx ends.
func (x *exchange) interrupt() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.canceled = true
	if !x.closed {
		_ = x.nc.SetDeadline(aLongTimeAgo) // a closed conn needs no waking
	}
}

// read reads from the connection with the read timeout; the bufio.Reader
// in front of it is what callers see.
func (x *exchange) read(p []byte) (int, error) {
	x.mu.Lock()
	if x.canceled {
		x.mu.Unlock()
		return 0, x.ctx.Err()
	}
	if x.bodyFail != nil {
		x.mu.Unlock()
		return 0, x.bodyFail
	}
	if x.eof {
		x.mu.Unlock()
		return 0, io.EOF
	}
	if x.probing {
		x.mu.Unlock()
		return x.probe(p)
	}
	_ = x.nc.SetReadDeadline(time.Now().Add(defaults.Or(x.c.ReadTimeout, DefaultReadTimeout))) // a closed conn fails the read
	x.mu.Unlock()
	return x.nc.Read(p)
}

// Read reads the response.
func (x *exchange) Read(p []byte) (int, error) {
	if x.isClosed() {
		return 0, errors.New("scgi: read of a closed response")
	}
	n, err := x.br.Read(p)
	if err != nil && err != io.EOF {
		err = x.wrap("reading response", err)
	}
	return n, err
}

// wrap describes a failure of the exchange: the context's error when it
// ended, a timeout wrapping context.DeadlineExceeded, a failed body.
func (x *exchange) wrap(what string, err error) error {
	if x.ctx.Err() != nil {
		return x.ctx.Err()
	}
	if berr := x.bodyErr(); berr != nil {
		return berr
	}
	if isTimeout(err) {
		return fmt.Errorf("scgi: %s: no answer from %s within %v: %w", what, x.c.backend(), defaults.Or(x.c.ReadTimeout, DefaultReadTimeout), context.DeadlineExceeded)
	}
	return fmt.Errorf("scgi: %s from %s: %w", what, x.c.backend(), err)
}

// bodyErr returns why sending the body failed, if it did.
func (x *exchange) bodyErr() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.bodyFail
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close ends the exchange and closes the connection.
func (x *exchange) Close() error {
	x.close()
	return nil
}

func (x *exchange) close() {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return
	}
	x.closed = true
	x.mu.Unlock()
	x.stop()
	// Closing wakes a body write stuck on a full socket.
	x.nc.Close()
	if x.bodyDone != nil {
		<-x.bodyDone
	}
	x.br.Reset(nil)
	clientReaderPool.Put(x.br)
	x.c.slots.Release()
}

// bodyWriter sends a request body: exactly the declared length.
type bodyWriter struct{ x *exchange }

func (w bodyWriter) run(body io.Reader, n int64) {
	x := w.x
	var err error
	defer func() {
		if err != nil {
			// The application waits for bytes that will not come: end the
			// exchange, and the reader reports err.
			x.fail(err)
		}
		close(x.bodyDone)
	}()
	buf := make([]byte, min(n, 32<<10))
	for n > 0 {
		m, rerr := body.Read(buf[:min(n, int64(len(buf)))])
		if m > 0 {
			_ = x.nc.SetWriteDeadline(time.Now().Add(defaults.Or(x.c.WriteTimeout, DefaultWriteTimeout))) // a closed conn fails the write
			if _, werr := x.nc.Write(buf[:m]); werr != nil {
				// The application may have answered without reading the
				// whole body and closed: its response is still to be read,
				// and a dead connection shows there.
				if !x.isClosed() {
					x.c.log().Debug().Err(werr).Str("backend", x.c.backend()).Msg("scgi: request body not sent in full")
				}
				return
			}
			n -= int64(m)
		}
		if n == 0 {
			return
		}
		if rerr == io.EOF {
			err = fmt.Errorf("scgi: request body %d bytes short of its length: %w", n, io.ErrUnexpectedEOF)
			return
		}
		if rerr != nil {
			err = fmt.Errorf("scgi: reading request body: %w", rerr)
			return
		}
	}
}

func (x *exchange) isClosed() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.closed
}

// fail records why the body could not be sent and wakes the response
// reader, which reports it.
func (x *exchange) fail(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.bodyFail = err
	if !x.closed {
		_ = x.nc.SetReadDeadline(aLongTimeAgo) // a closed conn needs no waking
	}
}
