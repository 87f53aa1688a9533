package fastcgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
)

// recListener remembers the connections it accepted, so a test can close
// them from the server's side.
type recListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *recListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *recListener) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func (l *recListener) accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// startApp serves h over FastCGI on a loopback listener.
func startApp(t *testing.T, h http.Handler) (*recListener, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &recListener{Listener: ln}
	srv := &Server{Handler: h}
	go srv.Serve(rl)
	t.Cleanup(func() { srv.Close() })
	return rl, srv
}

func clientParams(path string) []string {
	return []string{"REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_URI=" + path, "SERVER_NAME=x", "SERVER_PORT=80"}
}

// body reads a whole CGI response from the client.
func doBody(t *testing.T, c *Client, ctx context.Context, req *Request) (string, error) {
	t.Helper()
	resp, err := c.Do(ctx, req)
	if err != nil {
		return "", err
	}
	defer resp.Stdout.Close()
	br := bufio.NewReader(resp.Stdout)
	if _, err := cgi.ReadResponse(br, false, cgi.HeaderLimits{}); err != nil {
		return "", err
	}
	b, err := io.ReadAll(br)
	return string(b), err
}

func TestClientKeepsConnections(t *testing.T) {
	leakcheck.Check(t)
	rl, _ := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello "+r.URL.Path)
	}))
	c := &Client{Network: "tcp", Address: rl.Addr().String(), MaxConns: 1}
	defer c.CloseIdle()
	for i := range 5 {
		got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/x")})
		if err != nil || got != "hello /x" {
			t.Fatalf("request %d: %q, %v", i, got, err)
		}
	}
	// One connection asked GET_VALUES (whether the application
	// multiplexes), one was kept for the requests.
	if n := rl.accepted(); n != 2 {
		t.Errorf("5 requests took %d connections; want 1 kept connection (and 1 for GET_VALUES)", n)
	}

	// The application closes the kept connection (a php-fpm worker
	// recycled): the next request goes again on a new one.
	rl.closeAll()
	got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/after")})
	if err != nil || got != "hello /after" {
		t.Fatalf("after the application closed the connection: %q, %v", got, err)
	}
}

func TestClientAsksMaxConns(t *testing.T) {
	// Each row: the application's MaxConns (FCGI_MAX_CONNS; 0 for
	// DefaultMaxConns) and the Client's own, and the pool the Client
	// makes of the application's GET_VALUES answer.
	cases := []struct {
		name            string
		appConns        int
		clientConns     int
		noMultiplex     bool
		multi           bool
		conns, requests int
	}{
		// Many connections allowed: one kept per request, as nginx keeps them.
		{"app allows many", 0, 0, false, false, DefaultMaxConns, DefaultMaxConns},
		{"app allows 64", multiplexBelow, 0, false, false, multiplexBelow, multiplexBelow},
		// Few: requests share them, up to FCGI_MAX_REQS.
		{"app allows 63", multiplexBelow - 1, 0, false, true, multiplexBelow - 1, DefaultMaxRequests},
		{"app allows 2", 2, 0, false, true, 2, DefaultMaxRequests},
		{"client max_conns 4", 0, 4, false, true, 4, DefaultMaxRequests},
		{"client max_conns 64", 2, multiplexBelow, false, false, multiplexBelow, multiplexBelow},
		{"NoMultiplex", 2, 0, true, false, 2, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &Server{Handler: http.NotFoundHandler(), MaxConns: tc.appConns}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			c := &Client{Network: "tcp", Address: ln.Addr().String(), MaxConns: tc.clientConns, NoMultiplex: tc.noMultiplex}
			defer c.CloseIdle()
			vals, err := c.GetValues(context.Background(), "FCGI_MAX_CONNS", "FCGI_MPXS_CONNS")
			if err != nil || vals["FCGI_MAX_CONNS"] == "" || vals["FCGI_MPXS_CONNS"] != "1" {
				t.Fatalf("GetValues = %v, %v", vals, err)
			}
			if err := c.init(context.Background()); err != nil {
				t.Fatal(err)
			}
			conns := c.slots.Cap()
			if c.multi {
				conns = c.mpxConns
			}
			if !c.keep || c.multi != tc.multi || conns != tc.conns || c.slots.Cap() != tc.requests {
				t.Errorf("pool: keep=%v multiplexed=%v conns=%d requests=%d; want kept, multiplexed=%v, %d connections, %d requests",
					c.keep, c.multi, conns, c.slots.Cap(), tc.multi, tc.conns, tc.requests)
			}
		})
	}
}

