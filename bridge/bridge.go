package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/scgi"
	"github.com/ferrygw/ferry/spawn"
	"github.com/rs/zerolog"
)

// Defaults for zero fields of [Config].
const (
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultRequestIDHeader   = "X-Request-Id"
)

// Mount attaches a back to a URL path prefix.
type Mount struct {
	// Prefix is the URL path prefix, such as "/cgi-bin/". A prefix ending in
	// "/" covers its subtree; one without covers that path and its subtree.
	Prefix string
	// Backend is where requests go, in ferry's address spelling. For an
	// upstream group it is the group's first backend, and its options
	// (after "?") are the group's: those of [groupOptions] and the
	// kind's, which apply to each backend.
	Backend Address
	// More are the other backends of an upstream group, of Backend's
	// kind. Each may carry options of its own: weight and max_conns.
	More []Address
	// FirstOptions are the group's first backend's own weight and
	// max_conns, as the configuration file's backend tables give them.
	FirstOptions url.Values
	// Settings holds this mount's own values of the settings Own names;
	// the others come from Config.Settings ([Config.MountSettings]). Set
	// them with [Mount.Set].
	Settings Settings
	// Own names, by key ("cgi_timeout", "env": see [Keys]), the settings
	// this mount sets itself. If empty, the mount uses Config.Settings.
	Own []string
}

// ParseMount parses "PREFIX=BACKEND", such as "/cgi-bin/=cgi:/usr/lib/cgi-bin".
// The backend's options are checked against its kind's ([Backends]).
func ParseMount(s string) (Mount, error) {
	prefix, backend, ok := strings.Cut(s, "=")
	if !ok || !strings.HasPrefix(prefix, "/") {
		return Mount{}, fmt.Errorf("bridge: mount %q: want PREFIX=BACKEND with PREFIX starting with /", s)
	}
	a, more, err := parseBackends(backend)
	m := Mount{Prefix: prefix, Backend: a, More: more}
	if err == nil {
		err = checkMount(m)
	}
	if err != nil {
		return Mount{}, fmt.Errorf("bridge: mount %q: %w", s, err)
	}
	return m, nil
}

// Config describes what ferry serves.
type Config struct {
	// Listen are the fronts. If empty, http://127.0.0.1:8080.
	Listen []Address
	// Mounts are the routes, matched longest prefix first.
	Mounts []Mount
	// Resolver looks up the host names of upstream groups' backends that
	// are re-resolved (their resolve option) or SRV records. If nil,
	// net.DefaultResolver.
	Resolver *net.Resolver
	// Root, if set, is a document root: paths no mount covers are served as
	// static files from it (no directory listings, no dotfiles), and it is
	// DOCUMENT_ROOT for scripts.
	Root string
	// Settings are what every mount starts from.
	Settings Settings
	// ShutdownTimeout bounds the drain of in-flight requests on shutdown;
	// scripts still running then are stopped. If zero,
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// AccessLog, if true, logs one line per request.
	AccessLog bool
	// AccessLogFile, if set, is the file the access log is appended to
	// (created with mode 0640), opened by Run and reopened by
	// [Server.ReopenLogs], as logrotate needs. If empty, the access log
	// goes to Logger (format "auto") or Stderr.
	AccessLogFile string
	// AccessLogFormat is "json" (a JSON object per line), "console" (for
	// people: method, path, status and duration first), "combined"
	// (Apache's combined format, for the tools that read it), or "auto":
	// lines of the process log (Logger), or JSON in AccessLogFile. If
	// empty, "auto".
	AccessLogFormat string
	// Stderr receives an access log of a format of its own ("json",
	// "console", "combined") with no AccessLogFile. If nil, os.Stderr.
	Stderr io.Writer
	// RequestIDHeader names the header a request's ID comes in: one that
	// is printable ASCII and at most 128 bytes is kept, else ferry makes
	// one. It goes on to the application in that header (HTTP_X_REQUEST_ID
	// for scripts and FastCGI and SCGI applications), comes back to the
	// client in it, and tags the request's log lines as req_id. If empty,
	// DefaultRequestIDHeader.
	RequestIDHeader string
	// Logger receives access and error logs. If nil, nothing is logged.
	Logger *zerolog.Logger
	// Version is reported in SERVER_SOFTWARE as "ferry/VERSION".
	Version string
	// Admin, if set (its Scheme not empty), is where the admin listener
	// serves metrics, status and health: http://HOST:PORT or
	// unix:///path/to.sock ([ParseAdminAddress]). If zero, there is none.
	Admin Address
	// PIDFile, if set, is the file Run writes the process ID to once it
	// listens, and removes when it stops.
	PIDFile string
	// Log says how the process logs; the command builds Logger from it.
	Log LogConfig
}

