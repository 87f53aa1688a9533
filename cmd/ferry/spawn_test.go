package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/procfs"
	"github.com/ferrygw/ferry/internal/testdir"
)

// Interop with the FastCGI tools of the spawn-fcgi and libfcgi-bin Debian
// packages, which share no code with ferry: spawn-fcgi starts ferry with
// the listening socket on descriptor 0 (FCGI_LISTENSOCK_FILENO), as
// mod_fcgid and lighttpd do, and libfcgi's cgi-fcgi plays the web server,
// turning its own CGI environment and stdin into a FastCGI request and
// printing the application's STDOUT as it came.

// writeSpawnScripts writes the CGI scripts the cgi-fcgi cases run.
func writeSpawnScripts(t *testing.T) string {
	t.Helper()
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "hello.sh"), `#!/bin/sh
printf 'Content-Type: text/plain\r\nX-Script: hello\r\n\r\n'
printf 'method=%s\n' "$REQUEST_METHOD"
printf 'script=%s\n' "$SCRIPT_NAME"
printf 'path_info=%s\n' "$PATH_INFO"
printf 'query=%s\n' "$QUERY_STRING"
printf 'x_test=%s\n' "$HTTP_X_TEST"
printf 'proxy=%s\n' "${HTTP_PROXY-unset}"
printf 'gateway=%s\n' "$GATEWAY_INTERFACE"
if [ "$REQUEST_METHOD" = POST ]; then
	printf 'content_type=%s\ncontent_length=%s\nbody=' "$CONTENT_TYPE" "$CONTENT_LENGTH"
	cat
	printf '\n'
fi
`)
	writeExec(t, filepath.Join(dir, "echo.sh"), `#!/bin/sh
printf 'Content-Type: application/octet-stream\r\n\r\n'
exec cat
`)
	writeExec(t, filepath.Join(dir, "status.sh"), `#!/bin/sh
printf 'Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope\n'
`)
	writeExec(t, filepath.Join(dir, "slow.sh"), `#!/bin/sh
echo $$ > "$STATE/slow.pid"
sleep 300 &
echo $! > "$STATE/sleep.pid"
printf 'Content-Type: text/plain\r\n\r\nstarted\n'
wait
`)
	return dir
}

// cgiVars returns the CGI environment cgi-fcgi forwards as PARAMS: all of
// its environment, so the test gives it nothing else.
func cgiVars(method, uri string, extra ...string) []string {
	_, query, _ := strings.Cut(uri, "?")
	return append([]string{
		"GATEWAY_INTERFACE=CGI/1.1",
		"SERVER_SOFTWARE=cgi-fcgi",
		"SERVER_NAME=localhost",
		"SERVER_PORT=80",
		"SERVER_PROTOCOL=HTTP/1.1",
		"REMOTE_ADDR=127.0.0.1",
		"REMOTE_PORT=40000",
		"REQUEST_METHOD=" + method,
		"REQUEST_URI=" + uri,
		"QUERY_STRING=" + query,
	}, extra...)
}

// runCGIFCGI runs "cgi-fcgi -bind -connect addr" with env and stdin and
// returns what it printed.
func runCGIFCGI(ctx context.Context, bin, addr string, env []string, stdin []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-bind", "-connect", addr)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("cgi-fcgi: %w (stderr %q)", err, stderr.String())
	}
	return out, nil
}

var requestIDLine = regexp.MustCompile(`\r\nX-Request-Id: ([0-9a-f]{16})\r\n`)

