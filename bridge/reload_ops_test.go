package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
)

// startReloadable builds cfg and runs it as runReloadable does; logs, its
// log, goes to the test's output if the test fails.
func startReloadable(t *testing.T, cfg Config, logs *testlog.Buffer) (*Server, string, func()) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	addr, stop := runReloadable(t, s)
	return s, addr, stop
}

// adminStatus is the part of /status?json TestReloadAdmin reads.
type adminStatus struct {
	Mounts []struct {
		Prefix   string `json:"prefix"`
		Accepted uint64 `json:"accepted"`
		Pool     *struct {
			Workers int `json:"workers"`
		} `json:"pool"`
		Workers []struct {
			PID int `json:"pid"`
		} `json:"workers"`
	} `json:"mounts"`
}

// TestReloadAdmin reloads a server with an admin listener: a mount a
// reload adds is measured, the counters of a mount that stays go on, a
// pool kept is reported with its workers, /status and /readyz list the
// mounts in force, the workers of a pool a reload replaces count as restarts for
// the reason "reload"; the admin listener stays on its endpoint, moves to
// a unix socket, goes away and comes back (its figures then start again,
// and so does the pool, which has none).
func TestReloadAdmin(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "ok.sh"), okScript)
	sock := filepath.Join(t.TempDir(), "admin.sock")
	self := reloadWorker(t)
	logs := &testlog.Buffer{}
	workers := "2"
	config := func(admin string, more bool) Config {
		cfg := reloadConfig(t, logs, []string{"http://127.0.0.1:0"}, dir, workers)
		if admin != "" {
			var err error
			if cfg.Admin, err = ParseAdminAddress(admin); err != nil {
				t.Fatal(err)
			}
		}
		if more {
			m, err := ParseMount("/more/=cgi:" + dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Mounts = append(cfg.Mounts, m)
		}
		return cfg
	}
	s, addr, stop := startReloadable(t, config("http://127.0.0.1:0", false), logs)
	defer stop()
	base := "http://" + addr
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		a := s.AdminAddr()
		if a == nil {
			return nil, errors.New("no admin listener")
		}
		var d net.Dialer
		return d.DialContext(ctx, a.Network(), a.String())
	}}}
	defer client.CloseIdleConnections()
	adminGet := func(path string) string {
		t.Helper()
		resp, err := client.Get("http://admin" + path)
		if err != nil {
			t.Fatalf("admin %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("admin %s: %d %v", path, resp.StatusCode, err)
		}
		return string(b)
	}
	status := func() adminStatus {
		t.Helper()
		var st adminStatus
		if err := json.Unmarshal([]byte(adminGet("/status?json&full")), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	okCount := func(prefix string) float64 {
		t.Helper()
		return parseMetrics(t, adminGet("/metrics"))[series("ferry_requests_total", prefix, "cgi:"+dir, "class=2xx")]
	}
	for range 2 {
		if got := getBody(t, base+"/cgi/ok.sh"); got != "ok" {
			t.Fatalf("ok.sh: %q", got)
		}
	}
	if n := okCount("/cgi/"); n != 2 {
		t.Fatalf("/cgi/ answered %v 2xx; want 2", n)
	}
	firstAdmin := s.AdminAddr().String()
	pool := runningPool(s)

	// A mount added; the admin listener and the pool stay.
	if err := s.Reload(config("http://127.0.0.1:0", true)); err != nil {
		t.Fatal(err)
	}
	if a := s.AdminAddr().String(); a != firstAdmin {
		t.Errorf("the admin listener moved from %s to %s; want it kept", firstAdmin, a)
	}
	if runningPool(s) != pool {
		t.Errorf("a reload that kept the pool's settings replaced the pool")
	}
	getBody(t, base+"/cgi/ok.sh")
	if got := getBody(t, base+"/more/ok.sh"); got != "ok" {
		t.Fatalf("the added mount: %q", got)
	}
	if n := okCount("/cgi/"); n != 3 {
		t.Errorf("/cgi/ answered %v 2xx across the reload; want 3", n)
	}
	if n := okCount("/more/"); n != 1 {
		t.Errorf("the added mount answered %v 2xx; want 1", n)
	}
	st := status()
	var prefixes []string
	for _, m := range st.Mounts {
		prefixes = append(prefixes, m.Prefix)
		if m.Prefix != matrixPrefix {
			continue
		}
		var pids []int
		for _, w := range m.Workers {
			pids = append(pids, w.PID)
		}
		slices.Sort(pids)
		want := pool.PIDs()
		slices.Sort(want)
		if m.Pool == nil || m.Pool.Workers != 2 || !slices.Equal(pids, want) {
			t.Errorf("/status reports the kept pool as %+v with workers %v; want 2 workers %v", m.Pool, pids, want)
		}
	}
	if want := []string{"/cgi/", matrixPrefix, "/more/"}; !slices.Equal(prefixes, want) {
		t.Errorf("/status lists %v; want the mounts in force %v", prefixes, want)
	}
	if got, want := adminGet("/readyz"), "ok /more/ cgi:"+dir+"\n"; !strings.Contains(got, want) {
		t.Errorf("/readyz says\n%s\nwant a line %q for the added mount", got, want)
	}

	// The pool's settings change: a new pool replaces it, and its two
	// workers, once stopped, count as restarts for the reason "reload".
	restarts := func(reason string) float64 {
		t.Helper()
		return parseMetrics(t, adminGet("/metrics"))[series("ferry_pool_worker_restarts_total", matrixPrefix, "fastcgi+exec:"+self, "reason="+reason)]
	}
	workers = "1"
	if err := s.Reload(config("http://127.0.0.1:0", true)); err != nil {
		t.Fatal(err)
	}
	if runningPool(s) == pool {
		t.Fatalf("a reload that changed the pool's settings kept the pool")
	}
	for deadline := time.Now().Add(10 * time.Second); restarts("reload") != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the replaced pool's workers: %v restarts for reload, %v for stop; want 2 for reload", restarts("reload"), restarts("stop"))
		}
	}
	if n := restarts("stop"); n != 0 {
		t.Errorf("%v restarts for stop; want the replaced pool's workers counted for reload only", n)
	}
	pool = runningPool(s)

	// The admin listener moves to a unix socket.
	if err := s.Reload(config("unix://"+sock+"?mode=0600", true)); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", firstAdmin); err == nil {
		c.Close()
		t.Errorf("the admin listener's old address %s still accepts", firstAdmin)
	}
	if a := s.AdminAddr(); a == nil || a.String() != sock {
		t.Errorf("AdminAddr = %v; want %s", a, sock)
	}
	client.CloseIdleConnections()
	if got := adminGet("/healthz"); got != "ok\n" {
		t.Errorf("/healthz on the unix socket: %q", got)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket: %v, %v; want mode 0600", fi, err)
	}
	if n := okCount("/cgi/"); n != 3 {
		t.Errorf("/cgi/ answered %v 2xx after the admin listener moved; want 3", n)
	}
	if !strings.Contains(logs.String(), `"admin":"http://`+firstAdmin+` -> unix://`+sock) {
		t.Errorf("no reload line says the admin listener moved:\n%s", logs)
	}

	// No admin listener: the socket goes.
	if err := s.Reload(config("", true)); err != nil {
		t.Fatal(err)
	}
	if s.AdminAddr() != nil {
		t.Errorf("AdminAddr = %v with no admin listener", s.AdminAddr())
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the removed admin listener's socket file is left")
		}
	}
	if runningPool(s) != pool {
		t.Errorf("a reload that dropped the admin listener replaced the pool")
	}

	// Back: new figures, and a new pool, since the running one reports
	// to none.
	if err := s.Reload(config("http://127.0.0.1:0", true)); err != nil {
		t.Fatal(err)
	}
	if runningPool(s) == pool {
		t.Errorf("the pool without figures was kept for an admin listener that reports pools")
	}
	client.CloseIdleConnections()
	getBody(t, base+"/cgi/ok.sh")
	if n := okCount("/cgi/"); n != 1 {
		t.Errorf("/cgi/ answered %v 2xx on the new admin listener; want 1", n)
	}
	if lines := logs.Lines("configuration reloaded"); !strings.Contains(lines[len(lines)-1], `"pools_started":["`+self+`"]`) {
		t.Errorf("the last reload's line %s; want the pool started", lines[len(lines)-1])
	}

	// A mount removed: /status and /readyz no longer report it, and once
	// its requests are over neither does /metrics; the others keep their
	// figures.
	getBody(t, base+"/more/ok.sh")
	if n := okCount("/more/"); n != 1 {
		t.Fatalf("/more/ answered %v 2xx; want 1", n)
	}
	if err := s.Reload(config("http://127.0.0.1:0", false)); err != nil {
		t.Fatal(err)
	}
	moreSeries := func() (names []string) {
		for k := range parseMetrics(t, adminGet("/metrics")) {
			if strings.Contains(k, "mount=/more/") {
				names = append(names, k)
			}
		}
		return names
	}
	for deadline := time.Now().Add(10 * time.Second); len(moreSeries()) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("/metrics still has the removed mount's series %v", moreSeries())
			break
		}
	}
	if n := okCount("/cgi/"); n != 1 {
		t.Errorf("/cgi/ answered %v 2xx after another mount was removed; want 1", n)
	}
	prefixes = prefixes[:0]
	for _, m := range status().Mounts {
		prefixes = append(prefixes, m.Prefix)
	}
	if want := []string{"/cgi/", matrixPrefix}; !slices.Equal(prefixes, want) {
		t.Errorf("/status lists %v after /more/ was removed; want %v", prefixes, want)
	}
	if got := adminGet("/readyz"); strings.Contains(got, "/more/") {
		t.Errorf("/readyz still reports the removed mount:\n%s", got)
	}
	client.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
}

