package bridge

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
)

// testCert is a self-signed certificate for 127.0.0.1 and localhost,
// written as PEM files.
type testCert struct {
	certFile, keyFile string
	pool              *x509.CertPool // trusts it
	serial            int64
}

// writeTestCert makes a certificate with the given serial number and
// writes it to cert.pem and key.pem in dir.
func writeTestCert(t *testing.T, dir string, serial int64) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "ferry test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := testCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool(), serial: serial}
	// Written next to the files and renamed over them, as certbot's
	// renewal links do: a handshake never reads half a file.
	for name, block := range map[string]*pem.Block{c.certFile: {Type: "CERTIFICATE", Bytes: der}, c.keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(name+".new", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(name+".new", name); err != nil {
			t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	c.pool.AddCert(cert)
	return c
}

// peerSerial makes a TLS connection to addr, trusting pool, and returns
// the serial number of the certificate the server sent.
func peerSerial(t *testing.T, addr string, pool *x509.CertPool) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// httpsListen is the https:// front address for c on a free port.
func (c testCert) httpsListen() string {
	return "https://127.0.0.1:0?" + url.Values{"cert": {c.certFile}, "key": {c.keyFile}}.Encode()
}

// client returns an HTTP client that trusts c, speaking HTTP/2 when h2,
// else HTTP/1.1 only.
func (c testCert) client(h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // no h2
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// serveTLS runs a Server listening on listen with mounts and returns its
// address and logs; it stops at cleanup.
func serveTLS(t *testing.T, listen string, mounts ...string) (string, *testlog.Buffer) {
	t.Helper()
	cfg, err := matrixConfig(listen, mounts)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AccessLog = true
	_, a, logs := runFerry(t, cfg)
	return a, logs
}

// TestHTTPSFront: an https:// front speaks HTTP/2 to a client that offers
// it (ALPN) and HTTP/1.1 to one that does not, TLS 1.2 at least; a CGI
// script behind it gets HTTPS=on and REQUEST_SCHEME=https.
func TestHTTPSFront(t *testing.T) {
	dir := testdir.Open(t)
	c := writeTestCert(t, dir, 1)
	writeExec(t, filepath.Join(dir, "env.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhttps=%s scheme=%s port=%s\\n' \"$HTTPS\" \"$REQUEST_SCHEME\" \"$SERVER_PORT\"\n")
	addr, _ := serveTLS(t, c.httpsListen(), "/cgi-bin/=cgi:"+dir)
	_, port, _ := net.SplitHostPort(addr)
	for _, tt := range []struct {
		h2    bool
		proto string
	}{{true, "HTTP/2.0"}, {false, "HTTP/1.1"}} {
		resp, err := c.client(tt.h2).Get("https://" + addr + "/cgi-bin/env.sh")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Proto != tt.proto || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("h2 %v: %s over %v; want %s over TLS 1.2 or later", tt.h2, resp.Proto, resp.TLS, tt.proto)
		}
		if want := "https=on scheme=https port=" + port + "\n"; string(body) != want {
			t.Errorf("h2 %v: the script said %q; want %q", tt.h2, body, want)
		}
	}
	// A client that offers only TLS 1.1 is refused.
	old := &tls.Config{RootCAs: c.pool, MaxVersion: tls.VersionTLS11}
	if conn, err := tls.Dial("tcp", addr, old); err == nil {
		conn.Close()
		t.Errorf("a TLS 1.1 handshake succeeded; want TLS 1.2 or later only")
	}
}

// TestHTTPSFrontChecks: an https:// front keeps the HTTP front's
// defences. Connections that never start their handshake give their place
// when the bound is reached; over HTTP/1.1, the framing checks refuse a
// smuggling attempt and the body timeout closes a body that never comes,
// logged 408; HTTP/2 is still served.
func TestHTTPSFrontChecks(t *testing.T) {
	leakcheck.Check(t)
	c := writeTestCert(t, testdir.Open(t), 1)
	cfg, err := matrixConfig(c.httpsListen(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Root = staticRoot(t, "a", "A", "smuggled", "SMUGGLED")
	cfg.Fronts = FrontLimits{MaxConns: 4, BodyTimeout: 300 * time.Millisecond}
	cfg.AccessLog = true
	_, addr, logs := runFerry(t, cfg)
	for range 4 {
		silent, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
	}
	time.Sleep(150 * time.Millisecond) // past the Gate's least wait
	h1 := func() net.Conn {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: c.pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}

	out, closed := rawExchangeOn(t, h1(), "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.1 400 ") || strings.Contains(out, "SMUGGLED") || !closed {
		t.Errorf("CL+TE over TLS: %q (closed: %v); want 400 alone, and the connection closed", out, closed)
	}
	if !logs.Contains("Content-Length with Transfer-Encoding") {
		t.Errorf("no log line of the refusal")
	}

	start := time.Now()
	out, closed = rawExchangeOn(t, h1(), "GET /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nsome", 10*time.Second)
	if !closed || time.Since(start) > 5*time.Second || strings.Contains(out, "404") {
		t.Errorf("a body that never comes over TLS: %q after %v (closed: %v); want the connection closed at the body timeout, unanswered", out, time.Since(start), closed)
	}
	for deadline := time.Now().Add(5 * time.Second); len(logs.Lines(`"path":"/nothing"`)) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if lines := logs.Lines(`"path":"/nothing"`); len(lines) != 1 || !strings.Contains(lines[0], `"status":408`) {
		t.Errorf("access log %q; want the request logged 408", lines)
	}

	client := c.client(true)
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
		t.Errorf("GET /a over HTTP/2 = %d %s; want 200 over HTTP/2.0", resp.StatusCode, resp.Proto)
	}
	if !logs.Contains("closing the connections that waited longest") {
		t.Errorf("no log line about the bound: the silent connections kept their places")
	}
}

// TestHTTPSCertificateReload: a certificate renewed on disk serves the
// next handshake, with no restart; a broken renewal leaves the old one in
// service and says so in the log.
func TestHTTPSCertificateReload(t *testing.T) {
	dir := testdir.Open(t)
	c := writeTestCert(t, dir, 1)
	writeExec(t, filepath.Join(dir, "ok.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok'\n")
	addr, logs := serveTLS(t, c.httpsListen(), "/cgi-bin/=cgi:"+dir)
	serial := func(pool *x509.CertPool) int64 {
		t.Helper()
		return peerSerial(t, addr, pool)
	}
	if got := serial(c.pool); got != 1 {
		t.Fatalf("serial %d; want 1", got)
	}
	c2 := writeTestCert(t, dir, 2)
	if got := serial(c2.pool); got != 2 {
		t.Errorf("after the renewal, serial %d; want 2", got)
	}
	// A key that is not the certificate's: the last good pair serves on.
	if err := os.WriteFile(c.keyFile, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serial(c2.pool); got != 2 {
		t.Errorf("after a broken renewal, serial %d; want 2 still", got)
	}
	if !strings.Contains(logs.String(), "cannot be loaded; serving the previous one") || !strings.Contains(logs.String(), c.keyFile) {
		t.Errorf("no warning naming %s in the log:\n%s", c.keyFile, logs)
	}
}

// TestHTTPSCertificateErrors: a missing or bad certificate is a start
// error naming the file; an https:// front without cert and key is a
// configuration error.
func TestHTTPSCertificateErrors(t *testing.T) {
	dir := testdir.Open(t)
	c := writeTestCert(t, dir, 1)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate\n"), 0o600)
	for _, tt := range []struct {
		name, listen, want string
	}{
		{"missing cert", "https://127.0.0.1:0?cert=" + dir + "/none.pem&key=" + c.keyFile, "bridge: listen https://127.0.0.1:0: cert=" + dir + "/none.pem: no such file"},
		{"missing key", "https://127.0.0.1:0?cert=" + c.certFile + "&key=" + dir + "/none.pem", "key=" + dir + "/none.pem: no such file"},
		{"bad cert", "https://127.0.0.1:0?cert=" + garbage + "&key=" + c.keyFile, "cert=" + garbage + " key=" + c.keyFile + ": tls: failed to find any PEM data in certificate input"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := matrixConfig(tt.listen, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Run(context.Background(), func([]net.Listener) { t.Error("ferry listened") })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v; want an error with %q", err, tt.want)
			}
		})
	}
	for _, listen := range []string{"https://127.0.0.1:0", "https://127.0.0.1:0?cert=" + c.certFile} {
		if _, err := matrixConfig(listen, nil); err != nil {
			t.Fatal(err)
		}
		a, _ := ParseAddress(listen)
		if _, err := New(Config{Listen: []Address{a}}); err == nil || !strings.Contains(err.Error(), "https:// needs cert=FILE and key=FILE") {
			t.Errorf("New(listen %s) = %v; want https:// needs cert=FILE and key=FILE", listen, err)
		}
	}
}

// TestCheckHTTPSCertificate: ferry check loads an https:// front's pair.
func TestCheckHTTPSCertificate(t *testing.T) {
	dir := testdir.Open(t)
	c := writeTestCert(t, dir, 1)
	for _, tt := range []struct{ cert, want string }{
		{c.certFile, ""},
		{dir + "/none.pem", "https://127.0.0.1:0: cert=" + dir + "/none.pem: no such file"},
		{c.keyFile, "https://127.0.0.1:0: cert=" + c.keyFile + " key=" + c.keyFile + ": tls: "},
	} {
		cfg := mustConfig(t, "https://127.0.0.1:0?"+url.Values{"cert": {tt.cert}, "key": {c.keyFile}}.Encode())
		var got []string
		for _, f := range Check(t.Context(), cfg, CheckOptions{}) {
			if f.Severity == Problem {
				got = append(got, f.Msg)
			}
		}
		if (tt.want == "") != (len(got) == 0) || (tt.want != "" && !strings.Contains(strings.Join(got, "\n"), tt.want)) {
			t.Errorf("check with cert=%s: problems %q; want %q", tt.cert, got, tt.want)
		}
	}
}

// TestShutdownClosesIdleHTTP2: an HTTP/2 client connection left idle does
// not hold ferry's shutdown for its timeout. net/http never counts such a
// connection idle; the drain sends it GOAWAY, as nginx does, and it closes.
func TestShutdownClosesIdleHTTP2(t *testing.T) {
	dir := testdir.Open(t)
	c := writeTestCert(t, dir, 1)
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := mustConfig(t, c.httpsListen())
	cfg.Root, cfg.ShutdownTimeout = dir, time.Minute
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- s.Run(ctx, func(ls []net.Listener) { addrs <- ls[0].Addr().String() }) }()
	addr := <-addrs
	client := c.client(true)
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("answered over %s; want HTTP/2", resp.Proto)
	}
	start := time.Now()
	cancel() // the connection stays open and idle on the client's side
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("shutdown took %v with an idle HTTP/2 connection; want it closed after the 1 s grace", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown still waiting after 30 s (shutdown timeout 1 min): the idle HTTP/2 connection holds it")
	}
}

// TestHTTPSBadHeadLogged: a request whose head fails on an https:// front
// is logged and counted as on the plain front (TestHTTPBadHeadLogged): an
// access line with its request line as it came and the status, a line at
// info saying why (a warning instead for a framing refusal), and a count
// in ferry_http_bad_requests_total. net/http, which serves HTTP/1.1 over
// TLS, answers such a head (or closes the connection on it) and tells no
// one, so none of these came. Each head goes over a real TLS connection.
func TestHTTPSBadHeadLogged(t *testing.T) {
	leakcheck.Check(t)
	c := writeTestCert(t, testdir.Open(t), 1)
	cfg, err := matrixConfig(c.httpsListen(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Root = staticRoot(t, "a", "A")
	cfg.AccessLog, cfg.Version = true, "test"
	// Long enough for a 1 MiB head over TLS under -race on a loaded machine.
	cfg.Fronts.HeaderTimeout = 2 * time.Second
	if cfg.Admin, err = ParseAdminAddress("http://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s, addr, logs := runFerry(t, cfg)
	dial := func() *tls.Conn {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: c.pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	long := "GET /" + strings.Repeat("d", 1<<20+8192) + " HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct {
		name, req  string
		closeWrite bool   // end the request with a TLS close_notify
		answer     string // the start of the answer; "" for none
		status     int
		request    string // the request line logged
		reason     string // the info line's; "" for none
	}{
		{"bad request line", "GET /x y z\r\nHost: x\r\n\r\n", false, "HTTP/1.1 400 Bad Request\r\n", 400, "GET /x y z", "client sent an invalid request: invalid request line"},
		{"bad header name", "GET /b HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", false, "HTTP/1.1 400 Bad Request: invalid header name\r\n", 400, "GET /b HTTP/1.1", "client sent an invalid request: invalid header name"},
		{"no Host", "GET /h HTTP/1.1\r\n\r\n", false, "HTTP/1.1 400 Bad Request: missing required Host header\r\n", 400, "GET /h HTTP/1.1", "client sent an invalid request: missing required Host header"},
		{"after a good request", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /p HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", false, "HTTP/1.1 200 OK\r\n", 400, "GET /p HTTP/1.1", "client sent an invalid request: invalid header name"},
		{"head timed out", "GET /c HTTP/1.1\r\nHost: x\r\n", false, "", 408, "GET /c HTTP/1.1", "client timed out while reading the request headers"},
		{"head cut off", "GET /e HTTP/1.1\r\nHost: x\r\n", true, "HTTP/1.1 400 Bad Request\r\n", 400, "GET /e HTTP/1.1", "client closed the connection while reading the request headers"},
		// net/http answers 431 where the plain front answers 414, as
		// nginx does; the line logged is cut at 8 KiB.
		{"request line too long", long, false, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 431, "GET /" + strings.Repeat("d", 8<<10-5), "client sent an invalid request: request head over the header size limit"},
		{"framing refused", "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, "HTTP/1.1 400 Bad Request\r\n", 400, "POST /f HTTP/1.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dial()
			var out string
			if tt.closeWrite {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(conn, tt.req); err != nil {
					t.Fatal(err)
				}
				if err := conn.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(conn)
				out = string(b)
			} else {
				out, _ = rawExchangeOn(t, conn, tt.req, 5*time.Second)
			}
			if !strings.HasPrefix(out, tt.answer) || (tt.answer == "" && out != "") {
				t.Errorf("ferry answered %.200q; want %q", out, cmp.Or(tt.answer, "nothing"))
			}
			waitLogLine(t, logs, func(m map[string]any) bool {
				d, _ := m["duration_ms"].(float64)
				return m["message"] == "request" && m["request"] == tt.request && m["status"] == float64(tt.status) && d < 5000
			})
			if tt.reason == "" {
				return
			}
			if l := logs.Lines(`"level":"info"`, `"request":"`+tt.request+`"`, `"message":"http: `+tt.reason+`"`); len(l) != 1 {
				t.Errorf("info lines saying %q: %q; want one", tt.reason, l)
			}
		})
	}
	if l := logs.Lines("client sent an invalid request: Content-Length"); len(l) != 0 {
		t.Errorf("the framing refusal has an info line besides its warning: %q", l)
	}
	f := &adminFerry{srv: s, admin: "http://" + s.AdminAddr().String()}
	m := f.scrape(t)
	for _, want := range []string{`ferry_http_bad_requests_total{status="400"} 6`, `ferry_http_bad_requests_total{status="408"} 1`, `ferry_http_bad_requests_total{status="431"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics have no %s", want)
		}
	}
}
