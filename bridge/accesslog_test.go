package bridge

import (
	"bufio"
	"bytes"
	"encoding/json"
	"github.com/ferrygw/ferry/internal/testdir"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/rs/zerolog"
)

// logLines decodes the JSON log lines in logs.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// mustConfig builds a Config listening on listen with mounts.
func mustConfig(t *testing.T, listen string, mounts ...string) Config {
	t.Helper()
	cfg, err := matrixConfig(listen, mounts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// idApp is an application that answers with the request ID it was given,
// behind FastCGI (cgi.Origin) or HTTP (the header).
func idApp(header string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(r.Header.Values(header), "|"))
	})
}

// TestRequestID: an incoming request ID is kept when valid (printable, at
// most 128 bytes, one value), else replaced; the one kept is the one the
// application gets (as HTTP_X_REQUEST_ID from a script's or FastCGI
// application's view, as the header behind HTTP), the client gets back
// and the access log line carries; through the http:// front (ferry's own
// server, whose request header the handler may change) and the https://
// one (net/http's, whose header is copied first).
func TestRequestID(t *testing.T) {
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "id.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s' \"$HTTP_X_REQUEST_ID$HTTP_X_TRACE\"\n")
	cert := writeTestCert(t, dir, 1)
	for _, front := range []struct {
		scheme, listen string
		client         *http.Client
	}{
		{"http", "http://127.0.0.1:0", http.DefaultClient},
		{"https", cert.httpsListen(), cert.client(true)},
	} {
		t.Run(front.scheme, func(t *testing.T) { testRequestID(t, dir, front.scheme, front.listen, front.client) })
	}
}

func testRequestID(t *testing.T, dir, scheme, listen string, client *http.Client) {
	for _, header := range []string{"", "X-Trace"} {
		name := header
		if name == "" {
			name = DefaultRequestIDHeader
		}
		fl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fsrv := &fastcgi.Server{Handler: idApp(name)}
		go fsrv.Serve(fl)
		t.Cleanup(func() { fsrv.Close() })
		happ := httptest.NewServer(idApp(name))
		t.Cleanup(happ.Close)

		cfg := mustConfig(t, listen, "/cgi/=cgi:"+dir, "/fcgi/=fastcgi://"+fl.Addr().String(), "/http/="+happ.URL)
		cfg.AccessLog, cfg.RequestIDHeader = true, header
		_, addr, logs := runFerry(t, cfg)
		for _, tt := range []struct {
			name string
			sent []string // the header's values, if any
			keep bool
		}{
			{"none", nil, false},
			{"valid", []string{"abc-123_DEF.4:5/6"}, true},
			{"longest", []string{strings.Repeat("a", 128)}, true},
			{"too long", []string{strings.Repeat("a", 129)}, false},
			{"space", []string{"a b"}, false},
			{"non-ASCII", []string{"é"}, false},
			{"two", []string{"a", "b"}, false},
		} {
			for _, path := range []string{"/cgi/id.sh", "/fcgi/x", "/http/x"} {
				req, _ := http.NewRequest("GET", scheme+"://"+addr+path, nil)
				for _, v := range tt.sent {
					req.Header.Add(name, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				id := resp.Header.Get(name)
				switch {
				case tt.keep && id != tt.sent[0]:
					t.Errorf("%s %s %s: answered with ID %q; want %q", name, tt.name, path, id, tt.sent[0])
				case !tt.keep && !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id):
					t.Errorf("%s %s %s: answered with ID %q; want a new one", name, tt.name, path, id)
				}
				if string(body) != id {
					t.Errorf("%s %s %s: the application got ID %q; want %q", name, tt.name, path, body, id)
				}
				waitLogLine(t, logs, func(l map[string]any) bool {
					return l["message"] == "request" && l["req_id"] == id && l["path"] == path
				})
			}
		}
	}
}

// waitLogLine waits for a JSON log line for which match is true: an
// access line is written once the response has gone.
func waitLogLine(t *testing.T, logs *testlog.Buffer, match func(map[string]any) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		for _, l := range logLines(t, logs.String()) {
			if match(l) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no such log line in:\n%s", logs)
		}
	}
}

// TestRequestIDControl: an ID with a control character, which only a
// front web server's parameters can carry (an HTTP server refuses it), is
// replaced before the script sees it.
func TestRequestIDControl(t *testing.T) {
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "id.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s' \"$HTTP_X_REQUEST_ID\"\n")
	s, err := New(mustConfig(t, "http://127.0.0.1:0", "/cgi/=cgi:"+dir))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/cgi/id.sh", nil)
	r.Header.Set("X-Request-Id", "a\x01b")
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if id := w.Result().Header.Get("X-Request-Id"); len(id) != 16 || w.Body.String() != id {
		t.Errorf("the script got ID %q, the client %q; want a new one for both", w.Body, id)
	}
	if r.Header.Get("X-Request-Id") != "a\x01b" {
		t.Errorf("the server's request was changed: %q", r.Header.Get("X-Request-Id"))
	}
}

