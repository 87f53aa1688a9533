package spawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/ferrygw/ferry/scgi"
	"github.com/rs/zerolog"
)

// TestMain makes the test binary a worker for the Pool tests when
// FERRY_SPAWN_WORKER names a kind, as std cgi/host_test.go re-execs itself
// as a script: "fastcgi" (poolWorkerMain), "scgi" (ferry's scgi.Serve,
// answering its pid) or "greet" (the Example's).
func TestMain(m *testing.M) {
	switch os.Getenv("FERRY_SPAWN_WORKER") {
	case "fastcgi":
		poolWorkerMain()
		return
	case "scgi":
		scgiWorkerMain()
		return
	case "greet":
		greetWorkerMain()
		return
	}
	os.Exit(m.Run())
}

// listenFD returns the listening socket the pool handed the worker: on
// descriptor 0, or the one FERRY_TEST_LISTEN_FD names.
func listenFD() net.Listener {
	fd := 0
	if v := os.Getenv("FERRY_TEST_LISTEN_FD"); v != "" {
		fd, _ = strconv.Atoi(v)
	}
	ln, err := net.FileListener(os.NewFile(uintptr(fd), "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return ln
}

// scgiWorkerMain serves SCGI on the socket at descriptor 0, answering
// "pid=<pid>".
func scgiWorkerMain() {
	err := scgi.Serve(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid=%d\n", os.Getpid())
	}))
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// greetWorkerMain greets each connection on the socket at descriptor 0,
// and closes it.
func greetWorkerMain() {
	ln := listenFD()
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		io.WriteString(c, "hello from a worker\n")
		c.Close()
	}
}

// poolWorkerMain serves FastCGI on the listening socket (see listenFD) as
// php-cgi does: one connection at a time (a kept connection holds the
// worker), exiting after PHP_FCGI_MAX_REQUESTS requests. It answers
// "pid=<pid>"; /child starts a grandchild and answers its pid; /crash exits with status 3 and writes nothing, /stderr
// writes a marker to stderr, /wait answers after 300 ms.
// FERRY_IGNORE_TERM=1 makes it ignore SIGTERM.
func poolWorkerMain() {
	if os.Getenv("FERRY_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	ln := listenFD()
	maxReqs, _ := strconv.Atoi(os.Getenv(fastcgi.MaxRequestsEnv))
	srv := &fastcgi.Server{MaxConns: 1}
	var served atomic.Int64
	last := new(atomic.Bool)
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/crash":
			os.Exit(3)
		case "/stderr":
			fmt.Fprintf(os.Stderr, "ferry-stderr-marker from %d\n", os.Getpid())
		case "/wait":
			time.Sleep(300 * time.Millisecond)
		case "/child":
			// A child in the worker's process group, answered for the pid.
			cmd := exec.Command("sleep", "60")
			if err := cmd.Start(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "pid=%d\n", cmd.Process.Pid)
			return
		}
		fmt.Fprintf(w, "pid=%d\n", os.Getpid())
		if maxReqs > 0 && served.Add(1) == int64(maxReqs) {
			last.Store(true) // exit once END_REQUEST is out
		}
	})
	err := srv.Serve(&recycleListener{Listener: ln, last: last})
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// recycleListener hands out connections that exit the worker right after
// the END_REQUEST of its last request, as php-cgi does after
// PHP_FCGI_MAX_REQUESTS: no further request is read on a kept connection.
type recycleListener struct {
	net.Listener
	last *atomic.Bool
}

func (l *recycleListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recycleConn{Conn: c, last: l.last}, nil
}

// SyscallConn gives the listening socket, as *net.UnixListener's does:
// the worker's accept loop looks at its queue to leave a connection to a
// free worker.
func (l *recycleListener) SyscallConn() (syscall.RawConn, error) {
	sc, ok := l.Listener.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("spawn test: a %T gives no descriptor", l.Listener)
	}
	return sc.SyscallConn()
}

// recycleConn follows the records written to find END_REQUEST. Writes are
// serialised by the server.
type recycleConn struct {
	net.Conn
	last *atomic.Bool
	hdr  []byte // a partly written record header
	skip int    // content and padding left of the current record
}

