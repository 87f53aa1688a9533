package bridge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	abs, _ := filepath.Abs("rel/dir")
	tests := []struct {
		in      string
		want    string // canonical String(); "" means an error
		network string
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", "tcp"},
		{"fastcgi://127.0.0.1:9000", "fastcgi://127.0.0.1:9000", "tcp"},
		{"fastcgi+unix:///run/app.sock", "fastcgi+unix:///run/app.sock", "unix"},
		{"scgi://[::1]:4000", "scgi://[::1]:4000", "tcp"},
		{"scgi+unix:///run/s.sock", "scgi+unix:///run/s.sock", "unix"},
		{"fastcgi+fd://0", "fastcgi+fd://0", "fd"},
		{"cgi:/usr/lib/cgi-bin", "cgi:/usr/lib/cgi-bin", "tcp"},
		{"cgi:rel/dir", "cgi:" + abs, "tcp"},
		{"cgi:/srv/cgi?from=script-filename", "cgi:/srv/cgi?from=script-filename", "tcp"},
		{"HTTP://127.0.0.1:80", "http://127.0.0.1:80", "tcp"},
		{"127.0.0.1:80", "", ""},
		{"http://127.0.0.1", "", ""},
		{"fastcgi+unix://relative.sock", "", ""},
		{"fastcgi+fd://x", "", ""},
		{"gopher://h:70", "", ""},
		{"cgi:", "cgi:", "tcp"}, // the CGI front
		{"scgi+fd://3", "scgi+fd://3", "fd"},
		{"http://:0/%00", "", ""},                  // NUL: refused, not spelt as a raw NUL (FuzzParseAddress)
		{"fastcgi+unix:///run/a%0Ab.sock", "", ""}, // a line feed in a socket path
		{"http://127.0.0.1:9000/a%3Fb%20c", "http://127.0.0.1:9000/a%3Fb%20c", "tcp"},
		{"scgi+unix:///run/a%3Fb.sock?max_conns=2", "scgi+unix:///run/a%3Fb.sock?max_conns=2", "unix"},
		{"", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := ParseAddress(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Errorf("ParseAddress(%q) = %v; want an error", tt.in, a)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAddress(%q): %v", tt.in, err)
			}
			if a.String() != tt.want || a.Network() != tt.network {
				t.Errorf("ParseAddress(%q) = %q (%s); want %q (%s)", tt.in, a.String(), a.Network(), tt.want, tt.network)
			}
		})
	}
}

func TestParseMount(t *testing.T) {
	for _, tt := range []struct {
		in, prefix, backend string
	}{
		{"/cgi-bin/=cgi:/usr/lib/cgi-bin", "/cgi-bin/", "cgi:/usr/lib/cgi-bin"},
		{"/=fastcgi://127.0.0.1:9000", "/", "fastcgi://127.0.0.1:9000"},
		{"cgi-bin=cgi:/x", "", ""},
		{"/x", "", ""},
		{"/x=nope", "", ""},
	} {
		m, err := ParseMount(tt.in)
		if tt.prefix == "" {
			if err == nil {
				t.Errorf("ParseMount(%q) = %+v; want an error", tt.in, m)
			}
			continue
		}
		if err != nil || m.Prefix != tt.prefix || m.Backend.String() != tt.backend {
			t.Errorf("ParseMount(%q) = %q %q, %v; want %q %q", tt.in, m.Prefix, m.Backend, err, tt.prefix, tt.backend)
		}
	}
}

