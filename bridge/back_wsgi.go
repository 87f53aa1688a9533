package bridge

import (
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/appserver"
	"github.com/ferrygw/ferry/scgi"
	"github.com/ferrygw/ferry/spawn"
)

// defaultHardTimeout is the timeout option's default: the hard limit on a
// request to a wsgi: or psgi: application, as cgi_timeout is for a script.
const defaultHardTimeout = 60 * time.Second

// poolOptions are the options of the worker pools ferry spawns; recycle
// says how max_requests reaches the workers.
func poolOptions(recycle string) []Option {
	return []Option{
		{Name: "workers", Type: PositiveInt, Default: "4", Doc: "the most workers running at once"},
		{Name: "max_requests", Type: PositiveInt, Default: "no limit", Doc: "requests a worker serves before it is replaced " + recycle},
		{Name: "min_workers", Type: PositiveInt, Default: "all workers always run", Doc: "workers kept when idle: scale on demand between this and workers, as php-fpm's pm = ondemand"},
		{Name: "idle_timeout", Type: Duration, Default: "10s with min_workers", Doc: "how long workers beyond the peak of the last window stay"},
	}
}

// maxRSSOption recycles workers past a memory limit.
var maxRSSOption = Option{Name: "max_rss", Type: Size, Default: "no limit",
	Doc: "resident memory past which a worker finishes its request and is replaced (uWSGI's reload-on-rss; Linux)"}

// appOptions are the options of wsgi: and psgi: backs besides their
// interpreter's.
func appOptions() []Option {
	return append(poolOptions("(counted by ferry's adapter)"), maxRSSOption,
		Option{Name: "timeout", Type: Timeout, Default: "60s",
			Doc: "hard limit on a request: past it its worker is killed and replaced, the client gets 504 (uWSGI's harakiri); 0: none"})
}

// wsgiBackend runs a Python WSGI application in workers ferry supervises,
// as Gunicorn and uWSGI do.
func wsgiBackend() Backend {
	return Backend{
		Schemes: []string{"wsgi"},
		Summary: "a Python WSGI application (a file, or module:callable) in workers ferry starts and supervises",
		Options: append([]Option{
			{Name: "callable", Type: String, Default: "application", Doc: "the application's name in the file or module (a Flask file's is app)"},
			{Name: "python", Type: String, Default: "python3 from PATH", Doc: "the interpreter: a virtualenv's bin/python3 runs the application in it"},
			{Name: "chdir", Type: String, Default: "the file's directory; ferry's for a module", Doc: "the workers' working directory"},
			{Name: "pythonpath", Type: String, Default: "none", Doc: "directories put first on sys.path, separated by :"},
		}, appOptions()...),
		Settings: append(forwardSettings(), "pass_env", "cgi_kill_grace"),
		build:    buildWSGI,
	}
}

func buildWSGI(b *builder, m Mount, o options) (http.Handler, error) {
	app := &appserver.WSGI{Python: o.str("python"), Callable: o.str("callable"), Dir: o.str("chdir")}
	if p := o.str("pythonpath"); p != "" {
		app.PythonPath = strings.Split(p, string(os.PathListSeparator))
	}
	if isModule(m.Backend.Path) {
		app.Module = m.Backend.Path
	} else {
		app.File = m.Backend.Path
	}
	return b.appBack(m, o, app, "WSGI workers", "wsgi-workers")
}

// isModule reports whether a wsgi: address names a module ("mysite.wsgi",
// "mysite.wsgi:application") rather than a file: no slash, and no .py
// name. A mod_wsgi .wsgi file is named with a slash (./app.wsgi).
func isModule(p string) bool {
	return !strings.Contains(p, "/") && !strings.HasSuffix(p, ".py")
}

// appMount is the handler of a wsgi: or psgi: mount, and what
// [Server.Explain] asks how it maps a path.
type appMount struct {
	http.Handler
	app  *scgi.Handler
	kind string // "a WSGI application"
}

