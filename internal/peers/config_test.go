package peers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAddrInUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct {
		log  string
		want bool
	}{
		{"(98)Address already in use: AH00072: make_sock: could not bind to address 127.0.0.1:53637\n", true},
		{"nginx: [emerg] bind() to 127.0.0.1:38047 failed (98: Address already in use)\n", true},
		{"AH00526: Syntax error on line 11\n", false},
	} {
		path := filepath.Join(dir, "log")
		if err := os.WriteFile(path, []byte(tt.log), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := addrInUse([]string{path, filepath.Join(dir, "missing")}); got != tt.want {
			t.Errorf("addrInUse(%q) = %v; want %v", tt.log, got, tt.want)
		}
	}
}

func TestCheckEnv(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{"CGIT_CONFIG": `/x/"y"\z`}, true},
		{map[string]string{"BAD NAME": "x"}, false},
		{map[string]string{"X": "${HOME}"}, false},
		{map[string]string{"X": "a\nb"}, false},
	} {
		if err := checkEnv(tt.env); (err == nil) != tt.want {
			t.Errorf("checkEnv(%q) = %v; want ok %v", tt.env, err, tt.want)
		}
	}
	if got, want := quote(`/x/"y"\z`), `"/x/\"y\"\\z"`; got != want {
		t.Errorf("quote = %s; want %s", got, want)
	}
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"8.2", "8.10", -1},
		{"8.2", "8.2", 0},
		{"83", "82", 1},
		{"7.4", "8.2", -1},
		{"8", "8.0", -1},
	} {
		if got := compareVersions(tt.a, tt.b); max(-1, min(got, 1)) != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d; want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestParseBackend(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in      string
		network string // "" for an error
	}{
		{"127.0.0.1:9000", "tcp"},
		{"[::1]:9000", "tcp"},
		{"unix:/run/app.sock", "unix"},
		{"unix:app.sock", ""},
		{"127.0.0.1", ""},
		{"127.0.0.1:0", ""},
		{":9000", ""},
		{"unix:/a|b", ""},
		{"127.0.0.1:9000;", ""},
		{"", ""},
	} {
		b, err := parseBackend("Backend", tt.in, false)
		if got := b.network; err != nil && got != "" || got != tt.network {
			t.Errorf("parseBackend(%q) = %q, %v; want network %q", tt.in, got, err, tt.network)
		}
		if err == nil && b.String() != tt.in {
			t.Errorf("parseBackend(%q).String() = %q", tt.in, b.String())
		}
	}
}

func TestNginxFastCGIConfigParams(t *testing.T) {
	t.Parallel()
	cfg := NginxFastCGIConfig{Backend: "127.0.0.1:9000", Params: map[string]string{"QUERY_STRING": "x", "B": "y"}}
	site := cfg.site(backend{"tcp", "127.0.0.1:9000"})
	site.dir, site.root = "/d", "/r"
	text := site.config(1)
	for _, want := range []string{
		`fastcgi_param  QUERY_STRING       "x";`,
		`fastcgi_param  B                  "y";`,
		`fastcgi_param  SCRIPT_FILENAME    $document_root$fastcgi_script_name;`,
		`fastcgi_param  HTTPS              $https if_not_empty;`,
		`fastcgi_pass "127.0.0.1:9000";`,
		`location "/" {`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("config lacks %q:\n%s", want, text)
		}
	}
	for _, unwanted := range []string{"$query_string", "PATH_INFO", "keepalive", "location / { return 404; }"} {
		if strings.Contains(text, unwanted) {
			t.Errorf("config has %q:\n%s", unwanted, text)
		}
	}
}

func TestNginxSCGIConfig(t *testing.T) {
	t.Parallel()
	cfg := NginxSCGIConfig{Backend: "unix:/run/app.sock", Locations: []string{"/app/"}, NoBuffering: true,
		Params: map[string]string{"SERVER_NAME": "example.test", "B": "y"}}
	site := cfg.site(backend{"unix", "/run/app.sock"})
	site.dir, site.root = "/d", "/r"
	text := site.config(1)
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

// TestPHPFPMArgs: without SystemINI php-fpm reads no php.ini and loads
// OPcache itself; with it, php.ini and conf.d (which loads OPcache) are
// read, as the packaged service reads them.
func TestPHPFPMArgs(t *testing.T) {
	for _, system := range []bool{false, true} {
		args := strings.Join(phpfpmArgs("/x/php-fpm.conf", false, system), " ")
		own := strings.Contains(args, "-n ") && strings.Contains(args, "zend_extension=opcache")
		if own == system || !strings.Contains(args, "-F -y /x/php-fpm.conf") || strings.Contains(args, "-R") {
			t.Errorf("phpfpmArgs(systemINI %v) = %s", system, args)
		}
	}
	if args := phpfpmArgs("/x/php-fpm.conf", true, true); args[len(args)-1] != "-R" {
		t.Errorf("phpfpmArgs as root = %q; want -R", args)
	}
}
