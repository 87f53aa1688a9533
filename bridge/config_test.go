package bridge

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
)

// badConfigs are malformed configuration files, each with the exact
// message ParseConfig must give for it.
var badConfigs = []struct {
	name, file, want string
}{
	{"syntax", "listen = [\n", "f.toml:1: TOML: array is incomplete"},
	{"syntax key", "root = \"/x\"\nroot = \"/y\"\n", "f.toml:2: root: TOML: key root is already defined"},
	{"unknown top key", "roots = \"/var/www\"\n", "f.toml:1: roots: unknown key (did you mean root?)"},
	{"unknown key far", "frobnicate = 1\n", "f.toml:1: frobnicate: unknown key; the top level takes listen, client_header_timeout, client_body_timeout, send_timeout, keepalive_timeout, max_conns, root, root_symlinks, admin, pid_file, cpus, shutdown_timeout, log, defaults, mount"},
	{"misspelt mount option", "[mount.\"/\"]\nbackend = \"fastcgi://127.0.0.1:9000\"\n\nmax_con = 4\n", `f.toml:4: mount."/".max_con: unknown key (did you mean max_conns?)`},
	{"listen not a list", "listen = \"http://127.0.0.1:8080\"\n", `f.toml:1: listen: want a list of addresses, not "http://127.0.0.1:8080"`},
	{"listen no scheme", "listen = [\"127.0.0.1:8080\"]\n", "f.toml:1: listen: no scheme; did you mean http://127.0.0.1:8080 (or fastcgi://, scgi://)?"},
	{"listen back only", "listen = [\"fastcgi+exec:/bin/true\"]\n", "f.toml:1: listen: ferry listens on http://, https://, fastcgi://, fastcgi+unix://, scgi://, scgi+unix://, cgi:, fastcgi+fd://, http+fd://, scgi+fd://"},
	{"two listens one bad", "listen = [\"http://127.0.0.1:1\", \"scgi+unix://rel.sock\"]\n", `f.toml:1: listen: "scgi+unix://rel.sock": want scgi+unix:///path/to.sock (three slashes)`},
	{"listen port too large", "listen = [\"http://127.0.0.1:99999\"]\n", "f.toml:1: listen: port 99999: want a port number up to 65535"},
	{"admin port too large", "admin = \"http://127.0.0.1:70000\"\n", "f.toml:1: admin: port 70000: want a port number up to 65535"},
	{"backend port too large", "[mount.\"/x/\"]\nbackend = \"fastcgi://127.0.0.1:65536\"\n", `f.toml:2: mount."/x/".backend: port 65536: want a port number up to 65535`},
	{"bad unix mode", "listen = [\"scgi+unix:///tmp/x.sock?mode=999\"]\n", `f.toml:1: listen: mode="999": want an octal mode such as 0660`},
	{"admin is a front scheme", "admin = \"fastcgi://127.0.0.1:2020\"\n", "f.toml:1: admin: the admin listener takes http://, unix://"},
	{"admin with a path", "admin = \"http://127.0.0.1:2020/metrics\"\n", "f.toml:1: admin: the admin listener takes no path; its paths are /metrics, /status, /healthz, /readyz"},
	{"shutdown zero", "shutdown_timeout = \"0s\"\n", `f.toml:1: shutdown_timeout: want a duration above zero, such as 10s, not "0s"`},
	{"shutdown a number", "shutdown_timeout = 30\n", "f.toml:1: shutdown_timeout: want a duration such as 10s, not the number 30"},
	{"cpus negative", "cpus = -1\n", "f.toml:1: cpus: want a whole number, 0 or more, not the number -1"},
	{"cpus too many", "cpus = 2000\n", "f.toml:1: cpus: want at most 1024, not the number 2000"},
	{"cpus text", "cpus = \"auto\"\n", `f.toml:1: cpus: want a whole number, 0 or more, not "auto"`},
	{"log format", "[log]\nformat = \"xml\"\n", `f.toml:2: log.format: want json, console or auto, not "xml"`},
	{"log unknown", "[log]\nlevle = \"debug\"\n", "f.toml:2: log.levle: unknown key (did you mean level?)"},
	{"log not a table", "log = \"json\"\n", `f.toml:1: log: want a table ([log]), not "json"`},
	{"access_log text", "[log]\naccess_log = \"yes\"\n", `f.toml:2: log.access_log: want true or false, not "yes"`},
	{"bad timeout", "[defaults]\ncgi_timeout = \"abc\"\n", `f.toml:2: defaults.cgi_timeout: want a duration such as 30s (0: none), not "abc"`},
	{"bad size", "[defaults]\nmax_request_body = \"10Q\"\n", `f.toml:2: defaults.max_request_body: want a size such as 1048576, 512K, 10M or 1GiB, not "10Q"`},
	{"negative count", "[defaults]\ncgi_max_queue = -1\n", "f.toml:2: defaults.cgi_max_queue: want a whole number, 0 or more, not the number -1"},
	{"env not a table", "[defaults]\nenv = [\"A=1\"]\n", `f.toml:2: defaults.env: want a table of NAME = "value", not a list`},
	{"env number", "[defaults]\nenv = { A = 1 }\n", `f.toml:2: defaults.env: want a table of NAME = "value", not a table holding A = the number 1`},
	{"env name", "[defaults]\nenv = { \"A=B\" = \"1\" }\n", `f.toml:2: defaults.env: want a table of NAME = "value", not a table with the name "A=B"`},
	{"pass_env number", "[defaults]\npass_env = [\"PATH\", 3]\n", `f.toml:2: defaults.pass_env: want a list of names, not a list holding the number 3`},
	{"listen number", "listen = [\"http://127.0.0.1:1\", 8080]\n", `f.toml:1: listen: want a list of addresses, not a list holding the number 8080`},
	{"pass_env with =", "[defaults]\npass_env = [\"A=1\"]\n", "f.toml:2: defaults.pass_env: want a variable name"},
	{"unknown setting", "[defaults]\ncgi_timout = \"1s\"\n", "f.toml:2: defaults.cgi_timout: unknown key (did you mean cgi_timeout?)"},
	{"mount not a table", "mount = \"/x\"\n", `f.toml:1: mount: want tables such as [mount."/cgi-bin/"], not "/x"`},
	{"mount prefix", "[mount.cgi-bin]\nbackend = \"cgi:/srv\"\n", "f.toml:1: mount.cgi-bin: a mount prefix starts with /"},
	{"mount no backend", "[mount.\"/x/\"]\nmax_conns = 1\n", `f.toml:1: mount."/x/": no backend; want backend = "ADDRESS", such as "cgi:/usr/lib/cgi-bin" or "fastcgi://127.0.0.1:9000"`},
	{"mount backend number", "[mount.\"/x/\"]\nbackend = 9000\n", `f.toml:2: mount."/x/".backend: want an address, not the number 9000`},
	{"mount backend scheme", "[mount.\"/x/\"]\nbackend = \"gopher://h:70\"\n", `f.toml:2: mount."/x/".backend: unknown scheme "gopher"; want http://, https://, fastcgi://, fastcgi+unix://, fastcgi+exec:, scgi://, scgi+unix://, cgi:, wsgi:, psgi:, fastcgi+fd://, http+fd://, scgi+fd://, unix://`},
	{"mount backend front", "[mount.\"/x/\"]\nbackend = \"fastcgi+fd://0\"\n", `f.toml:2: mount."/x/".backend: fastcgi+fd is not a backend; ferry's backends are http://, fastcgi://, fastcgi+unix://, fastcgi+exec:, scgi://, scgi+unix://, cgi:, wsgi:, psgi:`},
	{"mount option in address", "[mount.\"/x/\"]\nbackend = \"cgi:/srv?bogus=1\"\n", `f.toml:2: mount."/x/".backend: unknown option "bogus"; cgi: takes symlinks, from, persist, workers, max_requests, min_workers, idle_timeout, start_timeout, max_rss`},
	{"mount option twice", "[mount.\"/x/\"]\nbackend = \"scgi://127.0.0.1:4000?max_conns=2\"\nmax_conns = 3\n", `f.toml:3: mount."/x/".max_conns: given in the backend address too`},
	{"mount option type", "[mount.\"/x/\"]\nbackend = \"scgi://127.0.0.1:4000\"\nmax_conns = \"3\"\n", `f.toml:3: mount."/x/".max_conns: want a positive number, not "3"`},
	{"mount option zero", "[mount.\"/x/\"]\nbackend = \"scgi://127.0.0.1:4000\"\nmax_conns = 0\n", `f.toml:3: mount."/x/".max_conns: want a positive number, not the number 0`},
	{"mount option value", "[mount.\"/x/\"]\nbackend = \"cgi:/srv\"\nfrom = \"path\"\n", `f.toml:3: mount."/x/".from: want script-filename, not "path"`},
	{"mount setting unused", "[mount.\"/\"]\nbackend = \"fastcgi://127.0.0.1:9000\"\ncgi_timeout = \"1s\"\n", `f.toml:3: mount."/".cgi_timeout: not used by fastcgi:// mounts; they take env, cgi_queue_timeout, max_request_body, max_header_line, spool_memory, temp_dir`},
	{"start_timeout zero", "[mount.\"/php/\"]\nbackend = \"fastcgi+exec:/usr/bin/php-cgi\"\nstart_timeout = \"0s\"\n", `f.toml:3: mount."/php/".start_timeout: want a duration such as 10s, not "0s"`},
	{"start_timeout remote", "[mount.\"/\"]\nbackend = \"fastcgi://127.0.0.1:9000\"\nstart_timeout = \"1m\"\n", `f.toml:3: mount."/".start_timeout: unknown key; fastcgi:// mounts takes backend, max_conns, read_timeout, ext, index, front, alias, env, cgi_queue_timeout, max_request_body, max_header_line, spool_memory, temp_dir`},
	{"start_timeout persist=php zero", "[mount.\"/x/\"]\nbackend = \"cgi:/srv\"\npersist = \"php\"\nstart_timeout = \"0s\"\n", `f.toml:4: mount."/x/".start_timeout: want a duration such as 10s, not "0s"`},
	{"start_timeout persist=perl", "[mount.\"/x/\"]\nbackend = \"cgi:/srv\"\npersist = \"perl\"\nstart_timeout = \"30s\"\n", `f.toml:4: mount."/x/".start_timeout: needs persist=php, not persist=perl`},
	{"start_timeout before persist=perl", "[mount.\"/x/\"]\nbackend = \"cgi:/srv\"\nstart_timeout = \"30s\"\npersist = \"perl\"\n", `f.toml:3: mount."/x/".start_timeout: needs persist=php, not persist=perl`},
	{"start_timeout no persist", "[mount.\"/x/\"]\nbackend = \"cgi:/srv\"\nstart_timeout = \"30s\"\n", `f.toml:3: mount."/x/".start_timeout: needs persist=php`},
	{"workers without persist", "[mount.\"/x/\"]\nbackend = \"cgi:/srv\"\nworkers = 2\n", `f.toml:3: mount."/x/".workers: needs persist`},
	{"max_rss in address without persist", "[mount.\"/x/\"]\nbackend = \"cgi:/srv?max_rss=10M\"\n", `f.toml:2: mount."/x/".backend: option max_rss needs persist`},
	{"start_timeout in address persist=perl", "[mount.\"/x/\"]\nbackend = \"cgi:/srv?persist=perl&start_timeout=30s\"\n", `f.toml:2: mount."/x/".backend: option start_timeout needs persist=php, not persist=perl`},
	{"start_timeout in address, persist=perl in table", "[mount.\"/x/\"]\nbackend = \"cgi:/srv?start_timeout=30s\"\npersist = \"perl\"\n", `f.toml:2: mount."/x/".backend: option start_timeout needs persist=php, not persist=perl`},
	{"start_timeout wsgi", "[mount.\"/app/\"]\nbackend = \"wsgi:/srv/app.py\"\nstart_timeout = \"30s\"\n", `f.toml:3: mount."/app/".start_timeout: unknown key; wsgi: mounts takes backend, callable, python, chdir, pythonpath, workers, max_requests, min_workers, idle_timeout, max_rss, timeout, env, cgi_queue_timeout, max_request_body, max_header_line, spool_memory, temp_dir, pass_env, cgi_kill_grace, cgi_user, cgi_group`},
	{"mount setting bad", "[mount.\"/cgi-bin/\"]\nbackend = \"cgi:/srv\"\ncgi_kill_grace = \"-1s\"\n", `f.toml:3: mount."/cgi-bin/".cgi_kill_grace: want a duration above zero, such as 10s, not "-1s"`},
	{"mount key far", "[mount.\"/app/\"]\nbackend = \"http://127.0.0.1:5000\"\nworkers = 2\n", `f.toml:3: mount."/app/".workers: unknown key; http:// mounts takes backend, max_conns, read_timeout`},
	{"several", "root = 1\n[log]\nformat = \"xml\"\n", "f.toml:1: root: want text, not the number 1\nf.toml:3: log.format: want json, console or auto, not \"xml\""},
	{"date", "root = 1979-05-27\n", "f.toml:1: root: want text, not a date or time"},
	{"integer beyond 64 bits", "[defaults]\nmax_request_body = 99999999999999999999999\n", "f.toml:2: defaults.max_request_body: TOML: decimal number is too large to fit in a 64-bit signed integer"},
	{"hex integer beyond 64 bits", "[mount.\"/x/\"]\nbackend = \"scgi://127.0.0.1:4000\"\nmax_conns = 0x1ffffffffffffffff\n", `f.toml:3: mount."/x/".max_conns: TOML: hexadecimal number is too large to fit in a 64-bit signed integer`},
	{"integer beyond 64 bits in a list", "listen = [\n  \"http://127.0.0.1:1\",\n  99999999999999999999999,\n]\n", "f.toml:3: listen: TOML: decimal number is too large to fit in a 64-bit signed integer"},
	{"integer beyond 64 bits in a table", "[defaults]\nenv = { A = \"1\", B = 99999999999999999999999 }\n", "f.toml:2: defaults.env.B: TOML: decimal number is too large to fit in a 64-bit signed integer"},
	{"float out of range", "cpus = 1e400\n", `f.toml:1: cpus: TOML: unable to parse float: strconv.ParseFloat: parsing "1e400": value out of range`},
}

