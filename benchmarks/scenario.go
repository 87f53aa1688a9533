package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/peers"
)

// Config configures a run of the bundled scenario set (RunScenarios).
type Config struct {
	// Apps is the directory of the app scripts, testdata/bench in the
	// source tree. It is required.
	Apps string
	// Self runs this program so that its arguments after Self reach
	// RunHelper: for the ferry command, the executable and "bench". It is
	// required: gateways and the Go app run in helper processes.
	Self []string
	// Profile is "quick" (the default: one concurrency level, one run,
	// about two minutes) or "full" (a sweep of concurrency levels, three runs
	// each, the realistic app at the peers too).
	Profile string
	// Concurrency are the levels run. If nil: 8 for quick; 1, 4, 16 and 64
	// for full.
	Concurrency []int
	// Duration and Warmup are per run. If zero: 1s and 0.25s for quick,
	// 3s and 1s for full.
	Duration, Warmup time.Duration
	// Repeat is the number of runs per row. If zero: 1 for quick, 3 for full.
	Repeat int
	// Rows is the size of the realistic app's page. If zero, 300.
	Rows int
	// Only, if set, keeps the scenarios whose name contains it.
	Only string
	// Command is recorded in the report.
	Command []string
	// Progress, if set, is told the scenario being run, its index among n,
	// and the fraction of it done.
	Progress func(name string, i, n int, done float64)
	// Done, if set, is given each row as soon as it is done: measured, n/a,
	// or (with no runs and a note starting "skipped: ") not run.
	Done func(Row)
}

func (c *Config) full() bool { return c.Profile == "full" }

func (c *Config) levels() []int {
	switch {
	case len(c.Concurrency) > 0:
		return c.Concurrency
	case c.full():
		return []int{1, 4, 16, 64}
	}
	return []int{defaultConcurrency}
}

func (c *Config) load() (dur, warm time.Duration, rep int) {
	dur, warm, rep = time.Second, 250*time.Millisecond, 1
	if c.full() {
		dur, warm, rep = 3*time.Second, time.Second, 3
	}
	if c.Duration > 0 {
		dur = c.Duration
	}
	if c.Warmup > 0 {
		warm = c.Warmup
	}
	if c.Repeat > 0 {
		rep = c.Repeat
	}
	return dur, warm, rep
}

// setup is a started scenario: where to send requests and which processes
// to measure.
type setup struct {
	addr  string // target address, for newTarget
	req   Request
	trees procTrees
	stop  func()
	// annotate, if set, is called after each concurrency level's runs:
	// what it returns goes into the row's note.
	annotate func() string
}

// scenario is one way of serving one app.
type scenario struct {
	app, lang, mode, gateway string
	peer                     bool
	// vs, if set, names the ferry row of the same app this row is compared
	// with, as LANG/MODE/GATEWAY: the report puts the row right after it and
	// gives the ratio of their throughputs (Report.Pairs). Peers set it to
	// the ferry row doing their job; a new row (wsgi: workers against
	// Gunicorn and uWSGI, say) needs only its vs to join the comparisons.
	vs string
	// beside, if set, places the row right after another as vs does, with
	// no ratio: nginx → ferry FastCGI → cgi-bin sits by ferry's own cgi-bin
	// row but is compared with fcgiwrap, the thing it replaces.
	beside string
	// over, if set, names (as LANG/MODE/GATEWAY) the row this ferry row
	// adds something to: a hop through ferry in front of the app that row
	// serves directly, or idle connections held through its load. The
	// report puts the row right after it and gives this row's req/s over
	// that one's (Report.Pairs, with Over set): what is left of it.
	over string
	// na, if set, makes the row n/a with this reason: it cannot exist.
	na string
	// need lists programs that must be installed; a missing one skips the
	// scenario.
	need []string
	// check, if set, says why the scenario cannot run here, or "".
	check func() string
	start func(ctx context.Context, e *env) (*setup, error)
}

