package benchmarks

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ferrygw/ferry/internal/peers"
)

// The rows of ferry's application servers: Python WSGI applications in
// wsgi: workers next to Gunicorn and uWSGI serving the same application
// behind the same front, the Perl app as a PSGI application in psgi:
// workers next to plackup's FastCGI server, and the cgi-bin's Perl and PHP
// scripts kept in workers (persist=) next to a process per request.

// appServerWorkers is the worker count of every application server
// compared: ferry's wsgi: workers, Gunicorn's sync workers, uWSGI's
// processes, persist= workers.
const appServerWorkers = 4

// frameworks are the Python web frameworks whose hello the bench serves,
// each an app of its own (flask/python/..., django/python/...).
var frameworks = []string{"flask", "django"}

// wsgiApp is a WSGI application file and its callable, which Gunicorn,
// uWSGI and ferry's wsgi: workers all load the same way.
type wsgiApp struct{ file, callable string }

// module is the app's module name, as Gunicorn imports it from the
// file's directory.
func (a wsgiApp) module() string { return strings.TrimSuffix(filepath.Base(a.file), ".py") }

// benchApp is bench.py, the Python app of the hello and realistic rows.
func (e *env) benchApp() wsgiApp {
	return wsgiApp{file: filepath.Join(e.apps, "bench.py"), callable: "application"}
}

