package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
)

// besideFcgiwrap is ferry serving a mount beside fcgiwrap: one nginx in
// front of each, and of each of ferry's FastCGI and SCGI listeners, all
// with the same root and locations, so that a script sees what it would
// under nginx + fcgiwrap.
type besideFcgiwrap struct {
	// urls are the base URLs: "fcgiwrap", "ferry-fastcgi", "ferry-scgi"
	// (nginx in front of each) and "ferry-http" (ferry's own front).
	urls  map[string]string
	ferry *ferryProc
}

// startBesideFcgiwrap starts fcgiwrap, "ferry serve --mount mount" on
// FastCGI and SCGI unix sockets and on HTTP, and an nginx with root as its
// root in front of fcgiwrap and of each of ferry's sockets. In each nginx,
// location / passes every request with SCRIPT_FILENAME
// $document_root$fastcgi_script_name (fcgiwrap's usual site), and
// location /f with the SCRIPT_FILENAME its query's f names.
func startBesideFcgiwrap(t *testing.T, root, mount string) *besideFcgiwrap {
	t.Helper()
	bin := peerstest.Need(t, "nginx", "fcgiwrap")["fcgiwrap"]
	tmp := t.TempDir()
	wrapSock := filepath.Join(tmp, "fcgiwrap.sock")
	wrap, err := peers.Start(t.Context(), peers.Spec{
		Path:      bin,
		Args:      []string{"-c", "2", "-s", "unix:" + wrapSock},
		LogFile:   filepath.Join(tmp, "fcgiwrap.log"),
		ReadyUnix: wrapSock,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := wrap.Stop(); err != nil {
			t.Error(err)
		}
	})
	fcgiSock, scgiSock, httpAddr := filepath.Join(tmp, "ferry.sock"), filepath.Join(tmp, "ferry-scgi.sock"), freeAddr(t)
	p := startFerryArgs(t, "--listen", "fastcgi+unix://"+fcgiSock, "--listen", "scgi+unix://"+scgiSock,
		"--listen", "http://"+httpAddr, "--mount", mount, "--access-log=false")
	fastcgi := func(sock string) string {
		var b strings.Builder
		for _, loc := range []struct{ path, filename string }{
			{"/", "$document_root$fastcgi_script_name"}, {"/f", "$arg_f"},
		} {
			b.WriteString("    location " + loc.path + " {\n      include fastcgi_params;\n")
			b.WriteString("      fastcgi_param SCRIPT_FILENAME " + loc.filename + ";\n")
			b.WriteString("      fastcgi_pass unix:" + sock + ";\n    }\n")
		}
		return b.String()
	}
	var scgi strings.Builder
	for _, loc := range []struct{ path, filename string }{
		{"/", "$document_root$uri"}, {"/f", "$arg_f"},
	} {
		scgi.WriteString("    location " + loc.path + " {\n")
		for _, kv := range [][2]string{
			{"REQUEST_METHOD", "$request_method"}, {"REQUEST_URI", "$request_uri"}, {"QUERY_STRING", "$query_string"},
			{"CONTENT_TYPE", "$content_type"}, {"DOCUMENT_URI", "$document_uri"}, {"DOCUMENT_ROOT", "$document_root"},
			{"SCGI", "1"}, {"SERVER_PROTOCOL", "$server_protocol"}, {"REQUEST_SCHEME", "$scheme"},
			{"REMOTE_ADDR", "$remote_addr"}, {"REMOTE_PORT", "$remote_port"}, {"SERVER_PORT", "$server_port"},
			{"SERVER_NAME", "$server_name"}, {"SCRIPT_NAME", "$uri"}, {"SCRIPT_FILENAME", loc.filename},
		} {
			scgi.WriteString("      scgi_param " + kv[0] + " " + kv[1] + ";\n")
		}
		scgi.WriteString("      scgi_pass unix:" + scgiSock + ";\n    }\n")
	}
	b := &besideFcgiwrap{ferry: p, urls: map[string]string{"ferry-http": "http://" + httpAddr}}
	for name, server := range map[string]string{
		"fcgiwrap":      fastcgi(wrapSock),
		"ferry-fastcgi": fastcgi(fcgiSock),
		"ferry-scgi":    scgi.String(),
	} {
		b.urls[name] = peerstest.NginxFront(t, peers.NginxFrontConfig{Root: root, Server: server}).URL
	}
	return b
}

// get returns the status, Content-Type and body of a GET of url.
func getPlain(t *testing.T, url string) (status int, ctype, body string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res.StatusCode, res.Header.Get("Content-Type"), string(b)
}

// envLines returns the lines of a script's env output that start with one
// of names and "=", sorted.
func envLines(body string, names ...string) []string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		name, _, ok := strings.Cut(line, "=")
		if ok && slices.Contains(names, name) {
			out = append(out, line)
		}
	}
	slices.Sort(out)
	return out
}

// writeEnvScript writes an executable script printing its environment.
func writeEnvScript(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestDocumentRootBehindNginx runs a script of a cgi:DIR mount behind nginx
// (FastCGI and SCGI) and the same script under nginx + fcgiwrap: DOCUMENT_ROOT
// is nginx's root in both, as fcgiwrap passes it on, where ferry gave the
// script's directory. Served by ferry's own HTTP front, with no root
// configured, it is still the script's directory.
func TestDocumentRootBehindNginx(t *testing.T) {
	dir := testdir.Open(t)
	root := filepath.Join(dir, "www")
	cgiDir := filepath.Join(root, "cgi-bin")
	writeEnvScript(t, cgiDir, "env.sh")
	if err := peers.MakeWorldReadable(dir); err != nil {
		t.Fatal(err)
	}
	b := startBesideFcgiwrap(t, root, "/cgi-bin/=cgi:"+cgiDir)
	for name, want := range map[string]string{
		"fcgiwrap":      root,
		"ferry-fastcgi": root,
		"ferry-scgi":    root,
		"ferry-http":    cgiDir,
	} {
		status, _, body := getPlain(t, b.urls[name]+"/cgi-bin/env.sh")
		got := envLines(body, "DOCUMENT_ROOT", "SCRIPT_NAME")
		if w := []string{"DOCUMENT_ROOT=" + want, "SCRIPT_NAME=/cgi-bin/env.sh"}; status != http.StatusOK || !slices.Equal(got, w) {
			t.Errorf("%s: %d %q; want 200 %q\n%s", name, status, got, w, body)
		}
	}
}
