package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
)

// waitDead waits for pid to be gone (or a zombie).
func waitDead(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for leakcheck.Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive after %v", pid, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// getInBackground GETs url in a goroutine, and sends on the channel it
// returns the body, or the error's text.
func getInBackground(url string) <-chan string {
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	return result
}

// TestSIGHUPKeepsScripts: SIGHUP used to end ferry at once, with no drain
// and no log line, leaving its scripts behind. Now it reloads (here the
// flags' configuration, with no file), says so, and requests in flight
// carry on.
func TestSIGHUPKeepsScripts(t *testing.T) {
	leakcheck.Check(t)
	dir, state := testdir.Open(t), testdir.Open(t)
	writeExec(t, filepath.Join(dir, "wait.sh"), `#!/bin/sh
echo $$ > "$STATE/wait.pid"
printf 'Content-Type: text/plain\n\n'
while [ ! -e "$STATE/go" ]; do sleep 0.01; done
echo finished`)
	writeExec(t, filepath.Join(dir, "ok.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok'")
	p := startFerry(t, "--mount", "/cgi-bin/=cgi:"+dir, "--env", "STATE="+state)
	result := getInBackground(p.URL + "/cgi-bin/wait.sh")
	script := waitFile(t, filepath.Join(state, "wait.pid"))
	for range 2 {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitLog(t, p, "configuration reloaded")
	if code, body := httpGet(t, p.URL+"/cgi-bin/ok.sh"); code != 200 || body != "ok" {
		t.Errorf("after SIGHUP: %d %q; want 200 ok", code, body)
	}
	if !leakcheck.Alive(script) {
		t.Errorf("the script in flight was stopped by SIGHUP")
	}
	os.WriteFile(filepath.Join(state, "go"), nil, 0o644)
	if got := <-result; got != "finished\n" {
		t.Errorf("in-flight request got %q; want it to finish", got)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("exit: %v", err)
	}
	if os.Geteuid() == 0 && !strings.Contains(p.logs.String(), "CGI scripts run as "+cgi.DefaultUser()) {
		t.Errorf("ferry, as root, did not say which user scripts run as:\n%s", p.logs)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestScriptDiesWithFerry: a ferry killed with SIGKILL, which can stop
// nothing itself, takes its running scripts with it (their parent-death
// signal). The script's own background children live on: only ferry alive
// can stop a process group.
func TestScriptDiesWithFerry(t *testing.T) {
	dir, state := testdir.Open(t), testdir.Open(t)
	writeExec(t, filepath.Join(dir, "long.sh"), `#!/bin/sh
echo $$ > "$STATE/pid"
printf 'Content-Type: text/plain\n\nstarted\n'
sleep 300 &
echo $! > "$STATE/child"
wait`)
	p := startFerry(t, "--mount", "/cgi-bin/=cgi:"+dir, "--env", "STATE="+state)
	resp, err := http.Get(p.URL + "/cgi-bin/long.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if line, _ := bufio.NewReader(resp.Body).ReadString('\n'); line != "started\n" {
		t.Fatalf("first line %q", line)
	}
	pid := waitFile(t, filepath.Join(state, "pid"))
	child := waitFile(t, filepath.Join(state, "child"))
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	p.stop(t, syscall.SIGKILL)
	waitDead(t, pid, 5*time.Second)
	http.DefaultClient.CloseIdleConnections()
}

// TestCGIProcessFlags checks that the --cgi-user, --cgi-group,
// --cgi-rlimit-* and --cgi-max-output flags reach the scripts.
func TestCGIProcessFlags(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing the scripts' user needs root")
	}
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "limits.sh"), `#!/bin/sh
printf 'Content-Type: text/plain\n\n'
echo "ids $(id -u) $(id -g)"
cat /proc/$$/limits`)
	writeExec(t, filepath.Join(dir, "big.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'; head -c 100000 /dev/zero")
	p := startFerry(t, "--mount", "/cgi-bin/=cgi:"+dir, "--cgi-user", "nobody", "--cgi-group", "0",
		"--cgi-rlimit-cpu", "7s", "--cgi-rlimit-as", "1073741824", "--cgi-rlimit-nproc", "123",
		"--cgi-rlimit-nofile", "77", "--cgi-max-output", "4096")
	code, body := httpGet(t, p.URL+"/cgi-bin/limits.sh")
	if code != 200 {
		t.Fatalf("limits.sh: %d %q", code, body)
	}
	if !strings.Contains(body, "ids 65534 0\n") {
		t.Errorf("script ran as %q; want uid 65534 (nobody), gid 0", strings.SplitN(body, "\n", 2)[0])
	}
	for name, want := range map[string]string{
		"Max cpu time": "7 8", "Max address space": "1073741824 1073741824",
		"Max processes": "123 123", "Max open files": "77 77",
	} {
		found := false
		for _, line := range strings.Split(body, "\n") {
			if rest, ok := strings.CutPrefix(line, name); ok {
				f := strings.Fields(rest)
				if len(f) < 2 || f[0]+" "+f[1] != want {
					t.Errorf("%s: soft and hard %q; want %q", name, strings.Join(f, " "), want)
				}
				found = true
			}
		}
		if !found {
			t.Errorf("no %q in the script's limits:\n%s", name, body)
		}
	}
	resp, err := http.Get(p.URL + "/cgi-bin/big.sh")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(b) > 4096 {
		t.Errorf("100000 bytes past --cgi-max-output 4096: read %d, %v; want at most 4096 and an error", len(b), err)
	}
	if !strings.Contains(p.logs.String(), "CGI scripts run as nobody") {
		t.Errorf("ferry did not say which user scripts run as:\n%s", p.logs)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestCGIUserRefused(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"serve", "--cgi-user", "no-such-user-here", "--listen", "http://127.0.0.1:0"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "--cgi-user") {
		t.Errorf("ferry serve --cgi-user no-such-user-here = %d, %q; want 2 and the flag named", code, errb.String())
	}
}

// TestWorkersNotRoot is point 2 of issue 16 for spawned FastCGI workers:
// started as root, ferry runs its php-cgi workers as the scripts' user
// (www-data, else nobody) unless --cgi-user names another, root included.
func TestWorkersNotRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing the workers' user needs root")
	}
	peerstest.Need(t, "php-cgi")
	php, _ := peers.Lookup("php-cgi")
	cred, err := (&cgi.Handler{}).Credential()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		uid  uint32
	}{{nil, cred.Uid}, {[]string{"--cgi-user", "nobody"}, 65534}, {[]string{"--cgi-user", "root"}, 0}} {
		p := startFerry(t, append([]string{"--mount", "/php/=fastcgi+exec:" + php + "?workers=2"}, tt.args...)...)
		var workers []int
		for deadline := time.Now().Add(10 * time.Second); len(workers) < 2; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%v: ferry's children %v; want 2 workers", tt.args, workers)
			}
			workers = leakcheck.Children(p.cmd.Process.Pid)
		}
		for _, pid := range workers {
			if uid, ok := processUID(pid); !ok || uid != tt.uid {
				t.Errorf("%v: worker %d runs as uid %d; want %d", tt.args, pid, uid, tt.uid)
			}
		}
		p.stop(t, syscall.SIGTERM)
	}
}

// processUID returns the real uid of process pid.
func processUID(pid int) (uint32, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				uid, err := strconv.ParseUint(f[0], 10, 32)
				return uint32(uid), err == nil
			}
		}
	}
	return 0, false
}
