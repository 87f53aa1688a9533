package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
)

// serve runs s on a loopback listener until the test ends and returns its
// address.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v; want ErrServerClosed", err)
		}
	})
	return l.Addr().String()
}

// TestHeaderTimeout: a head that does not come whole within
// ReadHeaderTimeout closes the connection with no answer, on the first
// request and on a kept connection's next one.
func TestHeaderTimeout(t *testing.T) {
	leakcheck.Check(t)
	addr := serve(t, &Server{Handler: testHandler(), ReadHeaderTimeout: 200 * time.Millisecond})
	for _, lead := range []string{"", "GET /cl HTTP/1.1\r\nHost: x\r\n\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		io.WriteString(c, lead+"GET /a HTTP/1.1\r\nHost: x\r\n")
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || time.Since(start) > 2*time.Second {
			t.Fatalf("after %v: %v; want the connection closed at the header timeout", time.Since(start), err)
		}
		if n := strings.Count(string(b), "HTTP/1.1 "); n != strings.Count(lead, "GET") {
			t.Errorf("%d responses %q; want one per whole head", n, b)
		}
	}
}

// TestIdleTimeout: a kept connection idle for IdleTimeout is closed.
func TestIdleTimeout(t *testing.T) {
	leakcheck.Check(t)
	addr := serve(t, &Server{Handler: testHandler(), IdleTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /cl HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	b, err := io.ReadAll(c)
	if err != nil || !strings.HasSuffix(string(b), "hello") || time.Since(start) > 2*time.Second {
		t.Errorf("%q, %v after %v; want the answer, then the close at the idle timeout", b, err, time.Since(start))
	}
}

// TestBodyTimeout: a body that stops coming fails the handler's read
// with a timeout within BodyTimeout, BodyError says so, and the
// connection closes.
func TestBodyTimeout(t *testing.T) {
	leakcheck.Check(t)
	got := make(chan error, 1)
	addr := serve(t, &Server{BodyTimeout: 200 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		berr, ok := BodyError(r.Context())
		if !ok || berr == nil {
			err = errors.New("BodyError says nothing")
		}
		got <- err
	})})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
	select {
	case err := <-got:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("body read: %v; want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the body read did not fail within 5 s")
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("the connection was not closed: %v", err)
	}
}

// TestHandlerReadDeadlineCut: a body read cut by the handler's own read
// deadline (http.ResponseController), as ferry's CGI runner cuts the copy
// of a body to a script that exited without reading it, fails for the
// handler but is not the client's failure: BodyError says nothing, and the
// answer goes out, closing the connection (the body is unread). BodyError
// reported the timeout, and the front logged 408 "client_body_timeout"
// and dropped the script's answer, 100 ms after the script ended, for a
// client whose body was on its way.
func TestHandlerReadDeadlineCut(t *testing.T) {
	leakcheck.Check(t)
	addr := serve(t, &Server{BodyTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read := make(chan error, 1)
		go func() {
			_, err := io.ReadAll(r.Body) // as the CGI runner's copy to stdin
			read <- err
		}()
		time.Sleep(100 * time.Millisecond) // the copy waits for the rest
		if err := http.NewResponseController(w).SetReadDeadline(time.Now()); err != nil {
			t.Errorf("SetReadDeadline: %v", err)
		}
		var ne net.Error
		if err := <-read; !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("body read: %v; want a timeout", err)
		}
		if berr, ok := BodyError(r.Context()); !ok || berr != nil {
			t.Errorf("BodyError = %v, %v; want nil, true", berr, ok)
		}
		io.WriteString(w, "answer")
	})})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || !strings.Contains(string(b), "\r\nConnection: close\r\n") || !strings.HasSuffix(string(b), "\r\n\r\nanswer") {
		t.Errorf("%q, %v; want the answer with Connection: close, then the close", b, err)
	}
}

