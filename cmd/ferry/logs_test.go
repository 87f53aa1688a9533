package main

import (
	"github.com/ferrygw/ferry/internal/testdir"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
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
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(self, "serve", "--config", config, "--listen", "http://"+addr, "--root", dir)
	cmd.Env = append(os.Environ(), "FERRY_TEST_MAIN=1")
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &ferryProc{URL: "http://" + addr, cmd: cmd, logs: logs, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { p.stop(t, syscall.SIGKILL) })
	// No line says it listens, at this level: it listens once it answers.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := httpGetNoFatal(p.URL + "/a.txt?probe"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferry did not answer within 20s:\n%s", logs)
		}
	}
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
