package peers_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// FastCGI record types and flags used by paramDumper (FastCGI 1.0 § 8).
const (
	fcgiBeginRequest = 1
	fcgiEndRequest   = 3
	fcgiParams       = 4
	fcgiStdin        = 5
	fcgiStdout       = 6
	fcgiKeepConn     = 1
)

// paramDumper is a FastCGI responder that answers every request with all
// the parameters it got, one "NAME=VALUE" line each, sorted, so that tests
// can see exactly what a front sends. Go's net/http/fcgi cannot: it turns
// SCRIPT_NAME, PATH_INFO and the like into the http.Request and drops them.
// It handles one request at a time per connection, which is all nginx and
// Apache do.
type paramDumper struct {
	l     net.Listener
	wg    sync.WaitGroup
	conns atomic.Int64 // accepted connections
}

// startParamDumper starts a paramDumper on a 127.0.0.1 port, or on a unix
// socket in a new directory if network is "unix".
func startParamDumper(t *testing.T, network string) *paramDumper {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "dump.sock")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	d := &paramDumper{l: l}
	d.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			d.conns.Add(1)
			d.wg.Go(func() { d.serve(c) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		d.wg.Wait()
	})
	return d
}

func (d *paramDumper) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	var params []byte
	keep := false
	for {
		typ, id, content, err := readRecord(r)
		if err != nil {
			return
		}
		switch typ {
		case fcgiBeginRequest:
			params = params[:0]
			keep = len(content) >= 3 && content[2]&fcgiKeepConn != 0
		case fcgiParams:
			params = append(params, content...)
		case fcgiStdin:
			if len(content) > 0 {
				continue
			}
			pairs, err := parsePairs(params)
			if err != nil {
				pairs = []string{"ERROR=" + err.Error()}
			}
			slices.Sort(pairs)
			body := "Content-Type: text/plain\r\n\r\n" + strings.Join(pairs, "\n") + "\n"
			// The front sees a write error as a failed request; nothing to do here.
			_ = writeRecord(c, fcgiStdout, id, []byte(body))
			_ = writeRecord(c, fcgiStdout, id, nil)
			_ = writeRecord(c, fcgiEndRequest, id, make([]byte, 8))
			if !keep {
				return
			}
		}
	}
}

// readRecord reads one FastCGI record and returns its type, request ID and content.
func readRecord(r io.Reader) (typ byte, id uint16, content []byte, err error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, nil, err
	}
	n := int(binary.BigEndian.Uint16(h[4:])) + int(h[6])
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, 0, nil, err
	}
	return h[1], binary.BigEndian.Uint16(h[2:]), buf[:binary.BigEndian.Uint16(h[4:])], nil
}

// writeRecord writes one FastCGI record without padding.
func writeRecord(w io.Writer, typ byte, id uint16, content []byte) error {
	h := []byte{1, typ, byte(id >> 8), byte(id), byte(len(content) >> 8), byte(len(content)), 0, 0}
	_, err := w.Write(append(h, content...))
	return err
}

// parsePairs decodes FastCGI name-value pairs into "NAME=VALUE" strings.
func parsePairs(b []byte) ([]string, error) {
	size := func() (int, bool) {
		if len(b) == 0 {
			return 0, false
		}
		if b[0]&0x80 == 0 {
			n := int(b[0])
			b = b[1:]
			return n, true
		}
		if len(b) < 4 {
			return 0, false
		}
		n := int(binary.BigEndian.Uint32(b) &^ (1 << 31))
		b = b[4:]
		return n, true
	}
	var pairs []string
	for len(b) > 0 {
		nl, ok1 := size()
		vl, ok2 := size()
		if !ok1 || !ok2 || nl+vl > len(b) {
			return pairs, errors.New("truncated pair")
		}
		pairs = append(pairs, string(b[:nl])+"="+string(b[nl:nl+vl]))
		b = b[nl+vl:]
	}
	return pairs, nil
}

