// Package bridge turns ferry's configuration into running fronts (listeners)
// and routes to backs (handlers): it mounts CGI directories and scripts under
// URL prefixes, serves static files from a document root, logs every request,
// and shuts down gracefully.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/scgi"
	"github.com/rs/zerolog"
)

// Defaults for zero fields of [Config].
const (
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// Mount attaches a back to a URL path prefix.
type Mount struct {
	// Prefix is the URL path prefix, such as "/cgi-bin/". A prefix ending in
	// "/" covers its subtree; one without covers that path and its subtree.
	Prefix string
	// Backend is where requests go, in ferry's address spelling.
	Backend Address
}

// ParseMount parses "PREFIX=BACKEND", such as "/cgi-bin/=cgi:/usr/lib/cgi-bin".
func ParseMount(s string) (Mount, error) {
	prefix, backend, ok := strings.Cut(s, "=")
	if !ok || !strings.HasPrefix(prefix, "/") {
		return Mount{}, fmt.Errorf("bridge: mount %q: want PREFIX=BACKEND with PREFIX starting with /", s)
	}
	a, err := ParseAddress(backend)
	if err != nil {
		return Mount{}, fmt.Errorf("bridge: mount %q: %w", s, err)
	}
	return Mount{Prefix: prefix, Backend: a}, nil
}

// Config describes what ferry serves.
type Config struct {
	// Listen are the fronts. If empty, http://127.0.0.1:8080.
	Listen []Address
	// Mounts are the routes, matched longest prefix first.
	Mounts []Mount
	// Root, if set, is a document root: paths no mount covers are served as
	// static files from it (no directory listings, no dotfiles), and it is
	// DOCUMENT_ROOT for scripts.
	Root string
	// CGI holds the settings scripts run with; its Path and ScriptName are
	// ignored. Each mount gets its own copy (and so its own concurrency
	// limit) unless CGI.Limiter is set. If nil, defaults are used.
	CGI *cgi.Handler
	// ShutdownTimeout bounds the drain of in-flight requests on shutdown;
	// scripts still running then are stopped. If zero,
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// AccessLog, if true, logs one line per request.
	AccessLog bool
	// Logger receives access and error logs. If nil, nothing is logged.
	Logger *zerolog.Logger
	// Version is reported in SERVER_SOFTWARE as "ferry/VERSION".
	Version string
}

// Server is a configured ferry: build it with [New], run it with Run.
type Server struct {
	pools    []spawned
	cfg      Config
	log      zerolog.Logger
	handler  http.Handler
	inflight sync.WaitGroup
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
		switch a.Protocol() {
		case "http", "fastcgi", "scgi":
		case "cgi":
			if a.Path != "" || len(s.cfg.Listen) > 1 {
				return nil, fmt.Errorf("bridge: listen %s: a cgi: front is this process's one CGI request: spell it cgi: alone, with no other front", a)
			}
		default:
			return nil, fmt.Errorf("bridge: listen %s: ferry listens on http://, fastcgi://, scgi:// and cgi:", a)
		}
	}
	rt, err := s.buildRouter()
	if err != nil {
		return nil, err
	}
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
func (s *Server) Run(ctx context.Context, ready func([]net.Listener)) error {
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
		s.log.Info().Str("worker", sp.pool.Path).Ints("pids", sp.pool.PIDs()).Str("socket", sp.pool.Address()).Msg("ferry: FastCGI workers started")
	}
	defer stopPools()
	for _, a := range s.cfg.Listen {
		l, err := listen(a)
		if err != nil {
			closeAll()
			return err
		}
		fronts = append(fronts, front{addr: a, l: l})
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

	errc := make(chan error, len(fronts))
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
	s.log.Info().Dur("timeout", timeout).Msg("ferry: shutting down; draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, shut := range []func(context.Context) error{httpSrv.Shutdown, fcgiSrv.Shutdown, scgiSrv.Shutdown} {
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

// buildRouter makes the handler for every mount and the static root.
func (s *Server) buildRouter() (*router, error) {
	rt := &router{}
	if s.cfg.Root != "" {
		fi, err := os.Stat(s.cfg.Root)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("bridge: document root %q is not a directory: %v", s.cfg.Root, err)
		}
		rt.static = &staticFiles{root: s.cfg.Root}
	}
	for _, m := range s.cfg.Mounts {
		h, err := s.backend(m, rt.static)
		if err != nil {
			return nil, err
		}
		rt.routes = append(rt.routes, route{prefix: m.Prefix, handler: h, backend: m.Backend.String()})
	}
	sort.SliceStable(rt.routes, func(i, j int) bool { return len(rt.routes[i].prefix) > len(rt.routes[j].prefix) })
	for i := 1; i < len(rt.routes); i++ {
		if rt.routes[i].prefix == rt.routes[i-1].prefix {
			return nil, fmt.Errorf("bridge: prefix %q is mounted twice", rt.routes[i].prefix)
		}
	}
	for i := range rt.routes {
		if h, ok := rt.routes[i].handler.(*cgi.Handler); ok {
			h.RedirectHandler = rt
		}
	}
	return rt, nil
}

// backend builds the handler for one mount.
func (s *Server) backend(m Mount, static http.Handler) (http.Handler, error) {
	switch m.Backend.Scheme {
	case "http":
		n, err := queryInt(m, "max_conns")
		if err != nil {
			return nil, err
		}
		return newHTTPBack(m, s.log.With().Str("component", "http-proxy").Logger(), n), nil
	case "scgi", "scgi+unix":
		n, err := queryInt(m, "max_conns")
		if err != nil {
			return nil, err
		}
		addr := m.Backend.Host
		if m.Backend.Network() == "unix" {
			addr = m.Backend.Path
		}
		sl := s.log.With().Str("component", "scgi-client").Logger()
		h := s.cgiSettings()
		client := &scgi.Client{Network: m.Backend.Network(), Address: addr, MaxConns: n, QueueTimeout: h.QueueTimeout, Logger: &sl}
		return scgi.NewHandler(client, cgi.Mount{Prefix: m.Prefix, Root: s.cfg.Root}, h.Settings), nil
	case "cgi":
		if m.Backend.Path == "" {
			return nil, fmt.Errorf("bridge: mount %s: cgi: needs a directory or script path", m.Prefix)
		}
		fi, err := os.Stat(m.Backend.Path)
		if err != nil {
			return nil, fmt.Errorf("bridge: mount %s: %w", m.Prefix, err)
		}
		h := s.cgiSettings()
		switch from := m.Backend.Query.Get("from"); {
		case from == "script-filename":
			if !fi.IsDir() {
				return nil, fmt.Errorf("bridge: mount %s=%s: from=script-filename needs a directory", m.Prefix, m.Backend)
			}
			h.Resolver = &cgi.FilenameDir{Roots: []string{m.Backend.Path}}
			return h, nil
		case from != "":
			return nil, fmt.Errorf("bridge: mount %s=%s: unknown from=%q; want from=script-filename", m.Prefix, m.Backend, from)
		}
		if fi.IsDir() {
			if !strings.HasSuffix(m.Prefix, "/") {
				return nil, fmt.Errorf("bridge: mount %s=%s: a directory must be mounted at a prefix ending in /", m.Prefix, m.Backend)
			}
			dir := h.Clone()
			dir.Resolver = &cgi.Dir{Path: m.Backend.Path, Prefix: m.Prefix, Root: h.DocumentRoot}
			return dir, nil
		}
		if fi.Mode().Perm()&0o111 == 0 {
			return nil, fmt.Errorf("bridge: mount %s: %s is not executable", m.Prefix, m.Backend.Path)
		}
		one := h.Clone()
		one.Path = m.Backend.Path
		one.ScriptName = strings.TrimSuffix(m.Prefix, "/")
		return one, nil
	case "fastcgi", "fastcgi+unix", "fastcgi+exec":
		addr := m.Backend.Host
		if m.Backend.Network() == "unix" {
			addr = m.Backend.Path
		}
		var pool *fastcgi.Pool
		if m.Backend.Scheme == "fastcgi+exec" {
			if _, err := os.Stat(m.Backend.Path); err != nil {
				return nil, fmt.Errorf("bridge: mount %s: %w", m.Prefix, err)
			}
			workers, err := queryInt(m, "workers")
			if err != nil {
				return nil, err
			}
			maxReq, err := queryInt(m, "max_requests")
			if err != nil {
				return nil, err
			}
			minWorkers, err := queryInt(m, "min_workers")
			if err != nil {
				return nil, err
			}
			var idle time.Duration
			if v := m.Backend.Query.Get("idle_timeout"); v != "" {
				if idle, err = time.ParseDuration(v); err != nil || idle <= 0 {
					return nil, fmt.Errorf("bridge: mount %s=%s: idle_timeout=%q: want a duration such as 10s", m.Prefix, m.Backend, v)
				}
			} else if minWorkers > 0 {
				idle = 10 * time.Second // php-fpm's pm.process_idle_timeout
			}
			pl := s.log.With().Str("component", "fastcgi-workers").Str("worker", m.Backend.Path).Logger()
			pool = &fastcgi.Pool{Path: m.Backend.Path, Workers: workers, MaxRequests: maxReq, Env: s.workerEnv(),
				MinWorkers: minWorkers, IdleTimeout: idle, KillGrace: s.cgiSettings().KillGrace, Logger: &pl}
			addr = "" // the pool's socket, known once it runs
		}
		fl := s.log.With().Str("component", "fastcgi-client").Logger()
		h := s.cgiSettings()
		client := &fastcgi.Client{Network: m.Backend.Network(), Address: addr, Logger: &fl, QueueTimeout: h.QueueTimeout}
		n, err := queryInt(m, "max_conns")
		if err != nil {
			return nil, err
		}
		client.MaxConns = n
		if pool != nil {
			// A connection per request, as mod_fcgid does: a kept
			// connection holds its worker, and while a worker is being
			// replaced, requests on new connections would wait behind the
			// idle ones. The pool size still caps what runs at once.
			client.NoKeepConn = true
			client.MaxConns = pool.Workers
			if client.MaxConns == 0 {
				client.MaxConns = fastcgi.DefaultPoolWorkers
			}
			s.pools = append(s.pools, spawned{pool: pool, client: client})
		}
		app := fastcgi.NewHandler(client, cgi.Mount{Prefix: m.Prefix, Root: s.cfg.Root}, h.Settings)
		if pool != nil && pool.IdleTimeout > 0 {
			app.Busy = pool.Busy
		}
		if s.cfg.Root == "" {
			return app, nil
		}
		// With a document root, a PHP site as nginx + php-fpm serves it:
		// scripts split at .php, index.php, a front controller, and static
		// files served here, never by the application.
		q := m.Backend.Query
		site := &cgi.PHPSite{Root: s.cfg.Root, Ext: q.Get("ext"), Index: q.Get("index"), FrontController: "/index.php"}
		if q.Has("front") {
			site.FrontController = q.Get("front")
		}
		return site.Handler(app, static), nil
	}
	return nil, fmt.Errorf("bridge: mount %s: backend %s: ferry's backends are cgi:, fastcgi://, fastcgi+unix://, fastcgi+exec:, scgi://, scgi+unix:// and http://", m.Prefix, m.Backend)
}

// queryInt reads a positive number option of a mount's backend; absent is 0.
func queryInt(m Mount, name string) (int, error) {
	v := m.Backend.Query.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bridge: mount %s=%s: %s=%q: want a positive number", m.Prefix, m.Backend, name, v)
	}
	return n, nil
}

// spawned is a worker pool ferry runs and the client that reaches it.
type spawned struct {
	pool   *fastcgi.Pool
	client *fastcgi.Client
}

// workerEnv is the environment of spawned FastCGI workers: the inherited
// allowlist and --env, as scripts get.
func (s *Server) workerEnv() []string {
	h := s.cgiSettings()
	return append(cgi.InheritedEnv(h.InheritEnv), h.Env...)
}

// cgiSettings returns the script settings every mount starts from.
func (s *Server) cgiSettings() *cgi.Handler {
	h := &cgi.Handler{}
	if s.cfg.CGI != nil {
		h = s.cfg.CGI.Clone()
	}
	if h.ServerSoftware == "" {
		h.ServerSoftware = "ferry"
		if s.cfg.Version != "" {
			h.ServerSoftware = "ferry/" + s.cfg.Version
		}
	}
	if h.DocumentRoot == "" && s.cfg.Root != "" {
		h.DocumentRoot = s.cfg.Root
	}
	if h.Logger == nil {
		h.Logger = &s.log
	}
	return h
}
