package benchmarks

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/scgi"
)

// funcTarget is a loadTarget made of a function.
type funcTarget func(ctx context.Context) (int, error)

func (f funcTarget) Do(ctx context.Context) (int, error) { return f(ctx) }
func (f funcTarget) Close() error                        { return nil }

func TestRunClosedLoopCountsRequests(t *testing.T) {
	leakcheck.Check(t)
	var calls atomic.Int64
	tgt := funcTarget(func(ctx context.Context) (int, error) {
		n := calls.Add(1)
		switch n % 10 {
		case 3:
			return 502, nil
		case 7:
			return 0, errors.New("connection reset")
		}
		return 200, nil
	})
	res, err := runLoad(context.Background(), tgt, loadPlan{Concurrency: 4, Requests: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 1000 || res.Latency.Count() != 1000 {
		t.Fatalf("Requests = %d, histogram count %d; want 1000", res.Requests, res.Latency.Count())
	}
	if calls.Load() != 1000 {
		t.Errorf("target called %d times; want 1000 (no warm-up)", calls.Load())
	}
	if res.Errors["status 502"] != 100 || res.Errors["transport"] != 100 || res.OK != 800 || res.ErrorCount() != 200 {
		t.Errorf("OK %d, errors %v; want 800 OK, 100 status 502, 100 transport", res.OK, res.Errors)
	}
	if res.FirstError == "" {
		t.Errorf("FirstError is empty")
	}
	if res.Elapsed <= 0 || res.Throughput() <= 0 {
		t.Errorf("Elapsed %v, Throughput %v; want positive", res.Elapsed, res.Throughput())
	}
}

func TestRunWarmupExcluded(t *testing.T) {
	leakcheck.Check(t)
	start := time.Now()
	warm := 150 * time.Millisecond
	var calls atomic.Int64
	tgt := funcTarget(func(ctx context.Context) (int, error) {
		calls.Add(1)
		time.Sleep(2 * time.Millisecond)
		return 200, nil
	})
	res, err := runLoad(context.Background(), tgt, loadPlan{Concurrency: 2, Duration: 200 * time.Millisecond, Warmup: warm})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Requests >= calls.Load() {
		t.Errorf("measured %d of %d requests; want some, and fewer than sent (warm-up)", res.Requests, calls.Load())
	}
	if res.Elapsed < 200*time.Millisecond || res.Elapsed > time.Since(start)-warm+time.Millisecond {
		t.Errorf("Elapsed = %v; want the measured 200ms (plus the last request)", res.Elapsed)
	}
}

func TestRunTimeoutAndCancel(t *testing.T) {
	leakcheck.Check(t)
	tgt := funcTarget(func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	res, err := runLoad(context.Background(), tgt, loadPlan{Concurrency: 2, Requests: 4, Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["timeout"] != 4 {
		t.Errorf("errors %v; want 4 timeouts", res.Errors)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := runLoad(ctx, tgt, loadPlan{Concurrency: 2, Duration: time.Hour}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run with a context ending: err = %v; want DeadlineExceeded", err)
	}
}

// stallOnce returns a target that answers at once, except the nth request,
// which takes d.
func stallOnce(n int64, d time.Duration) loadTarget {
	var calls atomic.Int64
	return funcTarget(func(ctx context.Context) (int, error) {
		if calls.Add(1) == n {
			time.Sleep(d)
		}
		return 200, nil
	})
}

// TestOpenLoopShowsStall checks that a stall of 300 ms in a run of 100 requests
// at 100/s shows in the open-loop p90 (the ~30 requests due during the stall
// wait for it), while the closed loop sees one slow request only: the
// coordinated omission the open loop exists to avoid.
func TestOpenLoopShowsStall(t *testing.T) {
	leakcheck.Check(t)
	const stall = 300 * time.Millisecond
	open, err := runLoad(context.Background(), stallOnce(20, stall), loadPlan{Concurrency: 1, Rate: 100, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := runLoad(context.Background(), stallOnce(20, stall), loadPlan{Concurrency: 1, Requests: 100})
	if err != nil {
		t.Fatal(err)
	}
	if open.Requests < 95 || open.Requests > 101 {
		t.Errorf("open loop sent %d requests at 100/s for 1s; want 100", open.Requests)
	}
	if p := time.Duration(open.Latency.ValueAtPercentile(90)); p < 100*time.Millisecond {
		t.Errorf("open loop p90 = %v; want the stall to show (>= 100ms)", p)
	}
	if m := time.Duration(open.Latency.Max()); m < stall {
		t.Errorf("open loop max = %v; want >= %v", m, stall)
	}
	if p := time.Duration(closed.Latency.ValueAtPercentile(90)); p >= 100*time.Millisecond {
		t.Errorf("closed loop p90 = %v; want only one slow request", p)
	}
	if m := time.Duration(closed.Latency.Max()); m < stall {
		t.Errorf("closed loop max = %v; want the stall, >= %v", m, stall)
	}
	if open.Elapsed < 990*time.Millisecond {
		t.Errorf("open loop Elapsed = %v; want the 1s schedule", open.Elapsed)
	}
}

func TestOpenLoopRequestsAndWarmup(t *testing.T) {
	leakcheck.Check(t)
	var calls atomic.Int64
	tgt := funcTarget(func(ctx context.Context) (int, error) { calls.Add(1); return 200, nil })
	res, err := runLoad(context.Background(), tgt, loadPlan{Concurrency: 2, Rate: 500, Requests: 50, Warmup: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 50 || calls.Load() != 70 {
		t.Errorf("measured %d of %d sent; want 50 of 70 (20 in the 40ms warm-up at 500/s)", res.Requests, calls.Load())
	}
}

func TestRunProgress(t *testing.T) {
	leakcheck.Check(t)
	var last atomic.Value
	var calls atomic.Int64
	tgt := funcTarget(func(ctx context.Context) (int, error) { time.Sleep(time.Millisecond); return 200, nil })
	_, err := runLoad(context.Background(), tgt, loadPlan{Concurrency: 1, Duration: 450 * time.Millisecond, Progress: func(f float64) {
		calls.Add(1)
		last.Store(f)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() < 2 || last.Load().(float64) != 1 {
		t.Errorf("progress called %d times, last with %v; want a few, ending at 1", calls.Load(), last.Load())
	}
}

const helloBody = "Hello, world\n"

func TestTargets(t *testing.T) {
	leakcheck.Check(t)
	var seen atomic.Value
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen.Store(r.Method + " " + r.URL.RequestURI() + " " + string(b) + " " + r.Header.Get("X-Bench"))
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, helloBody)
	})
	hs := httptest.NewServer(app)
	defer hs.Close()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fsrv := &fastcgi.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Method + " " + r.URL.RequestURI() + " " + cgiVar(r, "SCRIPT_FILENAME"))
		io.WriteString(w, helloBody)
	})}
	go fsrv.Serve(l)
	defer fsrv.Close()

	scgiApp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen.Store(r.Method + " " + r.URL.RequestURI() + " " + string(b) + " " + r.Header.Get("X-Bench") + " " +
			cgiVar(r, "PATH_INFO") + " " + cgiVar(r, "SCRIPT_FILENAME"))
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, helloBody)
	})
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ssrv := &scgi.Server{Handler: scgiApp}
	go ssrv.Serve(sl)
	defer ssrv.Close()
	sock := filepath.Join(t.TempDir(), "scgi.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go ssrv.Serve(ul)
	// An SCGI application answering with an HTTP status line, as uwsgi does.
	nph := nphSCGIServer(t, "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n\r\n"+helloBody, &seen)

	dir := testdir.Open(t) // the script runs as www-data when the tests run as root
	script := filepath.Join(dir, "hello.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s %s\\n' \"$REQUEST_METHOD\" \"$QUERY_STRING\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	hdr := http.Header{"X-Bench": {"1"}}
	tests := []struct {
		name, addr string
		req        Request
		wantStatus int
		wantSeen   string
	}{
		{"http", hs.URL + "/x?a=1", Request{Method: "POST", Body: []byte("hi"), Header: hdr}, 200, "POST /x?a=1 hi 1"},
		{"http 404", hs.URL + "/missing", Request{}, 404, "GET /missing  "},
		{"fastcgi", "fastcgi://" + l.Addr().String() + "/app/index.php?q=2", Request{Root: "/srv"}, 200, "GET /app/index.php?q=2 /srv/app/index.php"},
		{"fastcgi script", "fastcgi://" + l.Addr().String() + "/x", Request{Root: "/srv", Script: "/s/hello.php"}, 200, "GET /x /s/hello.php"},
		{"cgi", "cgi:" + script, Request{Path: "/?q=3"}, 200, ""},
		{"scgi", "scgi://" + sl.Addr().String() + "/app/x?q=4", Request{Method: "POST", Body: []byte("hey"), Header: hdr}, 200, "POST /app/x?q=4 hey 1 /app/x "},
		{"scgi 404", "scgi://" + sl.Addr().String() + "/missing", Request{Script: "/s/app.py"}, 404, "GET /missing   /missing /s/app.py"},
		{"scgi+unix", "scgi+unix://" + sock + "?max_conns=1", Request{Path: "/u?q=5"}, 200, "GET /u?q=5   /u "},
		{"scgi status line", "scgi://" + nph + "/n", Request{}, 201, "/n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tgt, err := newTarget(tt.addr, tt.req, 2)
			if err != nil {
				t.Fatal(err)
			}
			defer tgt.Close()
			seen.Store("")
			status, err := tgt.Do(context.Background())
			if err != nil || status != tt.wantStatus {
				t.Fatalf("Do() = %d, %v; want %d", status, err, tt.wantStatus)
			}
			if got := seen.Load().(string); got != tt.wantSeen {
				t.Errorf("application saw %q; want %q", got, tt.wantSeen)
			}
			res, err := runLoad(context.Background(), tgt, loadPlan{Concurrency: 2, Requests: 20})
			if err != nil || res.Requests != 20 {
				t.Fatalf("Run: %d requests, %v; want 20", res.Requests, err)
			}
		})
	}
}

func TestNewTargetErrors(t *testing.T) {
	for _, addr := range []string{"ftp://x", "cgi:relative/script", "cgi:/no/such/script", "fastcgi:///x", "fastcgi://h:1/?max_conns=0",
		"scgi:///x", "scgi+unix://", "scgi://h:1/?max_conns=x", "fastcgi+unix://"} {
		if tgt, err := newTarget(addr, Request{}, 1); err == nil {
			tgt.Close()
			t.Errorf("newTarget(%q) succeeded; want an error", addr)
		}
	}
	if _, err := newTarget("ftp://x", Request{}, 1); !errors.Is(err, errUnsupportedTarget) || !strings.Contains(err.Error(), "scgi://") {
		t.Errorf("ftp target: err = %v; want errUnsupportedTarget listing scgi://", err)
	}
}

// TestSCGITargetFailures checks that an SCGI application that is not there,
// or that answers with something other than a response, counts as a
// failed request, not as an answer.
func TestSCGITargetFailures(t *testing.T) {
	leakcheck.Check(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	var seen atomic.Value
	garbage := nphSCGIServer(t, "no header here", &seen)
	for _, addr := range []string{closed, garbage} {
		tgt, err := newTarget("scgi://"+addr+"/", Request{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if status, err := tgt.Do(context.Background()); err == nil {
			t.Errorf("scgi://%s: Do() = %d, nil; want an error", addr, status)
		}
		tgt.Close()
	}
}

// nphSCGIServer serves raw SCGI on a loopback port until the test ends:
// it stores each request's PATH_INFO in seen and answers with resp as it
// is. It returns the address.
func nphSCGIServer(t *testing.T, resp string, seen *atomic.Value) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			if h, err := scgi.ReadHeader(br, scgi.Limits{}); err == nil {
				seen.Store(h.Vars["PATH_INFO"])
			}
			io.WriteString(c, resp)
			c.Close()
		}
	})
	return l.Addr().String()
}

// cgiVar returns a meta-variable the FastCGI server received.
func cgiVar(r *http.Request, name string) string {
	return cgi.Origin(r.Context())[name]
}