func (s *scenario) name() string { return s.app + "/" + s.lang + "/" + s.mode + "/" + s.gateway }

// env is what scenarios share: the apps' directory and the helper command.
type env struct {
	cfg      *Config
	apps     string // a world-readable copy of cfg.Apps
	tmp      string
	wsgiApps map[string]wsgiApp // the frameworks' hellos written so far, by framework
}

// appQuery returns the request path of an app variant.
func (c *Config) appPath(app string) string {
	if app == "realistic" {
		rows := c.Rows
		if rows <= 0 {
			rows = 300
		}
		return "/?rows=" + strconv.Itoa(rows) + "&name=ferry"
	}
	return "/"
}

// gatewayComms are the process names counted as the gateway of a peer.
var gatewayComms = []string{"nginx", "apache2", "httpd", "fcgiwrap"}

func isGatewayComm(_ int, comm string) bool {
	return slices.Contains(gatewayComms, comm)
}

// ferryFront starts a front helper with spec and measures it (the gateway)
// and its children (workers), plus extra roots (workers started apart).
func ferryFront(ctx context.Context, e *env, spec frontSpec, extra ...int) (*setup, error) {
	f, err := startFront(ctx, e.cfg.Self, spec)
	if err != nil {
		return nil, err
	}
	pid := f.Pid()
	return &setup{addr: f.URL, trees: procTrees{Roots: append([]int{pid}, extra...), Gateway: func(p int, _ string) bool { return p == pid }}, stop: f.Stop}, nil
}

func (e *env) helperArgs(role string) (string, []string) {
	self := e.cfg.Self
	return self[0], append(append(append([]string(nil), self[1:]...), HelperArg), role)
}

func scriptExt(lang string) string {
	return map[string]string{"sh": "sh", "perl": "pl", "python": "py", "php": "php"}[lang]
}