// backend returns d's address in fastcgi_pass syntax.
func (d *paramDumper) backend() string {
	if d.l.Addr().Network() == "unix" {
		return "unix:" + d.l.Addr().String()
	}
	return d.l.Addr().String()
}

// dumpParams requests path from front, which passes it to a paramDumper,
// and returns the parameters the dumper received. A name sent twice fails
// the test.
func dumpParams(t *testing.T, front, path string) map[string]string {
	t.Helper()
	resp, body := get(t, front+path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d; body %q", path, resp.StatusCode, body)
	}
	t.Logf("parameters for GET %s:\n%s", path, body)
	m := make(map[string]string)
	for line := range strings.Lines(body) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		if _, dup := m[k]; dup {
			t.Errorf("parameter %s sent twice", k)
		}
		m[k] = v
	}
	return m
}

// checkParams compares the parameters got with want, where "" means the
// parameter must be absent and "*" that it must be present.
func checkParams(t *testing.T, got, want map[string]string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		v, ok := got[k]
		switch w := want[k]; {
		case w == "" && ok:
			t.Errorf("%s = %q; want it absent", k, v)
		case w == "*" && !ok:
			t.Errorf("%s absent; want it present", k)
		case w != "" && w != "*" && v != w:
			t.Errorf("%s = %q; want %q", k, v, w)
		}
	}
}

// paramsPath is the request of TestFastCGIParams: a script, PATH_INFO and a query.
const paramsPath = "/cgi-bin/env.sh/extra/path?a=1"

