package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/procfs"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
)

// fcgiWorkerMain is a FastCGI worker of a fastcgi+exec: mount, accepting
// on descriptor 0: it answers "fcgi VARIANT", VARIANT from the environment
// its pool gave it, so that a response says which pool served it.
func fcgiWorkerMain() int {
	err := fastcgi.Serve(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "fcgi %s\n", os.Getenv("VARIANT"))
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// reloadSite is what the reload tests serve, in two configurations, "a"
// and "b", that differ in a mount (/cgi-bin/ is another directory), a
// front (each has one the other lacks), and a worker pool's settings
// (workers and environment), so that every response says which
// configuration served it. Both listen on stable (HTTP) and sock (FastCGI
// on a unix socket, whose mode differs), serve a static root, and have an
// admin listener on admin, whose /status reports the one in force.
type reloadSite struct {
	dir     string
	file    string // the configuration file ferry serve is given
	pidFile string
	sock    string
	admin   string            // host:port of the admin listener
	stable  string            // host:port of the HTTP front both have
	only    map[string]string // variant -> host:port of the front only it has
	workers map[string]int    // variant -> workers of its pool
	self    string            // this test binary: the FastCGI worker
}

func newReloadSite(tb testing.TB) *reloadSite {
	tb.Helper()
	self := testdir.Executable(tb)
	dir := testdir.Open(tb)
	s := &reloadSite{dir: dir, file: filepath.Join(dir, "ferry.toml"), pidFile: filepath.Join(dir, "ferry.pid"),
		sock: filepath.Join(dir, "f.sock"), only: map[string]string{}, workers: map[string]int{"a": 2, "b": 3}, self: self}
	ports := make([]string, 4)
	for i := range ports {
		port, err := peers.FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		ports[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	s.stable, s.only["a"], s.only["b"], s.admin = ports[0], ports[1], ports[2], ports[3]
	for _, v := range []string{"a", "b"} {
		mustMkdir(tb, filepath.Join(dir, "cgi-"+v))
		mustWrite(tb, filepath.Join(dir, "cgi-"+v, "who.sh"), 0o755, "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\ncgi "+v+"\\n'\n")
	}
	mustMkdir(tb, filepath.Join(dir, "root", "fcgi"))
	mustWrite(tb, filepath.Join(dir, "root", "index.html"), 0o644, "static\n")
	mustWrite(tb, filepath.Join(dir, "root", "fcgi", "app.php"), 0o644, "the FastCGI worker answers for this script\n")
	s.use(tb, "a")
	return s
}

// start runs ferry serve --config on the site, in variant a, and when
// check, checks that it is in force; the reloadRun checks each reload's
// effects too.
func (s *reloadSite) start(tb testing.TB, check bool) *reloadRun {
	tb.Helper()
	g, pid := startGroupFerry(tb, s.pidFile, "--config", s.file)
	rr := &reloadRun{tb: tb, site: s, ferry: g, pid: pid, cur: "a", workers: map[int]bool{}, check: check}
	if check {
		rr.probe = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		tb.Cleanup(rr.probe.CloseIdleConnections)
		rr.checkInForce(false, true)
	}
	return rr
}

func mustMkdir(tb testing.TB, dir string) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
}

func mustWrite(tb testing.TB, path string, mode os.FileMode, body string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		tb.Fatal(err)
	}
}

// config is the text of configuration variant v.
func (s *reloadSite) config(v string) string {
	mode := map[string]string{"a": "0600", "b": "0660"}[v]
	return fmt.Sprintf(`listen = ["http://%s", "http://%s", "fastcgi+unix://%s?mode=%s"]
root = %q
pid_file = %q
admin = "http://%s"

[log]
access_log = false

[mount."/cgi-bin/"]
backend = "cgi:%s"

[mount."/fcgi/"]
backend = "fastcgi+exec:%s?workers=%d"
env = { FERRY_TEST_FCGI_WORKER = "1", VARIANT = %q }
`, s.stable, s.only[v], s.sock, mode, filepath.Join(s.dir, "root"), s.pidFile, s.admin, filepath.Join(s.dir, "cgi-"+v), s.self, s.workers[v], v)
}

// use makes variant v the configuration file's content, at once (a
// rename), as an administrator's editor or deployment tool would.
func (s *reloadSite) use(tb testing.TB, v string) {
	tb.Helper()
	tmp := s.file + ".new"
	mustWrite(tb, tmp, 0o644, s.config(v))
	if err := os.Rename(tmp, s.file); err != nil {
		tb.Fatal(err)
	}
}

// groupFerry is "ferry serve" in a process group of its own, which an
// upgrade may hand over to another process of the same group.
type groupFerry struct {
	pgid int
	logs *testlog.Buffer
	done chan struct{} // closed once every process writing its log has exited
}

// startGroupFerry runs "ferry serve --log-format json args..." and waits
// for the pid file, which holds the pid it returns.
func startGroupFerry(tb testing.TB, pidFile string, args ...string) (*groupFerry, int) {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{"serve", "--log-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "FERRY_TEST_MAIN=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	g := &groupFerry{logs: &testlog.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = g.logs, g.logs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	g.pgid = cmd.Process.Pid
	go func() {
		cmd.Wait() // returns once the log pipe is closed: by the last process of an upgrade
		close(g.done)
	}()
	tb.Cleanup(func() {
		_ = syscall.Kill(-g.pgid, syscall.SIGKILL) // ESRCH: it is over already
		select {
		case <-g.done:
		case <-time.After(10 * time.Second):
			tb.Errorf("ferry's log pipe still open 10s after SIGKILL to its group")
		}
	})
	return g, g.waitPID(tb, pidFile, 0)
}

// waitPID waits until the pid file holds a pid other than not, and
// returns it.
func (g *groupFerry) waitPID(tb testing.TB, pidFile string, not int) int {
	tb.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case <-g.done:
			tb.Fatalf("ferry exited:\n%s", g.logs)
		default:
		}
		b, err := os.ReadFile(pidFile)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid != not {
			return pid
		}
	}
	tb.Fatalf("%s never named a new ferry:\n%s", pidFile, g.logs)
	return 0
}

// waitLines waits until the log has n lines with msg.
func (g *groupFerry) waitLines(tb testing.TB, msg string, n int) {
	tb.Helper()
	for deadline := time.Now().Add(30 * time.Second); len(g.logs.Lines(msg)) < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("the log never had %d lines with %q:\n%s", n, msg, g.logs)
		}
	}
}

