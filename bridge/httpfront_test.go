package bridge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/h1"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/rs/zerolog"
)

// startFerry runs a bridge Server for cfg on an HTTP front (unless cfg
// lists its fronts), and returns the address of its first front and its
// log. It stops at cleanup.
func startFerry(t testing.TB, cfg Config) (string, *testlog.Buffer) {
	t.Helper()
	addrs, logs := startFerryFronts(t, cfg)
	return addrs[0], logs
}

// startFerryFronts is startFerry returning the address of every front.
func startFerryFronts(t testing.TB, cfg Config) ([]string, *testlog.Buffer) {
	t.Helper()
	_, addrs, logs := startFerryServer(t, cfg)
	return addrs, logs
}

// startFerryServer is startFerryFronts returning the Server too.
func startFerryServer(t testing.TB, cfg Config) (*Server, []string, *testlog.Buffer) {
	t.Helper()
	if len(cfg.Listen) == 0 {
		a, _ := ParseAddress("http://127.0.0.1:0")
		cfg.Listen = []Address{a}
	}
	cfg.AccessLog = true
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	return runFerryFronts(t, cfg)
}

// staticRoot writes files (name, content, ...) into a new document root.
func staticRoot(t testing.TB, nameContent ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i+1 < len(nameContent); i += 2 {
		if err := os.WriteFile(filepath.Join(dir, nameContent[i]), []byte(nameContent[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// rawExchange writes req on a new connection to addr and returns all the
// connection gives back until it closes or d passes, and whether it closed.
func rawExchange(t testing.TB, addr, req string, d time.Duration) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return rawExchangeOn(t, c, req, d)
}

// rawExchangeOn is rawExchange on c, which it closes.
func rawExchangeOn(t testing.TB, c net.Conn, req string, d time.Duration) (string, bool) {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	return string(b), err == nil || !isTimeout(err)
}

// TestHTTPFraming probes what reaches the handler, and what comes back,
// for each framing trick of RFC 9112 § 6 and § 5.2. The rows marked
// "net/http" are what Go 1.26's server does by itself, kept so; the
// others are the framer's refusals.
func TestHTTPFraming(t *testing.T) {
	leakcheck.Check(t)
	root := staticRoot(t, "a", "A", "second", "S", "smuggled", "SMUGGLED")
	addr, logs := startFerry(t, Config{Root: root})
	const second = "GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct {
		name      string
		req       string
		status    string // the first response's status line
		served    int    // responses in all
		closed    bool   // the connection closed after them
		refusedBy string // the framer's reason in the log; "" for net/http's own
	}{
		{"CL+TE", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
			"HTTP/1.1 400 Bad Request", 1, true, "Content-Length with Transfer-Encoding"},
		{"TE+CL", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
			"HTTP/1.1 400 Bad Request", 1, true, "Content-Length with Transfer-Encoding"},
		{"obs-fold", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n" + second,
			"HTTP/1.1 400 Bad Request", 1, true, "obs-fold"},
		{"folded Transfer-Encoding", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + second,
			"HTTP/1.1 400 Bad Request", 1, true, "obs-fold"},
		{"TE in HTTP/1.0", "POST /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc" + second,
			"HTTP/1.1 400 Bad Request", 1, true, "Content-Length with Transfer-Encoding"},
		{"TE alone in HTTP/1.0", "POST /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + second,
			"HTTP/1.1 400 Bad Request", 1, true, "Transfer-Encoding in an HTTP/1.0 request"},
		{"obs-fold in a trailer", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n folded\r\n\r\n" + second,
			"HTTP/1.1 405 Method Not Allowed", 1, true, "obs-fold in the trailer"},
		{"oversized Content-Length", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: " + strings.Repeat("0", 200) + "1\r\n\r\nx" + second,
			"HTTP/1.1 400 Bad Request", 1, true, "over 128 bytes"},
		// net/http's own answers.
		{"two Content-Lengths", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde" + second,
			"HTTP/1.1 400 Bad Request", 1, true, ""},
		{"Content-Length list", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd" + second,
			"HTTP/1.1 400 Bad Request", 1, true, ""},
		{"two equal Content-Lengths", "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd" + second,
			"HTTP/1.1 200 OK", 2, false, ""},
		{"bare LF", "GET /a HTTP/1.1\nHost: x\n\nGET /second HTTP/1.1\nHost: x\n\n",
			"HTTP/1.1 200 OK", 2, false, ""},
		{"chunk size over 64 bits", "GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nabc\r\n0\r\n\r\n" + second,
			"HTTP/1.1 200 OK", 1, true, ""},
		{"negative chunk size", "GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n" + second,
			"HTTP/1.1 200 OK", 1, true, ""},
		{"bare LF in chunked", "GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + second,
			"HTTP/1.1 200 OK", 1, true, ""},
		{"chunked, extensions and trailer", "GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n" + second,
			"HTTP/1.1 200 OK", 2, false, ""},
		{"chunked gzip", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + second,
			"HTTP/1.1 501 Not Implemented", 1, true, ""},
		{"CRLF after a POST", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n" + second,
			"HTTP/1.1 405 Method Not Allowed", 2, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(logs.Lines("request refused"))
			out, closed := rawExchange(t, addr, tt.req, 2*time.Second)
			if !strings.HasPrefix(out, tt.status+"\r\n") {
				t.Errorf("first response %q; want %q", firstLine(out), tt.status)
			}
			if got := strings.Count(out, "HTTP/1.1 "); got != tt.served {
				t.Errorf("%d responses; want %d:\n%s", got, tt.served, out)
			}
			if strings.Contains(out, "SMUGGLED") {
				t.Errorf("the smuggled request was served")
			}
			if closed != tt.closed {
				t.Errorf("connection closed: %v; want %v", closed, tt.closed)
			}
			refusals := logs.Lines("request refused")[before:]
			switch {
			case tt.refusedBy != "" && (len(refusals) != 1 || !strings.Contains(refusals[0], tt.refusedBy)):
				t.Errorf("log lines of refusal %q; want one saying %q", refusals, tt.refusedBy)
			case tt.refusedBy == "" && len(refusals) != 0:
				t.Errorf("the framer refused what net/http handles: %q", refusals)
			}
		})
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// TestHTTPBodyNeverComes is issue 16's "a request declaring
// Content-Length: 100000 that never sends the body got no bytes at all in
// 660 s (the log says its 404 was served in 0.57 ms)": the connection is
// closed at the body timeout, and the access log says 408, aborted, not
// the 404 the handler wrote and no client saw.
func TestHTTPBodyNeverComes(t *testing.T) {
	leakcheck.Check(t)
	addr, logs := startFerry(t, Config{Root: staticRoot(t, "a", "A"), Fronts: FrontLimits{BodyTimeout: 300 * time.Millisecond}})
	start := time.Now()
	out, closed := rawExchange(t, addr, "GET /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nsome", 10*time.Second)
	if !closed || time.Since(start) > 5*time.Second {
		t.Fatalf("the connection was held %v (closed: %v); want it closed at the 300ms body timeout", time.Since(start), closed)
	}
	if strings.Contains(out, "404") {
		t.Errorf("the client got %q, an answer to a request it never finished sending", firstLine(out))
	}
	lines := logs.Lines(`"path":"/nothing"`)
	if len(lines) != 1 || !strings.Contains(lines[0], `"status":408`) || !strings.Contains(lines[0], `"aborted":true`) ||
		!strings.Contains(lines[0], `"handler_status":404`) || !strings.Contains(lines[0], "body timeout") {
		t.Errorf("access log %q; want one line with status 408, aborted, handler_status 404 and the cause", lines)
	}
}

// TestHTTPAbortedUpload: an upload cut short by the client is logged as
// aborted with 499, never as a 200 with 0 bytes.
func TestHTTPAbortedUpload(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "read.sh"), "#!/bin/sh\ncat >/dev/null\nprintf 'Content-Type: text/plain\\n\\nread\\n'\n")
	m, err := ParseMount("/cgi-bin/=cgi:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	addr, logs := startFerry(t, Config{Mounts: []Mount{m}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "POST /cgi-bin/read.sh HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 1000))
	time.Sleep(100 * time.Millisecond)
	c.Close()
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if lines = logs.Lines(`"path":"/cgi-bin/read.sh"`, `"message":"request"`); len(lines) > 0 {
			break
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `"status":499`) || !strings.Contains(lines[0], `"aborted":true`) ||
		!strings.Contains(lines[0], "the client closed the connection") {
		t.Errorf("access log %q; want one line with status 499, aborted, the client closed", lines)
	}
}

// TestHTTPBodyCutNeverEndsStdin: a script whose request body stops
// coming (the client stalls past the body timeout, or goes) is stopped
// before its stdin is closed: it never reads an end of file, which would
// make the part that came look like the whole body.
func TestHTTPBodyCutNeverEndsStdin(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	for _, how := range []string{"stalls", "goes"} {
		writeExec(t, filepath.Join(dir, how+".sh"), "#!/bin/sh\nn=$(wc -c)\necho \"stdin ended after $n bytes\" >&2\nprintf 'Content-Type: text/plain\\n\\n%s\\n' \"$n\"\n")
	}
	addr, logs := startFerry(t, Config{Mounts: []Mount{mustMount(t, "/cgi-bin/=cgi:"+dir)}, Fronts: FrontLimits{BodyTimeout: 300 * time.Millisecond}})
	for _, how := range []string{"stalls", "goes"} {
		t.Run(how, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			path := "/cgi-bin/" + how + ".sh"
			io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
			if how == "goes" {
				time.Sleep(100 * time.Millisecond)
				c.Close()
			}
			var lines []string
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if lines = logs.Lines(`"message":"request"`, how); len(lines) > 0 {
					break
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], `"aborted":true`) {
				t.Errorf("access log %q; want one aborted request", lines)
			}
			time.Sleep(200 * time.Millisecond) // a script that saw an end of file has said so by now
			if said := logs.Lines("stdin ended after", "/"+how+".sh"); len(said) > 0 {
				t.Errorf("the script read an end of file on a body cut short: %q", said)
			}
		})
	}
}