// TestSendTimeout: a client that stops reading a response is cut off at
// SendTimeout, and the handler's write fails.
func TestSendTimeout(t *testing.T) {
	leakcheck.Check(t)
	failed := make(chan error, 1)
	addr := serve(t, &Server{SendTimeout: 200 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				failed <- err
				return
			}
		}
	})})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("the write did not fail within 10 s of the client stopping to read")
	}
}

// TestClientGoneCancels: a client that closes its connection while its
// request is in the handler, its body read, ends the request's context.
func TestClientGoneCancels(t *testing.T) {
	leakcheck.Check(t)
	ended := make(chan error, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // as net/http's, the watch starts once the body is all read
		select {
		case <-r.Context().Done():
			ended <- nil
		case <-time.After(5 * time.Second):
			ended <- errors.New("the context was not cancelled within 5 s of the client closing")
		}
	})})
	for _, req := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, req)
		time.Sleep(100 * time.Millisecond)
		c.Close()
		if err := <-ended; err != nil {
			t.Error(err)
		}
	}
}

// TestPipelinedDuringWatch: a request pipelined while the one before it
// is watched (in its handler past the sweeps) is served after it, byte
// for byte.
func TestPipelinedDuringWatch(t *testing.T) {
	leakcheck.Check(t)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(100 * time.Millisecond)
		}
		io.WriteString(w, r.URL.Path)
	})})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // watched by now
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"/slow", "/next"} {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Errorf("body %q; want %q", b, want)
		}
	}
}

// TestHijack: a hijacked connection is the handler's, with what the
// client sent beyond the head.
func TestHijack(t *testing.T) {
	leakcheck.Check(t)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		line, _ := rw.ReadString('\n')
		rw.WriteString("HTTP/1.0 200 OK\r\n\r\nhijacked " + line)
		rw.Flush()
	})})
	out, _ := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\nextra\n")
	if out != "HTTP/1.0 200 OK\r\n\r\nhijacked extra\n" {
		t.Errorf("got %q", out)
	}
}

// TestSendfile: a file served with http.ServeContent goes out whole, by
// ReadFrom, with its Content-Length.
func TestSendfile(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	data := strings.Repeat("0123456789", 300<<10)
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, &Server{SendTimeout: 5 * time.Second, Handler: http.FileServer(http.Dir(dir))})
	resp, err := http.Get("http://" + addr + "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != data || resp.ContentLength != int64(len(data)) {
		t.Errorf("%d bytes (Content-Length %d), %v; want the %d of the file", len(b), resp.ContentLength, err, len(data))
	}
}

// TestShutdown: Shutdown closes idle connections at once, lets the
// request in progress finish, and returns once it has.
func TestShutdown(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	var served atomic.Int32
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		served.Add(1)
		io.WriteString(w, "done")
	})}
	addr := serve(t, s)
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	http.ReadResponse(bufio.NewReader(idle), nil)
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	idle.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection: %v; want it closed", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	busy.SetDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(busy)
	if !strings.HasSuffix(string(b), "done") || !strings.Contains(string(b), "Connection: close") {
		t.Errorf("the request in progress got %q; want its answer, closing", b)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestPanicAborts: a handler's panic drops the response not yet sent and
// closes the connection; a big response already begun is cut, without
// its last chunk.
func TestPanicAborts(t *testing.T) {
	leakcheck.Check(t)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(make([]byte, 10000))
			w.(http.Flusher).Flush()
		} else {
			io.WriteString(w, "looks fine")
		}
		panic(http.ErrAbortHandler)
	})})
	if out, closed := exchange(t, addr, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n"); out != "" || !closed {
		t.Errorf("small: %q (closed %v); want nothing and the connection closed", out, closed)
	}
	out, closed := exchange(t, addr, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	if !strings.Contains(out, "chunked") || strings.HasSuffix(out, "0\r\n\r\n") || !closed {
		t.Errorf("big: %d bytes ending %q (closed %v); want a cut chunked body", len(out), out[max(0, len(out)-10):], closed)
	}
}

