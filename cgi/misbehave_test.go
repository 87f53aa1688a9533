package cgi

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/procfs"
	"github.com/ferrygw/ferry/internal/testdir"
)

// getWithin sends a GET and reads the whole response, failing the test if
// that takes longer than limit. The body read error, if any, is returned.
func getWithin(t *testing.T, url string, limit time.Duration) (*http.Response, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v after %v", url, err, time.Since(start))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("GET %s: response not complete within %v (read %q)", url, limit, b)
	}
	return resp, string(b), err
}

// processGroupGone waits until no process is left in process group pgid.
func processGroupGone(t *testing.T, pgid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if members := groupMembers(pgid); len(members) == 0 {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("process group %d still has %v", pgid, members)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStdoutClosedEarly is issue 16's first case: a script that answers,
// closes stdout and goes on working. Its response is complete at stdout's
// end and must reach the client then, not at the timeout.
func TestStdoutClosedEarly(t *testing.T) {
	leakcheck.Check(t)
	dir, state := testdir.Open(t), testdir.Open(t)
	writeScript(t, dir, "early.sh", `echo $$ > "$STATE/pid"
printf 'Content-Type: text/plain\n\nbye\n'
exec 1>&-
sleep 30`)
	srv, logs := serveDir(t, dir, &Handler{Timeout: 3 * time.Second, KillGrace: 100 * time.Millisecond, Settings: Settings{Env: []string{"STATE=" + state}}})
	start := time.Now()
	resp, body, err := getWithin(t, srv.URL+"/cgi-bin/early.sh", 2*time.Second)
	if err != nil || resp.StatusCode != 200 || body != "bye\n" {
		t.Fatalf("got %d %q, %v; want 200 \"bye\\n\"", resp.StatusCode, body, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("response took %v; want it at stdout's end", d)
	}
	pid := readPID(t, filepath.Join(state, "pid"))
	if !leakcheck.Alive(pid) {
		t.Errorf("script was stopped when it closed stdout; it may work on until its timeout")
	}
	// It goes on until the timeout, which is logged.
	waitGone(t, pid)
	processGroupGone(t, pid)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `"timed_out":true`) {
		if time.Now().After(deadline) {
			t.Fatalf("the timeout after the response was not logged:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBackgroundChildHoldingStdout is issue 16's second case: the script
// starts a background child that inherits stdout, and exits at once.
func TestBackgroundChildHoldingStdout(t *testing.T) {
	leakcheck.Check(t)
	dir, state := testdir.Open(t), testdir.Open(t)
	writeScript(t, dir, "daemon.sh", `printf 'Content-Type: text/plain\n\nstarted\n'
sleep 1000 &
echo $! > "$STATE/child"
echo $$ > "$STATE/pid"`)
	srv, logs := serveDir(t, dir, &Handler{Timeout: 10 * time.Second, KillGrace: 100 * time.Millisecond, Settings: Settings{Env: []string{"STATE=" + state}}})
	start := time.Now()
	resp, body, err := getWithin(t, srv.URL+"/cgi-bin/daemon.sh", 3*time.Second)
	if err != nil || resp.StatusCode != 200 || body != "started\n" {
		t.Fatalf("got %d %q, %v; want 200 \"started\\n\" complete", resp.StatusCode, body, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("response took %v", d)
	}
	child := readPID(t, filepath.Join(state, "child"))
	waitGone(t, child)
	processGroupGone(t, readPID(t, filepath.Join(state, "pid")))
	l := logs.String()
	if !strings.Contains(l, "holds its stdout") || !strings.Contains(l, "daemon.sh") || !strings.Contains(l, fmt.Sprint(child)) {
		t.Errorf("no warning naming the script and child %d:\n%s", child, l)
	}
}

// TestBackgroundChild checks that a background child that does not hold
// stdout is stopped with the script's process group when the request ends,
// unless KeepBackground lets it live.
func TestBackgroundChild(t *testing.T) {
	dir, state := testdir.Open(t), testdir.Open(t)
	writeScript(t, dir, "bg.sh", `sleep 1000 >/dev/null 2>&1 &
echo $! > "$STATE/child-$QUERY_STRING"
printf 'Content-Type: text/plain\n\nok'`)
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("KeepBackground=%v", keep), func(t *testing.T) {
			srv, logs := serveDir(t, dir, &Handler{KeepBackground: keep, KillGrace: 100 * time.Millisecond, Settings: Settings{Env: []string{"STATE=" + state}}})
			resp, body, err := getWithin(t, srv.URL+fmt.Sprintf("/cgi-bin/bg.sh?%v", keep), 3*time.Second)
			if err != nil || resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("got %d %q, %v; want 200 ok", resp.StatusCode, body, err)
			}
			child := readPID(t, filepath.Join(state, fmt.Sprintf("child-%v", keep)))
			if !keep {
				waitGone(t, child)
				if !strings.Contains(logs.String(), "background") {
					t.Errorf("stopping the background child was not logged:\n%s", logs)
				}
				return
			}
			time.Sleep(300 * time.Millisecond)
			if !leakcheck.Alive(child) {
				t.Fatalf("KeepBackground: background child %d was stopped", child)
			}
			if p, err := os.FindProcess(child); err == nil {
				p.Kill()
			}
			waitGone(t, child)
		})
	}
}

// cancelOnSignal serves h with a request context the test can end while
// the client stays connected, as a server shutting down does.
type cancelOnSignal struct {
	h      http.Handler
	mu     sync.Mutex
	cancel context.CancelFunc
}

func (c *cancelOnSignal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancelCause(r.Context())
	c.mu.Lock()
	c.cancel = func() { cancel(errors.New("shutting down")) }
	c.mu.Unlock()
	c.h.ServeHTTP(w, r.WithContext(ctx))
}

func (c *cancelOnSignal) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancel()
}

// TestKilledScriptNeverLooksLikeSuccess: a request whose context ends (a
// shutdown) while its script runs must not get "200 OK" with an empty or a
// cut body that looks whole.
func TestKilledScriptNeverLooksLikeSuccess(t *testing.T) {
	leakcheck.Check(t)
	dir, state := testdir.Open(t), testdir.Open(t)
	writeScript(t, dir, "silent.sh", `echo $$ > "$STATE/silent"; sleep 30`)
	writeScript(t, dir, "partial.sh", `printf 'Content-Type: text/plain\n\nfirst\n'; echo $$ > "$STATE/partial"; sleep 30; echo last`)
	logs := &syncBuffer{}
	c := &cancelOnSignal{h: &Handler{KillGrace: 100 * time.Millisecond, Settings: Settings{Env: []string{"STATE=" + state}, Logger: testLogger(logs)}, Resolver: &Dir{Path: dir, Prefix: "/cgi-bin/"}}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	t.Run("before-output", func(t *testing.T) {
		go func() {
			readPID(t, filepath.Join(state, "silent"))
			c.fire()
		}()
		resp, body, _ := getWithin(t, srv.URL+"/cgi-bin/silent.sh", 5*time.Second)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("status %d %q; want 503", resp.StatusCode, body)
		}
		if !strings.Contains(logs.String(), "before it answered") {
			t.Errorf("log does not say the script was stopped before it answered:\n%s", logs)
		}
	})
	t.Run("mid-output", func(t *testing.T) {
		// The request ends only once the client has the first line: until
		// the handler has sent it, an abort sends nothing, and the client
		// would send the GET again on a new connection.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/cgi-bin/partial.sh", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if first, err := br.ReadString('\n'); first != "first\n" || err != nil {
			t.Fatalf("first line %q, %v; want %q", first, err, "first\n")
		}
		readPID(t, filepath.Join(state, "partial"))
		c.fire()
		rest, err := io.ReadAll(br)
		switch {
		case ctx.Err() != nil:
			t.Fatalf("response not cut within 5s (read %q after the first line)", rest)
		case err == nil:
			t.Errorf("got %d \"first\\n%s\" read without error; a cut response must not look whole", resp.StatusCode, rest)
		}
		if !strings.Contains(logs.String(), "mid-response") {
			t.Errorf("log does not say the response was cut:\n%s", logs)
		}
	})
	srv.Client().CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
}

// TestShortBodyTimeoutHTTP: a request declaring more body than it sends
// gets 504 at the script's timeout, and its slot is freed (the FastCGI and
// SCGI fronts have the same test in their packages).
func TestShortBodyTimeoutHTTP(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "read.sh", `cat >/dev/null; printf 'Content-Type: text/plain\n\nread'`)
	writeScript(t, dir, "ok.sh", `printf 'Content-Type: text/plain\n\nok'`)
	h := &Handler{MaxConcurrent: 2, Timeout: 500 * time.Millisecond, KillGrace: 100 * time.Millisecond}
	srv, _ := serveDir(t, dir, h)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /cgi-bin/read.sh HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n12345")
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Errorf("short body: %v", err)
				return
			}
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Errorf("short body: status %d; want 504", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if resp, body, _ := getWithin(t, srv.URL+"/cgi-bin/ok.sh", 5*time.Second); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("next request: %d %q; want 200 ok", resp.StatusCode, body)
	}
}

