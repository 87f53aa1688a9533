package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/internal/conformance"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
)

// The test binary doubles as the ferry command: tests run it with
// FERRY_TEST_MAIN=1 to get a real ferry process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("FERRY_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// logBuffer is the shared concurrent log sink.
type logBuffer = testlog.Buffer

// ferryProc is a running "ferry serve".
type ferryProc struct {
	URL  string
	cmd  *exec.Cmd
	logs *logBuffer
	done chan error
}

// startFerry runs "ferry serve --listen http://127.0.0.1:0 args..." and
// waits until it listens. It is stopped (SIGTERM, then SIGKILL) at cleanup.
func startFerry(t *testing.T, args ...string) *ferryProc {
	t.Helper()
	return startFerryArgs(t, append([]string{"--listen", "http://127.0.0.1:0"}, args...)...)
}

// startFerryArgs runs "ferry serve args..." and waits until it listens; URL
// is the first listen address it logs.
func startFerryArgs(t *testing.T, args ...string) *ferryProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"serve", "--log-format", "json", "--log-level", "debug"}, args...)
	cmd := exec.Command(self, argv...)
	cmd.Env = append(os.Environ(), "FERRY_TEST_MAIN=1")
	pr, pw := io.Pipe()
	logs := &logBuffer{}
	cmd.Stdout = logs
	cmd.Stderr = io.MultiWriter(logs, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &ferryProc{cmd: cmd, logs: logs, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() { p.stop(t, syscall.SIGKILL) })

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		found := false
		for sc.Scan() {
			var line struct{ Message, Listen string }
			if !found && json.Unmarshal(sc.Bytes(), &line) == nil && line.Listen != "" {
				addr <- line.Listen
				found = true
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("ferry exited before listening:\n%s", logs)
		}
		p.URL = a
	case <-time.After(20 * time.Second):
		t.Fatalf("ferry did not listen within 20s:\n%s", logs)
	}
	return p
}

