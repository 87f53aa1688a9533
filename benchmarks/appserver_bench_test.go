package benchmarks

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
)

// runFerry runs ferry (bridge.Server.Run, workers included) with mounts on
// a loopback port until the benchmark ends, and returns its URL.
func runFerry(tb testing.TB, cfg bridge.Config, mounts ...string) string {
	tb.Helper()
	for _, s := range mounts {
		m, err := bridge.ParseMount(s)
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Mounts = append(cfg.Mounts, m)
	}
	a, err := bridge.ParseAddress("http://127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Listen = []bridge.Address{a}
	srv, err := bridge.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- srv.Run(ctx, func(ls []net.Listener) { ready <- "http://" + ls[0].Addr().String() })
	}()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("ferry: %v", err)
		}
	})
	select {
	case u := <-ready:
		return u
	case err := <-done:
		done <- nil // Run returned: nothing left for the cleanup to wait for
		tb.Fatalf("ferry did not start: %v", err)
	case <-time.After(60 * time.Second):
		tb.Fatal("ferry did not start within 60s")
	}
	return ""
}

// children measures this process's children now (spawned workers, peers
// started as children) as the workers, and this process as the gateway.
func children() procTrees {
	return procTrees{Roots: leakcheck.Children(os.Getpid()), Gateway: func(int, string) bool { return false }}
}

// debianPython returns Debian's /usr/bin/python3 (python3-flask,
// python3-django), the interpreter Gunicorn and uWSGI's python3 plugin
// run, if it imports os; else the benchmark is skipped.
func debianPython(b *testing.B) string {
	b.Helper()
	py := "/usr/bin/python3"
	if why := pythonImports(py, "os"); why != "" {
		b.Skip(why)
	}
	return py
}

