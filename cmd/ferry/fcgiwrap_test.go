package main

import (
	"cmp"
	"io"
	"maps"
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
	// fastcgiTCP is the host:port of ferry's FastCGI TCP listener, for
	// another front.
	fastcgiTCP string
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
	fcgiSock, scgiSock, httpAddr, tcpAddr := filepath.Join(tmp, "ferry.sock"), filepath.Join(tmp, "ferry-scgi.sock"), freeAddr(t), freeAddr(t)
	p := startFerryArgs(t, "--listen", "fastcgi+unix://"+fcgiSock, "--listen", "scgi+unix://"+scgiSock,
		"--listen", "http://"+httpAddr, "--listen", "fastcgi://"+tcpAddr, "--mount", mount, "--access-log=false")
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
	b := &besideFcgiwrap{ferry: p, urls: map[string]string{"ferry-http": "http://" + httpAddr}, fastcgiTCP: tcpAddr}
	for name, server := range map[string]string{
		"fcgiwrap":      fastcgi(wrapSock),
		"ferry-fastcgi": fastcgi(fcgiSock),
		"ferry-scgi":    scgi.String(),
	} {
		b.urls[name] = peerstest.NginxFront(t, peers.NginxFrontConfig{Root: root, Server: server}).URL
	}
	return b
}

// getPlain returns the status, Content-Type and body of a GET of url.
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

