package appserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/rs/zerolog"
)

// RequestIDHeader is the header that carries the request's ID to the
// application (HTTP_X_REQUEST_ID) unless [Workers.IDHeader] names another,
// and that [Workers.Handler] takes it from on the response, where ferry's
// access log sets it, unless [Workers.ResponseIDHeader] names another.
const RequestIDHeader = "X-Request-Id"

// boardSize is the size of a worker's scoreboard line.
const boardSize = 256

// errHardTimeout is the cause of a request's context past Workers.Timeout.
var errHardTimeout = errors.New("appserver: hard timeout")

// Handler returns next, which forwards requests to the workers (the
// [cgi.Forwarder] of scgi.NewHandler or fastcgi.NewHandler on their
// socket), wrapped with what the workers need of each request:
//
//   - the request's ID goes to the application in the request header
//     IDHeader names (X-Request-Id), replacing any the client sent: the one
//     already set on the response in ResponseIDHeader (ferry's access log
//     sets it), or a new one if there is none or it is too long for the
//     scoreboard;
//   - it counts as busy for the pool's on-demand scaling
//     ([spawn.Pool.Busy]);
//   - past Timeout, the worker serving it is killed (and replaced by the
//     pool), with a log line naming the request and the worker; the client
//     gets 504, or, if its response had begun, a cut connection. Time spent
//     waiting in next's queue for a connection to a worker (which next's
//     client tells the request's [cgi.RequestObserver]) does not count:
//     Timeout starts again when the wait ends. A request
//     whose client left before Timeout still gets its worker killed at
//     Timeout if that worker is still at it;
//   - a response of unknown length that ends while a worker still names
//     its request on the scoreboard was cut short (the worker died): the
//     client's connection is cut rather than the response ended as if
//     whole. (Responses with status 502, 503 and 504 are left alone: they
//     are ferry's own answers for a worker that failed before answering.)
func (w *Workers) Handler(next http.Handler) http.Handler {
	return &guard{w: w, next: next}
}

// guard is the handler [Workers.Handler] returns.
type guard struct {
	w    *Workers
	next http.Handler
}

