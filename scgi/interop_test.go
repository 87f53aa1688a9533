package scgi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/scgi"
	"github.com/rs/zerolog"
)

// serveSCGI runs an scgi.Server with h on l until the test ends.
func serveSCGI(t *testing.T, l net.Listener, h http.Handler, log io.Writer) {
	t.Helper()
	logger := zerolog.New(log)
	srv := &scgi.Server{Handler: h, Logger: &logger}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, scgi.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
}

// The CGI conformance suite through nginx, Apache and lighttpd in front of
// ferry's SCGI listener runs in cmd/ferry (TestSCGIBehindWebServers), on the
// real binary.

// originDump answers with the meta-variables a CGI script behind ferry
// would get, so that the front's view of the connection can be compared.
func originDump(w http.ResponseWriter, r *http.Request) {
	env, err := cgi.AppendEnv(nil, r, cgi.Script{Name: "/o"}, "ferry")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	io.WriteString(w, strings.Join(env, "\n")+"\n")
}

// TestOriginThroughWebServers checks that what each front says about the
// connection (SERVER_PORT, REMOTE_ADDR, REMOTE_PORT, HTTPS, SERVER_NAME)
// reaches a script behind ferry unchanged.
func TestOriginThroughWebServers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		front      func(t *testing.T, backend string) *peers.Server
		serverName string
	}{
		{"nginx", func(t *testing.T, b string) *peers.Server {
			return peerstest.NginxSCGI(t, peers.NginxSCGIConfig{Backend: b, Params: map[string]string{"HTTPS": "on"}})
		}, "localhost"},
		{"apache", func(t *testing.T, b string) *peers.Server {
			return peerstest.ApacheProxySCGI(t, peers.ApacheProxySCGIConfig{Backend: b, Env: map[string]string{"HTTPS": "on"}})
		}, "127.0.0.1"},
		{"lighttpd", func(t *testing.T, b string) *peers.Server {
			return peerstest.LighttpdSCGI(t, peers.LighttpdSCGIConfig{Backend: b, Env: map[string]string{"HTTPS": "on"}})
		}, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			serveSCGI(t, l, http.HandlerFunc(originDump), io.Discard)
			front := tc.front(t, l.Addr().String())
			var local string
			c, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			local = c.LocalAddr().String()
			fmt.Fprintf(c, "GET /o/x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", strings.TrimPrefix(front.URL, "http://"))
			resp, err := http.ReadResponse(bufioReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			host, port, _ := net.SplitHostPort(local)
			_, serverPort, _ := net.SplitHostPort(strings.TrimPrefix(front.URL, "http://"))
			for _, want := range []string{
				"SERVER_PORT=" + serverPort, "REMOTE_ADDR=" + host, "REMOTE_PORT=" + port, "HTTPS=on", "SERVER_NAME=" + tc.serverName,
			} {
				if !slices.Contains(strings.Split(string(body), "\n"), want) {
					t.Errorf("script environment lacks %s:\n%s", want, body)
				}
			}
		})
	}
}

// flaskApp is a Flask application that builds URLs (which carry the mount
// prefix, SCRIPT_NAME), reads a POST body and sets a status.
const flaskApp = `from flask import Flask, request, url_for

app = Flask(__name__)


@app.route("/hello/<name>")
def hello(name):
    return "hello %s at %s root=%s" % (name, url_for("hello", name=name), request.script_root)


@app.route("/post", methods=["POST"])
def post():
    data = request.get_data()
    return "got %d bytes: %s" % (len(data), data[:16].decode()), 201, {"X-Flask": "yes"}
`

// TestUWSGIFlask puts ferry's scgi.NewHandler, mounted at /app, in front of
// uwsgi serving a Flask application over SCGI.
func TestUWSGIFlask(t *testing.T) {
	peerstest.Need(t, "uwsgi", "python3")
	dir := t.TempDir()
	file := filepath.Join(dir, "app.py")
	if err := os.WriteFile(file, []byte(flaskApp), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, listen := range []string{"", "127.0.0.1:0"} {
		t.Run("listen="+listen, func(t *testing.T) {
			u := peerstest.RunUWSGI(t, peers.UWSGIConfig{WSGIFile: file, Callable: "app", Listen: listen})
			h := scgi.NewHandler(&scgi.Client{Network: u.Network, Address: u.Address}, cgi.Mount{Prefix: "/app"}, cgi.Settings{})
			mux := http.NewServeMux()
			mux.Handle("/app/", h)
			hs := newHTTPServer(t, mux)
			resp, body := do(t, hs+"/app/hello/world", "")
			if want := "hello world at /app/hello/world root=/app"; resp.StatusCode != 200 || body != want {
				t.Errorf("GET: %d %q; want 200 %q", resp.StatusCode, body, want)
			}
			resp, body = do(t, hs+"/app/post", strings.Repeat("0123456789abcdef", 4096))
			if want := "got 65536 bytes: 0123456789abcdef"; resp.StatusCode != 201 || body != want || resp.Header.Get("X-Flask") != "yes" {
				t.Errorf("POST: %d %q %v; want 201 %q", resp.StatusCode, body, resp.Header, want)
			}
			resp, _ = do(t, hs+"/app/missing", "")
			if resp.StatusCode != 404 {
				t.Errorf("GET missing: %d; want 404", resp.StatusCode)
			}
		})
	}
}