// TestHTTPClientNeverReads is issue 16's "a client that never reads a
// 100 MB static file is held indefinitely (nginx closes at 60 s)": the
// connection is closed at the send timeout.
func TestHTTPClientNeverReads(t *testing.T) {
	leakcheck.Check(t)
	root := t.TempDir()
	f, err := os.Create(filepath.Join(root, "big"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(100 << 20)
	f.Close()
	addr, logs := startFerry(t, Config{Root: root, Fronts: FrontLimits{SendTimeout: 300 * time.Millisecond}})
	before := leakcheck.Take().FDs
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	// The client reads nothing. ferry gives up on it and closes its end
	// (what was sent may linger in the kernel, which is not ferry's).
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if lines = logs.Lines(`"path":"/big"`); len(lines) > 0 && leakcheck.Take().FDs == before+1 {
			break
		}
	}
	if n := leakcheck.Take().FDs - before; n != 1 {
		t.Errorf("%d descriptors for one connection; want only the client's: ferry still holds its end", n)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `"aborted":true`) || !strings.Contains(lines[0], "send timeout") {
		t.Errorf("access log %q; want the response logged aborted at the send timeout", lines)
	}
}

// TestHTTPSlowConnectionsGiveWay: with every connection of the front
// taken by clients that send nothing, or stall in their body, a normal
// request is still answered at once.
func TestHTTPSlowConnectionsGiveWay(t *testing.T) {
	leakcheck.Check(t)
	addr, logs := startFerry(t, Config{Root: staticRoot(t, "a", "A"), Fronts: FrontLimits{MaxConns: 8}})
	for i := range 8 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i%2 == 0 {
			io.WriteString(c, "G") // a head begun
		} else {
			io.WriteString(c, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx") // a body stalled
		}
	}
	time.Sleep(100 * time.Millisecond)
	for range 3 {
		start := time.Now()
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/a")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if took := time.Since(start); resp.StatusCode != 200 || took > time.Second {
			t.Errorf("a normal request beside 8 slow connections: %d in %v", resp.StatusCode, took)
		}
	}
	if !logs.Contains("closing the connections that waited longest") {
		t.Errorf("no log line about the bound")
	}
}

