package migrate

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// nocgiTree writes a script directory and a script file for the
// TestApacheNoCGIModule cases into dir: DIR/cgi-bin/test.sh (the target of
// ScriptAlias, ScriptAliasMatch and an ExecCGI Alias) and DIR/cgit.cgi (a
// ScriptAlias to one file, as Debian's cgit.conf has).
func nocgiTree(t *testing.T, dir string) {
	t.Helper()
	script := "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho ran\n"
	for _, f := range []string{"cgi-bin/test.sh", "cgit.cgi"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestApacheNoCGIModule: an input that loads modules, but neither mod_cgi
// nor mod_cgid, makes no cgi: mount, as Apache runs no script there: the
// report says why and what Apache serves instead. Debian's cgit.conf
// (ScriptAlias /cgit/ "/usr/lib/cgit/cgit.cgi/") on the stock tree
// (mpm_prefork and mod_php) became a /cgit/ mount running cgit, where
// Apache answers 404 under /cgit/; a ScriptAlias of a directory became a
// mount running scripts Apache sends as files (their source: a finding).
// A CGI module loaded anywhere, even after the ScriptAlias, runs them, as
// does one the input does not show (no LoadModule line at all). The
// claims of the notes are checked against a real Apache without a CGI
// module.
func TestApacheNoCGIModule(t *testing.T) {
	dir := t.TempDir()
	nocgiTree(t, dir)
	const modules = "LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\nLoadModule mime_module /usr/lib/apache2/modules/mod_mime.so\n"
	tests := []struct {
		name, conf string
		mounts     []string // mount prefixes
		note       string   // in the report's note of the ScriptAlias-like line
		finding    bool     // cgi-source-served
	}{
		{name: "no LoadModule at all", conf: "ScriptAlias /cgi-bin/ DIR/cgi-bin/\n", mounts: []string{"/cgi-bin/"}},
		{name: "mod_cgid", conf: modules + "LoadModule cgid_module /usr/lib/apache2/modules/mod_cgid.so\nScriptAlias /cgi-bin/ DIR/cgi-bin/\n", mounts: []string{"/cgi-bin/"}},
		{name: "mod_cgi after the ScriptAlias", conf: modules + "ScriptAlias /cgi-bin/ DIR/cgi-bin/\nLoadModule cgi_module /usr/lib/apache2/modules/mod_cgi.so\n", mounts: []string{"/cgi-bin/"}},
		{name: "ScriptAlias of a directory", conf: modules + "ScriptAlias /cgi-bin/ DIR/cgi-bin/\n",
			note: "neither mod_cgi nor mod_cgid is loaded (no LoadModule of the input loads either), so Apache runs no CGI script: it sends the files of DIR/cgi-bin under /cgi-bin/ as files (a script's source, not its output); no mount", finding: true},
		{name: "Debian's cgit.conf", conf: modules + "ScriptAlias /cgit/ \"DIR/cgit.cgi/\"\n<Directory \"DIR/\">\n  Options ExecCGI FollowSymlinks\n  Require all granted\n</Directory>\n",
			note: "it answers 404 for every URL under /cgit/ (DIR/cgit.cgi is a file, and the rest of the URL would be its path info, which Apache refuses for a file); no mount"},
		{name: "ScriptAlias of a file", conf: modules + "ScriptAlias /tool DIR/cgit.cgi\n",
			note: "it sends DIR/cgit.cgi at /tool as a file (a script's source, not its output); no mount", finding: true},
		{name: "ScriptAliasMatch", conf: modules + "ScriptAliasMatch ^/m/(.*) DIR/cgi-bin/$1\n",
			note: "it sends the files ^/m/(.*) maps to (DIR/cgi-bin/$1) as files", finding: true},
		{name: "Alias of an ExecCGI directory", conf: modules + "Alias /al/ DIR/cgi-bin/\n<Directory DIR/cgi-bin>\n  Options ExecCGI\n  AddHandler cgi-script .sh\n</Directory>\n",
			note: "it sends the files of DIR/cgi-bin under /al/ as files", finding: true},
		{name: "mod_cgi in an IfModule that does not hold", conf: modules + "<IfModule mod_cgid.c>\n  LoadModule cgi_module /usr/lib/apache2/modules/mod_cgi.so\n</IfModule>\nScriptAlias /cgi-bin/ DIR/cgi-bin/\n",
			note: "no mount", finding: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := filepath.Join(t.TempDir(), "site.conf")
			if err := os.WriteFile(conf, []byte(strings.ReplaceAll(tt.conf, "DIR", dir)), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := Apache([]string{conf}, Options{ServerRoot: dir})
			if err != nil {
				t.Fatal(err)
			}
			var mounts []string
			for _, m := range res.Config.Mounts {
				mounts = append(mounts, m.Prefix)
			}
			if strings.Join(mounts, " ") != strings.Join(tt.mounts, " ") {
				t.Errorf("mounts %q; want %q", mounts, tt.mounts)
			}
			if tt.note != "" {
				want := strings.ReplaceAll(tt.note, "DIR", dir)
				found := false
				var notes []string
				for _, e := range res.Report.Entries {
					if strings.Contains(e.Note, want) {
						found = true
					}
					notes = append(notes, e.Directive+": "+e.Note)
				}
				if !found {
					t.Errorf("report:\n%s\nwant a note with %q", strings.Join(notes, "\n"), want)
				}
			}
			var finding bool
			for _, f := range res.Report.Findings {
				finding = finding || f.ID == "cgi-source-served"
			}
			if finding != tt.finding {
				t.Errorf("cgi-source-served finding: %v; want %v (findings %+v)", finding, tt.finding, res.Report.Findings)
			}
		})
	}

	// What the notes say Apache serves, from a real Apache without
	// mod_cgi and mod_cgid.
	t.Run("apache", func(t *testing.T) {
		peers.MakeWorldReadable(dir)
		site := strings.ReplaceAll(`ScriptAlias /cgi-bin/ DIR/cgi-bin/
ScriptAlias /cgit/ "DIR/cgit.cgi/"
ScriptAlias /tool DIR/cgit.cgi
ScriptAliasMatch ^/m/(.*) DIR/cgi-bin/$1
Alias /al/ DIR/cgi-bin/
<Directory DIR>
  Options ExecCGI FollowSymlinks
  AddHandler cgi-script .sh
  Require all granted
</Directory>
`, "DIR", dir)
		p := peerstest.ApacheFront(t, peers.ApacheFrontConfig{Conf: site})
		for _, c := range []struct {
			path   string
			status int
		}{
			{"/cgi-bin/test.sh", 200}, {"/cgit/", 404}, {"/cgit/repo/tree", 404}, {"/tool", 200}, {"/tool/x", 404},
			{"/m/test.sh", 200}, {"/al/test.sh", 200},
		} {
			resp, err := http.Get(p.URL + c.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || c.status == 200 && !strings.HasPrefix(string(body), "#!/bin/sh") {
				t.Errorf("GET %s = %d %q; want %d with the script's source", c.path, resp.StatusCode, body, c.status)
			}
		}
	})
}
