package bridge

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/rs/zerolog"
)

// httpSeeds are requests for the HTTP fuzzers: ordinary ones, pipelined
// ones, chunked bodies, and each framing trick of TestHTTPFraming.
func httpSeeds() []string {
	const second = "GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
	return []string{
		"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
		"GET /cgi-bin/env.sh/a/b?q=1&r=%20 HTTP/1.1\r\nHost: example.com:8080\r\nCookie: a=1\r\nX-Foo: bar\r\nProxy: http://evil\r\nX_Foo: under\r\n\r\n",
		"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello" + second,
		"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n" + second,
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n" + second,
		"GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n" + second,
		"GET /a HTTP/1.1\nHost: x\n\nGET /b HTTP/1.1\nHost: x\n\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + second,
		"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n" + second,
		"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + second,
		"POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + second,
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
		"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nabc\r\n0\r\n\r\n" + second,
		"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + second,
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	}
}

// FuzzHTTP1Framer runs the HTTP front's framer against net/http's own
// request reader on the same bytes: wherever net/http reads a request and
// its body whole, the framer must put the head's end and the body's end at
// the same offsets, unless it has refused the message or stopped checking
// before. A framer out of step would check the wrong bytes as headers.
func FuzzHTTP1Framer(f *testing.F) {
	for _, s := range httpSeeds() {
		f.Add([]byte(s), byte(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, step byte) {
		// The framer, fed in pieces as a socket delivers them: where each
		// head and each body ends, and where it refused or stopped.
		var fr http1Framer
		var heads, bodies []int
		stopAt := -1
		for off := 0; off < len(data) && stopAt < 0; {
			n := min(len(data)-off, 1+int(step)%97)
			piece := data[off : off+n]
			for i := 0; i < len(piece); i++ {
				wasBody, wasHead := fr.inBody(), fr.st > stRequestLine && fr.st < stBody
				pass, why := fr.scan(piece[i : i+1])
				if why != "" || fr.dead || pass != 1 {
					stopAt = off + i
					break
				}
				nowHead := fr.st > stRequestLine && fr.st < stBody
				switch {
				case wasHead && !nowHead:
					heads = append(heads, off+i+1)
					if !fr.inBody() {
						bodies = append(bodies, off+i+1)
					}
				case wasBody && !fr.inBody():
					bodies = append(bodies, off+i+1)
				}
			}
			off += n
		}
		// net/http's reader, with the server's leniency after a POST.
		src := bytes.NewReader(data)
		br := bufio.NewReader(src)
		consumed := func() int { return len(data) - src.Len() - br.Buffered() }
		lastPOST := false
		for k := 0; ; k++ {
			if lastPOST {
				peek, _ := br.Peek(4)
				skip := 0
				for skip < len(peek) && (peek[skip] == '\r' || peek[skip] == '\n') {
					skip++
				}
				br.Discard(skip)
			}
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			head := consumed()
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			body := consumed()
			lastPOST = req.Method == "POST"
			if stopAt >= 0 && stopAt < body {
				return // refused or unchecked from here on
			}
			if k >= len(heads) || heads[k] != head || k >= len(bodies) || bodies[k] != body {
				t.Fatalf("request %d of %q: net/http's head ends at %d, body at %d; the framer's heads %v, bodies %v (stopped at %d)",
					k, data, head, body, heads, bodies, stopAt)
			}
		}
	})
}

// FuzzHTTPFront feeds raw bytes to a connection served as ferry serves its
// plain HTTP fronts (h1.Server with the front's timeouts and the access
// log) with a handler that builds the meta-variables a script would get:
// nothing panics or hangs, and every variable is safe to pass on.
// (internal/h1's FuzzReadHead holds its parser to net/http's.)
func FuzzHTTPFront(f *testing.F) {
	for _, s := range httpSeeds() {
		f.Add([]byte(s))
	}
	log := zerolog.Nop()
	f.Fuzz(func(t *testing.T, data []byte) {
		var mu sync.Mutex
		var bad string
		handled := 0
		rec := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			env, err := cgi.AppendEnv(nil, r, cgi.Script{Name: "/s", PathInfo: r.URL.Path}, "ferry")
			mu.Lock()
			defer mu.Unlock()
			handled++
			if err != nil && !errors.Is(err, cgi.ErrInvalidMetaVariable) && !errors.Is(err, cgi.ErrEnvTooLarge) {
				bad = "AppendEnv: " + err.Error()
			}
			for _, kv := range env {
				k, v, ok := strings.Cut(kv, "=")
				switch {
				case !ok || k == "" || strings.Trim(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "":
					bad = "variable " + kv + " is not NAME=value"
				case strings.ContainsAny(v, "\x00\r\n"):
					bad = "variable " + k + " holds NUL, CR or LF"
				case k == "HTTP_PROXY":
					bad = "HTTP_PROXY passed (httpoxy)"
				}
			}
			io.WriteString(w, "ok")
		})
		s := &Server{log: log}
		front := newHTTPFront(s.accessLog(rec), FrontLimits{BodyTimeout: 2 * time.Second, SendTimeout: 2 * time.Second}, nil, log)
		fc := &fakeConn{in: data, closed: make(chan struct{})}
		l := &oneConnListener{c: fc, done: fc.closed}
		served := make(chan struct{})
		go func() {
			defer close(served)
			front.serve(l)
		}()
		select {
		case <-fc.closed:
		case <-time.After(10 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("the connection was not closed 10s after its input ended\n%s", buf[:runtime.Stack(buf, true)])
		}
		front.Close()
		<-served
		mu.Lock()
		defer mu.Unlock()
		if bad != "" {
			t.Fatalf("%q: %s", data, bad)
		}
	})
}

// fakeConn is a connection whose client sends in and then closes its
// side; what the server writes is dropped.
type fakeConn struct {
	mu        sync.Mutex
	in        []byte
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *fakeConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.in[:min(len(c.in), 1+int(c.in[0])%61)])
	c.in = c.in[n:]
	return n, nil
}

