package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ferrygw/ferry/internal/conformance"
	"github.com/ferrygw/ferry/internal/fcgitest"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
)

// conformanceDir copies the conformance scripts and the git apps into a
// fresh directory and builds the git fixture.
func conformanceDir(t *testing.T) (string, *conformance.GitFixture) {
	t.Helper()
	dir := testdir.Open(t) // the scripts run as www-data when the tests run as root
	cgiDir := filepath.Join(dir, "cgi-bin")
	if err := conformance.CopyScripts(cgiDir); err != nil {
		t.Fatal(err)
	}
	if err := conformance.InstallGitApps(cgiDir); err != nil {
		t.Fatal(err)
	}
	git, err := conformance.NewGitFixture(context.Background(), filepath.Join(dir, "git"))
	if err != nil {
		t.Fatal(err)
	}
	return cgiDir, git
}

// TestFastCGIBehindWebServers runs ferry as the FastCGI application (the
// fcgiwrap job) behind real nginx and Apache, and the CGI conformance suite
// through them.
func TestFastCGIBehindWebServers(t *testing.T) {
	peerstest.Need(t, "perl", "python3", "git", "gitweb", "cgit")
	for _, tc := range []struct {
		name   string
		listen func(t *testing.T) (listen, backend string)
		front  func(t *testing.T, backend string) string
		// cannot lists the checks the front itself makes impossible.
		cannot []string
	}{
		{
			name: "nginx-tcp",
			listen: func(t *testing.T) (string, string) {
				port, err := peers.FreePort()
				if err != nil {
					t.Fatal(err)
				}
				addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
				return "fastcgi://" + addr, addr
			},
			front: func(t *testing.T, backend string) string {
				return peerstest.NginxFastCGI(t, peers.NginxFastCGIConfig{Backend: backend, Locations: []string{"/cgi-bin/"}}).URL
			},
		},
		{
			name: "nginx-unix-keepalive",
			listen: func(t *testing.T) (string, string) {
				sock := filepath.Join(t.TempDir(), "ferry.sock")
				return "fastcgi+unix://" + sock, "unix:" + sock
			},
			front: func(t *testing.T, backend string) string {
				return peerstest.NginxFastCGI(t, peers.NginxFastCGIConfig{Backend: backend, Locations: []string{"/cgi-bin/"}, KeepAlive: 8}).URL
			},
		},
		{
			name: "apache-mod_proxy_fcgi",
			listen: func(t *testing.T) (string, string) {
				port, err := peers.FreePort()
				if err != nil {
					t.Fatal(err)
				}
				addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
				return "fastcgi://" + addr, addr
			},
			front: func(t *testing.T, backend string) string {
				return peerstest.ApacheProxyFCGI(t, peers.ApacheProxyFCGIConfig{Backend: backend, Prefix: "/cgi-bin/", FlushPackets: true}).URL
			},
			// mod_proxy_fcgi watches only the backend while it waits for
			// output: a client that goes away is noticed at the next write,
			// and a script that writes nothing more keeps its connection, so
			// no FastCGI application behind Apache can see the disconnect.
			cannot: []string{"disconnect"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen, backend := tc.listen(t)
			conformanceThroughFront(t, listen, func() string { return tc.front(t, backend) }, tc.cannot)
		})
	}
}

// conformanceThroughFront runs "ferry serve --listen listen" with the
// conformance cgi-bin mounted at /cgi-bin/, puts the web server front
// starts (it returns its base URL) in front, and runs the CGI conformance
// suite through it: every check must pass but those in cannot, which the
// front itself makes impossible.
func conformanceThroughFront(t *testing.T, listen string, front func() string, cannot []string) {
	t.Helper()
	cgiDir, git := conformanceDir(t)
	args := []string{"--listen", listen, "--mount", "/cgi-bin/=cgi:" + cgiDir, "--cgi-kill-grace", "1s"}
	for _, kv := range git.Env {
		args = append(args, "--env", kv)
	}
	p := startFerryArgs(t, args...)
	base := front()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	tg := conformance.Target{
		BaseURL:   base,
		ScriptDir: cgiDir,
		Log:       p.logs.String,
		Git:       git,
		Client:    &http.Client{Transport: tr},
	}
	if cannot == nil {
		conformance.Run(t, tg)
	} else {
		passed, failed, errs := conformance.Score(t.Context(), tg)
		for _, name := range failed {
			if !slices.Contains(cannot, name) {
				t.Errorf("%v", errs[name])
			}
		}
		for _, name := range cannot {
			if !slices.Contains(failed, name) {
				t.Errorf("check %q passed through this front; take it off the list of those it cannot pass", name)
			}
		}
		t.Logf("%d of %d checks pass; %q cannot pass through this front", len(passed), len(passed)+len(failed), cannot)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v:\n%s", err, p.logs)
	}
	if strings.Contains(p.logs.String(), "panic") {
		t.Errorf("ferry logged a panic:\n%s", p.logs)
	}
	for _, scheme := range []string{"fastcgi+unix://", "scgi+unix://"} {
		if sock, ok := strings.CutPrefix(listen, scheme); ok {
			if _, err := os.Stat(sock); err == nil {
				t.Errorf("socket file left behind after shutdown")
			}
		}
	}
}

