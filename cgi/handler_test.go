package cgi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/rs/zerolog"
)

// writeScript writes an executable sh script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is the shared concurrent log sink.
type syncBuffer = testlog.Buffer

func testLogger(buf *syncBuffer) *zerolog.Logger {
	l := zerolog.New(buf).Level(zerolog.DebugLevel)
	return &l
}

// serveDir starts an HTTP server running the scripts in dir at /cgi-bin/.
func serveDir(t *testing.T, dir string, h *Handler) (*httptest.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if h == nil {
		h = &Handler{}
	}
	if h.Logger == nil {
		h.Logger = testLogger(logs)
	}
	h.Resolver = &Dir{Path: dir, Prefix: "/cgi-bin/"}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, logs
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, string(b)
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for leakcheck.Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPID(t *testing.T, file string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(file)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file %s: %v", file, err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid file %s never written", file)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHandlerResponses(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "doc.sh", `printf 'Content-Type: text/plain\n\nhello %s' "$QUERY_STRING"`)
	writeScript(t, dir, "status.sh", `printf 'Status: 418 Teapot\r\nContent-Type: text/plain\r\n\r\nshort and stout'`)
	writeScript(t, dir, "cookies.sh", `printf 'Content-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\n\nok'`)
	writeScript(t, dir, "client.sh", `printf 'Location: http://example.invalid/x\n\n'`)
	writeScript(t, dir, "moved.sh", `printf 'Status: 301 Moved\nLocation: http://example.invalid/y\n\n'`)
	writeScript(t, dir, "local.sh", `printf 'Location: /cgi-bin/doc.sh?from-local\nX-Dropped: yes\n\nignored body'`)
	writeScript(t, dir, "localfrag.sh", `printf 'Location: /cgi-bin/doc.sh?from-frag#top\n\n'`)
	writeScript(t, dir, "loop.sh", `printf 'Location: /cgi-bin/loop.sh\n\n'`)
	writeScript(t, dir, "bad.sh", `printf 'Status: -12\n\nx'`)
	writeScript(t, dir, "nohead.sh", `echo just a body`)
	writeScript(t, dir, "empty.sh", `exit 0`)
	writeScript(t, dir, "crash.sh", `kill -SEGV $$`)
	writeScript(t, dir, "longhdr.sh", `printf 'Content-Type: text/plain\nX-Long: %s\n\nok' "$(head -c 8000 /dev/zero | tr '\0' a)"`)
	writeScript(t, dir, "hop.sh", `printf 'Content-Type: text/plain\nTransfer-Encoding: chunked\nConnection: close\n\nplain'`)
	srv, logs := serveDir(t, dir, nil)

	tests := []struct {
		path       string
		status     int
		body       string
		header     string // "Name: value" that must be present
		logContain string
	}{
		{path: "/cgi-bin/doc.sh?x=1", status: 200, body: "hello x=1", header: "Content-Type: text/plain"},
		{path: "/cgi-bin/status.sh", status: 418, body: "short and stout"},
		{path: "/cgi-bin/cookies.sh", status: 200, body: "ok"},
		{path: "/cgi-bin/client.sh", status: 302, header: "Location: http://example.invalid/x"},
		{path: "/cgi-bin/moved.sh", status: 301, header: "Location: http://example.invalid/y"},
		{path: "/cgi-bin/local.sh", status: 200, body: "hello from-local"},
		// A fragment is the client's, never part of the path (RFC 3986
		// § 3.5): it was, and the redirect answered 404. Apache drops it.
		{path: "/cgi-bin/localfrag.sh", status: 200, body: "hello from-frag"},
		{path: "/cgi-bin/loop.sh", status: 500, logContain: "too many local redirects"},
		{path: "/cgi-bin/bad.sh", status: 502, logContain: "bad Status"},
		{path: "/cgi-bin/nohead.sh", status: 502, logContain: "no header block"},
		{path: "/cgi-bin/empty.sh", status: 502, logContain: "wrote no output"},
		{path: "/cgi-bin/crash.sh", status: 502, logContain: "signal: segmentation fault"},
		{path: "/cgi-bin/longhdr.sh", status: 200, body: "ok"},
		{path: "/cgi-bin/hop.sh", status: 200, body: "plain"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("GET %s: status %d; want %d (body %q)", tt.path, resp.StatusCode, tt.status, b)
			}
			if tt.body != "" && string(b) != tt.body {
				t.Errorf("GET %s: body %q; want %q", tt.path, b, tt.body)
			}
			if tt.header != "" {
				k, v, _ := strings.Cut(tt.header, ": ")
				if got := resp.Header.Get(k); got != v {
					t.Errorf("GET %s: %s = %q; want %q", tt.path, k, got, v)
				}
			}
			if tt.logContain != "" && !strings.Contains(logs.String(), tt.logContain) {
				t.Errorf("GET %s: log lacks %q:\n%s", tt.path, tt.logContain, logs.String())
			}
		})
	}

	resp, _ := get(t, srv.URL+"/cgi-bin/cookies.sh")
	if got := resp.Header.Values("Set-Cookie"); len(got) != 2 || got[0] != "a=1" || got[1] != "b=2" {
		t.Errorf("Set-Cookie = %q; want [a=1 b=2]", got)
	}
	resp, _ = get(t, srv.URL+"/cgi-bin/local.sh")
	if resp.Header.Get("X-Dropped") != "" {
		t.Errorf("local redirect passed on the first script's header X-Dropped")
	}
	resp, _ = get(t, srv.URL+"/cgi-bin/hop.sh")
	if resp.Header.Get("Connection") == "close" || resp.Close {
		t.Errorf("script's Connection: close reached the client")
	}
}