func TestParseConfigErrors(t *testing.T) {
	for _, tt := range badConfigs {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseConfig("f.toml", []byte(tt.file))
			if err == nil {
				t.Fatalf("ParseConfig(%q) = %+v; want the error %q", tt.file, f.Config, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("ParseConfig(%q):\n got %q\nwant %q", tt.file, err, tt.want)
			}
		})
	}
}

func TestLoadConfigMissing(t *testing.T) {
	_, err := LoadConfig("/nonexistent/ferry.toml")
	if want := "/nonexistent/ferry.toml: no such file"; err == nil || err.Error() != want {
		t.Errorf("LoadConfig(missing) = %v; want %q", err, want)
	}
}

// fullConfig says every kind of thing a file can say.
const fullConfig = `listen = ["http://127.0.0.1:8080", "fastcgi+unix:///run/ferry.sock?mode=0660"]
root = "/var/www/html"
admin = "unix:///run/ferry-admin.sock?mode=0600"
pid_file = "/run/ferry.pid"
shutdown_timeout = "1m30s"

[log]
format = "json"
level = "debug"
access_log = false

[defaults]
env = { GITWEB_CONFIG = "/etc/gitweb.conf", "A.B" = "x \"y\"" }
pass_env = ["HOME", "PERL5LIB"]
cgi_pass_auth = true
cgi_timeout = "0"
max_request_body = 1000
max_header_line = "8K"
temp_dir = "/var/tmp"

[mount."/cgi-bin/"]
backend = "cgi:/usr/lib/cgi-bin"
cgi_timeout = "10s"
cgi_pass_auth = false
env = { A = "mount" }

[mount."/"]
backend = "fastcgi+unix:///run/php/php8.2-fpm.sock?index=main.php"
max_conns = 5
front = ""

[mount."/php/"]
backend = "fastcgi+exec:/usr/bin/php-cgi"
workers = 4
max_requests = 500
idle_timeout = "10s"
min_workers = 1
cgi_kill_grace = "1s"
pass_env = ["PHPRC"]

[mount."/app/"]
backend = "scgi://127.0.0.1:3031"
max_conns = 2
max_request_body = "10M"
`