// TestReloadHTTPS: a reload keeps an https:// front's socket and connections
// and reads its certificate again (other files, or the same files changed
// in a way the handshakes cannot see); a certificate that does not load
// fails the reload, which changes nothing; the front turns into plain
// HTTP and back into HTTPS on the same socket.
func TestReloadHTTPS(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "ok.sh"), okScript)
	var certs []testCert
	for i := range 2 {
		d := filepath.Join(dir, string(rune('a'+i)))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		certs = append(certs, writeTestCert(t, d, int64(i+1)))
	}
	logs := &testlog.Buffer{}
	config := func(listen string) Config {
		cfg := reloadConfig(t, logs, []string{listen}, dir, "1")
		cfg.AccessLog = true
		return cfg
	}
	s, addr, stop := startReloadable(t, config(certs[0].httpsListen()), logs)
	defer stop()
	pool := x509.NewCertPool()
	pool.AddCert(certPoolCert(t, certs[0]))
	pool.AddCert(certPoolCert(t, certs[1]))
	kept := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer kept.CloseIdleConnections()
	serial := func() int64 {
		t.Helper()
		return peerSerial(t, addr, pool)
	}
	keptGet := func() bool {
		t.Helper()
		reused := false
		trace := &http.Client{Transport: kept.Transport}
		req, _ := http.NewRequest("GET", "https://"+addr+"/cgi/ok.sh", nil)
		req = req.WithContext(withGotConn(req.Context(), &reused))
		resp, err := trace.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return reused
	}
	keptGet()
	if got := serial(); got != 1 {
		t.Fatalf("serial %d; want 1", got)
	}

	if err := s.Reload(config(certs[1].httpsListen())); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != 2 {
		t.Errorf("after a reload naming other certificate files, serial %d; want 2", got)
	}
	if !keptGet() {
		t.Errorf("the reload closed a kept-alive TLS connection")
	}
	if !strings.Contains(logs.String(), `"listen_changed":["https://127.0.0.1:0?cert=`) {
		t.Errorf("no reload line says the front changed:\n%s", logs)
	}

	missing := "https://127.0.0.1:0?" + url.Values{"cert": {filepath.Join(dir, "nope.pem")}, "key": {certs[1].keyFile}}.Encode()
	if err := s.Reload(config(missing)); err == nil || !strings.Contains(err.Error(), "nope.pem") {
		t.Errorf("Reload with a missing certificate: %v; want an error naming it", err)
	}
	if got := serial(); got != 2 {
		t.Errorf("after a failed reload, serial %d; want 2", got)
	}

	// Plain HTTP on the same socket, then HTTPS again.
	if err := s.Reload(config("http://127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	if got := getBody(t, "http://"+addr+"/cgi/ok.sh"); got != "ok" {
		t.Errorf("plain HTTP on the socket of the https:// front: %q", got)
	}
	if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool}); err == nil {
		conn.Close()
		t.Errorf("a TLS handshake succeeded on the front that became plain HTTP")
	}
	if err := s.Reload(config(certs[0].httpsListen())); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != 1 {
		t.Errorf("HTTPS again: serial %d; want 1", got)
	}

	// Other certificate files copied over those in force with their
	// modification times kept (cp -p, rsync -t) and of the same size: the
	// handshakes cannot tell they changed, but a reload reads them again.
	swapped := sameSizeCert(t, filepath.Join(dir, "c"), certs[0], 3)
	for _, f := range [][2]string{{swapped.certFile, certs[0].certFile}, {swapped.keyFile, certs[0].keyFile}} {
		fi, err := os.Stat(f[1])
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(f[0])
		if err == nil {
			err = os.WriteFile(f[1], b, 0o600)
		}
		if err == nil {
			err = os.Chtimes(f[1], fi.ModTime(), fi.ModTime())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	pool.AddCert(certPoolCert(t, certs[0]))
	if got := serial(); got != 1 {
		t.Fatalf("before the reload, serial %d; want 1 (the copy was to look unchanged)", got)
	}
	if err := s.Reload(config(certs[0].httpsListen())); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != 3 {
		t.Errorf("after a reload with certificate files changed in place, serial %d; want 3", got)
	}
	kept.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
}

// sameSizeCert writes, in dir, a certificate with the given serial number
// whose files have the sizes of c's.
func sameSizeCert(t *testing.T, dir string, c testCert, serial int64) testCert {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	size := func(name string) int64 {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// An ECDSA signature's DER length varies by a byte or two: try again
	// until it is the same.
	for range 100 {
		n := writeTestCert(t, dir, serial)
		if size(n.certFile) == size(c.certFile) && size(n.keyFile) == size(c.keyFile) {
			return n
		}
	}
	t.Fatalf("no certificate of the sizes of %s and %s in 100 tries", c.certFile, c.keyFile)
	return testCert{}
}

// certPoolCert returns c's certificate.
func certPoolCert(t *testing.T, c testCert) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestReloadAccessLog: a reload that names another access log file or
// format writes the next requests' lines there, and closes the replaced
// file once its requests are over; one that names the same file goes on
// with it, and ReopenLogs reopens the file in force; the request ID
// header follows the configuration too.
func TestReloadAccessLog(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	root := testdir.Open(t)
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	listen, err := ParseAddress("http://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	config := func(file, format, idHeader string) Config {
		cfg := reloadConfig(t, logs, nil, dir, "1")
		cfg.Listen, cfg.Mounts, cfg.Root = []Address{listen}, nil, root
		cfg.AccessLog, cfg.AccessLogFile, cfg.AccessLogFormat, cfg.RequestIDHeader = true, file, format, idHeader
		return cfg
	}
	s, addr, stop := startReloadable(t, config(a, "json", ""), logs)
	defer stop()
	request := func(n string) http.Header {
		t.Helper()
		resp, err := http.Get("http://" + addr + "/hello.txt?n=" + n)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	lines := func(file string) []string {
		t.Helper()
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	}
	request("1")
	first := s.run.Load().cur.Load()

	if err := s.Reload(config(b, "combined", "")); err != nil {
		t.Fatal(err)
	}
	request("2")
	if l := lines(a); len(l) != 1 || !strings.Contains(l[0], `"path":"/hello.txt?n=1"`) {
		t.Errorf("%s: %q; want the JSON line of the first request only", a, l)
	}
	if l := lines(b); len(l) != 1 || !strings.Contains(l[0], `"GET /hello.txt?n=2 HTTP/1.1" 200 5`) {
		t.Errorf("%s: %q; want the combined line of the second request", b, l)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		f := first.accessFile()
		f.mu.RLock()
		closed := f.closed
		f.mu.RUnlock()
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replaced configuration's access log file is still open")
		}
	}
	if !strings.Contains(logs.String(), `"access_log":"on=true file=\"`) {
		t.Errorf("no reload line says the access log changed:\n%s", logs)
	}

	// The same file, another format and request ID header: the file is
	// kept, and reopened by ReopenLogs after a rotation.
	second := s.run.Load().cur.Load()
	if err := s.Reload(config(b, "json", "X-Trace-Id")); err != nil {
		t.Fatal(err)
	}
	if s.run.Load().cur.Load().accessFile() != second.accessFile() {
		t.Errorf("a reload naming the same access log file opened it again")
	}
	if h := request("3"); h.Get("X-Trace-Id") == "" || h.Get(DefaultRequestIDHeader) != "" {
		t.Errorf("response header %v; want the request ID in X-Trace-Id only", h)
	}
	if err := os.Rename(b, b+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.ReopenLogs(); err != nil {
		t.Fatal(err)
	}
	request("4")
	if l := lines(b + ".1"); len(l) != 2 || !strings.Contains(l[1], `"path":"/hello.txt?n=3"`) {
		t.Errorf("%s: %q; want the combined line of request 2, the JSON line of request 3", b+".1", l)
	}
	if l := lines(b); len(l) != 1 || !strings.Contains(l[0], `"path":"/hello.txt?n=4"`) {
		t.Errorf("%s after ReopenLogs: %q; want the line of request 4", b, l)
	}
	http.DefaultClient.CloseIdleConnections()
	stop()
	if f := s.run.Load(); f != nil {
		t.Errorf("Run has returned but the runner is still set")
	}
	last := second.accessFile()
	last.mu.RLock()
	defer last.mu.RUnlock()
	if !last.closed {
		t.Errorf("the access log file in force is still open after Run")
	}
}

// TestReloadRefusedFront: a reload whose new front cannot listen (its
// port taken), or that fails once it has opened a new admin listener and
// a new front on a running front's unix socket (its pid file cannot be
// written), changes nothing: the socket file stays.
func TestReloadRefusedFront(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "ok.sh"), okScript)
	logs := &testlog.Buffer{}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	sock := filepath.Join(t.TempDir(), "f.sock")
	cfg := reloadConfig(t, logs, []string{"http://127.0.0.1:0", "fastcgi+unix://" + sock}, dir, "1")
	if cfg.Admin, err = ParseAdminAddress("http://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s, addr, stop := startReloadable(t, cfg, logs)
	defer stop()
	adminBefore := s.AdminAddr().String()

	next := cfg
	extra, _ := ParseAddress("http://" + taken.Addr().String())
	next.Listen = append(slices.Clone(cfg.Listen), extra)
	if err := s.Reload(next); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Reload with a taken port: %v; want EADDRINUSE", err)
	}

	next = cfg
	next.Listen = slices.Clone(cfg.Listen)
	if next.Listen[1], err = ParseAddress("scgi+unix://" + sock); err != nil {
		t.Fatal(err)
	}
	newAdmin := deadAddr(t)
	if next.Admin, err = ParseAdminAddress("http://" + newAdmin); err != nil {
		t.Fatal(err)
	}
	next.PIDFile = filepath.Join(dir, "nowhere", "ferry.pid")
	if err := s.Reload(next); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("Reload with a pid file in a missing directory: %v; want an error naming it", err)
	}
	if a := s.AdminAddr().String(); a != adminBefore {
		t.Errorf("a failed reload moved the admin listener from %s to %s", adminBefore, a)
	}
	if c, err := net.Dial("tcp", newAdmin); err == nil {
		c.Close()
		t.Errorf("a failed reload left its new admin listener %s open", newAdmin)
	}
	if code, _ := get(t, "GET", "http://"+adminBefore+"/healthz", nil); code != 200 {
		t.Errorf("the admin listener after failed reloads: %d", code)
	}
	if got := getBody(t, "http://"+addr+"/cgi/ok.sh"); got != "ok" {
		t.Errorf("after failed reloads: %q", got)
	}
	fc := &fastcgi.Client{Network: "unix", Address: sock, MaxConns: 1}
	w := httptest.NewRecorder()
	fastcgi.NewHandler(fc, nil, cgi.Settings{}).ServeHTTP(w, httptest.NewRequest("GET", "/cgi/ok.sh", nil))
	fc.CloseIdle()
	if w.Code != 200 || w.Body.String() != "ok" {
		t.Errorf("the FastCGI front on %s after failed reloads: %d %q", sock, w.Code, w.Body)
	}
	if n := len(logs.Lines("configuration reloaded")); n != 0 {
		t.Errorf("%d reloads logged; want none", n)
	}
	http.DefaultClient.CloseIdleConnections()
}

// withGotConn returns ctx with a trace that sets *reused when the
// request's connection was kept alive from before.
func withGotConn(ctx context.Context, reused *bool) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { *reused = i.Reused }})
}