func TestHandlerEnvironment(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "env.sh", `printf 'Content-Type: text/plain\n\n'; env; echo "PWD_IS=$(pwd)"`)
	t.Setenv("FERRY_TEST_SECRET", "must-not-leak")
	t.Setenv("FERRY_TEST_PASSED", "passed")
	h := &Handler{
		Settings:   Settings{Env: []string{"EXTRA=1", "REQUEST_METHOD=FORGED"}},
		InheritEnv: []string{"PATH", "FERRY_TEST_PASSED"},
	}
	srv, _ := serveDir(t, dir, h)
	_, body := get(t, srv.URL+"/cgi-bin/env.sh/p%20i?q=%2F")
	env := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	want := map[string]string{
		"EXTRA":             "1",
		"REQUEST_METHOD":    "GET",
		"FERRY_TEST_PASSED": "passed",
		"PATH_INFO":         "/p i",
		"QUERY_STRING":      "q=%2F",
		"SCRIPT_NAME":       "/cgi-bin/env.sh",
		"SCRIPT_FILENAME":   filepath.Join(dir, "env.sh"),
		"PWD_IS":            dir,
		"GATEWAY_INTERFACE": "CGI/1.1",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q; want %q", k, env[k], v)
		}
	}
	if _, ok := env["FERRY_TEST_SECRET"]; ok {
		t.Errorf("a variable outside InheritEnv reached the script")
	}
}

func TestHandlerRequestBodies(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "echo.sh", `printf 'Content-Type: text/plain\n\n'; echo "len=$CONTENT_LENGTH"; head -c "${CONTENT_LENGTH:-0}" | sha256sum`)
	h := &Handler{Settings: Settings{BodyLimits: BodyLimits{Memory: 64 << 10, Max: 4 << 20}}}
	srv, _ := serveDir(t, dir, h)

	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"fixed-1MiB", 1 << 20, false, 200},
		{"chunked-small", 1000, true, 200},
		{"chunked-spooled-to-file", 2 << 20, true, 200},
		{"fixed-too-large", 5 << 20, false, 413},
		{"chunked-too-large", 5 << 20, true, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("0123456789abcdef"), tc.size/16+1)[:tc.size]
			var body io.Reader = bytes.NewReader(data)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, _ := http.NewRequest("POST", srv.URL+"/cgi-bin/echo.sh", body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d; want %d (%s)", resp.StatusCode, tc.status, got)
			}
			if tc.status != 200 {
				return
			}
			sum := sha256.Sum256(data)
			want := fmt.Sprintf("len=%d\n%s  -\n", tc.size, hex.EncodeToString(sum[:]))
			if string(got) != want {
				t.Errorf("body %q; want %q", got, want)
			}
		})
	}
}