func TestClientQueueTimeout(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	rl, _ := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "done")
	}))
	// An application that does not multiplex (NoMultiplex stands in).
	c := &Client{Network: "tcp", Address: rl.Addr().String(), MaxConns: 1, QueueTimeout: 50 * time.Millisecond, NoMultiplex: true}
	defer c.CloseIdle()
	first := make(chan error, 1)
	go func() {
		_, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/slow")})
		first <- err
	}()
	<-started
	_, err := c.Do(context.Background(), &Request{Params: clientParams("/queued")})
	if !errors.Is(err, ErrPoolTimeout) || cgi.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("second request with the only connection busy: %v (status %d); want ErrPoolTimeout, 503", err, cgi.StatusOf(err))
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first request: %v", err)
	}
}

func TestClientAbortsOnCancel(t *testing.T) {
	leakcheck.Check(t)
	gone := make(chan error, 1)
	rl, _ := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		gone <- r.Context().Err()
	}))
	c := &Client{Network: "tcp", Address: rl.Addr().String(), MaxConns: 2}
	defer c.CloseIdle()
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := c.Do(ctx, &Request{Params: clientParams("/wait")})
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "Status: 200") {
		t.Fatalf("first line %q, %v", line, err)
	}
	cancel()
	resp.Stdout.Close()
	select {
	case err := <-gone:
		if err == nil {
			t.Errorf("handler context ended without error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the application's handler never saw the abort")
	}
}

func TestClientErrorsMapToStatus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	c := &Client{Network: "tcp", Address: addr, MaxConns: 1}
	_, err = c.Do(context.Background(), &Request{Params: clientParams("/")})
	if err == nil || cgi.StatusOf(err) != http.StatusBadGateway {
		t.Errorf("connection refused: %v (status %d); want 502", err, cgi.StatusOf(err))
	}

	// An application that never answers: 504.
	slow, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	go func() {
		for {
			c, err := slow.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c = &Client{Network: "tcp", Address: slow.Addr().String(), MaxConns: 1, ReadTimeout: 100 * time.Millisecond}
	_, err = c.Do(context.Background(), &Request{Params: clientParams("/")})
	if cgi.StatusOf(err) != http.StatusGatewayTimeout {
		t.Errorf("silent application: %v (status %d); want 504", err, cgi.StatusOf(err))
	}
}

// TestClientReadTimeoutPerRecord: ReadTimeout bounds the wait for each
// record that is not at hand yet, not the whole response: pauses under
// it pass, one over it ends the response with a timeout, whatever was
// read at once before. A kept connection idle for longer than the
// timeouts serves its next request: deadlines left from one request do
// not cut the next.
func TestClientReadTimeoutPerRecord(t *testing.T) {
	leakcheck.Check(t)
	const timeout = 400 * time.Millisecond
	rl, _ := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pause, _ := time.ParseDuration(strings.TrimPrefix(r.URL.Path, "/"))
		w.Header().Set("Content-Type", "text/plain")
		for i := range 3 {
			io.WriteString(w, strings.Repeat("x", 100)) // more than the first read takes
			w.(http.Flusher).Flush()
			if i < 2 {
				time.Sleep(pause)
			}
		}
	}))
	c := &Client{Network: "tcp", Address: rl.Addr().String(), MaxConns: 1, NoMultiplex: true, ReadTimeout: timeout, WriteTimeout: timeout}
	defer c.CloseIdle()
	got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/250ms")})
	if err != nil || len(got) != 300 {
		t.Fatalf("pauses of 250ms under a read timeout of %v: %d bytes, %v; want 300 bytes", timeout, len(got), err)
	}
	time.Sleep(2 * timeout) // idle on its kept connection past every deadline it had
	if got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/0s")}); err != nil || len(got) != 300 {
		t.Fatalf("on the kept connection after %v idle: %d bytes, %v", 2*timeout, len(got), err)
	}
	start := time.Now()
	_, err = doBody(t, c, context.Background(), &Request{Params: clientParams("/1s")})
	if cgi.StatusOf(err) != http.StatusGatewayTimeout {
		t.Fatalf("a pause of 1s: %v (status %d); want a timeout", err, cgi.StatusOf(err))
	}
	if d := time.Since(start); d < timeout || d > timeout+time.Second {
		t.Errorf("the timeout came after %v; want about %v", d, timeout)
	}
	if rl.accepted() != 2 {
		t.Errorf("%d connections; want 1 kept (and 1 for GET_VALUES)", rl.accepted())
	}
}

