package peers_test

import (
	"os"
	"path/filepath"
	"strings"
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
