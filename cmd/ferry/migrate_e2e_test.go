package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/conformance"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
)

// envScript prints the CGI variables a migration must keep as they were.
const envScript = `#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "script=$SCRIPT_NAME path_info=$PATH_INFO query=$QUERY_STRING method=$REQUEST_METHOD"
echo "gitweb=$GITWEB_CONFIG proxy=$HTTP_PROXY"
`

// migrateSite is a cgi-bin with gitweb, cgit and env.sh, and the git
// repository gitweb shows.
func migrateSite(t *testing.T) (cgiDir string, env map[string]string, paths []string) {
	t.Helper()
	dir := testdir.Open(t) // the scripts run as www-data when the tests run as root
	cgiDir = filepath.Join(dir, "cgi-bin")
	if err := os.MkdirAll(cgiDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := conformance.InstallGitApps(cgiDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cgiDir, "env.sh"), []byte(envScript), 0o755); err != nil {
		t.Fatal(err)
	}
	git, err := conformance.NewGitFixture(context.Background(), filepath.Join(dir, "git"))
	if err != nil {
		t.Fatal(err)
	}
	if err := peers.MakeWorldReadable(dir); err != nil {
		t.Fatal(err)
	}
	env = map[string]string{}
	for _, kv := range git.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	p := url.QueryEscape(git.Project)
	paths = []string{
		"/cgi-bin/env.sh/extra/path?x=1&y=2",
		"/cgi-bin/gitweb.cgi",
		"/cgi-bin/gitweb.cgi?p=" + p + ";a=summary",
		"/cgi-bin/gitweb.cgi?p=" + p + ";a=shortlog",
		"/cgi-bin/gitweb.cgi?p=" + p + ";a=commit;h=" + git.Commits[len(git.Commits)-1].ID,
		"/cgi-bin/missing.cgi",
	}
	return cgiDir, env, paths
}

// fetch GETs base+path with a Proxy header (httpoxy: it must reach no
// script) and returns the status and the body, the server's own address
// (base's host:port) in it replaced by HOST.
func fetch(t *testing.T, base, path string) (status string, code int, body []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Proxy", "http://attacker.example:3128")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.Status, resp.StatusCode, bytes.ReplaceAll(body, []byte(strings.TrimPrefix(base, "http://")), []byte("HOST"))
}

// response is what a migration must keep: the status and the body, with
// the server's own address and name taken out.
func response(t *testing.T, base, path string) string {
	t.Helper()
	status, code, body := fetch(t, base, path)
	if code >= 400 {
		body = nil // error pages name their server
	}
	return status + "\n" + string(body)
}

