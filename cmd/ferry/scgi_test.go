package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// TestSCGIBehindWebServers runs "ferry serve --listen scgi://" with a
// cgi-bin behind real nginx (scgi_pass, stock scgi_params), Apache
// (mod_proxy_scgi) and lighttpd (mod_scgi): the CGI conformance suite, gitweb
// and cgit included, through each web server.
func TestSCGIBehindWebServers(t *testing.T) {
	peerstest.Need(t, "perl", "python3", "git", "gitweb", "cgit")
	tcp := func(t *testing.T) (string, string) {
		port, err := peers.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		return "scgi://" + addr, addr
	}
	for _, tc := range []struct {
		name   string
		listen func(t *testing.T) (listen, backend string)
		front  func(t *testing.T, backend string) string
		cannot []string
	}{
		{
			name:   "nginx-tcp",
			listen: tcp,
			front: func(t *testing.T, backend string) string {
				return peerstest.NginxSCGI(t, peers.NginxSCGIConfig{Backend: backend, Locations: []string{"/cgi-bin/"}}).URL
			},
		},
		{
			name: "nginx-unix",
			listen: func(t *testing.T) (string, string) {
				sock := filepath.Join(t.TempDir(), "ferry.sock")
				return "scgi+unix://" + sock, "unix:" + sock
			},
			front: func(t *testing.T, backend string) string {
				return peerstest.NginxSCGI(t, peers.NginxSCGIConfig{Backend: backend, Locations: []string{"/cgi-bin/"}}).URL
			},
		},
		{
			name:   "apache-mod_proxy_scgi",
			listen: tcp,
			front: func(t *testing.T, backend string) string {
				return peerstest.ApacheProxySCGI(t, peers.ApacheProxySCGIConfig{Backend: backend, Prefix: "/cgi-bin/"}).URL
			},
			// mod_proxy_scgi answers a chunked request body with 411
			// itself (it does not spool for CONTENT_LENGTH), and watches
			// only the backend while it waits, so a client leaving is
			// never passed on (as with mod_proxy_fcgi).
			cannot: []string{"disconnect", "post-chunked"},
		},
		{
			name:   "lighttpd-mod_scgi",
			listen: tcp,
			front: func(t *testing.T, backend string) string {
				return peerstest.LighttpdSCGI(t, peers.LighttpdSCGIConfig{Backend: backend, Prefix: "/cgi-bin/", StreamResponseBody: 2}).URL
			},
			// lighttpd 1.4.69 notices a client gone only when it next has
			// output to write: the backend connection stays open.
			cannot: []string{"disconnect"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen, backend := tc.listen(t)
			conformanceThroughFront(t, listen, func() string { return tc.front(t, backend) }, tc.cannot)
		})
	}
}

const flaskTestApp = `from flask import Flask, request, url_for

app = Flask(__name__)


@app.route("/hello/<name>")
def hello(name):
    return "hello %s link=%s root=%s" % (name, url_for("hello", name=name), request.script_root)


@app.route("/form", methods=["POST"])
def form():
    return "name=%s pad=%d" % (request.form["name"], len(request.form["pad"])), 201
`

// TestSCGIFlaskThroughFerry: ferry's HTTP listener in front of uwsgi's
// SCGI socket serves a Flask application mounted at /app/, which builds
// its URLs with the prefix (SCRIPT_NAME).
func TestSCGIFlaskThroughFerry(t *testing.T) {
	peerstest.Need(t, "uwsgi", "python3")
	dir := t.TempDir()
	file := filepath.Join(dir, "app.py")
	if err := os.WriteFile(file, []byte(flaskTestApp), 0o644); err != nil {
		t.Fatal(err)
	}
	u := peerstest.RunUWSGI(t, peers.UWSGIConfig{WSGIFile: file, Callable: "app", Listen: "127.0.0.1:0"})
	p := startFerry(t, "--mount", "/app/=scgi://"+u.Address)
	code, body := httpGet(t, p.URL+"/app/hello/ferry")
	if want := "hello ferry link=/app/hello/ferry root=/app"; code != 200 || body != want {
		t.Errorf("GET: %d %q; want 200 %q", code, body, want)
	}
	form := "name=ferry&pad=" + strings.Repeat("x", 1<<20)
	resp, err := http.Post(p.URL+"/app/form", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "name=ferry pad=" + strconv.Itoa(1<<20); resp.StatusCode != 201 || string(b) != want {
		t.Errorf("POST: %d %q; want 201 %q", resp.StatusCode, b, want)
	}
	if code, _ := httpGet(t, p.URL+"/app/nope"); code != 404 {
		t.Errorf("missing page: %d; want 404", code)
	}
	u.Stop()
	if code, _ := httpGet(t, p.URL+"/app/hello/x"); code != http.StatusBadGateway {
		t.Errorf("uwsgi stopped: %d; want 502", code)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v", err)
	}
}

// TestSCGIToRTorrent: ferry's HTTP front reaches rtorrent's XML-RPC
// interface on its SCGI port, the usual way web UIs (ruTorrent, Flood) talk
// to it; a chunked request body is spooled so CONTENT_LENGTH is exact.
func TestSCGIToRTorrent(t *testing.T) {
	rt := peerstest.RunRTorrent(t)
	p := startFerry(t, "--mount", "/RPC2=scgi://"+rt.Address)
	call := func(method string, chunked bool) (int, string) {
		t.Helper()
		body := io.Reader(strings.NewReader(`<?xml version="1.0"?><methodCall><methodName>` + method + `</methodName><params></params></methodCall>`))
		if chunked {
			body = io.MultiReader(body) // no length known: sent chunked
		}
		resp, err := http.Post(p.URL+"/RPC2", "text/xml", body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("system.client_version", false); code != 200 || !strings.Contains(body, "<methodResponse>") || !strings.Contains(body, "<string>0.") {
		t.Errorf("system.client_version: %d %q; want 200 and a version", code, body)
	}
	if code, body := call("system.listMethods", true); code != 200 || !strings.Contains(body, "<string>system.client_version</string>") {
		t.Errorf("system.listMethods, chunked: %d, %d bytes; want 200 and the method list", code, len(body))
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v", err)
	}
}
