package scgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/rs/zerolog"
)

// syncBuffer is the shared concurrent log sink.
type syncBuffer = testlog.Buffer

// testServer is a Server on a loopback port, closed at cleanup.
type testServer struct {
	srv  *Server
	addr string
	log  *syncBuffer
	done chan error
}

func startServer(t testing.TB, h http.Handler, opts ...func(*Server)) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: l.Addr().String(), log: &syncBuffer{}, done: make(chan error, 1)}
	logger := zerolog.New(ts.log)
	ts.srv = &Server{Handler: h, Logger: &logger}
	for _, o := range opts {
		o(ts.srv)
	}
	go func() { ts.done <- ts.srv.Serve(l) }()
	t.Cleanup(func() {
		ts.srv.Close()
		if err := <-ts.done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v; want ErrServerClosed", err)
		}
	})
	return ts
}

// roundTrip sends raw bytes on a new connection and returns everything the
// server answers until it closes.
func (ts *testServer) roundTrip(t testing.TB, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the response: %v (read %q)", err, out)
	}
	return string(out)
}

// request encodes a request for path with method and body.
func request(t testing.TB, method, uri, body string, extra ...string) string {
	t.Helper()
	path, query, _ := strings.Cut(uri, "?")
	params := append([]string{
		fmt.Sprintf("CONTENT_LENGTH=%d", len(body)),
		"REQUEST_METHOD=" + method, "REQUEST_URI=" + uri, "SCRIPT_NAME=", "PATH_INFO=" + path, "QUERY_STRING=" + query,
		"SERVER_PROTOCOL=HTTP/1.1", "SERVER_NAME=example.test", "SERVER_PORT=8443", "HTTPS=on",
		"REMOTE_ADDR=192.0.2.7", "REMOTE_PORT=40000", "HTTP_HOST=example.test:8443",
	}, extra...)
	b, err := AppendRequest(nil, params)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + body
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Remote", r.RemoteAddr)
	fmt.Fprintf(w, "%s %s host=%s tls=%v len=%d body=%q err=%v", r.Method, r.URL, r.Host, r.TLS != nil, r.ContentLength, b, err)
}

func TestServerRequest(t *testing.T) {
	leakcheck.Check(t)
	ts := startServer(t, http.HandlerFunc(echoHandler))
	tests := []struct {
		name, raw, want string
	}{
		{
			"get", request(t, "GET", "/a/b?x=1", ""),
			"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Remote: 192.0.2.7:40000\r\n\r\n" +
				`GET /a/b?x=1 host=example.test:8443 tls=true len=0 body="" err=<nil>`,
		},
		{
			"post", request(t, "POST", "/p", "hello world", "CONTENT_TYPE=text/plain"),
			"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Remote: 192.0.2.7:40000\r\n\r\n" +
				`POST /p host=example.test:8443 tls=true len=11 body="hello world" err=<nil>`,
		},
		{
			"spec example", "70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/deepthought\x00,What is the answer to life?",
			"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Remote: \r\n\r\n" +
				`POST /deepthought host= tls=false len=27 body="What is the answer to life?" err=<nil>`,
		},
		{
			"short body", request(t, "POST", "/p", "0123456789")[:len(request(t, "POST", "/p", "0123456789"))-4],
			"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Remote: 192.0.2.7:40000\r\n\r\n" +
				`POST /p host=example.test:8443 tls=true len=10 body="012345" err=scgi: request body: 4 bytes missing: unexpected EOF`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.raw
			if tt.name == "short body" {
				// Half-close: the server sees the end of input mid-body.
				c, err := net.Dial("tcp", ts.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				io.WriteString(c, raw)
				c.(*net.TCPConn).CloseWrite()
				out, _ := io.ReadAll(c)
				if string(out) != tt.want {
					t.Errorf("response\n%q; want\n%q", out, tt.want)
				}
				return
			}
			if got := ts.roundTrip(t, raw); got != tt.want {
				t.Errorf("response\n%q; want\n%q", got, tt.want)
			}
		})
	}
}