// TestConfigRoundTrip: a file, printed and read back, gives the same
// configuration and prints the same again.
func TestConfigRoundTrip(t *testing.T) {
	f, err := ParseConfig("full.toml", []byte(fullConfig))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Config
	if c.Settings.ScriptTimeout != -1 || c.Settings.MaxRequestBody != 1000 || c.Settings.MaxHeaderLine != 8<<10 || c.Log.Level != "debug" || c.AccessLog ||
		c.ShutdownTimeout != 90*time.Second || c.Admin.Network() != "unix" || len(c.Mounts) != 4 || c.Mounts[3].Prefix != "/app/" {
		t.Errorf("ParseConfig read %+v", c)
	}
	if got, want := c.Settings.Env, []string{"A.B=x \"y\"", "GITWEB_CONFIG=/etc/gitweb.conf"}; !reflect.DeepEqual(got, want) {
		t.Errorf("env = %q; want %q", got, want)
	}
	if got := c.Mounts[1].Backend.String(); got != "fastcgi+unix:///run/php/php8.2-fpm.sock?front=&index=main.php&max_conns=5" {
		t.Errorf("the / mount's backend = %s", got)
	}
	var out bytes.Buffer
	if err := WriteConfig(&out, c); err != nil {
		t.Fatal(err)
	}
	f2, err := ParseConfig("printed.toml", out.Bytes())
	if err != nil {
		t.Fatalf("the printed configuration does not load: %v\n%s", err, out.String())
	}
	if !reflect.DeepEqual(f2.Config, c) {
		t.Errorf("read back:\n%+v\nwant\n%+v", f2.Config, c)
	}
	var again bytes.Buffer
	WriteConfig(&again, f2.Config)
	if again.String() != out.String() {
		t.Errorf("printed twice differently:\n%s\n---\n%s", out.String(), again.String())
	}
}