// TestClientShortBody: a body that ends before its ContentLength fails the
// request at once; the application never sees its STDIN end, so never
// takes the part that came for the whole body, and its worker is not held
// until the read timeout.
func TestClientShortBody(t *testing.T) {
	leakcheck.Check(t)
	for _, tt := range []struct{ multiplex, answerFirst bool }{{true, false}, {false, false}, {true, true}, {false, true}} {
		multiplex := tt.multiplex
		t.Run(fmt.Sprintf("multiplex=%v,answer_first=%v", multiplex, tt.answerFirst), func(t *testing.T) {
			got, answered := make(chan string, 1), make(chan struct{})
			rl, _ := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.answerFirst {
					io.WriteString(w, "reading\n")
					w.(http.Flusher).Flush()
				}
				b, err := io.ReadAll(r.Body)
				got <- fmt.Sprintf("%q, %v", b, err)
			}))
			c := &Client{Network: "tcp", Address: rl.Addr().String(), MaxConns: 1, NoMultiplex: !multiplex, ReadTimeout: time.Minute}
			defer c.CloseIdle()
			params := append(clientParams("/upload"), "CONTENT_LENGTH=10")
			params[0] = "REQUEST_METHOD=POST"
			start := time.Now()
			var body io.Reader = strings.NewReader("short")
			if tt.answerFirst {
				// The body ends only once the answer has begun.
				pr, pw := io.Pipe()
				go func() {
					io.WriteString(pw, "short")
					<-answered
					pw.Close()
				}()
				body = pr
			}
			var endBody sync.Once
			defer endBody.Do(func() { close(answered) })
			var out []byte
			resp, err := c.Do(context.Background(), &Request{Params: params, Body: body, ContentLength: 10})
			if err == nil {
				endBody.Do(func() { close(answered) })
				out, err = io.ReadAll(resp.Stdout)
				resp.Stdout.Close()
			}
			if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("a body 5 bytes short: answered %q, %v; want io.ErrUnexpectedEOF", out, err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("the request failed after %v; want at once, not at the read timeout", d)
			}
			select {
			case g := <-got:
				if !strings.Contains(g, "fastcgi: request aborted") {
					t.Errorf("the application read %s; want the request aborted", g)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the application's read never ended")
			}
		})
	}
}

// countingBody is a long request body that comes slowly and counts what
// was read of it.
type countingBody struct {
	left, read int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	time.Sleep(time.Millisecond)
	n := min(int64(len(p)), b.left)
	b.left -= n
	b.read += n
	return int(n), nil
}

// TestClientStopsBodyAfterEnd: once the application has ended a request
// it answered without reading its body, the rest of the body is not sent
// (it would be STDIN for a request that is over, which php-fpm takes for
// a broken connection), and the connection is kept.
func TestClientStopsBodyAfterEnd(t *testing.T) {
	leakcheck.Check(t)
	for _, multiplex := range []bool{true, false} {
		t.Run(fmt.Sprintf("multiplex=%v", multiplex), func(t *testing.T) {
			rl, _ := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				io.WriteString(w, "too large")
			}))
			c := &Client{Network: "tcp", Address: rl.Addr().String(), MaxConns: 1, NoMultiplex: !multiplex}
			defer c.CloseIdle()
			const size = 1 << 30
			body := &countingBody{left: size}
			params := append(clientParams("/upload"), "CONTENT_LENGTH="+fmt.Sprint(size))
			params[0] = "REQUEST_METHOD=POST"
			out, err := doBody(t, c, context.Background(), &Request{Params: params, Body: body, ContentLength: size})
			if err != nil || out != "too large" {
				t.Fatalf("answer %q, %v; want \"too large\"", out, err)
			}
			if body.read > 64<<20 {
				t.Errorf("%d bytes of the body were read after the application answered; want the sending stopped", body.read)
			}
			if got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/next")}); err != nil || got != "too large" {
				t.Errorf("the next request: %q, %v", got, err)
			}
		})
	}
}