// wsgiApps writes the WSGI applications compared into dir and returns
// them by name: a bare WSGI hello, and the frameworks' hellos (Flask, and
// a django-admin startproject project with its default middleware) that
// py imports.
func wsgiApps(b *testing.B, dir, py string) map[string]wsgiApp {
	b.Helper()
	bare := filepath.Join(dir, "wsgi_hello.py")
	if err := os.WriteFile(bare, []byte(wsgiHello), 0o644); err != nil {
		b.Fatal(err)
	}
	apps := map[string]wsgiApp{"wsgi": {file: bare, callable: "application"}}
	for _, fw := range frameworks {
		if why := pythonImports(py, fw); why != "" {
			b.Log(why)
			continue
		}
		sub := filepath.Join(dir, fw)
		if err := os.Mkdir(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		a, err := writeFrameworkApp(sub, fw, py)
		if err != nil {
			b.Fatal(err)
		}
		apps[fw] = a
	}
	if err := peers.MakeWorldReadable(dir); err != nil {
		b.Fatal(err)
	}
	return apps
}

// BenchmarkAppServer compares ferry's wsgi: workers with Gunicorn (sync
// workers) and uWSGI (SCGI on a unix socket), four workers each, all
// behind the same front, ferry's HTTP listener in this process (Gunicorn
// through ferry's http:// back, uWSGI through scgi+unix://), serving the
// same hello in three WSGI applications: a bare one, Flask, and Django
// (a django-admin startproject project, default middleware). Load: wrk
// -t2 -c16. The ferry-wsgi row reports its req/s over Gunicorn's
// (x-gunicorn) and uWSGI's (x-uwsgi); gw-cpu-us/req is this process's CPU
// per request, app-cpu-us/req the workers'.
func BenchmarkAppServer(b *testing.B) {
	peerstest.Need(b, "wrk")
	py := debianPython(b)
	apps := wsgiApps(b, b.TempDir(), py)
	for _, name := range append([]string{"wsgi"}, frameworks...) {
		app, ok := apps[name]
		if !ok {
			continue
		}
		file, callable := app.file, app.callable
		ref := map[string]measured{}
		rows := []struct {
			name  string
			start func(b *testing.B) string
		}{
			{"gunicorn", func(b *testing.B) string {
				g := peerstest.RunGunicorn(b, peers.GunicornConfig{App: app.module() + ":" + callable, Chdir: filepath.Dir(file), Workers: appServerWorkers})
				return runFerry(b, bridge.Config{}, "/=http://"+g.Address)
			}},
			{"uwsgi", func(b *testing.B) string {
				u := peerstest.RunUWSGI(b, peers.UWSGIConfig{WSGIFile: file, Callable: callable, Processes: appServerWorkers})
				return runFerry(b, bridge.Config{}, fmt.Sprintf("/=scgi+unix://%s?max_conns=%d", u.Address, appServerWorkers))
			}},
			{"ferry-wsgi", func(b *testing.B) string {
				return runFerry(b, bridge.Config{}, fmt.Sprintf("/=wsgi:%s?callable=%s&workers=%d&python=%s", file, callable, appServerWorkers, url.QueryEscape(py)))
			}},
		}
		for _, row := range rows {
			b.Run(name+"/"+row.name, func(b *testing.B) {
				u := row.start(b)
				m := measureLoad(b, u+"/", helloBody, children())
				b.ReportMetric(m.Self, "gw-cpu-us/req")
				b.ReportMetric(m.PeerWorkers, "app-cpu-us/req")
				ref[row.name] = m
				if row.name == "ferry-wsgi" {
					for _, peer := range []string{"gunicorn", "uwsgi"} {
						r, ok := ref[peer]
						reportRatio(b, m, r, ok, peer)
					}
				}
			})
		}
	}
}

// psgiHello is the PSGI hello both servers run.
const psgiHello = "sub { [200, ['Content-Type' => 'text/plain'], [\"Hello, world\\n\"]] };\n"

// BenchmarkPSGI compares ferry's psgi: workers with plackup's FastCGI
// server (Plack::Handler::FCGI, plackup -s FCGI -E deployment --manager=,
// the handler Debian's libplack-perl ships, without FCGI::ProcManager) in
// four processes that ferry spawns and reaches as fastcgi+exec:, both behind ferry's HTTP front, on a PSGI
// hello. Load: wrk -t2 -c16. The ferry-psgi row reports x-plackup-fcgi.
func BenchmarkPSGI(b *testing.B) {
	peerstest.Need(b, "wrk", "perl")
	dir := b.TempDir()
	app := filepath.Join(dir, "hello.psgi")
	if err := os.WriteFile(app, []byte(psgiHello), 0o644); err != nil {
		b.Fatal(err)
	}
	var plack measured
	var havePlack bool
	b.Run("plackup-fcgi", func(b *testing.B) {
		plackup := peerstest.Need(b, "plackup")["plackup"]
		if exec.Command("perl", "-MPlack::Handler::FCGI", "-e1").Run() != nil {
			b.Skip("Plack::Handler::FCGI is not installed (Debian libplack-perl, libfcgi-perl)")
		}
		wrapper := filepath.Join(dir, "plackup-fcgi")
		if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nexec "+plackup+" -s FCGI -E deployment --manager= "+app+"\n"), 0o755); err != nil {
			b.Fatal(err)
		}
		u := runFerry(b, bridge.Config{}, fmt.Sprintf("/=fastcgi+exec:%s?workers=%d", wrapper, appServerWorkers))
		plack, havePlack = measureLoad(b, u+"/", helloBody, children()), true
	})
	b.Run("ferry-psgi", func(b *testing.B) {
		u := runFerry(b, bridge.Config{}, fmt.Sprintf("/=psgi:%s?workers=%d", app, appServerWorkers))
		m := measureLoad(b, u+"/", helloBody, children())
		reportRatio(b, m, plack, havePlack, "plackup-fcgi")
	})
}

// BenchmarkPersistentCGI compares, for the bundled Perl and PHP bench
// scripts (testdata/bench/bench.pl and bench.php, their hello), ferry's
// per-request CGI (cgi:DIR) with the same directory under persist=perl
// and persist=php (four workers), through ferry's HTTP front. Load: wrk
// -t2 -c16. The persist rows report x-cgi.
func BenchmarkPersistentCGI(b *testing.B) {
	peerstest.Need(b, "wrk")
	apps, err := filepath.Abs("../testdata/bench")
	if err != nil {
		b.Fatal(err)
	}
	dir := testdir.Open(b) // per-request CGI runs the scripts as www-data under root
	if err := os.CopyFS(dir, os.DirFS(apps)); err != nil {
		b.Fatal(err)
	}
	for _, lang := range []struct{ name, script, need string }{{"perl", "bench.pl", "perl"}, {"php", "bench.php", "php-cgi"}} {
		var cgi measured
		var haveCGI bool
		for _, mode := range []string{"cgi", "persist"} {
			b.Run(lang.name+"/"+mode, func(b *testing.B) {
				peerstest.Need(b, lang.need)
				mount := "/cgi-bin/=cgi:" + dir
				if mode == "persist" {
					mount += fmt.Sprintf("?persist=%s&workers=%d", lang.name, appServerWorkers)
				}
				u := runFerry(b, bridge.Config{}, mount)
				m := measureLoad(b, u+"/cgi-bin/"+lang.script, helloBody, children())
				if mode == "cgi" {
					cgi, haveCGI = m, true
					return
				}
				reportRatio(b, m, cgi, haveCGI, "cgi")
			})
		}
	}
}
