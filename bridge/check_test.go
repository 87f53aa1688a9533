package bridge

import (
	"cmp"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// TestCheck: each of check's findings, produced by a case of its own.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	cgiDir := filepath.Join(dir, "cgi-bin")
	os.Mkdir(cgiDir, 0o755)
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o777) // past the umask
	root := filepath.Join(dir, "www")
	os.MkdirAll(filepath.Join(root, "cgi-bin"), 0o755)
	plain := filepath.Join(dir, "plain.txt")
	os.WriteFile(plain, []byte("x"), 0o644)
	worker := filepath.Join(dir, "worker")
	os.WriteFile(worker, []byte("#!/bin/sh\n"), 0o755)
	fcgi := fastcgiApp(t)
	noValues := unknownTypeApp(t)
	deadPort := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().String()
	}()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	taken := busy.Addr().String()
	mount := func(s string) Mount {
		m, err := ParseMount(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	addr := func(s string) Address {
		a, err := ParseAddress(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	withSettings := func(m Mount, kv ...string) Mount {
		for i := 0; i < len(kv); i += 2 {
			if err := m.Set(kv[i], kv[i+1]); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	good := DefaultConfig()
	good.Mounts = []Mount{mount("/cgi-bin/=cgi:" + cgiDir)}

	for _, tt := range []struct {
		name    string
		cfg     func(c *Config)
		connect bool
		sev     Severity
		key     string
		msg     string // a substring of the finding's message; "" means no problem at all
	}{
		{"good", func(c *Config) {}, false, Problem, "", ""},
		// As nginx -t: a host not of this machine cannot be listened on
		// (ferry check said ok, ferry serve failed); a port taken now is
		// a warning, the running ferry's when the file is checked before
		// a reload.
		{"front on an address not here", func(c *Config) { c.Listen = []Address{addr("http://192.0.2.1:8080")} }, false, Problem, "listen", "cannot listen on 192.0.2.1:8080"},
		{"front on a host that does not resolve", func(c *Config) { c.Listen = []Address{addr("fastcgi://nosuchhost.invalid:9000")} }, false, Problem, "listen", "cannot listen on nosuchhost.invalid:9000"},
		{"admin on an address not here", func(c *Config) { c.Admin = addr("http://192.0.2.1:2020") }, false, Problem, "admin", "cannot listen on 192.0.2.1:2020"},
		{"front on a port taken", func(c *Config) { c.Listen = []Address{addr("http://" + taken)} }, false, Warning, "listen", "a process is listening on " + taken + " now"},
		{"good unix front with a mode", func(c *Config) { c.Listen = []Address{addr("fastcgi+unix://" + dir + "/ferry.sock?mode=0660")} }, false, Problem, "", ""},
		{"missing cgi-bin", func(c *Config) { c.Mounts = []Mount{mount("/cgi-bin/=cgi:" + dir + "/nope")} }, false, Problem, `mount."/cgi-bin/".backend`, "does not exist"},
		{"world-writable cgi-bin", func(c *Config) { c.Mounts = []Mount{mount("/cgi-bin/=cgi:" + open)} }, false, Problem, `mount."/cgi-bin/".backend`, "is world-writable"},
		{"dir at a prefix without slash", func(c *Config) { c.Mounts = []Mount{mount("/cgi-bin=cgi:" + cgiDir)} }, false, Problem, `mount."/cgi-bin"`, "a prefix ending in /"},
		{"script not executable", func(c *Config) { c.Mounts = []Mount{mount("/s=cgi:" + plain)} }, false, Problem, `mount."/s".backend`, "is not executable"},
		{"cgi-bin inside the document root", func(c *Config) {
			c.Root = root
			c.Mounts = []Mount{mount("/cgi-bin/=cgi:" + root + "/cgi-bin")}
		}, false, Warning, `mount."/cgi-bin/".backend`, "inside the document root"},
		{"pass auth", func(c *Config) { c.Settings.PassAuthorization = true }, false, Warning, "defaults.cgi_pass_auth", "credentials"},
		{"pass auth in a mount", func(c *Config) { c.Mounts[0] = withSettings(c.Mounts[0], "cgi_pass_auth", "true") }, false, Warning, `mount."/cgi-bin/".cgi_pass_auth`, "credentials"},
		{"no timeout", func(c *Config) { c.Settings.ScriptTimeout = -1 }, false, Warning, "defaults.cgi_timeout", "no timeout"},
		{"worker not executable", func(c *Config) { c.Mounts = []Mount{mount("/=fastcgi+exec:" + plain)} }, false, Problem, `mount."/".backend`, "worker " + plain + " is not executable"},
		{"worker missing", func(c *Config) { c.Mounts = []Mount{mount("/=fastcgi+exec:" + dir + "/php-cgi")} }, false, Problem, `mount."/".backend`, "does not exist"},
		{"worker good", func(c *Config) { c.Mounts = []Mount{mount("/=fastcgi+exec:" + worker)} }, false, Problem, "", ""},
		{"unix front in a missing directory", func(c *Config) { c.Listen = []Address{addr("scgi+unix://" + dir + "/nope/ferry.sock")} }, false, Problem, "listen", "cannot create a socket in " + dir + "/nope"},
		{"unix front on a file", func(c *Config) { c.Listen = []Address{addr("scgi+unix://" + plain)} }, false, Problem, "listen", "exists and is not a socket"},
		{"front twice", func(c *Config) { c.Listen = []Address{addr("http://127.0.0.1:1"), addr("http://127.0.0.1:1")} }, false, Problem, "listen", "listed twice"},
		{"admin on a front", func(c *Config) {
			c.Listen = []Address{addr("http://127.0.0.1:2020")}
			c.Admin = addr("http://127.0.0.1:2020")
		}, false, Problem, "admin", "is also a front"},
		{"admin socket in a missing directory", func(c *Config) { c.Admin, _ = ParseAdminAddress("unix://" + dir + "/nope/admin.sock") }, false, Problem, "admin", "cannot create a socket"},
		{"pid file in a missing directory", func(c *Config) { c.PIDFile = dir + "/nope/ferry.pid" }, false, Problem, "pid_file", "does not exist"},
		{"access log in a missing directory", func(c *Config) { c.AccessLogFile = dir + "/nope/access.log" }, false, Problem, "log.access_log_file", "does not exist"},
		{"https front without its certificate", func(c *Config) {
			c.Listen = []Address{addr("https://127.0.0.1:0?cert=" + dir + "/none.pem&key=" + dir + "/none.key")}
		}, false, Problem, "listen", "cert=" + dir + "/none.pem: no such file"},
		{"root not a directory", func(c *Config) { c.Root = plain }, false, Problem, "root", "is not a directory"},
		{"nothing to serve", func(c *Config) { c.Mounts = nil }, false, Warning, "mount", "every request would get 404"},
		{"more cpus than the machine", func(c *Config) { c.CPUs = runtime.NumCPU() + 1 }, false, Warning, "cpus", "only take turns"},
		{"mounted twice", func(c *Config) { c.Mounts = append(c.Mounts, c.Mounts[0]) }, false, Problem, `mount."/cgi-bin/"`, "mounted twice"},
		{"application socket missing", func(c *Config) { c.Mounts = []Mount{mount("/=fastcgi+unix://" + dir + "/php.sock")} }, false, Warning, `mount."/".backend`, "no socket at"},
		{"application socket a file", func(c *Config) { c.Mounts = []Mount{mount("/=scgi+unix://" + plain)} }, false, Problem, `mount."/".backend`, "is not a socket"},
		{"fastcgi answers", func(c *Config) { c.Mounts = []Mount{mount("/=fastcgi://" + fcgi)} }, true, Note, `mount."/".backend`, "answers FCGI_GET_VALUES: FCGI_MAX_CONNS="},
		{"fastcgi without GET_VALUES", func(c *Config) { c.Mounts = []Mount{mount("/=fastcgi://" + noValues)} }, true, Note, `mount."/".backend`, "answers FCGI_GET_VALUES with FCGI_UNKNOWN_TYPE"},
		{"fastcgi dead", func(c *Config) { c.Mounts = []Mount{mount("/=fastcgi://" + deadPort)} }, true, Problem, `mount."/".backend`, "does not answer FCGI_GET_VALUES"},
		{"scgi dead", func(c *Config) { c.Mounts = []Mount{mount("/app/=scgi://" + deadPort)} }, true, Problem, `mount."/app/".backend`, "cannot connect to scgi://" + deadPort},
		{"http answers", func(c *Config) { c.Mounts = []Mount{mount("/app/=http://" + fcgi)} }, true, Note, `mount."/app/".backend`, "accepts connections"},
		{"what New refuses", func(c *Config) { c.Listen = []Address{addr("cgi:"), addr("http://127.0.0.1:1")} }, false, Problem, "", "a cgi: front is this process's one CGI request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			c.Mounts = slices.Clone(good.Mounts)
			tt.cfg(&c)
			found := Check(context.Background(), c, CheckOptions{Connect: tt.connect})
			if tt.msg == "" {
				for _, f := range found {
					if f.Severity == Problem {
						t.Errorf("Check found %s: %s: %s; want no problem", f.Severity, f.Key(), f.Msg)
					}
				}
				return
			}
			for _, f := range found {
				if f.Severity == tt.sev && f.Key() == tt.key && strings.Contains(f.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("Check found %+v; want a %s on %q saying %q", found, tt.sev, tt.key, tt.msg)
		})
	}
}

// unknownTypeApp answers each connection's first record, on loopback
// until the test ends, with FCGI_UNKNOWN_TYPE for FCGI_GET_VALUES, as an
// application that does not know the management record answers
// (FastCGI 1.0 § 4.2), and returns its address.
func unknownTypeApp(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var h [8]byte
				if _, err := io.ReadFull(c, h[:]); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(h[4])<<8|int64(h[5])+int64(h[6])); err != nil {
					return
				}
				// version 1, type 11 (UNKNOWN_TYPE), request ID 0, 8 bytes:
				// the unknown type (9, GET_VALUES) and 7 reserved.
				c.Write([]byte{1, 11, 0, 0, 0, 8, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0})
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return l.Addr().String()
}

// fastcgiApp serves FastCGI on loopback until the test ends, and returns
// its address.
func fastcgiApp(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fastcgi.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// TestExplain: what explain says for a cgi-bin, a PHP site and an
// application mounted at a prefix, found by the serving code.
func TestExplain(t *testing.T) {
	cgiDir := t.TempDir()
	writeFile(t, filepath.Join(cgiDir, "env.pl"), "#!/usr/bin/perl\n", 0o755)
	writeFile(t, filepath.Join(cgiDir, "notes.txt"), "x", 0o644)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "index.php"), "<?php", 0o644)
	writeFile(t, filepath.Join(root, "app.php"), "<?php", 0o644)
	writeFile(t, filepath.Join(root, "style.css"), "body{}", 0o644)
	wiki := t.TempDir() // a PHP site under an Alias, outside the document root
	writeFile(t, filepath.Join(wiki, "doku.php"), "<?php", 0o644)
	if err := os.Mkdir(filepath.Join(wiki, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(wiki, "lib", "logo.png"), "png", 0o644)
	f, err := ParseConfig("x.toml", []byte(`root = "`+root+`"
[defaults]
env = { APP_ENV = "prod" }
[mount."/cgi-bin/"]
backend = "cgi:`+cgiDir+`"
[mount."/"]
backend = "fastcgi://127.0.0.1:9000"
[mount."/app/"]
backend = "scgi://127.0.0.1:4000"
[mount."/api/"]
backend = "http://127.0.0.1:5000/v1/"
[mount."/wiki/"]
backend = "fastcgi://127.0.0.1:9000"
alias = "`+wiki+`"
front = ""
`))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		url    string
		mount  string
		status int
		want   []string // lines of Vars, or a substring of Reason when status is not 0
	}{
		{"/cgi-bin/env.pl/Main/Page?x=1", "/cgi-bin/", 0, []string{"SCRIPT_NAME=/cgi-bin/env.pl", "PATH_INFO=/Main/Page",
			"SCRIPT_FILENAME=" + cgiDir + "/env.pl", "PATH_TRANSLATED=" + root + "/Main/Page", "DOCUMENT_ROOT=" + root, "QUERY_STRING=x=1", "REQUEST_URI=/cgi-bin/env.pl/Main/Page?x=1"}},
		{"/cgi-bin/missing.pl", "/cgi-bin/", http.StatusNotFound, []string{"no script for /cgi-bin/missing.pl"}},
		{"/cgi-bin/notes.txt", "/cgi-bin/", http.StatusForbidden, []string{"not executable"}},
		{"/cgi-bin", "/cgi-bin/", http.StatusMovedPermanently, []string{"redirected to /cgi-bin/"}},
		{"/app.php/extra?q", "/", 0, []string{"SCRIPT_NAME=/app.php", "PATH_INFO=/extra", "SCRIPT_FILENAME=" + root + "/app.php", "DOCUMENT_ROOT=" + root, "PATH_TRANSLATED=" + root + "/extra"}},
		{"/pretty/url", "/", 0, []string{"SCRIPT_NAME=/index.php", "SCRIPT_FILENAME=" + root + "/index.php"}},
		{"/missing.php", "/", http.StatusNotFound, []string{"no script for /missing.php"}},
		{"/style.css", "/", http.StatusOK, []string{"served by ferry"}},
		{"/app/x/y", "/app/", 0, []string{"SCRIPT_NAME=/app", "PATH_INFO=/x/y", "DOCUMENT_ROOT=" + root}},
		{"/api/users?id=3", "/api/", 0, []string{"GET http://127.0.0.1:5000/v1/users?id=3", "X-Forwarded-Prefix: /api"}},
		{"/wiki/doku.php/x?id=start", "/wiki/", 0, []string{"SCRIPT_NAME=/wiki/doku.php", "PATH_INFO=/x", "SCRIPT_FILENAME=" + wiki + "/doku.php", "DOCUMENT_ROOT=" + wiki}},
		{"/wiki/", "/wiki/", http.StatusForbidden, []string{"a directory without index.html"}},
		{"/wiki/lib/logo.png", "/wiki/", http.StatusOK, []string{"served by ferry"}},
		{"/wiki/lib", "/wiki/", http.StatusMovedPermanently, []string{"redirected to /wiki/lib/"}},
		{"/wiki/style.css", "/wiki/", http.StatusNotFound, []string{"no script for /wiki/style.css"}},
	} {
		t.Run(tt.url, func(t *testing.T) {
			e := srv.Explain(httptest.NewRequest("GET", tt.url, nil))
			if e.Mount != tt.mount || e.Status != tt.status {
				t.Fatalf("Explain(%s) = mount %q status %d (%s); want %q %d", tt.url, e.Mount, e.Status, e.Reason, tt.mount, tt.status)
			}
			for _, w := range tt.want {
				if tt.status != 0 {
					if !strings.Contains(e.Reason, w) {
						t.Errorf("Explain(%s).Reason = %q; want it to say %q", tt.url, e.Reason, w)
					}
				} else if !slices.Contains(e.Vars, w) {
					t.Errorf("Explain(%s).Vars = %q; want %q among them", tt.url, e.Vars, w)
				}
			}
			if tt.status == 0 && tt.mount != "/api/" && !slices.Contains(e.Extra, "APP_ENV=prod") {
				t.Errorf("Explain(%s).Extra = %q; want APP_ENV=prod", tt.url, e.Extra)
			}
		})
	}
}

// TestExplainDocumentRootFront: without --root, a cgi: script's
// DOCUMENT_ROOT is the one a front web server sends through a FastCGI,
// SCGI or CGI front (4bdb37b), else the script's directory. explain, whose
// request brings none, showed the script's directory and said nothing of
// the other case; now it says so when the configuration has such a front.
func TestExplainDocumentRootFront(t *testing.T) {
	cgiDir, root := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(cgiDir, "env.sh"), "#!/bin/sh\n", 0o755)
	for _, tt := range []struct {
		name, listen, mount, root string
		note                      string // in Reason; "" for no note
	}{
		{"http only", "http://127.0.0.1:8080", "/cgi-bin/=cgi:" + cgiDir, "", ""},
		{"fastcgi front", "http://127.0.0.1:8080,fastcgi://127.0.0.1:9000", "/cgi-bin/=cgi:" + cgiDir, "", "through fastcgi://127.0.0.1:9000 it is the DOCUMENT_ROOT the web server sends"},
		{"fastcgi front alone", "fastcgi+unix:///run/ferry.sock", "/cgi-bin/=cgi:" + cgiDir, "", "through fastcgi+unix:///run/ferry.sock it is"},
		{"scgi fronts", "scgi://127.0.0.1:4000,scgi+fd://3", "/cgi-bin/=cgi:" + cgiDir, "", "through scgi://127.0.0.1:4000, scgi+fd://3 it is"},
		{"cgi front", "cgi:", "/cgi-bin/=cgi:" + cgiDir, "", "through cgi: it is"},
		{"persist", "fastcgi://127.0.0.1:9000", "/cgi-bin/=cgi:" + cgiDir + "?persist=perl", "", "through fastcgi://127.0.0.1:9000 it is"},
		{"one script", "fastcgi://127.0.0.1:9000", "/cgi-bin/env.sh=cgi:" + cgiDir + "/env.sh", "", "through fastcgi://127.0.0.1:9000 it is"},
		{"fastcgi front with --root", "fastcgi://127.0.0.1:9000", "/cgi-bin/=cgi:" + cgiDir, root, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.mount, "persist=perl") {
				peerstest.Need(t, "perl") // its workers' interpreter, checked by New
			}
			cfg := Config{Root: tt.root, Mounts: []Mount{mustMount(t, tt.mount)}}
			for _, l := range strings.Split(tt.listen, ",") {
				cfg.Listen = append(cfg.Listen, mustAddr(t, l))
			}
			srv, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			e := srv.Explain(httptest.NewRequest("GET", "/cgi-bin/env.sh/x", nil))
			wantRoot := cmp.Or(tt.root, cgiDir)
			if e.Status != 0 || !slices.Contains(e.Vars, "DOCUMENT_ROOT="+wantRoot) || !slices.Contains(e.Vars, "PATH_TRANSLATED="+wantRoot+"/x") {
				t.Errorf("Explain = status %d (%s), vars %q; want DOCUMENT_ROOT=%s and PATH_TRANSLATED under it", e.Status, e.Reason, e.Vars, wantRoot)
			}
			var note string
			for _, n := range e.Notes {
				if strings.HasPrefix(n, "DOCUMENT_ROOT") {
					note = n
				}
			}
			switch {
			case tt.note == "" && note != "":
				t.Errorf("Explain.Notes has %q; want no note on DOCUMENT_ROOT", note)
			case tt.note != "" && !strings.Contains(note, tt.note):
				t.Errorf("Explain.Notes = %q; want one saying %q", e.Notes, tt.note)
			}
		})
	}
}

// TestExplainServerPortFront: explain took the host and port of a path's
// request from the first TCP front, a FastCGI or SCGI one too, so with
// fastcgi://127.0.0.1:9000 it showed SERVER_PORT=9000, where a script
// behind nginx gets nginx's own port ($server_port). Now a path is asked of
// the first http(s) front, else of localhost on port 80, with a note that
// the web server sends these values through a FastCGI, SCGI or CGI front.
func TestExplainServerPortFront(t *testing.T) {
	cgiDir := t.TempDir()
	writeFile(t, filepath.Join(cgiDir, "env.sh"), "#!/bin/sh\n", 0o755)
	for _, tt := range []struct {
		name, listen, target string
		want                 []string // among the Vars
		note                 string   // in Notes; "" for no SERVER_PORT note
	}{
		{"http", "http://127.0.0.1:8080", "/cgi-bin/env.sh/x",
			[]string{"REQUEST_SCHEME=http", "SERVER_NAME=127.0.0.1", "SERVER_PORT=8080", "HTTP_HOST=127.0.0.1:8080"}, ""},
		{"https", "https://127.0.0.1:8443?cert=/c.pem&key=/k.pem", "/cgi-bin/env.sh/x",
			[]string{"REQUEST_SCHEME=https", "HTTPS=on", "SERVER_NAME=127.0.0.1", "SERVER_PORT=8443", "HTTP_HOST=127.0.0.1:8443"}, ""},
		{"http+fd", "http+fd://3", "/cgi-bin/env.sh/x",
			[]string{"SERVER_NAME=localhost", "SERVER_PORT=80", "HTTP_HOST=localhost"}, ""},
		{"fastcgi alone", "fastcgi://127.0.0.1:9000", "/cgi-bin/env.sh/x",
			[]string{"REQUEST_SCHEME=http", "SERVER_NAME=localhost", "SERVER_PORT=80", "HTTP_HOST=localhost"},
			"those of a request to localhost on port 80; through fastcgi://127.0.0.1:9000 they are what the web server sends: nginx's $server_name (empty without a server_name), $server_port (the port it listens on) and $host"},
		{"fastcgi before http", "fastcgi://127.0.0.1:9000,http://127.0.0.1:8080", "/cgi-bin/env.sh/x",
			[]string{"SERVER_NAME=127.0.0.1", "SERVER_PORT=8080", "HTTP_HOST=127.0.0.1:8080"}, "request to 127.0.0.1 on port 8080; through fastcgi://127.0.0.1:9000 they"},
		{"scgi alone", "scgi://127.0.0.1:4000", "/cgi-bin/env.sh/x",
			[]string{"SERVER_NAME=localhost", "SERVER_PORT=80", "HTTP_HOST=localhost"}, "through scgi://127.0.0.1:4000 they"},
		{"cgi front", "cgi:", "/cgi-bin/env.sh/x",
			[]string{"SERVER_NAME=localhost", "SERVER_PORT=80", "HTTP_HOST=localhost"}, "through cgi: they"},
		{"fastcgi, a whole URL", "fastcgi://127.0.0.1:9000", "http://example.org:8081/cgi-bin/env.sh/x",
			[]string{"SERVER_NAME=example.org", "SERVER_PORT=8081", "HTTP_HOST=example.org:8081"}, "request to example.org on port 8081; through fastcgi://127.0.0.1:9000 they"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Mounts: []Mount{mustMount(t, "/cgi-bin/=cgi:"+cgiDir)}}
			for _, l := range strings.Split(tt.listen, ",") {
				cfg.Listen = append(cfg.Listen, mustAddr(t, l))
			}
			srv, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			r, err := srv.ExplainRequest("GET", tt.target)
			if err != nil {
				t.Fatalf("ExplainRequest(GET, %q): %v", tt.target, err)
			}
			e := srv.Explain(r)
			if e.Status != 0 {
				t.Fatalf("Explain(%s) = status %d (%s); want 0", r.URL, e.Status, e.Reason)
			}
			for _, w := range tt.want {
				if !slices.Contains(e.Vars, w) {
					t.Errorf("Explain(%s).Vars = %q; want %q among them", r.URL, e.Vars, w)
				}
			}
			var note string
			for _, n := range e.Notes {
				if strings.HasPrefix(n, "SERVER_NAME, SERVER_PORT and HTTP_HOST") {
					note = n
				}
			}
			switch {
			case tt.note == "" && note != "":
				t.Errorf("Explain(%s).Notes has %q; want no note on SERVER_PORT", r.URL, note)
			case tt.note != "" && !strings.Contains(note, tt.note):
				t.Errorf("Explain(%s).Notes = %q; want one saying %q", r.URL, e.Notes, tt.note)
			}
		})
	}
}

func writeFile(t *testing.T, name, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
}