// LogConfig is how the process logs: the [log] table of a configuration
// file and the logging flags of ferry serve.
type LogConfig struct {
	// Format is "json", "console", or "auto" (console on a terminal,
	// else JSON). If empty, "auto".
	Format string
	// Level is "debug", "info", "warn" or "error". If empty, "info".
	Level string
}

// Server is a configured ferry: build it with [New], run it with Run.
type Server struct {
	pools    []spawned
	groups   []*group      // upstream groups, whose checks Run runs
	access   *accessOutput // the access log's own output; nil: the process log
	cfg      Config
	log      zerolog.Logger
	handler  http.Handler
	rt       *router
	inflight sync.WaitGroup
	admin    *admin // nil without Config.Admin
}

// New checks cfg and builds the routes.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, log: zerolog.Nop()}
	if cfg.Logger != nil {
		s.log = *cfg.Logger
	}
	if len(s.cfg.Listen) == 0 {
		a, _ := ParseAddress("http://127.0.0.1:8080")
		s.cfg.Listen = []Address{a}
	}
	for _, a := range s.cfg.Listen {
		if err := checkFront(a, len(s.cfg.Listen)); err != nil {
			return nil, fmt.Errorf("bridge: listen %s: %w", a, err)
		}
	}
	if err := s.setUpAdmin(); err != nil {
		return nil, err
	}
	if err := checkAccessLog(&s.cfg); err != nil {
		return nil, err
	}
	s.access = newAccessOutput(&s.cfg)
	rt, err := s.buildRouter()
	if err != nil {
		return nil, err
	}
	s.rt = rt
	s.handler = s.accessLog(rt)
	return s, nil
}

// Handler returns the server's whole HTTP handler: routes, access log and
// request IDs. It is what every front serves.
func (s *Server) Handler() http.Handler { return s.handler }

// Run listens on every front and serves until ctx ends, then shuts down:
// listeners close, in-flight requests get up to ShutdownTimeout to finish,
// then the scripts still running are stopped (and reaped) before Run returns.
// ready, if not nil, is called with the bound listeners once they accept.
// The access log file, if any, is open while Run runs.
func (s *Server) Run(ctx context.Context, ready func([]net.Listener)) error {
	if err := s.openLogs(); err != nil {
		return err
	}
	defer s.closeLogs()
	if len(s.cfg.Listen) == 1 && s.cfg.Listen[0].Protocol() == "cgi" {
		return s.runCGI(ctx)
	}
	var fronts []front
	closeAll := func() {
		for _, f := range fronts {
			f.l.Close()
		}
	}
	stopPools := func() {
		for _, sp := range s.pools {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := sp.pool.Stop(ctx); err != nil {
				s.log.Warn().Err(err).Str("worker", sp.pool.Path).Msg("ferry: stopping workers")
			}
			cancel()
		}
	}
	for _, sp := range s.pools {
		if err := sp.pool.Start(context.Background()); err != nil {
			stopPools()
			return fmt.Errorf("bridge: starting FastCGI workers: %w", err)
		}
		sp.client.Address = sp.pool.Address()
		s.log.Info().Str("worker", sp.pool.Path).Ints("pids", startedPIDs(sp.pool)).Str("socket", sp.pool.Address()).Msg("ferry: FastCGI workers started")
	}
	defer stopPools()
	defer s.startGroups()()
	for _, a := range s.cfg.Listen {
		l, err := listen(a, &s.log)
		if err != nil {
			closeAll()
			return err
		}
		fronts = append(fronts, front{addr: a, l: l})
	}
	if err := s.admin.listen(); err != nil {
		closeAll()
		return err
	}
	if s.cfg.PIDFile != "" {
		remove, err := writePIDFile(s.cfg.PIDFile)
		if err != nil {
			closeAll()
			return err
		}
		defer remove()
	}
	baseCtx, stopScripts := context.WithCancel(context.Background())
	defer stopScripts()
	base := func(net.Listener) context.Context { return baseCtx }
	httpSrv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		BaseContext:       base,
		ErrorLog:          log.New(s.log.With().Str("component", "http").Logger(), "", 0),
	}
	fcgiLog := s.log.With().Str("component", "fastcgi").Logger()
	fcgiSrv := &fastcgi.Server{Handler: s.handler, BaseContext: base, Logger: &fcgiLog}
	scgiLog := s.log.With().Str("component", "scgi").Logger()
	scgiSrv := &scgi.Server{Handler: s.handler, BaseContext: base, Logger: &scgiLog}

	errc := make(chan error, len(fronts)+1)
	s.admin.serve(errc)
	lns := make([]net.Listener, 0, len(fronts))
	for _, f := range fronts {
		s.log.Info().Str("listen", f.String()).Msg("ferry: listening")
		switch f.addr.Protocol() {
		case "http":
			go func() { errc <- httpSrv.Serve(f.l) }()
		case "fastcgi":
			go func() { errc <- fcgiSrv.Serve(f.l) }()
		case "scgi":
			go func() { errc <- scgiSrv.Serve(f.l) }()
		}
		lns = append(lns, f.l)
	}
	if ready != nil {
		ready(lns)
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("bridge: serving: %w", err)
	}
	timeout := s.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	s.log.Info().Dur("timeout_ms", timeout).Msg("ferry: shutting down; draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, shut := range []func(context.Context) error{httpSrv.Shutdown, fcgiSrv.Shutdown, scgiSrv.Shutdown, s.admin.Shutdown} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if serr := shut(sctx); serr != nil {
				s.log.Warn().Err(serr).Msg("ferry: drain timed out; stopping the scripts still running")
			}
		}()
	}
	wg.Wait()
	// Requests still running (timed out, or on hijacked connections) see
	// their context end: their scripts get SIGTERM, then SIGKILL.
	stopScripts()
	httpSrv.Close()
	fcgiSrv.Close()
	scgiSrv.Close()
	s.admin.close()
	s.inflight.Wait()
	for _, f := range fronts {
		f.cleanup()
	}
	stopPools()
	s.log.Info().Msg("ferry: stopped")
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, fastcgi.ErrServerClosed) || errors.Is(err, scgi.ErrServerClosed) {
		err = nil
	}
	return err
}