// TestFastCGIParams records the CGI parameters nginx and Apache send to a
// FastCGI application for the same request, which is what a FastCGI
// gateway has to make sense of. The test log shows them all.
func TestFastCGIParams(t *testing.T) {
	t.Parallel()
	tcp := startParamDumper(t, "tcp")
	unix := startParamDumper(t, "unix")
	sock := unix.l.Addr().String()

	if account, err := peers.ApacheAccount(); err == nil && account != nil {
		// The socket is 0755 (umask) in a 0700 directory: www-data cannot
		// use it, and StartApacheProxyFCGI says so before starting Apache.
		_, err := peers.StartApacheProxyFCGI(t.Context(), t.TempDir(), peers.ApacheProxyFCGIConfig{Backend: unix.backend()})
		if err == nil || !strings.Contains(err.Error(), account.Username) {
			t.Errorf("StartApacheProxyFCGI with a private socket: %v; want an error naming %s", err, account.Username)
		}
	}
	if err := peers.MakeWorldReadable(filepath.Dir(sock)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}

	nginxCommon := map[string]string{
		"REQUEST_URI": "/cgi-bin/env.sh/extra/path?a=1", "QUERY_STRING": "a=1", "REQUEST_METHOD": "GET",
		"DOCUMENT_URI": "/cgi-bin/env.sh/extra/path", "SERVER_NAME": "localhost", "SERVER_SOFTWARE": "nginx/*",
		"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
		"CONTENT_LENGTH": "*", "CONTENT_TYPE": "*", "REDIRECT_STATUS": "200", "HTTP_HOST": "*",
		"PATH_TRANSLATED": "", "PATH": "",
	}
	apacheCommon := map[string]string{
		"REQUEST_URI": "/cgi-bin/env.sh/extra/path?a=1", "QUERY_STRING": "a=1", "REQUEST_METHOD": "GET",
		"SERVER_NAME": "127.0.0.1", "SERVER_SOFTWARE": "*", "GATEWAY_INTERFACE": "CGI/1.1",
		"SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "*",
		// Apache passes its own PATH; it sends no CONTENT_* for a GET.
		"PATH": "*", "CONTENT_LENGTH": "", "CONTENT_TYPE": "", "DOCUMENT_URI": "", "REDIRECT_STATUS": "",
	}
	with := func(common map[string]string, kv ...string) map[string]string {
		m := maps.Clone(common)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tt := range []struct {
		name  string
		start func(t *testing.T) (s *peers.Server, root string)
		want  map[string]string
	}{
		{
			name: "nginx",
			start: func(t *testing.T) (*peers.Server, string) {
				s := peerstest.NginxFastCGI(t, peers.NginxFastCGIConfig{Backend: tcp.backend(), Locations: []string{"/cgi-bin/"},
					Params: map[string]string{"FERRY_FOO": "bar", "SERVER_NAME": "example.test"}})
				return s, filepath.Join(s.Dir, "htdocs")
			},
			// Without fastcgi_split_path_info there is no PATH_INFO.
			want: with(nginxCommon,
				"SCRIPT_NAME", "/cgi-bin/env.sh/extra/path", "PATH_INFO", "",
				"SCRIPT_FILENAME", "ROOT/cgi-bin/env.sh/extra/path", "DOCUMENT_ROOT", "ROOT",
				"FERRY_FOO", "bar", "SERVER_NAME", "example.test"),
		},
		{
			name: "nginx-split-unix",
			start: func(t *testing.T) (*peers.Server, string) {
				root := t.TempDir()
				return peerstest.NginxFastCGI(t, peers.NginxFastCGIConfig{Backend: unix.backend(), Locations: []string{"/cgi-bin/"},
					SplitPathInfo: `^(/cgi-bin/[^/]+)(/.*)$`, Root: root, KeepAlive: 2}), root
			},
			want: with(nginxCommon,
				"SCRIPT_NAME", "/cgi-bin/env.sh", "PATH_INFO", "/extra/path",
				"SCRIPT_FILENAME", "ROOT/cgi-bin/env.sh", "DOCUMENT_ROOT", "ROOT"),
		},
		{
			name: "apache",
			start: func(t *testing.T) (*peers.Server, string) {
				s := peerstest.ApacheProxyFCGI(t, peers.ApacheProxyFCGIConfig{Backend: tcp.backend(), Prefix: "/cgi-bin/",
					Env: map[string]string{"FERRY_FOO": "bar"}})
				return s, filepath.Join(s.Dir, "htdocs")
			},
			// SCRIPT_FILENAME is the backend URL; no PATH_INFO by default.
			want: with(apacheCommon,
				"SCRIPT_NAME", "/cgi-bin/env.sh/extra/path", "PATH_INFO", "",
				"SCRIPT_FILENAME", "proxy:fcgi://"+tcp.backend()+"/cgi-bin/env.sh/extra/path",
				"DOCUMENT_ROOT", "ROOT", "CONTEXT_DOCUMENT_ROOT", "ROOT", "FERRY_FOO", "bar", "PATH_TRANSLATED", ""),
		},
		{
			name: "apache-first-dot-unix",
			start: func(t *testing.T) (*peers.Server, string) {
				s := peerstest.ApacheProxyFCGI(t, peers.ApacheProxyFCGIConfig{Backend: unix.backend(), Prefix: "/cgi-bin/",
					PathInfo: "first-dot", EnableReuse: true})
				return s, filepath.Join(s.Dir, "htdocs")
			},
			want: with(apacheCommon,
				"SCRIPT_NAME", "/cgi-bin/env.sh", "PATH_INFO", "/extra/path",
				"SCRIPT_FILENAME", "proxy:fcgi://localhost/cgi-bin/env.sh/extra/path",
				"PATH_TRANSLATED", "ROOT/extra/path", "DOCUMENT_ROOT", "ROOT",
				// The variable itself is sent too, as every variable is.
				"proxy-fcgi-pathinfo", "first-dot"),
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, root := tt.start(t)
			want := make(map[string]string)
			for k, v := range tt.want {
				want[k] = strings.ReplaceAll(v, "ROOT", root)
			}
			got := dumpParams(t, s.URL, paramsPath)
			if sw := got["SERVER_SOFTWARE"]; tt.want["SERVER_SOFTWARE"] == "nginx/*" && !strings.HasPrefix(sw, "nginx/") {
				t.Errorf("SERVER_SOFTWARE = %q; want nginx/VERSION", sw)
			}
			delete(want, "SERVER_SOFTWARE")
			checkParams(t, got, want)
		})
	}
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// goFCGI runs Go's net/http/fcgi on a 127.0.0.1 port with a handler that
// echoes the request path and sets X-Test, and stops it in t.Cleanup.
func goFCGI(t *testing.T) *countingListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	done := make(chan error, 1)
	go func() {
		done <- fcgi.Serve(cl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Test", "go")
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "path=%s q=%s\n", r.URL.Path, r.URL.RawQuery)
		}))
	}()
	t.Cleanup(func() {
		l.Close()
		// Serve always ends with the Accept error of the closed listener.
		<-done
	})
	return cl
}

