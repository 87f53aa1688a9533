package fastcgi

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
)

// benchParams is what nginx's stock fastcgi_params send for a small GET,
// with a browser's headers.
var benchParams = []string{
	"QUERY_STRING=x=1&y=2", "REQUEST_METHOD=GET", "CONTENT_TYPE=", "CONTENT_LENGTH=",
	"SCRIPT_NAME=/index.php", "REQUEST_URI=/index.php?x=1&y=2", "DOCUMENT_URI=/index.php",
	"DOCUMENT_ROOT=/srv/www", "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_SCHEME=http",
	"GATEWAY_INTERFACE=CGI/1.1", "SERVER_SOFTWARE=nginx/1.22.1", "REMOTE_ADDR=192.0.2.7",
	"REMOTE_PORT=51234", "SERVER_ADDR=127.0.0.1", "SERVER_PORT=80", "SERVER_NAME=example.com",
	"SCRIPT_FILENAME=/srv/www/index.php", "HTTP_HOST=example.com",
	"HTTP_USER_AGENT=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
	"HTTP_ACCEPT=text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
	"HTTP_ACCEPT_LANGUAGE=en-GB,en;q=0.9", "HTTP_ACCEPT_ENCODING=gzip, deflate, br",
	"HTTP_COOKIE=session=abcdef0123456789; theme=dark",
}

// benchRequestBytes is one whole request as a web server sends it.
func benchRequestBytes(id uint16) []byte {
	var pairs []byte
	for _, kv := range benchParams {
		k, v, _ := strings.Cut(kv, "=")
		pairs = AppendPair(pairs, k, v)
	}
	b := AppendBeginRequest(nil, id, RoleResponder, FlagKeepConn)
	b = AppendStream(b, TypeParams, id, pairs)
	b = AppendRecord(b, TypeParams, id, nil)
	return AppendRecord(b, TypeStdin, id, nil)
}

// BenchmarkEncodeRequest: BEGIN_REQUEST, PARAMS and the empty STDIN, as
// the client builds them.
func BenchmarkEncodeRequest(b *testing.B) {
	b.ReportAllocs()
	buf, pairs := make([]byte, 0, 4096), make([]byte, 0, 4096)
	for b.Loop() {
		pairs = pairs[:0]
		for _, kv := range benchParams {
			k, v, _ := strings.Cut(kv, "=")
			pairs = AppendPair(pairs, k, v)
		}
		buf = AppendBeginRequest(buf[:0], 1, RoleResponder, FlagKeepConn)
		buf = AppendStream(buf, TypeParams, 1, pairs)
		buf = AppendRecord(buf, TypeParams, 1, nil)
		buf = AppendRecord(buf, TypeStdin, 1, nil)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDecodeRequest: reading the records and parsing the pairs, as
// the server does.
func BenchmarkDecodeRequest(b *testing.B) {
	b.ReportAllocs()
	req := benchRequestBytes(1)
	b.SetBytes(int64(len(req)))
	r := bytes.NewReader(req)
	br := bufio.NewReaderSize(r, 16<<10)
	rd := NewReader(br)
	n := 0
	for b.Loop() {
		r.Reset(req)
		br.Reset(r)
		for {
			rec, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if rec.Type == TypeParams {
				ParsePairs(rec.Content, func(name, value []byte) error { n++; return nil })
			}
		}
	}
	if n == 0 {
		b.Fatal("no pairs parsed")
	}
}

// benchHello answers every request with a short text.
var benchHello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "Hello, world\n")
})

// benchServer serves srv on a loopback port until b ends, and returns the
// address.
func benchServer(b *testing.B, srv *Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// BenchmarkServerRequest: one request from Client through Server on a
// kept loopback connection (records out and in, a handler, a CGI response),
// both sides counted.
func BenchmarkServerRequest(b *testing.B) {
	b.ReportAllocs()
	c := &Client{Network: "tcp", Address: benchServer(b, &Server{Handler: benchHello}), MaxConns: 1, NoMultiplex: true}
	defer c.CloseIdle()
	buf := make([]byte, 4096)
	for b.Loop() {
		resp, err := c.Do(context.Background(), &Request{Params: benchParams})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Stdout.Read(buf); err != nil {
				break
			}
		}
		resp.Stdout.Close()
	}
}

// BenchmarkHandler: an HTTP request through NewHandler (meta-variables, the
// client, the response copied back) to a Server on a kept loopback
// connection, both sides counted: the gateway's hot path.
func BenchmarkHandler(b *testing.B) {
	b.ReportAllocs()
	c := &Client{Network: "tcp", Address: benchServer(b, &Server{Handler: benchHello}), MaxConns: 1, NoMultiplex: true}
	defer c.CloseIdle()
	h := NewHandler(c, cgi.Mount{Prefix: "/app/"}, cgi.Settings{})
	r := httptest.NewRequest("GET", "http://example.com/app/x?y=1", nil)
	r.Header.Set("User-Agent", "bench")
	serveLoop(b, h, r)
}