func TestHandlerTimeoutKillsProcessGroup(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	state := testdir.Open(t)
	// The script forks a child, ignores SIGTERM, and never answers: only
	// SIGKILL to the whole group ends both.
	writeScript(t, dir, "hang.sh", `trap '' TERM
sleep 60 &
echo $! > "$STATE/child"
echo $$ > "$STATE/parent"
wait`)
	h := &Handler{Timeout: 300 * time.Millisecond, KillGrace: 200 * time.Millisecond, Settings: Settings{Env: []string{"STATE=" + state}}}
	srv, logs := serveDir(t, dir, h)
	resp, _ := get(t, srv.URL+"/cgi-bin/hang.sh")
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("status %d; want 504", resp.StatusCode)
	}
	waitGone(t, readPID(t, filepath.Join(state, "parent")))
	waitGone(t, readPID(t, filepath.Join(state, "child")))
	if !strings.Contains(logs.String(), "timed out") {
		t.Errorf("log lacks the timeout:\n%s", logs.String())
	}
}

func TestHandlerTimeoutMidBodyAborts(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "slow.sh", `printf 'Content-Type: text/plain\n\nfirst\n'; sleep 60`)
	srv, _ := serveDir(t, dir, &Handler{Timeout: 300 * time.Millisecond, KillGrace: 100 * time.Millisecond})
	resp, err := http.Get(srv.URL + "/cgi-bin/slow.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("body %q read without error; a truncated response must not look complete", b)
	}
}

