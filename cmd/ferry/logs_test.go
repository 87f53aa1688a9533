package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/testdir"
)

// TestAccessLogFlag: --access-log takes true or false, as before, or the
// file the log goes to, which turns it on.
func TestAccessLogFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		on   bool
		file string
	}{
		{nil, true, ""},
		{[]string{"--access-log=false"}, false, ""},
		{[]string{"--access-log", "false"}, false, ""},
		{[]string{"--access-log", "/var/log/ferry/access.log"}, true, "/var/log/ferry/access.log"},
		{[]string{"--access-log=false", "--access-log", "access.log"}, true, "access.log"},
	} {
		c := flagsConfig(t, tt.args...)
		if c.AccessLog != tt.on || c.AccessLogFile != tt.file {
			t.Errorf("flags %q: access log %v in %q; want %v in %q", tt.args, c.AccessLog, c.AccessLogFile, tt.on, tt.file)
		}
	}
	// The file's file stays when the flag only says false.
	file := filepath.Join(t.TempDir(), "ferry.toml")
	os.WriteFile(file, []byte("[log]\naccess_log_file = \"/var/log/a.log\"\n"), 0o644)
	if c := flagsConfig(t, "--config", file, "--access-log=false"); c.AccessLog || c.AccessLogFile != "/var/log/a.log" {
		t.Errorf("file + --access-log=false: %v %q", c.AccessLog, c.AccessLogFile)
	}
}

// combinedLine is a line of Apache's combined format for a GET of path.
func combinedLine(path string) *regexp.Regexp {
	return regexp.MustCompile(`^127\.0\.0\.1 - - \[[^]]+\] "GET ` + regexp.QuoteMeta(path) + ` HTTP/1\.1" 200 3 "-" "Go-http-client/1\.1"$`)
}

// TestAccessLogReopenOnSIGUSR1: as logrotate does it: the access log file
// is renamed, ferry goes on writing to it until SIGUSR1, then writes to a
// new file of the name.
func TestAccessLogReopenOnSIGUSR1(t *testing.T) {
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "ok.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok\\n'\n")
	file := filepath.Join(dir, "access.log")
	p := startFerry(t, "--mount", "/cgi-bin/=cgi:"+dir, "--access-log", file, "--access-log-format", "combined")
	get := func(path string) {
		t.Helper()
		if code, body := httpGet(t, p.URL+path); code != http.StatusOK || body != "ok\n" {
			t.Fatalf("GET %s: %d %q", path, code, body)
		}
	}
	lines := func(name string, n int) []string {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			b, _ := os.ReadFile(name)
			if l := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); len(b) > 0 && len(l) >= n || time.Now().After(deadline) {
				if len(b) == 0 {
					return nil
				}
				return l
			}
		}
	}
	get("/cgi-bin/ok.sh?1")
	lines(file, 1)
	if err := os.Rename(file, file+".1"); err != nil {
		t.Fatal(err)
	}
	get("/cgi-bin/ok.sh?2")
	lines(file+".1", 2)
	if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "ferry: access log reopened")
	get("/cgi-bin/ok.sh?3")
	old, cur := lines(file+".1", 2), lines(file, 1)
	if len(old) != 2 || !combinedLine("/cgi-bin/ok.sh?1").MatchString(old[0]) || !combinedLine("/cgi-bin/ok.sh?2").MatchString(old[1]) {
		t.Errorf("the rotated file has:\n%s\nwant the lines of ?1 and ?2", strings.Join(old, "\n"))
	}
	if len(cur) != 1 || !combinedLine("/cgi-bin/ok.sh?3").MatchString(cur[0]) {
		t.Errorf("the new file has:\n%s\nwant the line of ?3", strings.Join(cur, "\n"))
	}
	if strings.Contains(p.logs.String(), `"message":"request"`) {
		t.Errorf("access lines in the process log too:\n%s", p.logs)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v", err)
	}
}

// TestAccessLogWhateverLogLevel: with [log] level = "warn", the access log
// on standard error (its default place, among the process log's lines) is
// still written, as nginx's error_log level never touches access_log. It
// was not: its lines are info lines of the process log, and the level
// dropped them. The info lines that are not access lines stay dropped.
func TestAccessLogWhateverLogLevel(t *testing.T) {
	dir := testdir.Open(t)
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "ferry.toml")
	if err := os.WriteFile(config, []byte("[log]\nlevel = \"warn\"\nformat = \"json\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := startFerryAnswering(t, "http://"+addr, "/a.txt?probe", "--config", config, "--listen", "http://"+addr, "--root", dir)
	logs := p.logs
	if code, body := httpGet(t, p.URL+"/a.txt?1"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /a.txt?1: %d %q", code, body)
	}
	waitLog(t, p, `"path":"/a.txt?1"`)
	if l := logs.Lines(`"path":"/a.txt?1"`); len(l) != 1 || !strings.Contains(l[0], `"level":"info"`) || !strings.Contains(l[0], `"message":"request"`) {
		t.Errorf("access lines of /a.txt?1: %q; want one info line, message request", l)
	}
	if logs.Contains(`"listen"`) {
		t.Errorf("an info line that is not an access line, at level warn:\n%s", logs)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v", err)
	}
}

// TestSIGUSR1WithoutAccessLogFile: SIGUSR1 with the access log on standard
// error says there is no file to reopen; it said "access log reopened".
func TestSIGUSR1WithoutAccessLogFile(t *testing.T) {
	p := startFerry(t, "--root", t.TempDir())
	if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "ferry: no access log file to reopen")
	if p.logs.Contains("access log reopened") {
		t.Errorf("SIGUSR1 without an access log file said it reopened one:\n%s", p.logs)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v", err)
	}
}