// TestFastCGIRawConformance runs the raw FastCGI suite (GET_VALUES,
// UNKNOWN_TYPE, padding, multiplexing, keep-conn, abort, lying lengths, a
// 10 MB params block) against "ferry serve --listen fastcgi://", with ferry's
// own resident memory measured.
func TestFastCGIRawConformance(t *testing.T) {
	scripts, err := fcgitest.Scripts()
	if err != nil {
		t.Fatal(err)
	}
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			listen := "fastcgi://127.0.0.1:0"
			sock := filepath.Join(t.TempDir(), "ferry.sock")
			if network == "unix" {
				listen = "fastcgi+unix://" + sock + "?mode=0600"
			}
			p := startFerryArgs(t, "--listen", listen, "--mount", "/=cgi:"+scripts, "--cgi-kill-grace", "1s", "--access-log=false")
			addr := strings.TrimPrefix(p.URL, "fastcgi://")
			if network == "unix" {
				addr = sock
				if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("socket %s: %v, mode %v; want 0600", sock, err, fi.Mode().Perm())
				}
			}
			fcgitest.Run(t, fcgitest.Target{Network: network, Address: addr, PID: p.cmd.Process.Pid})
			if err := p.stop(t, syscall.SIGTERM); err != nil {
				t.Errorf("ferry exited with %v", err)
			}
			if leakcheck.Alive(p.cmd.Process.Pid) {
				t.Errorf("ferry still running")
			}
		})
	}
}

// TestFastCGILocalRedirectBehindNginx runs ferry as nginx's FastCGI
// application for a cgi-bin beside pages nginx serves itself, and checks
// scripts' local redirects (RFC 3875 § 6.2.2): one to a script of the
// mount is served inside ferry; one to a path ferry does not serve (the
// site's /index.html) reaches the client as 302, as fcgiwrap's does, where
// ferry answered 404; and with from=script-filename, where only nginx maps
// URLs to scripts, every one is a 302, where the script ran 11 times and
// ended in 500.
func TestFastCGILocalRedirectBehindNginx(t *testing.T) {
	root := testdir.Open(t)
	cgiDir := filepath.Join(root, "cgi-bin")
	runs := filepath.Join(root, "runs")
	for name, body := range map[string]string{
		"env.sh":  "printf 'Content-Type: text/plain\\n\\nenv %s\\n' \"$QUERY_STRING\"\n",
		"home.sh": "printf 'Location: /index.html\\n\\n'\n",
		"loc.sh":  "echo run >> " + runs + "\nprintf 'Location: /cgi-bin/env.sh?x=1\\n\\n'\n",
	} {
		if err := os.MkdirAll(cgiDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cgiDir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("home page\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name  string
		mount string
		want  map[string]string // path: status and Location or body
	}{
		{"dir", "/cgi-bin/=cgi:" + cgiDir, map[string]string{
			"/cgi-bin/home.sh": "302 /index.html",
			"/cgi-bin/loc.sh":  "200 env x=1\n",
		}},
		{"script-filename", "/=cgi:" + cgiDir + "?from=script-filename", map[string]string{
			"/cgi-bin/home.sh": "302 /index.html",
			"/cgi-bin/loc.sh":  "302 /cgi-bin/env.sh?x=1",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(runs)
			sock := filepath.Join(t.TempDir(), "ferry.sock")
			p := startFerryArgs(t, "--listen", "fastcgi+unix://"+sock, "--mount", tc.mount)
			front := peerstest.NginxFront(t, peers.NginxFrontConfig{Root: root, Server: `
    location /cgi-bin/ {
      include fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_pass unix:` + sock + `;
    }`})
			for path, want := range tc.want {
				res, err := noFollow.Get(front.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				got := strconv.Itoa(res.StatusCode) + " " + res.Header.Get("Location")
				if res.StatusCode == http.StatusOK {
					got = "200 " + string(b)
				}
				if got != want {
					t.Errorf("GET %s: %q; want %q\n%s", path, got, want, p.logs)
				}
			}
			if b, _ := os.ReadFile(runs); string(b) != "run\n" {
				t.Errorf("loc.sh ran %d times; want once", strings.Count(string(b), "run"))
			}
			res, err := http.Get(front.URL + "/cgi-bin/home.sh")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || string(b) != "home page\n" {
				t.Errorf("GET /cgi-bin/home.sh, redirects followed: %d %q; want nginx's /index.html", res.StatusCode, b)
			}
		})
	}
}