// TestMaxConns: past MaxConns, an idle connection is closed for a new
// one, which is served.
func TestMaxConns(t *testing.T) {
	leakcheck.Check(t)
	addr := serve(t, &Server{Handler: testHandler(), MaxConns: 2})
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	time.Sleep(100 * time.Millisecond) // both accepted, and waiting longer than the Gate's minimum
	if out, _ := exchange(t, addr, "GET /cl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasSuffix(out, "hello") {
		t.Errorf("a new connection got %q", out)
	}
}

// TestWatchEndsWithHandler: handlers that return around the moment their
// request gets a watch (10-20 ms in) are answered at once, on kept
// connections: a watch started as its handler returned once held the
// response until the client's next request.
func TestWatchEndsWithHandler(t *testing.T) {
	leakcheck.Check(t)
	var n atomic.Int64
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(5+n.Add(1)%20) * time.Millisecond)
		io.WriteString(w, "ok")
	})})
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for range 40 {
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					errs <- err
					return
				}
				io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRefusals: the framing that request smuggling is made of gets 400
// and a closed connection, with the reason told to Refused, and nothing
// behind it is served; a head over MaxHeaderBytes gets 431.
func TestRefusals(t *testing.T) {
	leakcheck.Check(t)
	reasons := make(chan string, 10)
	addr := serve(t, &Server{Handler: testHandler(), MaxHeaderBytes: 1000,
		Refused: func(_ net.Conn, why string) { reasons <- why }})
	const next = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct{ name, req, status, reason string }{
		{"CL+TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + next,
			"HTTP/1.1 400 Bad Request", "Content-Length with Transfer-Encoding"},
		{"TE+CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + next,
			"HTTP/1.1 400 Bad Request", "Content-Length with Transfer-Encoding"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n" + next, "HTTP/1.1 400 Bad Request", "obs-fold"},
		{"folded TE", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n0\r\n\r\n" + next, "HTTP/1.1 400 Bad Request", "obs-fold"},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + next, "HTTP/1.1 400 Bad Request", "HTTP/1.0"},
		{"long Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + strings.Repeat("0", 200) + "1\r\n\r\nx" + next,
			"HTTP/1.1 400 Bad Request", "over 128 bytes"},
		{"obs-fold in a trailer", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n folded\r\n\r\n" + next,
			"HTTP/1.1 200 OK", "obs-fold in the trailer"},
		{"head over the limit", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 6000) + "\r\n\r\n" + next,
			"HTTP/1.1 431 Request Header Fields Too Large", ""},
		{"line over the limit", "GET /" + strings.Repeat("a", 6000) + " HTTP/1.1\r\nHost: x\r\n\r\n" + next,
			"HTTP/1.1 414 URI Too Long", ""},
		{"chunk line over 4 KiB", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("e", 5000) + "\r\na\r\n0\r\n\r\n" + next,
			"HTTP/1.1 200 OK", ""},
	} {
		out, closed := exchange(t, addr, tc.req)
		if !strings.HasPrefix(out, tc.status+"\r\n") || strings.Contains(out, "smuggled") || !closed {
			t.Errorf("%s: got %q (closed %v); want one %q and the connection closed", tc.name, out, closed, tc.status)
		}
		select {
		case why := <-reasons:
			if tc.reason == "" || !strings.Contains(why, tc.reason) {
				t.Errorf("%s: refused for %q; want %q", tc.name, why, tc.reason)
			}
		default:
			if tc.reason != "" {
				t.Errorf("%s: no refusal reported; want %q", tc.name, tc.reason)
			}
		}
	}
}

// TestHeaderOwned: a Server's handler owns its request's header. It may
// change it in place (HeaderOwned says so; not under net/http), and what
// the server decided from the head stands: a request that asked for
// Connection: close still gets its connection closed when the handler
// deletes that field, and the next request's header is its own.
func TestHeaderOwned(t *testing.T) {
	leakcheck.Check(t)
	seen := make(chan string, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Changed")
		if !HeaderOwned(r.Context()) {
			t.Errorf("HeaderOwned false for a request of a Server")
		}
		r.Header.Del("Connection")
		r.Header.Set("X-Changed", "yes")
		io.WriteString(w, "ok")
	})
	addr := serve(t, &Server{Handler: h})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("%q, %v; want two answers, then the close", b, err)
	}
	if n := strings.Count(string(b), "HTTP/1.1 200 OK"); n != 2 || !strings.Contains(string(b), "Connection: close\r\n") {
		t.Errorf("%q; want two answers, the second with Connection: close", b)
	}
	for range 2 {
		if v := <-seen; v != "" {
			t.Errorf("a request's header has X-Changed: %q; want none (the one before changed its own)", v)
		}
	}
	req := httptest.NewRequest("GET", "/", nil)
	if HeaderOwned(req.Context()) {
		t.Errorf("HeaderOwned true for a request not of a Server")
	}
}

