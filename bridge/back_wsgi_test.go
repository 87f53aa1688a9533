package bridge

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/rs/zerolog"
)

// TestAppBackAddresses: wsgi: names a file by a path and a module by its
// dotted name; the application servers' options are checked by type.
func TestAppBackAddresses(t *testing.T) {
	for _, tt := range []struct {
		mount, path string // path: the Address's Path; "" for an error
		want        string // a substring of the error
	}{
		{"/a/=wsgi:/srv/app/wsgi.py?callable=app&workers=4&timeout=0&max_rss=512M", "/srv/app/wsgi.py", ""},
		{"/a/=wsgi:mysite.wsgi:application?chdir=/srv/mysite&pythonpath=/srv/lib:/opt/lib", "mysite.wsgi:application", ""},
		{"/a/=wsgi:mysite.wsgi", "mysite.wsgi", ""},
		{"/a/=psgi:/srv/app/app.psgi?workers=2&lib=/srv/lib&timeout=30s", "/srv/app/app.psgi", ""},
		{"/a/=cgi:/srv/cgi?persist=perl&workers=4&max_requests=100&max_rss=1G", "/srv/cgi", ""},
		{"/a/=wsgi:/srv/app/wsgi.py?timeout=soon", "", `timeout="soon": want a duration such as 30s (0: none)`},
		{"/a/=wsgi:/srv/app/wsgi.py?max_rss=lots", "", `max_rss="lots": want a size`},
		{"/a/=psgi:/srv/app/app.psgi?callable=app", "", `unknown option "callable"`},
		{"/a/=cgi:/srv/cgi?persist=python", "", `persist="python": want php or perl`},
	} {
		t.Run(tt.mount, func(t *testing.T) {
			m, err := ParseMount(tt.mount)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ParseMount(%q): %v", tt.mount, err)
			case tt.want == "" && m.Backend.Path != tt.path:
				t.Errorf("ParseMount(%q): path %q; want %q", tt.mount, m.Backend.Path, tt.path)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("ParseMount(%q) = %v; want an error with %q", tt.mount, err, tt.want)
			}
		})
	}
}