// emfileListener fails one Accept with EMFILE when fail is set.
type emfileListener struct {
	net.Listener
	fail atomic.Bool
}

func (l *emfileListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil && l.fail.CompareAndSwap(true, false) {
		c.Close()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return c, err
}

// TestHTTPAcceptEMFILE: accept failing for want of descriptors closes the
// connection that has waited longest for a request, to give its
// descriptor back, and the front goes on serving.
func TestHTTPAcceptEMFILE(t *testing.T) {
	leakcheck.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &emfileListener{Listener: ln}
	log := zerolog.Nop()
	f := newHTTPFront(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), FrontLimits{}, nil, log)
	done := make(chan error, 1)
	go func() { done <- f.serve(l) }()
	defer func() {
		f.Close()
		<-done
	}()
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(50 * time.Millisecond) // accepted, waiting for its request
	l.fail.Store(true)
	probe, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); isTimeout(err) {
		t.Errorf("the idle connection was not closed when accept ran out of descriptors")
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("after EMFILE: %v", err)
	}
	resp.Body.Close()
}

// TestStaticTrailingSlash: "/file.txt/" is not the file (nginx: 404).
func TestStaticTrailingSlash(t *testing.T) {
	h := &staticFiles{root: staticRoot(t, "file.txt", "hi")}
	for _, tt := range []struct {
		path   string
		status int
	}{{"/file.txt", 200}, {"/file.txt/", 404}, {"/file.txt/.", 200}} {
		rec := serveStatic(h, tt.path)
		if rec != tt.status {
			t.Errorf("GET %s = %d; want %d", tt.path, rec, tt.status)
		}
	}
}

// TestStaticDirRedirect: a directory asked for without its slash is sent
// to its cleaned path, escaped, with the query, as nginx sends it. The path
// as it came named another host ("//evil.example/../sub/": an open
// redirect), cut the path at a decoded "?", and lost the query.
func TestStaticDirRedirect(t *testing.T) {
	root := staticRoot(t)
	for _, d := range []string{"sub", "my?dir"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &staticFiles{root: root}
	for _, tt := range []struct{ target, want string }{
		{"/sub", "/sub/"},
		{"/sub?x=1&y=%2F", "/sub/?x=1&y=%2F"},
		{"//evil.example/../sub", "/sub/"},
		{"/%2Fevil.example%2F..%2Fsub?q", "/sub/?q"},
		{"/my%3Fdir", "/my%3Fdir/"},
	} {
		req := httptest.NewRequest("GET", tt.target, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Header().Get("Location"); rec.Code != http.StatusMovedPermanently || got != tt.want {
			t.Errorf("GET %s = %d, Location %q; want 301, %q", tt.target, rec.Code, got, tt.want)
		}
	}
}

// TestStaticContentType: a file's type comes from its extension, else it
// is application/octet-stream, as nginx's default_type: HTML in a file
// with no known extension (an upload) was sniffed and served as text/html.
func TestStaticContentType(t *testing.T) {
	const html = "<html><script>alert(1)</script>"
	h := &staticFiles{root: staticRoot(t, "up.dat", html, "README", html, "page.html", html, "s.css", "a{}")}
	for _, tt := range []struct{ path, want string }{
		{"/up.dat", "application/octet-stream"},
		{"/README", "application/octet-stream"},
		{"/page.html", "text/html; charset=utf-8"},
		{"/s.css", "text/css; charset=utf-8"},
	} {
		for _, method := range []string{"GET", "HEAD"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, tt.path, nil))
			if got := rec.Header().Get("Content-Type"); rec.Code != 200 || got != tt.want {
				t.Errorf("%s %s = %d, Content-Type %q; want 200, %q", method, tt.path, rec.Code, got, tt.want)
			}
		}
	}
}

