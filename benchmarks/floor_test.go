package benchmarks

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/ferrygw/ferry/scgi"
)

// serveFloorFront runs, on a loopback port until the test ends, the least
// an HTTP front to php-fpm written in Go can do with kept connections on
// both sides: a goroutine per client connection reading request heads
// with a bufio.Reader, one of max kept connections to the FastCGI
// application at addr (a channel of them), one write of a fixed
// BEGIN_REQUEST, PARAMS and empty STDIN naming script, a read of records
// up to END_REQUEST, and one write of the answer with a Content-Length.
// It reads no request body, checks nothing, logs nothing, and answers
// every request with the script's output as a 200: the floor under any
// real Go front (the go-floor row of BenchmarkPHPFPM), against which
// ferry's front and nginx are compared. It returns the front's URL.
func serveFloorFront(tb testing.TB, addr, script string, max int) string {
	tb.Helper()
	ups := floorPool(tb, addr, max)
	req := floorFastCGIRequest(script)
	return floorListen(tb, func(c net.Conn) { floorServe(c, ups, req) })
}

// floorListen serves each connection to a loopback port with serve, in a
// goroutine of its own, until the test ends; it returns the port's URL.
func floorListen(tb testing.TB, serve func(net.Conn)) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return "http://" + l.Addr().String()
}

// floorUpstream is a kept connection to the application, with its reader.
type floorUpstream struct {
	c   net.Conn
	br  *bufio.Reader
	rec []byte // a record's room
}

// floorPool opens max kept connections to the FastCGI application at
// addr, closed when the test ends.
func floorPool(tb testing.TB, addr string, max int) chan floorUpstream {
	tb.Helper()
	ups := make(chan floorUpstream, max)
	for range max {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		ups <- floorUpstream{c, bufio.NewReader(c), make([]byte, 8+65535+255)}
	}
	return ups
}

// exchange writes req and appends the application's STDOUT to stdout,
// reading records up to END_REQUEST.
func (up floorUpstream) exchange(req, stdout []byte) ([]byte, error) {
	if _, err := up.c.Write(req); err != nil {
		return stdout, err
	}
	rec := up.rec
	for {
		if _, err := io.ReadFull(up.br, rec[:8]); err != nil {
			return stdout, err
		}
		n := int(binary.BigEndian.Uint16(rec[4:6]))
		body := rec[8 : 8+n+int(rec[6])]
		if _, err := io.ReadFull(up.br, body); err != nil {
			return stdout, err
		}
		switch rec[1] {
		case 6: // FCGI_STDOUT
			stdout = append(stdout, body[:n]...)
		case 3: // FCGI_END_REQUEST
			return stdout, nil
		}
	}
}

// floorServe serves one client connection of serveFloorFront.
func floorServe(c net.Conn, ups chan floorUpstream, req []byte) {
	defer c.Close()
	br := bufio.NewReader(c)
	var out, stdout []byte
	for {
		if !floorReadHead(br) {
			return
		}
		up := <-ups
		var err error
		stdout, err = up.exchange(req, stdout[:0])
		if err != nil {
			return
		}
		ups <- up
		head, content, ok := bytes.Cut(stdout, []byte("\r\n\r\n"))
		if !ok {
			head, content, _ = bytes.Cut(stdout, []byte("\n\n"))
		}
		out = floorAnswer(out[:0], head, content)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// floorFastCGIRequest is the FastCGI request of serveFloorFront: request
// ID 1 with FCGI_KEEP_CONN, the meta-variables php-fpm needs to run
// script by GET, and an empty STDIN.
func floorFastCGIRequest(script string) []byte {
	var params []byte
	for _, kv := range [][2]string{
		{"SCRIPT_FILENAME", script}, {"REQUEST_METHOD", "GET"}, {"SERVER_PROTOCOL", "HTTP/1.1"},
		{"GATEWAY_INTERFACE", "CGI/1.1"}, {"REQUEST_URI", "/hello.php"}, {"SCRIPT_NAME", "/hello.php"},
		{"QUERY_STRING", ""}, {"SERVER_NAME", "localhost"}, {"REMOTE_ADDR", "127.0.0.1"},
	} {
		params = append(params, byte(len(kv[0])), byte(len(kv[1])))
		params = append(params, kv[0]...)
		params = append(params, kv[1]...)
	}
	if len(params) > 65535 {
		panic(errors.New("floor: params too long"))
	}
	rec := func(b []byte, typ byte, content []byte) []byte {
		b = append(b, 1, typ, 0, 1, byte(len(content)>>8), byte(len(content)), 0, 0)
		return append(b, content...)
	}
	var b []byte
	b = rec(b, 1, []byte{0, 1, 1, 0, 0, 0, 0, 0}) // BEGIN_REQUEST: responder, keep the connection
	b = rec(b, 4, params)
	b = rec(b, 4, nil)
	b = rec(b, 5, nil)
	return b
}

// serveFloorNetHTTP is serveFloorFront's exchange behind net/http's
// server instead of its hand-written loop: the difference between the
// two rows is what net/http costs a front.
func serveFloorNetHTTP(tb testing.TB, addr, script string, max int) string {
	tb.Helper()
	ups := floorPool(tb, addr, max)
	req := floorFastCGIRequest(script)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := <-ups
		defer func() { ups <- up }()
		stdout, err := up.exchange(req, nil)
		if err != nil {
			w.WriteHeader(502)
			return
		}
		head, content, _ := bytes.Cut(stdout, []byte("\r\n\r\n"))
		for _, line := range bytes.Split(head, []byte("\r\n")) {
			k, v, _ := bytes.Cut(line, []byte(": "))
			w.Header()[string(k)] = []string{string(v)}
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.Write(content)
	}))
	tb.Cleanup(hs.Close)
	return hs.URL
}