func TestServerShortBodyError(t *testing.T) {
	leakcheck.Check(t)
	got := make(chan error, 1)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
	}))
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	raw := request(t, "POST", "/", "0123456789")
	io.WriteString(c, raw[:len(raw)-3])
	c.Close()
	if err := <-got; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("body read error %v; want io.ErrUnexpectedEOF", err)
	}
	// The server goes on.
	if out := ts.roundTrip(t, request(t, "GET", "/", "")); !strings.HasPrefix(out, "Status: 200 OK\r\n") {
		t.Errorf("next request: %q", out)
	}
}

func TestServerMalformed(t *testing.T) {
	leakcheck.Check(t)
	var calls sync.WaitGroup
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		defer calls.Done()
		io.WriteString(w, "ran")
	}), func(s *Server) { s.MaxRequestBody = 1000 })
	answer := func(status int) string {
		text := http.StatusText(status)
		return fmt.Sprintf("Status: %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%d %s\n", status, text, status, text)
	}
	tests := []struct {
		name, raw string
		want      string
		log       string
	}{
		{"leading zero", "05:", answer(400), "leading zero"},
		{"no SCGI", "17:CONTENT_LENGTH\x000\x00,", answer(400), `no \"SCGI: 1\" header`},
		{"duplicate", "30:CONTENT_LENGTH\x000\x00SCGI\x001\x00A\x00\x00A\x00\x00,", answer(400), "duplicate header name"},
		{"10 MB header", "10485760:" + strings.Repeat("x", 1<<20), answer(431), "header block too large"},
		{"body too large", request(t, "POST", "/", strings.Repeat("b", 1001)), answer(413), "CONTENT_LENGTH too large"},
		{"no method", "24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,", answer(400), "REQUEST_METHOD"},
		{"truncated", "100:CONTENT_LENGTH\x000\x00", answer(400), "cut short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			go func() {
				io.WriteString(c, tt.raw) // the server may close before all is written
				c.(*net.TCPConn).CloseWrite()
			}()
			out, err := io.ReadAll(c)
			if string(out) != tt.want {
				t.Errorf("response %q, %v; want %q", out, err, tt.want)
			}
			if !strings.Contains(ts.log.String(), tt.log) || !strings.Contains(ts.log.String(), `"remote":"127.0.0.1:`) {
				t.Errorf("log %s lacks %q and the remote address", ts.log, tt.log)
			}
		})
	}
	calls.Wait()
	if out := ts.roundTrip(t, request(t, "GET", "/", "")); !strings.HasSuffix(out, "\r\n\r\nran") {
		t.Errorf("the server stopped serving: %q", out)
	}
}

// TestServerBoundedMemory sends lying lengths and a 10 MB header block:
// the server refuses them without allocating what they declare, and keeps
// serving.
func TestServerBoundedMemory(t *testing.T) {
	leakcheck.Check(t)
	ts := startServer(t, http.HandlerFunc(echoHandler), func(s *Server) { s.ReadHeaderTimeout = 200 * time.Millisecond })
	big := []byte("10000000:" + strings.Repeat("CONTENT_LENGTH\x000\x00", (2<<20)/17))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 5 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		go c.Write(big) // the server stops reading early
		out, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(out), "Status: 431 ") {
			t.Errorf("10 MB header block: %q; want 431", out)
		}
	}
	// Lying: 60000 bytes declared, 10 sent, then silence until the header
	// timeout.
	for range 5 {
		ts.roundTrip(t, "60000:CONTENT_L")
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Errorf("server allocated %d KiB refusing 5 10-MB header blocks and 5 lying lengths", grew>>10)
	}
	if out := ts.roundTrip(t, request(t, "GET", "/", "")); !strings.HasPrefix(out, "Status: 200 OK\r\n") {
		t.Errorf("next request: %q", out)
	}
	if !strings.Contains(ts.log.String(), "no complete header block in time") {
		t.Errorf("log lacks the header timeout: %s", ts.log)
	}
}