// benchPython is the interpreter of every Python row: bench.py's #! line
// (Debian's python3, which Gunicorn and uWSGI's python3 plugin run too,
// and which python3-flask and python3-django install for).
func benchPython(apps string) string {
	b, err := os.ReadFile(filepath.Join(apps, "bench.py"))
	if err != nil {
		return "python3"
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if f := strings.Fields(strings.TrimPrefix(line, "#!")); strings.HasPrefix(line, "#!") && len(f) > 0 {
		return f[0]
	}
	return "python3"
}

// wsgiScenarios returns the rows of a WSGI application, made by app: in
// ferry's wsgi: workers, and, each compared with it, in Gunicorn (sync
// workers, behind ferry's http:// back) and in uWSGI (behind ferry's
// scgi+unix:// back). check, if set, says why the application cannot run
// here.
func (c *Config) wsgiScenarios(name string, app func(*env) (wsgiApp, error), check func() string) []scenario {
	both := func(first func() string) func() string {
		return func() string {
			if why := first(); why != "" || check == nil {
				return why
			}
			return check()
		}
	}
	none := func() string { return "" }
	return []scenario{
		{app: name, lang: "python", mode: "wsgi", gateway: "ferry-wsgi", need: []string{"python3"}, check: check,
			start: func(ctx context.Context, e *env) (*setup, error) {
				a, err := app(e)
				if err != nil {
					return nil, err
				}
				mount := fmt.Sprintf("/=wsgi:%s?callable=%s&workers=%d&python=%s", a.file, a.callable, appServerWorkers, url.QueryEscape(benchPython(e.apps)))
				return ferryFront(ctx, e, frontSpec{Kind: "mount", Mount: mount})
			}},
		{app: name, lang: "python", mode: "wsgi", gateway: "ferry+gunicorn", vs: "python/wsgi/ferry-wsgi", need: []string{"gunicorn"}, check: both(none),
			start: func(ctx context.Context, e *env) (*setup, error) {
				a, err := app(e)
				if err != nil {
					return nil, err
				}
				return startGunicorn(ctx, e, a)
			}},
		{app: name, lang: "python", mode: "scgi", gateway: "ferry+uwsgi", vs: "python/wsgi/ferry-wsgi", need: []string{"uwsgi"}, check: both(uwsgiPython),
			start: func(ctx context.Context, e *env) (*setup, error) {
				a, err := app(e)
				if err != nil {
					return nil, err
				}
				return startUwsgi(ctx, e, "scgi", a)
			}},
	}
}

// frameworkScenarios returns the rows of the frameworks' hellos
// (wsgiScenarios), on the hello app's path.
func (c *Config) frameworkScenarios() []scenario {
	var out []scenario
	for _, fw := range frameworks {
		check := func() string { return pythonImports(benchPython(c.Apps), fw) }
		out = append(out, c.wsgiScenarios(fw, func(e *env) (wsgiApp, error) { return e.frameworkApp(fw) }, check)...)
	}
	return out
}

// pythonImports says why py cannot import module, or "".
func pythonImports(py, module string) string {
	if out, err := exec.Command(py, "-c", "import "+module).CombinedOutput(); err != nil {
		return fmt.Sprintf("%s cannot import %s (Debian python3-%s): %s", py, module, module, firstLine(string(out)))
	}
	return ""
}

// frameworkApp returns the hello of framework fw, written once per run
// (writeFrameworkApp) into a directory of its own.
func (e *env) frameworkApp(fw string) (wsgiApp, error) {
	if a, ok := e.wsgiApps[fw]; ok {
		return a, nil
	}
	a, err := writeFrameworkApp(e.newDir(fw), fw, benchPython(e.apps))
	if err == nil {
		err = peers.MakeWorldReadable(filepath.Dir(a.file))
	}
	if err != nil {
		return wsgiApp{}, err
	}
	if e.wsgiApps == nil {
		e.wsgiApps = make(map[string]wsgiApp)
	}
	e.wsgiApps[fw] = a
	return a, nil
}

// writeFrameworkApp writes into dir the hello ("Hello, world\n" as
// text/plain at /) of framework fw: a Flask application, or the one view
// of a project made by django-admin startproject (run with py), its
// default middleware kept, DEBUG off. It returns the application's file.
func writeFrameworkApp(dir, fw, py string) (wsgiApp, error) {
	write := func(name, text string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(text), 0o644)
	}
	switch fw {
	case "flask":
		f, err := write("flask_hello.py", flaskHello)
		return wsgiApp{file: f, callable: "app"}, err
	case "django":
		if out, err := exec.Command(py, "-m", "django", "startproject", "hellosite", dir).CombinedOutput(); err != nil {
			return wsgiApp{}, fmt.Errorf("benchmarks: django-admin startproject: %w: %s", err, firstLine(string(out)))
		}
		for name, text := range map[string]string{"hellosite/views.py": djangoHelloView, "hellosite/urls.py": djangoHelloURLs} {
			if _, err := write(name, text); err != nil {
				return wsgiApp{}, fmt.Errorf("benchmarks: %w", err)
			}
		}
		f, err := os.OpenFile(filepath.Join(dir, "hellosite", "settings.py"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return wsgiApp{}, fmt.Errorf("benchmarks: %w", err)
		}
		_, err = f.WriteString("\nALLOWED_HOSTS = [\"*\"]\nDEBUG = False\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return wsgiApp{}, fmt.Errorf("benchmarks: %w", err)
		}
		file, err := write("django_hello.py", djangoHelloLoader)
		return wsgiApp{file: file, callable: "application"}, err
	}
	return wsgiApp{}, fmt.Errorf("benchmarks: no framework %q", fw)
}

const flaskHello = `from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, world\n", 200, {"Content-Type": "text/plain"}
`

const djangoHelloView = `from django.http import HttpResponse


def hello(request):
    return HttpResponse("Hello, world\n", content_type="text/plain")
`

const djangoHelloURLs = `from django.urls import path
from . import views

urlpatterns = [path("", views.hello)]
`

// djangoHelloLoader is the project's application as one file, as a
// mod_wsgi .wsgi file gives it.
const djangoHelloLoader = `import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hellosite.wsgi import application
`

// startGunicorn runs app in Gunicorn (sync workers) on loopback TCP, and
// a ferry front to it over http://.
func startGunicorn(ctx context.Context, e *env, app wsgiApp) (*setup, error) {
	g, err := peers.StartGunicorn(ctx, e.newDir("gunicorn"), peers.GunicornConfig{App: app.module() + ":" + app.callable,
		Chdir: filepath.Dir(app.file), Workers: appServerWorkers})
	if err != nil {
		return nil, err
	}
	return ferryFrontTo(ctx, e, frontSpec{Kind: "mount", Mount: "/=http://" + g.Address}, g.Process.Pid(), g.Stop)
}

// psgiScenarios returns the rows of bench.psgi (bench.pl's render as a
// PSGI application): in ferry's psgi: workers, and, compared with it, in
// plackup's FastCGI server (Plack::Handler::FCGI, the handler Debian's
// libplack-perl ships; Debian has no Starman) run as ferry's FastCGI
// workers.
func psgiScenarios(app string) []scenario {
	return []scenario{
		{app: app, lang: "perl", mode: "psgi", gateway: "ferry-psgi", need: []string{"perl"},
			start: func(ctx context.Context, e *env) (*setup, error) {
				mount := fmt.Sprintf("/=psgi:%s?workers=%d", filepath.Join(e.apps, "bench.psgi"), appServerWorkers)
				return ferryFront(ctx, e, frontSpec{Kind: "mount", Mount: mount})
			}},
		{app: app, lang: "perl", mode: "psgi", gateway: "ferry+plackup-fcgi", vs: "perl/psgi/ferry-psgi", need: []string{"perl", "plackup"},
			check: perlModule("Plack::Handler::FCGI", "Plack::Handler::FCGI", "libplack-perl, libfcgi-perl"),
			start: func(ctx context.Context, e *env) (*setup, error) {
				plackup, err := peers.Lookup("plackup")
				if err != nil {
					return nil, err
				}
				return ferryFront(ctx, e, frontSpec{Kind: "fastcgi-pool", Path: plackup, Workers: appServerWorkers,
					Args: []string{"-s", "FCGI", "-E", "deployment", "--manager=", filepath.Join(e.apps, "bench.psgi")}})
			}},
	}
}

// persistScenario serves the app's script as ferry's cgi: mount with
// persist (kept in workers: perl, or php-cgi for PHP).
func persistScenario(app, lang, need string) scenario {
	return scenario{app: app, lang: lang, mode: "cgi-persist", gateway: "ferry", need: []string{need},
		start: func(ctx context.Context, e *env) (*setup, error) {
			mount := fmt.Sprintf("/cgi-bin/=cgi:%s?persist=%s&workers=%d", e.apps, lang, appServerWorkers)
			s, err := ferryFront(ctx, e, frontSpec{Kind: "mount", Mount: mount})
			if err != nil {
				return nil, err
			}
			s.addr += "/cgi-bin/bench." + scriptExt(lang)
			return s, nil
		}}
}
