package bridge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/ferrygw/ferry/spawn"
	"github.com/rs/zerolog"
)

// reloadWorkers holds, per test, the copy of this test binary its
// fastcgi+exec pools run (testdir.Executable: the workers run as www-data
// when the test runs as root). One path per test, so that a configuration
// built twice names the same pool.
var reloadWorkers sync.Map // testing.TB -> string

// reloadWorker returns t's copy of this test binary.
func reloadWorker(t testing.TB) string {
	if w, ok := reloadWorkers.Load(t); ok {
		return w.(string)
	}
	w := testdir.Executable(t)
	reloadWorkers.Store(t, w)
	t.Cleanup(func() { reloadWorkers.Delete(t) })
	return w
}

// reloadConfig is a configuration of TestReload: fronts, a cgi-bin
// directory, and a pool of matrix workers (this test binary).
func reloadConfig(t *testing.T, logs io.Writer, listen []string, cgiDir string, workers string) Config {
	t.Helper()
	self := reloadWorker(t)
	log := zerolog.New(logs)
	cfg := Config{Logger: &log, Settings: Settings{Env: []string{"FERRY_TEST_MATRIX_WORKER=1"}}}
	for _, l := range listen {
		a, err := ParseAddress(l)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listen = append(cfg.Listen, a)
	}
	for _, m := range []string{"/cgi/=cgi:" + cgiDir, matrixPrefix + "=fastcgi+exec:" + self + "?workers=" + workers} {
		mt, err := ParseMount(m)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Mounts = append(cfg.Mounts, mt)
	}
	return cfg
}

// runningPool returns the running server's worker pool.
func runningPool(s *Server) *spawn.Pool {
	return s.run.Load().cur.Load().pools[0].procs
}

// runReloadable runs s until the test ends or stop is called (once is
// enough; it fails the test if Run fails), and returns the address of its
// first front.
func runReloadable(t *testing.T, s *Server) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	addrc := make(chan string, 1)
	go func() { done <- s.Run(ctx, func(ls []net.Listener) { addrc <- ls[0].Addr().String() }) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case addr = <-addrc:
	case err := <-done:
		once.Do(cancel) // Run is over: stop must not wait for it again
		t.Fatalf("Run: %v", err)
	}
	return addr, stop
}

// getBody GETs url and returns the body.
func getBody(t *testing.T, url string) string {
	t.Helper()
	_, body := get(t, "GET", url, nil)
	return body
}

