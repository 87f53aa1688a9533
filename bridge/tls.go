package bridge

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/internal/h1"
	"github.com/rs/zerolog"
)

// certFiles is the certificate of an https:// front, read from its cert
// and key files and read again when either changes on disk (modification
// time or size), so that a renewed certificate (certbot, acme.sh) serves
// the next handshake without a restart. A pair that fails to load (a
// half-written renewal, a key that does not match) leaves the one in
// service, with one log line per change.
type certFiles struct {
	cert, key string
	log       *zerolog.Logger

	mu     sync.Mutex // guards the fields below
	pair   *tls.Certificate
	stamp  [2]fileStamp // the files' stamps when pair was read
	failed [2]fileStamp // the stamps the last failed read saw: logged once
}

// fileStamp is what tells a file changed.
type fileStamp struct {
	mtime int64 // nanoseconds since 1970
	size  int64
}

// stampOf returns the stamp of file name.
func stampOf(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime().UnixNano(), fi.Size()}, nil
}

// loadCertFiles reads the pair; the error names the files.
func loadCertFiles(cert, key string, log *zerolog.Logger) (*certFiles, error) {
	c := &certFiles{cert: cert, key: key, log: log}
	stamp, pair, err := c.read()
	if err != nil {
		return nil, err
	}
	c.pair, c.stamp = pair, stamp
	return c, nil
}

// read reads the pair and the stamps it was read at.
func (c *certFiles) read() ([2]fileStamp, *tls.Certificate, error) {
	var stamp [2]fileStamp
	var pem [2][]byte
	for i, name := range [2]string{c.cert, c.key} {
		var err error
		if stamp[i], err = stampOf(name); err == nil {
			pem[i], err = os.ReadFile(name)
		}
		if err != nil {
			return stamp, nil, fmt.Errorf("%s=%s: %s", [2]string{"cert", "key"}[i], name, fileError(err))
		}
	}
	pair, err := tls.X509KeyPair(pem[0], pem[1])
	if err != nil {
		return stamp, nil, fmt.Errorf("cert=%s key=%s: %w", c.cert, c.key, err)
	}
	return stamp, &pair, nil
}

// getCertificate is the front's tls.Config.GetCertificate: the pair, read
// again first if a file changed. Two stat calls per handshake are little
// beside the handshake's own work.
func (c *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var now [2]fileStamp
	for i, name := range [2]string{c.cert, c.key} {
		now[i], _ = stampOf(name) // a file gone for a moment (a rename in progress) reads as changed, and fails below
	}
	if now == c.stamp || now == c.failed {
		return c.pair, nil
	}
	stamp, pair, err := c.read()
	if err != nil {
		c.failed = now
		if c.log != nil {
			c.log.Warn().Err(err).Msg("ferry: TLS certificate changed but cannot be loaded; serving the previous one")
		}
		return c.pair, nil
	}
	c.pair, c.stamp, c.failed = pair, stamp, [2]fileStamp{}
	if c.log != nil {
		c.log.Info().Str("cert", c.cert).Str("key", c.key).Msg("ferry: TLS certificate reloaded")
	}
	return pair, nil
}

// tlsListener is the listener of an https:// front: it accepts on the TCP
// socket it wraps, which a reload keeps and an upgrade hands over, and
// serves TLS with the certificate of certs, which a reload replaces: TLS
// 1.2 and up with Go's default cipher suites, HTTP/2 offered by ALPN
// (net/http serves it on the connections that pick it). The HTTP front
// puts TLS between its own two layers with the socket and config (see
// [httpFront.serve]).
type tlsListener struct {
	net.Listener
	certs  atomic.Pointer[certFiles]
	config *tls.Config
}

func newTLSListener(l net.Listener, c *certFiles) *tlsListener {
	tl := &tlsListener{Listener: l}
	tl.certs.Store(c)
	tl.config = &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return tl.certs.Load().getCertificate(hello)
		},
	}
	return tl
}

// Accept returns the next connection as the server side of TLS; its
// handshake runs on its first read or write.
func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, l.config), nil
}

// frontCerts reads the certificate of a, an https:// front, or returns nil
// for another front; the error names the files.
func frontCerts(a Address, log *zerolog.Logger) (*certFiles, error) {
	if a.Scheme != "https" {
		return nil, nil
	}
	c, err := loadCertFiles(a.Query.Get("cert"), a.Query.Get("key"), log)
	if err != nil {
		return nil, fmt.Errorf("bridge: listen https://%s: %w", a.Host, err) // the error names the files
	}
	return c, nil
}

// withTLS returns l serving TLS with certs, or l itself when certs is nil.
func withTLS(l net.Listener, certs *certFiles) net.Listener {
	if certs == nil {
		return l
	}
	return newTLSListener(l, certs)
}

// socketOf returns the listener that holds l's socket: l itself, or the
// TCP listener under an https:// front's TLS.
func socketOf(l net.Listener) net.Listener {
	if tl, ok := l.(*tlsListener); ok {
		return tl.Listener
	}
	return l
}

// maxLoggedLine bounds the request line kept for the log of a head that
// fails, as the plain front cuts it.
const maxLoggedLine = 8 << 10