// NetConn returns the socket, as *tls.Conn's does: the worker's
// serving.Gate looks there for a request queued unread.
func (c *recycleConn) NetConn() net.Conn { return c.Conn }

func (c *recycleConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	ended := false
	for b := p[:n]; len(b) > 0; {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip, b = c.skip-k, b[k:]
			continue
		}
		k := min(fastcgi.HeaderLen-len(c.hdr), len(b))
		c.hdr, b = append(c.hdr, b[:k]...), b[k:]
		if len(c.hdr) == fastcgi.HeaderLen {
			ended = c.hdr[1] == byte(fastcgi.TypeEndRequest)
			c.skip = int(c.hdr[4])<<8 | int(c.hdr[5]) + int(c.hdr[6])
			c.hdr = c.hdr[:0]
		}
	}
	if ended && c.skip == 0 && c.last.Load() {
		c.Conn.Close()
		os.Exit(0)
	}
	return n, err
}

// poolLog is the shared concurrent log sink.
type poolLog = testlog.Buffer

// newTestPool returns a pool of the test binary as worker, started, and
// stopped at cleanup; and a client for it.
func newTestPool(t *testing.T, p *Pool) (*Pool, *fastcgi.Client, *poolLog) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	lg := &poolLog{}
	logger := zerolog.New(lg)
	p.Path = exe
	p.Env = append(p.Env, "FERRY_SPAWN_WORKER=fastcgi")
	p.Logger = &logger
	if p.RestartBackoff == 0 {
		p.RestartBackoff = 10 * time.Millisecond
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c := &fastcgi.Client{Network: p.Network(), Address: p.Address(), MaxConns: p.Size(), ReadTimeout: 10 * time.Second}
	t.Cleanup(func() {
		c.CloseIdle()
		if err := p.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("pool log:\n%s", lg)
		}
	})
	return p, c, lg
}

// poolGet sends a GET for path and returns the response body.
func poolGet(c *fastcgi.Client, params ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, &fastcgi.Request{Params: params})
	if err != nil {
		return "", err
	}
	defer resp.Stdout.Close()
	out, err := io.ReadAll(resp.Stdout)
	if err != nil {
		return "", err
	}
	_, body, ok := strings.Cut(string(out), "\r\n\r\n")
	if !ok {
		_, body, ok = strings.Cut(string(out), "\n\n")
	}
	if !ok {
		return "", fmt.Errorf("no header block in %q", out)
	}
	return body, nil
}

func poolParams(path string) []string {
	return []string{"REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1", "GATEWAY_INTERFACE=CGI/1.1",
		"REQUEST_URI=" + path, "SCRIPT_NAME=", "PATH_INFO=" + path, "SERVER_NAME=localhost", "SERVER_PORT=80"}
}

// getPID sends a GET for path and returns the pid of the worker that
// answered.
func getPID(c *fastcgi.Client, path string) (int, error) {
	body, err := poolGet(c, poolParams(path)...)
	if err != nil {
		return 0, err
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(body), "pid=")
	if !ok {
		return 0, fmt.Errorf("body %q; want pid=N", body)
	}
	return strconv.Atoi(s)
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPoolWorkersShareSocket(t *testing.T) {
	leakcheck.Check(t)
	p, c, _ := newTestPool(t, &Pool{Workers: 4})
	if got := p.Network(); got != "unix" {
		t.Errorf("Network() = %q; want unix", got)
	}
	waitFor(t, "4 workers", func() bool { return len(p.PIDs()) == 4 })
	if got, want := hitAll(t, c, 4), p.PIDs(); !slices.Equal(got, want) {
		t.Errorf("pids that answered = %v; want the workers %v", got, want)
	}
}

// checkGone fails t if a worker of pids still runs.
func checkGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if leakcheck.Alive(pid) {
			t.Errorf("worker %d outlived Stop", pid)
		}
	}
}

// hitAll sends n slow requests at once and returns the pids that answered,
// sorted. A worker holds one connection at a time, so with n workers each
// answers one.
func hitAll(t *testing.T, c *fastcgi.Client, n int) []int {
	t.Helper()
	pids := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range pids {
		wg.Go(func() { pids[i], errs[i] = getPID(c, "/wait") })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("request: %v", err)
		}
	}
	slices.Sort(pids)
	return pids
}