// TestReload reloads a running server: a mount switches at once while a
// request in progress finishes where it started, a pool whose settings
// stay is kept (same workers), one whose settings change is replaced once
// the requests that use it are over, fronts come and go, a front's
// protocol changes on the same socket, and a configuration that fails to
// build changes nothing.
func TestReload(t *testing.T) {
	leakcheck.Check(t)
	dirA, dirB, state := testdir.Open(t), testdir.Open(t), testdir.Open(t)
	writeExec(t, filepath.Join(dirA, "who.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\na'\n")
	writeExec(t, filepath.Join(dirB, "who.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nb'\n")
	logs := &testlog.Buffer{}
	main := "http://127.0.0.1:0"
	s, err := New(reloadConfig(t, logs, []string{main}, dirA, "2"))
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := runReloadable(t, s)
	base := "http://" + addr
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	}()
	if got := getBody(t, base+"/cgi/who.sh"); got != "a" {
		t.Fatalf("before any reload: %q", got)
	}

	// A request in progress on the first pool.
	mark := filepath.Join(state, "mark")
	resp, err := http.Get(base + matrixPrefix + "/stream?mark=" + mark)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "first\n" {
		t.Fatalf("stream: %q, %v", line, err)
	}
	firstPool := runningPool(s)
	first := firstPool.PIDs()

	// The mount changes, the pool stays.
	if err := s.Reload(reloadConfig(t, logs, []string{main}, dirB, "2")); err != nil {
		t.Fatal(err)
	}
	if got := getBody(t, base+"/cgi/who.sh"); got != "b" {
		t.Errorf("after the reload: %q; want b", got)
	}
	if runningPool(s) != firstPool {
		t.Errorf("a reload that kept the pool's settings replaced the pool")
	}
	if !strings.Contains(logs.String(), `"mounts_changed":["/cgi/"],"pools_kept":1`) {
		t.Errorf("no log line for the reload with the mount changed and the pool kept:\n%s", logs)
	}

	// A front added, the pool's settings changed: a new pool; the old
	// one serves the request in progress, which started two
	// configurations ago, until it is over.
	extra := deadAddr(t)
	if err := s.Reload(reloadConfig(t, logs, []string{main, "http://" + extra}, dirB, "3")); err != nil {
		t.Fatal(err)
	}
	secondPool := runningPool(s)
	if secondPool == firstPool {
		t.Errorf("a reload that changed the pool's settings kept the pool")
	}
	if got := getBody(t, "http://"+extra+"/cgi/who.sh"); got != "b" {
		t.Errorf("the added front: %q", got)
	}
	if got := getBody(t, base+matrixPrefix+"/status"); got != "created" {
		t.Errorf("the new pool: %q", got)
	}
	time.Sleep(200 * time.Millisecond)
	for _, p := range first {
		if !leakcheck.Alive(p) {
			t.Errorf("old worker %d stopped while a request it serves is in progress", p)
		}
	}
	if err := os.WriteFile(mark, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); string(rest) != "second\n" || err != nil {
		t.Errorf("the request in progress across two reloads ended with %q, %v; want second", rest, err)
	}
	resp.Body.Close()
	for deadline := time.Now().Add(10 * time.Second); slices.ContainsFunc(first, leakcheck.Alive); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("old workers %v still run once their requests are over", first)
		}
	}

	// A configuration that cannot be built changes nothing.
	err = s.Reload(reloadConfig(t, logs, []string{main}, filepath.Join(dirB, "nowhere"), "2"))
	if err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("Reload with a missing cgi-bin: %v; want an error naming it", err)
	}
	if got := getBody(t, "http://"+extra+"/cgi/who.sh"); got != "b" {
		t.Errorf("after a failed reload, the front it would remove: %q", got)
	}
	if runningPool(s) != secondPool {
		t.Errorf("a failed reload replaced the pool")
	}

	// The front removed: refused at once. The main front speaks FastCGI
	// on the same socket now.
	fcgiMain := "fastcgi://127.0.0.1:0"
	if err := s.Reload(reloadConfig(t, logs, []string{fcgiMain}, dirB, "3")); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", extra); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("the removed front: %v; want a refused connection", err)
	}
	fc := &fastcgi.Client{Network: "tcp", Address: strings.TrimPrefix(base, "http://"), MaxConns: 1}
	w := httptest.NewRecorder()
	fastcgi.NewHandler(fc, nil, cgi.Settings{}).ServeHTTP(w, httptest.NewRequest("GET", "/cgi/who.sh", nil))
	fc.CloseIdle()
	if w.Code != 200 || w.Body.String() != "b" {
		t.Errorf("FastCGI on the socket the HTTP front had: %d %q", w.Code, w.Body)
	}
	if runningPool(s) != secondPool {
		t.Errorf("a reload that kept the pool's settings replaced the pool")
	}
	second := secondPool.PIDs()
	http.DefaultClient.CloseIdleConnections()
	stop()
	for _, p := range second {
		if leakcheck.Alive(p) {
			t.Errorf("worker %d outlived Run", p)
		}
	}
}

// TestReloadNotRunning: Reload and Upgrade need Run.
func TestReloadNotRunning(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(Config{}); err == nil {
		t.Error("Reload before Run: no error")
	}
	if err := s.Upgrade(context.Background(), nil); err == nil {
		t.Error("Upgrade before Run: no error")
	}
}

// TestRequestsGate: once closed, no request enters, and wait returns when
// those in have left.
func TestRequestsGate(t *testing.T) {
	var q requests
	if !q.enter() {
		t.Fatal("enter on an open gate failed")
	}
	q.close()
	if q.enter() {
		t.Error("enter after close succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := q.wait(ctx); err == nil {
		t.Error("wait returned with a request in")
	}
	q.leave()
	if err := q.wait(context.Background()); err != nil {
		t.Errorf("wait: %v", err)
	}
}

// TestListenerFileKeepsNonblocking: the descriptor handed to a new process
// must leave the listener's socket non-blocking, or its Accept would hold
// a thread and ignore Close. exec asks a File for its descriptor with Fd;
// so does this test.
func TestListenerFileKeepsNonblocking(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := listenerFile(l)
	if err != nil {
		t.Fatal(err)
	}
	f.Fd()
	accepted := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	time.Sleep(50 * time.Millisecond) // in Accept
	l.Close()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Accept still blocks 5s after Close: the socket went blocking")
	}
	// The copy still listens: the socket outlives l.
	dl, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	c, err := net.Dial("tcp", dl.Addr().String())
	if err != nil {
		t.Fatalf("the copy of a closed listener's socket: %v", err)
	}
	c.Close()
}

