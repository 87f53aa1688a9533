package appserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/scgi"
	"github.com/ferrygw/ferry/spawn"
	"github.com/rs/zerolog"
)

// TestWSGIEnviron: PEP 3333's environ, with the mount prefix as
// SCRIPT_NAME and ferry's request ID as HTTP_X_REQUEST_ID.
func TestWSGIEnviron(t *testing.T) {
	s := wsgi(t, nil)
	code, body, _ := do(t, "GET", s.url+"/environ?q=1", nil, "X-Request-Id", "client-made", "X-Test", "yes")
	if code != 200 {
		t.Fatalf("GET /environ: %d %s\n%s", code, body, s.logs)
	}
	var env map[string]any
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	want := map[string]any{
		"SCRIPT_NAME": "/app", "PATH_INFO": "/environ", "QUERY_STRING": "q=1", "REQUEST_METHOD": "GET",
		"HTTP_X_TEST": "yes", "wsgi.url_scheme": "http", "wsgi.multithread": false, "wsgi.multiprocess": true,
		"wsgi.run_once": false, "wsgi.input_terminated": true, "input_type": "Input",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("environ[%s] = %#v; want %#v", k, env[k], v)
		}
	}
	if v, _ := env["wsgi.version"].([]any); len(v) != 2 || v[0] != 1.0 || v[1] != 0.0 {
		t.Errorf("wsgi.version = %v; want (1, 0)", env["wsgi.version"])
	}
	if id, _ := env["HTTP_X_REQUEST_ID"].(string); len(id) != 16 || id == "client-made" {
		t.Errorf("HTTP_X_REQUEST_ID = %q; want an ID ferry made, not the client's", id)
	}
	for _, k := range []string{"SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "CONTENT_LENGTH"} {
		if _, ok := env[k]; !ok {
			t.Errorf("environ has no %s", k)
		}
	}
	for _, k := range []string{"FERRY_SCOREBOARD", "FERRY_WSGI_FILE", "FERRY_MAX_REQUESTS", "SCGI_SOCKET"} {
		if _, ok := env[k]; ok {
			t.Errorf("environ has the adapter's %s", k)
		}
	}
	if dir, _ := filepath.Abs("testdata"); env["sys_path0"] != dir || env["cwd"] != dir {
		t.Errorf("sys.path[0] = %v, cwd %v; want the application's directory %s", env["sys_path0"], env["cwd"], dir)
	}
}

// TestWSGIInput: wsgi.input gives exactly CONTENT_LENGTH bytes, then end
// of file, through read, readline and iteration; a 1 MiB body arrives
// whole.
func TestWSGIInput(t *testing.T) {
	s := wsgi(t, nil)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	code, body, _ := do(t, "POST", s.url+"/echo", bytes.NewReader(big))
	if want := strconv.Itoa(len(big)) + " 0 " + string(big); code != 200 || body != want {
		t.Errorf("POST 1 MiB: %d, %d bytes; want 200 and the body back, then EOF", code, len(body))
	}
	// Chunked: ferry gives the exact length.
	code, body, _ = do(t, "POST", s.url+"/echo", io.MultiReader(strings.NewReader("chunked "), strings.NewReader("body")))
	if code != 200 || body != "12 0 chunked body" {
		t.Errorf("chunked POST: %d %q", code, body)
	}
	code, body, _ = do(t, "POST", s.url+"/lines", strings.NewReader("one\ntwo-three\nfour\nfive"))
	if want := `["one\n", "two", ["-three\n", "four\n", "five"]]`; code != 200 || body != want {
		t.Errorf("readline: %d %s; want %s", code, body, want)
	}
}

// TestWSGIErrors: wsgi.errors lines reach the log marked with the
// request's ID, as print() does without one.
func TestWSGIErrors(t *testing.T) {
	s := wsgi(t, nil)
	code, _, hdr := do(t, "GET", s.url+"/errors", nil)
	if code != 200 {
		t.Fatalf("GET /errors: %d", code)
	}
	id := hdr.Get("X-Request-Id")
	if id == "" {
		// No access log in front: the guard made the ID; find it in the
		// log.
		id = "req_id="
	} else {
		id = "req_id=" + id
	}
	for _, want := range []string{"first line", "second line", "unfinished"} {
		waitFor(t, "log line "+want, func() bool { return len(s.logs.Lines(id, want)) == 1 })
	}
	// README: print()'s lines are marked with the request's ID too.
	waitFor(t, "print() marked with the request's ID", func() bool { return len(s.logs.Lines(id, "printed to stdout")) == 1 })
}

