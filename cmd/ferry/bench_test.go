package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ferrygw/ferry/benchmarks"
	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/scgi"
)

func TestBenchTargetJSONAndCompare(t *testing.T) {
	// os/signal starts its watcher goroutine once per process, for good.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	signal.Stop(c)
	leakcheck.Check(t)
	script, _ := filepath.Abs("../../testdata/bench/bench.sh")
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "cgi:" + script, "--requests", "20", "--concurrency", "2", "--warmup", "1ms", "--format", "json"}, &out, &errb); code != 0 {
		t.Fatalf("ferry bench exited %d: %s", code, errb.String())
	}
	rep, err := benchmarks.ReadReport(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Requests != 20 || rep.Rows[0].Errors != 0 || rep.Rows[0].Concurrency != 2 {
		t.Fatalf("report rows = %+v; want one row of 20 requests at concurrency 2, no errors", rep.Rows)
	}
	if !strings.Contains(strings.Join(rep.Command, " "), "--requests 20") {
		t.Errorf("report command = %q; want the command line", rep.Command)
	}
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	if err := os.WriteFile(a, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"bench", "compare", a, a}, &out, &errb); code != 0 || !strings.Contains(out.String(), "1.00x") {
		t.Errorf("ferry bench compare a a = %d:\n%s%s", code, out.String(), errb.String())
	}
}

// TestBenchSCGITarget loads an in-process scgi.Server through the scgi://
// and scgi+unix:// targets: every request reaches the application, with the
// path as PATH_INFO, and is counted.
func TestBenchSCGITarget(t *testing.T) {
	c := make(chan os.Signal, 1) // see TestBenchTargetJSONAndCompare
	signal.Notify(c, syscall.SIGUSR2)
	signal.Stop(c)
	leakcheck.Check(t)
	var calls atomic.Int64
	var paths sync.Map
	srv := &scgi.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		paths.Store(cgi.Origin(r.Context())["PATH_INFO"], true)
		io.WriteString(w, "Hello, world\n")
	})}
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	sock := filepath.Join(t.TempDir(), "app.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ul)
	for _, tt := range []struct{ target, path, wantPath string }{
		{"scgi://" + l.Addr().String() + "/tcp?x=1", "", "/tcp"},
		{"scgi+unix://" + sock, "/unix", "/unix"},
	} {
		calls.Store(0)
		var out, errb bytes.Buffer
		args := []string{"bench", tt.target, "--requests", "20", "--concurrency", "2", "--warmup", "1ms", "--format", "json"}
		if tt.path != "" {
			args = append(args, "--path", tt.path)
		}
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("ferry bench %s exited %d: %s", tt.target, code, errb.String())
		}
		rep, err := benchmarks.ReadReport(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Rows) != 1 || rep.Rows[0].Requests != 20 || rep.Rows[0].Errors != 0 || rep.Rows[0].Target != tt.target {
			t.Errorf("%s: report rows = %+v; want one row of 20 requests, no errors", tt.target, rep.Rows)
		}
		if n := calls.Load(); n < 21 { // the first check, the measured 20, and the warm-up's
			t.Errorf("%s: the application saw %d requests; want at least 21", tt.target, n)
		}
		if _, ok := paths.Load(tt.wantPath); !ok {
			t.Errorf("%s: the application never saw PATH_INFO %q", tt.target, tt.wantPath)
		}
	}
}

func TestBenchUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"bad format", []string{"bench", "--format", "xml", "http://127.0.0.1:1/"}},
		{"bad profile", []string{"bench", "--profile", "huge"}},
		{"two targets", []string{"bench", "http://a/", "http://b/"}},
		{"bad header", []string{"bench", "--header", "nocolon", "http://127.0.0.1:1/"}},
		{"compare one file", []string{"bench", "compare", "a.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != 2 {
				t.Errorf("run(%q) = %d; want 2 (stderr %q)", tt.args, code, errb.String())
			}
		})
	}
}

// TestBenchDeadBackendFails loads a ferry FastCGI mount whose application
// is gone: every request is a 502, so ferry bench must exit non-zero and
// the report must say so instead of showing req/s.
func TestBenchDeadBackendFails(t *testing.T) {
	c := make(chan os.Signal, 1) // see TestBenchTargetJSONAndCompare
	signal.Notify(c, syscall.SIGUSR2)
	signal.Stop(c)
	leakcheck.Check(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.Addr().String()
	dead.Close() // nothing listens there any more
	client := &fastcgi.Client{Network: "tcp", Address: addr, MaxConns: 2}
	defer client.CloseIdle()
	mount := httptest.NewServer(fastcgi.NewHandler(client, nil, cgi.Settings{}))
	defer mount.Close()
	var out, errb bytes.Buffer
	md := filepath.Join(t.TempDir(), "report.md")
	code := run([]string{"bench", mount.URL + "/app", "--requests", "20", "--concurrency", "2", "--warmup", "1ms", "--markdown", md}, &out, &errb)
	if code == 0 {
		t.Fatalf("ferry bench at a dead backend exited 0:\n%s%s", out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "every request of a row failed") {
		t.Errorf("stderr does not say that every request failed:\n%s", errb.String())
	}
	if !strings.Contains(out.String(), "failed") || !strings.Contains(out.String(), "status 502") {
		t.Errorf("table does not show the failed row with its 502s:\n%s", out.String())
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatalf("no Markdown report: %v", err)
	}
	if !strings.Contains(string(b), "Every request failed") || !strings.Contains(string(b), "| failed |") {
		t.Errorf("Markdown report does not say the row failed:\n%s", b)
	}
}
