package bridge

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
)

// Backend faults (issue 16, point 7): each gives the documented status
// (README: 502 for a backend that fails or breaks its protocol, 504 for
// one that does not answer within read_timeout; a response already begun
// is cut, never completed) and one log line naming the backend and the
// cause.

// faultLines returns the log lines about a failed request to the backend
// at addr: not the access log's ("request"), but those with an error.
func faultLines(logs *testlog.Buffer, addr string) []string {
	var out []string
	for _, l := range logs.Lines(addr, `"error":`) {
		if !strings.Contains(l, `"message":"request"`) {
			out = append(out, l)
		}
	}
	return out
}

// fakeApp accepts connections on a loopback port and hands each to serve.
func fakeApp(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return l.Addr().String()
}

func mustMount(t *testing.T, s string) Mount {
	t.Helper()
	m, err := ParseMount(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFaultAppNeverAnswers: a FastCGI application that accepts and never
// answers gets 504 at read_timeout, with one log line.
func TestFaultAppNeverAnswers(t *testing.T) {
	leakcheck.Check(t)
	stop := make(chan struct{})
	app := fakeApp(t, func(c net.Conn) {
		go io.Copy(io.Discard, c)
		<-stop
	})
	defer close(stop)
	addr, logs := startFerry(t, Config{Mounts: []Mount{mustMount(t, "/app/=fastcgi://"+app+"?read_timeout=500ms")}})
	start := time.Now()
	status, _ := getStatus(t, "http://"+addr+"/app/x")
	if status != http.StatusGatewayTimeout || time.Since(start) > 5*time.Second {
		t.Errorf("%d after %v; want 504 at the 500ms read_timeout", status, time.Since(start))
	}
	if lines := faultLines(logs, app); len(lines) != 1 || !strings.Contains(lines[0], "no response") {
		t.Errorf("log lines %q; want one naming %s and the cause", lines, app)
	}
}

// TestFaultAppSendsGarbage: a FastCGI application that answers with
// something else than records and closes gets 502, with one log line.
func TestFaultAppSendsGarbage(t *testing.T) {
	leakcheck.Check(t)
	app := fakeApp(t, func(c net.Conn) {
		c.Read(make([]byte, 4096))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	addr, logs := startFerry(t, Config{Mounts: []Mount{mustMount(t, "/app/=fastcgi://"+app)}})
	if status, _ := getStatus(t, "http://"+addr+"/app/x"); status != http.StatusBadGateway {
		t.Errorf("%d; want 502", status)
	}
	if lines := faultLines(logs, app); len(lines) != 1 {
		t.Errorf("log lines %q; want one naming %s and the cause", lines, app)
	}
}

// TestFaultHTTPAppCutsChunkedBody: an HTTP application that closes its
// connection in the middle of a chunked body: the client's response is cut
// too, never ended with a last chunk as if whole (ReverseProxy aborts only
// under net/http's server), and one log line names the backend and the
// cause. ferry keeps serving.
func TestFaultHTTPAppCutsChunkedBody(t *testing.T) {
	leakcheck.Check(t)
	app := fakeApp(t, func(c net.Conn) {
		c.Read(make([]byte, 4096))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nthe first chunk\n\r\n10\r\nthe sec")
	})
	addr, logs := startFerry(t, Config{Mounts: []Mount{mustMount(t, "/app/=http://"+app)}})
	for i := range 2 {
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Get("http://" + addr + "/app/x")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("request %d: the response ended cleanly (%q) after the application cut it; want it cut", i, b)
		}
	}
	if lines := faultLines(logs, app); len(lines) != 2 || !strings.Contains(lines[0], "response cut short") || !strings.Contains(lines[0], "unexpected EOF") {
		t.Errorf("log lines %q; want one a request naming %s and the cause", lines, app)
	}
}

// TestFaultHTTPAppStalls: an HTTP application that stops answering gets
// the mount's read_timeout, as nginx's proxy_read_timeout: before its
// header, 504; in the middle of its body (which http.Transport does not
// bound), the client's response cut, with one log line naming the backend.
func TestFaultHTTPAppStalls(t *testing.T) {
	leakcheck.Check(t)
	stop := make(chan struct{})
	app := fakeApp(t, func(c net.Conn) {
		b := make([]byte, 4096)
		n, _ := c.Read(b)
		if strings.Contains(string(b[:n]), "/app/body") {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nthe first part")
		}
		<-stop
	})
	defer close(stop)
	addr, logs := startFerry(t, Config{Mounts: []Mount{mustMount(t, "/app/=http://"+app+"?read_timeout=500ms")}})

	start := time.Now()
	status, _ := getStatus(t, "http://"+addr+"/app/head")
	if status != http.StatusGatewayTimeout || time.Since(start) > 5*time.Second {
		t.Errorf("no header: %d after %v; want 504 at the 500ms read_timeout", status, time.Since(start))
	}

	start = time.Now()
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get("http://" + addr + "/app/body")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || string(b) != "the first part" || time.Since(start) > 5*time.Second {
		t.Errorf("body stalled: got %q, %v after %v; want the first part, cut at the 500ms read_timeout", b, err, time.Since(start))
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(faultLines(logs, app)) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if lines := faultLines(logs, app); len(lines) != 2 || !strings.Contains(lines[1], "response cut short") || !strings.Contains(lines[1], "within 500ms") {
		t.Errorf("log lines %q; want one a request naming %s and the timeout", lines, app)
	}
}

// TestFaultHTTPAppHugeHeader: an HTTP application's header block is
// bounded as a FastCGI or SCGI application's is (256 KiB): past it 502,
// with a log line, where http.Transport's own bound is 10 MiB.
func TestFaultHTTPAppHugeHeader(t *testing.T) {
	leakcheck.Check(t)
	app := fakeApp(t, func(c net.Conn) {
		c.Read(make([]byte, 4096))
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		for i := range 400 { // 400 fields of 1 KiB
			fmt.Fprintf(c, "X-Field-%d: %s\r\n", i, strings.Repeat("v", 1024))
		}
		io.WriteString(c, "Content-Length: 2\r\n\r\nok")
	})
	addr, logs := startFerry(t, Config{Mounts: []Mount{mustMount(t, "/app/=http://"+app)}})
	if status, _ := getStatus(t, "http://"+addr+"/app/x"); status != http.StatusBadGateway {
		t.Errorf("%d; want 502", status)
	}
	if lines := faultLines(logs, app); len(lines) != 1 || !strings.Contains(lines[0], "exceeded") {
		t.Errorf("log lines %q; want one naming %s and the cause", lines, app)
	}
}

// TestFaultPHPFPMKilledMidResponse: php-fpm killed (SIGKILL, master and
// workers) while a response streams: the client sees it cut, never
// complete, and the log names the backend and the cause.
func TestFaultPHPFPMKilledMidResponse(t *testing.T) {
	leakcheck.Check(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "stream.php"), []byte(`<?php
while (ob_get_level()) { ob_end_flush(); }
header("Content-Type: text/plain");
echo "first\n"; flush();
sleep(30);
echo "second\n";
`), 0o644)
	peers.MakeWorldReadable(root)
	// Started here, not with peerstest, whose cleanup would report the
	// kill as a failure.
	peerstest.Need(t, "php-fpm")
	fpm, err := peers.StartPHPFPM(t.Context(), t.TempDir(), peers.PHPFPMConfig{Listen: "127.0.0.1:0", Root: root, Children: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer fpm.Process.Stop() // killed below; Stop reports that, and reaps
	addr, logs := startFerry(t, Config{Root: root, Mounts: []Mount{mustMount(t, "/=fastcgi://"+fpm.Listen)}})
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get("http://" + addr + "/stream.php")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	syscall.Kill(-fpm.Process.Pid(), syscall.SIGKILL)
	rest, err := io.ReadAll(br)
	if err == nil {
		t.Errorf("the response ended cleanly after php-fpm was killed (rest %q); want it cut", rest)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(faultLines(logs, fpm.Listen)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if lines := faultLines(logs, fpm.Listen); len(lines) != 1 {
		t.Errorf("log lines %q; want one naming %s and the cause", lines, fpm.Listen)
	}
	<-fpm.Process.Done()
}

// load sends GETs to url from n goroutines until stop closes, and counts
// the statuses (0 for a transport error).
type load struct {
	mu     sync.Mutex
	counts map[int]int
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startLoad(url string, n int) *load {
	ld := &load{counts: map[int]int{}, stop: make(chan struct{})}
	client := &http.Client{Timeout: 20 * time.Second}
	for range n {
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			for {
				select {
				case <-ld.stop:
					return
				default:
				}
				status := 0
				if resp, err := client.Get(url); err == nil {
					if _, err := io.Copy(io.Discard, resp.Body); err == nil {
						status = resp.StatusCode
					}
					resp.Body.Close()
				}
				ld.mu.Lock()
				ld.counts[status]++
				ld.mu.Unlock()
			}
		}()
	}
	return ld
}

func (ld *load) finish() map[int]int {
	close(ld.stop)
	ld.wg.Wait()
	return ld.counts
}

// TestFaultWorkersKilledUnderLoad: spawned FastCGI workers SIGKILLed in a
// loop under load: clients see 502 only for the requests the dead workers
// had, the pool restarts them (no zombie left), and serves again.
func TestFaultWorkersKilledUnderLoad(t *testing.T) {
	leakcheck.Check(t)
	cfg := Config{Settings: Settings{Env: []string{"FERRY_TEST_MATRIX_WORKER=1"}},
		Mounts: []Mount{mustMount(t, matrixPrefix+"/=fastcgi+exec:"+testdir.Executable(t)+"?workers=3")}}
	s, addrs, logs := startFerryServer(t, cfg)
	pool := s.pools[0].pool
	url := "http://" + addrs[0] + matrixPrefix + "/env"
	ld := startLoad(url, 4)
	kills := 0
	for range 20 {
		time.Sleep(150 * time.Millisecond)
		if pids := pool.PIDs(); len(pids) > 0 {
			syscall.Kill(pids[rand.IntN(len(pids))], syscall.SIGKILL)
			kills++
		}
	}
	counts := ld.finish()
	t.Logf("%d workers killed under load: %v (status: requests)", kills, counts)
	for status, n := range counts {
		if status != 200 && status != 502 {
			t.Errorf("%d requests got %d; want only 200, and 502 for those in a killed worker", n, status)
		}
	}
	// Each killed worker had at most the 4 clients' requests in hand.
	if counts[502] > 4*kills {
		t.Errorf("%d requests got 502 for %d workers killed", counts[502], kills)
	}
	if n := len(faultLines(logs, "worker.sock")) + len(faultLines(logs, "ferry-spawn")); n < counts[502] {
		t.Errorf("%d log lines about the failures; want one for each of the %d 502s", n, counts[502])
	}
	// The pool recovers, and no worker is left a zombie.
	time.Sleep(time.Second)
	for i := range 20 {
		if status, body := getStatus(t, url); status != 200 {
			t.Fatalf("request %d after the kills: %d %q", i, status, body)
		}
	}
	for _, pid := range leakcheck.Children(os.Getpid()) {
		if !leakcheck.Alive(pid) {
			t.Errorf("child %d is a zombie", pid)
		}
	}
	if got := len(pool.PIDs()); got != 3 {
		t.Errorf("%d workers after recovery; want 3", got)
	}
}

// TestFaultUWSGIRestartedUnderLoad: uwsgi stopped and started again on
// its port under load: requests while it is down get 502 (connection
// refused, logged with the backend), the others 200, and once it is back
// every request succeeds.
func TestFaultUWSGIRestartedUnderLoad(t *testing.T) {
	leakcheck.Check(t)
	app := filepath.Join(t.TempDir(), "app.py")
	os.WriteFile(app, []byte("def application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'ok\\n']\n"), 0o644)
	peers.MakeWorldReadable(filepath.Dir(app))
	port, err := peers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	u := peerstest.RunUWSGI(t, peers.UWSGIConfig{WSGIFile: app, Listen: listen, Processes: 2})
	addr, logs := startFerry(t, Config{Mounts: []Mount{mustMount(t, "/app/=scgi://"+listen)}})
	url := "http://" + addr + "/app/x"
	ld := startLoad(url, 4)
	time.Sleep(500 * time.Millisecond)
	u.Stop()
	var down atomic.Int32
	time.Sleep(500 * time.Millisecond)
	down.Store(1)
	peerstest.RunUWSGI(t, peers.UWSGIConfig{WSGIFile: app, Listen: listen, Processes: 2})
	time.Sleep(500 * time.Millisecond)
	counts := ld.finish()
	t.Logf("uwsgi restarted under load: %v (status: requests)", counts)
	for status, n := range counts {
		if status != 200 && status != 502 {
			t.Errorf("%d requests got %d; want 200, or 502 while uwsgi was down", n, status)
		}
	}
	if counts[200] == 0 {
		t.Errorf("no request succeeded")
	}
	if n := len(faultLines(logs, listen)); n != counts[502] {
		t.Errorf("%d log lines naming %s; want one for each of the %d 502s", n, listen, counts[502])
	}
	for i := range 10 {
		if status, _ := getStatus(t, url); status != 200 {
			t.Fatalf("request %d after the restart: %d", i, status)
		}
	}
}

// TestFaultPHPFPMUploadStalls: a client that stalls mid-upload past the
// body timeout does not hold php-fpm's one worker, which waits for the
// rest of its STDIN, until the FastCGI read timeout: the exchange ends
// with the body, and the next request is served at once.
func TestFaultPHPFPMUploadStalls(t *testing.T) {
	leakcheck.Check(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "upload.php"), []byte(`<?php echo strlen(file_get_contents("php://input")), "\n";`), 0o644)
	os.WriteFile(filepath.Join(root, "hello.php"), []byte(`<?php echo "hello\n";`), 0o644)
	peers.MakeWorldReadable(root)
	fpm := peerstest.RunPHPFPM(t, peers.PHPFPMConfig{Listen: "127.0.0.1:0", Root: root, Children: 1})
	addr, logs := startFerry(t, Config{Root: root, Mounts: []Mount{mustMount(t, "/=fastcgi://"+fpm.Listen+"?max_conns=1")},
		Fronts: FrontLimits{BodyTimeout: 300 * time.Millisecond}})

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /upload.php HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n0123456789")
	// The upload holds the worker; once its body times out, the worker
	// is free again.
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + addr + "/hello.php")
	if err != nil {
		t.Fatalf("the request after the stalled upload: %v\n%s", err, logs)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "hello\n" {
		t.Errorf("the request after the stalled upload: %d %q; want 200 \"hello\\n\"", resp.StatusCode, b)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the request after the stalled upload waited %v for php-fpm's worker; want it freed at the 300ms body timeout", d)
	}
}