func (c *fakeConn) Write(p []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
		return len(p), nil
	}
}

func (c *fakeConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *fakeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}
}
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// oneConnListener hands out one connection, then waits for done.
type oneConnListener struct {
	c    net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }

// FuzzParseAddress: no panic, and an address that parses is spelt by
// String in a form that parses back to the same address.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8080", "fastcgi+unix:///run/ferry.sock?mode=0660", "scgi://[::1]:4000",
		"fastcgi+fd://0", "cgi:", "cgi:/usr/lib/cgi-bin?from=script-filename", "cgi:rel/dir", "fastcgi+exec:/usr/bin/php-cgi?workers=4&max_requests=500",
		"http://127.0.0.1:9000/base?max_conns=4", "HTTP://h:80", "gopher://h:70", "fastcgi://h:9000?max_conns=x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		spelt := a.String()
		b, err := ParseAddress(spelt)
		if err != nil {
			t.Fatalf("ParseAddress(%q) = %q, which does not parse: %v", s, spelt, err)
		}
		if b.String() != spelt || b.Network() != a.Network() {
			t.Fatalf("ParseAddress(%q) = %q (%s); again %q (%s)", s, spelt, a.Network(), b.String(), b.Network())
		}
	})
}

// FuzzParseMount: no panic, and a mount that parses is spelt
// PREFIX=BACKEND in a form that parses back to the same mount.
func FuzzParseMount(f *testing.F) {
	for _, s := range []string{"/cgi-bin/=cgi:/usr/lib/cgi-bin", "/=fastcgi://127.0.0.1:9000?max_conns=5", "/app=scgi+unix:///run/app.sock",
		"/php/=fastcgi+exec:/usr/bin/php-cgi?workers=2&min_workers=1&idle_timeout=10s", "/x=http://127.0.0.1:1/base", "cgi-bin=cgi:/x", "/x", "/a=b=c", "/=cgi:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMount(s)
		if err != nil {
			return
		}
		spelt := m.Prefix + "=" + m.Backend.String()
		m2, err := ParseMount(spelt)
		if err != nil {
			t.Fatalf("ParseMount(%q) = %q, which does not parse: %v", s, spelt, err)
		}
		if m2.Prefix != m.Prefix || m2.Backend.String() != m.Backend.String() {
			t.Fatalf("ParseMount(%q) = %q; again %q=%q", s, spelt, m2.Prefix, m2.Backend)
		}
	})
}