// workerPIDs returns the children of pid that run this test binary: the
// workers of its pool (the scripts it runs are shells).
func workerPIDs(pid int, self string) []int {
	var pids []int
	for _, c := range leakcheck.Children(pid) {
		if exe, err := os.Readlink("/proc/" + strconv.Itoa(c) + "/exe"); err == nil && exe == self && leakcheck.Alive(c) {
			pids = append(pids, c)
		}
	}
	return pids
}

// load keeps requests going to a ferry from several goroutines, over
// kept-alive connections and over a new connection per request, and counts
// what they got.
type load struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	clients []*http.Client
	served  atomic.Int64
	failed  atomic.Int64
	refused atomic.Int64
	admin   atomic.Int64 // answers of the admin listener (watchAdmin)
	mu      sync.Mutex   // guards errs
	errs    []string     // the first failures
}

// reloadTargets are the paths the load requests, and the bodies each may
// answer.
var reloadTargets = []struct {
	path string
	want []string
}{
	{"/cgi-bin/who.sh", []string{"cgi a\n", "cgi b\n"}},
	{"/fcgi/app.php", []string{"fcgi a\n", "fcgi b\n"}},
	{"/index.html", []string{"static\n"}},
}

func startLoad(base string, keepAlive, fresh int) *load {
	ld := &load{stop: make(chan struct{})}
	for i := range keepAlive + fresh {
		tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableKeepAlives: i >= keepAlive}
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		ld.clients = append(ld.clients, c)
		ld.wg.Add(1)
		go ld.run(c, base, i)
	}
	return ld
}

func (ld *load) run(c *http.Client, base string, i int) {
	defer ld.wg.Done()
	for n := i; ; n++ {
		select {
		case <-ld.stop:
			return
		default:
		}
		tg := reloadTargets[n%len(reloadTargets)]
		resp, err := c.Get(base + tg.path)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				ld.refused.Add(1)
			}
			ld.fail(fmt.Sprintf("GET %s: %v", tg.path, err))
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			ld.fail(fmt.Sprintf("GET %s: reading the body: %v", tg.path, err))
		case resp.StatusCode != 200 || !slices.Contains(tg.want, string(b)):
			ld.fail(fmt.Sprintf("GET %s: %d %q", tg.path, resp.StatusCode, b))
		default:
			ld.served.Add(1)
		}
	}
}