// headWatch follows the request heads of an HTTP/1.1 connection of an
// https:// front, which net/http serves, so that a head that fails is
// logged and counted as on the plain front ([httpFront.badHead]).
// net/http answers a head it cannot parse itself (400, 431, 501, 505) and
// closes the connection on a head cut off by the client or by its header
// timeout, and tells neither to anyone: its ErrorLog hears of neither. The
// connection's framer keeps the request line; the watch sees net/http's
// answer go out, or the read within a head that failed. net/http closes
// the connection after either, so a connection has one such head at most.
type headWatch struct {
	// handling is set from the start of a request's handler to the end
	// of its response (StateIdle): net/http answers no head meanwhile,
	// and the writes are the response's.
	handling atomic.Bool

	// Owned by the reader, as the framer.
	lines  int       // the framer's request lines when headAt was taken
	headAt time.Time // when the head being read began

	mu      sync.Mutex  // guards the fields below
	pending *h1.BadHead // a head whose read failed: net/http may answer it still
	done    bool        // the connection's bad head is logged
}

// watchRead notes, after a read that ended with err, when a new head
// began, and a head that the read failed: the client closed the
// connection or timed out within it. A read the server ended (Shutdown,
// the connection bound) is not the client's doing, as on the plain front.
func (c *httpConn) watchRead(err error) {
	w := &c.watch
	if c.fr.lines != w.lines {
		w.lines, w.headAt = c.fr.lines, time.Now()
	}
	if err == nil || w.handling.Load() || !c.fr.inHead() || errors.Is(err, net.ErrClosed) {
		return
	}
	part := "request headers"
	if c.fr.st == stRequestLine {
		part = "request line"
	}
	bh := c.headSoFar()
	if isTimeout(err) {
		bh.Status, bh.Reason = http.StatusRequestTimeout, "client timed out while reading the "+part
	} else {
		bh.Status, bh.Reason = http.StatusBadRequest, "client closed the connection while reading the "+part
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			bh.Reason += ": " + err.Error()
		}
	}
	w.mu.Lock()
	if w.pending == nil {
		w.pending = bh
	}
	w.mu.Unlock()
}

// errorAnswerHeader follows the status line of the answer net/http
// writes itself to a head it cannot parse (net/http's conn.serve).
const errorAnswerHeader = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// watchAnswer logs the head that answer, written outside any handler,
// answers, if it is net/http's answer to a head it cannot parse. whole
// says whether all of it went out.
func (c *httpConn) watchAnswer(answer []byte, whole bool) {
	line, rest, ok := bytes.Cut(answer, []byte("\r\n"))
	if !ok || !bytes.HasPrefix(rest, []byte(errorAnswerHeader[2:])) || len(line) < len("HTTP/1.1 400") || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 400 {
		return
	}
	w := &c.watch
	w.mu.Lock()
	bh := w.pending
	if w.done {
		w.mu.Unlock()
		return
	}
	w.done = true
	w.mu.Unlock()
	if bh == nil {
		bh = c.headSoFar()
		bh.Reason = "client sent an invalid request: " + c.answerReason(status, string(line[9:]))
		bh.Framing = c.refused != ""
	}
	bh.Status = status
	if whole {
		bh.BodyBytes = int64(len(rest) - len(errorAnswerHeader) + 2)
	}
	c.front.badHead(c, bh)
}

// answerReason says what was wrong with a head net/http answered with
// status and the status line's text after "HTTP/1.1 ", in the words of
// the plain front: net/http's own where its status line gives them
// ("400 Bad Request: missing required Host header"), else the framer's.
func (c *httpConn) answerReason(status int, text string) string {
	if _, why, ok := strings.Cut(text, ": "); ok {
		return why
	}
	switch {
	case c.refused != "":
		return c.refused
	case c.fr.failed != "":
		return c.fr.failed
	case status == http.StatusRequestHeaderFieldsTooLarge:
		return "request head over the header size limit"
	case status == http.StatusNotImplemented:
		return "unsupported transfer encoding"
	}
	return "invalid request head"
}

// watchClose logs the head whose read failed, which net/http closed
// the connection on without an answer.
func (c *httpConn) watchClose() {
	w := &c.watch
	w.mu.Lock()
	bh := w.pending
	if bh == nil || w.done {
		w.mu.Unlock()
		return
	}
	w.done = true
	w.mu.Unlock()
	c.front.badHead(c, bh)
}

// headSoFar returns the head being read as far as the framer kept it:
// its request line (split when net/http could parse it) and when it
// began.
func (c *httpConn) headSoFar() *h1.BadHead {
	line := strings.TrimSuffix(string(c.fr.reqLine), "\r")
	bh := &h1.BadHead{Line: line, Start: c.watch.headAt}
	if c.fr.failed != failedRequestLine {
		method, rest, ok1 := strings.Cut(line, " ")
		uri, proto, ok2 := strings.Cut(rest, " ")
		if ok1 && ok2 && strings.HasPrefix(proto, "HTTP/") {
			bh.Line, bh.Method, bh.RequestURI, bh.Proto = "", method, uri, proto
		}
	}
	return bh
}
