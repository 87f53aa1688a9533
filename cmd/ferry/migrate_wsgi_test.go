package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/leakcheck"
)

// wsgiApp answers with what mod_wsgi's daemon gave it, and imports a
// module from python-path.
const wsgiApp = `import os, sys, helper
def application(environ, start_response):
    body = "%s|%s|%s|%s|%s|%s\n" % (helper.NAME, environ["SCRIPT_NAME"], environ.get("PATH_INFO", ""),
        environ.get("HTTP_AUTHORIZATION", "-"), os.environ.get("LANG", "-"), os.path.basename(sys.executable))
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`

// TestMigrateWSGI: docs/migrate/mod_wsgi.md end to end. A mod_wsgi site
// in daemon mode (WSGIDaemonProcess with python-home, python-path, home,
// lang; WSGIProcessGroup; WSGIPassAuthorization On; WSGIScriptAlias)
// goes through ferry migrate apache, and ferry serve --config runs the
// ferry.toml it wrote: the application answers at its prefix, with its
// modules from python-path, the interpreter of python-home, LANG and the
// Authorization header. Before, every WSGI directive was "unknown".
func TestMigrateWSGI(t *testing.T) {
	leakcheck.Check(t)
	py := pythonWith(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "venv")
	for _, d := range []string{filepath.Join(home, "bin"), filepath.Join(dir, "lib"), filepath.Join(dir, "app")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// python-home names a virtualenv; ferry runs its bin/python3
	if err := os.Symlink(py, filepath.Join(home, "bin", "python3")); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"app/app.wsgi":  wsgiApp,
		"lib/helper.py": "NAME = 'helper'\n",
		"site.conf": "<VirtualHost *:80>\n" +
			"    WSGIDaemonProcess app processes=1 threads=2 python-home=" + home + " python-path=" + filepath.Join(dir, "lib") + " home=" + filepath.Join(dir, "app") + " lang=C.UTF-8\n" +
			"    WSGIProcessGroup app\n    WSGIApplicationGroup %{GLOBAL}\n    WSGIPassAuthorization On\n" +
			"    WSGIScriptAlias /app " + filepath.Join(dir, "app", "app.wsgi") + "\n    RequestHeader unset Proxy early\n</VirtualHost>\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	// 1: the workers= of processes × threads is for review
	if code := run([]string{"migrate", "apache", filepath.Join(dir, "site.conf"), "--out", out}, &stdout, &stderr); code != 1 {
		t.Fatalf("ferry migrate: exit %d; want 1\n%s%s", code, stdout.String(), stderr.String())
	}
	if strings.Contains(stdout.String(), "does not know") || strings.Contains(stdout.String(), "== untranslated") {
		t.Fatalf("ferry migrate left WSGI directives untranslated:\n%s", stdout.String())
	}
	p := startFerry(t, "--config", filepath.Join(out, "ferry.toml"))
	req, err := http.NewRequest("GET", p.URL+"/app/hello?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("alice", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	const want = "helper|/app|/hello|Basic YWxpY2U6cHc=|C.UTF-8|python3\n"
	if resp.StatusCode != 200 || body.String() != want {
		t.Errorf("GET /app/hello = %d %q; want 200 %q\n%s", resp.StatusCode, body.String(), want, p.logs)
	}
	if code, got := httpGet(t, p.URL+"/app"); code != 200 || !strings.HasPrefix(got, "helper|/app||-|") {
		t.Errorf("GET /app = %d %q; want 200 helper|/app||-|...", code, got)
	}
}
