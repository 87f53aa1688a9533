package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// flagsConfig is the configuration serve builds from args.
func flagsConfig(t *testing.T, args ...string) bridge.Config {
	t.Helper()
	f := newServeFlags()
	if err := f.fs.Parse(args); err != nil {
		t.Fatalf("flags %q: %v", args, err)
	}
	cfg, _, err := f.load()
	if err != nil {
		t.Fatalf("flags %q: %v", args, err)
	}
	return cfg
}

// TestConfigFlagsRoundTrip: flags -> ferry check --print -> the file
// loaded -> printed again is identical, and the loaded configuration is
// the flags' one.
func TestConfigFlagsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		nil,
		{"--listen", "http://127.0.0.1:8080", "--listen", "fastcgi+unix:///run/ferry.sock?mode=0660", "--root", "/var/www/html",
			"--mount", "/cgi-bin/=cgi:/usr/lib/cgi-bin", "--mount", "/=fastcgi+unix:///run/php/php8.2-fpm.sock?max_conns=5&front=",
			"--mount", "/php/=fastcgi+exec:/usr/bin/php-cgi?workers=4&max_requests=500&min_workers=1&idle_timeout=10s",
			"--mount", "/app/=scgi://127.0.0.1:3031?max_conns=2", "--mount", "/api/=http://127.0.0.1:5000/v1/",
			"--env", "GITWEB_CONFIG=/etc/gitweb.conf", "--env", "A=x=y", "--pass-env", "HOME", "--cgi-pass-auth",
			"--cgi-timeout", "0", "--cgi-kill-grace", "1500ms", "--cgi-max-concurrent", "8", "--cgi-max-queue", "10",
			"--cgi-queue-timeout", "2m", "--max-request-body", "10M", "--max-header-line", "1000",
			"--shutdown-timeout", "5s", "--access-log=false", "--log-format", "console", "--log-level", "warn",
			"--admin", "unix:///run/ferry-admin.sock?mode=0600", "--pid-file", "/run/ferry.pid"},
		{"--listen", "https://127.0.0.1:8443?cert=/etc/ssl/ferry.pem&key=/etc/ssl/ferry.key",
			"--listen", "fastcgi+unix:///run/ferry.sock?mode=0660&owner=www-data&group=www-data",
			"--access-log", "/var/log/ferry/access.log", "--access-log-format", "combined", "--request-id-header", "X-Trace-Id"},
	} {
		t.Run(strconv.Itoa(len(args)), func(t *testing.T) {
			want := flagsConfig(t, args...)
			var out bytes.Buffer
			if code := run(append([]string{"check", "--print"}, args...), &out, &bytes.Buffer{}); code > 1 {
				t.Fatalf("ferry check --print = exit %d", code)
			}
			file := filepath.Join(dir, "printed.toml")
			if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			got := flagsConfig(t, "--config", file)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("loaded from the printed file:\n%+v\nwant the flags' configuration:\n%+v", got, want)
			}
			var again bytes.Buffer
			run([]string{"check", "--print", "--config", file}, &again, &bytes.Buffer{})
			if again.String() != out.String() {
				t.Errorf("printed again differently:\n%s\n---\n%s", out.String(), again.String())
			}
		})
	}
}

// TestConfigFlagsOverride: flags given override the file; --env adds to
// it; --mount replaces the file's mount at its prefix.
func TestConfigFlagsOverride(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ferry.toml")
	os.WriteFile(file, []byte(`root = "/srv/www"
[defaults]
cgi_timeout = "30s"
cgi_max_queue = 5
env = { A = "file", B = "file" }
[mount."/x/"]
backend = "scgi://127.0.0.1:1"
[mount."/y/"]
backend = "scgi://127.0.0.1:2"
`), 0o644)
	c := flagsConfig(t, "--config", file, "--cgi-timeout", "5s", "--env", "B=flag", "--mount", "/y/=http://127.0.0.1:3")
	if c.Root != "/srv/www" || c.Settings.ScriptTimeout != 5*time.Second || c.Settings.MaxQueue != 5 ||
		!reflect.DeepEqual(c.Settings.Env, []string{"A=file", "B=flag"}) || len(c.Mounts) != 2 || c.Mounts[1].Backend.String() != "http://127.0.0.1:3" {
		t.Errorf("file + flags = %+v", c)
	}
}