func TestHandlerClientDisconnectKillsScript(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	state := testdir.Open(t)
	writeScript(t, dir, "sleep.sh", `echo $$ > "$STATE/pid"
printf 'Content-Type: text/plain\n\nstarted\n'
sleep 60`)
	srv, _ := serveDir(t, dir, &Handler{Settings: Settings{Env: []string{"STATE=" + state}}, KillGrace: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/cgi-bin/sleep.sh", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "started\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	pid := readPID(t, filepath.Join(state, "pid"))
	cancel()
	resp.Body.Close()
	waitGone(t, pid)
	http.DefaultClient.CloseIdleConnections()
}

func TestHandlerStreams(t *testing.T) {
	dir := testdir.Open(t)
	state := testdir.Open(t)
	writeScript(t, dir, "stream.sh", `printf 'Content-Type: text/plain\n\nfirst\n'
while [ ! -e "$STATE/go" ]; do sleep 0.01; done
echo second`)
	srv, _ := serveDir(t, dir, &Handler{Settings: Settings{Env: []string{"STATE=" + state}}})
	resp, err := http.Get(srv.URL + "/cgi-bin/stream.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	// The script is still waiting: the first line came before it ended.
	if err := os.WriteFile(filepath.Join(state, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

func TestHandlerStderrIsLoggedWithinBounds(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "noisy.sh", `echo "marker-one" >&2
yes 0123456789012345678901234567890123456789 | head -c 20000000 >&2
printf 'Content-Type: text/plain\n\ndone'`)
	srv, logs := serveDir(t, dir, &Handler{MaxStderrBytes: 32 << 10, MaxStderrLine: 1000})
	resp, body := get(t, srv.URL+"/cgi-bin/noisy.sh")
	if resp.StatusCode != 200 || body != "done" {
		t.Fatalf("got %d %q; want 200 done", resp.StatusCode, body)
	}
	l := logs.String()
	if !strings.Contains(l, "marker-one") || !strings.Contains(l, "noisy.sh") {
		t.Errorf("stderr line with script name not logged")
	}
	if !strings.Contains(l, "stderr limit reached") {
		t.Errorf("stderr limit not reported")
	}
	if len(l) > 200<<10 {
		t.Errorf("logged %d bytes for a script writing 20 MB to stderr", len(l))
	}
}

func TestHandlerConcurrencyLimit(t *testing.T) {
	dir := testdir.Open(t)
	state := testdir.Open(t)
	writeScript(t, dir, "block.sh", `echo $$ >> "$STATE/started"
while [ ! -e "$STATE/go" ]; do sleep 0.01; done
printf 'Content-Type: text/plain\n\nok'`)
	srv, _ := serveDir(t, dir, &Handler{MaxConcurrent: 1, MaxQueue: 1, QueueTimeout: 10 * time.Second, Settings: Settings{Env: []string{"STATE=" + state}}})

	results := make(chan int, 2)
	for range 2 {
		go func() {
			resp, err := http.Get(srv.URL + "/cgi-bin/block.sh")
			if err != nil {
				results <- -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	readPID(t, filepath.Join(state, "started")) // one runs, one waits
	// Poll until the third request finds the queue full.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := get(t, srv.URL+"/cgi-bin/block.sh")
		if resp.StatusCode == http.StatusServiceUnavailable {
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never got 503 with one running and one queued (last %d)", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	os.WriteFile(filepath.Join(state, "go"), nil, 0o644)
	for range 2 {
		if code := <-results; code != 200 {
			t.Errorf("queued request got %d; want 200", code)
		}
	}
}

func TestHandlerNPH(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "nph-raw.sh", `printf 'HTTP/1.1 299 Custom Reason\r\nX-NPH: yes\r\nContent-Type: text/plain\r\n\r\nraw body'`)
	writeScript(t, dir, "nph-bad.sh", `printf 'Content-Type: text/plain\r\n\r\nnot nph'`)
	srv, _ := serveDir(t, dir, nil)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /cgi-bin/nph-raw.sh HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	want := "HTTP/1.1 299 Custom Reason\r\nX-NPH: yes\r\nContent-Type: text/plain\r\n\r\nraw body"
	if string(got) != want {
		t.Errorf("NPH output %q; want %q", got, want)
	}
	resp, _ := get(t, srv.URL+"/cgi-bin/nph-bad.sh")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("NPH script without a status line: %d; want 502", resp.StatusCode)
	}
}

func TestDirLookup(t *testing.T) {
	root := testdir.Open(t)
	outside := testdir.Open(t)
	writeScript(t, root, "ok.sh", `printf 'Content-Type: text/plain\n\nok %s' "$PATH_INFO"`)
	if err := os.WriteFile(filepath.Join(root, "noexec.sh"), []byte("#!/bin/sh\necho SOURCE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(root, "sub"), 0o755)
	writeScript(t, filepath.Join(root, "sub"), "deep.sh", `printf 'Content-Type: text/plain\n\ndeep %s' "$SCRIPT_NAME"`)
	writeScript(t, outside, "evil.sh", `printf 'Content-Type: text/plain\n\nEVIL'`)
	// A link out of the directory planted by another user: the default
	// policy (owner-match, Apache's SymLinksIfOwnerMatch) refuses it.
	os.Symlink(filepath.Join(outside, "evil.sh"), filepath.Join(root, "out.sh"))
	planted := os.Geteuid() == 0 && os.Lchown(filepath.Join(root, "out.sh"), 65534, 65534) == nil
	os.Symlink(filepath.Join(root, "ok.sh"), filepath.Join(root, "in.sh"))
	srv, _ := serveDir(t, root, nil)

	tests := []struct {
		raw    string // request target, sent as is
		status int
		body   string
	}{
		{"/cgi-bin/ok.sh", 200, "ok "},
		{"/cgi-bin/ok.sh/a/b", 200, "ok /a/b"},
		{"/cgi-bin/ok.sh/", 200, "ok /"},
		{"/cgi-bin/sub/deep.sh/x", 200, "deep /cgi-bin/sub/deep.sh"},
		{"/cgi-bin/in.sh/y", 200, "ok /y"},
		{"/cgi-bin/out.sh", 403, ""},
		{"/cgi-bin/noexec.sh", 403, ""},
		{"/cgi-bin/sub/", 403, ""},
		{"/cgi-bin/", 403, ""},
		{"/cgi-bin/missing.sh", 404, ""},
		{"/cgi-bin/ok.sh%2f..%2fnoexec.sh", 404, ""},
		{"/cgi-bin/%2e%2e/%2e%2e/etc/passwd", 400, ""},
		{"/cgi-bin/sub/../ok.sh", 400, ""},
		{"/cgi-bin/ok.sh%00.txt", 400, ""},
		{"/cgi-bin/ok.sh/%0aX", 400, ""},
		{"/cgi-bin//ok.sh", 404, ""},
		{"/other/ok.sh", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			if tt.raw == "/cgi-bin/out.sh" && !planted {
				t.Skip("only root can give the escaping link another owner")
			}
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tt.raw)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Errorf("GET %s: status %d; want %d (%q)", tt.raw, resp.StatusCode, tt.status, b)
			}
			if tt.body != "" && string(b) != tt.body {
				t.Errorf("GET %s: body %q; want %q", tt.raw, b, tt.body)
			}
			if bytes.Contains(b, []byte("SOURCE")) || bytes.Contains(b, []byte("EVIL")) {
				t.Errorf("GET %s: leaked %q", tt.raw, b)
			}
		})
	}
}

// TestHandlerNoLeaks runs many requests of every kind and checks that no
// goroutine, descriptor or child process is left.
func TestHandlerNoLeaks(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "ok.sh", `printf 'Content-Type: text/plain\n\nok'`)
	writeScript(t, dir, "echo.sh", `printf 'Content-Type: text/plain\n\n'; cat`)
	writeScript(t, dir, "bad.sh", `echo nonsense`)
	writeScript(t, dir, "slow.sh", `printf 'Content-Type: text/plain\n\n'; sleep 30`)
	writeScript(t, dir, "ignore.sh", `printf 'Content-Type: text/plain\n\nignored input'`)
	h := &Handler{Timeout: 200 * time.Millisecond, KillGrace: 100 * time.Millisecond}
	srv, _ := serveDir(t, dir, h)
	client := srv.Client()
	do := func(method, path string, body io.Reader) {
		req, _ := http.NewRequest(method, srv.URL+path, body)
		resp, err := client.Do(req)
		if err != nil {
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	do("GET", "/cgi-bin/ok.sh", nil) // warm up the server's goroutines
	client.CloseIdleConnections()

	leakcheck.Check(t)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 5 {
			case 0:
				do("GET", "/cgi-bin/ok.sh", nil)
			case 1:
				do("POST", "/cgi-bin/echo.sh", io.MultiReader(strings.NewReader(strings.Repeat("x", 100000))))
			case 2:
				do("GET", "/cgi-bin/bad.sh", nil)
			case 3:
				do("GET", "/cgi-bin/slow.sh", nil)
			case 4:
				do("POST", "/cgi-bin/ignore.sh", bytes.NewReader(make([]byte, 300000)))
			}
		}()
	}
	wg.Wait()
	client.CloseIdleConnections()
	// Aborted responses (timeouts mid-body) must give their slot back too.
	deadline := time.Now().Add(5 * time.Second)
	for h.limiter.Running() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the last releases may trail the responses
	}
	if n := h.limiter.Running(); n != 0 {
		t.Errorf("%d script slots still taken after every request ended", n)
	}
}

func TestHandlerAuthorization(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "auth.sh", `printf 'Content-Type: text/plain\n\n[%s][%s]' "$HTTP_AUTHORIZATION" "$HTTP_PROXY_AUTHORIZATION"`)
	for _, tc := range []struct {
		pass bool
		want string
	}{{false, "[][]"}, {true, "[Basic dTpw][Basic eDp5]"}} {
		srv, _ := serveDir(t, dir, &Handler{PassAuthorization: tc.pass})
		req, _ := http.NewRequest("GET", srv.URL+"/cgi-bin/auth.sh", nil)
		req.Header.Set("Authorization", "Basic dTpw")
		req.Header.Set("Proxy-Authorization", "Basic eDp5")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tc.want {
			t.Errorf("PassAuthorization=%v: script saw %q; want %q", tc.pass, b, tc.want)
		}
	}
}

// TestCloneCopiesEverySetting fills every exported field of a Handler and
// checks Clone carries each one, so that a new setting cannot be forgotten.
func TestCloneCopiesEverySetting(t *testing.T) {
	h := &Handler{}
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			if !v.Type().Field(i).IsExported() {
				continue
			}
			switch f.Kind() {
			case reflect.String:
				f.SetString("x")
			case reflect.Bool:
				f.SetBool(true)
			case reflect.Int, reflect.Int64:
				f.SetInt(7)
			case reflect.Slice:
				f.Set(reflect.MakeSlice(f.Type(), 1, 1))
			case reflect.Pointer:
				f.Set(reflect.New(f.Type().Elem()))
			case reflect.Struct:
				fill(f) // Settings, and the limits in it
			case reflect.Interface:
				for _, c := range []any{http.NotFoundHandler(), Mount{Prefix: "/x"}} {
					if reflect.TypeOf(c).Implements(f.Type()) {
						f.Set(reflect.ValueOf(c))
						break
					}
				}
			default:
				t.Fatalf("field %s: kind %s not covered by this test", v.Type().Field(i).Name, f.Kind())
			}
		}
	}
	v := reflect.ValueOf(h).Elem()
	fill(v)
	c := reflect.ValueOf(h.Clone()).Elem()
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		if !v.Type().Field(i).IsExported() {
			continue
		}
		if !reflect.DeepEqual(v.Field(i).Interface(), c.Field(i).Interface()) && v.Field(i).Kind() != reflect.Interface {
			t.Errorf("Clone lost %s", name)
		}
		if v.Field(i).Kind() == reflect.Interface && c.Field(i).IsNil() {
			t.Errorf("Clone lost %s", name)
		}
	}
}

