package scgi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/rs/zerolog"
)

// front runs a NewHandler in an httptest server in front of the SCGI
// application at addr; opts adjust its client.
func front(t *testing.T, addr string, opts ...func(*Client)) (*httptest.Server, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	logger := zerolog.New(log)
	c := &Client{Network: "tcp", Address: addr, Logger: &logger}
	for _, o := range opts {
		o(c)
	}
	h := NewHandler(c, cgi.Mount{Prefix: "/app"}, cgi.Settings{Logger: &logger})
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs, log
}

func appHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/app/env":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "script=%s path=%s uri=%s query=%s remote=%s cl=%d", r.Header.Get("X-Script"), r.URL.Path, r.RequestURI, r.URL.RawQuery, r.RemoteAddr, r.ContentLength)
	case "/app/post":
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "cl=%d read=%d sha=%x err=%v", r.ContentLength, len(b), sha256.Sum256(b), err)
	case "/app/status":
		http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
		http.SetCookie(w, &http.Cookie{Name: "b", Value: "2"})
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "teapot")
	case "/app/stream":
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	case "/app/big":
		line := bytes.Repeat([]byte("0123456789abcdef"), 4<<10)
		for range 20 * 16 {
			w.Write(line)
		}
	}
}

func TestHandlerEndToEnd(t *testing.T) {
	leakcheck.Check(t)
	ts := startServer(t, http.HandlerFunc(appHandler))
	hs, _ := front(t, ts.addr)
	client := hs.Client()

	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	resp, body := get("/app/env?q=1")
	if want := "script= path=/app/env uri=/app/env?q=1 query=q=1 remote=127.0.0.1:"; resp.StatusCode != 200 || !strings.HasPrefix(body, want) || !strings.HasSuffix(body, " cl=0") {
		t.Errorf("GET env: %d %q; want 200 %q...", resp.StatusCode, body, want)
	}
	resp, body = get("/app/status")
	if resp.StatusCode != http.StatusTeapot || body != "teapot" || strings.Join(resp.Header.Values("Set-Cookie"), ",") != "a=1,b=2" {
		t.Errorf("GET status: %d %q %q", resp.StatusCode, body, resp.Header.Values("Set-Cookie"))
	}
	resp, body = get("/app/big")
	if resp.StatusCode != 200 || len(body) != 20<<20 {
		t.Errorf("GET big: %d, %d bytes; want 20 MiB", resp.StatusCode, len(body))
	}

	data := bytes.Repeat([]byte("x"), 1<<20)
	want := fmt.Sprintf("cl=%d read=%d sha=%x err=<nil>", len(data), len(data), sha256.Sum256(data))
	for _, chunked := range []bool{false, true} {
		var r io.Reader = bytes.NewReader(data)
		if chunked {
			r = io.MultiReader(r) // hides the length: sent chunked
		}
		resp, err := client.Post(hs.URL+"/app/post", "application/octet-stream", r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("POST chunked=%v: %q; want %q", chunked, b, want)
		}
	}

	// Streaming: the first line arrives while the handler still runs, and
	// the client leaving ends the application's request.
	resp, err := client.Get(hs.URL + "/app/stream")
	if err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, line); err != nil || string(line) != "first\n" {
		t.Errorf("stream: %q, %v", line, err)
	}
	resp.Body.Close()
	client.CloseIdleConnections()
}

// TestHandlerNPH checks the HTTP status-line form some servers (uwsgi)
// answer with.
func TestHandlerNPH(t *testing.T) {
	leakcheck.Check(t)
	l := rawApp(t, func(c net.Conn) {
		ReadHeader(newReader(c), Limits{})
		io.WriteString(c, "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\ncreated")
	})
	hs, _ := front(t, l)
	resp, err := hs.Client().Get(hs.URL + "/app/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || string(b) != "created" || resp.Header.Get("X-A") != "1" {
		t.Errorf("NPH response: %d %q %v", resp.StatusCode, b, resp.Header)
	}
}

// rawApp runs serve for each connection on a loopback listener.
func rawApp(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			serve(c)
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String()
}

func TestHandlerFailures(t *testing.T) {
	leakcheck.Check(t)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	down.Close()
	silent := rawApp(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		io.Copy(io.Discard, c) // waits for the client to give up
	})
	garbage := rawApp(t, func(c net.Conn) {
		ReadHeader(newReader(c), Limits{})
		io.WriteString(c, "no header block\x00\r\n")
	})
	cut := rawApp(t, func(c net.Conn) {
		ReadHeader(newReader(c), Limits{})
		io.WriteString(c, "Status: 200 OK\r\nContent-Length: 100\r\n\r\nshort")
		c.(*net.TCPConn).SetLinger(0)
	})
	for _, tt := range []struct {
		name, addr string
		status     int
		opt        func(*Client)
	}{
		{"down", downAddr, 502, nil},
		{"silent", silent, 504, func(c *Client) { c.ReadTimeout = 200 * time.Millisecond }},
		{"garbage", garbage, 502, nil},
		{"cut", cut, 200, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := []func(*Client){}
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			hs, log := front(t, tt.addr, opts...)
			resp, err := hs.Client().Get(hs.URL + "/app/x")
			if tt.name == "cut" {
				// The response is aborted: the client must not see it whole.
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil {
					t.Errorf("a response cut short reached the client whole")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d; want %d", resp.StatusCode, tt.status)
			}
			if !strings.Contains(log.String(), `"backend":"tcp:`+tt.addr) {
				t.Errorf("log does not name the backend: %s", log)
			}
		})
	}
}