// watchAdmin GETs url, the admin listener's /healthz, on a new
// connection every few milliseconds until the load ends: an answer other
// than 200 "ok" fails as a request of the load does.
func (ld *load) watchAdmin(url string) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	ld.clients = append(ld.clients, c)
	ld.wg.Add(1)
	go func() {
		defer ld.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ld.stop:
				return
			case <-t.C:
			}
			resp, err := c.Get(url)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					ld.refused.Add(1)
				}
				ld.fail(fmt.Sprintf("admin: %v", err))
				continue
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || string(b) != "ok\n" {
				ld.fail(fmt.Sprintf("admin: %d %q %v", resp.StatusCode, b, err))
				continue
			}
			ld.admin.Add(1)
		}
	}()
}

func (ld *load) fail(msg string) {
	ld.failed.Add(1)
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if len(ld.errs) < 10 {
		ld.errs = append(ld.errs, msg)
	}
}

// end stops the load and closes its connections.
func (ld *load) end() {
	close(ld.stop)
	ld.wg.Wait()
	for _, c := range ld.clients {
		c.CloseIdleConnections()
	}
}

// getReused GETs url with c, and says whether the connection was one kept
// from an earlier request.
func getReused(c *http.Client, url string) (string, bool, error) {
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
	if err != nil {
		return "", false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), reused, err
}

// fcgiGet sends GET uri to the FastCGI front on the unix socket sock.
func fcgiGet(sock, uri string) (int, string) {
	c := &fastcgi.Client{Network: "unix", Address: sock, MaxConns: 1}
	defer c.CloseIdle()
	h := fastcgi.NewHandler(c, nil, cgi.Settings{})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", uri, nil))
	return w.Code, w.Body.String()
}

// reloadRun drives a ferry serving a reloadSite through reloads.
type reloadRun struct {
	tb    testing.TB
	site  *reloadSite
	ferry *groupFerry
	pid   int    // the ferry in charge
	cur   string // the variant in force
	// reloads counts the log's "configuration reloaded" lines so far.
	reloads int
	// workers holds every worker pid seen, to check at the end that none
	// outlived ferry; pool, those of the pool in force.
	workers map[int]bool
	pool    []int
	probe   *http.Client // keeps one connection to the stable front
	check   bool         // check each reload's effects (the test), or only do them (the benchmark)
}

// reload makes variant v the configuration and has ferry reload it with
// ferry reload --config, then checks that v is in force.
func (rr *reloadRun) reload(v string) {
	tb := rr.tb
	tb.Helper()
	rr.site.use(tb, v)
	var out, errb bytes.Buffer
	if code := run([]string{"reload", "--config", rr.site.file}, &out, &errb); code != 0 {
		tb.Fatalf("ferry reload: exit %d: %s", code, errb.String())
	}
	rr.reloads++
	rr.ferry.waitLines(tb, "ferry: configuration reloaded", rr.reloads)
	rr.cur = v
	if rr.check {
		rr.checkInForce(true, true)
	}
}

// upgrade has ferry replace itself with a new process (ferry reload
// --upgrade) and waits until the old one has exited.
func (rr *reloadRun) upgrade() {
	tb := rr.tb
	tb.Helper()
	var out, errb bytes.Buffer
	if code := run([]string{"reload", "--upgrade", "--pid-file", rr.site.pidFile}, &out, &errb); code != 0 {
		tb.Fatalf("ferry reload --upgrade: exit %d: %s", code, errb.String())
	}
	old := rr.pid
	rr.pid = rr.ferry.waitPID(tb, rr.site.pidFile, old)
	for deadline := time.Now().Add(30 * time.Second); leakcheck.Alive(old); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("the upgraded ferry %d still runs 30s after %d took over:\n%s", old, rr.pid, rr.ferry.logs)
		}
	}
	for p := range rr.workers {
		if leakcheck.Alive(p) {
			tb.Errorf("worker %d of the upgraded ferry %d outlived it", p, old)
		}
	}
	if rr.check {
		if _, err := os.Stat(rr.site.sock); err != nil {
			tb.Errorf("after the upgrade: %v; want the socket file left to the new ferry", err)
		}
		rr.checkInForce(false, true)
	}
}