// checkCGIFCGICases runs cgi-fcgi against the ferry at addr with its
// cgi-bin from writeSpawnScripts, and compares what it prints byte for
// byte. ferry's random X-Request-Id is checked against its log, then
// replaced by "ID".
func checkCGIFCGICases(t *testing.T, bin, addr string, logs func() string) {
	t.Helper()
	form := "name=Form+User&x=%26"
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 10_000) // 170 000 bytes: three STDIN and STDOUT records
	for _, tc := range []struct {
		name  string
		env   []string
		stdin []byte
		want  string
	}{
		{
			name: "get",
			env: cgiVars("GET", "/cgi-bin/hello.sh/extra/path?x=1&y=%2F",
				"HTTP_X_TEST=hi", "HTTP_PROXY=http://evil.example:3128"),
			want: "Status: 200 OK\r\nContent-Type: text/plain\r\nX-Request-Id: ID\r\nX-Script: hello\r\n\r\n" +
				"method=GET\nscript=/cgi-bin/hello.sh\npath_info=/extra/path\nquery=x=1&y=%2F\nx_test=hi\nproxy=unset\ngateway=CGI/1.1\n",
		},
		{
			name: "post",
			env: cgiVars("POST", "/cgi-bin/hello.sh",
				"CONTENT_TYPE=application/x-www-form-urlencoded", "CONTENT_LENGTH="+strconv.Itoa(len(form))),
			stdin: []byte(form),
			want: "Status: 200 OK\r\nContent-Type: text/plain\r\nX-Request-Id: ID\r\nX-Script: hello\r\n\r\n" +
				"method=POST\nscript=/cgi-bin/hello.sh\npath_info=\nquery=\nx_test=\nproxy=unset\ngateway=CGI/1.1\n" +
				"content_type=application/x-www-form-urlencoded\ncontent_length=20\nbody=" + form + "\n",
		},
		{
			name:  "echo-big",
			env:   cgiVars("PUT", "/cgi-bin/echo.sh", "CONTENT_LENGTH="+strconv.Itoa(len(big))),
			stdin: big,
			want:  "Status: 200 OK\r\nContent-Type: application/octet-stream\r\nX-Request-Id: ID\r\n\r\n" + string(big),
		},
		{
			name: "status",
			env:  cgiVars("GET", "/cgi-bin/status.sh"),
			want: "Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-Request-Id: ID\r\n\r\nnope\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCGIFCGI(t.Context(), bin, addr, tc.env, tc.stdin)
			if err != nil {
				t.Fatalf("%v; printed %q\nferry's log:\n%s", err, out, logs())
			}
			m := requestIDLine.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no X-Request-Id line in %q", clip(out))
			}
			// The log line reaches us through a pipe, maybe after cgi-fcgi exits.
			for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs(), `"req_id":"`+string(m[1])+`"`); {
				if time.Now().After(deadline) {
					t.Errorf("request ID %s is not in ferry's log:\n%s", m[1], logs())
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			got := strings.Replace(string(out), string(m[1]), "ID", 1)
			if got != tc.want {
				t.Errorf("cgi-fcgi printed\n%q\nwant\n%q", clip([]byte(got)), clip([]byte(tc.want)))
			}
		})
	}
}

// clip shortens b for a failure message.
func clip(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return string(b)
}

// spawnedFerry is ferry started by spawn-fcgi, in a process group of its own.
type spawnedFerry struct {
	pgid int
	logs *logBuffer
	done chan struct{} // closed when spawn-fcgi (which becomes ferry) has exited
	err  error         // its Wait error, set before done is closed
}

// startSpawnFCGI runs "spawn-fcgi -n -a 127.0.0.1 -p PORT -- <test binary>
// serve args..." (network "tcp") or "spawn-fcgi -n -s SOCKET -- ..."
// ("unix") in a new process group, waits until ferry listens on the socket
// it was handed, and returns the address to connect to. spawn-fcgi keeps
// its environment for the program, so FERRY_TEST_MAIN=1 reaches it; with -n
// it does not fork but binds, puts the socket on descriptor 0 and execs
// ferry in its place. A port taken between FreePort and the bind is retried.
func startSpawnFCGI(t *testing.T, spawnBin, network string, args ...string) (*spawnedFerry, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for try := 1; ; try++ {
		var addr string
		var argv []string
		if network == "unix" {
			addr = filepath.Join(t.TempDir(), "ferry.sock")
			argv = []string{"-n", "-s", addr, "-M", "0600"}
		} else {
			port, err := peers.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			addr = "127.0.0.1:" + strconv.Itoa(port)
			argv = []string{"-n", "-a", "127.0.0.1", "-p", strconv.Itoa(port)}
		}
		argv = append(append(argv, "--", self, "serve", "--log-format", "json", "--log-level", "debug"), args...)
		cmd := exec.Command(spawnBin, argv...)
		cmd.Env = append(os.Environ(), "FERRY_TEST_MAIN=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		pr, pw := io.Pipe()
		p := &spawnedFerry{logs: &logBuffer{}, done: make(chan struct{})}
		cmd.Stdout = p.logs
		cmd.Stderr = io.MultiWriter(p.logs, pw)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p.pgid = cmd.Process.Pid
		go func() {
			p.err = cmd.Wait()
			pw.Close()
			close(p.done)
		}()
		t.Cleanup(func() {
			p.stop(t, syscall.SIGKILL)
			if left := procfs.GroupMembers(p.pgid); len(left) > 0 {
				t.Errorf("processes %v of ferry's group %d outlived it", left, p.pgid)
			}
		})

		listen := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(pr)
			found := false
			for sc.Scan() {
				var line struct{ Listen string }
				if !found && json.Unmarshal(sc.Bytes(), &line) == nil && line.Listen != "" {
					listen <- line.Listen
					found = true
				}
			}
			close(listen)
		}()
		select {
		case l, ok := <-listen:
			if !ok {
				if try < 3 && strings.Contains(p.logs.String(), "bind failed") {
					continue
				}
				t.Fatalf("spawn-fcgi or ferry exited before listening (%v):\n%s", p.err, p.logs)
			}
			// No --listen: ferry found the socket on descriptor 0 itself.
			if l != "fastcgi+fd://0" {
				t.Errorf("ferry listens on %q; want fastcgi+fd://0", l)
			}
			return p, addr
		case <-time.After(20 * time.Second):
			t.Fatalf("ferry did not listen within 20s:\n%s", p.logs)
		}
	}
}

