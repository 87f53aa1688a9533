package bridge

import (
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/appserver"
	"github.com/ferrygw/ferry/scgi"
)

// defaultHardTimeout is the timeout option's default: the hard limit on a
// request to a wsgi: or psgi: application, as cgi_timeout is for a script.
const defaultHardTimeout = 60 * time.Second

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
		Settings: workerSettings(),
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
	app  *cgi.Forwarder
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
	pool, err := b.pool(o, component, name, true)
	if err != nil {
		return nil, err
	}
	w := &appserver.Workers{App: app, Pool: pool, Timeout: timeout, MaxRSS: o.size("max_rss"),
		ResponseIDHeader: b.s.requestIDHeader()}
	client := b.spawnSCGI(w, w.Pool, timeout, what, name)
	h := scgi.NewHandler(client, cgi.Mount{Prefix: m.Prefix, Root: b.s.cfg.Root}, b.gateway())
	kind := "a WSGI application"
	if _, ok := app.(*appserver.PSGI); ok {
		kind = "a PSGI application"
	}
	return &appMount{Handler: w.Handler(h), app: h, kind: kind + " (" + name + ") in ferry's workers"}, nil
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