// TestUnreadBodyAnswerArrives: a handler that answers without reading a
// large body, in full duplex or not, has its answer reach a client still
// sending the body. The connection ends with a FIN and a wait, not closed
// with the body unread, which sends an RST that can take an answer the
// client has not read yet with it (net/http's closeWriteAndWait).
func TestUnreadBodyAnswerArrives(t *testing.T) {
	leakcheck.Check(t)
	for _, duplex := range []bool{true, false} {
		t.Run(map[bool]string{true: "full-duplex", false: "half-duplex"}[duplex], func(t *testing.T) {
			addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if duplex {
					http.NewResponseController(w).EnableFullDuplex()
					defer r.Body.Close()
				}
				time.Sleep(50 * time.Millisecond) // as a script starts: the body fills the buffers
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, "no\n")
			})})
			// An RST comes only now and then (when the body is queued unread
			// at the close): ten tries.
			for i := range 10 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				sent := make(chan struct{})
				go func() {
					defer close(sent)
					io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n")
					c.Write(make([]byte, 8<<20)) // fails once the server closes
				}()
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					c.Close()
					<-sent
					t.Fatalf("try %d: no answer: %v", i, err)
				}
				if b, err := io.ReadAll(resp.Body); err != nil || resp.StatusCode != http.StatusForbidden || string(b) != "no\n" {
					t.Errorf("try %d: answer %d %q, %v; want 403 \"no\\n\"", i, resp.StatusCode, b, err)
				}
				// The server's end: a FIN (EOF here), not an RST.
				if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
					t.Errorf("try %d: after the answer: %q, %v; want the connection half-closed (EOF)", i, rest, err)
				}
				c.Close()
				<-sent
			}
		})
	}
}

