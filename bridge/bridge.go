package bridge

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/cgi"
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
	// Fronts bounds what the clients and web servers talking to ferry may
	// take: timeouts and connections.
	Fronts FrontLimits
	// RootSymlinks is the symbolic link policy of Root's static files,
	// as a cgi: mount's (cgi.SymlinkPolicy): "owner-match" (links inside
	// Root, or whose owner owns the target), "follow" or "never". If
	// empty, "owner-match".
	RootSymlinks string
	// CPUs, if positive, is how many CPUs run Go code at once in this
	// process while Run serves: Run sets runtime.GOMAXPROCS to it (a
	// setting of the whole process) and gives back the value it found
	// when it returns; a Reload that changes it sets it again, and one
	// back to zero gives that value back. Zero leaves the runtime's own
	// (every CPU the process may use, or $GOMAXPROCS). At most 1024.
	CPUs int
	// ShutdownTimeout bounds the drain of in-flight requests on shutdown;
	// scripts still running then are stopped. If zero,
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// AccessLog, if true, logs one line per request.
	AccessLog bool
	// AccessLogFile, if set, is the file the access log is appended to
	// (created with mode 0640), opened by Run (or by the reload that names
	// it) and reopened by [Server.ReopenLogs], as logrotate needs. If
	// empty, the access log goes to Logger (format "auto") or Stderr.
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
	// An upgrade hands its socket over as it does the fronts'.
	Admin Address
	// PIDFile, if set, is the file Run writes the process ID to once it
	// listens, and removes when it stops (unless another process has
	// written its own since, as the new process of an upgrade does). A
	// reload that names another file moves it there.
	PIDFile string
	// Log says how the process logs; the command builds Logger from it.
	Log LogConfig
	// LogSwitch, if not nil, is the process log's output, the same in
	// every configuration a Reload applies: what outlives a configuration
	// (the fronts, worker pools a reload keeps, Run's and Reload's own
	// lines) logs through its [LogSwitch.Logger], and a Reload sets its
	// format and level to Log's as it switches to the new configuration.
	// Logger is then the configuration's own ([LogSwitch.ConfigLogger]).
	// If nil, everything logs to Logger.
	LogSwitch *LogSwitch
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

// Server is a configured ferry: build it with [New], run it with Run,
// apply another configuration to it while it runs with [Server.Reload],
// and hand it over to a new process with [Server.Upgrade].
type Server struct {
	hurry   context.Context // ended by StopNow: the drain ends at once
	stopNow context.CancelFunc
	pools   []spawned
	groups  []*group // upstream groups, whose checks run while this configuration is in force
	// drained names the group backends ("PREFIX BACKEND") drained
	// through the admin listener in the configuration this one replaces:
	// they stay drained across the reload, as HAProxy's server state file
	// keeps them.
	drained map[string]bool
	// stopGroups stops the groups' health checks and re-resolution that
	// Run or a reload started ([Server.startGroups]); nil before.
	stopGroups func()
	access     *accessOutput // the access log's own output; nil: the process log
	cfg        Config
	log        zerolog.Logger
	handler    http.Handler
	rt         *router
	inflight   sync.WaitGroup

	// reqs counts the requests this configuration serves in a running
	// ferry: a reload waits for them before it stops what it replaced.
	reqs requests
	// carry holds the worker pools of the configuration in force that
	// this one, being built by a reload, may keep ([Server.addPool]).
	carry []spawned
	// handover holds the listening sockets a replaced ferry handed over
	// ([Server.TakeOver]); Run takes them.
	handover *Handover
	// run is the running state, set by Run on the Server it was called
	// on while it serves.
	run atomic.Pointer[runner]
	// admin is the admin listener's handler and figures; nil without
	// Config.Admin.
	admin *admin
}

// New checks cfg and builds the routes.
func New(cfg Config) (*Server, error) { return newServer(cfg, nil) }

// newServer is New for a configuration that replaces prev, the one in
// force, when a reload builds it (prev is nil otherwise): it may keep
// prev's worker pools, and goes on with its admin figures and, if it
// names the same file, its access log file.
func newServer(cfg Config, prev *Server) (*Server, error) {
	s := &Server{cfg: cfg, log: zerolog.Nop()}
	if prev != nil {
		s.carry = slices.Clone(prev.pools)
		s.drained = prev.drainedBackends()
	}
	s.hurry, s.stopNow = context.WithCancel(context.Background())
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
	if err := s.setUpAdmin(prev.adminStats()); err != nil {
		return nil, err
	}
	if err := checkAccessLog(&s.cfg); err != nil {
		return nil, err
	}
	s.access = newAccessOutput(&s.cfg, prev.accessFile())
	rt, err := s.buildRouter()
	if err != nil {
		return nil, err
	}
	s.rt = rt
	s.handler = s.accessLog(rt)
	return s, nil
}