// checkInForce checks that the variant in force answers: on a kept
// connection (which must be the same one as before when reused is
// asked), on a new connection, through the unix FastCGI front, and that
// only its own fronts listen; and that ferry's workers are those of its
// pool: all new ones if newPool, else the same as before.
func (rr *reloadRun) checkInForce(reused, newPool bool) {
	tb, s, v := rr.tb, rr.site, rr.cur
	tb.Helper()
	for _, tg := range reloadTargets[:2] {
		want := tg.want[0]
		if v == "b" {
			want = tg.want[1]
		}
		body, wasReused, err := getReused(rr.probe, "http://"+s.stable+tg.path)
		if err != nil || body != want {
			tb.Errorf("variant %s: GET %s on the kept connection = %q, %v; want %q", v, tg.path, body, err, want)
		}
		if reused && !wasReused {
			tb.Errorf("variant %s: GET %s: the kept connection to %s was closed by the reload", v, tg.path, s.stable)
		}
		if code, body := httpGetNoFatal("http://" + s.stable + tg.path); code != 200 || body != want {
			tb.Errorf("variant %s: GET %s on a new connection = %d %q; want %q", v, tg.path, code, body, want)
		}
	}
	if code, body := fcgiGet(s.sock, "/cgi-bin/who.sh"); code != 200 || body != "cgi "+v+"\n" {
		tb.Errorf("variant %s: FastCGI on %s = %d %q", v, s.sock, code, body)
	}
	mode := map[string]os.FileMode{"a": 0o600, "b": 0o660}[v]
	if fi, err := os.Stat(s.sock); err != nil {
		tb.Errorf("variant %s: socket file: %v", v, err)
	} else if fi.Mode().Perm() != mode {
		tb.Errorf("variant %s: socket file %s has mode %v; want %v", v, s.sock, fi.Mode().Perm(), mode)
	}
	other := map[string]string{"a": "b", "b": "a"}[v]
	if code, body := httpGetNoFatal("http://" + s.only[v] + "/index.html"); code != 200 || body != "static\n" {
		tb.Errorf("variant %s: its own front %s: %d %q", v, s.only[v], code, body)
	}
	if c, err := net.Dial("tcp", s.only[other]); err == nil {
		c.Close()
		tb.Errorf("variant %s: the front %s of variant %s still accepts", v, s.only[other], other)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		tb.Errorf("variant %s: the front %s of variant %s: %v; want a refused connection", v, s.only[other], other, err)
	}
	// The pool in force is the variant's, its workers all new; the
	// replaced pool's are gone.
	var pids []int
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pids = workerPIDs(rr.pid, s.self)
		fresh := !slices.ContainsFunc(pids, func(p int) bool { return rr.workers[p] })
		if len(pids) == s.workers[v] && (newPool && fresh || !newPool && slices.Equal(pids, rr.pool)) {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("variant %s: ferry %d runs workers %v; want %d, new: %v (before: %v)", v, rr.pid, pids, s.workers[v], newPool, rr.pool)
		}
	}
	for _, p := range pids {
		rr.workers[p] = true
	}
	rr.pool = pids
	rr.checkStatus()
}

// checkStatus checks that the admin listener's /status reports the
// configuration in force: its cgi-bin directory, and its pool's workers.
func (rr *reloadRun) checkStatus() {
	tb, s, v := rr.tb, rr.site, rr.cur
	tb.Helper()
	code, body := httpGetNoFatal("http://" + s.admin + "/status?json")
	var st struct {
		Mounts []struct {
			Prefix, Backend string
			Pool            *struct {
				MaxWorkers int `json:"max_workers"`
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		tb.Errorf("variant %s: admin /status?json: %d %v\n%s", v, code, err, body)
		return
	}
	want := map[string]string{"/cgi-bin/": "cgi:" + filepath.Join(s.dir, "cgi-"+v), "/fcgi/": "fastcgi+exec:" + s.self}
	for _, m := range st.Mounts {
		if m.Backend != want[m.Prefix] {
			tb.Errorf("variant %s: /status reports %s -> %s; want %s", v, m.Prefix, m.Backend, want[m.Prefix])
		}
		if m.Prefix == "/fcgi/" && (m.Pool == nil || m.Pool.MaxWorkers != s.workers[v]) {
			tb.Errorf("variant %s: /status reports the pool %+v; want %d workers at most", v, m.Pool, s.workers[v])
		}
	}
	if len(st.Mounts) != len(want) {
		tb.Errorf("variant %s: /status reports %d mounts; want %d:\n%s", v, len(st.Mounts), len(want), body)
	}
}

// httpGetNoFatal GETs url on a new connection; an error is status 0.
func httpGetNoFatal(url string) (int, string) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stop stops the ferry in charge with SIGTERM and checks that nothing of
// it is left: no process of its group, no worker, no socket file, no pid
// file.
func (rr *reloadRun) stop() {
	tb := rr.tb
	tb.Helper()
	if err := syscall.Kill(rr.pid, syscall.SIGTERM); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-rr.ferry.done:
	case <-time.After(60 * time.Second):
		tb.Fatalf("ferry %d did not exit within 60s of SIGTERM:\n%s", rr.pid, rr.ferry.logs)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := procfs.GroupMembers(rr.ferry.pgid)
		for p := range rr.workers {
			if leakcheck.Alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("processes %v outlived ferry", left)
		}
	}
	for _, f := range []string{rr.site.sock, rr.site.pidFile} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			tb.Errorf("%s: %v; want it removed when ferry stopped", f, err)
		}
	}
}