// TestReloadSwitchesProcessLog: a reload that changes [log] format and
// level changes every line ferry writes from then on: those of the
// command, of the fronts and of a worker pool the reload keeps. Before,
// only the new configuration's own lines (its requests') took them: a
// kept pool went on logging in the console format at the old level, among
// JSON lines, and so did ferry's own lines ("ferry: stopped").
func TestReloadSwitchesProcessLog(t *testing.T) {
	dir := testdir.Open(t)
	self := testdir.Executable(t)
	mustMkdir(t, filepath.Join(dir, "cgi-bin"))
	mustWrite(t, filepath.Join(dir, "cgi-bin", "fail.sh"), 0o755, "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho failing\nexit 3\n")
	addr := freeAddr(t)
	config := func(format, level string) string {
		return fmt.Sprintf(`listen = ["http://%s"]

[log]
format = %q
level = %q
access_log = false

[mount."/cgi-bin/"]
backend = "cgi:%s"

[mount."/fcgi/"]
backend = "fastcgi+exec:%s?workers=1"
env = { FERRY_TEST_FCGI_WORKER = "1", VARIANT = "kept" }
`, addr, format, level, filepath.Join(dir, "cgi-bin"), self)
	}
	file := filepath.Join(dir, "ferry.toml")
	mustWrite(t, file, 0o644, config("console", "info"))
	p := startFerryAnswering(t, "http://"+addr, "/fcgi/", "--config", file)
	cmd, logs := p.cmd, p.logs
	workers := workerPIDs(cmd.Process.Pid, self)
	if len(workers) != 1 {
		t.Fatalf("workers %v; want one", workers)
	}

	// To JSON, and warn: the kept pool's info lines go too.
	mustWrite(t, file, 0o644, config("json", "warn"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// No info line says the reload is done, at this level: a failing
	// script's warning, of the new configuration, does.
	for deadline := time.Now().Add(10 * time.Second); !logs.Contains(`"script":`); time.Sleep(20 * time.Millisecond) {
		httpGetNoFatal(p.URL + "/cgi-bin/fail.sh")
		if time.Now().After(deadline) {
			t.Fatalf("no JSON warning of a failing script after the reload:\n%s", logs)
		}
	}
	if now := workerPIDs(cmd.Process.Pid, self); !slices.Equal(now, workers) {
		t.Fatalf("workers %v -> %v; want the pool kept", workers, now)
	}
	// The kept pool's worker dies: the pool says so, and restarts it.
	if err := syscall.Kill(workers[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		now := workerPIDs(cmd.Process.Pid, self)
		if code, _ := httpGetNoFatal(p.URL + "/fcgi/"); code == http.StatusOK && len(now) == 1 && now[0] != workers[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kept pool did not replace its worker:\n%s", logs)
		}
	}
	waitLog(t, p, `"spawn: worker exited"`)
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v", err)
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	first := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "{") })
	if first < 0 {
		t.Fatalf("no JSON line:\n%s", logs)
	}
	for _, l := range lines[:first] {
		if strings.Contains(l, "DBG") || !strings.Contains(l, "INF") && !strings.Contains(l, "WRN") {
			t.Errorf("before the reload, a line not of the console format at level info: %q", l)
		}
	}
	if !strings.Contains(strings.Join(lines[:first], "\n"), "ferry: SIGHUP: reloading the configuration") {
		t.Errorf("the console lines do not run up to the reload:\n%s", strings.Join(lines[:first], "\n"))
	}
	for _, l := range lines[first:] {
		var line struct{ Level, Message string }
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Errorf("after the reload, a line not JSON: %q", l)
			continue
		}
		if line.Level != "warn" && line.Level != "error" {
			t.Errorf("after the reload to level warn, a line at %s: %q", line.Level, l)
		}
	}
	if n := len(logs.Lines(`"message":"spawn: worker exited"`)); n != 1 {
		t.Errorf("%d JSON lines of the kept pool's worker exiting; want 1:\n%s", n, logs)
	}
}

// startFerryAnswering runs "ferry serve args..." with its own log flags,
// whose lines may not say it listens, and waits until url+probe answers
// 200. It is stopped (SIGKILL) at cleanup.
func startFerryAnswering(t *testing.T, url, probe string, args ...string) *ferryProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "FERRY_TEST_MAIN=1")
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &ferryProc{URL: url, cmd: cmd, logs: logs, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { p.stop(t, syscall.SIGKILL) })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := httpGetNoFatal(url + probe); code == http.StatusOK {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferry did not answer within 20s:\n%s", logs)
		}
	}
}