// TestAppBackBuildErrors: what a mount cannot be is said when the server
// is built, not at the first request.
func TestAppBackBuildErrors(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.pl")
	if err := os.WriteFile(script, []byte("#!/usr/bin/perl\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ mount, want string }{
		{"/a/=cgi:" + dir + "?workers=2", "workers needs persist"},
		{"/a/=cgi:" + script + "?persist=perl", "persist needs a directory"},
		{"/a/=wsgi:" + filepath.Join(dir, "missing.py"), "no such file"},
		{"/a/=wsgi:" + filepath.Join(dir, "app.py") + "?python=/no/such/python3", "/no/such/python3"},
		{"/a/=psgi:" + filepath.Join(dir, "missing.psgi"), "no such file"},
	} {
		m, err := ParseMount(tt.mount)
		if err == nil {
			_, err = New(Config{Mounts: []Mount{m}})
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want an error with %q", tt.mount, err, tt.want)
		}
	}
}

// TestAppBackAdmin: the admin listener reports the workers ferry runs
// for a wsgi: mount and a cgi:DIR?persist=perl one as it does a
// fastcgi+exec: pool's: /readyz finds them ready by their running
// workers (the address names the application, not a socket to dial),
// /status and /metrics count them idle and busy (busy while a request
// holds a connection to one), list them, and count a crash.
func TestAppBackAdmin(t *testing.T) {
	leakcheck.Check(t)
	bins := peerstest.Need(t, "python3", "perl")
	app := filepath.Join(t.TempDir(), "app.py")
	if err := os.WriteFile(app, []byte(adminWSGIApp), 0o644); err != nil {
		t.Fatal(err)
	}
	scripts := testdir.Open(t)
	if err := os.WriteFile(filepath.Join(scripts, "hello.pl"), []byte("#!/usr/bin/perl\nprint \"Content-Type: text/plain\\r\\n\\r\\nperl\";\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	wsgiB, perlB := "wsgi:"+app, "cgi:"+scripts
	cfg, err := matrixConfig("http://127.0.0.1:0", []string{
		"/app/=" + wsgiB + "?workers=2&python=" + url.QueryEscape(bins["python3"]),
		"/perl/=" + perlB + "?persist=perl&workers=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Settings.KillGrace = 200 * time.Millisecond
	f := startAdminFerry(t, cfg)
	if code, body := get(t, "GET", f.admin+"/readyz", nil); code != 200 || body != "ok /app/ "+wsgiB+"\nok /perl/ "+perlB+"\n" {
		t.Errorf("/readyz = %d %q; want 200 with ok /app/ and /perl/", code, body)
	}
	if code, body := get(t, "GET", f.base+"/app/x", nil); code != 200 || body != "hello from /app" {
		t.Errorf("GET /app/x = %d %q; want 200 %q", code, body, "hello from /app")
	}
	if code, body := get(t, "GET", f.base+"/perl/hello.pl", nil); code != 200 || body != "perl" {
		t.Errorf("GET /perl/hello.pl = %d %q; want 200 %q", code, body, "perl")
	}
	status := func() statusReport {
		code, body := get(t, "GET", f.admin+"/status?json&full", nil)
		var rep statusReport
		if err := json.Unmarshal([]byte(body), &rep); code != 200 || err != nil || len(rep.Mounts) != 2 || rep.Mounts[0].Pool == nil {
			t.Fatalf("/status?json&full: %d %v\n%s", code, err, body)
		}
		return rep
	}
	waitStatus := func(what string, ok func(p *poolStatus) bool) statusReport {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			rep := status()
			if ok(rep.Mounts[0].Pool) {
				return rep
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /app/'s pool is %+v", what, rep.Mounts[0].Pool)
			}
		}
	}

	// A request in progress holds one of the two workers.
	marker := filepath.Join(t.TempDir(), "waiting")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		_, body := get(t, "GET", f.base+"/app/wait?"+marker, nil)
		done <- body
	}()
	rep := waitStatus("a request in progress", func(p *poolStatus) bool { return p.Busy == 1 })
	for i, m := range rep.Mounts {
		if len(m.Workers) != m.Pool.MaxWorkers {
			t.Errorf("%s workers = %+v; want %d", m.Prefix, m.Workers, m.Pool.MaxWorkers)
		}
		for _, w := range m.Workers {
			if !leakcheck.Alive(w.PID) {
				t.Errorf("%s lists worker %d, which is not running", m.Prefix, w.PID)
			}
		}
		rep.Mounts[i].Workers, rep.Mounts[i].Requests = nil, nil
	}
	none := map[string]uint64{"crash": 0, "max_requests": 0, "reload": 0, "scale-down": 0, "stop": 0}
	want := []mountStatus{
		{Prefix: "/app/", Backend: wsgiB, Kind: "wsgi", Accepted: 2, Active: 1, MaxActive: 1,
			Pool: &poolStatus{MaxWorkers: 2, Workers: 2, Idle: 1, Busy: 1, Restarts: none}},
		{Prefix: "/perl/", Backend: perlB, Kind: "cgi", Accepted: 1, MaxActive: 1,
			Scripts: &scriptsStatus{}, // hello.pl ran in the worker, not as a CGI process
			Pool:    &poolStatus{MaxWorkers: 1, Workers: 1, Idle: 1, Restarts: none}},
	}
	if !reflect.DeepEqual(rep.Mounts, want) {
		g, _ := json.MarshalIndent(rep.Mounts, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("/status?json&full mounts:\n%s\nwant:\n%s", g, w)
	}
	m := parseMetrics(t, f.scrape(t))
	for k, v := range map[string]float64{
		series("ferry_pool_workers", "/app/", wsgiB, "state=busy"):  1,
		series("ferry_pool_workers", "/app/", wsgiB, "state=idle"):  1,
		series("ferry_pool_workers_max", "/app/", wsgiB):            2,
		series("ferry_pool_workers", "/perl/", perlB, "state=idle"): 1,
		series("ferry_pool_workers_max", "/perl/", perlB):           1,
	} {
		if m[k] != v {
			t.Errorf("%s = %v; want %v", k, m[k], v)
		}
	}
	os.Remove(marker)
	if body := <-done; body != "waited" {
		t.Errorf("GET /app/wait = %q; want %q", body, "waited")
	}

	// A worker killed is counted as a crash, and replaced.
	pid := status().Mounts[0].Workers[0].PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitStatus("a worker killed", func(p *poolStatus) bool { return p.Restarts["crash"] == 1 && p.Workers == 2 })
	if v := parseMetrics(t, f.scrape(t))[series("ferry_pool_worker_restarts_total", "/app/", wsgiB, "reason=crash")]; v != 1 {
		t.Errorf("crash restarts = %v; want 1", v)
	}
}

// adminWSGIApp answers with its SCRIPT_NAME, and at /wait?FILE waits (10 s
// at most) for FILE to go.
const adminWSGIApp = `import os, time


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/wait":
        deadline = time.time() + 10
        while os.path.exists(environ["QUERY_STRING"]) and time.time() < deadline:
            time.sleep(0.01)
        return [b"waited"]
    return [b"hello from " + environ["SCRIPT_NAME"].encode()]
`

// TestReloadReplacesAppWorkers: a reload with the same configuration
// replaces a wsgi: mount's workers, which load the application's new
// code (a deploy), and stops the old ones; a fastcgi+exec: pool beside
// it, unchanged, is kept.
func TestReloadReplacesAppWorkers(t *testing.T) {
	leakcheck.Check(t)
	bins := peerstest.Need(t, "python3")
	app := filepath.Join(t.TempDir(), "app.py")
	version := func(v string) {
		t.Helper()
		src := "def application(environ, start_response):\n" +
			"    start_response('200 OK', [('Content-Type', 'text/plain')])\n" +
			"    return [b'" + v + "']\n"
		if err := os.WriteFile(app, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		// The same size and mtime for each version: a worker that ran a
		// .pyc cached from v1 (trusted on those two) would answer v1.
		stamp := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(app, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
	version("v1")
	logs := &testlog.Buffer{}
	config := func() Config {
		cfg, err := matrixConfig("http://127.0.0.1:0", []string{
			"/app/=wsgi:" + app + "?workers=2&python=" + url.QueryEscape(bins["python3"]),
			matrixPrefix + "=fastcgi+exec:" + reloadWorker(t) + "?workers=1",
		})
		if err != nil {
			t.Fatal(err)
		}
		log := zerolog.New(logs)
		cfg.Logger = &log
		return cfg
	}
	s, err := New(config())
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := runReloadable(t, s)
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	}()
	if got := getBody(t, "http://"+addr+"/app/"); got != "v1" {
		t.Fatalf("before the reload: %q; want v1", got)
	}
	pools := func() (app, exec spawned) {
		for _, sp := range s.run.Load().cur.Load().pools {
			if sp.what == "FastCGI workers" {
				exec = sp
			} else {
				app = sp
			}
		}
		return app, exec
	}
	oldApp, oldExec := pools()
	old := oldApp.procs.PIDs()
	if len(old) == 0 {
		t.Fatal("the wsgi: pool runs no worker")
	}

	version("v2")
	if err := s.Reload(config()); err != nil {
		t.Fatal(err)
	}
	if got := getBody(t, "http://"+addr+"/app/"); got != "v2" {
		t.Errorf("after the reload: %q; want v2, the application's new code", got)
	}
	newApp, newExec := pools()
	if newApp.pool == oldApp.pool {
		t.Errorf("the reload kept the wsgi: workers")
	}
	if newExec.pool != oldExec.pool {
		t.Errorf("the reload replaced the unchanged fastcgi+exec: pool")
	}
	for deadline := time.Now().Add(10 * time.Second); slices.ContainsFunc(old, leakcheck.Alive); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the replaced workers %v still run", old)
		}
	}
	if !strings.Contains(logs.String(), `"pools_started":["`+app+`"],"pools_stopped":["`+app+`"],"pools_kept":1`) {
		t.Errorf("no reload log line with the wsgi: pool replaced and the other kept:\n%s", logs)
	}
}