// TestReloadUnderLoad reloads ferry ten times, alternating between two
// configurations that change a mount, a front and a worker pool, and
// upgrades it once, while clients keep requesting a cgi-bin script, a
// fastcgi+exec pool and a static file over kept-alive and new
// connections, wrk (when installed) on the pool over kept-alive
// connections, and the admin listener's /healthz over new connections:
// no request may fail and no connection be refused (the upgrade hands the
// admin listener's socket over too), each reload must put its
// configuration in force, and no process may be left.
func TestReloadUnderLoad(t *testing.T) {
	s := newReloadSite(t)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", s.file}, &out, &errb); code != 0 {
		t.Fatalf("ferry check on the test's configuration: %d\n%s", code, errb.String())
	}
	leakcheck.Check(t) // after ferry check, whose signal handling starts a goroutine for good
	rr := s.start(t, true)
	g := rr.ferry

	ld := startLoad("http://"+s.stable, 4, 2)
	ld.watchAdmin("http://" + s.admin + "/healthz")
	endWrk := func() (int64, int64, string) { return 0, 0, "" }
	wrk, withWrk := peerstest.Want(t, "wrk")
	if withWrk {
		// wrk's kept-alive connections on the pool every reload replaces.
		endWrk = startWrk(t, wrk, "http://"+s.stable+"/fcgi/app.php")
	}
	for i := 1; i <= 10; i++ {
		if i == 6 {
			rr.upgrade()
			t.Logf("upgraded: ferry %d took over; %d requests served so far", rr.pid, ld.served.Load())
		}
		rr.reload(map[bool]string{true: "b", false: "a"}[i%2 == 1])
	}
	time.Sleep(200 * time.Millisecond) // some load on the last configuration
	ld.end()
	wrkServed, wrkFailed, wrkErrs := endWrk()
	t.Logf("%d requests served during 10 reloads and an upgrade; %d failed, %d refused; the admin listener answered %d", ld.served.Load(), ld.failed.Load(), ld.refused.Load(), ld.admin.Load())
	if ld.failed.Load() > 0 || ld.refused.Load() > 0 {
		t.Errorf("%d requests failed, %d connections refused; first failures:\n%s", ld.failed.Load(), ld.refused.Load(), strings.Join(ld.errs, "\n"))
	}
	if withWrk {
		t.Logf("wrk: %d requests served, %d failed (refused connections included)", wrkServed, wrkFailed)
		if wrkFailed > 0 || wrkServed < 100 {
			t.Errorf("wrk: %d requests served, %d failed:\n%s", wrkServed, wrkFailed, wrkErrs)
		}
	}
	if ld.served.Load() < 100 || ld.admin.Load() < 10 {
		t.Errorf("only %d requests served, %d by the admin listener: the load did not run", ld.served.Load(), ld.admin.Load())
	}
	// Once the load is over, ferry runs its workers and nothing else.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		children, workers := leakcheck.Children(rr.pid), workerPIDs(rr.pid, s.self)
		slices.Sort(children)
		slices.Sort(workers)
		if slices.Equal(children, workers) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferry's children %v once the load is over; want its workers %v only", children, workers)
		}
	}
	// Each reload said what changed.
	for _, l := range g.logs.Lines("ferry: configuration reloaded") {
		for _, want := range []string{`"mounts_changed":["/cgi-bin/","/fcgi/"]`, `"listen_added":[`, `"listen_removed":[`, `"pools_started":[`, `"pools_stopped":[`} {
			if !strings.Contains(l, want) {
				t.Errorf("reload log line %s lacks %s", l, want)
			}
		}
	}
	rr.stop()
	if strings.Contains(g.logs.String(), "DATA RACE") {
		t.Errorf("ferry's race detector:\n%s", g.logs)
	}
	if t.Failed() {
		t.Logf("ferry's log:\n%s", g.logs)
	}
}