// TestFullDuplexUnreadBody is go.dev/issue/68560 as a script meets it: a
// script that answers without reading its request body, on a kept
// connection. In full duplex, net/http drains the rest of the body after
// the handler, and the background read reaching its end starts made the
// next request's read panic ("invalid concurrent Body.Read call") unless
// the handler closes the body itself.
func TestFullDuplexUnreadBody(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "ignore.sh", `printf 'Content-Type: text/plain\n\nignored'`)
	serverLog := &syncBuffer{}
	h := &Handler{Resolver: &Dir{Path: dir, Prefix: "/cgi-bin/"}}
	h.Logger = testLogger(&syncBuffer{})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(serverLog, "", 0)
	srv.Start()
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	for i := range 20 {
		resp, err := client.Post(srv.URL+"/cgi-bin/ignore.sh", "application/octet-stream", bytes.NewReader(make([]byte, 100<<10)))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ignored" {
			t.Errorf("request %d: %d %q; want 200 \"ignored\"", i, resp.StatusCode, b)
		}
	}
	if strings.Contains(serverLog.String(), "panic") {
		t.Errorf("net/http panicked:\n%.600s", serverLog)
	}
}

// TestHandlerNoContentTypeNotSniffed: a script that sends a body without
// a Content-Type gets none (RFC 3875 § 6.3.1: the server "SHOULD NOT
// attempt to determine the correct content type"); net/http's sniffing
// made such text an HTML page, script tags and all.
func TestHandlerNoContentTypeNotSniffed(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "html.sh", `printf 'Status: 200 OK\n\n<html><script>alert(1)</script>'`)
	writeScript(t, dir, "png.sh", `printf 'Status: 200 OK\n\n\211PNG\r\n\032\n'`)
	writeScript(t, dir, "typed.sh", `printf 'Content-Type: text/plain\n\n<html>'`)
	srv, _ := serveDir(t, dir, nil)

	tests := []struct {
		script string
		want   []string // the Content-Type values
	}{
		{"html.sh", nil},
		{"png.sh", nil},
		{"typed.sh", []string{"text/plain"}},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			resp, body := get(t, srv.URL+"/cgi-bin/"+tt.script)
			if resp.StatusCode != http.StatusOK || body == "" {
				t.Fatalf("GET %s: %d %q; want 200 and its body", tt.script, resp.StatusCode, body)
			}
			if got := resp.Header.Values("Content-Type"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("GET %s: Content-Type = %q; want %q", tt.script, got, tt.want)
			}
		})
	}
}