// TestServeConfigErrors: a bad file is one line per mistake naming the
// file, the line and the key, and exit 2; so is a missing file.
func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "ferry.toml")
	os.WriteFile(bad, []byte("listen = [\"http://127.0.0.1:0\"]\n\n[mount.\"/\"]\nbackend = \"fastcgi://127.0.0.1:9000\"\nmax_con = 4\n[log]\nformat = \"xml\"\n"), 0o644)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--config", bad}, "ferry serve: " + bad + ":5: mount.\"/\".max_con: unknown key (did you mean max_conns?)\n" +
			"ferry serve: " + bad + ":7: log.format: want json, console or auto, not \"xml\"\n"},
		{[]string{"check", "--config", dir + "/none.toml"}, "ferry check: " + dir + "/none.toml: no such file\n"},
		{[]string{"serve", "--config", dir}, "ferry serve: " + dir + ": is a directory\n"},
	} {
		var out, errb bytes.Buffer
		if code := run(tt.args, &out, &errb); code != 2 || errb.String() != tt.want {
			t.Errorf("ferry %q = exit %d, stderr:\n%s\nwant exit 2 and:\n%s", tt.args, code, errb.String(), tt.want)
		}
	}
}

// TestServeStartErrorsNameTheKey: a configuration that loads but cannot
// start (a cgi-bin that does not exist, a port taken) stops ferry serve
// with the file, the line and the key of each mistake, as ferry check
// gives them; it logged bridge's error alone, which names no key.
func TestServeStartErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tt := range []struct {
		name, file string
		code       int
		want       []string
	}{
		{"missing directories", "listen = [\"http://127.0.0.1:0\"]\n\n[mount.\"/cgi-bin/\"]\nbackend = \"cgi:" + dir + "/missing\"\n\n[mount.\"/b/\"]\nbackend = \"cgi:" + dir + "/gone\"\n", 2,
			[]string{`FILE:4: mount.\"/cgi-bin/\".backend: ` + dir + `/missing does not exist`, `FILE:7: mount.\"/b/\".backend: ` + dir + `/gone does not exist`}},
		{"port taken", "root = \"" + dir + "\"\nlisten = [\"http://" + taken.Addr().String() + "\"]\n", 1,
			[]string{"FILE:2: listen: listen http://" + taken.Addr().String() + ": "}},
		{"admin port taken", "root = \"" + dir + "\"\nlisten = [\"http://127.0.0.1:0\"]\nadmin = \"http://" + taken.Addr().String() + "\"\n", 1,
			[]string{"FILE:3: admin: listen http://" + taken.Addr().String() + ": "}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "ferry.toml")
			if err := os.WriteFile(file, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := run([]string{"serve", "--config", file, "--log-format", "json"}, &out, &errb)
			if code != tt.code {
				t.Errorf("ferry serve = exit %d; want %d; stderr:\n%s", code, tt.code, errb.String())
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "FILE", file); !strings.Contains(errb.String(), w) {
					t.Errorf("ferry serve's stderr:\n%s\nlacks %s", errb.String(), w)
				}
			}
		})
	}
}

// TestCheckCommand: problems are listed with where they were given, and
// make the exit status 1; warnings alone do not.
func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ferry.toml")
	os.WriteFile(file, []byte("[mount.\"/cgi-bin/\"]\nbackend = \"cgi:"+dir+"/missing\"\n"), 0o644)
	var out, errb bytes.Buffer
	code := run([]string{"check", "--config", file, "--cgi-pass-auth"}, &out, &errb)
	want := "error: " + file + ":2: mount.\"/cgi-bin/\".backend: " + dir + "/missing does not exist: no such file or directory\n"
	if code != 1 || !strings.Contains(errb.String(), want) || !strings.Contains(errb.String(), "warning: --cgi-pass-auth: scripts under /cgi-bin/ see the client's credentials") ||
		!strings.HasSuffix(errb.String(), "ferry check: "+file+": 1 errors, 1 warnings\n") {
		t.Errorf("ferry check = exit %d, stderr:\n%s\nwant exit 1 with %q and a warning", code, errb.String(), want)
	}
	errb.Reset()
	if code := run([]string{"check", "--mount", "/cgi-bin/=cgi:" + dir, "--cgi-timeout", "0"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "warning: --cgi-timeout: no timeout") {
		t.Errorf("ferry check with a warning = exit %d, stderr:\n%s", code, errb.String())
	}
}

// TestExplainCommand: explain prints the meta-variables of a cgi-bin
// script, and exits 1 for a path ferry would refuse.
func TestExplainCommand(t *testing.T) {
	dir := t.TempDir()
	writeExec(t, filepath.Join(dir, "wiki.pl"), "#!/bin/sh\n")
	var out, errb bytes.Buffer
	if code := run([]string{"explain", "--mount", "/cgi-bin/=cgi:" + dir, "--listen", "http://127.0.0.1:8080", "/cgi-bin/wiki.pl/Main/Page?action=edit"}, &out, &errb); code != 0 {
		t.Fatalf("ferry explain = exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"GET http://127.0.0.1:8080/cgi-bin/wiki.pl/Main/Page?action=edit\n", "mount:   /cgi-bin/ = cgi:" + dir + "\n",
		"  SCRIPT_NAME=/cgi-bin/wiki.pl\n", "  PATH_INFO=/Main/Page\n", "  SCRIPT_FILENAME=" + dir + "/wiki.pl\n", "  PATH_TRANSLATED=" + dir + "/Main/Page\n",
		"  QUERY_STRING=action=edit\n", "  SERVER_PORT=8080\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ferry explain printed:\n%s\nwant %q", out.String(), want)
		}
	}
	out.Reset()
	if code := run([]string{"explain", "--mount", "/cgi-bin/=cgi:" + dir, "/cgi-bin/nope.pl"}, &out, &errb); code != 1 || !strings.Contains(out.String(), "answer:  404 Not Found: no script for /cgi-bin/nope.pl") {
		t.Errorf("ferry explain of a missing script = exit %d:\n%s", code, out.String())
	}
}

