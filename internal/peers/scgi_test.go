package peers_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// TestUWSGIStartStop starts uwsgi on a TCP port and a unix socket and
// checks that Stop leaves no process of its group behind.
func TestUWSGIStartStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "app.py")
	app := "def application(env, start):\n    start('200 OK', [('Content-Type', 'text/plain')])\n    return [b'ok']\n"
	if err := os.WriteFile(file, []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, listen := range []string{"", "127.0.0.1:0"} {
		u := peerstest.RunUWSGI(t, peers.UWSGIConfig{WSGIFile: file, Listen: listen, Processes: 2})
		if listen == "" && (u.Network != "unix" || u.Listen != "unix:"+u.Address) ||
			listen != "" && (u.Network != "tcp" || strings.HasSuffix(u.Address, ":0")) {
			t.Errorf("Listen %q: got Listen %q, Network %q, Address %q", listen, u.Listen, u.Network, u.Address)
		}
		waitFor(t, "uwsgi's master and 2 workers", func() bool { return len(members(t, u.Process)) == 3 })
		stopAndCheck(t, u.Stop, u.Process)
	}
	if _, err := peers.StartUWSGI(t.Context(), t.TempDir(), peers.UWSGIConfig{WSGIFile: filepath.Join(dir, "missing.py")}); err == nil {
		t.Errorf("StartUWSGI with a missing file succeeded")
	}
}

func TestLighttpdNginxApacheSCGIRefuseBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, err := range map[string]error{
		"nginx no backend": func() error { _, err := peers.StartNginxSCGI(t.Context(), dir, peers.NginxSCGIConfig{}); return err }(),
		"nginx bad location": func() error {
			_, err := peers.StartNginxSCGI(t.Context(), dir, peers.NginxSCGIConfig{Backend: "127.0.0.1:1", Locations: []string{"x"}})
			return err
		}(),
		"apache relative unix": func() error {
			_, err := peers.StartApacheProxySCGI(t.Context(), dir, peers.ApacheProxySCGIConfig{Backend: "unix:x.sock"})
			return err
		}(),
		"lighttpd stream 3": func() error {
			_, err := peers.StartLighttpdSCGI(t.Context(), dir, peers.LighttpdSCGIConfig{Backend: "127.0.0.1:1", StreamResponseBody: 3})
			return err
		}(),
		"lighttpd quote": func() error {
			_, err := peers.StartLighttpdSCGI(t.Context(), dir, peers.LighttpdSCGIConfig{Backend: "127.0.0.1:1", Prefix: `/a"b/`})
			return err
		}(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// startSCGIDumper starts an SCGI application on a 127.0.0.1 port that
// answers every request with the headers it got, one "NAME=VALUE" line
// each, sorted (the format of dumpParams), and returns its address.
func startSCGIDumper(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				r := bufio.NewReader(c)
				// The request is a netstring "LEN:HEADERS," of NUL-terminated names and values.
				size, err := r.ReadString(':')
				if err != nil {
					return
				}
				n, err := strconv.Atoi(strings.TrimSuffix(size, ":"))
				if err != nil {
					return
				}
				headers := make([]byte, n+1)
				if _, err := io.ReadFull(r, headers); err != nil {
					return
				}
				f := strings.Split(string(headers[:n]), "\x00")
				var lines []string
				for i := 0; i+1 < len(f); i += 2 {
					lines = append(lines, f[i]+"="+f[i+1])
				}
				slices.Sort(lines)
				// The front sees a write error as a failed request; nothing to do here.
				_, _ = io.WriteString(c, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"+strings.Join(lines, "\n")+"\n")
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestApacheProxySCGIPathInfo checks that PathInfo makes mod_proxy_scgi
// send PATH_INFO. It reads proxy-scgi-pathinfo before SetEnv would set it.
func TestApacheProxySCGIPathInfo(t *testing.T) {
	t.Parallel()
	backend := startSCGIDumper(t)
	for _, tt := range []struct {
		pathInfo bool
		want     map[string]string
	}{
		{false, map[string]string{"SCRIPT_NAME": "/app/x/y", "PATH_INFO": "", "QUERY_STRING": "q=1"}},
		// mod_proxy_scgi guesses the whole path, an empty SCRIPT_NAME.
		{true, map[string]string{"SCRIPT_NAME": "*", "PATH_INFO": "/app/x/y", "QUERY_STRING": "q=1", "proxy-scgi-pathinfo": "1"}},
	} {
		t.Run(fmt.Sprintf("PathInfo=%v", tt.pathInfo), func(t *testing.T) {
			t.Parallel()
			s := peerstest.ApacheProxySCGI(t, peers.ApacheProxySCGIConfig{Backend: backend, Prefix: "/app/", PathInfo: tt.pathInfo})
			got := dumpParams(t, s.URL, "/app/x/y?q=1")
			checkParams(t, got, tt.want)
		})
	}
}