// stderrFastCGIApp is a raw FastCGI application that writes a line to
// STDERR for each request and answers with the request ID it was given
// (HTTP_X_REQUEST_ID); mpx says whether it multiplexes.
func stderrFastCGIApp(t *testing.T, mpx bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for nc, err := l.Accept(); err == nil; nc, err = l.Accept() {
			go stderrAppConn(nc, mpx)
		}
	}()
	return l.Addr().String()
}

// stderrAppConn serves one connection of stderrFastCGIApp.
func stderrAppConn(nc net.Conn, mpx bool) {
	defer nc.Close()
	rd := fastcgi.NewReader(bufio.NewReader(nc))
	params := map[uint16][]byte{}
	for rec, err := rd.Next(); err == nil; rec, err = rd.Next() {
		var out []byte
		switch id := rec.RequestID; rec.Type {
		case fastcgi.TypeGetValues:
			vals := fastcgi.AppendPair(fastcgi.AppendPair(nil, "FCGI_MAX_CONNS", "2"), "FCGI_MPXS_CONNS", map[bool]string{true: "1", false: "0"}[mpx])
			out = fastcgi.AppendRecord(nil, fastcgi.TypeGetValuesResult, 0, vals)
		case fastcgi.TypeParams:
			params[id] = append(params[id], rec.Content...)
		case fastcgi.TypeStdin:
			if len(rec.Content) > 0 {
				break
			}
			var reqID string
			fastcgi.ParsePairs(params[id], func(n, v []byte) error {
				if string(n) == "HTTP_X_REQUEST_ID" {
					reqID = string(v)
				}
				return nil
			})
			delete(params, id)
			out = fastcgi.AppendRecord(out, fastcgi.TypeStderr, id, []byte("PHP Warning: something for "+reqID+"\n"))
			out = fastcgi.AppendRecord(out, fastcgi.TypeStdout, id, []byte("Content-Type: text/plain\r\n\r\n"+reqID))
			out = fastcgi.AppendRecord(out, fastcgi.TypeStdout, id, nil)
			out = fastcgi.AppendEndRequest(out, id, 0, fastcgi.RequestComplete)
		}
		if _, err := nc.Write(out); len(out) > 0 && err != nil {
			return
		}
	}
}

// TestFastCGIStderrCarriesRequestID: a FastCGI application's STDERR lines
// are logged with the request's req_id, over one connection per request
// and over multiplexed ones.
func TestFastCGIStderrCarriesRequestID(t *testing.T) {
	for _, mpx := range []bool{false, true} {
		addr := stderrFastCGIApp(t, mpx)
		logs := &testlog.Buffer{}
		log := zerolog.New(logs)
		cfg := mustConfig(t, "http://127.0.0.1:0", "/app/=fastcgi://"+addr)
		cfg.Logger = &log
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"client-given-1", ""} {
			r := httptest.NewRequest("GET", "/app/x", nil)
			if id != "" {
				r.Header.Set("X-Request-Id", id)
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, r)
			got := w.Result().Header.Get("X-Request-Id")
			if w.Body.String() != got || (id != "" && got != id) {
				t.Fatalf("mpx %v: the application got ID %q, the client %q; want %q", mpx, w.Body, got, id)
			}
			found := false
			for _, l := range logLines(t, logs.String()) {
				if l["message"] == "fastcgi: application stderr" && l["stderr"] == "PHP Warning: something for "+got {
					found = true
					if l["req_id"] != got {
						t.Errorf("mpx %v: stderr line %v; want req_id %q", mpx, l, got)
					}
				}
			}
			if !found {
				t.Errorf("mpx %v: no stderr line for %s in:\n%s", mpx, got, logs)
			}
		}
	}
}

