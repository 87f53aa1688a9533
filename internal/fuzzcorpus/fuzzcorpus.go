// Package fuzzcorpus writes seed files for Go's native fuzzing
// (testdata/fuzz/FuzzX/NAME, the "go test fuzz v1" format) and records
// what real peers send, so that the corpora ferry commits hold the traffic
// of nginx, Apache, lighttpd, php-fpm and uwsgi. Tests that capture it run
// only when FERRY_CAPTURE_CORPUS=1 ([Capturing]); the files they write are
// committed.
package fuzzcorpus

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Capturing reports whether the capture tests should run and write files.
func Capturing() bool { return os.Getenv("FERRY_CAPTURE_CORPUS") == "1" }

// Write writes one seed of the fuzz target fuzz into dir/fuzz/NAME (dir is
// a package's testdata), encoding vals as the target's arguments: []byte,
// string, bool or byte.
func Write(dir, fuzz, name string, vals ...any) error {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case string:
			fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
		case bool:
			fmt.Fprintf(&b, "bool(%t)\n", v)
		case byte:
			fmt.Fprintf(&b, "byte(%d)\n", v)
		default:
			return fmt.Errorf("fuzzcorpus: no encoding for %T", v)
		}
	}
	d := filepath.Join(dir, "fuzz", fuzz)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, name), b.Bytes(), 0o644)
}

// Listener records what each accepted connection reads.
type Listener struct {
	net.Listener
	mu    sync.Mutex
	conns []*conn
}

type conn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// Accept accepts a connection whose reads are recorded.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &conn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, rc)
	l.mu.Unlock()
	return rc, nil
}

// Reads returns what each connection accepted so far has read, in the
// order they were accepted.
func (l *Listener) Reads() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][]byte, len(l.conns))
	for i, c := range l.conns {
		c.mu.Lock()
		out[i] = bytes.Clone(c.buf.Bytes())
		c.mu.Unlock()
	}
	return out
}

// SendRequests sends a few kinds of request to a web server at base (a
// GET with a query, a form POST, a chunked PUT, each with a cookie and a
// header of its own), so that what the server passes on is recorded.
func SendRequests(base string) error {
	c := &http.Client{Timeout: 10 * time.Second}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/app/x?q=1&r=%20", ""},
		{"POST", "/app/form", "a=1&b=2"},
		{"PUT", "/app/chunked", strings.Repeat("chunk ", 50)},
	} {
		var body io.Reader
		if r.body != "" {
			body = strings.NewReader(r.body)
			if r.method == "PUT" {
				body = io.MultiReader(body) // no length: chunked
			}
		}
		req, err := http.NewRequest(r.method, base+r.path, body)
		if err != nil {
			return err
		}
		req.Header.Set("X-Capture", "1")
		req.Header.Set("Cookie", "s=abc")
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("fuzzcorpus: %s %s: %w", r.method, r.path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return nil
}

// Through sends SendRequests to the web server at url, stops it with stop,
// and returns what the connections l accepted meanwhile read: what that
// web server sent.
func Through(l *Listener, url string, stop func() error) ([][]byte, error) {
	before := len(l.Reads())
	if err := SendRequests(url); err != nil {
		return nil, err
	}
	_ = stop()                         // a peer that fails to stop has still sent its requests; its test reports it
	time.Sleep(200 * time.Millisecond) // the connections end
	var out [][]byte
	for _, b := range l.Reads()[before:] {
		if len(b) > 0 {
			out = append(out, b)
		}
	}
	return out, nil
}

// Listen returns a recording Listener on a free loopback port.
func Listen() (*Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &Listener{Listener: l}, nil
}