func TestServerPanic(t *testing.T) {
	leakcheck.Check(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/late" {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
		}
		if r.URL.Path != "/ok" {
			panic("boom")
		}
		io.WriteString(w, "ok")
	}))
	if got, want := ts.roundTrip(t, request(t, "GET", "/early", "")), "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n500 Internal Server Error\n"; got != want {
		t.Errorf("panic before output: %q; want %q", got, want)
	}
	// A panic after output: the connection is reset, so the web server
	// cannot take the response for whole.
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, request(t, "GET", "/late", ""))
	out, err := io.ReadAll(c)
	c.Close()
	if err == nil || !strings.HasSuffix(string(out), "partial") {
		t.Errorf("panic after output: %q, %v; want the partial output and a reset", out, err)
	}
	if got := ts.roundTrip(t, request(t, "GET", "/ok", "")); !strings.HasSuffix(got, "\r\n\r\nok") {
		t.Errorf("after the panics: %q", got)
	}
	if n := strings.Count(ts.log.String(), "handler panic"); n != 2 {
		t.Errorf("log has %d panic lines; want 2:\n%s", n, ts.log)
	}
}

// TestServerDisconnect checks that the request's context ends when the web
// server closes the connection while the handler runs, with and without a
// body, and not before.
func TestServerDisconnect(t *testing.T) {
	leakcheck.Check(t)
	for _, body := range []string{"", "some body"} {
		t.Run(fmt.Sprintf("body=%d", len(body)), func(t *testing.T) {
			started := make(chan struct{})
			ended := make(chan error, 1)
			ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				close(started)
				select {
				case <-r.Context().Done():
					ended <- r.Context().Err()
				case <-time.After(10 * time.Second):
					ended <- errors.New("context still alive 10s after the close")
				}
			}))
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, request(t, "POST", "/", body))
			<-started
			select {
			case err := <-ended:
				t.Fatalf("context ended before the close: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
			c.Close()
			if err := <-ended; !errors.Is(err, context.Canceled) {
				t.Errorf("handler saw %v; want context.Canceled", err)
			}
		})
	}
}

func TestServerStreaming(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}))
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, request(t, "GET", "/", ""))
	br := bufio.NewReader(c)
	var head []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "first\n" {
			break
		}
		head = append(head, line)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if want := []string{"Status: 200 OK\r\n", "Content-Type: text/plain\r\n", "\r\n"}; strings.Join(head, "") != strings.Join(want, "") || string(rest) != "second\n" {
		t.Errorf("head %q, rest %q", head, rest)
	}
}

func TestServerShutdown(t *testing.T) {
	leakcheck.Check(t)
	started := make(chan struct{})
	release := make(chan struct{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, request(t, "GET", "/", ""))
	<-started
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v; want ErrServerClosed", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Errorf("dial after Shutdown succeeded")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	out, _ := io.ReadAll(c)
	if !strings.HasSuffix(string(out), "done") {
		t.Errorf("in-flight response %q", out)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

// TestServerOrigin checks that what the web server said about the
// connection reaches a CGI script behind the server unchanged.
func TestServerOrigin(t *testing.T) {
	leakcheck.Check(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env, err := cgi.AppendEnv(nil, r, cgi.Script{Name: "/s"}, "ferry")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		io.WriteString(w, strings.Join(env, "\n"))
	}))
	out := ts.roundTrip(t, request(t, "GET", "/s", "", "SSL_PROTOCOL=TLSv1.3"))
	for _, want := range []string{"\nSERVER_PORT=8443\n", "\nREMOTE_ADDR=192.0.2.7\n", "\nREMOTE_PORT=40000\n", "\nHTTPS=on\n", "\nSERVER_NAME=example.test\n", "\nSSL_PROTOCOL=TLSv1.3"} {
		if !strings.Contains(out, want) {
			t.Errorf("script environment lacks %q:\n%s", want, out)
		}
	}
}

func TestNoBodyMeansUnset(t *testing.T) {
	for _, tt := range []struct {
		method, cl string
		kept       bool
	}{
		{"GET", "0", false},
		{"HEAD", "0", false},
		{"DELETE", "0", false},
		{"POST", "0", true},
		{"PUT", "0", true},
		{"PATCH", "0", true},
		{"GET", "5", true},
	} {
		vars := map[string]string{"REQUEST_METHOD": tt.method, "CONTENT_LENGTH": tt.cl}
		noBodyMeansUnset(vars)
		if _, kept := vars["CONTENT_LENGTH"]; kept != tt.kept {
			t.Errorf("noBodyMeansUnset(%s, CONTENT_LENGTH=%s) kept it: %v; want %v", tt.method, tt.cl, kept, tt.kept)
		}
	}
}