// TestClientWrongRequestID: an application that answers with records of
// another request than the connection's one fails the request at once with
// 502, as nginx does ("unexpected FastCGI request id"), not at the read
// timeout with 504.
func TestClientWrongRequestID(t *testing.T) {
	leakcheck.Check(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				rd := NewReader(bufio.NewReader(nc))
				for {
					rec, err := rd.Next()
					if err != nil {
						return
					}
					if rec.Type == TypeStdin && len(rec.Content) == 0 {
						id := rec.RequestID + 1
						out := AppendRecord(nil, TypeStdout, id, []byte("Content-Type: text/plain\r\n\r\nnot yours"))
						out = AppendRecord(out, TypeStdout, id, nil)
						nc.Write(AppendEndRequest(out, id, 0, RequestComplete))
						<-stop // and nothing for the request asked
						return
					}
				}
			}()
		}
	}()
	c := &Client{Network: "tcp", Address: l.Addr().String(), NoKeepConn: true, ReadTimeout: 10 * time.Second}
	defer c.CloseIdle()
	start := time.Now()
	got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/")})
	if err == nil || cgi.StatusOf(err) != http.StatusBadGateway || !strings.Contains(err.Error(), "request ID 2") || time.Since(start) > 5*time.Second {
		t.Errorf("Do = %q, %v (status %d) after %v; want a 502 error naming request ID 2 at once", got, err, cgi.StatusOf(err), time.Since(start))
	}
}

// TestClientAppDownAtFirstRequest: an application that cannot be reached
// at the client's first request is asked for its GET_VALUES again once it
// is up: a multiplexing one (ferry's Server) gets its requests multiplexed,
// as it would have had it been up. It was taken for good for one that says
// nothing, and three requests over MaxConns 1 ran one after the other.
func TestClientAppDownAtFirstRequest(t *testing.T) {
	leakcheck.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &Client{Network: "tcp", Address: addr, MaxConns: 1}
	defer c.CloseIdle()
	_, err = c.Do(context.Background(), &Request{Params: clientParams("/")})
	if !errors.Is(err, cgi.ErrNotSent) || cgi.StatusOf(err) != http.StatusBadGateway {
		t.Fatalf("Do with the application down = %v; want a 502 not sent", err)
	}

	if ln, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("the port is taken again: %v", err)
	}
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	if got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/")}); err != nil || got != "ok" {
		t.Fatalf("Do with the application up = %q, %v; want ok", got, err)
	}
	if !c.multi {
		t.Errorf("requests to a multiplexing application up since are not multiplexed")
	}
}

// TestClientAppDownSharedDial: requests that come together while the
// application cannot be reached, and whose dials fail slowly (here a
// listener whose backlog is full, so that the kernel drops their SYNs
// until the dial timeout), share a failed init's error instead of
// dialling one after another: 8 requests with a 300 ms dial timeout end
// in about two timeouts, where in turn they took eight.
func TestClientAppDownSharedDial(t *testing.T) {
	leakcheck.Check(t)
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // room for one connection, never accepted
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	var filler []net.Conn
	defer func() {
		for _, c := range filler {
			c.Close()
		}
	}()
	for { // fill the backlog: the next connect waits
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		filler = append(filler, c)
		if len(filler) > 16 {
			t.Skip("this kernel accepts connections past a listen backlog of 0")
		}
	}

	const n, timeout = 8, 300 * time.Millisecond
	c := &Client{Network: "tcp", Address: addr, MaxConns: 1, DialTimeout: timeout}
	defer c.CloseIdle()
	start := time.Now()
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Do(context.Background(), &Request{Params: clientParams("/")})
			errs <- err
		}()
	}
	for range n {
		// nginx: "upstream timed out ... while connecting to upstream", 504
		if err := <-errs; !errors.Is(err, cgi.ErrNotSent) || cgi.StatusOf(err) != http.StatusGatewayTimeout {
			t.Errorf("Do with the application unreachable = %v (status %d, not sent %t); want a 504 not sent", err, cgi.StatusOf(err), errors.Is(err, cgi.ErrNotSent))
		}
	}
	// Two timeouts are the expected; n timeouts, the dials in turn.
	if took := time.Since(start); took > n/2*timeout {
		t.Errorf("%d requests to an unreachable application took %v; dialling in turn takes %v", n, took, n*timeout)
	}
}
