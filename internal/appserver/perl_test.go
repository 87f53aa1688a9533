package appserver

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/ferrygw/ferry/scgi"
	"github.com/ferrygw/ferry/spawn"
	"github.com/rs/zerolog"
)

// envLines parses NAME=value lines.
func envLines(body string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

// TestPSGI: PSGI 1.1's environment, input, errors, streaming and delayed
// responses, a file handle body, statuses and repeated headers, a dying
// application, and psgix.harakiri.
func TestPSGI(t *testing.T) {
	s := psgi(t, nil)
	code, body, _ := do(t, "GET", s.url+"/env?x=1", nil, "X-Request-Id", "client-made")
	env := envLines(body)
	for k, v := range map[string]string{
		"SCRIPT_NAME": "/app", "PATH_INFO": "/env", "QUERY_STRING": "x=1", "psgi.url_scheme": "http",
		"psgi.multiprocess": "1", "psgi.multithread": "0", "psgi.run_once": "0", "psgi.streaming": "1",
		"psgi.nonblocking": "0", "version": "1 1", "input": "Ferry::Input",
	} {
		if env[k] != v {
			t.Errorf("env %s = %q; want %q", k, env[k], v)
		}
	}
	if code != 200 || len(env["HTTP_X_REQUEST_ID"]) != 16 {
		t.Errorf("GET /env: %d, HTTP_X_REQUEST_ID %q\n%s", code, env["HTTP_X_REQUEST_ID"], body)
	}
	big := bytes.Repeat([]byte("psgi body "), 100000)
	if code, body, _ := do(t, "POST", s.url+"/echo", bytes.NewReader(big)); code != 200 || body != strconv.Itoa(len(big))+" 0 "+string(big) {
		t.Errorf("POST 1 MB: %d, %d bytes", code, len(body))
	}
	if code, body, _ := do(t, "GET", s.url+"/errors", nil); code != 200 || body != "logged" {
		t.Errorf("GET /errors: %d %q", code, body)
	}
	waitFor(t, "psgi.errors in the log", func() bool { return len(s.logs.Lines("req_id=", "psgi error line")) == 1 })
	if code, body, _ := do(t, "GET", s.url+"/delayed", nil); code != 200 || body != "delayed" {
		t.Errorf("delayed response: %d %q", code, body)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, bytes.Repeat([]byte("x"), 200000), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := do(t, "GET", s.url+"/file?"+file, nil); code != 200 || len(body) != 200000 {
		t.Errorf("file handle body: %d, %d bytes", code, len(body))
	}
	code, body, hdr := do(t, "GET", s.url+"/status", nil)
	if code != 404 || body != "nope" || strings.Join(hdr.Values("Set-Cookie"), ",") != "a=1,b=2" || hdr.Get("Content-Length") != "4" {
		t.Errorf("GET /status: %d %q %v", code, body, hdr)
	}
	if code, _, _ := do(t, "GET", s.url+"/die", nil); code != 500 {
		t.Errorf("a dying application: %d; want 500", code)
	}
	waitFor(t, "the application's error in the log", func() bool { return s.logs.Contains("psgi died here") })

	resp, err := http.Get(s.url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if first, err := br.ReadString('\n'); err != nil || first != "first\n" {
		t.Fatalf("first streamed block: %q %v", first, err)
	}
	if err := os.WriteFile(filepath.Join(s.state, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "second\n" {
		t.Errorf("second streamed block: %q %v", rest, err)
	}
	resp.Body.Close()

	_, pid, _ := do(t, "GET", s.url+"/harakiri", nil)
	n, _ := strconv.Atoi(pid)
	replaced(t, s.w, n, 2)
}

// TestPSGIInputOffset: psgi.input's read takes an offset as Perl's read
// does (PSGI: "like IO::Handle"): past the end of the buffer it pads with
// NULs, negative it counts from the end. Past the end it used to die
// ("substr outside of string"): 500.
func TestPSGIInputOffset(t *testing.T) {
	s := psgi(t, nil)
	code, body, _ := do(t, "POST", s.url+"/read-offset", strings.NewReader("xyzuv"))
	// "ab" + "\0\0" + "xyz", then the last byte replaced by "uv".
	if want := "3,2,97,98,0,0,120,121,117,118"; code != 200 || body != want {
		t.Errorf("read with offsets: %d %q; want 200 %q\n%s", code, body, want, lines(s.logs, "failed"))
	}
}

// TestPSGIIgnoredBody: a streamed response to a request whose body the
// application did not read reaches the client whole.
func TestPSGIIgnoredBody(t *testing.T) {
	ignoredBodies(t, psgi(t, nil), "/ignore-body")
}

// TestPSGIHardTimeout: a PSGI worker past the hard timeout is killed and
// replaced; the client gets 504.
func TestPSGIHardTimeout(t *testing.T) {
	leakcheck.Check(t)
	s := psgi(t, func(w *Workers) { w.Timeout = 500 * time.Millisecond })
	if code, _, _ := do(t, "GET", s.url+"/sleep", nil); code != http.StatusGatewayTimeout {
		t.Errorf("past the hard timeout: %d; want 504", code)
	}
	pid, _ := strconv.Atoi(waitFile(t, filepath.Join(s.state, "sleeping")))
	waitFor(t, "kill log", func() bool { return len(s.logs.Lines("killing its worker", `"pid":`+strconv.Itoa(pid))) == 1 })
	replaced(t, s.w, pid, 2)
	if code, _, _ := do(t, "GET", s.url+"/pid", nil); code != 200 {
		t.Errorf("after the timeout: %d", code)
	}
}

// persistent is a cgi-bin served by Persistent with Perl workers.
type persistent struct {
	url  string
	dir  string
	w    *Workers
	logs *testlog.Buffer
}

func servePerlCGI(t *testing.T) *persistent {
	t.Helper()
	perl := peerstest.Need(t, "perl")["perl"]
	dir := testdir.Open(t) // the scripts that run as CGI processes run as www-data under root
	if err := os.CopyFS(dir, os.DirFS("testdata/cgi")); err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	lg := zerolog.New(logs)
	w := &Workers{App: &PerlCGI{Perl: perl}, Pool: &spawn.Pool{Workers: 2, KillGrace: 2 * time.Second, Logger: &lg},
		Timeout: 10 * time.Second, IDHeader: "X-Ferry-Request-Id"}
	if err := w.Start(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	c := &scgi.Client{Network: "unix", Address: w.Address(), MaxConns: w.Pool.Size(), Logger: &lg}
	h := &cgi.Handler{Resolver: &cgi.Dir{Path: dir, Prefix: "/cgi-bin/"}, Settings: cgi.Settings{Logger: &lg}}
	fw := scgi.NewHandler(c, cgi.ResolverFunc(ScriptOf), cgi.Settings{Logger: &lg})
	p := &Persistent{CGI: h, Workers: w.Handler(fw), Accept: IsPerl, Fallback: true, SCGI: true, Logger: &lg}
	hs := httptest.NewServer(p)
	t.Cleanup(hs.Close)
	return &persistent{url: hs.URL + "/cgi-bin/", dir: dir, w: w, logs: logs}
}

// TestPerlCGIPersistent: Perl scripts run in the workers, with the CGI
// environment, their body on descriptor 0, and their globals as fresh
// as under CGI; a script whose named subs use file-scope lexicals is
// compiled on each run; other scripts and broken ones run as CGI
// processes; a changed script is compiled again.
func TestPerlCGIPersistent(t *testing.T) {
	leakcheck.Check(t)
	s := servePerlCGI(t)
	inWorker := func(pid string) bool {
		n, _ := strconv.Atoi(pid)
		return slices.Contains(s.w.PIDs(), n)
	}

	_, body, _ := do(t, "GET", s.url+"env.pl/extra?a=b", nil)
	env := envLines(body)
	for k, v := range map[string]string{"SCRIPT_NAME": "/cgi-bin/env.pl", "PATH_INFO": "/extra", "QUERY_STRING": "a=b",
		"SCRIPT_FILENAME": filepath.Join(s.dir, "env.pl"), "GATEWAY_INTERFACE": "CGI/1.1", "zero": filepath.Join(s.dir, "env.pl"), "cwd": s.dir} {
		if env[k] != v {
			t.Errorf("env.pl: %s = %q; want %q", k, env[k], v)
		}
	}
	if !inWorker(env["pid"]) {
		t.Errorf("env.pl ran in pid %s, not a worker (%v)", env["pid"], s.w.PIDs())
	}
	for _, k := range []string{"SCGI", "HTTP_X_FERRY_REQUEST_ID", "HTTP_X_REQUEST_ID", "HTTP_X_FERRY_NO_CONTENT_LENGTH", "CONTENT_LENGTH"} {
		if _, ok := env[k]; ok {
			t.Errorf("env.pl sees %s in its environment; a CGI process would not", k)
		}
	}

	for i := range 6 {
		code, body, _ := do(t, "GET", s.url+"state.pl?"+strconv.Itoa(i), nil)
		if want := "count=1 pids=1 seen=1 dynamic=1 set_once=initial env=0\n"; code != 200 || body != want {
			t.Errorf("state.pl, request %d: %d %q; want %q (as under CGI)", i, code, body, want)
		}
	}

	code, body, _ := do(t, "POST", s.url+"post.pl", strings.NewReader("hello, the rest of the body"))
	if want := "head=hello len=27 rest=22\n"; code != 200 || body != want {
		t.Errorf("post.pl: %d %q; want %q", code, body, want)
	}

	code, body, _ = do(t, "GET", s.url+"exit.pl", nil)
	if code != 200 || body != "before exit\n" {
		t.Errorf("exit.pl: %d %q", code, body)
	}
	waitFor(t, "exit.pl's stderr with the request ID", func() bool { return len(s.logs.Lines("req_id=", "exit.pl says goodbye")) == 1 })

	// Not Perl: a CGI process.
	_, body, _ = do(t, "GET", s.url+"hello.sh", nil)
	if pid, ok := strings.CutPrefix(strings.TrimSpace(body), "shell pid="); !ok || inWorker(pid) {
		t.Errorf("hello.sh: %q; want it run as a CGI process", body)
	}
	// A named sub using a file-scope lexical: compiled on each run, in
	// the workers, and right every time.
	for _, q := range []string{"one", "two", "three"} {
		code, body, _ = do(t, "GET", s.url+"closure.pl?"+q, nil)
		pid, _ := strings.CutPrefix(strings.Fields(body + " x")[1], "pid=")
		if code != 200 || !strings.HasPrefix(body, "q="+q+" ") || !inWorker(pid) {
			t.Errorf("closure.pl?%s: %d %q; want q=%s from a worker", q, code, body, q)
		}
	}
	waitFor(t, "closure.pl's mode", func() bool { return s.logs.Contains("closure.pl is compiled on each run") })
	// Does not compile: as under CGI.
	cgiCode := 0
	{
		cmd := filepath.Join(s.dir, "broken.pl")
		nop := zerolog.Nop()
		h := httptest.NewServer(&cgi.Handler{Path: cmd, Settings: cgi.Settings{Logger: &nop}})
		cgiCode, _, _ = do(t, "GET", h.URL, nil)
		h.Close()
	}
	if code, _, _ = do(t, "GET", s.url+"broken.pl", nil); code != cgiCode {
		t.Errorf("broken.pl: %d; as a CGI process it gets %d", code, cgiCode)
	}

	// A changed script is compiled again.
	_, body, _ = do(t, "GET", s.url+"version.pl", nil)
	if !strings.HasPrefix(body, "version 1 ") {
		t.Fatalf("version.pl: %q", body)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "version.pl"), []byte("#!/usr/bin/perl\nprint \"Content-Type: text/plain\\r\\n\\r\\nversion 2 pid=$$\\n\";\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		_, body, _ = do(t, "GET", s.url+"version.pl", nil)
		pid, _ := strings.CutPrefix(strings.Fields(body + " x x")[2], "pid=")
		if !strings.HasPrefix(body, "version 2 ") || !inWorker(pid) {
			t.Errorf("version.pl changed: %q; want version 2 from a worker", body)
		}
	}
}

// TestPerlCGIWorkerKilled: a persistent script's worker killed mid-request
// answers 502, like a CGI process killed before its headers; the pool
// replaces it.
func TestPerlCGIWorkerKilled(t *testing.T) {
	s := servePerlCGI(t)
	if err := os.WriteFile(filepath.Join(s.dir, "hang.pl"), []byte("#!/usr/bin/perl\nopen my $f, '>', $ENV{QUERY_STRING}; print $f $$; close $f; sleep 300;\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(t.TempDir(), "pid")
	result := getStatus(s.url + "hang.pl?" + mark)
	pid, _ := strconv.Atoi(waitFile(t, mark))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := <-result; code != http.StatusBadGateway {
		t.Errorf("killed: %d; want 502", code)
	}
	replaced(t, s.w, pid, 2)
}