func TestPoolRestartsCrashedWorker(t *testing.T) {
	leakcheck.Check(t)
	p, c, lg := newTestPool(t, &Pool{Workers: 2})
	waitFor(t, "2 workers", func() bool { return len(p.PIDs()) == 2 })
	before := p.PIDs()

	if _, err := getPID(c, "/crash"); !errors.Is(err, fastcgi.ErrNoEndRequest) {
		t.Fatalf("GET /crash: err = %v; want ErrNoEndRequest", err)
	}
	waitFor(t, "a replacement worker", func() bool {
		now := p.PIDs()
		return len(now) == 2 && !slices.Equal(now, before)
	})
	after := p.PIDs()
	var crashed int
	for _, pid := range before {
		if !slices.Contains(after, pid) {
			crashed = pid
		}
	}
	if crashed == 0 || leakcheck.Alive(crashed) {
		t.Errorf("workers %v -> %v: want one crashed and gone", before, after)
	}
	for range 6 {
		pid, err := getPID(c, "/")
		if err != nil {
			t.Fatalf("request after the crash: %v", err)
		}
		if !slices.Contains(after, pid) {
			t.Errorf("answered by pid %d; want one of %v", pid, after)
		}
	}
	pidField := fmt.Sprintf(`"pid":%d`, crashed)
	if l := lg.Lines("worker exited", pidField, "exit status 3"); len(l) != 1 {
		t.Errorf("log lines on the crash = %q; want one\n%s", l, lg)
	}
	if l := lg.Lines("restarting worker", pidField); len(l) != 1 {
		t.Errorf("log lines on the restart = %q; want one", l)
	}
}

func TestPoolLogsStderr(t *testing.T) {
	leakcheck.Check(t)
	_, c, lg := newTestPool(t, &Pool{Workers: 2})
	pid, err := getPID(c, "/stderr")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stderr line in the log", func() bool {
		return len(lg.Lines("worker stderr", fmt.Sprintf(`"pid":%d`, pid), fmt.Sprintf("ferry-stderr-marker from %d", pid))) == 1
	})
}

func TestPoolMaxRequestsRecycles(t *testing.T) {
	leakcheck.Check(t)
	p, c, lg := newTestPool(t, &Pool{Workers: 2, MaxRequests: 3, MaxRequestsEnv: fastcgi.MaxRequestsEnv})
	seen := map[int]int{}
	for i := range 12 {
		pid, err := getPID(c, "/")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		seen[pid]++
	}
	for pid, n := range seen {
		if n > 3 {
			t.Errorf("worker %d served %d requests; want at most MaxRequests = 3", pid, n)
		}
	}
	if len(seen) < 4 {
		t.Errorf("12 requests went to %d workers; want at least 4", len(seen))
	}
	waitFor(t, "2 workers", func() bool { return len(p.PIDs()) == 2 })
	if l := lg.Lines("worker exited", `"status":"exit status 0"`); len(l) < 2 {
		t.Errorf("clean exits logged: %d; want at least 2", len(l))
	}
}

func TestPoolStop(t *testing.T) {
	leakcheck.Check(t)
	tmp := t.TempDir()
	p, c, _ := newTestPool(t, &Pool{Workers: 3, TempDir: tmp})
	if _, err := getPID(c, "/"); err != nil {
		t.Fatal(err)
	}
	c.CloseIdle()
	waitFor(t, "3 workers", func() bool { return len(p.PIDs()) == 3 })
	pids := p.PIDs()
	sock := p.Address()
	checkDirLocked(t, filepath.Dir(sock), pids)
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, pid := range pids {
		if leakcheck.Alive(pid) || slices.Contains(leakcheck.Children(os.Getpid()), pid) {
			t.Errorf("worker %d outlived Stop", pid)
		}
	}
	if got := p.PIDs(); len(got) != 0 {
		t.Errorf("PIDs() after Stop = %v; want none", got)
	}
	if _, err := os.Stat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket %s after Stop: %v; want it removed", sock, err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("TempDir after Stop holds %v; want nothing", ents)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := p.Start(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Stop: %v; want ErrStopped", err)
	}
}

