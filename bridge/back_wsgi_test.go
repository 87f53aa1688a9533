package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAppBackAddresses: wsgi: names a file by a path and a module by its
// dotted name; the application servers' options are checked by type.
func TestAppBackAddresses(t *testing.T) {
	for _, tt := range []struct {
		mount, path string // path: the Address's Path; "" for an error
		want        string // a substring of the error
	}{
		{"/a/=wsgi:/srv/app/wsgi.py?callable=app&workers=4&timeout=0&max_rss=512M", "/srv/app/wsgi.py", ""},
		{"/a/=wsgi:mysite.wsgi:application?chdir=/srv/mysite&pythonpath=/srv/lib:/opt/lib", "mysite.wsgi:application", ""},
		{"/a/=wsgi:mysite.wsgi", "mysite.wsgi", ""},
		{"/a/=psgi:/srv/app/app.psgi?workers=2&lib=/srv/lib&timeout=30s", "/srv/app/app.psgi", ""},
		{"/a/=cgi:/srv/cgi?persist=perl&workers=4&max_requests=100&max_rss=1G", "/srv/cgi", ""},
		{"/a/=wsgi:/srv/app/wsgi.py?timeout=soon", "", `timeout="soon": want a duration such as 30s (0: none)`},
		{"/a/=wsgi:/srv/app/wsgi.py?max_rss=lots", "", `max_rss="lots": want a size`},
		{"/a/=psgi:/srv/app/app.psgi?callable=app", "", `unknown option "callable"`},
		{"/a/=cgi:/srv/cgi?persist=python", "", `persist="python": want php or perl`},
	} {
		t.Run(tt.mount, func(t *testing.T) {
			m, err := ParseMount(tt.mount)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ParseMount(%q): %v", tt.mount, err)
			case tt.want == "" && m.Backend.Path != tt.path:
				t.Errorf("ParseMount(%q): path %q; want %q", tt.mount, m.Backend.Path, tt.path)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("ParseMount(%q) = %v; want an error with %q", tt.mount, err, tt.want)
			}
		})
	}
}

// TestAppBackBuildErrors: what a mount cannot be is said when the server
// is built, not at the first request.
func TestAppBackBuildErrors(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.pl")
	if err := os.WriteFile(script, []byte("#!/usr/bin/perl\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ mount, want string }{
		{"/a/=cgi:" + dir + "?workers=2", "workers needs persist"},
		{"/a/=cgi:" + script + "?persist=perl", "persist needs a directory"},
		{"/a/=wsgi:" + filepath.Join(dir, "missing.py"), "no such file"},
		{"/a/=wsgi:" + filepath.Join(dir, "app.py") + "?python=/no/such/python3", "/no/such/python3"},
		{"/a/=psgi:" + filepath.Join(dir, "missing.psgi"), "no such file"},
	} {
		m, err := ParseMount(tt.mount)
		if err == nil {
			_, err = New(Config{Mounts: []Mount{m}})
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want an error with %q", tt.mount, err, tt.want)
		}
	}
}