// TestStaticETag: a static file has nginx's ETag (mtime and size in hex),
// so that If-None-Match gets 304 and If-Range its range; there was none,
// and both were ignored.
func TestStaticETag(t *testing.T) {
	root := staticRoot(t, "a.txt", "hello\n")
	mtime := time.Unix(0x6b16ec24, 0)
	if err := os.Chtimes(filepath.Join(root, "a.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	h := &staticFiles{root: root}
	const etag = `"6b16ec24-6"`
	for _, tt := range []struct {
		name   string
		header http.Header
		status int
		body   string
	}{
		{"plain", nil, 200, "hello\n"},
		{"If-None-Match", http.Header{"If-None-Match": {etag}}, 304, ""},
		{"If-None-Match other", http.Header{"If-None-Match": {`"1-6"`}}, 200, "hello\n"},
		{"If-Range", http.Header{"Range": {"bytes=1-2"}, "If-Range": {etag}}, 206, "el"},
		{"If-Range other", http.Header{"Range": {"bytes=1-2"}, "If-Range": {`"1-6"`}}, 200, "hello\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/a.txt", nil)
			req.Header = tt.header
			if req.Header == nil {
				req.Header = http.Header{}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got := rec.Header().Get("Etag"); rec.Code != tt.status || rec.Body.String() != tt.body || got != etag {
				t.Errorf("GET = %d %q, ETag %q; want %d %q, %q", rec.Code, rec.Body.String(), got, tt.status, tt.body, etag)
			}
		})
	}
}

// TestStaticRegularOnly: a FIFO or socket in the root is 404, as nginx
// answers anything but a regular file, and at once: opened, a FIFO with no
// writer would hold the request forever. Files are still served under
// each symbolic link policy's open, and a link "never" refuses stays
// refused.
func TestStaticRegularOnly(t *testing.T) {
	root := staticRoot(t, "file.txt", "hi")
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	outside := staticRoot(t, "out.txt", "out")
	if err := os.Symlink(filepath.Join(outside, "out.txt"), filepath.Join(root, "out.txt")); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []cgi.SymlinkPolicy{cgi.SymlinksOwnerMatch, cgi.SymlinksFollow, cgi.SymlinksNever} {
		h := &staticFiles{root: root, symlinks: policy}
		for _, tt := range []struct {
			path   string
			status int
		}{{"/file.txt", 200}, {"/fifo", 404}, {"/sock", 404}, {"/out.txt", map[cgi.SymlinkPolicy]int{cgi.SymlinksNever: 403}[policy]}} {
			if tt.status == 0 {
				tt.status = 200 // owner-match: the tester owns the link and its target
			}
			if status := serveStaticWithin(t, h, tt.path); status != tt.status {
				t.Errorf("symlinks %v: GET %s = %d; want %d", policy, tt.path, status, tt.status)
			}
		}
	}
}

// TestStaticOpenErrors: what a path's open finds decides the answer, as
// nginx's static module has it: 404 for nothing there (ENOENT, ENOTDIR,
// ENAMETOOLONG) or what is not a regular file, a redirect for a directory
// without its slash, its index.html with it, 403 for a directory without
// one or whose index is a directory. With no Stat before the open, every
// policy must still get there.
func TestStaticOpenErrors(t *testing.T) {
	root := staticRoot(t, "file.txt", "hi")
	for _, d := range []string{"d", "noindex", "fifoindex", "dirindex/index.html"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "d", "index.html"), []byte("index"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifoindex", "index.html"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []cgi.SymlinkPolicy{cgi.SymlinksOwnerMatch, cgi.SymlinksFollow, cgi.SymlinksNever} {
		h := &staticFiles{root: root, symlinks: policy}
		for _, tt := range []struct {
			path   string
			status int
		}{
			{"/file.txt", 200},
			{"/missing", 404},
			{"/missing/", 404},
			{"/file.txt/x", 404},                  // ENOTDIR
			{"/" + strings.Repeat("n", 300), 404}, // ENAMETOOLONG
			{"/d", 301},
			{"/d/", 200},
			{"/noindex/", 403},
			{"/dirindex/", 403},
			{"/fifoindex/", 404},
		} {
			if status := serveStaticWithin(t, h, tt.path); status != tt.status {
				t.Errorf("symlinks %v: GET %s = %d; want %d", policy, tt.path, status, tt.status)
			}
		}
	}
}

// serveStaticWithin is serveStatic bounded at 5 s: a FIFO's open could
// hold the request forever.
func serveStaticWithin(t *testing.T, h http.Handler, path string) int {
	t.Helper()
	got := make(chan int, 1)
	go func() { got <- serveStatic(h, path) }()
	select {
	case status := <-got:
		return status
	case <-time.After(5 * time.Second):
		t.Fatalf("GET %s: no answer in 5s", path)
		return 0
	}
}

// serveStatic serves path from h and returns the status.
func serveStatic(h http.Handler, path string) int {
	rec := &statusRecorder{header: http.Header{}}
	req, _ := http.NewRequest("GET", "http://x"+path, nil)
	h.ServeHTTP(rec, req)
	if rec.status == 0 {
		return 200
	}
	return rec.status
}

type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return len(p), nil
}
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