// TestMigrateEndToEnd starts the old setup (gitweb and a script under
// Apache mod_cgid; the same under nginx + fcgiwrap), records responses,
// runs ferry migrate on the configuration, starts ferry with the
// ferry.toml it wrote, and wants the same responses: from ferry alone, and
// through the web server running the front.conf migrate wrote.
func TestMigrateEndToEnd(t *testing.T) {
	peerstest.Need(t, "perl", "git", "gitweb", "cgit")
	for _, tc := range []struct {
		name string
		// old starts the old setup and returns its URL and the
		// configuration file to migrate.
		old func(t *testing.T, cgiDir string, env map[string]string) (base, server, conf string)
	}{
		{"apache-mod_cgid", func(t *testing.T, cgiDir string, env map[string]string) (string, string, string) {
			s := peerstest.ApacheCGI(t, peers.ApacheCGIConfig{CGIDir: cgiDir, Env: env})
			// the httpd.conf Apache runs with, as it is
			return s.URL, "apache", filepath.Join(s.Dir, "httpd.conf")
		}},
		{"nginx-fcgiwrap", func(t *testing.T, cgiDir string, env map[string]string) (string, string, string) {
			s := peerstest.NginxFcgiwrap(t, peers.NginxFcgiwrapConfig{CGIDir: cgiDir, Env: env})
			// The site as Debian's fcgiwrap example writes it: the
			// generated nginx.conf above maps names through a map block,
			// which migrate reports as untranslatable.
			var b strings.Builder
			b.WriteString("server {\n    listen 80;\n    location /cgi-bin/ {\n        include fastcgi_params;\n")
			b.WriteString("        fastcgi_param SCRIPT_FILENAME " + filepath.Dir(cgiDir) + "$fastcgi_script_name;\n")
			for k, v := range env {
				b.WriteString("        fastcgi_param " + k + " " + v + ";\n")
			}
			b.WriteString("        fastcgi_param HTTP_PROXY \"\";\n        fastcgi_pass unix:/run/fcgiwrap.socket;\n    }\n}\n")
			conf := filepath.Join(t.TempDir(), "fcgiwrap-site.conf")
			if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			return s.URL, "nginx", conf
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cgiDir, env, paths := migrateSite(t)
			base, server, conf := tc.old(t, cgiDir, env)
			want := map[string]string{}
			for _, p := range paths {
				want[p] = response(t, base, p)
			}
			out := t.TempDir()
			var stdout, stderr bytes.Buffer
			if code := run([]string{"migrate", server, conf, "--out", out}, &stdout, &stderr); code == 2 {
				t.Fatalf("ferry migrate %s %s: exit 2\n%s%s", server, conf, stdout.String(), stderr.String())
			}
			if server == "apache" {
				// env: SetEnv lines of the generated httpd.conf, carried into ferry.toml
				toml, err := os.ReadFile(filepath.Join(out, "ferry.toml"))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(toml), "GITWEB_CONFIG") {
					t.Fatalf("ferry.toml lacks the SetEnv of httpd.conf:\n%s\n%s", toml, stdout.String())
				}
			}
			fastcgi := freeAddr(t) // for the front
			p := startFerryArgs(t, "--config", filepath.Join(out, "ferry.toml"), "--listen", "http://127.0.0.1:0", "--listen", "fastcgi://"+fastcgi)
			if server == "nginx" {
				// fcgiwrap answers 403 for a script that does not exist;
				// ferry, as Apache, 404 (docs/migrate/fcgiwrap.md)
				want["/cgi-bin/missing.cgi"] = strings.Replace(want["/cgi-bin/missing.cgi"], "403 Forbidden", "404 Not Found", 1)
				// the generated nginx.conf has no fastcgi_param HTTP_PROXY "":
				// the old setup hands the client's Proxy header to scripts
				// (httpoxy); ferry never does
				env := paths[0]
				if !strings.Contains(want[env], "proxy=http://attacker.example:3128") {
					t.Fatalf("the old setup no longer passes Proxy; the test's premise changed:\n%s", want[env])
				}
				want[env] = strings.Replace(want[env], "proxy=http://attacker.example:3128", "proxy=", 1)
			}
			for _, path := range paths {
				if got := response(t, p.URL, path); got != want[path] {
					t.Errorf("GET %s through ferry:\n%s\nwant (%s):\n%s", path, got, tc.name, want[path])
				}
			}

			// The reduced front: the web server runs the front.conf
			// migrate wrote, adapted only to the port of ferry's FastCGI
			// listener, and hands the paths to ferry.
			b, err := os.ReadFile(filepath.Join(out, "front.conf"))
			if err != nil {
				t.Fatal(err)
			}
			front := strings.ReplaceAll(string(b), "127.0.0.1:9090", fastcgi)
			var f *peers.Server
			if server == "apache" {
				f = peerstest.ApacheFront(t, peers.ApacheFrontConfig{Conf: front})
			} else {
				f = peerstest.NginxFront(t, peers.NginxFrontConfig{Server: front})
			}
			for _, path := range paths {
				if got := response(t, f.URL, path); got != want[path] {
					logs, _ := f.Logs()
					t.Errorf("GET %s through %s's front.conf and ferry:\n%s\nwant (%s):\n%s\nfront.conf:\n%s\nlogs:\n%s", path, server, got, tc.name, want[path], front, logs)
				}
			}
		})
	}
}
