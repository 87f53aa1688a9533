package bridge

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/scgi"
	"github.com/rs/zerolog"
)

// runner is a running ferry: its fronts, the configuration in force, which
// a reload replaces, and the replaced ones still draining. Every front
// serves the runner, which hands each request to the configuration in
// force when the request starts.
type runner struct {
	log zerolog.Logger // the process log of the Server Run was called on ([Server.processLog])
	cur atomic.Pointer[Server]
	// baseCtx is the base of every request's context; stopScripts ends
	// it once the shutdown's drain is over.
	baseCtx     context.Context
	stopScripts context.CancelFunc
	// hurry ends the shutdown's drain at once ([Server.StopNow] on the
	// Server Run was called on).
	hurry      context.Context
	errc       chan error    // the first front that failed; Run stops on it
	handedOver chan struct{} // closed once an upgrade took the fronts over

	mu        sync.Mutex // serializes reloads, the upgrade and the shutdown; guards the fields below
	fronts    []*frontServer
	admin     *frontServer // the admin listener, if the configuration in force has one
	stopping  bool         // Run is shutting down: no more reloads
	handed    bool         // handedOver is closed: unix socket files belong to the new process
	pidFile   string
	removePID func()
	cpus      int // the Config.CPUs in force; 0: the runtime's own
	cpusFound int // GOMAXPROCS when cpus first became positive, given back when it goes to 0
	// draining counts what a reload or the shutdown left to finish in the
	// background: fronts removed, configurations replaced.
	draining sync.WaitGroup
	retired  chan struct{} // closed once the last configuration replaced has retired ([runner.retire])
}

func newRunner(s *Server) *runner {
	r := &runner{log: s.processLog(), errc: make(chan error, 1), handedOver: make(chan struct{}), hurry: s.hurry}
	ctx, cancel := context.WithCancelCause(context.Background())
	r.baseCtx, r.stopScripts = ctx, func() { cancel(errStopped) }
	r.cur.Store(s)
	return r
}

// errStopped is the cause of the requests' contexts ending when the
// shutdown stops what still runs (runner.stopScripts); the access log
// tells it from a client that went away.
var errStopped = errors.New("bridge: ferry is stopping: request cut off")

// ServeHTTP serves r with the configuration in force. Requests are counted
// per configuration, so that a reload knows when the one it replaced is
// idle; a request that meets a configuration just replaced takes the new
// one instead.
func (r *runner) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	s := r.enter()
	defer s.reqs.leave()
	s.handler.ServeHTTP(w, req)
}

// enter returns the configuration in force, with the request counted in.
func (r *runner) enter() *Server {
	for {
		if s := r.cur.Load(); s.reqs.enter() {
			return s
		}
		// Replaced between the load and the count: the next load has
		// its successor.
	}
}

// protoServer is the server of one front's protocol: *http.Server,
// *fastcgi.Server or *scgi.Server.
type protoServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// frontServer is one front being served: its listener and the server of
// its protocol, which serves the runner's configuration in force.
type frontServer struct {
	front
	srv protoServer
	// stopped is set before the front is stopped on purpose, so that the
	// end of its Serve is not an error.
	stopped atomic.Bool
	served  chan struct{} // closed when Serve has returned: no connection is accepted any more
	conns   atomic.Int64  // HTTP connections open, hijacked ones aside
}