// TestRootSymlinks: the three policies of root_symlinks, a cgi: mount's
// (nginx's disable_symlinks), on a link to a file outside the root, a link
// inside it, a directory link, and a link to a file of another user (the
// issue's /etc/passwd case).
func TestRootSymlinks(t *testing.T) {
	root := staticRoot(t, "real.txt", "real")
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("secret"), 0o644)
	os.Symlink(outside, filepath.Join(root, "out.txt"))
	os.Symlink("real.txt", filepath.Join(root, "in.txt"))
	os.Mkdir(filepath.Join(root, "d"), 0o755)
	os.WriteFile(filepath.Join(root, "d", "f.txt"), []byte("f"), 0o644)
	os.Symlink("d", filepath.Join(root, "dl"))
	// /etc/passwd is root's: a link to it planted by another user.
	passwd := filepath.Join(root, "passwd")
	os.Symlink("/etc/passwd", passwd)
	if os.Geteuid() == 0 {
		if err := os.Lchown(passwd, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}

	for _, tt := range []struct {
		policy string
		want   map[string]int
	}{
		{"follow", map[string]int{"/real.txt": 200, "/out.txt": 200, "/in.txt": 200, "/dl/f.txt": 200, "/passwd": 200}},
		{"", map[string]int{"/real.txt": 200, "/out.txt": 200, "/in.txt": 200, "/dl/f.txt": 200, "/passwd": 403}},
		{"owner-match", map[string]int{"/real.txt": 200, "/out.txt": 200, "/in.txt": 200, "/dl/f.txt": 200, "/passwd": 403}},
		{"never", map[string]int{"/real.txt": 200, "/out.txt": 403, "/in.txt": 403, "/dl/f.txt": 403, "/passwd": 403}},
	} {
		h, err := newStaticFiles(root, tt.policy)
		if err != nil {
			t.Fatal(err)
		}
		for path, want := range tt.want {
			if got := serveStatic(h, path); got != want {
				t.Errorf("root_symlinks=%q: GET %s = %d; want %d", tt.policy, path, got, want)
			}
		}
	}
	if _, err := newStaticFiles(root, "off"); err == nil {
		t.Errorf("a bad policy was accepted")
	}
}

// TestFrontKeys: the front settings reach the configuration through their
// keys, spelt as flags.
func TestFrontKeys(t *testing.T) {
	c := DefaultConfig()
	for _, kv := range [][2]string{{"client_header_timeout", "5s"}, {"client_body_timeout", "0"}, {"send_timeout", "2m"}, {"keepalive_timeout", "0"}, {"max_conns", "50"}, {"root_symlinks", "never"}} {
		k, ok := lookupKey("", kv[0])
		if !ok {
			t.Fatalf("no key %s", kv[0])
		}
		if err := k.Set(&c, kv[1]); err != nil {
			t.Fatalf("%s=%s: %v", kv[0], kv[1], err)
		}
	}
	want := FrontLimits{HeaderTimeout: 5 * time.Second, BodyTimeout: -1, SendTimeout: 2 * time.Minute, KeepaliveTimeout: -1, MaxConns: 50}
	if c.Fronts != want || c.RootSymlinks != "never" {
		t.Errorf("Fronts = %+v, RootSymlinks = %q; want %+v, never", c.Fronts, c.RootSymlinks, want)
	}
	k, _ := lookupKey("", "root_symlinks")
	if err := k.Set(&c, "maybe"); err == nil {
		t.Errorf("root_symlinks=maybe accepted")
	}
}

