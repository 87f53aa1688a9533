package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// pythonWith returns a Python interpreter that imports every one of
// modules: Debian's /usr/bin/python3 (python3-flask, python3-django), or
// the python3 on PATH. Without one the test skips, or fails under CI=true.
func pythonWith(t *testing.T, modules ...string) string {
	modules = append([]string{"os"}, modules...)
	t.Helper()
	cands := []string{"/usr/bin/python3"}
	if p, err := peers.Lookup("python3"); err == nil {
		cands = append(cands, p)
	}
	for _, py := range cands {
		if exec.Command(py, "-c", "import "+strings.Join(modules, ", ")).Run() == nil {
			return py
		}
	}
	missing(t, "a python3 with "+strings.Join(modules, " and ")+" (Debian python3-flask, python3-django)")
	return ""
}

// missing skips the test for want of what, or fails it under CI=true,
// where .ci/run installs everything.
func missing(t *testing.T, what string) {
	t.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s not installed; .ci/run installs it", what)
	}
	t.Skipf("%s not installed; .ci/run installs it", what)
}

// pyBlocks is a Python generator of two blocks, the second waiting (10 s
// at most) for the file "go" in the directory TEST_STATE names: a
// streamed response whose first block must reach the client alone.
const pyBlocks = `
import os, time


def blocks():
    yield b"first\n"
    state, deadline = os.environ["TEST_STATE"], time.time() + 10
    while not os.path.exists(os.path.join(state, "go")) and time.time() < deadline:
        time.sleep(0.01)
    yield b"second\n"
`

// flaskApp is a Flask application with the pages the acceptance checks
// ask for: flaskTestApp's (URLs built with url_for, a form), a streamed
// response, a request that sleeps, and the worker's pid.
const flaskApp = flaskTestApp + pyBlocks + `
from flask import Response, stream_with_context


@app.route("/stream")
def stream():
    # nginx passes a streamed response on as it comes only when told.
    return Response(stream_with_context(blocks()), mimetype="text/plain", headers={"X-Accel-Buffering": "no"})


@app.route("/sleep")
def sleep():
    with open(os.path.join(os.environ["TEST_STATE"], "sleeping"), "w") as f:
        f.write("%d\n" % os.getpid())
    time.sleep(300)
    return "woke"


@app.route("/pid")
def pid():
    return str(os.getpid())
`