func TestClientPoolTimeout(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	c := &Client{Network: "tcp", Address: ts.addr, MaxConns: 1, QueueTimeout: 50 * time.Millisecond}
	first := make(chan error, 1)
	go func() {
		resp, err := c.RoundTrip(context.Background(), &cgi.AppRequest{Params: []string{"REQUEST_METHOD=GET", "REQUEST_URI=/"}})
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		first <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_, err := c.RoundTrip(context.Background(), &cgi.AppRequest{Params: []string{"REQUEST_METHOD=GET", "REQUEST_URI=/"}})
	if !errors.Is(err, ErrPoolTimeout) || cgi.StatusOf(err) != 503 {
		t.Errorf("second request: %v (status %d); want ErrPoolTimeout, 503", err, cgi.StatusOf(err))
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first request: %v", err)
	}
}

// TestClientCancel checks that ending the context closes the connection,
// which the server sees as its request's context ending.
func TestClientCancel(t *testing.T) {
	leakcheck.Check(t)
	ended := make(chan error, 1)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "started")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		ended <- r.Context().Err()
	}))
	c := &Client{Network: "tcp", Address: ts.addr}
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := c.RoundTrip(ctx, &cgi.AppRequest{Params: []string{"REQUEST_METHOD=GET", "REQUEST_URI=/"}})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v; want context.Canceled", err)
	}
	resp.Body.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("server request ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's request context did not end")
	}
}

func TestClientShortBody(t *testing.T) {
	leakcheck.Check(t)
	ts := startServer(t, http.HandlerFunc(echoHandler))
	c := &Client{Network: "tcp", Address: ts.addr}
	_, err := c.RoundTrip(context.Background(), &cgi.AppRequest{Params: []string{"REQUEST_METHOD=POST", "REQUEST_URI=/"}, Body: strings.NewReader("abc"), ContentLength: 10})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("RoundTrip with a short body: %v; want io.ErrUnexpectedEOF", err)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	ts := startServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	c := &Client{Network: "tcp", Address: ts.addr}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.RoundTrip(context.Background(), &cgi.AppRequest{Params: nginxParams[1:]})
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// TestReadySeesEnd: once the response's bytes are read, Ready probes the
// connection without waiting: false while the application holds it open,
// true once it has closed, so that the copy to the client ends without a
// flush (one write, with a Content-Length) when the end came with the
// last bytes.
func TestReadySeesEnd(t *testing.T) {
	leakcheck.Check(t)
	const answer = "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"
	closeApp := make(chan struct{})
	closed := make(chan struct{})
	addr := rawApp(t, func(c net.Conn) {
		if _, err := ReadHeader(bufio.NewReader(c), Limits{}); err != nil {
			t.Errorf("app: %v", err)
		}
		io.WriteString(c, answer)
		<-closeApp
		c.Close() // on loopback the FIN is queued at the client when Close returns
		close(closed)
	})
	c := &Client{Network: "tcp", Address: addr}
	resp, err := c.RoundTrip(context.Background(), &cgi.AppRequest{Params: nginxParams[1:]})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len(answer))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != answer {
		t.Fatalf("ReadFull = %q, %v; want %q", buf, err, answer)
	}
	rb, ok := resp.Body.(interface{ Ready() bool })
	if !ok {
		t.Fatalf("the response's Body %T has no Ready method", resp.Body)
	}
	if rb.Ready() {
		t.Errorf("Ready() = true with the connection open and nothing buffered")
	}
	// A probe that finds nothing allocates nothing: Ready runs before every
	// read of a response.
	if a := testing.AllocsPerRun(10, func() {
		if rb.Ready() {
			t.Errorf("Ready() = true with the connection open and nothing buffered")
		}
	}); a != 0 && !raceEnabled {
		t.Errorf("Ready() with nothing at hand made %v allocations; want 0", a)
	}
	close(closeApp)
	<-closed
	if !rb.Ready() {
		t.Errorf("Ready() = false after the application closed")
	}
	if n, err := resp.Body.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read after the end = %d, %v; want 0, EOF", n, err)
	}
}
