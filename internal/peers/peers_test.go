package peers_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// helloScript answers with its query string and writes a marker to stderr.
const helloScript = `#!/bin/sh
printf 'Content-Type: text/plain\n\n'
printf 'hello %s\n' "$QUERY_STRING"
echo "oops from hello.sh" >&2
`

// envScript shows how the server split the URL and what Env passed.
const envScript = `#!/bin/sh
printf 'Content-Type: text/plain\n\n'
printf 'script=%s path=%s foo=%s\n' "$SCRIPT_NAME" "$PATH_INFO" "$FERRY_FOO"
`

// cgiDir writes the test scripts into a new directory that www-data can use.
func cgiDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{"hello.sh": helloScript, "env.sh": envScript} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := peers.MakeWorldReadable(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// get fetches url, failing the test on a transport error.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, string(body)
}

// waitFor polls cond until it returns true or the test's time budget ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(peers.PollInterval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// members returns the processes of p's group, failing the test without /proc.
func members(t *testing.T, p *peers.Process) []peers.GroupMember {
	t.Helper()
	m, err := peers.GroupMembers(p.Pid())
	if err != nil {
		t.Skipf("cannot list process groups: %v", err)
	}
	return m
}

// assertGone checks that none of the processes recorded in before (members
// of p's group) exists any more, not even as a zombie.
func assertGone(t *testing.T, p *peers.Process, before []peers.GroupMember) {
	t.Helper()
	for _, m := range before {
		if _, pg, ok := peers.ReadStat(m.PID()); ok && pg == p.Pid() {
			t.Errorf("pid %d of %s's group %d still exists after Stop", m.PID(), p.Name(), p.Pid())
		}
	}
	if left := members(t, p); len(left) > 0 {
		t.Errorf("group %d of %s still has members after Stop: %v", p.Pid(), p.Name(), left)
	}
}

// checkCGIServer runs the scripts from cgiDir through s, checks the logs,
// stops s and checks that no process is left.
func checkCGIServer(t *testing.T, s *peers.Server) {
	t.Helper()
	resp, body := get(t, s.URL+"/cgi-bin/hello.sh?a=1&b=2")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("hello.sh: status %d; want 200; body %q", resp.StatusCode, body)
	}
	if want := "hello a=1&b=2\n"; body != want {
		t.Errorf("hello.sh: body %q; want %q", body, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain" {
		t.Errorf("hello.sh: Content-Type %q; want %q", ct, "text/plain")
	}

	_, body = get(t, s.URL+"/cgi-bin/env.sh/x/y")
	if want := "script=/cgi-bin/env.sh path=/x/y foo=bar\n"; body != want {
		t.Errorf("env.sh: body %q; want %q", body, want)
	}

	waitFor(t, "the script's stderr in the error log", func() bool {
		logs, err := s.Logs()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(logs, "oops from hello.sh")
	})

	before := make(map[*peers.Process][]peers.GroupMember)
	for _, p := range s.Procs() {
		before[p] = members(t, p)
		t.Logf("%s: group %d has %d processes", p.Name(), p.Pid(), len(before[p]))
	}
	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	t.Logf("Stop took %v", time.Since(start))
	for _, p := range s.Procs() {
		assertGone(t, p, before[p])
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	_, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Get(s.URL + "/")
	if err == nil {
		t.Errorf("GET after Stop succeeded; want a connection error")
	}
}

func TestApacheCGI(t *testing.T) {
	t.Parallel()
	s := peerstest.ApacheCGI(t, peers.ApacheCGIConfig{CGIDir: cgiDir(t), Env: map[string]string{"FERRY_FOO": "bar"}, MaxWorkers: 8})
	procs := members(t, s.Procs()[0])
	if len(procs) < 3 { // parent, cgid daemon, at least one worker
		t.Errorf("Apache group has %d processes; want at least 3", len(procs))
	}
	checkCGIServer(t, s)
}

func TestApacheCGIDefaults(t *testing.T) {
	t.Parallel()
	s := peerstest.ApacheCGI(t, peers.ApacheCGIConfig{CGIDir: cgiDir(t)})
	_, body := get(t, s.URL+"/cgi-bin/hello.sh?x")
	if want := "hello x\n"; body != want {
		t.Errorf("body %q; want %q", body, want)
	}
}

func TestNginxFcgiwrap(t *testing.T) {
	t.Parallel()
	s := peerstest.NginxFcgiwrap(t, peers.NginxFcgiwrapConfig{CGIDir: cgiDir(t), Workers: 2, Env: map[string]string{"FERRY_FOO": "bar"}})
	if n := len(members(t, s.Procs()[1])); n != 3 { // parent and 2 workers
		t.Errorf("fcgiwrap group has %d processes; want 3", n)
	}
	checkCGIServer(t, s)
}

func TestStartReportsLogTail(t *testing.T) {
	t.Parallel()
	sh := peerstest.Need(t, "sh")["sh"]
	port, err := peers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	_, err = peers.Start(context.Background(), peers.Spec{
		Path:     sh,
		Args:     []string{"-c", "echo 'bad config line 3' >&2; exit 1"},
		LogFile:  filepath.Join(dir, "log"),
		ReadyTCP: "127.0.0.1:" + strconv.Itoa(port),
	})
	if err == nil {
		t.Fatal("Start succeeded; want an error")
	}
	if !strings.Contains(err.Error(), "bad config line 3") || !strings.Contains(err.Error(), "exited") {
		t.Errorf("error %q lacks the log tail or the exit", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Start took %v to notice the exit", d)
	}
}

func TestStartTimeout(t *testing.T) {
	t.Parallel()
	sh := peerstest.Need(t, "sh")["sh"]
	sock := filepath.Join(t.TempDir(), "never.sock")
	_, err := peers.Start(context.Background(), peers.Spec{
		Path:         sh,
		Args:         []string{"-c", "exec sleep 60"},
		ReadyUnix:    sock,
		ReadyTimeout: 100 * time.Millisecond,
	})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("Start: %v; want a timeout", err)
	}
}

func TestStartContextCanceled(t *testing.T) {
	t.Parallel()
	sh := peerstest.Need(t, "sh")["sh"]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := peers.Start(ctx, peers.Spec{Path: sh, Args: []string{"-c", "exec sleep 60"}, ReadyHTTP: "http://127.0.0.1:1/"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Start: %v; want context.Canceled", err)
	}
}

// TestStopKillsStubbornGroup checks the SIGKILL fallback on a group whose
// members all ignore SIGTERM.
func TestStopKillsStubbornGroup(t *testing.T) {
	t.Parallel()
	sh := peerstest.Need(t, "sh")["sh"]
	p, err := peers.Start(context.Background(), peers.Spec{
		Path:        sh,
		Args:        []string{"-c", `trap "" TERM; sleep 60 & sleep 60 & wait`},
		StopTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Only a safety net if the test fails early; Stop's error is checked below.
		_ = p.Stop()
	})
	var before []peers.GroupMember
	waitFor(t, "three processes in the group", func() bool {
		before = members(t, p)
		return len(before) == 3
	})
	start := time.Now()
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("Stop took %v; want at least the 200ms grace period", d)
	}
	assertGone(t, p, before)
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Stop")
	}
}

