package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/scgi"
)

// runProbe runs "ferry probe args..." and returns its exit code and output.
func runProbe(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"probe"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// timings is the line every probe that got an answer ends with.
var timings = regexp.MustCompile(`(?m)^connect: ([0-9.]+ ms|none \(a CGI script\)), first byte: [0-9.]+ ms, total: [0-9.]+ ms, body: \d+ bytes$`)

// TestProbePHPFPM: ferry probe does what "SCRIPT_NAME=/ping
// SCRIPT_FILENAME=/ping REQUEST_METHOD=GET cgi-fcgi -bind -connect" does
// for php-fpm's ping.path, over TCP and a unix socket; a missing script is
// a bad status (1); a dead address is unreachable (2).
func TestProbePHPFPM(t *testing.T) {
	peerstest.Need(t, "php-fpm")
	root := testdir.Open(t)
	os.WriteFile(filepath.Join(root, "hello.php"), []byte(`<?php header("X-Hello: yes"); echo "hello ", $_SERVER["REQUEST_METHOD"], " ", file_get_contents("php://input"), " ", $_GET["q"] ?? "", " ", $_SERVER["HTTP_X_TEST"] ?? "", "\n"; error_log("logged by hello.php");`), 0o644)
	tcp := peerstest.RunPHPFPM(t, peers.PHPFPMConfig{Listen: "127.0.0.1:0", Children: 1, PingPath: "/ping"})
	unix := peerstest.RunPHPFPM(t, peers.PHPFPMConfig{Children: 1, PingPath: "/ping"})
	for _, url := range []string{"fastcgi://" + tcp.Address, "fastcgi+unix://" + unix.Address} {
		code, out, errs := runProbe(t, url, "--path", "/ping")
		if code != 0 || !strings.HasPrefix(out, "200 OK\n") || !strings.Contains(out, "\n\npong\n") || !timings.MatchString(out) ||
			!strings.Contains(out, "FCGI_GET_VALUES: FCGI_MAX_CONNS not given, FCGI_MAX_REQS not given, FCGI_MPXS_CONNS=0\n") {
			t.Errorf("probe %s --path /ping: exit %d\n%s%s\nwant 0, pong, the timings and php-fpm's GET_VALUES answer", url, code, out, errs)
		}
	}

	// A script, with a body, a query, a header and its stderr.
	data := filepath.Join(t.TempDir(), "body")
	os.WriteFile(data, []byte("posted"), 0o644)
	code, out, errs := runProbe(t, "fastcgi://"+tcp.Address, "--path", "/hello.php?q=1", "--data", data,
		"--param", "SCRIPT_FILENAME="+filepath.Join(root, "hello.php"), "--param", "HTTP_X_TEST=header")
	if code != 0 || !strings.Contains(out, "X-Hello: yes\r\n") || !strings.Contains(out, "hello POST posted 1 header\n") {
		t.Errorf("probe hello.php: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(errs, "logged by hello.php") || !regexp.MustCompile(`req_id=[0-9a-f]{16}`).MatchString(errs) {
		t.Errorf("probe hello.php: stderr %q; want the script's error_log line with its req_id", errs)
	}

	// A script that is not there: php-fpm's 404, exit 1.
	code, out, errs = runProbe(t, "fastcgi://"+tcp.Address, "--path", "/missing.php", "-q")
	if code != 1 || !strings.HasPrefix(out, "404 Not Found\n") || !timings.MatchString(out) || !strings.Contains(errs, "Primary script unknown") {
		t.Errorf("probe a missing script: exit %d\n%s%s\nwant 1 and 404", code, out, errs)
	}
	tcp.Stop()
	code, out, errs = runProbe(t, "fastcgi://"+tcp.Address, "--path", "/ping")
	if code != 2 || out != "" || !strings.HasPrefix(errs, "ferry probe: backend unreachable: fastcgi://"+tcp.Address+": dial tcp") || strings.Count(errs, "\n") != 1 {
		t.Errorf("probe a stopped php-fpm: exit %d\n%s%s\nwant 2 and one line", code, out, errs)
	}
}

// TestProbeBackends: an SCGI application, a CGI script and a cgi-bin, and
// an HTTP server, each reached as a mount of it would reach it.
func TestProbeBackends(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		vars := cgi.Origin(r.Context())
		fmt.Fprintf(w, "%s %s script_name=%q body=%q x=%q remote=%s\n", r.Method, r.URL.RequestURI(), vars["SCRIPT_NAME"], body, r.Header.Get("X-Test"), vars["REMOTE_ADDR"])
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &scgi.Server{Handler: echo}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	app := httptest.NewServer(echo)
	t.Cleanup(app.Close)
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "env.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s %s script_name=%s path_info=%s remote=%s\\n' \"$REQUEST_METHOD\" \"$REQUEST_URI\" \"$SCRIPT_NAME\" \"$PATH_INFO\" \"$REMOTE_ADDR\"\n")
	writeExec(t, filepath.Join(dir, "fail.sh"), "#!/bin/sh\nprintf 'Status: 503 Busy\\n\\nbusy'\n")
	data := filepath.Join(dir, "body")
	os.WriteFile(data, []byte("hi"), 0o644)

	for _, tt := range []struct {
		args []string
		code int
		want []string // in stdout
	}{
		{[]string{"scgi://" + l.Addr().String(), "--path", "/app/x?y=1", "--method", "PUT", "--data", data, "--param", "HTTP_X_TEST=t", "--param", "REMOTE_ADDR=192.0.2.9"},
			0, []string{"200 OK\n", `PUT /app/x?y=1 script_name="" body="hi" x="t" remote=192.0.2.9`, "connect: "}},
		{[]string{"scgi://" + l.Addr().String(), "--path", "/app/x", "--script-name", "/app"}, 0, []string{`GET /app/x script_name="/app"`}},
		{[]string{"scgi://" + l.Addr().String(), "--path", "/missing", "-q"}, 1, []string{"404 Not Found\n"}},
		{[]string{"cgi:" + dir + "/env.sh", "--path", "/extra?z"}, 0, []string{"GET /extra?z script_name= path_info=/extra remote=127.0.0.1", "connect: none (a CGI script)"}},
		{[]string{"cgi:" + dir, "--path", "/env.sh/p"}, 0, []string{"GET /env.sh/p script_name=/env.sh path_info=/p"}},
		{[]string{"cgi:" + dir, "--path", "/fail.sh"}, 1, []string{"503 Service Unavailable\n", "busy"}},
		{[]string{"cgi:" + dir, "--path", "/none.sh"}, 1, []string{"404 Not Found\n"}},
		{[]string{app.URL, "--path", "/a/b?c", "--param", "HTTP_X_TEST=h"}, 0, []string{`GET /a/b?c script_name="" body="" x="h"`}},
		{[]string{app.URL, "--path", "/missing"}, 1, []string{"404 Not Found\n"}},
	} {
		code, out, errs := runProbe(t, tt.args...)
		ok := code == tt.code && timings.MatchString(out)
		for _, w := range tt.want {
			ok = ok && strings.Contains(out, w)
		}
		if !ok {
			t.Errorf("probe %q: exit %d\n%s%s\nwant exit %d and %q", tt.args, code, out, errs, tt.code, tt.want)
		}
	}

	dead := "127.0.0.1:1"
	for _, tt := range []struct {
		args []string
		want string // stderr
	}{
		{[]string{"scgi://" + dead}, "ferry probe: backend unreachable: scgi://127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused\n"},
		{[]string{"scgi+unix://" + dir + "/none.sock"}, "ferry probe: backend unreachable: scgi+unix://" + dir + "/none.sock: dial unix " + dir + "/none.sock: connect: no such file or directory\n"},
		{[]string{"http://" + dead}, "ferry probe: backend unreachable: http://127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused\n"},
		{[]string{"cgi:" + dir + "/none.sh"}, "ferry probe: cgi:" + dir + "/none.sh: stat " + dir + "/none.sh: no such file or directory\n"},
		{[]string{"fastcgi+exec:/usr/bin/php-cgi"}, "ferry probe: fastcgi+exec:/usr/bin/php-cgi: fastcgi+exec: workers run under ferry serve; probe their socket or an application that runs\n"},
		{[]string{"wsgi:/srv/app/wsgi.py"}, "ferry probe: wsgi:/srv/app/wsgi.py: wsgi: workers run under ferry serve; probe the ferry that serves it\n"},
		{[]string{"cgi:" + dir + "?persist=perl"}, "ferry probe: cgi:" + dir + "?persist=perl: persist: workers run under ferry serve; probe the ferry that serves it, or the directory without persist\n"},
		{[]string{"scgi://" + l.Addr().String(), "--param", "SCRIPT_NAME=/x"}, "ferry probe: param SCRIPT_NAME: the request makes it; set it with --method, --path, --script-name or --data\n"},
		{[]string{"scgi://" + l.Addr().String(), "--path", "/x", "--script-name", "/y"}, "ferry probe: path /x is not under the script name /y\n"},
		{[]string{"127.0.0.1:9000"}, "ferry probe: bridge: address \"127.0.0.1:9000\": no scheme; did you mean http://127.0.0.1:9000 (or fastcgi://, scgi://)?\n"},
		{[]string{}, "ferry probe: want one backend URL after the flags (see ferry probe --help)\n"},
		{[]string{"scgi://" + dead, "--frobnicate"}, "ferry probe: unknown flag: --frobnicate (see ferry probe --help)\n"},
	} {
		code, out, errs := runProbe(t, tt.args...)
		if code != 2 || out != "" || errs != tt.want {
			t.Errorf("probe %q: exit %d\n%s%s\nwant exit 2 and %q", tt.args, code, out, errs, tt.want)
		}
	}

	code, out, _ := runProbe(t, "--help")
	if code != 0 || !strings.Contains(out, "ferry probe fastcgi://127.0.0.1:9000 --path /ping") || !strings.Contains(out, "--param stringArray") {
		t.Errorf("probe --help: exit %d\n%s", code, out)
	}
}

// TestGetValuesLine: how probe spells each GET_VALUES answer, an
// application's FCGI_UNKNOWN_TYPE among them (a valid answer, not a
// failure to answer).
func TestGetValuesLine(t *testing.T) {
	for _, tt := range []struct {
		res  bridge.ProbeResult
		want string
	}{
		{bridge.ProbeResult{Values: map[string]string{"FCGI_MPXS_CONNS": "0"}}, "FCGI_MAX_CONNS not given, FCGI_MAX_REQS not given, FCGI_MPXS_CONNS=0"},
		{bridge.ProbeResult{ValuesErr: fmt.Errorf("fastcgi: get values: %w", fastcgi.ErrNoGetValues)}, "FCGI_UNKNOWN_TYPE (the application does not know the record: it gives no limits)"},
		{bridge.ProbeResult{ValuesErr: context.DeadlineExceeded}, "no answer"},
		{bridge.ProbeResult{ValuesErr: errors.New("fastcgi: connection reset")}, "no answer: connection reset"},
	} {
		if got := getValuesLine(&tt.res); got != tt.want {
			t.Errorf("getValuesLine(%v) = %q; want %q", tt.res.ValuesErr, got, tt.want)
		}
	}
}