// TestScriptStderrNotTruncated: a script's long stderr line is logged in
// pieces marked split, each with the request's req_id, that join to the
// whole line; past the per-request bound, one line says the rest is
// dropped. Nothing is cut silently.
func TestScriptStderrNotTruncated(t *testing.T) {
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "noisy.sh"), `#!/bin/sh
head -c 10000 /dev/zero | tr '\0' x >&2; echo >&2
echo short >&2
if [ "$QUERY_STRING" = flood ]; then head -c 200000 /dev/zero | tr '\0' y >&2; fi
printf 'Content-Type: text/plain\n\nok'
`)
	logs := &testlog.Buffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	cfg := mustConfig(t, "http://127.0.0.1:0", "/cgi-bin/=cgi:"+dir)
	cfg.Logger = &log
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/cgi-bin/noisy.sh", nil))
	id := w.Result().Header.Get("X-Request-Id")
	var pieces []string
	var split []bool
	for _, l := range logLines(t, logs.String()) {
		if l["message"] != "cgi: script stderr" {
			continue
		}
		if l["req_id"] != id {
			t.Errorf("stderr line %v; want req_id %q", l, id)
		}
		pieces = append(pieces, l["stderr"].(string))
		split = append(split, l["split"] == true)
	}
	if want := strings.Repeat("x", 10000); len(pieces) != 4 || strings.Join(pieces[:3], "") != want || pieces[3] != "short" {
		t.Fatalf("stderr logged as %d pieces (%v); want the 10000-byte line in 3 and \"short\"", len(pieces), split)
	}
	if !split[0] || !split[1] || split[2] || split[3] {
		t.Errorf("split marks %v; want the first two pieces marked", split)
	}

	before := len(logs.String())
	w = httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/cgi-bin/noisy.sh?flood", nil))
	if w.Body.String() != "ok" {
		t.Errorf("a script flooding stderr got %d %q; want its answer", w.Code, w.Body)
	}
	dropped := false
	for _, l := range logLines(t, logs.String()[before:]) {
		dropped = dropped || (l["message"] == "cgi: stderr limit reached; dropping the rest" && l["limit_bytes"] != nil)
	}
	if !dropped {
		t.Errorf("no line says stderr past the bound was dropped:\n%.2000s", logs)
	}
}

// accessRequest is the request the access log format tests log.
func accessRequest(method string) *http.Request {
	r := httptest.NewRequest(method, "/hello.txt?x=1&q=%22", nil)
	r.Host = "site.example"
	r.RemoteAddr = "192.0.2.7:5555"
	r.Header.Set("Referer", "http://ref.example/from")
	r.Header.Set("User-Agent", `curl "quoted" \ agent`)
	return r
}

// accessServer is a Server of a document root holding hello.txt, logging
// requests in format to the buffer it returns.
func accessServer(t *testing.T, format, file string) (*Server, *bytes.Buffer, *testlog.Buffer) {
	t.Helper()
	root := testdir.Open(t)
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	procLogs := &testlog.Buffer{}
	log := zerolog.New(procLogs)
	s, err := New(Config{Root: root, AccessLog: true, AccessLogFormat: format, AccessLogFile: file, Stderr: &out, Logger: &log})
	if err != nil {
		t.Fatal(err)
	}
	return s, &out, procLogs
}

// TestAccessLogCombined: Apache's combined format, exactly: "-" for what
// is missing, quotes and backslashes escaped.
func TestAccessLogCombined(t *testing.T) {
	s, out, procLogs := accessServer(t, "combined", "")
	for _, method := range []string{"GET", "HEAD"} {
		s.Handler().ServeHTTP(httptest.NewRecorder(), accessRequest(method))
	}
	re := regexp.MustCompile(`^192\.0\.2\.7 - - \[([^]]+)\] "GET /hello\.txt\?x=1&q=%22 HTTP/1\.1" 200 5 "http://ref\.example/from" "curl \\"quoted\\" \\\\ agent"\n` +
		`192\.0\.2\.7 - - \[[^]]+\] "HEAD /hello\.txt\?x=1&q=%22 HTTP/1\.1" 200 - "http://ref\.example/from" "curl \\"quoted\\" \\\\ agent"\n$`)
	m := re.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("combined log:\n%s\nwant it to match %s", out, re)
	}
	if ts, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[1]); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("time %q: %v; want %%t, now", m[1], err)
	}
	if procLogs.String() != "" {
		t.Errorf("the process log got access lines too:\n%s", procLogs)
	}
	// No referer or user agent, a front web server's REMOTE_USER.
	out.Reset()
	r := httptest.NewRequest("GET", "/none", nil)
	r.RemoteAddr = "[2001:db8::1]:443"
	s.Handler().ServeHTTP(httptest.NewRecorder(), r)
	if re := regexp.MustCompile(`^2001:db8::1 - - \[[^]]+\] "GET /none HTTP/1\.1" 404 19 "-" "-"\n$`); !re.MatchString(out.String()) {
		t.Errorf("combined log:\n%s\nwant it to match %s", out, re)
	}
}