func TestStopAfterEarlyExit(t *testing.T) {
	t.Parallel()
	sh := peerstest.Need(t, "sh")["sh"]
	p, err := peers.Start(context.Background(), peers.Spec{Path: sh, Args: []string{"-c", "exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Stop: %v; want the exit status", err)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	p, err := peers.Lookup("sh")
	if err != nil || !filepath.IsAbs(p) {
		t.Errorf("Lookup(%q) = %q, %v; want an absolute path", "sh", p, err)
	}
	if _, err := peers.Lookup("ferry-no-such-program"); !errors.Is(err, peers.ErrNotInstalled) {
		t.Errorf("Lookup(%q): %v; want ErrNotInstalled", "ferry-no-such-program", err)
	}
}

func TestMakeWorldReadable(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	sub := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]os.FileMode{"data": 0o600, "script": 0o700}
	for name, mode := range files {
		if err := os.WriteFile(filepath.Join(sub, name), nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := peers.MakeWorldReadable(sub); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		sub:                              0o755,
		filepath.Join(sub, "data"):       0o644,
		filepath.Join(sub, "script"):     0o755,
		filepath.Join(root, "a"):         0o711,
		filepath.Dir(filepath.Dir(root)): 0, // checked below: a+x only
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if want == 0 {
			if fi.Mode().Perm()&0o111 != 0o111 {
				t.Errorf("%s: mode %v; want a+x", path, fi.Mode().Perm())
			}
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v; want %v", path, got, want)
		}
	}
}

func TestApacheCGIRejectsPrivateDir(t *testing.T) {
	t.Parallel()
	peerstest.Need(t, "apache2")
	if os.Geteuid() != 0 {
		t.Skip("Apache switches to www-data only when started as root")
	}
	dir := t.TempDir() // mode 0700
	_, err := peers.StartApacheCGI(context.Background(), t.TempDir(), peers.ApacheCGIConfig{CGIDir: dir})
	if err == nil || !strings.Contains(err.Error(), "MakeWorldReadable") {
		t.Errorf("StartApacheCGI with a 0700 CGIDir: %v; want an error naming MakeWorldReadable", err)
	}
}
