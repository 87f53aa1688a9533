package migrate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// findingIDs lists every kind of finding migrate reports.
var findingIDs = []string{"cve-2019-11043", "fix-pathinfo", "php-upload-exec", "httpoxy", "cgi-dir-writable", "cgi-source-served", "fastcgi-param-twice", "php-fpm-exposed", "php-value-from-client"}

// TestFindingsCoverage: each finding is produced by the corpus cases named
// here (httpoxy by both servers, php-fpm-exposed from a pool file too),
// and the clean cases have no finding and nothing for a person to do.
func TestFindingsCoverage(t *testing.T) {
	want := map[string][]string{
		"cve-2019-11043":        {"nginx/cve-2019-11043"},
		"fix-pathinfo":          {"nginx/fix-pathinfo", "apache/mod_php-unsafe"},
		"php-upload-exec":       {"apache/mod_php-unsafe"},
		"httpoxy":               {"apache/scriptalias", "apache/mod_php-unsafe", "nginx/passes", "nginx/fcgiwrap"},
		"cgi-dir-writable":      {"apache/cgi-dir-writable"},
		"cgi-source-served":     {"apache/nocgi"},
		"fastcgi-param-twice":   {"nginx/cve-2019-11043"},
		"php-fpm-exposed":       {"nginx/cve-2019-11043", "apache/php-fpm-exposed", "apache/mod_php-unsafe", "nginx/php-fpm-pool"},
		"php-value-from-client": {"nginx/php-value-client", "apache/mod_php-unsafe"},
	}
	clean := []string{"apache/clean", "nginx/clean"}
	cases := corpusCases(t)
	t.Chdir(corpus)
	got := map[string][]string{} // case -> finding IDs
	for _, c := range cases {
		res := runCase(t, c)
		for _, f := range res.Report.Findings {
			if !slices.Contains(findingIDs, f.ID) {
				t.Errorf("%s: finding %q is not in findingIDs", c.name, f.ID)
			}
			if f.File == "" || f.Line == 0 || f.Fix == "" {
				t.Errorf("%s: finding %+v lacks file:line or fix", c.name, f)
			}
			got[c.name] = append(got[c.name], f.ID)
		}
		if slices.Contains(clean, c.name) {
			if len(res.Report.Findings) > 0 || res.Report.NeedsPerson() {
				t.Errorf("clean case %s: findings %v, needs a person %v", c.name, got[c.name], res.Report.NeedsPerson())
			}
		}
	}
	for _, id := range findingIDs {
		if len(want[id]) == 0 {
			t.Errorf("no corpus case named for finding %s", id)
		}
		for _, name := range want[id] {
			if !slices.Contains(got[name], id) {
				t.Errorf("%s: findings %v; want %s among them", name, got[name], id)
			}
		}
	}
	for _, name := range clean {
		if !slices.ContainsFunc(cases, func(c corpusCase) bool { return c.name == name }) {
			t.Errorf("clean case %s is not in the corpus", name)
		}
	}
}

// TestCGIDirWritable: a script directory anyone can write to is a
// finding; the same directory mode 0755 is not.
func TestCGIDirWritable(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "srv", "cgi")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, "site.conf")
	if err := os.WriteFile(conf, []byte("RequestHeader unset Proxy early\nScriptAlias /cgi-bin/ /srv/cgi/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o755, 0o777} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		res, err := Apache([]string{conf}, Options{Chroot: root})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, f := range res.Report.Findings {
			ids = append(ids, f.ID+": "+f.Message)
		}
		flagged := strings.Contains(strings.Join(ids, "\n"), "cgi-dir-writable")
		if flagged != (mode == 0o777) {
			t.Errorf("mode %v: findings %q; want cgi-dir-writable %v", mode, ids, mode == 0o777)
		}
	}
}