// checkGoFCGI sends n requests through front to the goFCGI handler and
// returns how many backend connections they took.
func checkGoFCGI(t *testing.T, front string, l *countingListener, n int) int64 {
	t.Helper()
	if c := l.n.Load(); c != 0 {
		t.Errorf("%d backend connections before the first request; want 0 (the readiness check must stay in the front)", c)
	}
	for i := range n {
		resp, body := get(t, fmt.Sprintf("%s/cgi-bin/echo.sh/x%d?i=%d", front, i, i))
		want := fmt.Sprintf("path=/cgi-bin/echo.sh/x%d q=i=%d\n", i, i)
		if resp.StatusCode != http.StatusOK || body != want || resp.Header.Get("X-Test") != "go" {
			t.Fatalf("request %d: status %d, X-Test %q, body %q; want 200, go, %q",
				i, resp.StatusCode, resp.Header.Get("X-Test"), body, want)
		}
	}
	return l.n.Load()
}

func TestNginxFastCGIGo(t *testing.T) {
	t.Parallel()
	const requests = 20
	for _, tt := range []struct {
		keepAlive int
		maxConns  int64
	}{
		{0, requests},
		// One nginx worker sending requests one at a time needs one
		// connection; allow a second in case nginx drops one.
		{8, 2},
	} {
		t.Run(fmt.Sprintf("KeepAlive=%d", tt.keepAlive), func(t *testing.T) {
			t.Parallel()
			l := goFCGI(t)
			s := peerstest.NginxFastCGI(t, peers.NginxFastCGIConfig{Backend: l.Addr().String(), KeepAlive: tt.keepAlive})
			conns := checkGoFCGI(t, s.URL, l, requests)
			t.Logf("%d requests took %d backend connections", requests, conns)
			if conns > tt.maxConns || tt.keepAlive == 0 && conns != requests {
				t.Errorf("%d requests took %d backend connections; want at most %d", requests, conns, tt.maxConns)
			}
			stopAndCheck(t, s.Stop, s.Procs()...)
		})
	}
}

func TestApacheProxyFCGIGo(t *testing.T) {
	t.Parallel()
	const requests = 20
	for _, reuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("EnableReuse=%v", reuse), func(t *testing.T) {
			t.Parallel()
			l := goFCGI(t)
			s := peerstest.ApacheProxyFCGI(t, peers.ApacheProxyFCGIConfig{Backend: l.Addr().String(), EnableReuse: reuse})
			conns := checkGoFCGI(t, s.URL, l, requests)
			// With reuse, each Apache worker thread keeps its own connection,
			// and which thread serves a request is up to the MPM: only the
			// no-reuse count is exact.
			t.Logf("%d requests took %d backend connections", requests, conns)
			if !reuse && conns != requests {
				t.Errorf("%d requests took %d backend connections; want %d", requests, conns, requests)
			}
			stopAndCheck(t, s.Stop, s.Procs()...)
		})
	}
}