// TestWSGIResponses: write(), status and repeated headers, start_response's
// checks, exc_info, the Content-Length cap, a str body.
func TestWSGIResponses(t *testing.T) {
	s := wsgi(t, nil)
	for _, tc := range []struct {
		path, body string
		code       int
		log        string
	}{
		{"/write", "from write; from iterable", 200, ""},
		{"/exc-info", "error page", 500, ""},
		{"/length-cap", "12345", 200, ""},
		{"/bad-status", "500 Internal Server Error\n", 500, "not a code, a space and a reason phrase"},
		{"/tuple-headers", "500 Internal Server Error\n", 500, "response_headers must be a list"},
		{"/hop", "500 Internal Server Error\n", 500, "hop-by-hop header Connection"},
		{"/str-body", "500 Internal Server Error\n", 500, "must produce bytes"},
		// PEP 3333: header values are latin-1; one that is not is the
		// application's error (500), not a worker that died (502).
		{"/not-latin1", "500 Internal Server Error\n", 500, "is not latin-1"},
		{"/latin1", "x", 200, ""},
		{"/empty-then-error", "500 Internal Server Error\n", 500, "failing after the first block"},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			code, body, _ := do(t, "GET", s.url+tc.path, nil)
			if code != tc.code || body != tc.body {
				t.Errorf("GET %s = %d %q; want %d %q\n%s", tc.path, code, body, tc.code, tc.body, s.logs)
			}
			if tc.log != "" {
				waitFor(t, "log "+tc.log, func() bool { return s.logs.Contains(tc.log) })
			}
		})
	}
	code, body, hdr := do(t, "GET", s.url+"/status", nil)
	if code != 404 || body != "nope" || strings.Join(hdr.Values("Set-Cookie"), ",") != "a=1,b=2" {
		t.Errorf("GET /status = %d %q %v", code, body, hdr)
	}
	if hdr.Get("Content-Length") != "4" {
		t.Errorf("a one-block response has Content-Length %q; want 4 (PEP 3333 lets the server give it)", hdr.Get("Content-Length"))
	}
}

// TestWSGIClose: the iterable's close() is called after a whole response
// and after one that failed midway, which the client sees cut.
func TestWSGIClose(t *testing.T) {
	s := wsgi(t, nil)
	closed := filepath.Join(s.state, "closed")
	code, body, _ := do(t, "GET", s.url+"/close", nil)
	if code != 200 || body != "ab" {
		t.Errorf("GET /close = %d %q", code, body)
	}
	if got := waitFile(t, closed); got != "closed\n" {
		t.Errorf("close() marks: %q", got)
	}
	if b, cut := readCut(t, s.url+"/close-error"); !cut {
		t.Errorf("a response that failed after its first block read whole: %q; want it cut", b)
	}
	waitFor(t, "second close()", func() bool { b, _ := os.ReadFile(closed); return string(b) == "closed\nclosed\n" })
}

// TestWSGIIgnoredBody: a streamed response to a request whose body the
// application did not read reaches the client whole.
func TestWSGIIgnoredBody(t *testing.T) {
	ignoredBodies(t, wsgi(t, nil), "/ignore-body")
}

// TestWSGIFileWrapper: wsgi.file_wrapper sends a file (sendfile), within
// Content-Length when the application gives one.
func TestWSGIFileWrapper(t *testing.T) {
	s := wsgi(t, nil)
	file := filepath.Join(t.TempDir(), "data")
	data := bytes.Repeat([]byte("file wrapper "), 100000)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, body, _ := do(t, "GET", s.url+"/file?"+file, nil)
	if code != 200 || body != string(data) {
		t.Errorf("file_wrapper: %d, %d bytes; want 200, %d bytes", code, len(body), len(data))
	}
	code, body, _ = do(t, "GET", s.url+"/file?"+file, nil, "X-Length", "100")
	if code != 200 || body != string(data[:100]) {
		t.Errorf("file_wrapper with Content-Length 100: %d, %d bytes", code, len(body))
	}
}

