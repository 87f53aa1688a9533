package scgi

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/fuzzcorpus"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// TestCaptureCorpus writes FuzzReadRequest's corpus from what nginx,
// Apache's mod_proxy_scgi and lighttpd send to an SCGI application, and
// cgi.FuzzReadResponse's from what uwsgi answers. It runs only with
// FERRY_CAPTURE_CORPUS=1; the files are committed.
func TestCaptureCorpus(t *testing.T) {
	if !fuzzcorpus.Capturing() {
		t.Skip("FERRY_CAPTURE_CORPUS=1 writes the fuzz corpora from real peers")
	}
	rec, err := fuzzcorpus.Listen()
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: http.HandlerFunc(echoHandler)}
	go srv.Serve(rec)
	defer srv.Close()
	addr := rec.Addr().String()
	for _, f := range []struct {
		name  string
		start func() *peers.Server
	}{
		{"nginx", func() *peers.Server { return peerstest.NginxSCGI(t, peers.NginxSCGIConfig{Backend: addr}) }},
		{"apache", func() *peers.Server { return peerstest.ApacheProxySCGI(t, peers.ApacheProxySCGIConfig{Backend: addr}) }},
		{"lighttpd", func() *peers.Server { return peerstest.LighttpdSCGI(t, peers.LighttpdSCGIConfig{Backend: addr}) }},
	} {
		p := f.start()
		reads, err := fuzzcorpus.Through(rec, p.URL, p.Stop)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range reads {
			must(t, fuzzcorpus.Write("testdata", "FuzzReadRequest", fmt.Sprintf("%s-%d", f.name, i), b))
		}
	}

	// uwsgi's answers.
	app := filepath.Join(t.TempDir(), "app.py")
	os.WriteFile(app, []byte(`def application(environ, start_response):
    q = environ.get("QUERY_STRING", "")
    if q == "r=1":
        start_response("302 Found", [("Location", "http://example.com/elsewhere")])
        return [b""]
    body = environ["wsgi.input"].read()
    start_response("404 Not Found" if q == "s=1" else "200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    return [b"method=" + environ["REQUEST_METHOD"].encode() + b" body=" + body + b"\n"]
`), 0o644)
	peers.MakeWorldReadable(filepath.Dir(app))
	u := peerstest.RunUWSGI(t, peers.UWSGIConfig{WSGIFile: app, Listen: "127.0.0.1:0", Processes: 1})
	for i, q := range []struct{ method, query, body string }{{"GET", "", ""}, {"GET", "r=1", ""}, {"GET", "s=1", ""}, {"POST", "", "a=1&b=2"}} {
		req, err := AppendRequest(nil, []string{"CONTENT_LENGTH=" + fmt.Sprint(len(q.body)), "SCGI=1", "REQUEST_METHOD=" + q.method,
			"QUERY_STRING=" + q.query, "REQUEST_URI=/app?" + q.query, "SCRIPT_NAME=", "PATH_INFO=/app", "SERVER_PROTOCOL=HTTP/1.1",
			"SERVER_NAME=localhost", "SERVER_PORT=80", "REMOTE_ADDR=127.0.0.1", "HTTP_HOST=localhost"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", u.Listen)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(append(req, q.body...))
		resp, err := io.ReadAll(c)
		c.Close()
		if err != nil || len(resp) == 0 {
			t.Fatalf("uwsgi: %q, %v", resp, err)
		}
		name := fmt.Sprintf("uwsgi-%d", i)
		must(t, fuzzcorpus.Write("../cgi/testdata", "FuzzReadResponse", name, resp, false))
		must(t, fuzzcorpus.Write("../cgi/testdata", "FuzzReadResponsePipe", name, resp, false, []byte{5, 40, 1}))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