// newFrontServer makes the server of f's protocol. Each front has its
// own, so that a reload can drain one front without touching the others.
// The admin listener's serves the admin paths of the configuration in
// force ([runner.serveAdmin]).
func (r *runner) newFrontServer(f front, admin bool) *frontServer {
	fs := &frontServer{front: f, served: make(chan struct{})}
	base := func(net.Listener) context.Context { return r.baseCtx }
	count := func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			fs.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			fs.conns.Add(-1)
		}
	}
	// While the front drains, each response closes its connection: a
	// kept-alive client learns from the response itself rather than from
	// a close that may cross its next request (see drainConns).
	closing := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if fs.stopped.Load() {
				w.Header().Set("Connection", "close")
			}
			h.ServeHTTP(w, req)
		})
	}
	lim := r.cur.Load().cfg.Fronts
	switch f.addr.Protocol() {
	case "http":
		if admin {
			fs.srv = &http.Server{
				Handler:           closing(http.HandlerFunc(r.serveAdmin)),
				ReadHeaderTimeout: DefaultReadHeaderTimeout,
				IdleTimeout:       DefaultIdleTimeout,
				BaseContext:       base,
				ErrorLog:          log.New(r.log.With().Str("component", "admin").Logger(), "", 0),
				ConnState:         count,
			}
			break
		}
		hf := newHTTPFront(closing(r), lim, base, r.log)
		gate := hf.srv.ConnState
		hf.srv.ConnState = func(c net.Conn, st http.ConnState) {
			gate(c, st)
			count(c, st)
		}
		hf.plain.ConnState = count // the plain front keeps its Gate itself
		hf.access = r.logBadHead
		fs.srv = httpProto{hf}
	case "fastcgi":
		l := r.log.With().Str("component", "fastcgi").Logger()
		fs.srv = &fastcgi.Server{Handler: r, BaseContext: base, Logger: &l, MaxConns: lim.MaxConns, ReadHeaderTimeout: lim.HeaderTimeout}
	case "scgi":
		l := r.log.With().Str("component", "scgi").Logger()
		fs.srv = &scgi.Server{Handler: r, BaseContext: base, Logger: &l, MaxConns: lim.MaxConns, ReadHeaderTimeout: lim.HeaderTimeout}
	}
	return fs
}

// httpProto serves an HTTP front through its [httpFront]: the connection
// bound, the body and send timeouts, the framing checks.
type httpProto struct{ *httpFront }

func (p httpProto) Serve(l net.Listener) error { return p.serve(l) }

// keepAliver is the server of an HTTP front or admin listener: keep-alive
// can be turned off.
type keepAliver interface{ SetKeepAlivesEnabled(bool) }

// httpServer returns the server of an HTTP front or admin listener, or
// nil.
func httpServer(srv protoServer) keepAliver {
	switch s := srv.(type) {
	case *http.Server:
		return s
	case httpProto:
		return s.httpFront
	}
	return nil
}

const (
	// drainPoll is how often drainConns looks again at the connections left.
	drainPoll = 10 * time.Millisecond
	// firstRecordGrace is how long drainConns leaves a FastCGI connection
	// accepted just before the front stopped accepting to send its
	// BEGIN_REQUEST: the FastCGI server's Shutdown closes a connection
	// with no request yet as idle.
	firstRecordGrace = 500 * time.Millisecond
	// idleCloseGrace is how long drainConns leaves kept-alive HTTP
	// connections to bring their next request, answered with
	// "Connection: close", before it closes the idle ones: closing an
	// idle connection races a client's next request on it, which the
	// client sees fail (wrk, curl without retries), so the close is
	// kept for clients that went quiet.
	idleCloseGrace = time.Second
)