// Handler returns the server's whole HTTP handler: routes, access log and
// request IDs. It is what every front serves while this configuration is
// in force.
func (s *Server) Handler() http.Handler { return s.handler }

// Run listens on every front and serves until ctx ends, then shuts down:
// listeners close, in-flight requests get up to ShutdownTimeout to finish,
// then the scripts still running are stopped (and reaped) before Run returns.
// ready, if not nil, is called with the bound listeners once they accept.
// The admin listener, if any, opens after the fronts, and the access log
// file, if any, is open while Run runs. While Run serves, [Server.Reload]
// applies another configuration and [Server.Upgrade] hands the listeners
// over to a new process, after which Run drains and returns nil.
func (s *Server) Run(ctx context.Context, ready func([]net.Listener)) error {
	if err := s.openLogs(); err != nil {
		return err
	}
	defer s.closeLogs()
	if len(s.cfg.Listen) == 1 && s.cfg.Listen[0].Protocol() == "cgi" {
		return s.runCGI(ctx)
	}
	if err := startPools(s.log, s.pools); err != nil {
		return err
	}
	s.stopGroups = s.startGroups()
	r := newRunner(s)
	fronts, err := r.open(s.cfg.Listen, s.handover)
	var adm []front
	if err == nil {
		adm, err = r.openAdmin(s.cfg.Admin, s.handover)
	}
	if err == nil {
		err = r.setPIDFile(s.cfg.PIDFile)
	}
	if err == nil {
		r.setCPUs(s.cfg.CPUs)
		defer r.setCPUs(0)
	}
	if err != nil {
		closeFronts(append(fronts, adm...), s.handover != nil)
		s.stopGroups()
		stopPools(s.log, s.pools)
		r.stopScripts()
		return err
	}
	lns := r.serve(fronts)
	for _, f := range adm {
		r.serveAdminOn(f)
	}
	s.admin.inForce()
	s.run.Store(r)
	defer s.run.Store(nil)
	if s.handover != nil {
		if err := s.handover.ready(); err != nil {
			s.log.Warn().Err(err).Msg("ferry: upgrade: telling the replaced ferry we listen")
		} else {
			s.log.Info().Int("pid", os.Getpid()).Msg("ferry: upgrade: serving on the sockets handed over; the replaced ferry drains")
		}
	}
	if ready != nil {
		ready(lns)
	}

	select {
	case <-ctx.Done():
	case err = <-r.errc:
		err = fmt.Errorf("bridge: serving: %w", err)
	case <-r.handedOver:
	}
	r.shutdown()
	return err
}

// runCGI serves the one request of this process, which a web server runs
// as a CGI program (RFC 3875): the request comes from the environment and
// standard input, the response goes to standard output. Workers it spawns
// live for that request only.
func (s *Server) runCGI(ctx context.Context) error {
	for _, sp := range s.pools {
		if err := sp.pool.Start(ctx); err != nil {
			return fmt.Errorf("bridge: starting %s: %w", sp.what, err)
		}
		sp.connect(sp.pool.Address())
		defer sp.pool.Stop(context.Background())
	}
	defer s.startGroups()() // the first resolution of names and SRV records, before the request
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
	if _, err := parseRootSymlinks(s.cfg.RootSymlinks); err != nil {
		return nil, err
	}
	if s.cfg.Root != "" {
		var err error
		if rt.static, err = newStaticFiles(s.cfg.Root, s.cfg.RootSymlinks); err != nil {
			return nil, err
		}
		b.static = rt.static
	}
	for _, m := range s.cfg.Mounts {
		k, o, err := checkBackend(m.Backend)
		if err == nil {
			err = checkNeeded(k, m.Backend.Query)
		}
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
		f(localRedirects{rt})
	}
	return rt, nil
}

// workerPool is a pool of workers ferry runs: a *spawn.Pool, or an
// *appserver.Workers around one.
type workerPool interface {
	Start(context.Context) error
	Stop(context.Context) error
	Address() string
	PIDs() []int
}

// spawned is a worker pool ferry runs, the client that reaches it, and
// its figures for the admin listener (nil without one).
type spawned struct {
	pool    workerPool
	procs   *spawn.Pool       // the processes: pool itself, or the pool an *appserver.Workers supervises
	client  any               // *fastcgi.Client or *scgi.Client
	what    string            // "FastCGI workers", for log lines and errors
	name    string            // the program, or the application
	connect func(addr string) // tells the client the pool's socket, once known
	stats   *poolStats
}