func (g *guard) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	done := g.w.Pool.Busy()
	defer done()
	id := rw.Header().Get(g.w.responseIDHeader())
	if id == "" || len(id) >= boardSize {
		id = newRequestID() // "!" and the ID must fit on the scoreboard line
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	r2.Header.Set(g.w.idHeader(), id)
	tw := &trackingWriter{ResponseWriter: rw}
	if g.w.Timeout <= 0 {
		g.next.ServeHTTP(tw, r2)
		g.checkWhole(tw, r, id)
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	clock := startClock(g.w.Timeout, cgi.ObserverFrom(r.Context()), func() { cancel(errHardTimeout) })
	defer clock.timer.Stop()
	ctx = cgi.WithObserver(ctx, clock)
	stop := context.AfterFunc(ctx, func() { g.expired(ctx, r2, id, clock.started()) })
	g.next.ServeHTTP(tw, r2.WithContext(ctx))
	stopped := stop()
	timedOut := errors.Is(context.Cause(ctx), errHardTimeout) && r.Context().Err() == nil
	if !timedOut || stopped && tw.wrote {
		// Served in time, or the client left (expired watches the worker).
		g.checkWhole(tw, r, id)
		return
	}
	if stopped {
		// The deadline passed and the handler gave up on it before the
		// context got to starting expired: the context's error shows
		// as soon as its Done closes, before its AfterFuncs are
		// started, so stop can win. Its work is done here.
		g.expired(ctx, r2, id, clock.started())
	}
	if tw.wrote {
		panic(http.ErrAbortHandler) // the client must not take it for whole
	}
	http.Error(rw, "504 Gateway Timeout", http.StatusGatewayTimeout)
}

// hardClock is the hard timeout of one request. It runs while the request
// is with the application, not while it waits in the client's queue for a
// connection to a worker: uWSGI's harakiri and Gunicorn's timeout count
// from when a worker takes the request too, and a request queued for most
// of the timeout behind slow ones must not have the worker it then gets
// killed (under load, every queued request would cost a worker). It is
// the request's [cgi.RequestObserver], which the clients tell of a wait
// for a connection, and passes every call on to the one it stands in for.
type hardClock struct {
	cgi.RequestObserver
	timeout time.Duration
	timer   *time.Timer  // calls expire past the timeout
	start   atomic.Int64 // when the clock last started, in Unix nanoseconds
}

// startClock starts a clock that calls expire timeout from now, standing
// in for o.
func startClock(timeout time.Duration, o cgi.RequestObserver, expire func()) *hardClock {
	c := &hardClock{RequestObserver: o, timeout: timeout}
	c.start.Store(time.Now().UnixNano())
	c.timer = time.AfterFunc(timeout, expire)
	return c
}

// started returns when the clock last started.
func (c *hardClock) started() time.Time { return time.Unix(0, c.start.Load()) }

// QueueEnter stops the clock: the request waits for a worker.
func (c *hardClock) QueueEnter() {
	c.timer.Stop() // false if it expired already: the request ends anyway
	c.RequestObserver.QueueEnter()
}

// QueueLeave starts the clock afresh: a worker can take the request.
func (c *hardClock) QueueLeave() {
	c.start.Store(time.Now().UnixNano())
	c.timer.Reset(c.timeout)
	c.RequestObserver.QueueLeave()
}

// Logger gives the request's logger, as the observer stood in for does
// ([cgi.RequestLogger]); nil if it gives none.
func (c *hardClock) Logger() *zerolog.Logger {
	if l, ok := c.RequestObserver.(cgi.RequestLogger); ok {
		return l.Logger()
	}
	return nil
}

// expired runs when a request's context ends before its response: past
// Timeout it kills the request's worker; when the client left first, it
// does so at Timeout if the worker is still at the request then.
func (g *guard) expired(ctx context.Context, r *http.Request, id string, start time.Time) {
	if errors.Is(context.Cause(ctx), errHardTimeout) {
		g.kill(r, id, true)
		return
	}
	time.AfterFunc(g.w.Timeout-time.Since(start), func() { g.kill(r, id, false) })
}

// kill kills the worker serving request id, if one is.
func (g *guard) kill(r *http.Request, id string, waiting bool) {
	pid, ok := g.w.serving(id)
	log := g.logFor(r, id)
	if !ok {
		if waiting {
			log.Warn().Str("method", r.Method).Str("path", r.URL.Path).Dur("timeout_ms", g.w.Timeout).
				Msg("appserver: request passed the hard timeout before a worker took it")
		}
		return
	}
	msg := "appserver: request passed the hard timeout; killing its worker"
	if !waiting {
		msg = "appserver: request passed the hard timeout after its client left; killing its worker"
	}
	log.Error().Str("method", r.Method).Str("path", r.URL.Path).Int("pid", pid).Dur("timeout_ms", g.w.Timeout).Msg(msg)
	// The worker's whole process group: what it runs for the request too.
	_ = syscall.Kill(-pid, syscall.SIGKILL) // ESRCH: it is gone already
}

// checkWhole cuts the client's connection when a response of unknown
// length ended while a worker still names the request: the worker did not
// finish it.
func (g *guard) checkWhole(tw *trackingWriter, r *http.Request, id string) {
	switch {
	case !tw.wrote, tw.length, g.w.board == "", r.Method == http.MethodHead, r.Context().Err() != nil:
		return
	case tw.status == http.StatusNoContent, tw.status == http.StatusNotModified:
		return // no body
	case tw.status == http.StatusBadGateway, tw.status == http.StatusServiceUnavailable, tw.status == http.StatusGatewayTimeout:
		return // ferry's own answer for a worker that failed before answering
	}
	if pid, ok := g.w.serving(id); ok || g.w.cut(id) {
		g.logFor(r, id).Warn().Str("path", r.URL.Path).Int("pid", pid).
			Msg("appserver: the response ended before its worker finished it; cutting the connection")
		panic(http.ErrAbortHandler)
	}
}

// logFor returns the request's logger (which names the request), or the
// workers' with the request's ID.
func (g *guard) logFor(r *http.Request, id string) *zerolog.Logger {
	if l := cgi.LoggerFrom(r.Context(), nil); l != nil {
		return l
	}
	l := g.w.log().With().Str("req_id", id).Logger()
	return &l
}

// serving returns the worker whose scoreboard line names request id: the
// worker serving it.
func (w *Workers) serving(id string) (int, bool) { return w.lookup(id) }

// cut reports whether a worker's scoreboard line says that its answer to
// request id was cut short.
func (w *Workers) cut(id string) bool {
	_, ok := w.lookup("!" + id)
	return ok
}

// lookup returns the worker whose scoreboard line is line.
func (w *Workers) lookup(id string) (int, bool) {
	if w.board == "" || id == "" || id == "!" {
		return 0, false
	}
	ents, err := os.ReadDir(w.board)
	if err != nil {
		return 0, false
	}
	want := []byte(id)
	var line [boardSize]byte
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open(filepath.Join(w.board, e.Name()))
		if err != nil {
			continue // removed since
		}
		n, _ := f.ReadAt(line[:], 0) // a short line names nothing
		f.Close()
		got := line[:n]
		if i := bytes.IndexByte(got, 0); i >= 0 {
			got = got[:i]
		}
		if bytes.Equal(got, want) {
			return pid, true
		}
	}
	return 0, false
}

// newRequestID returns 16 random hex digits, as ferry's access log does.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return hex.EncodeToString(b[:])
}

// trackingWriter records whether the response began, its status, and
// whether it gave its length.
type trackingWriter struct {
	http.ResponseWriter
	wrote  bool
	status int
	length bool // Content-Length was set
}

func (tw *trackingWriter) WriteHeader(code int) {
	if !tw.wrote && code >= 200 {
		tw.wrote, tw.status = true, code
		tw.length = tw.Header().Get("Content-Length") != ""
	}
	tw.ResponseWriter.WriteHeader(code)
}

func (tw *trackingWriter) Write(p []byte) (int, error) {
	if !tw.wrote {
		tw.WriteHeader(http.StatusOK)
	}
	return tw.ResponseWriter.Write(p)
}

// Flush implements http.Flusher.
func (tw *trackingWriter) Flush() {
	_ = http.NewResponseController(tw.ResponseWriter).Flush() // Flusher cannot report it
}

// Unwrap returns the underlying writer (http.ResponseController).
func (tw *trackingWriter) Unwrap() http.ResponseWriter { return tw.ResponseWriter }