// TestHandlerBodyOnBodilessStatus: a 204 or 304 sent with a body was a
// write error taken for the client's: the script was stopped and the log
// blamed the client. A 204 or 304 has no content (RFC 9110 § 15.3.5,
// § 15.4.5); what the script sends anyway is read and dropped, as Apache
// does, and the connection kept.
func TestHandlerBodyOnBodilessStatus(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "204.sh", `printf 'Status: 204 No Content\nContent-Type: text/plain\n\nnot for a 204'`)
	writeScript(t, dir, "304.sh", `printf 'Status: 304 Not Modified\nETag: "x"\n\nnot for a 304'`)
	for _, tt := range []struct {
		script string
		status int
	}{
		{"204.sh", 204},
		{"304.sh", 304},
	} {
		t.Run(tt.script, func(t *testing.T) {
			srv, logs := serveDir(t, dir, nil)
			checkFraming(t, srv, "GET", tt.script, tt.status, "", false)
			// The client has its answer before the handler has drained
			// the script: closing the server would stop it.
			waitLog(t, logs, "cgi: script finished", 2)
			srv.Close()
			for _, bad := range []string{"writing to client", "signal: terminated"} {
				if strings.Contains(logs.String(), bad) {
					t.Errorf("GET %s: log holds %q:\n%s", tt.script, bad, logs)
				}
			}
		})
	}
}