// TestAccessLogJSONAndConsole: the JSON line has host, user agent, referer
// and the units in the field names; the console line leads with method,
// path, status and duration.
func TestAccessLogJSONAndConsole(t *testing.T) {
	s, out, _ := accessServer(t, "json", "")
	s.Handler().ServeHTTP(httptest.NewRecorder(), accessRequest("GET"))
	l := logLines(t, out.String())
	if len(l) != 1 {
		t.Fatalf("json log:\n%s\nwant one line", out)
	}
	for k, want := range map[string]any{"message": "request", "method": "GET", "path": "/hello.txt?x=1&q=%22", "status": 200.0,
		"bytes": 5.0, "host": "site.example", "remote": "192.0.2.7:5555", "referer": "http://ref.example/from",
		"user_agent": `curl "quoted" \ agent`, "backend": "static"} {
		if l[0][k] != want {
			t.Errorf("json %s = %v; want %v", k, l[0][k], want)
		}
	}
	if _, ok := l[0]["duration_ms"].(float64); !ok || l[0]["time"] == nil || l[0]["req_id"] == nil {
		t.Errorf("json line %v: want duration_ms, time and req_id", l[0])
	}

	s, out, _ = accessServer(t, "console", "")
	s.Handler().ServeHTTP(httptest.NewRecorder(), accessRequest("GET"))
	re := regexp.MustCompile(`^\d\d:\d\d:\d\d \S+ request method=GET path=/hello\.txt\?x=1&q=%22 status=200 duration_ms=[0-9.]+ backend=static bytes=5 host=site\.example referer=\S+ remote=\S+ req_id=[0-9a-f]{16} user_agent=.*\n$`)
	if !re.MatchString(out.String()) {
		t.Errorf("console log:\n%q\nwant it to match %s", out, re)
	}
}

// TestAccessLogFileReopen: the access log goes to its file, JSON by
// default; once the file is renamed, lines go on to it until ReopenLogs,
// then to a new file of the name.
func TestAccessLogFileReopen(t *testing.T) {
	dir := testdir.Open(t)
	file := filepath.Join(dir, "access.log")
	s, out, procLogs := accessServer(t, "auto", file)
	if err := s.openLogs(); err != nil {
		t.Fatal(err)
	}
	defer s.closeLogs()
	get := func(path string) {
		r := httptest.NewRequest("GET", path, nil)
		s.Handler().ServeHTTP(httptest.NewRecorder(), r)
	}
	get("/one")
	if err := os.Rename(file, file+".1"); err != nil {
		t.Fatal(err)
	}
	get("/two")
	if err := s.ReopenLogs(); err != nil {
		t.Fatal(err)
	}
	get("/three")
	for name, want := range map[string][]string{file + ".1": {"/one", "/two"}, file: {"/three"}} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, l := range logLines(t, string(b)) {
			paths = append(paths, l["path"].(string))
		}
		if strings.Join(paths, " ") != strings.Join(want, " ") {
			t.Errorf("%s has the lines of %v; want %v", name, paths, want)
		}
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("the new access log: %v, %v; want mode 0640", fi.Mode(), err)
	}
	if out.Len() != 0 || procLogs.String() != "" {
		t.Errorf("access lines went elsewhere too:\n%s%s", out, procLogs)
	}
}

// TestAccessLogFileError: an access log file that cannot be opened stops
// Run at once, naming it.
func TestAccessLogFileError(t *testing.T) {
	cfg := mustConfig(t, "http://127.0.0.1:0")
	cfg.AccessLog, cfg.AccessLogFile = true, "/nonexistent/dir/access.log"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(t.Context(), func([]net.Listener) { t.Error("ferry listened") })
	if err == nil || err.Error() != "bridge: access log: open /nonexistent/dir/access.log: no such file or directory" {
		t.Errorf("Run = %v; want the access log's error", err)
	}
}

// TestWorkersStartedLogsEveryPID: the line that says the workers of a
// fastcgi+exec mount started lists every one of them.
func TestWorkersStartedLogsEveryPID(t *testing.T) {
	_, _, logs := runFerry(t, mustConfig(t, "http://127.0.0.1:0", "/w/=fastcgi+exec:"+testdir.Executable(t)+"?workers=3"))
	for _, l := range logLines(t, logs.String()) {
		if l["message"] == "ferry: FastCGI workers started" {
			if pids, _ := l["pids"].([]any); len(pids) != 3 {
				t.Errorf("workers started with pids %v; want 3", l["pids"])
			}
			return
		}
	}
	t.Errorf("no workers started line in:\n%s", logs)
}