// TestWSGIStreaming: each block reaches the client as soon as the
// application yields it.
func TestWSGIStreaming(t *testing.T) {
	s := wsgi(t, nil)
	resp, err := http.Get(s.url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "first\n" {
		t.Fatalf("first block: %q, %v", first, err)
	}
	// The application waits for this file before its second block: the
	// first arrived alone.
	if err := os.WriteFile(filepath.Join(s.state, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("second block: %q, %v", rest, err)
	}
}

// TestWSGIKilledMidRequest: a worker killed with SIGKILL while it serves a
// request: 502, the pool replaces it, the next requests succeed; a worker
// that dies in the middle of a streamed response cuts the client's
// connection.
func TestWSGIKilledMidRequest(t *testing.T) {
	leakcheck.Check(t)
	s := wsgi(t, nil)
	result := getStatus(s.url + "/sleep")
	pid, _ := strconv.Atoi(waitFile(t, filepath.Join(s.state, "sleeping")))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := <-result; code != http.StatusBadGateway {
		t.Errorf("worker killed mid-request: %d; want 502", code)
	}
	replaced(t, s.w, pid, 2)
	for range 4 {
		if code, body, _ := do(t, "GET", s.url+"/pid", nil); code != 200 || body == strconv.Itoa(pid) {
			t.Errorf("after the kill: %d %q", code, body)
		}
	}
	if b, cut := readCut(t, s.url+"/die-mid-stream"); !cut {
		t.Errorf("a worker that died mid-response: the client read %q whole; want the connection cut", b)
	}
	waitFor(t, "cut-short log", func() bool { return s.logs.Contains("the response ended before its worker finished it") })
}

// TestWSGIHardTimeout: a request past the hard timeout gets 504, its
// worker is killed with a log line naming the request, and replaced.
func TestWSGIHardTimeout(t *testing.T) {
	leakcheck.Check(t)
	s := wsgi(t, func(w *Workers) { w.Timeout = 500 * time.Millisecond })
	start := time.Now()
	code, _, hdr := do(t, "GET", s.url+"/sleep", nil)
	if code != http.StatusGatewayTimeout {
		t.Errorf("past the hard timeout: %d; want 504", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("504 after %v", d)
	}
	pid, _ := strconv.Atoi(waitFile(t, filepath.Join(s.state, "sleeping")))
	_ = hdr
	waitFor(t, "kill log", func() bool {
		return len(s.logs.Lines("passed the hard timeout; killing its worker", `"pid":`+strconv.Itoa(pid), `"path":"/app/sleep"`, `"req_id":"`)) == 1
	})
	replaced(t, s.w, pid, 2)
	if code, body, _ := do(t, "GET", s.url+"/sleep?0.01", nil); code != 200 || body != "woke" {
		t.Errorf("a request within the timeout: %d %q", code, body)
	}
}

// TestWSGIHardTimeoutQueued: the hard timeout counts from when a worker
// can take the request, not from its arrival, as uWSGI's harakiri and
// Gunicorn's timeout do: with one worker, a request that waited in ferry's
// queue behind another for most of the timeout, then ran well within it,
// is answered, and no worker is killed. It used to get 504 and have the
// worker that had just taken it killed, so that under load every queued
// request cost a worker.
func TestWSGIHardTimeoutQueued(t *testing.T) {
	leakcheck.Check(t)
	s := wsgi(t, func(w *Workers) { w.Pool.Workers = 1; w.Timeout = 1800 * time.Millisecond })
	first := getStatus(s.url + "/sleep?1")
	waitFile(t, filepath.Join(s.state, "sleeping")) // the first holds the worker
	start := time.Now()
	code, body, _ := do(t, "GET", s.url+"/sleep?1", nil) // queued ~1 s, then runs 1 s
	if code != 200 || body != "woke" {
		t.Errorf("a request queued behind another, then served within the timeout: %d %q after %v; want 200 \"woke\"\n%s",
			code, body, time.Since(start), lines(s.logs, "hard timeout"))
	}
	if code := <-first; code != 200 {
		t.Errorf("the first request: %d; want 200", code)
	}
	if s.logs.Contains("passed the hard timeout") {
		t.Errorf("a worker was killed for a request within its time:\n%s", lines(s.logs, "hard timeout"))
	}
}

// TestWSGILongRequestID: the ID ferry's access log sets on the response,
// in the header it is configured with, goes to the application, and a
// 128-byte one (the longest ferry takes from a client) still names its
// request on the scoreboard: past the hard timeout, its worker is found
// and killed.
func TestWSGILongRequestID(t *testing.T) {
	leakcheck.Check(t)
	s := wsgi(t, func(w *Workers) { w.Timeout = 500 * time.Millisecond; w.ResponseIDHeader = "X-Trace-Id" })
	id := strings.Repeat("0123456789abcdef", 8)
	nop := zerolog.Nop()
	c := &scgi.Client{Network: "unix", Address: s.w.Address(), MaxConns: s.w.Pool.Size(), Logger: &nop}
	next := s.w.Handler(scgi.NewHandler(c, cgi.Mount{Prefix: "/app/"}, cgi.Settings{Logger: &nop}))
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Trace-Id", id) // as ferry's access log does
		next.ServeHTTP(w, r)
	}))
	defer hs.Close()

	code, body, _ := do(t, "GET", hs.URL+"/app/environ", nil)
	var env map[string]any
	if err := json.Unmarshal([]byte(body), &env); code != 200 || err != nil {
		t.Fatalf("GET /environ: %d %v %s", code, err, body)
	}
	if got := env["HTTP_X_REQUEST_ID"]; got != id {
		t.Errorf("HTTP_X_REQUEST_ID = %q; want the response's X-Trace-Id %q", got, id)
	}
	if code, _, _ := do(t, "GET", hs.URL+"/app/sleep", nil); code != http.StatusGatewayTimeout {
		t.Errorf("past the hard timeout: %d; want 504", code)
	}
	pid, _ := strconv.Atoi(waitFile(t, filepath.Join(s.state, "sleeping")))
	waitFor(t, "kill log", func() bool {
		return len(s.logs.Lines("passed the hard timeout; killing its worker", `"pid":`+strconv.Itoa(pid), `"req_id":"`+id+`"`)) == 1
	})
	replaced(t, s.w, pid, 2)
}