// FuzzLoadConfig: whatever the file, ParseConfig does not panic, every
// error line names the file, and a configuration it accepts prints to a
// file it reads back to the same configuration.
func FuzzLoadConfig(f *testing.F) {
	for _, tt := range badConfigs {
		f.Add([]byte(tt.file))
	}
	f.Add([]byte(fullConfig))
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := ParseConfig("f.toml", data)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.toml:") {
					t.Fatalf("error line %q does not start with the file's name", line)
				}
			}
			return
		}
		var out bytes.Buffer
		WriteConfig(&out, cf.Config)
		back, err := ParseConfig("printed.toml", out.Bytes())
		if err != nil {
			t.Fatalf("the printed configuration does not load: %v\n%s", err, out.String())
		}
		var again bytes.Buffer
		WriteConfig(&again, back.Config)
		if again.String() != out.String() {
			t.Fatalf("printed twice differently:\n%s\n---\n%s", out.String(), again.String())
		}
	})
}

// TestMountSettings: a mount's own settings replace the global ones for
// its handlers only; env adds to the global variables.
func TestMountSettings(t *testing.T) {
	dir := t.TempDir()
	f, err := ParseConfig("m.toml", []byte(`
[defaults]
cgi_timeout = "30s"
cgi_max_concurrent = 3
env = { A = "global", B = "global" }

[mount."/slow/"]
backend = "cgi:`+dir+`"
cgi_timeout = "5m"
env = { B = "mount" }

[mount."/fast/"]
backend = "cgi:`+dir+`"
`))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Config
	if st := c.MountSettings(c.Mounts[0]); st.ScriptTimeout != 5*time.Minute || st.MaxConcurrent != 3 || !reflect.DeepEqual(st.Env, []string{"A=global", "B=mount"}) {
		t.Errorf("/slow/ settings: %+v", st)
	}
	if st := c.MountSettings(c.Mounts[1]); !reflect.DeepEqual(st, c.Settings) {
		t.Errorf("/fast/ settings: %+v; want the global ones", st)
	}
	srv, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	timeouts := map[string]time.Duration{}
	for _, r := range srv.rt.routes {
		timeouts[r.prefix] = r.handler.(*cgi.Handler).Timeout
	}
	if timeouts["/slow/"] != 5*time.Minute || timeouts["/fast/"] != 30*time.Second {
		t.Errorf("handler timeouts %v; want /slow/ 5m and /fast/ 30s", timeouts)
	}
	m := c.Mounts[1]
	if err := m.Set("max_conns", "3"); err == nil {
		t.Error("Mount.Set(max_conns) on a cgi: mount succeeded")
	}
	if err := m.Set("cgi_timeout", "x"); err == nil || !strings.Contains(err.Error(), "invalid duration") {
		t.Errorf("Mount.Set(cgi_timeout, x) = %v", err)
	}
	a, _ := ParseAddress("scgi://127.0.0.1:1")
	bad := Config{Mounts: []Mount{{Prefix: "/x/", Backend: a, Own: []string{"cgi_timeout"}}}}
	if _, err := New(bad); err == nil || !strings.Contains(err.Error(), "cgi_timeout is not used by scgi:// mounts") {
		t.Errorf("New with a setting its kind does not use = %v", err)
	}
}