// TestExplainDocumentRootNote: behind nginx or Apache (a FastCGI, SCGI
// or CGI front), a cgi: script gets the DOCUMENT_ROOT the web server
// sends (4bdb37b); explain printed the script's directory as the one
// DOCUMENT_ROOT. Now it notes the other case when the configuration has
// such a front, and still prints what a request over HTTP gets.
func TestExplainDocumentRootNote(t *testing.T) {
	dir := t.TempDir()
	writeExec(t, filepath.Join(dir, "env.sh"), "#!/bin/sh\n")
	const note = "note:    DOCUMENT_ROOT (and PATH_TRANSLATED under it) is the script's directory for a request that brings none, as over HTTP (no --root); " +
		"through %s it is the DOCUMENT_ROOT the web server sends, if it sends one (nginx's $document_root, Apache's DocumentRoot), as under fcgiwrap\n"
	for _, tt := range []struct {
		name  string
		flags []string
		note  string // the fronts the note names; "" for no note
	}{
		{"http", []string{"--listen", "http://127.0.0.1:8080"}, ""},
		{"http and fastcgi", []string{"--listen", "http://127.0.0.1:8080", "--listen", "fastcgi://127.0.0.1:9000"}, "fastcgi://127.0.0.1:9000"},
		{"scgi", []string{"--listen", "scgi+unix:///run/ferry.sock"}, "scgi+unix:///run/ferry.sock"},
		{"fastcgi with --root", []string{"--listen", "fastcgi://127.0.0.1:9000", "--root", dir}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append(append([]string{"explain", "--mount", "/cgi-bin/=cgi:" + dir}, tt.flags...), "/cgi-bin/env.sh/x")
			if code := run(args, &out, &errb); code != 0 {
				t.Fatalf("ferry %q = exit %d: %s", args, code, errb.String())
			}
			got := out.String()
			if !strings.Contains(got, "  DOCUMENT_ROOT="+dir+"\n") || !strings.Contains(got, "  PATH_TRANSLATED="+dir+"/x\n") {
				t.Errorf("ferry %q printed:\n%s\nwant DOCUMENT_ROOT=%s, PATH_TRANSLATED=%s/x", args, got, dir, dir)
			}
			if want := fmt.Sprintf(note, tt.note); tt.note != "" && !strings.Contains(got, want) {
				t.Errorf("ferry %q printed:\n%s\nwant %q", args, got, want)
			}
			if tt.note == "" && strings.Contains(got, "note:    DOCUMENT_ROOT") {
				t.Errorf("ferry %q printed:\n%s\nwant no note", args, got)
			}
		})
	}
}

// TestExplainServerPortNote: with only a FastCGI front, explain printed
// SERVER_PORT=9000, the FastCGI port, where a script behind nginx gets
// nginx's own port; now it prints a request to localhost on port 80 and
// notes that the web server sends these values.
func TestExplainServerPortNote(t *testing.T) {
	dir := t.TempDir()
	writeExec(t, filepath.Join(dir, "env.sh"), "#!/bin/sh\n")
	var out, errb bytes.Buffer
	args := []string{"explain", "--mount", "/cgi-bin/=cgi:" + dir, "--listen", "fastcgi://127.0.0.1:9000", "/cgi-bin/env.sh/x"}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("ferry %q = exit %d: %s", args, code, errb.String())
	}
	for _, want := range []string{"GET http://localhost/cgi-bin/env.sh/x\n", "  SERVER_NAME=localhost\n", "  SERVER_PORT=80\n", "  HTTP_HOST=localhost\n",
		"note:    SERVER_NAME, SERVER_PORT and HTTP_HOST are those of a request to localhost on port 80; through fastcgi://127.0.0.1:9000 they are what the web server sends: " +
			"nginx's $server_name (empty without a server_name), $server_port (the port it listens on) and $host\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ferry %q printed:\n%s\nwant %q", args, out.String(), want)
		}
	}
}