// stopAndCheck calls stop and checks that no process of the groups led by
// procs is left, and that a second stop succeeds too.
func stopAndCheck(t *testing.T, stop func() error, procs ...*peers.Process) {
	t.Helper()
	before := make(map[*peers.Process][]peers.GroupMember)
	for _, p := range procs {
		before[p] = members(t, p)
		t.Logf("%s: group %d has %d processes", p.Name(), p.Pid(), len(before[p]))
	}
	if err := stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	for _, p := range procs {
		assertGone(t, p, before[p])
	}
	if err := stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// helloPHP is the PHP script of TestPHPFPM.
const helloPHP = `<?php header("X-Test: 1"); echo "hello ", $_SERVER["SCRIPT_NAME"], " ", $_SERVER["PATH_INFO"] ?? "-", " ", $_GET["q"] ?? "";`

// envPHP shows the workers' environment, Env only (clear_env), and that
// scripts run in their own directory.
const envPHP = `<?php echo getenv("FERRY_FOO"), " ", getenv("HOME") === false ? "no-HOME" : "HOME", " ", getcwd();`

func TestPHPFPM(t *testing.T) {
	t.Parallel()
	peerstest.Need(t, "php-fpm", "nginx", "apache2")
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "cgi-bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	scripts := map[string]string{
		"hello.php": helloPHP,
		"env.php":   envPHP,
		"warn.php":  `<?php trigger_error("ferry-warning", E_USER_WARNING); echo "ok";`,
	}
	for name, text := range scripts {
		if err := os.WriteFile(filepath.Join(root, "cgi-bin", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := peers.MakeWorldReadable(root); err != nil {
		t.Fatal(err)
	}
	fpm := peerstest.RunPHPFPM(t, peers.PHPFPMConfig{Children: 2, Root: root, Env: map[string]string{"FERRY_FOO": "bar"}})
	if fpm.Network != "unix" || fpm.Listen != "unix:"+fpm.Address {
		t.Errorf("Listen %q, Network %q, Address %q; want a unix socket", fpm.Listen, fpm.Network, fpm.Address)
	}
	// The master listens before it has forked every child.
	waitFor(t, "php-fpm's master and 2 children", func() bool { return len(members(t, fpm.Process)) == 3 })

	ngx := peerstest.NginxFastCGI(t, peers.NginxFastCGIConfig{Backend: fpm.Listen, Locations: []string{"/cgi-bin/"},
		Root: root, SplitPathInfo: `^(.+\.php)(/.*)$`})
	apache := peerstest.ApacheProxyFCGI(t, peers.ApacheProxyFCGIConfig{Backend: fpm.Listen, Prefix: "/cgi-bin/",
		BackendPath: filepath.Join(root, "cgi-bin") + "/"})
	for _, tt := range []struct {
		front      string
		url        string
		path, want string
	}{
		{"nginx", ngx.URL, "/cgi-bin/hello.php/extra?q=1", "hello /cgi-bin/hello.php /extra 1"},
		// nginx sends PATH_INFO even when the regular expression does not match.
		{"nginx", ngx.URL, "/cgi-bin/hello.php?q=2", "hello /cgi-bin/hello.php  2"},
		// php-fpm finds the script in SCRIPT_FILENAME
		// proxy:fcgi://localhost/ROOT/cgi-bin/hello.php/extra, and fixes
		// SCRIPT_NAME and PATH_INFO (cgi.fix_pathinfo).
		{"apache", apache.URL, "/cgi-bin/hello.php/extra?q=1", "hello /cgi-bin/hello.php /extra 1"},
		{"apache", apache.URL, "/cgi-bin/hello.php?q=2", "hello /cgi-bin/hello.php - 2"},
		{"nginx", ngx.URL, "/cgi-bin/env.php", "bar no-HOME " + filepath.Join(root, "cgi-bin")},
		{"apache", apache.URL, "/cgi-bin/env.php", "bar no-HOME " + filepath.Join(root, "cgi-bin")},
		// Errors are logged, not displayed; see the logs below.
		{"nginx", ngx.URL, "/cgi-bin/warn.php", "ok"},
		{"apache", apache.URL, "/cgi-bin/warn.php", "ok"},
	} {
		resp, body := get(t, tt.url+tt.path)
		if resp.StatusCode != http.StatusOK || body != tt.want {
			t.Errorf("%s GET %s: status %d, body %q; want 200, %q", tt.front, tt.path, resp.StatusCode, body, tt.want)
		}
		if strings.HasPrefix(tt.want, "hello") && resp.Header.Get("X-Test") != "1" {
			t.Errorf("%s GET %s: X-Test %q; want 1", tt.front, tt.path, resp.Header.Get("X-Test"))
		}
	}

	// A missing script: php-fpm answers 404 and reports on FastCGI stderr,
	// which both fronts log, as they log PHP's warnings.
	for _, s := range []*peers.Server{ngx, apache} {
		resp, body := get(t, s.URL+"/cgi-bin/missing.php")
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET missing.php: status %d, body %q; want 404", resp.StatusCode, body)
		}
		for _, want := range []string{"Primary script unknown", "PHP message: PHP Warning:  ferry-warning"} {
			waitFor(t, want+" in the front's log", func() bool {
				logs, err := s.Logs()
				if err != nil {
					t.Fatal(err)
				}
				return strings.Contains(logs, want)
			})
		}
	}
	if logs, err := fpm.Logs(); err != nil || !strings.Contains(logs, "ready to handle connections") || !strings.Contains(logs, "ferry-warning") {
		t.Errorf("php-fpm logs: %v\n%s", err, logs)
	}

	stopAndCheck(t, ngx.Stop, ngx.Procs()...)
	stopAndCheck(t, apache.Stop, apache.Procs()...)
	stopAndCheck(t, fpm.Stop, fpm.Process)
	if _, err := os.Stat(fpm.Address); err == nil {
		t.Errorf("php-fpm left its socket %s behind", fpm.Address)
	}
}

func TestPHPFPMTCP(t *testing.T) {
	t.Parallel()
	fpm := peerstest.RunPHPFPM(t, peers.PHPFPMConfig{Listen: "127.0.0.1:0", Children: 1})
	if fpm.Network != "tcp" || fpm.Listen != fpm.Address || strings.HasSuffix(fpm.Address, ":0") {
		t.Errorf("Listen %q, Network %q, Address %q; want a TCP port", fpm.Listen, fpm.Network, fpm.Address)
	}
	c, err := net.DialTimeout(fpm.Network, fpm.Address, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	stopAndCheck(t, fpm.Stop, fpm.Process)
}

// TestApacheProxyFCGIFlushAndSendCL checks the two options that change
// what a backend sees: FlushPackets (a flushed line reaches the client
// while the handler still runs) and SendCL (a chunked request body arrives
// with CONTENT_LENGTH).
func TestApacheProxyFCGIFlushAndSendCL(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- fcgi.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			if r.Method == http.MethodPost {
				n, err := io.Copy(io.Discard, r.Body)
				fmt.Fprintf(w, "cl=%d read=%d err=%v te=%q\n", r.ContentLength, n, err, r.Header.Get("Transfer-Encoding"))
				return
			}
			fmt.Fprintln(w, "first")
			w.(http.Flusher).Flush()
			select {
			case <-release:
				fmt.Fprintln(w, "second")
			case <-time.After(5 * time.Second):
				// Apache held "first" back until the response ended.
				fmt.Fprintln(w, "timed out")
			}
		}))
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	s := peerstest.ApacheProxyFCGI(t, peers.ApacheProxyFCGIConfig{Backend: l.Addr().String(), FlushPackets: true, SendCL: true})
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	resp, err := client.Get(s.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	close(release) // only now may the handler finish
	if line != "first\n" || err != nil {
		t.Errorf("first line %q, %v; want %q", line, err, "first\n")
	}
	rest, err := io.ReadAll(br)
	resp.Body.Close()
	if string(rest) != "second\n" || err != nil {
		t.Errorf("rest %q, %v; want %q", rest, err, "second\n")
	}

	// A body of unknown length goes out chunked; Apache spools it and
	// sends CONTENT_LENGTH instead of HTTP_TRANSFER_ENCODING.
	req, err := http.NewRequest(http.MethodPost, s.URL+"/upload", io.MultiReader(strings.NewReader("0123456789"), strings.NewReader("abcdef")))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "cl=16 read=16 err=<nil> te=\"\"\n"; string(body) != want || err != nil {
		t.Errorf("chunked POST: %q, %v; want %q", body, err, want)
	}
}