// scenarios returns every scenario of the set, in report order.
func (c *Config) scenarios() []scenario {
	var out []scenario
	apps := []string{"hello", "realistic"}
	for _, app := range apps {
		for _, lang := range []string{"sh", "perl", "python", "php"} {
			need := map[string][]string{"perl": {"perl"}, "python": {"python3"}, "php": {"php-cgi"}}[lang]
			var vs string // the persistent form of the same scripts
			if lang == "perl" || lang == "php" {
				vs = lang + "/cgi-persist/ferry"
			}
			out = append(out, scenario{app: app, lang: lang, mode: "cgi", gateway: "ferry", vs: vs, need: need,
				start: func(ctx context.Context, e *env) (*setup, error) {
					return ferryFront(ctx, e, frontSpec{Kind: "cgi", Path: filepath.Join(e.apps, "bench."+scriptExt(lang))})
				}})
			switch lang {
			case "sh":
				out = append(out, scenario{app: app, lang: lang, mode: "fastcgi", gateway: "ferry", na: "sh has no long-lived form"})
				out = append(out, scenario{app: app, lang: lang, mode: "scgi", gateway: "ferry", na: "sh has no long-lived form"})
			case "perl":
				out = append(out, persistScenario(app, lang, "perl"))
				out = append(out, psgiScenarios(app)...)
				out = append(out, scenario{app: app, lang: lang, mode: "fastcgi", gateway: "ferry-pool", need: []string{"perl"},
					check: perlModule("FCGI", "Perl's FCGI module", "libfcgi-perl"),
					start: func(ctx context.Context, e *env) (*setup, error) {
						perl, _ := peers.Lookup("perl")
						return ferryFront(ctx, e, frontSpec{Kind: "fastcgi-pool", Path: perl, Args: []string{filepath.Join(e.apps, "bench-fcgi.pl")}, Workers: 4})
					}})
				out = append(out, scenario{app: app, lang: lang, mode: "scgi", gateway: "ferry-workers", need: []string{"perl"},
					check: perlModule("SCGI", "Perl's SCGI module", "libscgi-perl"),
					start: func(ctx context.Context, e *env) (*setup, error) {
						perl, _ := peers.Lookup("perl")
						return ferryFront(ctx, e, frontSpec{Kind: "scgi-pool", Path: perl, Args: []string{filepath.Join(e.apps, "bench-scgi.pl")}, Workers: 4})
					}})
			case "python":
				out = append(out, c.wsgiScenarios(app, func(e *env) (wsgiApp, error) { return e.benchApp(), nil }, nil)...)
				out = append(out, scenario{app: app, lang: lang, mode: "fastcgi", gateway: "ferry+uwsgi", need: []string{"uwsgi"},
					check: uwsgiPython, start: func(ctx context.Context, e *env) (*setup, error) { return startUwsgi(ctx, e, "fastcgi", e.benchApp()) }})
			case "php":
				out = append(out, persistScenario(app, lang, "php-cgi"))
				out = append(out, scenario{app: app, lang: lang, mode: "fastcgi", gateway: "ferry-pool-php-cgi", need: []string{"php-cgi"},
					start: func(ctx context.Context, e *env) (*setup, error) {
						php, _ := peers.Lookup("php-cgi")
						script := filepath.Join(e.apps, "bench.php")
						return ferryFront(ctx, e, frontSpec{Kind: "fastcgi-pool", Path: php, Workers: 4, Script: script, Root: e.apps,
							Env: []string{"PHP_FCGI_CHILDREN=0", "PHP_FCGI_MAX_REQUESTS=100000"}})
					}})
				out = append(out, scenario{app: app, lang: lang, mode: "scgi", gateway: "ferry", na: "PHP has no SCGI server API (php-cgi and php-fpm speak FastCGI only)"})
			}
		}
		out = append(out,
			scenario{app: app, lang: "go", mode: "cgi", gateway: "ferry", start: func(ctx context.Context, e *env) (*setup, error) {
				path, args := e.helperArgs("app-cgi")
				return ferryFront(ctx, e, frontSpec{Kind: "cgi", Path: path, Args: args})
			}},
			scenario{app: app, lang: "go", mode: "fastcgi", gateway: "ferry-pool", start: func(ctx context.Context, e *env) (*setup, error) {
				path, args := e.helperArgs("app-fastcgi")
				return ferryFront(ctx, e, frontSpec{Kind: "fastcgi-pool", Path: path, Args: args, Workers: 2})
			}},
			scenario{app: app, lang: "go", mode: "scgi", gateway: "ferry-workers", start: func(ctx context.Context, e *env) (*setup, error) {
				path, args := e.helperArgs("app-scgi")
				return ferryFront(ctx, e, frontSpec{Kind: "scgi-pool", Path: path, Args: args, Workers: 2})
			}},
			scenario{app: app, lang: "go", mode: "http", gateway: "net/http", start: func(ctx context.Context, e *env) (*setup, error) {
				return ferryFront(ctx, e, frontSpec{Kind: "app"})
			}},
		)
		if app == "hello" || c.full() {
			out = append(out, c.frontPathScenarios(app)...)
		}
		if app == "hello" {
			out = append(out, c.idleScenarios(app)...)
		}
	}
	out = append(out, c.frameworkScenarios()...)
	if !c.full() {
		// The quick profile keeps to about two minutes: the realistic app's
		// SCGI workers (which run as its FastCGI workers do) wait for
		// --profile full.
		for i, sc := range out {
			if sc.app == "realistic" && sc.mode == "scgi" && sc.na == "" {
				out[i] = scenario{app: sc.app, lang: sc.lang, mode: sc.mode, gateway: sc.gateway, na: "in --profile full"}
			}
		}
	}
	peerApps := apps[:1]
	if c.full() {
		peerApps = apps
	}
	for _, app := range peerApps {
		// Each source of rows compared with the peers is a function of the
		// app; the README's recipes come first.
		for _, rows := range []func(string) []scenario{c.recipeScenarios} {
			out = append(out, rows(app)...)
		}
		for _, lang := range []string{"sh", "perl", "python", "php"} {
			out = append(out, scenario{app: app, lang: lang, mode: "cgi", gateway: "apache-mod_cgid", peer: true, vs: lang + "/cgi/ferry", need: []string{"apache2"},
				start: func(ctx context.Context, e *env) (*setup, error) {
					dir := e.newDir("apache")
					srv, err := peers.StartApacheCGI(ctx, dir, peers.ApacheCGIConfig{CGIDir: e.apps})
					if err != nil {
						return nil, err
					}
					return &setup{addr: srv.URL + "/cgi-bin/bench." + scriptExt(lang), trees: procTrees{Marks: []string{dir}, Gateway: isGatewayComm}, stop: func() { srv.Stop() }}, nil
				}})
			out = append(out, scenario{app: app, lang: lang, mode: "cgi", gateway: "nginx-fcgiwrap", peer: true, vs: lang + "/cgi/nginx-ferry-fastcgi", need: []string{"nginx", "fcgiwrap"},
				start: func(ctx context.Context, e *env) (*setup, error) {
					dir := e.newDir("fcgiwrap")
					srv, err := peers.StartNginxFcgiwrap(ctx, dir, peers.NginxFcgiwrapConfig{CGIDir: e.apps, Workers: 4})
					if err != nil {
						return nil, err
					}
					return &setup{addr: srv.URL + "/cgi-bin/bench." + scriptExt(lang), trees: procTrees{Marks: []string{dir}, Gateway: isGatewayComm}, stop: func() { srv.Stop() }}, nil
				}})
		}
		out = append(out,
			scenario{app: app, lang: "php", mode: "fastcgi", gateway: "nginx-php-fpm", peer: true, vs: "php/fastcgi/ferry-php-fpm", need: []string{"nginx", "php-fpm"},
				start: func(ctx context.Context, e *env) (*setup, error) {
					fpm, fdir, err := e.startFPM(ctx)
					if err != nil {
						return nil, err
					}
					dir := e.newDir("nginx")
					// nginx at its best here: a connection per request.
					// With kept ones (fastcgi_keep_conn, upstream
					// keepalive 4) the connections nginx opens past its
					// idle ones wait behind children held by idle kept
					// connections: 730 req/s, errors and a p99.9 of 1.45 s
					// in a run of 6 Dec 2026, against 5,978 req/s.
					srv, err := peers.StartNginxFastCGI(ctx, dir, peers.NginxFastCGIConfig{Backend: fpm.Listen, Root: e.apps})
					if err != nil {
						fpm.Stop()
						return nil, err
					}
					return &setup{addr: srv.URL + "/bench.php", trees: procTrees{Marks: []string{dir, fdir}, Gateway: isGatewayComm},
						stop: func() { srv.Stop(); fpm.Stop() }}, nil
				}},
			scenario{app: app, lang: "php", mode: "fastcgi", gateway: "php-fpm-direct", peer: true, vs: "php/fastcgi/ferry-php-fpm", need: []string{"php-fpm"},
				start: func(ctx context.Context, e *env) (*setup, error) {
					fpm, fdir, err := e.startFPM(ctx)
					if err != nil {
						return nil, err
					}
					return &setup{addr: "fastcgi://" + fpm.Address + "/bench.php?max_conns=4", req: Request{Root: e.apps},
						trees: procTrees{Marks: []string{fdir}, Gateway: isGatewayComm}, stop: func() { fpm.Stop() }}, nil
				}},
			scenario{app: app, lang: "php", mode: "fastcgi", gateway: "gofast-php-fpm", peer: true, vs: "php/fastcgi/ferry-php-fpm", need: []string{"php-fpm"},
				start: func(ctx context.Context, e *env) (*setup, error) {
					return frontFPM(ctx, e, "", func(fpm *peers.PHPFPM) frontSpec {
						// gofast, the off-the-shelf Go FastCGI proxy: a connection per request.
						return frontSpec{Kind: "gofast", Network: fpm.Network, Address: fpm.Address,
							Script: filepath.Join(e.apps, "bench.php"), Root: e.apps}
					})
				}},
			scenario{app: app, lang: "go", mode: "cgi", gateway: "net/http/cgi", peer: true, vs: "go/cgi/ferry",
				start: func(ctx context.Context, e *env) (*setup, error) {
					path, args := e.helperArgs("app-cgi")
					return ferryFront(ctx, e, frontSpec{Kind: "stdcgi", Path: path, Args: args})
				}},
			scenario{app: app, lang: "go", mode: "fastcgi", gateway: "net/http/fcgi", peer: true, vs: "go/fastcgi/ferry-pool",
				start: func(ctx context.Context, e *env) (*setup, error) {
					path, args := e.helperArgs("app-stdfcgi")
					return ferryFront(ctx, e, frontSpec{Kind: "fastcgi-pool", Path: path, Args: args, Workers: 2})
				}},
		)
	}
	return nextToReference(out)
}