// TestExampleConfigInREADME: the README shows testdata/ferry.toml
// verbatim.
func TestExampleConfigInREADME(t *testing.T) {
	example, err := os.ReadFile("../../testdata/ferry.toml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```toml\n"+string(example)+"```\n") {
		t.Errorf("README.md does not show testdata/ferry.toml verbatim in a toml block")
	}
}

const cgiEnvScript = `#!/bin/sh
printf 'Content-Type: text/plain\n\n'
echo "script=$SCRIPT_NAME path_info=$PATH_INFO gitweb=$GITWEB_CONFIG"
`

// TestExampleConfig serves exactly the README's ferry.toml, its paths and
// ports moved to the test's own, through real php-fpm, php-cgi and uwsgi:
// ferry check passes on it, and each mount answers.
func TestExampleConfig(t *testing.T) {
	peerstest.Need(t, "php-fpm", "php-cgi", "uwsgi", "python3")
	example, err := os.ReadFile("../../testdata/ferry.toml")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	root := phpSite(t)
	os.MkdirAll(filepath.Join(root, "legacy"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "legacy", "info.php"), []byte(phpInfo), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := peers.MakeWorldReadable(root); err != nil {
		t.Fatal(err)
	}
	cgiDir := filepath.Join(tmp, "cgi-bin")
	os.Mkdir(cgiDir, 0o755)
	writeExec(t, filepath.Join(cgiDir, "env.sh"), cgiEnvScript)
	fpmSock := filepath.Join(tmp, "php-fpm.sock")
	peerstest.RunPHPFPM(t, peers.PHPFPMConfig{Listen: "unix:" + fpmSock, Children: 2})
	app := filepath.Join(tmp, "app.py")
	os.WriteFile(app, []byte(flaskTestApp), 0o644)
	appSock := filepath.Join(tmp, "app.sock")
	peerstest.RunUWSGI(t, peers.UWSGIConfig{WSGIFile: app, Callable: "app", Listen: "unix:" + appSock})
	phpCGI, _ := peers.Lookup("php-cgi")
	adminPort, err := peers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(tmp, "ferry.pid")

	text := string(example)
	for _, r := range []struct{ old, new string }{
		{`"http://127.0.0.1:8080"`, `"http://127.0.0.1:0"`},
		{`"http://127.0.0.1:2020"`, `"http://127.0.0.1:` + strconv.Itoa(adminPort) + `"`},
		{`"/var/www/html"`, strconv.Quote(root)},
		{`"/run/ferry.pid"`, strconv.Quote(pidFile)},
		{`"cgi:/usr/lib/cgi-bin"`, strconv.Quote("cgi:" + cgiDir)},
		{`"fastcgi+unix:///run/php/php8.2-fpm.sock"`, strconv.Quote("fastcgi+unix://" + fpmSock)},
		{`"fastcgi+exec:/usr/bin/php-cgi"`, strconv.Quote("fastcgi+exec:" + phpCGI)},
		{`"scgi+unix:///run/uwsgi/app.sock"`, strconv.Quote("scgi+unix://" + appSock)},
	} {
		if strings.Count(text, r.old) != 1 {
			t.Fatalf("testdata/ferry.toml does not say %s once; update this test with it", r.old)
		}
		text = strings.Replace(text, r.old, r.new, 1)
	}
	file := filepath.Join(tmp, "ferry.toml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if code := run([]string{"check", "--connect", "--config", file}, &out, &errb); code != 0 || strings.Contains(errb.String(), "warning: ") {
		t.Fatalf("ferry check --connect = exit %d:\n%s", code, errb.String())
	}

	p := startFerryArgs(t, "--config", file)
	b, err := os.ReadFile(pidFile)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(p.cmd.Process.Pid) {
		t.Errorf("pid file holds %q (%v); want %d", b, err, p.cmd.Process.Pid)
	}
	for _, tt := range []struct{ path, want string }{
		{"/cgi-bin/env.sh/x", "script=/cgi-bin/env.sh path_info=/x gitweb=/etc/gitweb.conf"},
		{"/info.php/a/b", "filename=" + filepath.Join(root, "info.php") + "\n"},
		{"/pretty/url", "script=/index.php\n"},
		{"/notes.txt", "plain notes"},
		{"/legacy/info.php/c", "script=/legacy/info.php\npath_info=/c\n"},
		{"/app/hello/ferry", "hello ferry link=/app/hello/ferry root=/app"},
	} {
		if code, body := httpGet(t, p.URL+tt.path); code != 200 || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s = %d %q; want 200 and %q", tt.path, code, body, tt.want)
		}
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v:\n%s", err, p.logs)
	}
	if _, err := os.Stat(pidFile); err == nil {
		t.Errorf("the pid file outlived ferry")
	}
	if t.Failed() {
		t.Logf("ferry's log:\n%s", p.logs)
	}
}