func TestPoolStopKillsProcessGroup(t *testing.T) {
	leakcheck.Check(t)
	p, c, _ := newTestPool(t, &Pool{Workers: 1})
	child, err := getPID(c, "/child")
	if err != nil {
		t.Fatal(err)
	}
	c.CloseIdle()
	if !leakcheck.Alive(child) {
		t.Fatalf("the worker's child %d is not running", child)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Orphaned, it is reaped by init (or a subreaper): allow a moment.
	waitFor(t, "the worker's child to end", func() bool { return !leakcheck.Alive(child) })
}

func TestPoolStopKillsAfterGrace(t *testing.T) {
	leakcheck.Check(t)
	p, c, _ := newTestPool(t, &Pool{Workers: 2, KillGrace: 300 * time.Millisecond, Env: []string{"FERRY_IGNORE_TERM=1"}})
	// Workers that answered ignore SIGTERM by now.
	pids := hitAll(t, c, 2)
	c.CloseIdle()
	start := time.Now()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("Stop took %v; want the 300ms grace before SIGKILL", d)
	}
	checkGone(t, pids)
}

func TestPoolStopContextEnds(t *testing.T) {
	leakcheck.Check(t)
	p, c, _ := newTestPool(t, &Pool{Workers: 2, Env: []string{"FERRY_IGNORE_TERM=1"}})
	pids := hitAll(t, c, 2)
	c.CloseIdle()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "spawn: ") {
		t.Errorf("Stop = %v; want a spawn: error wrapping DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Stop took %v; want it to kill when ctx ends, not after the 5 s grace", d)
	}
	checkGone(t, pids)
}

func TestPoolStartContextStops(t *testing.T) {
	leakcheck.Check(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{Path: exe, Workers: 2, Env: []string{"FERRY_SPAWN_WORKER=fastcgi"}}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "2 workers", func() bool { return len(p.PIDs()) == 2 })
	pids := p.PIDs()
	cancel()
	waitFor(t, "the workers to stop", func() bool {
		return !slices.ContainsFunc(pids, leakcheck.Alive) && len(p.PIDs()) == 0
	})
	if err := p.Stop(context.Background()); err != nil {
		t.Errorf("Stop after ctx ended: %v", err)
	}
}

func TestPoolStartErrors(t *testing.T) {
	leakcheck.Check(t)
	tmp := t.TempDir()
	p := &Pool{Path: filepath.Join(tmp, "no-such-program"), TempDir: tmp}
	err := p.Start(context.Background())
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "spawn: ") {
		t.Errorf("Start with a missing program = %v; want a spawn: error wrapping fs.ErrNotExist", err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("TempDir after a failed Start holds %v; want nothing", ents)
	}
	if err := (&Pool{}).Start(context.Background()); err == nil {
		t.Error("Start with no Path succeeded")
	}
	for _, p := range []*Pool{
		{Path: "/bin/true", MaxRequests: 5},
		{Path: "/bin/true", ListenFD: 1},
		{Path: "/bin/true", ListenFD: 2},
		{Path: "/bin/true", ListenFD: -1},
	} {
		if err := p.Start(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "spawn: ") {
			p.Stop(context.Background())
			t.Errorf("Start with MaxRequests %d, ListenFD %d = %v; want a spawn: error", p.MaxRequests, p.ListenFD, err)
		}
	}
	long := &Pool{Path: "/bin/true", TempDir: filepath.Join(tmp, strings.Repeat("d", 120))}
	os.MkdirAll(long.TempDir, 0o700)
	if err := long.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "longer than") {
		long.Stop(context.Background())
		t.Errorf("Start with a long socket path = %v; want an error", err)
	}
}

func TestPoolBackoff(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {5, 16 * time.Second}, {6, 30 * time.Second}, {100, 30 * time.Second}} {
		if got := backoff(time.Second, tt.n); got != tt.want {
			t.Errorf("backoff(1s, %d) = %v; want %v", tt.n, got, tt.want)
		}
	}
}