// waitLog waits until the log holds msg n times.
func waitLog(t *testing.T, logs *syncBuffer, msg string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logs.String(), msg) < n {
		if time.Now().After(deadline) {
			t.Fatalf("log holds %q fewer than %d times:\n%s", msg, n, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandlerBodilessStatusStreams: a 204 or 304 goes out when the
// script sends it, not when its output ends: since its body is dropped
// rather than copied, the copy's flush on a pause no longer sent it.
func TestHandlerBodilessStatusStreams(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "204slow.sh", `printf 'Status: 204 No Content\n\n'; sleep 3`)
	srv, _ := serveDir(t, dir, nil)
	resp, _, err := getWithin(t, srv.URL+"/cgi-bin/204slow.sh", 2*time.Second)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("GET 204slow.sh: %v, %v; want 204 before the script ends", resp.StatusCode, err)
	}
}

// checkFraming asks for script twice on one client and checks the answer
// and, unless cut (the body must be cut short), that the connection was
// kept.
func checkFraming(t *testing.T, srv *httptest.Server, method, script string, status int, body string, cut bool) {
	t.Helper()
	client := srv.Client()
	reused := false
	for i := range 2 {
		req, _ := http.NewRequest(method, srv.URL+"/cgi-bin/"+script, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, script, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if cut {
			if err == nil {
				t.Fatalf("%s %s: body %q read whole; want it cut", method, script, b)
			}
			return
		}
		if err != nil || resp.StatusCode != status || string(b) != body {
			t.Fatalf("%s %s: %d %q, %v; want %d %q", method, script, resp.StatusCode, b, err, status, body)
		}
		if i == 1 && !reused {
			t.Errorf("%s %s: the connection was not kept", method, script)
		}
	}
}

// TestHandlerContentLengthMismatch: a body past its Content-Length was
// written in one piece that net/http refused whole (ErrContentLength,
// taken for the client's error): the client got the header and none of
// the body, then a closed connection. It is now cut at the Content-Length,
// a whole response, the rest read and dropped, and logged, as nginx does
// ("upstream sent more data than specified"). A body short of it is cut
// short for the client, as before, and now logged too.
func TestHandlerContentLengthMismatch(t *testing.T) {
	dir := testdir.Open(t)
	writeScript(t, dir, "past.sh", `printf 'Content-Type: text/plain\nContent-Length: 3\n\nmuchlonger'`)
	writeScript(t, dir, "pastbig.sh", `printf 'Content-Type: text/plain\nContent-Length: 5\n\n'; head -c 1000000 /dev/zero`)
	writeScript(t, dir, "exact.sh", `printf 'Content-Type: text/plain\nContent-Length: 5\n\nexact'`)
	writeScript(t, dir, "short.sh", `printf 'Content-Type: text/plain\nContent-Length: 100\n\nshort'`)
	writeScript(t, dir, "headonly.sh", `printf 'Content-Type: text/plain\nContent-Length: 100\n\n'`)

	tests := []struct {
		method, script string
		body           string
		cut            bool   // the client sees the body cut short
		log, noLog     string // what the log holds, and must not
	}{
		{"GET", "past.sh", "muc", false, "more than its Content-Length", "writing to client"},
		{"GET", "pastbig.sh", "\x00\x00\x00\x00\x00", false, "more than its Content-Length", "signal: terminated"},
		{"HEAD", "past.sh", "", false, "", "writing to client"},
		{"GET", "exact.sh", "exact", false, "", "Content-Length"},
		{"GET", "short.sh", "", true, "fewer body bytes than its Content-Length", ""},
		{"HEAD", "headonly.sh", "", false, "", "Content-Length"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.script, func(t *testing.T) {
			srv, logs := serveDir(t, dir, nil)
			checkFraming(t, srv, tt.method, tt.script, http.StatusOK, tt.body, tt.cut)
			// The client may have its answer while the handler still
			// drains the script: closing the server would stop it.
			n := 2
			if tt.cut {
				n = 1
			}
			waitLog(t, logs, "cgi: script finished", n)
			srv.Close()
			if tt.log != "" && !strings.Contains(logs.String(), tt.log) {
				t.Errorf("%s %s: log lacks %q:\n%s", tt.method, tt.script, tt.log, logs)
			}
			if tt.noLog != "" && strings.Contains(logs.String(), tt.noLog) {
				t.Errorf("%s %s: log holds %q:\n%s", tt.method, tt.script, tt.noLog, logs)
			}
		})
	}
}

// TestRedirectOrigin checks the front's meta-variables after a local
// redirect: DOCUMENT_URI (nginx), SCRIPT_URL and SCRIPT_URI (Apache's
// mod_rewrite) named the path of the script that redirected; now the new
// one, and the front's mapping of the old path to a script is gone.
func TestRedirectOrigin(t *testing.T) {
	u, err := url.ParseRequestURI("/cgi-bin/env.sh/p%20q?x=1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name         string
		origin, want map[string]string
	}{
		{"nginx", map[string]string{
			"DOCUMENT_URI": "/cgi-bin/loc.sh", "REDIRECT_STATUS": "200", "REMOTE_ADDR": "192.0.2.1",
			"SCRIPT_FILENAME": "/srv/www/cgi-bin/loc.sh", "SCRIPT_NAME": "/cgi-bin/loc.sh", "PATH_INFO": "/a", "PATH_TRANSLATED": "/srv/www/a",
		}, map[string]string{"DOCUMENT_URI": "/cgi-bin/env.sh/p q", "REDIRECT_STATUS": "200", "REMOTE_ADDR": "192.0.2.1"}},
		{"apache", map[string]string{
			"SCRIPT_URL": "/cgi-bin/loc.sh", "SCRIPT_URI": "https://example.org:8443/cgi-bin/loc.sh", "CONTEXT_PREFIX": "",
		}, map[string]string{"SCRIPT_URL": "/cgi-bin/env.sh/p q", "SCRIPT_URI": "https://example.org:8443/cgi-bin/env.sh/p q", "CONTEXT_PREFIX": ""}},
		{"bad SCRIPT_URI", map[string]string{"SCRIPT_URI": "/cgi-bin/loc.sh"}, map[string]string{}},
		{"none", map[string]string{"HTTPS": "on"}, map[string]string{"HTTPS": "on"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			orig := maps.Clone(tt.origin)
			if got := redirectOrigin(tt.origin, u); !maps.Equal(got, tt.want) {
				t.Errorf("redirectOrigin(%q) = %q; want %q", tt.origin, got, tt.want)
			}
			if !maps.Equal(tt.origin, orig) {
				t.Errorf("redirectOrigin changed the origin's map: %q", tt.origin)
			}
		})
	}
}