// TestConfigReferenceInREADME: the README's table of keys and options is
// the one the declarations generate.
func TestConfigReferenceInREADME(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- options: generated by bridge.ConfigReference; a test keeps it so -->\n", "<!-- end of options -->\n"
	_, rest, ok1 := strings.Cut(string(b), begin)
	table, _, ok2 := strings.Cut(rest, end)
	if !ok1 || !ok2 {
		t.Fatalf("README.md has no %q ... %q section", begin, end)
	}
	if want := ConfigReference(); table != want {
		t.Errorf("README.md's options table is not the generated one; replace it with:\n%s", want)
	}
}

// TestConfigPrintsTOMLNumbers: numbers an address spells as strconv reads
// them (leading zeros) print as TOML integers, which have
// neither, and load back to the same values.
func TestConfigPrintsTOMLNumbers(t *testing.T) {
	f, err := ParseConfig("n.toml", []byte("[mount.\"/\"]\nbackend = \"fastcgi+exec:/usr/bin/php-cgi?workers=08&max_requests=0500\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteConfig(&out, f.Config); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nworkers = 8\n", "\nmax_requests = 500\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed configuration lacks %q:\n%s", want, out.String())
		}
	}
	back, err := ParseConfig("printed.toml", out.Bytes())
	if err != nil {
		t.Fatalf("the printed configuration does not load: %v\n%s", err, out.String())
	}
	if got := back.Config.Mounts[0].Backend.Query; got.Get("workers") != "8" || got.Get("max_requests") != "500" {
		t.Errorf("read back %v; want workers=8, max_requests=500", got)
	}
}