// fcgiRecord encodes one FastCGI record of request 1 (FastCGI 1.0 § 3.3).
func fcgiRecord(typ byte, content []byte) []byte {
	return append([]byte{1, typ, 0, 1, byte(len(content) >> 8), byte(len(content)), 0, 0}, content...)
}

// fcgiGetRecords are the records of a GET of uri, name-value pairs
// shorter than 128 bytes (§ 3.4).
func fcgiGetRecords(uri string) []byte {
	var params []byte
	for _, kv := range [][2]string{{"REQUEST_METHOD", "GET"}, {"REQUEST_URI", uri}, {"SERVER_PROTOCOL", "HTTP/1.1"},
		{"SERVER_NAME", "localhost"}, {"SERVER_PORT", "80"}} {
		params = append(append(append(params, byte(len(kv[0])), byte(len(kv[1]))), kv[0]...), kv[1]...)
	}
	var b []byte
	b = append(b, fcgiRecord(1, []byte{0, 1, 0, 0, 0, 0, 0, 0})...) // BEGIN_REQUEST, responder, no keep-conn
	b = append(b, fcgiRecord(4, params)...)                         // PARAMS
	b = append(b, fcgiRecord(4, nil)...)
	return append(b, fcgiRecord(5, nil)...) // empty STDIN
}

// fcgiStdout reads records from c until END_REQUEST and returns STDOUT.
func fcgiStdout(c net.Conn) (string, error) {
	var out []byte
	br := bufio.NewReader(c)
	for {
		var h [8]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return string(out), err
		}
		body := make([]byte, int(h[4])<<8|int(h[5])+int(h[6]))
		if _, err := io.ReadFull(br, body); err != nil {
			return string(out), err
		}
		switch h[1] {
		case 6: // STDOUT
			out = append(out, body[:int(h[4])<<8|int(h[5])]...)
		case 3: // END_REQUEST
			return string(out), nil
		}
	}
}

// TestReloadFastCGILateRequest: a connection a FastCGI front accepted
// just before a reload removed it, whose web server sends the request a
// moment later, is answered, not closed as idle.
func TestReloadFastCGILateRequest(t *testing.T) {
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "who.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nlate'\n")
	mount, err := ParseMount("/cgi/=cgi:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	log := zerolog.New(logs)
	cfg := func(listen ...string) Config {
		c := Config{Logger: &log, Mounts: []Mount{mount}}
		for _, l := range listen {
			a, err := ParseAddress(l)
			if err != nil {
				t.Fatal(err)
			}
			c.Listen = append(c.Listen, a)
		}
		return c
	}
	extra := deadAddr(t)
	s, err := New(cfg("http://127.0.0.1:0", "fastcgi://"+extra))
	if err != nil {
		t.Fatal(err)
	}
	runReloadable(t, s)
	c, err := net.Dial("tcp", extra)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // accepted by the front
	if err := s.Reload(cfg("http://127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the web server is slow to send
	if _, err := c.Write(fcgiGetRecords("/cgi/who.sh")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	out, err := fcgiStdout(c)
	if err != nil || !strings.HasSuffix(out, "late") {
		t.Errorf("the request on a connection accepted before the reload: %q, %v; want it answered", out, err)
	}
}

// BenchmarkDispatch measures what a running server adds to each request
// to hand it to the configuration in force and count it there.
func BenchmarkDispatch(b *testing.B) {
	s := &Server{handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	r := newRunner(s)
	defer r.stopScripts()
	req := httptest.NewRequest("GET", "/", nil)
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.handler.ServeHTTP(nil, req)
			}
		})
	})
	b.Run("runner", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r.ServeHTTP(nil, req)
			}
		})
	})
}