// TestHTTPHugeHeaderCountIs431 is issue 16's "100,000 headers packed into
// 1 MB reach execve and fail with argument list too long (502 instead of
// 431)".
func TestHTTPHugeHeaderCountIs431(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "env.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran\\n'\n")
	m, _ := ParseMount("/cgi-bin/=cgi:" + dir)
	addr, _ := startFerry(t, Config{Mounts: []Mount{m}})
	var b strings.Builder
	b.WriteString("GET /cgi-bin/env.sh HTTP/1.1\r\nHost: x\r\n")
	for i := range 100000 {
		b.WriteString("X" + strconv.FormatInt(int64(i), 36) + ":1\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	if b.Len() > 1<<20 {
		t.Fatalf("the request is %d bytes, over net/http's 1 MiB header limit", b.Len())
	}
	out, _ := rawExchange(t, addr, b.String(), 20*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.1 431 ") {
		t.Errorf("response %q; want 431", firstLine(out))
	}
}

// TestHTTPSlowBody: a body that comes slowly, but within the body timeout
// at each step, reaches the script whole: the timeout is per read, as
// nginx's. Also when the script answers its header before reading its
// stdin: net/http drained and closed a body still unread when the
// response's header went out, so the script's stdin ended there ("http:
// invalid Read on closed Body") and it answered 200 for part of its input.
func TestHTTPSlowBody(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "read-first.sh"), "#!/bin/sh\nn=$(wc -c | tr -d ' ')\nprintf 'Content-Type: text/plain\\n\\n%s\\n' \"$n\"\n")
	writeExec(t, filepath.Join(dir, "answer-first.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nwc -c | tr -d ' '\n")
	addr, _ := startFerry(t, Config{Mounts: []Mount{mustMount(t, "/cgi-bin/=cgi:"+dir)}, Fronts: FrontLimits{BodyTimeout: 400 * time.Millisecond}})
	for _, script := range []string{"read-first.sh", "answer-first.sh"} {
		pr, pw := io.Pipe()
		go func() {
			for range 6 {
				pw.Write([]byte("0123456789"))
				time.Sleep(150 * time.Millisecond)
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", "http://"+addr+"/cgi-bin/"+script, pr)
		req.ContentLength = 60
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(b)); got != "60" {
			t.Errorf("%s read %s bytes of its stdin; want 60", script, got)
		}
	}
}

// TestHTTPKeepaliveTimeout: a kept-alive connection idle past
// keepalive_timeout is closed; one idle for less is still served; with the
// timeout off (negative, "0" in the file) one idle past the other's
// timeout is still served.
func TestHTTPKeepaliveTimeout(t *testing.T) {
	leakcheck.Check(t)
	root := staticRoot(t, "a", "A")
	const req = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	// idle sends a request, waits d, and says whether a second request on
	// the same connection is answered.
	idle := func(addr string, d time.Duration) bool {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for i := range 2 {
			if i == 1 {
				time.Sleep(d)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, req); err != nil {
				return false
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				if i == 0 {
					t.Fatalf("first request: %v", err)
				}
				return false
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return true
	}
	short, _ := startFerry(t, Config{Root: root, Fronts: FrontLimits{KeepaliveTimeout: 500 * time.Millisecond}})
	if idle(short, 1500*time.Millisecond) {
		t.Errorf("keepalive_timeout 500ms: a connection idle for 1.5s was still served")
	}
	if !idle(short, 20*time.Millisecond) {
		t.Errorf("keepalive_timeout 500ms: a connection idle for 20ms was closed")
	}
	none, _ := startFerry(t, Config{Root: root, Fronts: FrontLimits{KeepaliveTimeout: -1}})
	if !idle(none, 1500*time.Millisecond) {
		t.Errorf("keepalive_timeout off: a connection idle for 1.5s was closed")
	}
}

// TestHTTPBadHeadLogged: a request whose head fails on the HTTP front
// gets an access line as nginx gives it (its request line as it came, 400
// for a refusal or a client that closed, 408 for the header timeout), a
// line at info saying why, and a count in ferry_http_bad_requests_total;
// the answers carry Date and Content-Length, as nginx's (checked here
// against nginx). They had none of these.
func TestHTTPBadHeadLogged(t *testing.T) {
	leakcheck.Check(t)
	cfg := Config{Root: staticRoot(t, "a", "A"), AccessLog: true, Version: "test"}
	cfg.Fronts.HeaderTimeout = 300 * time.Millisecond
	var err error
	if cfg.Admin, err = ParseAdminAddress("http://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s, addr, logs := runFerry(t, cfg)
	ngx := peerstest.NginxFcgiwrap(t, peers.NginxFcgiwrapConfig{CGIDir: t.TempDir()})
	tests := []struct {
		name, req string
		status    int
		request   string // the request line logged
		reason    string
	}{
		{"bad request line", "GET /x y z\r\nHost: x\r\n\r\n", 400, "GET /x y z", "invalid HTTP version"},
		{"bad header name", "GET /b HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400, "GET /b HTTP/1.1", "invalid header name"},
		{"head timed out", "GET /c HTTP/1.1\r\nHost: x\r\n", 408, "GET /c HTTP/1.1", "client timed out while reading the request headers"},
		// 414 from nginx and Apache (8 KiB lines), and from ferry (its
		// header limit); net/http answers 431. The line logged is cut.
		{"request line too long", "GET /" + strings.Repeat("d", h1.DefaultMaxHeaderBytes+8192) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414,
			"GET /" + strings.Repeat("d", 8<<10-5), "request line over the header size limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := rawExchange(t, addr, tt.req, 3*time.Second)
			if tt.status != http.StatusRequestTimeout {
				resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
				if err != nil || resp.StatusCode != tt.status || resp.Header.Get("Date") == "" || resp.Header.Get("Content-Length") == "" {
					t.Errorf("ferry answered %q; want %d with a Date and a Content-Length", out, tt.status)
				}
				ngxOut, _ := rawExchange(t, strings.TrimPrefix(ngx.URL, "http://"), tt.req, 3*time.Second)
				if resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(ngxOut)), nil); err != nil ||
					resp.StatusCode != tt.status || resp.Header.Get("Date") == "" || resp.Header.Get("Content-Length") == "" {
					t.Errorf("nginx answered %q; the test expects %d with a Date and a Content-Length", ngxOut, tt.status)
				}
			} else if out != "" {
				t.Errorf("ferry answered %q to a head that timed out; want nothing, as nginx", out)
			}
			waitLogLine(t, logs, func(m map[string]any) bool {
				return m["message"] == "request" && m["request"] == tt.request && m["status"] == float64(tt.status)
			})
			if l := logs.Lines(`"level":"info"`, tt.reason); len(l) != 1 {
				t.Errorf("info lines saying %q: %q; want one", tt.reason, l)
			}
		})
	}
	f := &adminFerry{srv: s, admin: "http://" + s.AdminAddr().String()}
	m := f.scrape(t)
	for _, want := range []string{`ferry_http_bad_requests_total{status="400"} 2`, `ferry_http_bad_requests_total{status="408"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics have no %s", want)
		}
	}
}

// cgiDirWith returns a new directory, readable by every user (Apache runs
// scripts as www-data), holding the scripts of testdata/cgi-bin named.
func cgiDirWith(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "cgi-bin", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := peers.MakeWorldReadable(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestHTTPFragmentRefused: a request target with a fragment ("#") is
// refused with 400, as Apache refuses it (RFC 9112 § 3.2: no form of
// request-target has one). The script got "/x?a#b" with QUERY_STRING
// "a#b". nginx 1.22 drops the fragment instead; the peers agree that it
// is not part of the query.
func TestHTTPFragmentRefused(t *testing.T) {
	leakcheck.Check(t)
	dir := cgiDirWith(t, "env.sh")
	addr, logs := startFerry(t, Config{Mounts: []Mount{mustMount(t, "/cgi-bin/=cgi:"+dir)}})
	apache := peerstest.ApacheCGI(t, peers.ApacheCGIConfig{CGIDir: dir})
	for _, target := range []string{"/cgi-bin/env.sh?a#b", "/cgi-bin/env.sh#frag"} {
		req := "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
		for _, peer := range []struct{ name, addr string }{{"ferry", addr}, {"Apache", strings.TrimPrefix(apache.URL, "http://")}} {
			out, _ := rawExchange(t, peer.addr, req, 5*time.Second)
			if got := firstLine(out); !strings.HasPrefix(got, "HTTP/1.1 400 ") || strings.Contains(out, "QUERY_STRING") {
				t.Errorf("%s: %s answered %q; want 400", target, peer.name, got)
			}
		}
		waitLogLine(t, logs, func(m map[string]any) bool {
			return m["message"] == "request" && m["request"] == "GET "+target+" HTTP/1.1" && m["status"] == float64(400)
		})
	}
}

// cgiEnvOf requests target from addr with a raw request line and returns
// the variables names of the env.sh dump it answers, with its status.
func cgiEnvOf(t *testing.T, addr, target string, names ...string) (string, map[string]string) {
	t.Helper()
	out, _ := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second)
	env := make(map[string]string)
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSuffix(l, "\r"), "=")
		for _, n := range names {
			if k == n {
				env[k] = v
			}
		}
	}
	return firstLine(out), env
}

// TestHTTPMergeSlashes: repeated slashes in a path are merged, and its
// "." and ".." segments resolved, for routing, as nginx (merge_slashes
// on) and Apache (MergeSlashes On) do: "//cgi-bin//env.sh/a//b" and
// "/x/../cgi-bin/./env.sh" run the script, with the SCRIPT_NAME and
// PATH_INFO both give, and REQUEST_URI as the client sent it. They were
// 404 and 400. An encoded slash is not merged: 404, as Apache's (nginx
// decodes and merges it). A ".." above the root is 400, as both answer.
func TestHTTPMergeSlashes(t *testing.T) {
	leakcheck.Check(t)
	dir := cgiDirWith(t, "env.sh")
	addr, _ := startFerry(t, Config{Mounts: []Mount{mustMount(t, "/cgi-bin/=cgi:"+dir)}})
	ngx := peerstest.NginxFcgiwrap(t, peers.NginxFcgiwrapConfig{CGIDir: dir})
	apache := peerstest.ApacheCGI(t, peers.ApacheCGIConfig{CGIDir: dir})
	vars := []string{"REQUEST_URI", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING"}
	for _, target := range []string{"//cgi-bin//env.sh/a//b?x=1//2", "/cgi-bin///env.sh", "/cgi-bin/env.sh//", "//cgi-bin/env.sh/%20x//y",
		"/cgi-bin/../cgi-bin/env.sh", "/x/../cgi-bin/./env.sh?a=/../", "/cgi-bin/env.sh/a/./b/../c/", "/cgi-bin/env.sh/a/..", "/cgi-bin/%2e/env.sh/x/%2E%2e/d"} {
		status, env := cgiEnvOf(t, addr, target, vars...)
		if status != "HTTP/1.1 200 OK" {
			t.Errorf("%s: ferry answered %q; want 200", target, status)
			continue
		}
		for _, peer := range []struct{ name, url string }{{"nginx", ngx.URL}, {"Apache", apache.URL}} {
			pStatus, pEnv := cgiEnvOf(t, strings.TrimPrefix(peer.url, "http://"), target, vars...)
			if pStatus != status {
				t.Errorf("%s: %s answered %q; ferry %q", target, peer.name, pStatus, status)
			}
			for _, v := range vars {
				if env[v] != pEnv[v] {
					t.Errorf("%s: %s=%q; %s gives %q", target, v, env[v], peer.name, pEnv[v])
				}
			}
		}
	}
	for _, target := range []string{"/../cgi-bin/env.sh", "/cgi-bin/../../env.sh", "/cgi-bin/%2e%2e/%2e%2e/env.sh"} {
		status, _ := cgiEnvOf(t, addr, target)
		for _, peer := range []struct{ name, url string }{{"nginx", ngx.URL}, {"Apache", apache.URL}} {
			pStatus, _ := cgiEnvOf(t, strings.TrimPrefix(peer.url, "http://"), target)
			if pStatus != status || status != "HTTP/1.1 400 Bad Request" {
				t.Errorf("%s: ferry answered %q, %s %q; want 400", target, status, peer.name, pStatus)
			}
		}
	}
	status, _ := cgiEnvOf(t, addr, "/cgi-bin/%2Fenv.sh")
	aStatus, _ := cgiEnvOf(t, strings.TrimPrefix(apache.URL, "http://"), "/cgi-bin/%2Fenv.sh")
	if status != "HTTP/1.1 404 Not Found" || aStatus != status {
		t.Errorf("/cgi-bin/%%2Fenv.sh: ferry answered %q, Apache %q; want 404", status, aStatus)
	}
}

// fetchWhileTruncating requests path from addr reading slowly: once the
// head and 64 KiB have come, it truncates file to 1 MiB, then reads the
// rest. It returns the status line, the Content-Length declared and the
// body bytes received.
func fetchWhileTruncating(t *testing.T, addr, path, file string) (string, int64, int64) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	br := bufio.NewReaderSize(c, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.CopyN(io.Discard, resp.Body, 64<<10)
	time.Sleep(200 * time.Millisecond) // the server fills the socket buffers, and waits
	if err := os.Truncate(file, 1<<20); err != nil {
		t.Fatal(err)
	}
	m, _ := io.Copy(io.Discard, resp.Body) // cut short: an unexpected EOF
	return resp.Status, resp.ContentLength, n + m
}

// TestStaticTruncatedWhileSent: a static file truncated by another
// process while it is sent is cut short (the connection closed), the
// access line counts the bytes the client got, and an error line names
// the file and where it ended, as nginx logs it at alert ("sendfile()
// reported that FILE was truncated at N"; checked here against nginx).
// There was no line.
func TestStaticTruncatedWhileSent(t *testing.T) {
	leakcheck.Check(t)
	const size = 64 << 20 // sparse: more than the socket buffers hold
	root := t.TempDir()
	file := filepath.Join(root, "big.bin")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	addr, logs := startFerry(t, Config{Root: root})
	ngx := peerstest.NginxFront(t, peers.NginxFrontConfig{Root: root, Server: "location / { }"})
	for _, peer := range []struct{ name, addr string }{{"ferry", addr}, {"nginx", strings.TrimPrefix(ngx.URL, "http://")}} {
		if err := os.Truncate(file, size); err != nil {
			t.Fatal(err)
		}
		status, cl, got := fetchWhileTruncating(t, peer.addr, "/big.bin", file)
		if status != "200 OK" || cl != size || got >= size {
			t.Errorf("%s: %s, Content-Length %d, %d bytes; want 200 %d cut short", peer.name, status, cl, got, size)
		}
		if peer.name == "nginx" {
			if l, _ := ngx.Logs(); !strings.Contains(l, "[alert]") || !strings.Contains(l, `"`+file+`"`) {
				t.Errorf("nginx logged %q; the test expects an alert naming %s", l, file)
			}
			continue
		}
		waitLogLine(t, logs, func(m map[string]any) bool {
			return m["message"] == "request" && m["path"] == "/big.bin" && m["status"] == float64(200) && m["bytes"] == float64(got)
		})
		lines := logs.Lines(`"level":"error"`, "static: file truncated", file)
		if len(lines) != 1 {
			t.Errorf("error lines naming %s: %q; want one", file, lines)
		}
	}
}
