package main

import (
	"context"
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