// TestReloadPIDFile: a reload that names another pid file writes it and
// removes the old one; Run removes the last when it stops.
func TestReloadPIDFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.pid"), filepath.Join(dir, "b.pid")
	listen, err := ParseAddress("http://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Listen: []Address{listen}, PIDFile: a})
	if err != nil {
		t.Fatal(err)
	}
	_, stop := runReloadable(t, s)
	want := strconv.Itoa(os.Getpid()) + "\n"
	if got, err := os.ReadFile(a); string(got) != want {
		t.Errorf("%s: %q, %v; want %q", a, got, err, want)
	}
	if err := s.Reload(Config{Listen: []Address{listen}, PIDFile: b}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(b); string(got) != want {
		t.Errorf("%s after the reload: %q, %v; want %q", b, got, err, want)
	}
	if _, err := os.Stat(a); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after the reload: %v; want it removed", a, err)
	}
	stop()
	if _, err := os.Stat(b); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after Run: %v; want it removed", b, err)
	}
}

// TestReloadCPUs: Config.CPUs sets GOMAXPROCS while Run serves, a reload
// changes it (and says so in its line), one to zero gives back the value
// Run found, and so does Run's return.
func TestReloadCPUs(t *testing.T) {
	found := runtime.GOMAXPROCS(0)
	listen, err := ParseAddress("http://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	logger := zerolog.New(logs)
	cfg := func(n int) Config { return Config{Listen: []Address{listen}, CPUs: n, Logger: &logger} }
	s, err := New(cfg(1))
	if err != nil {
		t.Fatal(err)
	}
	_, stop := runReloadable(t, s)
	check := func(when string, want int) {
		t.Helper()
		if got := runtime.GOMAXPROCS(0); got != want {
			t.Errorf("GOMAXPROCS %s: %d; want %d", when, got, want)
		}
	}
	check("while serving with cpus = 1", 1)
	for _, step := range []struct {
		cpus, want int
		line       string
	}{
		{found + 1, found + 1, fmt.Sprintf(`"cpus":"1 -> %d"`, found+1)},
		{found + 1, found + 1, "nothing changed"},
		{0, found, fmt.Sprintf(`"cpus":"%d -> 0"`, found+1)},
		{1, 1, `"cpus":"0 -> 1"`},
	} {
		if err := s.Reload(cfg(step.cpus)); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("after a reload to cpus = %d", step.cpus), step.want)
		lines := logs.Lines("configuration reloaded")
		if len(lines) == 0 || !strings.Contains(lines[len(lines)-1], step.line) {
			t.Errorf("reload to cpus = %d logged %q; want %s in its line", step.cpus, lines, step.line)
		}
	}
	stop()
	check("after Run returned", found)
}

// TestReloadSaysWhatChanged: a reload that changes a key of the top level
// or [log] that no other field of its line reports (shutdown_timeout,
// pid_file, root_symlinks, log.level, log.format) names it, old and new;
// it said "nothing changed", though the pid file moved.
func TestReloadSaysWhatChanged(t *testing.T) {
	dir := t.TempDir()
	listen, err := ParseAddress("http://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	logger := zerolog.New(logs)
	cfg := DefaultConfig()
	cfg.Listen, cfg.Logger = []Address{listen}, &logger
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, stop := runReloadable(t, s)
	defer stop()
	for _, step := range []struct{ table, key, val, want string }{
		{"", "shutdown_timeout", "5s", `"settings_changed":["shutdown_timeout: \"30s\" -> \"5s\""]`},
		{"", "pid_file", filepath.Join(dir, "ferry.pid"), `"settings_changed":["pid_file: \"\" -> \"` + filepath.Join(dir, "ferry.pid") + `\""]`},
		{"", "root_symlinks", "never", `"settings_changed":["root_symlinks: \"owner-match\" -> \"never\""]`},
		{"log", "level", "debug", `"settings_changed":["log.level: \"info\" -> \"debug\""]`},
		{"log", "format", "json", `"settings_changed":["log.format: \"auto\" -> \"json\""]`},
		{"log", "format", "json", "nothing changed"},
	} {
		i := slices.IndexFunc(Keys(), func(k Key) bool { return k.Table == step.table && k.Name == step.key })
		if i < 0 {
			t.Fatalf("no key %s.%s", step.table, step.key)
		}
		if err := Keys()[i].Set(&cfg, step.val); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		lines := logs.Lines("configuration reloaded")
		if len(lines) == 0 || !strings.Contains(lines[len(lines)-1], step.want) {
			t.Errorf("reload to %s = %q logged %q; want %s in its line", step.key, step.val, lines[len(lines)-1], step.want)
		}
	}
}