// TestReloadKeepsConfigurationOnError reloads a configuration file with a
// mistake and one that fails to build: ferry logs why, naming the file,
// line and key, and goes on serving what it served.
func TestReloadKeepsConfigurationOnError(t *testing.T) {
	s := newReloadSite(t)
	rr := s.start(t, true)
	g, pid := rr.ferry, rr.pid

	bad := strings.Replace(s.config("b"), "[mount.\"/fcgi/\"]", "[mount.\"/fcgi/\"]\nworker = 3", 1)
	mustWrite(t, s.file, 0o644, bad)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	g.waitLines(t, "reload failed", 1)
	line := g.logs.Lines("reload failed")[0]
	n := slices.Index(strings.Split(bad, "\n"), "worker = 3") + 1
	wantErr := fmt.Sprintf(`%s:%d: mount.\"/fcgi/\".worker: unknown key`, s.file, n)
	if !strings.Contains(line, wantErr) {
		t.Errorf("reload failure logged as %s; want the file, line and key: %s", line, wantErr)
	}
	rr.checkInForce(true, false)

	// It loads, but cannot be built: a cgi-bin that does not exist.
	// It names the file, line and key too, as ferry check does (it gave
	// bridge's error alone).
	unbuilt := strings.Replace(s.config("b"), filepath.Join(s.dir, "cgi-b"), filepath.Join(s.dir, "nowhere"), 1)
	mustWrite(t, s.file, 0o644, unbuilt)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	g.waitLines(t, "reload failed", 2)
	n = slices.IndexFunc(strings.Split(unbuilt, "\n"), func(l string) bool { return strings.Contains(l, "nowhere") }) + 1
	wantErr = fmt.Sprintf(`%s:%d: mount.\"/cgi-bin/\".backend: %s does not exist`, s.file, n, filepath.Join(s.dir, "nowhere"))
	if line := g.logs.Lines("reload failed")[1]; !strings.Contains(line, wantErr) {
		t.Errorf("reload failure logged as %s; want the file, line and key: %s", line, wantErr)
	}
	rr.checkInForce(true, false)
	if n := len(g.logs.Lines("ferry: listening")); n != 3 {
		t.Errorf("%d fronts opened; want the 3 of the first configuration only", n)
	}
	rr.stop()
}