// drainConns stops fs gracefully, until ctx ends: it stops accepting, and
// waits for the connections accepted to serve their requests and close.
// Close it afterwards. With grace, a connection accepted at the last
// moment gets time to begin its request: for a front a reload removes,
// or one whose socket goes on being served by a new front or process.
//
// For HTTP, http.Server.Shutdown will not do: a connection accepted just
// before it whose request is read just after is closed unanswered
// (net/http's conn.serve returns when it finds the server shutting down),
// and while an upgrade or a removed front is draining, clients keep
// connecting. So each response from here on says "Connection: close"
// and closes its connection; after idleCloseGrace keep-alives are turned
// off too, which closes the connections left idle, and drainConns waits
// until no connection is left. The FastCGI and SCGI servers' Shutdown
// serves the requests they have begun; an SCGI connection carries its
// request from the start, a FastCGI one gets firstRecordGrace to begin
// one with grace.
func (fs *frontServer) drainConns(ctx context.Context, grace bool) error {
	fs.stopped.Store(true)
	fs.l.Close()
	select {
	case <-fs.served: // no connection can be accepted from here on
	case <-ctx.Done():
		return ctx.Err()
	}
	hs := httpServer(fs.srv)
	if hs == nil {
		if _, fcgi := fs.srv.(*fastcgi.Server); fcgi && grace {
			select {
			case <-time.After(firstRecordGrace):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return fs.srv.Shutdown(ctx)
	}
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	idleClose := time.Now().Add(idleCloseGrace)
	goAway := false
	for {
		if time.Now().After(idleClose) {
			// Again at each poll: a connection may have turned idle
			// just as keep-alives were turned off.
			hs.SetKeepAlivesEnabled(false)
			if !goAway {
				// An HTTP/2 connection is never idle to net/http:
				// only its Shutdown sends GOAWAY, after which the
				// connection closes once its streams are done. It
				// returns when the connections are gone, or at ctx's
				// end; the caller's Close ends it otherwise.
				goAway = true
				go fs.srv.Shutdown(ctx)
			}
		}
		if fs.conns.Load() <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// serve starts serving fronts and returns their listeners. Run calls it
// before it shares r; a reload, with r.mu held.
func (r *runner) serve(fronts []front) []net.Listener {
	lns := make([]net.Listener, 0, len(fronts))
	for _, f := range fronts {
		fs := r.newFrontServer(f, false)
		r.fronts = append(r.fronts, fs)
		r.log.Info().Str("listen", f.String()).Msg("ferry: listening")
		r.start(fs)
		lns = append(lns, f.l)
	}
	return lns
}

// serveAdminOn starts serving the admin listener on f. Run calls it
// before it shares r; a reload, with r.mu held.
func (r *runner) serveAdminOn(f front) {
	r.admin = r.newFrontServer(f, true)
	r.log.Info().Str("admin", f.String()).Msg("ferry: admin listening")
	r.start(r.admin)
}

// start runs fs's Serve; its failure, unless fs was stopped, stops Run.
func (r *runner) start(fs *frontServer) {
	go func() {
		err := fs.srv.Serve(fs.l)
		close(fs.served)
		if fs.stopped.Load() || errors.Is(err, http.ErrServerClosed) || errors.Is(err, fastcgi.ErrServerClosed) || errors.Is(err, scgi.ErrServerClosed) {
			return
		}
		select {
		case r.errc <- err:
		default: // another front failed first
		}
	}()
}

// serveAdmin answers a request to the admin listener with the admin paths
// of the configuration in force: its mounts, its pools. A configuration
// a reload has just put in force without an admin listener answers 404
// while the listener closes.
func (r *runner) serveAdmin(w http.ResponseWriter, req *http.Request) {
	a := r.cur.Load().admin
	if a == nil {
		http.NotFound(w, req)
		return
	}
	a.handler.ServeHTTP(w, req)
}

// drain stops fs: it stops accepting at once, its connections get up to
// timeout to finish their requests (idle ones close), and then it is
// closed. The socket file of a unix front is removed unless keepFile.
// drain runs in the background, counted by r.draining.
func (r *runner) drain(fs *frontServer, timeout time.Duration, keepFile bool) {
	fs.stopped.Store(true)
	fs.l.Close() // drainConns closes it too; here it stops accepting before the reload returns
	if !keepFile {
		fs.cleanup()
	}
	r.draining.Add(1)
	go func() {
		defer r.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := fs.drainConns(ctx, true); err != nil {
			r.log.Warn().Err(err).Str("listen", fs.String()).Msg("ferry: removed front's drain timed out; closing its connections")
		}
		fs.srv.Close()
		r.log.Info().Str("listen", fs.String()).Msg("ferry: stopped listening")
	}()
}

// shutdown ends Run: the fronts stop accepting, in-flight requests get up
// to ShutdownTimeout to finish, then the scripts still running are
// stopped, and every worker pool is stopped once the requests that use it
// are over.
func (r *runner) shutdown() {
	r.mu.Lock()
	r.stopping = true
	fronts := r.fronts
	if r.admin != nil {
		fronts = append(slices.Clip(fronts), r.admin)
	}
	handed := r.handed
	r.mu.Unlock()
	cur := r.cur.Load()
	timeout := cur.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	r.log.Info().Dur("timeout_ms", timeout).Msg("ferry: shutting down; draining in-flight requests")
	sctx, cancel := context.WithTimeout(r.hurry, timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, fs := range fronts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fs.drainConns(sctx, handed); err != nil {
				msg := "ferry: drain timed out; stopping the scripts still running"
				if r.hurry.Err() != nil {
					// Not a timeout: StopNow (a second SIGTERM) said to
					// stop at once, and its own line says so first.
					msg = "ferry: drain cut short; stopping the scripts still running"
				}
				r.log.Warn().Err(err).Str("listen", fs.String()).Msg(msg)
			}
		}()
	}
	wg.Wait()
	// Requests still running (timed out, or on hijacked connections) see
	// their context end: their scripts get SIGTERM, then SIGKILL.
	r.stopScripts()
	for _, fs := range fronts {
		fs.srv.Close()
	}
	// The scripts were stopped: the requests end. Replaced configurations
	// stop their pools once theirs have.
	cur.reqs.close()
	_ = cur.reqs.wait(context.Background()) // no deadline: it cannot fail
	r.draining.Wait()
	if !handed {
		// After an upgrade the socket files are the new process's.
		for _, fs := range fronts {
			fs.cleanup()
		}
	}
	cur.stopGroups()
	cur.closeIdle() // as nginx closes its kept upstream connections on exit
	stopPools(r.log, cur.pools)
	cur.closeLogs()
	if r.removePID != nil {
		r.removePID()
	}
	r.log.Info().Msg("ferry: stopped")
}

// setPIDFile writes the pid file at path, and removes the one written
// before if it was another. An empty path writes none. Called before Run
// serves, or with r.mu held.
func (r *runner) setPIDFile(path string) error {
	if path == r.pidFile {
		return nil
	}
	var remove func()
	if path != "" {
		var err error
		if remove, err = writePIDFile(path); err != nil {
			return err
		}
	}
	if r.removePID != nil {
		r.removePID()
	}
	r.pidFile, r.removePID = path, remove
	return nil
}

// maxCPUs is the largest Config.CPUs: the runtime allocates per-CPU
// state for each.
const maxCPUs = 1024

// setCPUs makes n the number of CPUs that run Go code at once
// (runtime.GOMAXPROCS), as Config.CPUs says; 0 gives back the value found
// before it was first set (the runtime's default, following the CPU limit
// of the process's cgroup, when that was it). Called before Run serves, or
// with r.mu held.
func (r *runner) setCPUs(n int) {
	if n == r.cpus {
		return
	}
	was := runtime.GOMAXPROCS(0)
	switch {
	case n > 0:
		if r.cpus == 0 {
			r.cpusFound = was
		}
		runtime.GOMAXPROCS(n)
	default:
		// The runtime's default, if that is what was found: it then
		// follows the CPU limit again, as it did before.
		runtime.SetDefaultGOMAXPROCS()
		if runtime.GOMAXPROCS(0) != r.cpusFound {
			runtime.GOMAXPROCS(r.cpusFound)
		}
	}
	r.log.Info().Int("cpus", runtime.GOMAXPROCS(0)).Int("was", was).Msg("ferry: CPUs running Go code at once (GOMAXPROCS)")
	r.cpus = n
}

// startPools starts the worker pools and points their clients at their
// sockets. If one fails, those started are stopped again.
func startPools(l zerolog.Logger, pools []spawned) error {
	for i, sp := range pools {
		if err := sp.pool.Start(context.Background()); err != nil {
			stopPools(l, pools[:i])
			return fmt.Errorf("bridge: starting %s: %w", sp.what, err)
		}
		sp.connect(sp.pool.Address())
		l.Info().Str("worker", sp.name).Ints("pids", startedPIDs(sp.procs)).Str("socket", sp.pool.Address()).Msg("ferry: " + sp.what + " started")
	}
	return nil
}

// stopPools stops the worker pools, each within 10 s.
func stopPools(l zerolog.Logger, pools []spawned) {
	for _, sp := range pools {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := sp.pool.Stop(ctx); err != nil {
			l.Warn().Err(err).Str("worker", sp.name).Msg("ferry: stopping workers")
		}
		cancel()
	}
}