// TestRouter checks longest-prefix routing, the redirect to a mount's
// directory, and the static root's rules.
func TestRouter(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "index.html"), []byte("home"), 0o644)
	os.WriteFile(filepath.Join(root, ".secret"), []byte("secret"), 0o644)
	os.Mkdir(filepath.Join(root, "empty"), 0o755)
	os.Mkdir(filepath.Join(root, "docs"), 0o755)
	os.WriteFile(filepath.Join(root, "docs", "index.html"), []byte("docs"), 0o644)
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	rt := &router{
		routes: []route{
			{prefix: "/app/api/", handler: named("api")},
			{prefix: "/app/", handler: named("app")},
			{prefix: "/exact", handler: named("exact")},
		},
		static: &staticFiles{root: root},
	}
	for _, tt := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/app/x", 200, "app"},
		{"GET", "/app/api/v1", 200, "api"},
		{"GET", "/app", 301, ""},
		{"GET", "/exact", 200, "exact"},
		{"GET", "/exact/sub", 200, "exact"},
		{"GET", "/exactly", 404, ""},
		{"GET", "/", 200, "home"},
		{"GET", "/docs/", 200, "docs"},
		{"GET", "/docs", 301, ""},
		{"GET", "/empty/", 403, ""},
		{"GET", "/.secret", 404, ""},
		{"GET", "/missing", 404, ""},
		{"POST", "/", 405, ""},
		{"HEAD", "/", 200, ""},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
			if w.Code != tt.status {
				t.Errorf("%s %s = %d; want %d", tt.method, tt.path, w.Code, tt.status)
			}
			if tt.body != "" && strings.TrimSpace(w.Body.String()) != tt.body {
				t.Errorf("%s %s body = %q; want %q", tt.method, tt.path, w.Body.String(), tt.body)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain.txt")
	os.WriteFile(file, []byte("x"), 0o644)
	mount := func(s string) Mount {
		m, err := ParseMount(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// unchecked skips ParseMount's option checks, which New repeats.
	unchecked := func(prefix, addr string) Mount {
		a, err := ParseAddress(addr)
		if err != nil {
			t.Fatal(err)
		}
		return Mount{Prefix: prefix, Backend: a}
	}
	scgi, _ := ParseAddress("scgi://127.0.0.1:4000")
	cgiFront, _ := ParseAddress("cgi:")
	for name, cfg := range map[string]Config{
		"twice":              {Mounts: []Mount{mount("/a/=cgi:" + dir), mount("/a/=cgi:" + dir)}},
		"missing dir":        {Mounts: []Mount{mount("/a/=cgi:" + dir + "/nope")}},
		"dir without slash":  {Mounts: []Mount{mount("/a=cgi:" + dir)}},
		"not executable":     {Mounts: []Mount{mount("/a=cgi:" + file)}},
		"bad from":           {Mounts: []Mount{unchecked("/a/", "cgi:"+dir+"?from=nope")}},
		"root not a dir":     {Root: file},
		"cgi front and more": {Listen: []Address{cgiFront, scgi}},
		"cgi mount no path":  {Mounts: []Mount{{Prefix: "/a/", Backend: cgiFront}}},
		"bad max_conns":      {Mounts: []Mount{unchecked("/a/", "http://127.0.0.1:1?max_conns=x")}},
		"unknown option":     {Mounts: []Mount{unchecked("/a/", "fastcgi://127.0.0.1:1?max_con=4")}},
		"front as a back":    {Mounts: []Mount{unchecked("/a/", "fastcgi+fd://0")}},
		"mode on tcp front":  {Listen: []Address{unchecked("/", "http://127.0.0.1:0?mode=0660").Backend}},
		"bad unix mode":      {Listen: []Address{unchecked("/", "scgi+unix:///tmp/x.sock?mode=999").Backend}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%s) succeeded; want an error", name)
		}
	}
}

// TestRouterMergeSlashesAllocs: merging slashes costs a path without
// "//" no allocation; one with them gets the merged path, and the
// request the front gave keeps its own.
func TestRouterMergeSlashesAllocs(t *testing.T) {
	var got *http.Request
	rt := &router{routes: []route{{prefix: "/cgi-bin/", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
	})}}}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/cgi-bin/x.sh/a/b?q=1", nil)
	if n := testing.AllocsPerRun(100, func() { rt.ServeHTTP(w, r) }); n != 0 {
		t.Errorf("routing %s: %v allocations; want 0", r.URL.Path, n)
	}
	r = httptest.NewRequest("GET", "//cgi-bin//x.sh/a//b?q=1", nil)
	rt.ServeHTTP(w, r)
	if want, seen := "/cgi-bin/x.sh/a/b //cgi-bin//x.sh/a//b?q=1", got.URL.Path+" "+got.RequestURI; seen != want || r.URL.Path != "//cgi-bin//x.sh/a//b" {
		t.Errorf("the mount saw %q (the front's path now %q); want %q", seen, r.URL.Path, want)
	}
}

// TestCleanPath: slashes merged and dot segments resolved as nginx and
// Apache route a path; a ".." above the root is refused.
func TestCleanPath(t *testing.T) {
	for _, tt := range []struct {
		in      string
		escaped bool
		want    string
		ok      bool
	}{
		{"/", false, "/", true},
		{"//", false, "/", true},
		{"/a//b///c", false, "/a/b/c", true},
		{"/a/b/", false, "/a/b/", true},
		{"/a/./b", false, "/a/b", true},
		{"/a/b/..", false, "/a/", true},
		{"/a/b/.", false, "/a/b/", true},
		{"/a/../../b", false, "", false},
		{"/..", false, "", false},
		{"/.well-known/x", false, "/.well-known/x", true},
		{"/a/..b/.c", false, "/a/..b/.c", true},
		{"/a/%2e%2E/b", true, "/b", true},
		{"/a/.%2e/b", true, "/b", true},
		{"/a%2F..%2Fb/c", true, "/a%2F..%2Fb/c", true},
		{"/%2e%2e/x", true, "", false},
	} {
		got, ok := cleanPath(tt.in, tt.escaped)
		if got != tt.want || ok != tt.ok {
			t.Errorf("cleanPath(%q, %v) = %q, %v; want %q, %v", tt.in, tt.escaped, got, ok, tt.want, tt.ok)
		}
	}
}