func TestPoolEnv(t *testing.T) {
	t.Setenv("PATH", "/ferry/bin")
	p := &Pool{Env: []string{"A=1"}, MaxRequests: 7, MaxRequestsEnv: "PHP_FCGI_MAX_REQUESTS"}
	if got, want := p.buildEnv(), []string{"A=1", "PATH=/ferry/bin", "PHP_FCGI_MAX_REQUESTS=7"}; !slices.Equal(got, want) {
		t.Errorf("env = %q; want %q", got, want)
	}
	p = &Pool{Env: []string{"PATH=/x", "PHP_FCGI_MAX_REQUESTS=2"}, MaxRequests: 7, MaxRequestsEnv: "PHP_FCGI_MAX_REQUESTS"}
	if got, want := p.buildEnv(), []string{"PATH=/x", "PHP_FCGI_MAX_REQUESTS=2"}; !slices.Equal(got, want) {
		t.Errorf("env = %q; want %q", got, want)
	}
}

// TestPoolPHPCGI runs Debian's php-cgi as the workers, recycled every 5
// requests by PHP_FCGI_MAX_REQUESTS.
func TestPoolPHPCGI(t *testing.T) {
	phpCGI := peerstest.Need(t, "php-cgi")["php-cgi"]
	leakcheck.Check(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "hello.php")
	if err := os.WriteFile(script, []byte(`<?php echo "hello from php-cgi ", getmypid(), "\n";`), 0o644); err != nil {
		t.Fatal(err)
	}
	lg := &poolLog{}
	logger := zerolog.New(lg)
	p := &Pool{
		Path:           phpCGI,
		Workers:        2,
		Env:            []string{"PHP_FCGI_CHILDREN=0"},
		MaxRequests:    5,
		MaxRequestsEnv: fastcgi.MaxRequestsEnv,
		RestartBackoff: 10 * time.Millisecond,
		Logger:         &logger,
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := &fastcgi.Client{Network: p.Network(), Address: p.Address(), MaxConns: 2, ReadTimeout: 10 * time.Second}
	defer func() {
		c.CloseIdle()
		if err := p.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("pool log:\n%s", lg)
		}
	}()
	params := []string{"SCRIPT_FILENAME=" + script, "SCRIPT_NAME=/hello.php", "REQUEST_METHOD=GET",
		"SERVER_PROTOCOL=HTTP/1.1", "GATEWAY_INTERFACE=CGI/1.1", "REQUEST_URI=/hello.php",
		"SERVER_NAME=localhost", "SERVER_PORT=80", "DOCUMENT_ROOT=" + dir}
	seen := map[string]int{}
	for i := range 12 {
		body, err := poolGet(c, params...)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		pid, ok := strings.CutPrefix(strings.TrimSpace(body), "hello from php-cgi ")
		if !ok {
			t.Fatalf("request %d: body %q; want the script's output", i, body)
		}
		seen[pid]++
	}
	if len(seen) < 3 {
		t.Errorf("12 requests went to %d php-cgi processes (%v); want at least 3 with PHP_FCGI_MAX_REQUESTS=5", len(seen), seen)
	}
}

func TestPoolScalesOnDemand(t *testing.T) {
	leakcheck.Check(t)
	p, _, lg := newTestPool(t, &Pool{Workers: 3, MinWorkers: 1, IdleTimeout: 400 * time.Millisecond})
	// A connection per request, as the bridge does for spawned workers.
	c := &fastcgi.Client{Network: p.Network(), Address: p.Address(), MaxConns: 3, NoKeepConn: true, ReadTimeout: 10 * time.Second}
	if got := len(p.PIDs()); got != 1 {
		t.Fatalf("an idle on-demand pool runs %d workers; want MinWorkers, 1", got)
	}
	var wg sync.WaitGroup
	pids := make(chan int, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := p.Busy()
			defer done()
			pid, err := getPID(c, "/wait")
			if err != nil {
				t.Error(err)
			}
			pids <- pid
		}()
	}
	waitFor(t, "3 workers under load", func() bool { return len(p.PIDs()) == 3 })
	wg.Wait()
	close(pids)
	for pid := range pids {
		if pid == 0 {
			t.Error("a request under load failed")
		}
	}
	// A worker leaves PIDs when reaped, and its supervisor logs the stop
	// once its stderr is collected: wait for both.
	waitFor(t, "the idle workers to stop", func() bool {
		return len(p.PIDs()) == 1 && len(lg.Lines("idle worker stopped")) >= 2
	})
	if got := len(lg.Lines("idle worker stopped")); got != 2 {
		t.Errorf("%d idle workers stopped; want 2", got)
	}
	if got := lg.Lines("restarting worker"); len(got) != 0 {
		t.Errorf("idle workers were replaced: %v", got)
	}
	// It stays at MinWorkers and still serves.
	time.Sleep(time.Second)
	if got := len(p.PIDs()); got != 1 {
		t.Errorf("%d workers after more idle time; want 1", got)
	}
	if _, err := getPID(c, "/"); err != nil {
		t.Errorf("after scaling down: %v", err)
	}
}