// serveSCGIFloorFront runs, on a loopback port until the test ends, the
// least an HTTP front to an SCGI application written in Go can do: a
// goroutine per client connection reading request heads with a
// bufio.Reader, then, holding one of max tokens (a channel of them), a
// connection per request to the application at addr (SCGI has no
// keep-alive; TCP keep-alive off, as ferry's client has it), one write of
// a fixed request, reads up to the application's close, and one write of
// the answer with a Content-Length. Like serveFloorFront it reads no
// request body, checks nothing, logs nothing, and answers every request
// as a 200 with the application's header (less a status line) and body:
// the floor under any Go front to uwsgi (the go-floor rows of
// BenchmarkUWSGISCGI). It returns the front's URL.
func serveSCGIFloorFront(tb testing.TB, addr string, max int) string {
	tb.Helper()
	tokens := make(chan struct{}, max)
	req := floorSCGIRequest(tb)
	return floorListen(tb, func(c net.Conn) { floorServeSCGI(c, tokens, addr, req) })
}

// floorReadHead reads a request head, lines up to an empty one: false at
// the connection's end.
func floorReadHead(br *bufio.Reader) bool {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return false
		}
		if len(line) <= 2 {
			return true
		}
	}
}

// floorAnswer appends to out a 200 answer with the application's header
// lines head and its body content, with a Content-Length.
func floorAnswer(out, head, content []byte) []byte {
	out = append(out, "HTTP/1.1 200 OK\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(content)), 10)
	out = append(out, "\r\n"...)
	out = append(out, head...)
	out = append(out, "\r\n\r\n"...)
	return append(out, content...)
}

// floorServeSCGI serves one client connection of serveSCGIFloorFront.
func floorServeSCGI(c net.Conn, tokens chan struct{}, addr string, req []byte) {
	defer c.Close()
	br := bufio.NewReader(c)
	d := net.Dialer{KeepAlive: -1}
	var resp bytes.Buffer
	var out []byte
	for {
		if !floorReadHead(br) {
			return
		}
		tokens <- struct{}{}
		resp.Reset()
		err := floorSCGIExchange(&d, addr, req, &resp)
		<-tokens
		if err != nil {
			return
		}
		stdout := resp.Bytes()
		if bytes.HasPrefix(stdout, []byte("HTTP/")) { // uwsgi's status line
			if _, rest, ok := bytes.Cut(stdout, []byte("\r\n")); ok {
				stdout = rest
			}
		}
		head, content, _ := bytes.Cut(stdout, []byte("\r\n\r\n"))
		out = floorAnswer(out[:0], head, content)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// floorSCGIExchange sends req on a new connection to addr and reads the
// answer into resp, up to the application's close.
func floorSCGIExchange(d *net.Dialer, addr string, req []byte, resp *bytes.Buffer) error {
	uc, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer uc.Close()
	if _, err := uc.Write(req); err != nil {
		return err
	}
	_, err = resp.ReadFrom(uc)
	return err
}

// floorSCGIRequest is the SCGI request of serveSCGIFloorFront, made once
// before the load: the meta-variables a WSGI application needs to run a
// GET of "/" (scgi.AppendRequest adds CONTENT_LENGTH and SCGI).
func floorSCGIRequest(tb testing.TB) []byte {
	b, err := scgi.AppendRequest(nil, []string{"REQUEST_METHOD=GET", "REQUEST_URI=/", "PATH_INFO=/", "QUERY_STRING=",
		"SERVER_NAME=localhost", "SERVER_PORT=80", "SERVER_PROTOCOL=HTTP/1.1", "REMOTE_ADDR=127.0.0.1"})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