// TestBadHeadReported: a request whose head fails is told to BadHead, as
// nginx logs it (checked against nginx 1.22 with client_header_timeout
// 2s): refused with 400 or 431, with the request line as it came; timed
// out within the line or the headers, 408 and no answer; cut off by the
// client, 400 and no answer. A connection that sends nothing is not a
// request. The answers carry Date and Content-Length, as nginx's do.
func TestBadHeadReported(t *testing.T) {
	leakcheck.Check(t)
	heads := make(chan *BadHead, 10)
	addr := serve(t, &Server{Handler: testHandler(), MaxHeaderBytes: 1000, ReadHeaderTimeout: 300 * time.Millisecond,
		BadHead: func(_ net.Conn, h *BadHead) { heads <- h }})
	long := "/" + strings.Repeat("a", 6000)
	for _, tc := range []struct {
		name, req  string
		closeWrite bool   // the client closes its side after the request
		answer     string // the status line answered; "" for none
		status     int
		line       string // the request line logged
		host       string
		reason     string
	}{
		{"bad request line", "GET /x y z\r\nHost: x\r\n\r\n", false, "HTTP/1.1 400 Bad Request", 400, "GET /x y z", "", "invalid HTTP version"},
		{"bad header line", "GET /a HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n", false, "HTTP/1.1 400 Bad Request", 400, "GET /a HTTP/1.1", "", "invalid header line"},
		{"bad header name", "GET /a HTTP/1.1\r\nHost: h\r\nBad Header: 1\r\n\r\n", false, "HTTP/1.1 400 Bad Request: invalid header name", 400, "GET /a HTTP/1.1", "h", "invalid header name"},
		{"no host", "GET /a HTTP/1.1\r\n\r\n", false, "HTTP/1.1 400 Bad Request: missing required Host header", 400, "GET /a HTTP/1.1", "", "missing required Host header"},
		{"framing", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", false, "HTTP/1.1 400 Bad Request", 400, "POST /a HTTP/1.1", "h", "Content-Length with Transfer-Encoding"},
		{"head over the limit", "GET /b HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 6000) + "\r\n\r\n", false, "HTTP/1.1 431 Request Header Fields Too Large", 431, "GET /b HTTP/1.1", "", "header size limit"},
		{"line over the limit", "GET " + long + " HTTP/1.1\r\nHost: h\r\n\r\n", false, "HTTP/1.1 414 URI Too Long", 414, "GET /aaaa...", "", "request line over the header size limit"},
		{"line timed out", "GET /abc", false, "", 408, "GET /abc", "", "client timed out while reading the request line"},
		{"headers timed out", "GET /abc HTTP/1.1\r\nHost: h\r\n", false, "", 408, "GET /abc HTTP/1.1", "", "client timed out while reading the request headers"},
		{"client closed in the line", "GET /ab", true, "", 400, "GET /ab", "", "client closed the connection while reading the request line"},
		{"client closed in the headers", "GET /ab HTTP/1.1\r\nHost: h\r\n", true, "", 400, "GET /ab HTTP/1.1", "", "client closed the connection while reading the request headers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			io.WriteString(c, tc.req)
			if tc.closeWrite {
				c.(*net.TCPConn).CloseWrite()
			}
			b, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var h *BadHead
			select {
			case h = <-heads:
			case <-time.After(2 * time.Second):
				t.Fatal("BadHead not told")
			}
			out := string(b)
			switch {
			case tc.answer == "" && out != "":
				t.Errorf("answered %q; want no answer", out)
			case tc.answer != "":
				resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
				if err != nil || !strings.HasPrefix(out, tc.answer+"\r\n") {
					t.Fatalf("answered %q (%v); want %q", out, err, tc.answer)
				}
				body, _ := io.ReadAll(resp.Body)
				if resp.Header.Get("Date") == "" || resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
					t.Errorf("answer %q: want a Date and Content-Length %d", out, len(body))
				}
				tc.status, tc.answer = resp.StatusCode, string(body)
			}
			line := h.RequestLine()
			if prefix, ok := strings.CutSuffix(tc.line, "..."); ok && strings.HasPrefix(line, prefix) && len(line) <= maxLoggedLine {
				line = tc.line
			}
			wantBytes := int64(len(tc.answer))
			if h.Status != tc.status || line != tc.line || !strings.Contains(h.Reason, tc.reason) || h.BodyBytes != wantBytes ||
				h.Host != tc.host || h.Start.IsZero() {
				t.Errorf("BadHead %d %.40q (host %q) %q, %d bytes, start %v; want %d %.40q (host %q) %q, %d bytes",
					h.Status, h.RequestLine(), h.Host, h.Reason, h.BodyBytes, h.Start, tc.status, tc.line, tc.host, tc.reason, wantBytes)
			}
		})
	}
	// A connection that sends nothing, or closes before a byte, is no
	// request.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.ReadAll(c)
	c.Close()
	select {
	case h := <-heads:
		t.Errorf("BadHead told of a connection that sent nothing: %+v", h)
	case <-time.After(100 * time.Millisecond):
	}
}