// nextToReference returns list with every row that has a vs (or over, or
// beside) placed right after the row it is compared with (or is a hop in
// front of, or sits beside); rows whose reference is not in list keep
// their place.
func nextToReference(list []scenario) []scenario {
	names := make(map[string]bool)
	for _, s := range list {
		names[s.name()] = true
	}
	after := make(map[string][]scenario)
	var out []scenario
	for _, s := range list {
		if ref := s.placement(); ref != "" && names[ref] {
			after[ref] = append(after[ref], s)
		}
	}
	var add func(s scenario)
	add = func(s scenario) {
		out = append(out, s)
		for _, f := range after[s.name()] {
			add(f)
		}
	}
	for _, s := range list {
		if ref := s.placement(); ref == "" || !names[ref] {
			add(s)
		}
	}
	return out
}

// reference returns the scenario name of the row s is compared with, or "".
func (s *scenario) reference() string {
	if s.vs == "" {
		return ""
	}
	return s.app + "/" + s.vs
}

// overName returns the scenario name of the row s is a hop in front of,
// or "".
func (s *scenario) overName() string {
	if s.over == "" {
		return ""
	}
	return s.app + "/" + s.over
}

// placement returns the scenario name of the row s is placed after: its
// reference, the app it is a hop in front of, or the row it sits beside;
// "" for none.
func (s *scenario) placement() string {
	switch {
	case s.vs != "":
		return s.reference()
	case s.over != "":
		return s.overName()
	case s.beside != "":
		return s.app + "/" + s.beside
	}
	return ""
}