// TestLocalRedirectEnvLikeDirect checks a script's environment after a
// local redirect (RFC 3875 § 6.2.2) ferry serves itself, behind nginx
// (FastCGI, SCGI) and on its own HTTP front: the same as for a GET of the
// new location, but for what differs between any two requests
// (REMOTE_PORT, the request ID). DOCUMENT_URI, which nginx sends, named
// the path of the script that redirected.
func TestLocalRedirectEnvLikeDirect(t *testing.T) {
	dir := testdir.Open(t)
	root := filepath.Join(dir, "www")
	cgiDir := filepath.Join(root, "cgi-bin")
	writeEnvScript(t, cgiDir, "env.sh")
	const loc = "/cgi-bin/env.sh/p%20q?x=1"
	if err := os.WriteFile(filepath.Join(cgiDir, "loc.sh"), []byte("#!/bin/sh\nprintf 'Location: %s\\n\\n' '"+loc+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := peers.MakeWorldReadable(dir); err != nil {
		t.Fatal(err)
	}
	b := startBesideFcgiwrap(t, root, "/cgi-bin/=cgi:"+cgiDir)
	// Apache's mod_rewrite adds SCRIPT_URL and SCRIPT_URI.
	b.urls["ferry-apache"] = peerstest.ApacheFront(t, peers.ApacheFrontConfig{Modules: []string{"rewrite"},
		Conf: "RewriteEngine On\nProxyPass \"/cgi-bin/\" \"fcgi://" + b.fastcgiTCP + "/cgi-bin/\"\n"}).URL
	env := func(res *http.Response, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v\n%s\n%s", res.Request.URL, res.StatusCode, err, body, b.ferry.logs)
		}
		var vars []string
		for _, line := range strings.Split(string(body), "\n") {
			name, _, _ := strings.Cut(line, "=")
			if line != "" && name != "REMOTE_PORT" && name != "HTTP_X_REQUEST_ID" {
				vars = append(vars, line)
			}
		}
		slices.Sort(vars)
		return vars
	}
	for _, name := range []string{"ferry-fastcgi", "ferry-scgi", "ferry-apache", "ferry-http"} {
		direct := env(http.Get(b.urls[name] + loc))
		redirected := env(http.Post(b.urls[name]+"/cgi-bin/loc.sh", "application/x-www-form-urlencoded", strings.NewReader("a=1")))
		if !slices.Contains(direct, "PATH_INFO=/p q") {
			t.Fatalf("%s: GET %s: no PATH_INFO=/p q in\n%s", name, loc, strings.Join(direct, "\n"))
		}
		for _, v := range direct {
			if !slices.Contains(redirected, v) {
				t.Errorf("%s: after the local redirect, no %s", name, v)
			}
		}
		for _, v := range redirected {
			if !slices.Contains(direct, v) {
				t.Errorf("%s: after the local redirect, %s; a GET of %s has none", name, v, loc)
			}
		}
	}
}

// TestScriptFilenameRefusalsLikeFcgiwrap sends requests whose
// SCRIPT_FILENAME ferry's from=script-filename mount refuses through
// nginx, to fcgiwrap and to ferry (FastCGI and SCGI): each is 403
// Forbidden, as fcgiwrap answers (a missing script was 404; a relative or
// unclean path 400), and ferry logs it at warn level with its reason (it
// logged at debug, or at info without a reason). A script outside the
// directory, and an unclean path, fcgiwrap runs; ferry refuses them.
func TestScriptFilenameRefusalsLikeFcgiwrap(t *testing.T) {
	dir := testdir.Open(t)
	root := filepath.Join(dir, "www")
	cgiDir := filepath.Join(root, "cgi-bin")
	writeEnvScript(t, cgiDir, "env.sh")
	writeEnvScript(t, filepath.Join(root, "other"), "x.sh")
	writeEnvScript(t, cgiDir, "noexec.sh")
	if err := os.Chmod(filepath.Join(cgiDir, "noexec.sh"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(cgiDir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := peers.MakeWorldReadable(dir); err != nil {
		t.Fatal(err)
	}
	b := startBesideFcgiwrap(t, root, "/=cgi:"+cgiDir+"?from=script-filename")
	for _, tc := range []struct {
		path     string
		why      string // in ferry's warning
		fcgiwrap int    // its status, if not ferry's 403
	}{
		{path: "/cgi-bin/missing.sh", why: "no such file or directory"},
		{path: "/cgi-bin/noexec.sh", why: "no execute bit"},
		{path: "/cgi-bin/sub", why: "a directory"},
		{path: "/cgi-bin/env.sh/more", why: "not a directory"},
		{path: "/f?f=env.sh", why: "not an absolute path"},
		{path: "/f?f=", why: "/www/f: no such file or directory"}, // DOCUMENT_ROOT and SCRIPT_NAME then
		{path: "/other/x.sh", why: "not under " + cgiDir, fcgiwrap: http.StatusOK},
		{path: "/f?f=" + cgiDir + "/../cgi-bin/env.sh", why: "not a clean path", fcgiwrap: http.StatusOK},
	} {
		status, _, body := getPlain(t, b.urls["fcgiwrap"]+tc.path)
		if want := cmp.Or(tc.fcgiwrap, http.StatusForbidden); status != want || (want == http.StatusForbidden && body != "403 Forbidden\r\n") {
			t.Fatalf("fcgiwrap: GET %s: %d %q; want %d (the test's premise changed)", tc.path, status, body, want)
		}
		for _, name := range []string{"ferry-fastcgi", "ferry-scgi"} {
			status, ctype, body := getPlain(t, b.urls[name]+tc.path)
			if status != http.StatusForbidden || strings.TrimSpace(body) != "403 Forbidden" || !strings.HasPrefix(ctype, "text/plain") {
				t.Errorf("%s: GET %s: %d %s %q; want 403 text/plain \"403 Forbidden\", as fcgiwrap", name, tc.path, status, ctype, body)
			}
		}
		if !slices.ContainsFunc(strings.Split(b.ferry.logs.String(), "\n"), func(line string) bool {
			return strings.Contains(line, `"level":"warn"`) && strings.Contains(line, "refusing SCRIPT_FILENAME") && strings.Contains(line, tc.why)
		}) {
			t.Errorf("GET %s: no warning with %q in ferry's log:\n%s", tc.path, tc.why, b.ferry.logs)
		}
	}
	for _, name := range []string{"fcgiwrap", "ferry-fastcgi", "ferry-scgi"} {
		if status, _, body := getPlain(t, b.urls[name]+"/cgi-bin/env.sh"); status != http.StatusOK {
			t.Errorf("%s: GET /cgi-bin/env.sh: %d %q; want 200", name, status, body)
		}
	}
}

// TestStatusReasonLikePeers runs a script answering "Status: 404 Nope"
// under Apache mod_cgid, nginx + fcgiwrap, ferry behind nginx (FastCGI,
// SCGI) and ferry's own HTTP front: each status line says "404 Nope", the
// script's phrase; ferry's said "404 Not Found".
func TestStatusReasonLikePeers(t *testing.T) {
	peerstest.Need(t, "apache2")
	dir := testdir.Open(t)
	root := filepath.Join(dir, "www")
	cgiDir := filepath.Join(root, "cgi-bin")
	writeEnvScript(t, cgiDir, "env.sh")
	script := "#!/bin/sh\nprintf 'Status: 404 Nope\\r\\nContent-Type: text/plain\\r\\n\\r\\nnope\\n'\n"
	if err := os.WriteFile(filepath.Join(cgiDir, "nope.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := peers.MakeWorldReadable(dir); err != nil {
		t.Fatal(err)
	}
	b := startBesideFcgiwrap(t, root, "/cgi-bin/=cgi:"+cgiDir)
	b.urls["apache-mod_cgid"] = peerstest.ApacheCGI(t, peers.ApacheCGIConfig{CGIDir: cgiDir}).URL
	for _, name := range slices.Sorted(maps.Keys(b.urls)) {
		res, err := http.Get(b.urls[name] + "/cgi-bin/nope.sh")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.Status != "404 Nope" || string(body) != "nope\n" {
			t.Errorf("%s: %q %q; want \"404 Nope\" \"nope\\n\"", name, res.Status, body)
		}
	}
}
