package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
)

// TestDebianGitwebSymlink is the README's cgi-bin recipe with Debian's
// gitweb: /usr/lib/cgi-bin/gitweb.cgi is a symbolic link into
// /usr/share/gitweb, which Debian's Apache follows (SymLinksIfOwnerMatch),
// and so must ferry's default; symlinks=never refuses it with 403.
func TestDebianGitwebSymlink(t *testing.T) {
	peerstest.Need(t, "perl", "git")
	const link = "/usr/lib/cgi-bin/gitweb.cgi"
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		peerstest.Need(t, "gitweb") // the package that installs the link
		t.Skipf("%s is not a symbolic link here", link)
	}
	dir := testdir.Open(t)
	conf := filepath.Join(dir, "gitweb.conf")
	if err := os.WriteFile(conf, []byte("our $projectroot = \""+dir+"\";\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startFerry(t, "--mount", "/cgi-bin/=cgi:/usr/lib/cgi-bin", "--env", "GITWEB_CONFIG="+conf)
	code, body := httpGet(t, p.URL+"/cgi-bin/gitweb.cgi")
	if code == 403 || !strings.Contains(body, "gitweb") {
		t.Errorf("GET gitweb.cgi = %d; want gitweb's own page:\n%.300s\n%s", code, body, p.logs)
	}
	never := startFerry(t, "--mount", "/cgi-bin/=cgi:/usr/lib/cgi-bin?symlinks=never")
	if code, _ := httpGet(t, never.URL+"/cgi-bin/gitweb.cgi"); code != 403 {
		t.Errorf("GET gitweb.cgi with symlinks=never = %d; want 403", code)
	}
	if !strings.Contains(never.logs.String(), "symbolic link") {
		t.Errorf("the refusal is not logged with its reason:\n%s", never.logs)
	}
}
