package peers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNginxSCGIConfig(t *testing.T) {
	t.Parallel()
	cfg := NginxSCGIConfig{Backend: "unix:/run/app.sock", Locations: []string{"/app/"}, NoBuffering: true,
		Params: map[string]string{"SERVER_NAME": "example.test", "B": "y"}}
	text := nginxSCGIConfig(nginxSCGIParams{dir: "/d", root: "/r", port: 1, backend: backend{"unix", "/run/app.sock"}, cfg: &cfg})
	for _, want := range []string{
		`scgi_param  SCGI             1;`,
		`scgi_param  SERVER_NAME      "example.test";`,
		`scgi_param  B                "y";`,
		`scgi_param  HTTPS            $https if_not_empty;`,
		`scgi_pass "unix:/run/app.sock";`,
		`scgi_buffering off;`,
		`scgi_temp_path "/d/tmp/scgi";`,
		`location "/app/" {`,
		`location / { return 404; }`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("config lacks %q:\n%s", want, text)
		}
	}
	for _, unwanted := range []string{"$server_name", "HTTP_HOST", "fastcgi_param"} {
		if strings.Contains(text, unwanted) {
			t.Errorf("config has %q:\n%s", unwanted, text)
		}
	}
}

func TestLighttpdConfig(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		be   backend
		want string
	}{
		{backend{"tcp", "127.0.0.1:4000"}, `scgi.server = ("/cgi-bin/" => (("host" => "127.0.0.1", "port" => 4000, "check-local" => "disable")))`},
		{backend{"tcp", "[::1]:4000"}, `"host" => "::1", "port" => 4000`},
		{backend{"unix", "/run/a.sock"}, `scgi.server = ("/cgi-bin/" => (("socket" => "/run/a.sock", "check-local" => "disable")))`},
	} {
		cfg := LighttpdSCGIConfig{StreamResponseBody: 2}
		text := lighttpdConfig(lighttpdParams{dir: "/d", prefix: "/cgi-bin/", port: 8080, backend: tt.be, cfg: &cfg})
		for _, want := range []string{tt.want, `$HTTP["url"] != "/ferry-peers-ready" {`, "server.stream-response-body = 2", `server.upload-dirs = ("/d/tmp")`} {
			if !strings.Contains(text, want) {
				t.Errorf("config lacks %q:\n%s", want, text)
			}
		}
	}
}

func TestUWSGIArgs(t *testing.T) {
	t.Parallel()
	args := strings.Join(uwsgiArgs(&UWSGIConfig{Callable: "app", Mount: "/app", Env: map[string]string{"B": "2", "A": "1"}}, "/w/app.py", "/d/u.sock"), " ")
	want := "--plugin python3 --scgi-socket /d/u.sock --master --processes 2 --die-on-term --need-app --strict --chdir /w --callable app --mount /app=/w/app.py --manage-script-name --env A=1 --env B=2"
	if args != want {
		t.Errorf("uwsgiArgs = %q; want %q", args, want)
	}
}

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
		u := RunUWSGI(t, UWSGIConfig{WSGIFile: file, Listen: listen, Processes: 2})
		if listen == "" && (u.Network != "unix" || u.Listen != "unix:"+u.Address) ||
			listen != "" && (u.Network != "tcp" || strings.HasSuffix(u.Address, ":0")) {
			t.Errorf("Listen %q: got Listen %q, Network %q, Address %q", listen, u.Listen, u.Network, u.Address)
		}
		waitFor(t, "uwsgi's master and 2 workers", func() bool { return len(members(t, u.Process)) == 3 })
		stopAndCheck(t, u.Stop, u.Process)
	}
	if _, err := StartUWSGI(t.Context(), t.TempDir(), UWSGIConfig{WSGIFile: filepath.Join(dir, "missing.py")}); err == nil {
		t.Errorf("StartUWSGI with a missing file succeeded")
	}
}

func TestLighttpdNginxApacheSCGIRefuseBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, err := range map[string]error{
		"nginx no backend": func() error { _, err := StartNginxSCGI(t.Context(), dir, NginxSCGIConfig{}); return err }(),
		"nginx bad location": func() error {
			_, err := StartNginxSCGI(t.Context(), dir, NginxSCGIConfig{Backend: "127.0.0.1:1", Locations: []string{"x"}})
			return err
		}(),
		"apache relative unix": func() error {
			_, err := StartApacheProxySCGI(t.Context(), dir, ApacheProxySCGIConfig{Backend: "unix:x.sock"})
			return err
		}(),
		"lighttpd stream 3": func() error {
			_, err := StartLighttpdSCGI(t.Context(), dir, LighttpdSCGIConfig{Backend: "127.0.0.1:1", StreamResponseBody: 3})
			return err
		}(),
		"lighttpd quote": func() error {
			_, err := StartLighttpdSCGI(t.Context(), dir, LighttpdSCGIConfig{Backend: "127.0.0.1:1", Prefix: `/a"b/`})
			return err
		}(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