// flaskChecks are the acceptance checks of a WSGI application mounted at
// /app/ and reached at base (ferry's HTTP front, or nginx in front of
// ferry): a page whose URLs carry the prefix, a 1 MiB form POST, and a
// streamed response whose first block arrives alone. state is the
// directory the application waits in for "go".
func flaskChecks(t *testing.T, base, state string) {
	t.Helper()
	code, body := httpGet(t, base+"/app/hello/ferry")
	if want := "hello ferry link=/app/hello/ferry root=/app"; code != 200 || body != want {
		t.Errorf("GET /app/hello/ferry: %d %q; want 200 %q", code, body, want)
	}
	form, pad := mibForm("name=ferry&pad=")
	resp, err := http.Post(base+"/app/form", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "name=ferry pad=" + strconv.Itoa(pad); resp.StatusCode != 201 || string(b) != want {
		t.Errorf("POST 1 MiB form: %d %q; want 201 %q", resp.StatusCode, b, want)
	}
	checkStream(t, base+"/app/stream", state)
}

// mibForm returns a form body of exactly 1 MiB (nginx's default
// client_max_body_size), prefix then a pad of x, and the pad's length.
func mibForm(prefix string) (string, int) {
	pad := 1<<20 - len(prefix)
	return prefix + strings.Repeat("x", pad), pad
}

// checkStream reads a streamed response whose second block waits for the
// file state/go: the first must arrive before it is created.
func checkStream(t *testing.T, url, state string) {
	t.Helper()
	gofile := filepath.Join(state, "go")
	os.Remove(gofile)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "first\n" {
		t.Fatalf("GET %s: first block %q, %v", url, first, err)
	}
	if err := os.WriteFile(gofile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("GET %s: second block %q, %v", url, rest, err)
	}
}

// loggedPool returns the pids ferry logged for the workers it started.
func loggedPool(t *testing.T, p *ferryProc, what string) []int {
	t.Helper()
	for _, line := range strings.Split(p.logs.String(), "\n") {
		var l struct {
			Message string
			PIDs    []int `json:"pids"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == "ferry: "+what+" started" {
			return l.PIDs
		}
	}
	t.Fatalf("ferry did not log %q:\n%s", what+" started", p.logs)
	return nil
}

// stopAndCheckWorkers stops ferry with SIGTERM and checks that every
// worker pid it ever logged is gone: no orphan, no zombie.
func stopAndCheckWorkers(t *testing.T, p *ferryProc) {
	t.Helper()
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v", err)
	}
	pids := startedWorkers(p)
	if len(pids) == 0 {
		t.Errorf("ferry logged no worker started")
	}
	for _, pid := range pids {
		if leakcheck.Alive(pid) {
			t.Errorf("worker %d outlived ferry", pid)
		} else if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Errorf("worker %d is a zombie after ferry exited", pid)
		}
	}
}

// startedWorkers returns the pids of every worker ferry logged starting.
func startedWorkers(p *ferryProc) []int {
	var pids []int
	for _, line := range p.logs.Lines(`"message":"spawn: worker started"`) {
		var l struct{ PID int }
		if json.Unmarshal([]byte(line), &l) == nil && l.PID > 0 {
			pids = append(pids, l.PID)
		}
	}
	return pids
}

// TestWSGIFlask: a real Flask application in ferry's wsgi: workers,
// through ferry's HTTP front and behind real nginx (ferry's FastCGI
// listener): pages with url_for under the mount prefix, a 1 MiB POST, a
// streamed response; a worker killed with SIGKILL mid-request answers
// 502 and is replaced; a request past the hard timeout answers 504 and
// its worker is replaced; no worker outlives ferry.
func TestWSGIFlask(t *testing.T) {
	leakcheck.Check(t)
	py := pythonWith(t, "flask")
	dir, state := t.TempDir(), t.TempDir()
	file := filepath.Join(dir, "app.py")
	if err := os.WriteFile(file, []byte(flaskApp), 0o644); err != nil {
		t.Fatal(err)
	}
	mount := "/app/=wsgi:" + file + "?callable=app&workers=2&timeout=2s&python=" + url.QueryEscape(py)

	t.Run("http", func(t *testing.T) {
		p := startFerry(t, "--mount", mount, "--env", "TEST_STATE="+state, "--cgi-kill-grace", "1s")
		pids := loggedPool(t, p, "WSGI workers")
		if len(pids) != 2 {
			t.Fatalf("workers started: %v; want 2", pids)
		}
		flaskChecks(t, p.URL, state)

		// SIGKILL mid-request: 502, replaced, the next requests succeed.
		os.Remove(filepath.Join(state, "sleeping"))
		result := make(chan int, 1)
		go func() {
			resp, err := http.Get(p.URL + "/app/sleep")
			if err == nil {
				resp.Body.Close()
				result <- resp.StatusCode
			}
			close(result) // a failed request reads as status 0
		}()
		pid := waitFile(t, filepath.Join(state, "sleeping"))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code := <-result; code != http.StatusBadGateway {
			t.Errorf("worker killed mid-request: %d; want 502", code)
		}
		waitLog(t, p, `"pid":`+strconv.Itoa(pid)+`,"status":"signal: killed"`)
		for range 6 {
			if code, body := httpGet(t, p.URL+"/app/pid"); code != 200 || body == strconv.Itoa(pid) {
				t.Errorf("after the kill: %d %q", code, body)
			}
		}

		// Past the hard timeout (2s): 504, and the worker replaced.
		os.Remove(filepath.Join(state, "sleeping"))
		start := time.Now()
		code, _ := httpGet(t, p.URL+"/app/sleep")
		if code != http.StatusGatewayTimeout || time.Since(start) > 10*time.Second {
			t.Errorf("past the hard timeout: %d after %v; want 504 after 2s", code, time.Since(start))
		}
		stuck := waitFile(t, filepath.Join(state, "sleeping"))
		waitLog(t, p, `"path":"/app/sleep","pid":`+strconv.Itoa(stuck)+`,"timeout_ms":2000,`)
		waitLog(t, p, "appserver: request passed the hard timeout; killing its worker")
		waitLog(t, p, `"pid":`+strconv.Itoa(stuck)+`,"status":"signal: killed"`)
		if code, _ := httpGet(t, p.URL+"/app/pid"); code != 200 {
			t.Errorf("after the timeout: %d", code)
		}
		stopAndCheckWorkers(t, p)
	})

	t.Run("nginx", func(t *testing.T) {
		peerstest.Need(t, "nginx")
		addr := freeAddr(t)
		p := startFerryArgs(t, "--listen", "fastcgi://"+addr, "--mount", mount, "--env", "TEST_STATE="+state)
		ngx := peerstest.NginxFastCGI(t, peers.NginxFastCGIConfig{Backend: addr, Locations: []string{"/app/"}})
		flaskChecks(t, ngx.URL, state)
		stopAndCheckWorkers(t, p)
	})
}

// djangoViews are the views of the Django project the test creates: a
// page with URLs from reverse and static, a form with a CSRF token, and a
// streamed response.
const djangoViews = pyBlocks + `
from django.http import HttpResponse, StreamingHttpResponse
from django.template import engines
from django.templatetags.static import static
from django.urls import reverse

PAGE = engines["django"].from_string(
    '<!DOCTYPE html><title>ferry</title><link rel="stylesheet" href="{{ css }}"><a href="{{ form }}">form</a>')
FORM = engines["django"].from_string(
    '<form method="post" action="{{ action }}">{% csrf_token %}<input name="name"></form>')


def index(request):
    return HttpResponse(PAGE.render({"css": static("site.css"), "form": reverse("form")}, request))


def form(request):
    if request.method == "POST":
        return HttpResponse("name=%s pad=%d" % (request.POST["name"], len(request.POST.get("pad", ""))), status=201)
    return HttpResponse(FORM.render({"action": reverse("form")}, request))


def stream(request):
    r = StreamingHttpResponse(blocks(), content_type="text/plain")
    r["X-Accel-Buffering"] = "no"
    return r
`

const djangoURLs = `from django.urls import path
from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("form/", views.form, name="form"),
    path("stream/", views.stream, name="stream"),
]
`

const djangoSettings = `
ALLOWED_HOSTS = ["*"]
DEBUG = False
STATIC_ROOT = BASE_DIR / "public" / "static"
STATICFILES_DIRS = [BASE_DIR / "assets"]
`

// djangoProject creates a Django project with django-admin startproject,
// adds the views, collects the static files into public/static, and
// returns its directory.
func djangoProject(t *testing.T, py string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "site")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	admin := []string{py, "-m", "django"} // django-admin of this interpreter
	if p, err := exec.LookPath("django-admin"); err == nil && py == "/usr/bin/python3" {
		admin = []string{p}
	}
	run(append(admin, "startproject", "mysite", dir)...)
	for name, text := range map[string]string{
		"mysite/views.py":    djangoViews,
		"mysite/urls.py":     djangoURLs,
		"assets/site.css":    "body { color: navy }\n",
		"mysite/settings.py": "", // appended below
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
		if name == "mysite/settings.py" {
			flag, text = os.O_WRONLY|os.O_APPEND, djangoSettings
		}
		f, err := os.OpenFile(path, flag, 0o644)
		if err == nil {
			_, err = f.WriteString(text)
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	run(py, "manage.py", "collectstatic", "--noinput")
	return dir
}

// djangoChecks are the acceptance checks of the Django project mounted at
// /app/ and reached at base: the page with reverse and static URLs, the
// static file (served by ferry from its root), the form with its CSRF
// token (and 403 without), a 1 MiB POST, a streamed response.
func djangoChecks(t *testing.T, base, state string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar}
	get := func(path string) (int, string) {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/app/")
	if code != 200 || !strings.Contains(body, `href="/app/form/"`) || !strings.Contains(body, `href="/static/site.css"`) {
		t.Errorf("GET /app/: %d %q; want links to /app/form/ and /static/site.css", code, body)
	}
	if code, body := get("/static/site.css"); code != 200 || body != "body { color: navy }\n" {
		t.Errorf("GET /static/site.css: %d %q", code, body)
	}
	if code, _ := get("/static/admin/css/base.css"); code != 200 {
		t.Errorf("GET a collected admin static file: %d", code)
	}
	code, body = get("/app/form/")
	m := regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`).FindStringSubmatch(body)
	if code != 200 || m == nil || !strings.Contains(body, `action="/app/form/"`) {
		t.Fatalf("GET /app/form/: %d %q; want a form posting to /app/form/ with a CSRF token", code, body)
	}
	post := func(form string) (int, string) {
		resp, err := c.Post(base+"/app/form/", "application/x-www-form-urlencoded", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post("name=ferry"); code != http.StatusForbidden {
		t.Errorf("POST without the CSRF token: %d; want 403", code)
	}
	form, pad := mibForm("csrfmiddlewaretoken=" + url.QueryEscape(m[1]) + "&name=ferry&pad=")
	code, body = post(form)
	if want := "name=ferry pad=" + strconv.Itoa(pad); code != 201 || body != want {
		t.Errorf("POST 1 MiB with the CSRF token: %d %.80q; want 201 %q", code, body, want)
	}
	checkStream(t, base+"/app/stream/", state)
}

// TestWSGIDjango: a Django project made by django-admin startproject, in
// ferry's wsgi: workers (module:callable with chdir), its static files
// served by ferry from the document root; through ferry's HTTP front and
// behind real nginx.
func TestWSGIDjango(t *testing.T) {
	leakcheck.Check(t)
	py := pythonWith(t, "django")
	dir := djangoProject(t, py)
	state := t.TempDir()
	mount := "/app/=wsgi:mysite.wsgi:application?chdir=" + url.QueryEscape(dir) + "&workers=2&python=" + url.QueryEscape(py)
	args := []string{"--mount", mount, "--root", filepath.Join(dir, "public"), "--env", "TEST_STATE=" + state}

	t.Run("http", func(t *testing.T) {
		p := startFerry(t, args...)
		djangoChecks(t, p.URL, state)
		stopAndCheckWorkers(t, p)
	})
	t.Run("nginx", func(t *testing.T) {
		peerstest.Need(t, "nginx")
		addr := freeAddr(t)
		p := startFerryArgs(t, append([]string{"--listen", "fastcgi://" + addr}, args...)...)
		ngx := peerstest.NginxFastCGI(t, peers.NginxFastCGIConfig{Backend: addr, Locations: []string{"/app/", "/static/"}})
		djangoChecks(t, ngx.URL, state)
		stopAndCheckWorkers(t, p)
	})
}

// TestWSGIBrokenApplicationStopsServe: an application that does not load
// stops ferry serve at start, with its traceback in the log.
func TestWSGIBrokenApplicationStopsServe(t *testing.T) {
	py := pythonWith(t)
	file := filepath.Join(t.TempDir(), "broken.py")
	if err := os.WriteFile(file, []byte("raise RuntimeError('this application does not load')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "serve", "--listen", "http://127.0.0.1:0", "--mount", "/=wsgi:"+file+"?python="+url.QueryEscape(py))
	cmd.Env = append(os.Environ(), "FERRY_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "this application does not load") || !strings.Contains(string(out), "did not load") {
		t.Errorf("ferry serve with a broken application: %v\n%s", err, out)
	}
}

// psgiApp is a Plack application: Plack::Request gives the base URL under
// the mount prefix.
const psgiApp = `use strict;
use warnings;
use Plack::Request;

sub {
	my $req = Plack::Request->new(shift);
	my $body = sprintf "hello %s base=%s length=%d", $req->param('name') // '', $req->base, length($req->content);
	return [200, ['Content-Type' => 'text/plain'], [$body]];
};
`

// TestPSGIPlack: a Plack application in ferry's psgi: workers, through
// ferry's HTTP front.
func TestPSGIPlack(t *testing.T) {
	leakcheck.Check(t)
	peerstest.Need(t, "perl")
	if exec.Command("perl", "-MPlack::Request", "-e1").Run() != nil {
		missing(t, "Plack (Debian libplack-perl)")
	}
	file := filepath.Join(t.TempDir(), "app.psgi")
	if err := os.WriteFile(file, []byte(psgiApp), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startFerry(t, "--mount", "/plack/=psgi:"+file+"?workers=2")
	host := strings.TrimPrefix(p.URL, "http://")
	if code, body := httpGet(t, p.URL+"/plack/x?name=ferry"); code != 200 || body != "hello ferry base=http://"+host+"/plack length=0" {
		t.Errorf("GET: %d %q", code, body)
	}
	resp, err := http.Post(p.URL+"/plack/x", "application/octet-stream", strings.NewReader(strings.Repeat("z", 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasSuffix(string(b), "length="+strconv.Itoa(1<<20)) {
		t.Errorf("POST 1 MiB: %d %q", resp.StatusCode, b)
	}
	stopAndCheckWorkers(t, p)
}