// TestWSGIRecycling: max_requests makes a worker exit after that many
// requests, and the pool replaces it; past MaxRSS a worker is recycled.
func TestWSGIRecycling(t *testing.T) {
	s := wsgi(t, func(w *Workers) { w.Pool.Workers = 1; w.Pool.MaxRequests = 3; w.MaxRSS = 200 << 20 })
	seen := map[string]int{}
	for range 9 {
		code, body, _ := do(t, "GET", s.url+"/pid", nil)
		if code != 200 {
			t.Fatalf("GET /pid: %d %s", code, body)
		}
		seen[body]++
	}
	if len(seen) != 3 {
		t.Errorf("9 requests with max_requests 3 on one worker were served by %v; want 3 workers, 3 requests each", seen)
	}
	code, body, _ := do(t, "GET", s.url+"/grow?300", nil)
	if code != 200 {
		t.Fatalf("GET /grow: %d %s", code, body)
	}
	pid, _ := strconv.Atoi(strings.TrimPrefix(body, "grown "))
	waitFor(t, "recycling past max_rss", func() bool { return s.logs.Contains("worker past its memory limit") })
	replaced(t, s.w, pid, 1)
}

// TestWSGIModule: module:callable with a Python path and a working
// directory.
func TestWSGIModule(t *testing.T) {
	py := peerstest.Need(t, "python3")["python3"]
	lib, work := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(lib, "webapp"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{
		"webapp/__init__.py": "",
		"webapp/web.py": "import os\ndef make(environ, start_response):\n" +
			"    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [os.getcwd().encode()]\n",
	} {
		if err := os.WriteFile(filepath.Join(lib, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := serve(t, &WSGI{Python: py, Module: "webapp.web:make", Dir: work, PythonPath: []string{lib}}, nil)
	if code, body, _ := do(t, "GET", s.url+"/", nil); code != 200 || body != work {
		t.Errorf("GET: %d %q; want 200 %q", code, body, work)
	}
}

// TestWSGIVirtualenv: python= naming a virtualenv's interpreter runs the
// application in that environment: sys.prefix is the virtualenv, and a
// module installed only there imports.
func TestWSGIVirtualenv(t *testing.T) {
	py := peerstest.Need(t, "python3")["python3"]
	venv := filepath.Join(t.TempDir(), "venv")
	if out, err := exec.Command(py, "-m", "venv", "--without-pip", venv).CombinedOutput(); err != nil {
		t.Fatalf("python3 -m venv (Debian python3-venv): %v\n%s", err, out)
	}
	sites, _ := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages"))
	if len(sites) != 1 {
		t.Fatalf("the virtualenv's site-packages: %v", sites)
	}
	app := filepath.Join(t.TempDir(), "app.py")
	for path, src := range map[string]string{
		filepath.Join(sites[0], "onlyhere.py"): "NAME = 'from the virtualenv'\n",
		app: "import sys, onlyhere\ndef application(environ, start_response):\n" +
			"    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [(sys.prefix + ' ' + onlyhere.NAME).encode()]\n",
	} {
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := serve(t, &WSGI{Python: filepath.Join(venv, "bin", "python3"), File: app}, func(w *Workers) { w.Pool.Workers = 1 })
	if code, body, _ := do(t, "GET", s.url+"/", nil); code != 200 || body != venv+" from the virtualenv" {
		t.Errorf("GET: %d %q; want 200 %q", code, body, venv+" from the virtualenv")
	}
}

// TestWSGIBrokenApplication: an application that does not load stops
// Start, with its traceback in the log.
func TestWSGIBrokenApplication(t *testing.T) {
	leakcheck.Check(t)
	py := peerstest.Need(t, "python3")["python3"]
	file := filepath.Join(t.TempDir(), "broken.py")
	if err := os.WriteFile(file, []byte("import no_such_module_here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &Workers{App: &WSGI{Python: py, File: file}, Pool: &spawn.Pool{Workers: 1}}
	err := w.Start(context.Background())
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("Start = %v; want ErrNotReady", err)
	}
	if err := w.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := (&WSGI{Python: py, File: file, Module: "x"}).Check(); err == nil {
		t.Errorf("Check with a file and a module: no error")
	}
}