// TestPoolListenFD hands the socket on descriptor 3, stdin left on
// /dev/null, to workers told the number in their environment.
func TestPoolListenFD(t *testing.T) {
	leakcheck.Check(t)
	p, c, _ := newTestPool(t, &Pool{Workers: 2, ListenFD: 3, Env: []string{"FERRY_TEST_LISTEN_FD=3"}})
	waitFor(t, "2 workers", func() bool { return len(p.PIDs()) == 2 })
	if got, want := hitAll(t, c, 2), p.PIDs(); !slices.Equal(got, want) {
		t.Errorf("pids that answered = %v; want the workers %v", got, want)
	}
	for _, pid := range p.PIDs() {
		if fd0, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", pid)); err == nil && fd0 != os.DevNull {
			t.Errorf("worker %d has %s on descriptor 0; want %s", pid, fd0, os.DevNull)
		}
	}
}

// TestPoolSCGIWorkers runs ferry's scgi.Serve as the workers: the pool
// knows nothing of FastCGI. The request is written by hand (SCGI protocol
// § 2: a netstring of headers, CONTENT_LENGTH first, then the body).
func TestPoolSCGIWorkers(t *testing.T) {
	leakcheck.Check(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &Pool{Path: exe, Workers: 2, Env: []string{"FERRY_SPAWN_WORKER=scgi"}, RestartBackoff: 10 * time.Millisecond}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	waitFor(t, "2 workers", func() bool { return len(p.PIDs()) == 2 })
	header := "CONTENT_LENGTH\x000\x00SCGI\x001\x00REQUEST_METHOD\x00GET\x00REQUEST_URI\x00/\x00" +
		"SERVER_PROTOCOL\x00HTTP/1.1\x00SERVER_NAME\x00localhost\x00SERVER_PORT\x0080\x00"
	seen := map[int]bool{}
	for i := range 20 {
		c, err := net.Dial(p.Network(), p.Address())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "%d:%s,", len(header), header)
		out, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, body, _ := strings.Cut(string(out), "\r\n\r\n")
		s, ok := strings.CutPrefix(strings.TrimSpace(body), "pid=")
		pid, err := strconv.Atoi(s)
		if !ok || err != nil || !slices.Contains(p.PIDs(), pid) {
			t.Fatalf("request %d: answer %q; want pid=N from one of the workers %v", i, out, p.PIDs())
		}
		seen[pid] = true
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v", err)
	}
	checkGone(t, slices.Collect(maps.Keys(seen)))
}

// checkDirLocked checks that the socket's directory dir holds a lock
// file that this process holds locked (package ownertemp), so a ferry in
// another PID namespace does not take the directory for a dead one's,
// and that none of the workers pids has it open.
func checkDirLocked(t *testing.T, dir string, pids []int) {
	t.Helper()
	lock := filepath.Join(dir, ".owner.lock")
	f, err := os.Open(lock)
	if err != nil {
		t.Fatalf("socket directory's lock file: %v", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Errorf("taking %s's lock: %v; want EWOULDBLOCK, held by the pool", lock, err)
	}
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if to, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); to == lock {
				t.Errorf("worker %d has the lock file open (fd %s)", pid, fd.Name())
			}
		}
	}
}