// stop sends sig and waits for the process to exit, returning its error.
func (p *ferryProc) stop(t *testing.T, sig os.Signal) error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(sig) // it may have exited already
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Errorf("ferry did not exit within 30s of %v", sig)
		return <-p.done
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// TestFlagErrors checks that every flag mistake is one line on stderr that
// names the flag (or the value) and points at the help, with exit code 2.
func TestFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--frobnicate"}, "ferry serve: unknown flag: --frobnicate (see ferry serve --help)\n"},
		{[]string{"serve", "--cgi-timeout", "abc"}, `ferry serve: --cgi-timeout "abc": time: invalid duration "abc" (see ferry serve --help)` + "\n"},
		{[]string{"serve", "--max-request-body", "10Q"}, `ferry serve: --max-request-body "10Q": want a size such as 1048576, 512K, 10M or 1GiB (see ferry serve --help)` + "\n"},
		{[]string{"bench", "--frobnicate"}, "ferry bench: unknown flag: --frobnicate (see ferry bench --help)\n"},
		{[]string{"serve", "--listen", "127.0.0.1:8080"}, "did you mean http://127.0.0.1:8080"},
		{[]string{"serve", "--mount", "/x/=fastcgi://127.0.0.1:9000?max_con=4"}, `unknown option "max_con" (did you mean max_conns?)`},
		{[]string{"serve", "--mount", "/x/=cgi:/tmp?bogus=1"}, `unknown option "bogus"; cgi: takes symlinks, from`},
	} {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tt.want) || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("ferry %q = exit %d, stderr %q; want exit 2 and one line with %q", tt.args, code, errb.String(), tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"1048576", 1 << 20}, {"512K", 512 << 10}, {"512k", 512 << 10}, {"10M", 10 << 20}, {"1G", 1 << 30},
		{"1GiB", 1 << 30}, {"2MiB", 2 << 20}, {"1MB", 1e6}, {"3KB", 3e3}, {"7B", 7}, {"", -1}, {"M", -1}, {"10Q", -1},
		{"-1", -1}, {"1.5M", -1}, {"99999999999G", -1},
	} {
		got, err := bridge.ParseSize(tt.in)
		if tt.want < 0 {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d; want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

// TestVersionFromBuildInfo builds ferry from this checkout with VCS
// stamping and checks that "ferry version" names the revision.
func TestVersionFromBuildInfo(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		peerstest.Need(t, "go")
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	dirs, _ := exec.Command("git", "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir").Output()
	if d := strings.Fields(string(dirs)); len(d) != 2 || d[0] != d[1] {
		t.Skip("a linked git worktree: go build stamps no VCS information there")
	}
	bin := filepath.Join(t.TempDir(), "ferry")
	build := exec.Command(goBin, "build", "-buildvcs=true", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	// A pseudo-version (v0.0.0-TIME-REVISION) or devel-REVISION.
	if want := string(rev[:12]); !strings.HasPrefix(string(out), "ferry ") || !strings.Contains(string(out), want) {
		t.Errorf("ferry version = %q; want it to name the revision %q", out, want)
	}
}

func TestVersionAndHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "ferry ") {
		t.Errorf("ferry version = %d %q", code, out.String())
	}
	out.Reset()
	errb.Reset()
	// Help asked for goes to stdout ("ferry serve --help | less").
	if code := run([]string{"serve", "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--mount") || errb.Len() != 0 {
		t.Errorf("ferry serve --help = %d, stdout lacks --mount or stderr not empty:\n%s\nstderr: %s", code, out.String(), errb.String())
	}
	for _, group := range []string{"\nListening:\n", "\nRouting:\n", "\nScripts and limits:\n", "\nLogging and shutdown:\n"} {
		if !strings.Contains(out.String(), group) {
			t.Errorf("ferry serve --help: no group %q", group)
		}
	}
	out.Reset()
	if code := run([]string{"bench", "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--concurrency") {
		t.Errorf("ferry bench --help = %d, stdout lacks --concurrency:\n%s", code, out.String())
	}
	for _, args := range [][]string{
		{"bogus"},
		{"serve", "--mount", "cgi-bin=cgi:/x"},
		{"serve", "--listen", "127.0.0.1:80"},
		{"serve", "--listen", "gopher://127.0.0.1:70"},
		{"serve", "--env", "NOEQUALS"},
		{"serve", "--log-format", "xml"},
		{"serve", "extra-arg"},
	} {
		errb.Reset()
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("ferry %q = exit %d; want 2 (%s)", args, code, errb.String())
		}
	}
}

// TestServeExampleSite runs "ferry serve" with no mounts: the bundled site.
func TestServeExampleSite(t *testing.T) {
	need := []string{"perl", "python3"}
	peerstest.Need(t, need...)
	p := startFerry(t)
	if code, body := httpGet(t, p.URL+"/"); code != 200 || !strings.Contains(body, "ferry is running") {
		t.Fatalf("GET / = %d %q", code, body)
	}
	for path, want := range map[string]string{
		"/cgi-bin/hello.sh":                        "Hello from sh",
		"/cgi-bin/hello.pl/some/path?name=Perl":    "Hello, Perl, from Perl",
		"/cgi-bin/hello.py?name=Python":            "Hello, Python, from Python",
		"/cgi-bin/env.sh/extra/path?a=1":           "PATH_INFO=/extra/path",
		"/cgi-bin/hello.pl/x?name=%3Cscript%3E":    "Hello, &#60;script&#62;",
		"/cgi-bin/env.sh/extra/path?a=1&b=%2F#xyz": "QUERY_STRING=a=1&b=%2F",
	} {
		if code, body := httpGet(t, p.URL+path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d %q; want 200 and %q", path, code, body, want)
		}
	}
	if _, err := peers.Lookup("php-cgi"); err == nil || os.Getenv("CI") == "true" {
		if code, body := httpGet(t, p.URL+"/cgi-bin/hello.php?name=PHP"); code != 200 || !strings.Contains(body, "Hello, PHP, from PHP") {
			t.Errorf("GET hello.php = %d %q", code, body)
		}
	}
	resp, err := http.Post(p.URL+"/cgi-bin/hello.pl", "application/x-www-form-urlencoded", strings.NewReader("name=Form+User"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "Hello, Form User") {
		t.Errorf("POST hello.pl = %q", b)
	}
	if code, _ := httpGet(t, p.URL+"/cgi-bin"); code != 200 && code != 403 {
		t.Errorf("GET /cgi-bin = %d", code)
	}
	if code, _ := httpGet(t, p.URL+"/.hidden"); code != 404 {
		t.Errorf("GET /.hidden = %d; want 404", code)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v after SIGTERM:\n%s", err, p.logs)
	}
	if !strings.Contains(p.logs.String(), `"message":"request"`) || !strings.Contains(p.logs.String(), `"backend":"cgi:`) {
		t.Errorf("no access-log lines with backend in:\n%s", p.logs)
	}
}

// TestServeConformance runs the CGI conformance suite against
// "ferry serve --mount /cgi-bin/=cgi:DIR", gitweb and cgit included.
func TestServeConformance(t *testing.T) {
	peerstest.Need(t, "perl", "python3", "git", "gitweb", "cgit")
	cgiDir, git := conformanceDir(t)
	args := []string{"--mount", "/cgi-bin/=cgi:" + cgiDir, "--cgi-kill-grace", "1s"}
	for _, kv := range git.Env {
		args = append(args, "--env", kv)
	}
	p := startFerry(t, args...)
	if code, _ := httpGet(t, p.URL+"/cgi-bin/env.sh"); code != 200 {
		t.Fatalf("warm-up request: %d", code)
	}
	http.DefaultClient.CloseIdleConnections()
	fdsBefore := countFDs(t, p.cmd.Process.Pid)
	tr := &http.Transport{DisableCompression: true}
	conformance.Run(t, conformance.Target{
		BaseURL:   p.URL,
		ScriptDir: cgiDir,
		Log:       p.logs.String,
		Git:       git,
		Client:    &http.Client{Transport: tr},
	})
	tr.CloseIdleConnections()
	// After the whole suite (timeouts, crashes, disconnects, 64 in
	// parallel), ferry holds no child process and no more descriptors.
	deadline := time.Now().Add(10 * time.Second)
	for {
		kids := leakcheck.Children(p.cmd.Process.Pid)
		fds := countFDs(t, p.cmd.Process.Pid)
		if len(kids) == 0 && fds <= fdsBefore {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after the suite ferry has children %v and %d fds (%d before): %s", kids, fds, fdsBefore, fdList(p.cmd.Process.Pid))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v:\n%s", err, p.logs)
	}
	if strings.Contains(p.logs.String(), "panic") {
		t.Errorf("ferry logged a panic:\n%s", p.logs)
	}
}

// TestServeGracefulShutdown checks that SIGTERM lets a running request
// finish, and that scripts still running after --shutdown-timeout are
// stopped before ferry exits.
func TestServeGracefulShutdown(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	state := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "wait.sh"), `#!/bin/sh
echo $$ > "$STATE/wait.pid"
printf 'Content-Type: text/plain\n\n'
while [ ! -e "$STATE/go" ]; do sleep 0.01; done
echo finished`)
	writeExec(t, filepath.Join(dir, "forever.sh"), `#!/bin/sh
echo $$ > "$STATE/forever.pid"
printf 'Content-Type: text/plain\n\nstarted\n'
sleep 300`)

	t.Run("drain", func(t *testing.T) {
		p := startFerry(t, "--mount", "/cgi-bin/=cgi:"+dir, "--env", "STATE="+state)
		result := getInBackground(p.URL + "/cgi-bin/wait.sh")
		waitFile(t, filepath.Join(state, "wait.pid"))
		p.cmd.Process.Signal(syscall.SIGTERM)
		waitLog(t, p, "shutting down")
		os.WriteFile(filepath.Join(state, "go"), nil, 0o644)
		if got := <-result; got != "finished\n" {
			t.Errorf("in-flight request got %q; want it to finish", got)
		}
		if err := p.stop(t, syscall.SIGTERM); err != nil {
			t.Errorf("exit: %v", err)
		}
	})

	t.Run("stop-scripts", func(t *testing.T) {
		p := startFerry(t, "--mount", "/cgi-bin/=cgi:"+dir, "--env", "STATE="+state,
			"--shutdown-timeout", "300ms", "--cgi-kill-grace", "200ms")
		resp, err := http.Get(p.URL + "/cgi-bin/forever.sh")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if line, _ := br.ReadString('\n'); line != "started\n" {
			t.Fatalf("first line %q", line)
		}
		pid := waitFile(t, filepath.Join(state, "forever.pid"))
		if err := p.stop(t, syscall.SIGTERM); err != nil {
			t.Errorf("exit: %v", err)
		}
		if leakcheck.Alive(pid) {
			t.Errorf("script %d outlived ferry", pid)
		}
		http.DefaultClient.CloseIdleConnections()
	})
}

// countFDs counts the open descriptors of process pid.
func countFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// fdList describes the open descriptors of process pid.
func fdList(pid int) string {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		b.WriteString(" " + e.Name() + "=" + target)
	}
	return b.String()
}

func writeExec(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// waitFile waits for a pid file and returns the pid in it.
func waitFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitLog(t *testing.T, p *ferryProc, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", s, p.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