// TestStartTimeoutNeedsPersistPHP: start_timeout is a cgi: mount's option
// with persist=php, whose php-cgi workers' start it bounds, in a file, a
// --mount flag and a Config built in Go alike; with persist=perl or
// without persist it would do nothing, and is refused.
func TestStartTimeoutNeedsPersistPHP(t *testing.T) {
	f, err := ParseConfig("f.toml", []byte("[mount.\"/x/\"]\nbackend = \"cgi:/srv\"\npersist = \"php\"\nstart_timeout = \"30s\"\n"))
	if err != nil || f.Config.Mounts[0].Backend.Query.Get("start_timeout") != "30s" {
		t.Errorf("ParseConfig(persist=php, start_timeout=30s): %v", err)
	}
	for _, tt := range []struct{ mount, want string }{
		{"/x/=cgi:/srv?persist=php&start_timeout=30s", ""},
		{"/x/=cgi:/srv?persist=perl&start_timeout=30s", "option start_timeout needs persist=php, not persist=perl"},
		{"/x/=cgi:/srv?start_timeout=30s", "option start_timeout needs persist=php"},
		{"/x/=wsgi:/srv/app.py?start_timeout=30s", `unknown option "start_timeout"`},
	} {
		_, err := ParseMount(tt.mount)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("ParseMount(%q) = %v; want %q", tt.mount, err, tt.want)
		}
	}
	a, err := ParseAddress("cgi:" + t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a.Query.Set("persist", "perl")
	a.Query.Set("start_timeout", "30s")
	if _, err := New(Config{Mounts: []Mount{{Prefix: "/x/", Backend: a}}}); err == nil || !strings.Contains(err.Error(), "option start_timeout needs persist=php, not persist=perl") {
		t.Errorf("New with a Go-built persist=perl mount with start_timeout = %v; want it refused", err)
	}
}