// TestReloadWithoutConfigFile: with flags alone, SIGHUP applies the same
// configuration again, says so, and keeps the worker pool as it is; it
// never kills ferry (as it did before reload existed, leaving its
// workers behind).
func TestReloadWithoutConfigFile(t *testing.T) {
	self := testdir.Executable(t)
	p := startFerry(t, "--mount", "/fcgi/=fastcgi+exec:"+self+"?workers=2", "--env", "FERRY_TEST_FCGI_WORKER=1", "--env", "VARIANT=flags")
	pid := p.cmd.Process.Pid
	var before []int
	for deadline := time.Now().Add(20 * time.Second); len(before) < 2; time.Sleep(10 * time.Millisecond) {
		if before = workerPIDs(pid, self); time.Now().After(deadline) {
			t.Fatalf("workers %v; want 2", before)
		}
	}
	for i := 1; i <= 2; i++ {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); len(p.logs.Lines("configuration reloaded; nothing changed")) < i; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no reload logged:\n%s", p.logs)
			}
		}
	}
	if n := len(p.logs.Lines("no configuration file; reloading the flags' configuration")); n != 2 {
		t.Errorf("%d lines say the reload had no file; want 2:\n%s", n, p.logs)
	}
	if l := p.logs.Lines("nothing changed"); len(l) == 0 || !strings.Contains(l[0], `"pools_kept":1`) {
		t.Errorf("reload lines %q; want the pool kept", l)
	}
	if code, body := httpGet(t, p.URL+"/fcgi/x"); code != 200 || body != "fcgi flags\n" {
		t.Errorf("after SIGHUP: %d %q", code, body)
	}
	if after := workerPIDs(pid, self); !slices.Equal(after, before) {
		t.Errorf("workers %v after SIGHUP; want the same %v", after, before)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry: %v", err)
	}
	for _, w := range before {
		if leakcheck.Alive(w) {
			t.Errorf("worker %d outlived ferry", w)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestUpgradeFailure: when the new process cannot take over (here its
// configuration file has become unreadable), the running ferry says why,
// reaps it, and serves on, its pid file unchanged.
func TestUpgradeFailure(t *testing.T) {
	s := newReloadSite(t)
	rr := s.start(t, true)
	g, pid := rr.ferry, rr.pid
	mustWrite(t, s.file, 0o644, "listen = 3\n")
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	g.waitLines(t, "upgrade failed; serving on", 1)
	if l := g.logs.Lines("upgrade failed; serving on")[0]; !strings.Contains(l, "closed the ready pipe without saying it listens (exit status 2)") {
		t.Errorf("upgrade failure logged as %s; want the new process's exit status", l)
	}
	if b, _ := os.ReadFile(s.pidFile); strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Errorf("pid file %q after a failed upgrade; want %d", b, pid)
	}
	if kids := slices.DeleteFunc(leakcheck.Children(pid), func(c int) bool { return slices.Contains(workerPIDs(pid, s.self), c) }); len(kids) > 0 {
		t.Errorf("ferry has children %v besides its workers after a failed upgrade", kids)
	}
	rr.checkInForce(true, false)
	s.use(t, "a")
	rr.stop()
}

// TestReloadCommandErrors checks ferry reload's answers when it has no
// ferry to signal.
func TestReloadCommandErrors(t *testing.T) {
	dir := t.TempDir()
	dead := filepath.Join(dir, "dead.pid")
	// A process that has exited: its pid is free (for now).
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, dead, 0o644, strconv.Itoa(cmd.Process.Pid)+"\n")
	garbage := filepath.Join(dir, "garbage.pid")
	mustWrite(t, garbage, 0o644, "ferry\n")
	cfg := filepath.Join(dir, "ferry.toml")
	mustWrite(t, cfg, 0o644, "root = \"/\"\n")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"reload"}, 2, "ferry reload: no pid file: give --pid-file FILE, or --config FILE with pid_file set (see ferry reload --help)\n"},
		{[]string{"reload", "--config", cfg}, 2, "ferry reload: no pid file: give --pid-file FILE, or --config FILE with pid_file set (see ferry reload --help)\n"},
		{[]string{"reload", "--pid-file", filepath.Join(dir, "none.pid")}, 1, "ferry reload: no ferry is running: " + filepath.Join(dir, "none.pid") + " does not exist\n"},
		{[]string{"reload", "--pid-file", dead}, 1, fmt.Sprintf("ferry reload: no ferry is running: process %d (from %s) does not exist\n", cmd.Process.Pid, dead)},
		{[]string{"reload", "--pid-file", garbage}, 1, "ferry reload: " + garbage + " holds \"ferry\", not a process ID\n"},
		{[]string{"reload", "--frobnicate"}, 2, "ferry reload: unknown flag: --frobnicate (see ferry reload --help)\n"},
	} {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || errb.String() != tt.want {
			t.Errorf("ferry %s: exit %d, stderr %q; want %d, %q", strings.Join(tt.args, " "), code, errb.String(), tt.code, tt.want)
		}
	}
}

// TestReloadRefusesOtherProcess: a pid file whose PID is now another
// program's (a stale file, the PID reused) is not signalled: ferry reload
// signalled whatever the file held, and SIGHUP killed a sleep (or a shell).
func TestReloadRefusesOtherProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		t.Skipf("no /proc: ferry reload cannot tell what a process runs here: %v", err)
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = sleep.Wait(); close(exited) }()
	t.Cleanup(func() { sleep.Process.Kill(); <-exited })
	pidFile := filepath.Join(t.TempDir(), "ferry.pid")
	mustWrite(t, pidFile, 0o644, strconv.Itoa(sleep.Process.Pid)+"\n")
	for _, args := range [][]string{{"reload", "--pid-file", pidFile}, {"reload", "--upgrade", "--pid-file", pidFile}} {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		want := fmt.Sprintf("ferry reload: process %d (from %s) is not a ferry: it runs ", sleep.Process.Pid, pidFile)
		if code != 1 || !strings.HasPrefix(errb.String(), want) || !strings.Contains(errb.String(), "sleep") || out.Len() != 0 {
			t.Errorf("ferry %s: exit %d, stdout %q, stderr %q; want 1 and %q..., naming sleep", strings.Join(args, " "), code, out.String(), errb.String(), want)
		}
	}
	select {
	case <-exited:
		t.Fatalf("sleep exited (%v): ferry reload signalled it", waitErr)
	case <-time.After(200 * time.Millisecond):
	}
	// A ferry in the pid file is still reloaded.
	p := startFerry(t, "--pid-file", pidFile, "--root", t.TempDir())
	if got := waitFile(t, pidFile); got != p.cmd.Process.Pid {
		t.Fatalf("pid file holds %d; want ferry's %d", got, p.cmd.Process.Pid)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"reload", "--pid-file", pidFile}, &out, &errb); code != 0 {
		t.Fatalf("ferry reload of a ferry: exit %d, stderr %q", code, errb.String())
	}
	waitLog(t, p, "configuration reloaded")
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry: %v", err)
	}
}