func (e *env) newDir(name string) string {
	d, err := os.MkdirTemp(e.tmp, name+"-*")
	if err != nil {
		return filepath.Join(e.tmp, name)
	}
	return d
}

func (e *env) startFPM(ctx context.Context) (*peers.PHPFPM, string, error) {
	dir := e.newDir("php-fpm")
	fpm, err := peers.StartPHPFPM(ctx, dir, peers.PHPFPMConfig{Listen: "127.0.0.1:0", Children: 4, Root: e.apps})
	return fpm, dir, err
}

func uwsgiPython() string {
	uw, err := peers.Lookup("uwsgi")
	if err != nil {
		return "uwsgi is not installed"
	}
	if out, err := exec.Command(uw, "--plugin", "python3", "--help").CombinedOutput(); err != nil {
		return "uwsgi has no python3 plugin (Debian uwsgi-plugin-python3): " + firstLine(string(out))
	}
	return ""
}

// perlModule returns a check that perl loads module, named what, which
// Debian's package pkg installs.
func perlModule(module, what, pkg string) func() string {
	return func() string {
		if exec.Command("perl", "-M"+module, "-e1").Run() != nil {
			return what + " is not installed (Debian " + pkg + ")"
		}
		return ""
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// startUwsgiApp runs app in uwsgi (4 processes) on a unix socket
// speaking proto, "fastcgi" or "scgi", and returns the process, its
// directory and the socket.
func (e *env) startUwsgiApp(ctx context.Context, proto string, app wsgiApp) (*peers.Process, string, string, error) {
	uw, err := peers.Lookup("uwsgi")
	if err != nil {
		return nil, "", "", err
	}
	dir := e.newDir("uwsgi")
	sock := filepath.Join(dir, "app.sock")
	p, err := peers.Start(ctx, peers.Spec{
		Path: uw,
		Args: []string{"--plugin", "python3", "--" + proto + "-socket", sock, "--wsgi-file", app.file, "--callable", app.callable,
			"--processes", "4", "--disable-logging", "--master", "--die-on-term", "--chmod-socket=666"},
		Dir:       filepath.Dir(app.file),
		LogFile:   filepath.Join(dir, "uwsgi.log"),
		ReadyUnix: sock,
	})
	return p, dir, sock, err
}

// startUwsgi runs app in uwsgi (startUwsgiApp) and, in front of it,
// ferry serve as the README's recipe deploys it: a mount of uwsgi's
// socket (proto+unix://) with max_conns at its 4 processes.
func startUwsgi(ctx context.Context, e *env, proto string, app wsgiApp) (*setup, error) {
	p, _, sock, err := e.startUwsgiApp(ctx, proto, app)
	if err != nil {
		return nil, err
	}
	mount := fmt.Sprintf("/=%s+unix://%s?max_conns=4", proto, sock)
	return ferryFrontTo(ctx, e, frontSpec{Kind: "mount", Mount: mount}, p.Pid(), p.Stop)
}

// ferryFrontTo starts a front helper with spec in front of a peer running
// apart (its process pid, measured with the helper, stopped by stopPeer):
// the peer stops with the setup, or at once if the helper does not start.
func ferryFrontTo(ctx context.Context, e *env, spec frontSpec, pid int, stopPeer func() error) (*setup, error) {
	s, err := ferryFront(ctx, e, spec, pid)
	if err != nil {
		stopPeer()
		return nil, err
	}
	stop := s.stop
	s.stop = func() { stop(); stopPeer() }
	return s, nil
}

// RunScenarios runs the bundled scenario set and returns its report.
// Scenarios whose programs are missing are listed in Report.Skipped.
func RunScenarios(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Self) == 0 {
		return nil, errors.New("benchmarks: Config.Self is required")
	}
	if cfg.Profile == "" {
		cfg.Profile = "quick"
	}
	dur, warm, repeat := cfg.load()
	rep := &Report{Schema: schemaVersion, Command: cfg.Command, Started: time.Now().UTC(), Machine: describeMachine(), Profile: cfg.Profile,
		Load: LoadSpec{Mode: "closed", Concurrency: cfg.levels(), DurationS: dur.Seconds(), WarmupS: warm.Seconds(), Repeat: repeat}}
	tmp, err := os.MkdirTemp("", "ferry-bench-*")
	if err != nil {
		return nil, fmt.Errorf("benchmarks: %w", err)
	}
	defer os.RemoveAll(tmp)
	apps := filepath.Join(tmp, "apps")
	if err := os.CopyFS(apps, os.DirFS(cfg.Apps)); err != nil {
		return nil, fmt.Errorf("benchmarks: copying the apps from %s: %w", cfg.Apps, err)
	}
	// The Go app is this program, run as a CGI script: as www-data when
	// ferry runs as root, so it must sit where that user can run it (a
	// test binary's build directory is root's alone).
	if os.Geteuid() == 0 {
		self := filepath.Join(tmp, "bin", filepath.Base(cfg.Self[0]))
		if err := copyExecutable(cfg.Self[0], self); err != nil {
			return nil, fmt.Errorf("benchmarks: %w", err)
		}
		cfg.Self = append([]string{self}, cfg.Self[1:]...)
	}
	if err := peers.MakeWorldReadable(tmp); err != nil {
		return nil, fmt.Errorf("benchmarks: %w", err)
	}
	e := &env{cfg: &cfg, apps: apps, tmp: tmp}
	meter := startLoadMeter()

	var list []scenario
	for _, s := range cfg.scenarios() {
		if cfg.Only == "" || strings.Contains(s.name(), cfg.Only) {
			list = append(list, s)
		}
	}
	n := len(list) * len(cfg.levels())
	i := 0
	for _, s := range list {
		if s.na != "" {
			for _, c := range cfg.levels() {
				rep.Rows = append(rep.Rows, s.row(c, s.na))
				if cfg.Done != nil {
					cfg.Done(s.row(c, s.na))
				}
			}
			i += len(cfg.levels())
			continue
		}
		if why := s.unavailable(); why != "" {
			rep.Skipped = append(rep.Skipped, Skip{Scenario: s.name(), Reason: why})
			if cfg.Done != nil {
				cfg.Done(s.row(0, "skipped: "+why))
			}
			i += len(cfg.levels())
			continue
		}
		st, err := s.start(ctx, e)
		if err != nil {
			rep.Skipped = append(rep.Skipped, Skip{Scenario: s.name(), Reason: "did not start: " + err.Error()})
			if cfg.Done != nil {
				cfg.Done(s.row(0, "skipped: did not start: "+err.Error()))
			}
			i += len(cfg.levels())
			continue
		}
		st.req.Path = cfg.appPath(s.app)
		addr := withQuery(st.addr, cfg.appPath(s.app))
		for _, c := range cfg.levels() {
			name, idx := s.name(), i
			var progress func(float64)
			if cfg.Progress != nil {
				progress = func(f float64) { cfg.Progress(name, idx, n, f) }
			}
			row := s.row(c, "")
			row.Target = addr
			measureRow(ctx, &row, addr, st.req, st.trees, loadPlan{Concurrency: c, Duration: dur, Warmup: warm, Progress: progress}, repeat)
			if st.annotate != nil {
				row.Note = strings.TrimPrefix(row.Note+". "+st.annotate(), ". ")
			}
			rep.Rows = append(rep.Rows, row)
			i++
			if ctx.Err() != nil {
				break
			}
		}
		st.stop()
		if cfg.Done != nil {
			for _, r := range rep.Rows[len(rep.Rows)-len(cfg.levels()):] {
				cfg.Done(r)
			}
		}
		if err := ctx.Err(); err != nil {
			rep.finish(meter)
			return rep, err
		}
	}
	rep.Startup = startupCosts(ctx, rep.Rows, apps, e)
	return rep, rep.finish(meter)
}

// withQuery adds the query of appPath to base, an http:// or fastcgi://
// address, giving it the path "/" if it has none.
func withQuery(base, appPath string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	if u.Path == "" {
		u.Path = "/"
	}
	if _, q, ok := strings.Cut(appPath, "?"); ok && q != "" {
		if u.RawQuery != "" {
			u.RawQuery += "&" + q
		} else {
			u.RawQuery = q
		}
	}
	return u.String()
}

func (s *scenario) row(conc int, note string) Row {
	return Row{Scenario: s.name(), App: s.app, Lang: s.lang, Mode: s.mode, Gateway: s.gateway, Peer: s.peer, VS: s.reference(),
		Over: s.overName(), Concurrency: conc, Note: note}
}

func (s *scenario) unavailable() string {
	for _, p := range s.need {
		if _, err := peers.Lookup(p); err != nil {
			return p + " is not installed"
		}
	}
	if s.check != nil {
		return s.check()
	}
	return ""
}

// measureRow checks that addr answers, then runs the load repeat times,
// and fills row.
func measureRow(ctx context.Context, row *Row, addr string, req Request, trees procTrees, l loadPlan, repeat int) {
	t, err := newTarget(addr, req, l.concurrency())
	if err != nil {
		row.Note = err.Error()
		return
	}
	defer t.Close()
	if status, err := t.Do(ctx); err != nil || status != http.StatusOK {
		row.Note = fmt.Sprintf("first request failed: status %d, %v", status, err)
		// Measure anyway: the errors column shows what happens.
	}
	var h histogram
	var rps []float64
	var requests, ok int64
	var errs map[string]int64
	var gw, wk, lg time.Duration
	var last treeUsage
	for r := range repeat {
		lr := l
		if r > 0 {
			lr.Warmup = 0
		}
		before := trees.Measure()
		res, err := runLoad(ctx, t, lr)
		last = trees.Measure()
		d := last.Sub(before)
		h.Merge(&res.Latency)
		rps = append(rps, res.Throughput())
		requests += res.Requests
		ok += res.OK
		for k, v := range res.Errors {
			if errs == nil {
				errs = make(map[string]int64)
			}
			errs[k] += v
		}
		gw += d.Gateway
		wk += d.Workers + res.CPU.Children
		lg += res.CPU.Self
		if res.FirstError != "" && row.Note == "" {
			row.Note = "first error: " + res.FirstError
		}
		if err != nil {
			break
		}
	}
	row.fill(&h, rps, requests, ok, errs, gw, wk, lg, last)
	if requests == 0 && row.Note == "" {
		row.Note = "no request started and ended within the measured time: raise --duration"
	}
}

// startupCosts derives the startup cost of per-request CGI from the rows,
// and measures the raw exec time of each script.
func startupCosts(ctx context.Context, rows []Row, apps string, e *env) []Startup {
	var out []Startup
	for _, r := range rows {
		if r.Mode != "cgi" || r.Gateway != "ferry" || r.Requests == 0 {
			continue
		}
		s := Startup{App: r.App, Lang: r.Lang, CGIMs: r.Latency.P50, CGICPUUs: r.CPU.Gateway + r.CPU.Workers}
		for _, w := range rows {
			if w.App == r.App && w.Lang == r.Lang && w.Concurrency == r.Concurrency && w.Mode != "cgi" && !w.Peer && w.Requests > 0 &&
				(s.WorkerRow == "" || w.Latency.P50 < s.WorkerMs) {
				s.WorkerRow, s.WorkerMs, s.WorkerCPUUs = w.Scenario, w.Latency.P50, w.CPU.Gateway+w.CPU.Workers
			}
		}
		if s.WorkerRow != "" {
			s.StartupMs = s.CGIMs - s.WorkerMs
		}
		var path string
		var args []string
		if r.Lang == "go" {
			path, args = e.helperArgs("app-cgi")
		} else {
			path = filepath.Join(apps, "bench."+scriptExt(r.Lang))
		}
		s.RawExecMs = rawExec(ctx, path, args, e.cfg.appPath(r.App))
		out = append(out, s)
	}
	return out
}

// rawExec runs a CGI script directly a few times, one at a time, with the
// environment ferry gives it, and returns the median wall time in
// milliseconds.
func rawExec(ctx context.Context, path string, args []string, reqPath string) float64 {
	r, err := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1"+reqPath, nil)
	if err != nil {
		return 0
	}
	r.RemoteAddr = "127.0.0.1:40000"
	env, err := cgi.AppendEnv(cgi.InheritedEnv([]string{"PATH"}), r, cgi.Script{Filename: path}, "ferry")
	if err != nil {
		return 0
	}
	var times []float64
	for range 7 {
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Env, cmd.Dir = env, filepath.Dir(path)
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			return 0
		}
		times = append(times, float64(time.Since(t0))/1e6)
	}
	return median(times[2:]) // the first runs warm the page cache
}

// copyExecutable copies the program at src to dst, creating dst's
// directory.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