// stop sends sig to ferry's whole process group and waits for ferry to
// exit, returning its Wait error.
func (p *spawnedFerry) stop(t *testing.T, sig syscall.Signal) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = syscall.Kill(-p.pgid, sig) // ESRCH: the group is gone already
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL) // as above
		<-p.done
		t.Errorf("ferry did not exit within 30s of %v", sig)
	}
	return p.err
}

// TestSpawnFCGI starts ferry the way spawn-fcgi, mod_fcgid and lighttpd
// start FastCGI applications (the listening socket as descriptor 0, no
// --listen), drives it with libfcgi's cgi-fcgi, then stops ferry's process
// group with a script still running and checks that nothing is left.
func TestSpawnFCGI(t *testing.T) {
	bins := peerstest.Need(t, "spawn-fcgi", "cgi-fcgi")
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			leakcheck.Check(t)
			dir := writeSpawnScripts(t)
			state := testdir.Open(t)
			p, addr := startSpawnFCGI(t, bins["spawn-fcgi"], network, "--mount", "/cgi-bin/=cgi:"+dir, "--env", "STATE="+state,
				"--shutdown-timeout", "300ms", "--cgi-kill-grace", "200ms")
			checkCGIFCGICases(t, bins["cgi-fcgi"], addr, p.logs.String)
			if t.Failed() {
				return
			}

			// A request still running at SIGTERM: ferry drains for
			// --shutdown-timeout, then stops the script's own process group.
			slow := make(chan error, 1)
			go func() {
				_, err := runCGIFCGI(context.Background(), bins["cgi-fcgi"], addr, cgiVars("GET", "/cgi-bin/slow.sh"), nil)
				slow <- err
			}()
			script := waitFile(t, filepath.Join(state, "slow.pid"))
			sleeper := waitFile(t, filepath.Join(state, "sleep.pid"))
			if err := p.stop(t, syscall.SIGTERM); err != nil {
				t.Errorf("ferry exited with %v after SIGTERM:\n%s", err, p.logs)
			}
			select {
			case <-slow: // cut short: its error says only that the connection closed
			case <-time.After(20 * time.Second):
				t.Fatalf("cgi-fcgi still waiting 20s after ferry exited")
			}
			for _, pid := range []int{script, sleeper} {
				if leakcheck.Alive(pid) {
					t.Errorf("script process %d outlived ferry", pid)
					_ = syscall.Kill(pid, syscall.SIGKILL) // leave nothing behind
				}
			}
			if left := procfs.GroupMembers(p.pgid); len(left) > 0 {
				t.Errorf("processes %v of ferry's group %d outlived it", left, p.pgid)
			}
			if strings.Contains(p.logs.String(), "panic") {
				t.Errorf("ferry logged a panic:\n%s", p.logs)
			}
		})
	}
}

// TestCGIFCGIListen drives "ferry serve --listen fastcgi://127.0.0.1:0"
// with libfcgi's cgi-fcgi.
func TestCGIFCGIListen(t *testing.T) {
	bins := peerstest.Need(t, "cgi-fcgi")
	leakcheck.Check(t)
	dir := writeSpawnScripts(t)
	p := startFerryArgs(t, "--listen", "fastcgi://127.0.0.1:0", "--mount", "/cgi-bin/=cgi:"+dir)
	addr, ok := strings.CutPrefix(p.URL, "fastcgi://")
	if !ok {
		t.Fatalf("ferry listens on %q; want fastcgi://", p.URL)
	}
	checkCGIFCGICases(t, bins["cgi-fcgi"], addr, p.logs.String)
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v after SIGTERM:\n%s", err, p.logs)
	}
	if leakcheck.Alive(p.cmd.Process.Pid) {
		t.Errorf("ferry %d still running", p.cmd.Process.Pid)
	}
}