// BenchmarkReload reports the requests served while ferry reloads ten
// times, alternating between two configurations, under load: the Go
// clients of TestReloadUnderLoad (kept-alive and new connections, every
// kind of back), or wrk on the fastcgi+exec pool, which every reload
// replaces. Any failed request fails it.
func BenchmarkReload(b *testing.B) {
	b.Run("go-clients", func(b *testing.B) {
		benchReload(b, func(s *reloadSite) func() (served, failed int64, errs string) {
			ld := startLoad("http://"+s.stable, 4, 2)
			return func() (int64, int64, string) {
				ld.end()
				return ld.served.Load(), ld.failed.Load() + ld.refused.Load(), strings.Join(ld.errs, "\n")
			}
		})
	})
	b.Run("wrk", func(b *testing.B) {
		bins := peerstest.Need(b, "wrk")
		benchReload(b, func(s *reloadSite) func() (int64, int64, string) {
			return startWrk(b, bins["wrk"], "http://"+s.stable+"/fcgi/app.php")
		})
	})
}

// startWrk runs wrk (at bin) on url, 2 threads and 8 connections, until
// the function it returns is called, which says what wrk served and what
// failed (socket errors, refused connections among them, and answers
// other than 2xx and 3xx).
func startWrk(tb testing.TB, bin, url string) func() (served, failed int64, errs string) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-t", "2", "-c", "8", "-d", "600s", "--timeout", "10s", url)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) } // wrk prints its report on SIGINT
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatal(err)
	}
	return func() (int64, int64, string) {
		cancel()
		cmd.Wait()
		return parseWrk(tb, out.String())
	}
}

// benchReload runs ten reloads b.N times under the load start begins,
// and reports what the function it returns says once the load ends.
func benchReload(b *testing.B, start func(*reloadSite) func() (served, failed int64, errs string)) {
	s := newReloadSite(b)
	rr := s.start(b, false)
	defer rr.stop()
	b.ResetTimer()
	var total int64
	var elapsed time.Duration
	for range b.N {
		end := start(s)
		t0 := time.Now()
		for i := 1; i <= 10; i++ {
			rr.reload(map[bool]string{true: "b", false: "a"}[i%2 == 1])
			time.Sleep(200 * time.Millisecond) // load on each configuration
		}
		elapsed += time.Since(t0)
		served, failed, errs := end()
		if failed > 0 {
			b.Fatalf("%d requests failed during 10 reloads:\n%s", failed, errs)
		}
		total += served
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/float64(b.N), "requests/10-reloads")
	b.ReportMetric(float64(total)/elapsed.Seconds(), "requests/s")
	b.ReportMetric(0, "failed")
}

// parseWrk reads wrk's report: the requests it completed, and those that
// failed (socket errors and non-2xx/3xx responses).
func parseWrk(tb testing.TB, out string) (served, failed int64, errs string) {
	tb.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			served, _ = strconv.ParseInt(f[0], 10, 64)
		case strings.HasPrefix(strings.TrimSpace(line), "Socket errors:"):
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for _, part := range strings.Split(strings.TrimPrefix(strings.TrimSpace(line), "Socket errors:"), ",") {
				if kv := strings.Fields(part); len(kv) == 2 {
					n, _ := strconv.ParseInt(kv[1], 10, 64)
					failed += n
				}
			}
			errs += line + "\n"
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx or 3xx responses:"):
			n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
			failed += n
			errs += line + "\n"
		}
	}
	if served == 0 {
		tb.Fatalf("wrk served nothing:\n%s", out)
	}
	return served, failed, errs
}