// TestMisbehavingScripts runs scripts that misbehave in the ordinary ways
// (issue 16 point 1), and checks that each gets the answer doc.go's table
// documents, within a bounded time, and leaves no process behind.
func TestMisbehavingScripts(t *testing.T) {
	leakcheck.Check(t)
	dir, state := testdir.Open(t), testdir.Open(t)
	const (
		timeout = time.Second
		grace   = 200 * time.Millisecond
		bound   = timeout + grace + 1500*time.Millisecond // the longest any answer may take
	)
	writeScript(t, dir, "ok.sh", `printf 'Content-Type: text/plain\n\nok'`)
	tests := []struct {
		name   string
		script string // after "echo $$ > $STATE/$NAME"; a background child's pid goes to $STATE/$NAME.child
		status int    // 0: no response at all
		body   string
		cut    bool   // the body read must fail: the response was aborted
		log    string // the log must say this
		slow   bool   // allowed 10 s (the race detector slows a flood down)
	}{
		{name: "never-answers", script: `sleep 30`, status: 504, log: "timed out"},
		{name: "headers-then-silence", script: `printf 'Content-Type: text/plain\n\n'; sleep 30`, status: 200, cut: true, log: "mid-response"},
		{name: "output-then-silence", script: `printf 'Content-Type: text/plain\n\nsome'; sleep 30`, status: 200, body: "some", cut: true, log: "mid-response"},
		{name: "100MB-of-stderr", script: `yes 0123456789012345678901234567890123456789 | head -c 100000000 >&2; printf 'Content-Type: text/plain\n\ndone'`, status: 200, body: "done", log: "stderr limit reached", slow: true},
		{name: "stdout-closed-early", script: `printf 'Content-Type: text/plain\n\nbye'; exec 1>&-; sleep 30`, status: 200, body: "bye"},
		{name: "child-holding-stdout", script: `printf 'Content-Type: text/plain\n\nstarted'; sleep 30 & echo $! > "$STATE/$NAME.child"`, status: 200, body: "started", log: "holds its stdout"},
		{name: "child-not-holding-stdout", script: `sleep 30 >/dev/null 2>&1 & echo $! > "$STATE/$NAME.child"; printf 'Content-Type: text/plain\n\nok'`, status: 200, body: "ok", log: "background processes"},
		{name: "exit-nonzero-before-output", script: `exit 3`, status: 502, log: "wrote no output"},
		{name: "exit-nonzero-after-output", script: `printf 'Content-Type: text/plain\n\ndone'; exit 3`, status: 200, body: "done", log: `"exit":"exit status 3"`},
		{name: "status-out-of-range", script: `printf 'Status: 999 Nonsense\nContent-Type: text/plain\n\nx'`, status: 502, log: "bad Status"},
		{name: "header-line-past-limit", script: `printf 'Content-Type: text/plain\nX-Long: %s\n\nx' "$(head -c 20000 /dev/zero | tr '\0' a)"`, status: 502, log: "bad script response"},
		{name: "binary-garbage", script: `printf '\177ELF\002\001\001\000garbage\n\n\001\002'`, status: 502, log: "bad script response"},
		{name: "no-blank-line", script: `printf 'Content-Type: text/plain\nX-More: y\n'`, status: 502, log: "bad script response"},
		{name: "ignores-sigterm", script: `trap '' TERM; sleep 30 & wait; sleep 30`, status: 504, log: "timed out"},
	}
	for _, tt := range tests {
		writeScript(t, dir, tt.name+".sh", `NAME=$(basename "$0" .sh); echo $$ > "$STATE/$NAME"`+"\n"+tt.script)
	}
	logs := &syncBuffer{}
	srv, _ := serveDir(t, dir, &Handler{Timeout: timeout, KillGrace: grace, Settings: Settings{Env: []string{"STATE=" + state}, Logger: testLogger(logs)}})
	slowSrv, _ := serveDir(t, dir, &Handler{Timeout: 10 * time.Second, KillGrace: grace, Settings: Settings{Env: []string{"STATE=" + state}, Logger: testLogger(logs)}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			url, limit := srv.URL, bound
			if tt.slow {
				url, limit = slowSrv.URL, 10*time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", url+"/cgi-bin/"+tt.name+".sh", nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("no response within %v: %v", limit, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if ctx.Err() != nil {
				t.Fatalf("no complete answer within %v (read %q)", limit, b)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status %d; want %d (body %q)", resp.StatusCode, tt.status, b)
			}
			if tt.body != "" && string(b) != tt.body {
				t.Errorf("body %q; want %q", b, tt.body)
			}
			if cut := err != nil; cut != tt.cut {
				t.Errorf("body read error %v; want a cut response: %v", err, tt.cut)
			}
			t.Logf("%d, %d bytes, cut %v, in %v", resp.StatusCode, len(b), err != nil, took.Round(time.Millisecond))
			pgid := readPID(t, filepath.Join(state, tt.name))
			processGroupGone(t, pgid)
			if _, err := os.Stat(filepath.Join(state, tt.name+".child")); err == nil {
				waitGone(t, readPID(t, filepath.Join(state, tt.name+".child")))
			}
			deadline := time.Now().Add(5 * time.Second)
			for tt.log != "" && len(logs.Lines("/"+tt.name+".sh", tt.log)) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("log lacks %q for %s", tt.log, tt.name)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}

	t.Run("fork-bomb", func(t *testing.T) {
		// Bounded by RLimitNProc, as a user of its own (the limit counts
		// every process of the user); ferry keeps serving meanwhile.
		h := &Handler{Timeout: timeout, KillGrace: grace, Settings: Settings{Env: []string{"STATE=" + state}}, RLimitNProc: 64}
		if os.Geteuid() == 0 {
			h.User = "nobody"
		} else {
			h.RLimitNProc += int64(len(userProcesses(os.Getuid())))
		}
		writeScript(t, dir, "bomb.sh", `echo $$ > "$STATE/bomb"
bomb() { bomb | bomb & }
bomb 2>/dev/null
exec sleep 30`) // exec: past the limit, a fork would fail
		bombSrv, _ := serveDir(t, dir, h)
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, body, _ := getWithin(t, bombSrv.URL+"/cgi-bin/bomb.sh", bound)
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Errorf("fork bomb: %d %q; want 504", resp.StatusCode, body)
			}
		}()
		pgid := readPID(t, filepath.Join(state, "bomb"))
		for range 5 {
			resp, body, err := getWithin(t, srv.URL+"/cgi-bin/ok.sh", 2*time.Second)
			if err != nil || resp.StatusCode != 200 || body != "ok" {
				t.Errorf("during the fork bomb: %d %q, %v; want 200 ok", resp.StatusCode, body, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		<-done
		processGroupGone(t, pgid)
		if h.User == "nobody" {
			// The bomb's forks, zombies too (they count against the
			// limit until reaped), are in its process group; other
			// packages' tests, run beside this one, may have scripts of
			// nobody's of their own.
			bombs := func() []int {
				var pids []int
				for _, pid := range userProcesses(65534) {
					if p, ok := procfs.Stat(pid); ok && p.PGID == pgid {
						pids = append(pids, pid)
					}
				}
				return pids
			}
			deadline := time.Now().Add(10 * time.Second)
			for n := bombs(); len(n) > 0; n = bombs() {
				if time.Now().After(deadline) {
					t.Fatalf("fork bomb processes left: %v", n)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
}

// userProcesses returns the pids of uid's processes, zombies included
// (they count against RLIMIT_NPROC until reaped).
func userProcesses(uid int) []int {
	var pids []int
	procfs.Each(func(p procfs.Process) {
		fi, err := os.Stat("/proc/" + strconv.Itoa(p.PID))
		if err != nil {
			return
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
			pids = append(pids, p.PID)
		}
	})
	return pids
}

// TestTimeoutIgnoredSIGTERM: a script that ignores the SIGTERM of its
// timeout got its 504 (or its cut response) only at its SIGKILL,
// KillGrace after Timeout, though the package documentation says at
// Timeout, as Apache answers: the stdout read waited for the pipe's end,
// and the request for the script's exit. It is answered at Timeout now;
// the script is still killed KillGrace later, and holds its slot till
// then.
func TestTimeoutIgnoredSIGTERM(t *testing.T) {
	leakcheck.Check(t)
	dir, state := testdir.Open(t), testdir.Open(t)
	const (
		timeout = 500 * time.Millisecond
		grace   = 4 * time.Second
	)
	tests := []struct {
		name   string
		script string
		status int
		body   string
		cut    bool
	}{
		{"never-answers", `trap '' TERM; exec sleep 30`, 504, "504 Gateway Timeout\n", false},
		{"output-then-silence", `printf 'Content-Type: text/plain\n\nsome'; trap '' TERM; exec sleep 30`, 200, "some", true},
	}
	for _, tt := range tests {
		writeScript(t, dir, tt.name+".sh", `echo $$ > "$STATE/`+tt.name+`"`+"\n"+tt.script)
	}
	h := &Handler{Timeout: timeout, KillGrace: grace, MaxConcurrent: 1, Settings: Settings{Env: []string{"STATE=" + state}}}
	srv, logs := serveDir(t, dir, h)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			resp, err := http.Get(srv.URL + "/cgi-bin/" + tt.name + ".sh")
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != tt.status || string(b) != tt.body || (err != nil) != tt.cut {
				t.Errorf("%d %q, read error %v; want %d %q, cut %v", resp.StatusCode, b, err, tt.status, tt.body, tt.cut)
			}
			if took > timeout+grace/2 {
				t.Errorf("answered in %v; want about %v (Timeout), not Timeout+KillGrace (%v)", took.Round(time.Millisecond), timeout, timeout+grace)
			}
			// Killed KillGrace later all the same.
			processGroupGone(t, readPID(t, filepath.Join(state, tt.name)))
		})
	}
	if !strings.Contains(logs.String(), `"timed_out":true`) {
		t.Errorf("no script finished line says timed_out:\n%s", logs)
	}
}