// runCGI serves the one request of this process, which a web server runs
// as a CGI program (RFC 3875): the request comes from the environment and
// standard input, the response goes to standard output. Workers it spawns
// live for that request only.
func (s *Server) runCGI(ctx context.Context) error {
	for _, sp := range s.pools {
		if err := sp.pool.Start(ctx); err != nil {
			return fmt.Errorf("bridge: starting FastCGI workers: %w", err)
		}
		sp.client.Address = sp.pool.Address()
		defer sp.pool.Stop(context.Background())
	}
	env := make(map[string]string)
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	err := cgi.ServeEnv(ctx, env, os.Stdin, os.Stdout, os.Stderr, s.handler)
	s.inflight.Wait()
	if err != nil {
		return fmt.Errorf("bridge: serving the CGI request: %w", err)
	}
	return nil
}

// checkFront checks that a can be listened on, among n fronts.
func checkFront(a Address, n int) error {
	sc := a.scheme()
	if sc == nil || !sc.front {
		return fmt.Errorf("ferry listens on %s", schemeNames(func(s *scheme) bool { return s.front }))
	}
	if sc.name == "cgi" && (a.Path != "" || n > 1) {
		return fmt.Errorf("a cgi: front is this process's one CGI request: spell it cgi: alone, with no other front")
	}
	return checkFrontOptions(a, sc, " (as a front)")
}

// buildRouter makes the handler for every mount and the static root.
func (s *Server) buildRouter() (*router, error) {
	rt := &router{}
	b := &builder{s: s}
	if s.cfg.Root != "" {
		fi, err := os.Stat(s.cfg.Root)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("bridge: document root %q is not a directory: %v", s.cfg.Root, err)
		}
		rt.static = &staticFiles{root: s.cfg.Root}
		b.static = rt.static
	}
	for _, m := range s.cfg.Mounts {
		k, o, err := checkBackend(m.Backend)
		if err == nil {
			err = checkGroup(m, k)
		}
		var h http.Handler
		b.stats = s.admin.newMount(m)
		if err == nil {
			err = checkOwn(k, m)
		}
		if err == nil {
			b.st = s.cfg.MountSettings(m)
			b.group = nil
			h, err = k.build(b, m, o)
		}
		if err == nil && b.group != nil {
			h = b.group.handler(h)
		}
		if err != nil {
			return nil, fmt.Errorf("bridge: mount %s=%s: %w", m.Prefix, m.Backend, err)
		}
		rt.routes = append(rt.routes, route{prefix: m.Prefix, handler: b.stats.wrap(h), backend: m.Backend.String()})
	}
	sort.SliceStable(rt.routes, func(i, j int) bool { return len(rt.routes[i].prefix) > len(rt.routes[j].prefix) })
	for i := 1; i < len(rt.routes); i++ {
		if rt.routes[i].prefix == rt.routes[i-1].prefix {
			return nil, fmt.Errorf("bridge: prefix %q is mounted twice", rt.routes[i].prefix)
		}
	}
	for _, f := range b.onRouter {
		f(rt)
	}
	return rt, nil
}

// spawned is a worker pool ferry runs and the client that reaches it.
type spawned struct {
	pool   *spawn.Pool
	client *fastcgi.Client
}