// serveLoop serves r with h for each iteration of b, each answer 200.
func serveLoop(b *testing.B, h http.Handler, r *http.Request) {
	w := &discardWriter{h: make(http.Header)}
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

// discardWriter is an http.ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkMultiplexing: 16 clients at once through NewHandler to an
// application that takes 1 ms per request and allows 2 connections
// (FCGI_MAX_CONNS), with and without request-ID multiplexing. Without it,
// requests queue for the 2 connections; with it, they share them.
func BenchmarkMultiplexing(b *testing.B) {
	addr := benchServer(b, &Server{MaxConns: 2, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		io.WriteString(w, "done\n")
	})})
	for _, mpx := range []bool{false, true} {
		b.Run(map[bool]string{false: "one-per-connection", true: "multiplexed"}[mpx], func(b *testing.B) {
			b.ReportAllocs()
			c := &Client{Network: "tcp", Address: addr, MaxConns: 2, NoMultiplex: !mpx}
			defer c.CloseIdle()
			h := NewHandler(c, nil, cgi.Settings{})
			serveParallel(b, h)
		})
	}
}

// BenchmarkKeptOrMultiplexed: 16 concurrent requests through NewHandler to
// a Server serving hello, both sides in this process, on kept connections
// of their own (the application allows multiplexBelow connections) and
// multiplexed (it allows one fewer, so the Client multiplexes). cpu-us/op
// is this process's CPU time a request, from getrusage: what the choice
// in Client.init rests on.
func BenchmarkKeptOrMultiplexed(b *testing.B) {
	for _, mpx := range []bool{false, true} {
		b.Run(map[bool]string{false: "kept", true: "multiplexed"}[mpx], func(b *testing.B) {
			conns := multiplexBelow
			if mpx {
				conns--
			}
			c := &Client{Network: "tcp", Address: benchServer(b, &Server{Handler: benchHello, MaxConns: conns})}
			defer c.CloseIdle()
			h := NewHandler(c, nil, cgi.Settings{})
			b.ReportAllocs()
			start := cpuTime(b)
			serveParallel(b, h)
			b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N)/1e3, "cpu-us/op")
			if c.multi != mpx {
				b.Fatalf("multiplexed = %v; want %v", c.multi, mpx)
			}
		})
	}
}

// serveParallel serves GET /x with h from 16 goroutines (8 a CPU on 2
// CPUs) until b's iterations are done, each answer 200.
func serveParallel(b *testing.B, h http.Handler) {
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "http://example.com/x", nil)
		w := &discardWriter{h: make(http.Header)}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, r)
			if w.code != 200 {
				b.Errorf("status %d", w.code)
				return
			}
		}
	})
}

// cpuTime returns the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cannedApp serves, on a loopback port until b ends, an application that
// answers every request with the same records (php-fpm's answer to a
// hello-world script) and allocates nothing per request, so that a
// benchmark through it counts the gateway's side alone.
func cannedApp(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	out := AppendStream(nil, TypeStdout, requestID, []byte("X-Powered-By: PHP/8.2.29\r\nContent-Type: text/plain;charset=UTF-8\r\n\r\nHello, world\n"))
	out = AppendRecord(out, TypeStdout, requestID, nil)
	out = AppendRecord(out, TypeEndRequest, requestID, []byte{0, 0, 0, 0, byte(RequestComplete), 0, 0, 0})
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				rd := NewReader(bufio.NewReaderSize(nc, 16<<10))
				for {
					rec, err := rd.Next()
					if err != nil {
						return
					}
					if rec.Type == TypeStdin && len(rec.Content) == 0 {
						if _, err := nc.Write(out); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkGateway: an HTTP request for a PHP script through NewHandler
// with a PHPSite (the script's stat, meta-variables, the client, the
// response parsed and copied back) to a canned application on a kept
// loopback connection: the gateway's side alone.
func BenchmarkGateway(b *testing.B) {
	b.ReportAllocs()
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "hello.php"), []byte("<?php echo 'x';"), 0o644); err != nil {
		b.Fatal(err)
	}
	c := &Client{Network: "tcp", Address: cannedApp(b), MaxConns: 4, NoMultiplex: true}
	defer c.CloseIdle()
	h := NewHandler(c, &cgi.PHPSite{Root: root}, cgi.Settings{})
	r := httptest.NewRequest("GET", "http://example.com/hello.php", nil)
	r.Header.Set("User-Agent", "wrk")
	serveLoop(b, h, r)
}