// appBack builds a mount served by workers running one of ferry's
// adapters with app.
func (b *builder) appBack(m Mount, o options, app appserver.App, what, component string) (http.Handler, error) {
	if err := app.Check(); err != nil {
		return nil, err
	}
	name := m.Backend.Path
	timeout := defaultHardTimeout
	if o.has("timeout") {
		timeout = o.timeout("timeout")
	}
	w := &appserver.Workers{App: app, Pool: b.pool(o, component, name), Timeout: timeout, MaxRSS: o.size("max_rss")}
	client := b.spawnSCGI(w, w.Pool.Size(), timeout, what, name)
	h := b.scgiHandler(client, m.Prefix)
	kind := "a WSGI application"
	if _, ok := app.(*appserver.PSGI); ok {
		kind = "a PSGI application"
	}
	return &appMount{Handler: w.Handler(h), app: h, kind: kind + " (" + name + ") in ferry's workers"}, nil
}

// pool returns a worker pool with the mount's pool options and settings;
// the caller sets what it runs.
func (b *builder) pool(o options, component, name string) *spawn.Pool {
	st := &b.st
	idle := o.duration("idle_timeout")
	if idle == 0 && o.positive("min_workers") > 0 {
		idle = 10 * time.Second // php-fpm's pm.process_idle_timeout
	}
	pl := b.s.log.With().Str("component", component).Str("worker", name).Logger()
	return &spawn.Pool{Workers: o.positive("workers"), Env: b.workerEnv(), MaxRequests: o.positive("max_requests"),
		MinWorkers: o.positive("min_workers"), IdleTimeout: idle, KillGrace: st.KillGrace, Logger: &pl}
}

// spawnSCGI returns an SCGI client for workers ferry runs, as many
// requests at once as workers (size), each on a connection of its own.
// The workers start with the server; the client learns their socket then.
// timeout, if positive, is the hard timeout the workers enforce: the
// client's read timeout is left past it.
func (b *builder) spawnSCGI(pool workerPool, size int, timeout time.Duration, what, name string) *scgi.Client {
	client := &scgi.Client{Network: "unix", MaxConns: size, QueueTimeout: b.st.QueueTimeout, Logger: b.logger("scgi-client")}
	if timeout > scgi.DefaultReadTimeout {
		client.ReadTimeout = timeout + time.Second
	}
	b.s.pools = append(b.s.pools, spawned{pool: pool, what: what, name: name, connect: func(a string) { client.Address = a }})
	return client
}

// spawnFastCGI sets client up for workers ferry runs: a connection per
// request, as mod_fcgid does (a kept connection holds its worker, and
// while a worker is being replaced, requests on new connections would wait
// behind the idle ones); the pool's size still caps what runs at once.
func (b *builder) spawnFastCGI(pool workerPool, size int, client *fastcgi.Client, what, name string) {
	client.Address = "" // the pool's socket, known once it runs
	client.NoKeepConn = true
	client.MaxConns = size
	b.s.pools = append(b.s.pools, spawned{pool: pool, what: what, name: name, connect: func(a string) { client.Address = a }})
}

// checkApp checks a wsgi: or psgi: back for ferry check: its
// application's interpreter and files.
func (c *checker) checkApp(path []string, a Address) {
	var app appserver.App
	switch a.Scheme {
	case "wsgi":
		w := &appserver.WSGI{Python: a.Query.Get("python"), Callable: a.Query.Get("callable"), Dir: a.Query.Get("chdir")}
		if isModule(a.Path) {
			w.Module = a.Path
		} else {
			w.File = a.Path
		}
		app = w
	case "psgi":
		app = &appserver.PSGI{Perl: a.Query.Get("perl"), File: a.Path, Dir: a.Query.Get("chdir")}
	default:
		return
	}
	if err := app.Check(); err != nil {
		c.add(Problem, path, "%s", strings.TrimPrefix(err.Error(), "appserver: "))
	}
}
