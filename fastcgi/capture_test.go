package fastcgi

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/fuzzcorpus"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// TestCaptureCorpus writes the fuzz corpora of this package, and the
// CGI-response corpus of package cgi, from traffic of the real peers: what
// nginx (a connection per request, and kept connections) and Apache's
// mod_proxy_fcgi send to a FastCGI application (FuzzServerConn,
// FuzzReader), and what php-fpm answers (FuzzReader; its STDOUT for
// cgi.FuzzReadResponse). It runs only with FERRY_CAPTURE_CORPUS=1; the
// files are committed.
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

	fronts := []struct {
		name  string
		start func() *peers.Server
	}{
		{"nginx", func() *peers.Server {
			return peerstest.NginxFastCGI(t, peers.NginxFastCGIConfig{Backend: rec.Addr().String()})
		}},
		{"nginx-keepalive", func() *peers.Server {
			return peerstest.NginxFastCGI(t, peers.NginxFastCGIConfig{Backend: rec.Addr().String(), KeepAlive: 2})
		}},
		{"apache", func() *peers.Server {
			return peerstest.ApacheProxyFCGI(t, peers.ApacheProxyFCGIConfig{Backend: rec.Addr().String(), Prefix: "/"})
		}},
	}
	for _, f := range fronts {
		p := f.start()
		reads, err := fuzzcorpus.Through(rec, p.URL, p.Stop)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range reads {
			name := fmt.Sprintf("%s-%d", f.name, i)
			must(t, fuzzcorpus.Write("testdata", "FuzzServerConn", name, b))
			must(t, fuzzcorpus.Write("testdata", "FuzzReader", name, b))
		}
	}

	// php-fpm's answers.
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "index.php"), []byte(`<?php
header("X-Powered: ferry-capture");
setcookie("a", "1");
if (isset($_GET["r"])) { header("Location: /elsewhere"); exit; }
if (isset($_GET["s"])) { http_response_code(404); }
echo "method=", $_SERVER["REQUEST_METHOD"], " body=", file_get_contents("php://input"), "\n";
`), 0o644)
	peers.MakeWorldReadable(root)
	fpm := peerstest.RunPHPFPM(t, peers.PHPFPMConfig{Listen: "127.0.0.1:0", Root: root, Children: 1})
	for i, q := range []struct{ method, query, body string }{{"GET", "", ""}, {"GET", "r=1", ""}, {"GET", "s=1", ""}, {"POST", "", "a=1&b=2"}} {
		raw, stdout := phpFPMExchange(t, fpm.Network, fpm.Address, filepath.Join(root, "index.php"), q.method, q.query, q.body)
		name := fmt.Sprintf("php-fpm-%d", i)
		must(t, fuzzcorpus.Write("testdata", "FuzzReader", name, raw))
		must(t, fuzzcorpus.Write("../cgi/testdata", "FuzzReadResponse", name, stdout, false))
		must(t, fuzzcorpus.Write("../cgi/testdata", "FuzzReadResponsePipe", name, stdout, false, []byte{5, 40, 1}))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// phpFPMExchange sends one request to php-fpm as nginx would and returns
// the bytes php-fpm answered and its STDOUT stream.
func phpFPMExchange(t *testing.T, network, addr, script, method, query, body string) (raw, stdout []byte) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var b []byte
	b = AppendBeginRequest(b, 1, RoleResponder, 0)
	b = AppendRecord(b, TypeParams, 1, pairs("SCRIPT_FILENAME", script, "REQUEST_METHOD", method, "QUERY_STRING", query,
		"REQUEST_URI", "/index.php?"+query, "SCRIPT_NAME", "/index.php", "SERVER_PROTOCOL", "HTTP/1.1", "GATEWAY_INTERFACE", "CGI/1.1",
		"SERVER_NAME", "localhost", "SERVER_PORT", "80", "REMOTE_ADDR", "127.0.0.1", "CONTENT_LENGTH", fmt.Sprint(len(body)),
		"CONTENT_TYPE", "application/x-www-form-urlencoded", "HTTP_HOST", "localhost"))
	b = AppendRecord(b, TypeParams, 1, nil)
	if body != "" {
		b = AppendRecord(b, TypeStdin, 1, []byte(body))
	}
	b = AppendRecord(b, TypeStdin, 1, nil)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	raw, err = io.ReadAll(c) // php-fpm closes without FCGI_KEEP_CONN
	if err != nil {
		t.Fatal(err)
	}
	rd := NewReader(strings.NewReader(string(raw)))
	for {
		r, err := rd.Next()
		if err != nil {
			break
		}
		if r.Type == TypeStdout {
			stdout = append(stdout, r.Content...)
		}
	}
	return raw, stdout
}
