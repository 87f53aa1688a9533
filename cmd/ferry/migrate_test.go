package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// TestMigrateChecks runs ferry migrate on the corpus and on the
// configurations Debian ships, and ferry check on every ferry.toml it
// writes: only checks that need the input's paths on this machine may fail.
func TestMigrateChecks(t *testing.T) {
	const modPHP, fpmPool = "/etc/apache2/mods-available/php8.2.conf", "/etc/php/8.2/fpm/pool.d/www.conf"
	cases := []struct {
		server, file string
		want         int
		findings     []string
		// name, if set, names the subtest; before and after are inputs
		// given around file
		name          string
		before, after []string
	}{
		{"apache", "../../testdata/migrate/apache/clean.conf", 0, nil, "", nil, nil},
		{"nginx", "../../testdata/migrate/nginx/cve-2019-11043.conf", 1, []string{"cve-2019-11043", "fastcgi-param-twice", "php-fpm-exposed"}, "", nil, nil},
		{"nginx", "../../testdata/migrate/nginx/clean.conf", 0, nil, "", nil, nil},
		{"apache", "../../testdata/migrate/apache/fcgid.conf", 1, nil, "", nil, nil},
		{"apache", "../../testdata/migrate/apache/mod_php.conf", 1, nil, "", nil, nil},
		{"apache", "../../testdata/migrate/apache/modperl.conf", 1, nil, "", nil, nil},
		{"apache", "../../testdata/migrate/apache/modpython.conf", 1, nil, "", nil, nil},
		{"apache", "../../testdata/migrate/apache/mod_wsgi.conf", 1, nil, "", nil, nil},
		{"apache", "../../testdata/migrate/apache/mod_wsgi-embedded.conf", 1, nil, "", nil, nil},
		{"apache", "/etc/apache2/conf-available/serve-cgi-bin.conf", 1, []string{"httpoxy"}, "", nil, nil},
		{"apache", "/etc/apache2/conf-available/php8.2-fpm.conf", 1, nil, "", nil, nil},
		{"apache", "/etc/apache2/conf-available/gitweb.conf", 1, []string{"httpoxy"}, "", nil, nil},
		{"apache", "/etc/apache2/conf-available/cgit.conf", 1, []string{"httpoxy"}, "", nil, nil},
		{"nginx", "/etc/nginx/snippets/fastcgi-php.conf", 0, nil, "", nil, nil},
		{"nginx", "/etc/nginx/fastcgi_params", 0, nil, "", nil, nil},
		// dokuwiki's snippet alone: its Alias maps PHP files, but
		// mod_php's handler is in a file not given (review)
		{"apache", "/etc/dokuwiki/apache.conf", 1, nil, "dokuwiki-alone", nil, nil},
		// with the handler and the pool (docs/migrate/mod_php.md): the
		// Alias becomes a PHP mount; its AliasMatch lines cannot be
		// (untranslated), and nothing unsets Proxy (httpoxy)
		{"apache", "/etc/dokuwiki/apache.conf", 1, []string{"httpoxy"}, "dokuwiki", []string{modPHP}, []string{fpmPool}},
		// docs/migrate/mod_cgi.md's first command: Debian's whole tree
		// through its Include lines
		{"apache", "/etc/apache2/apache2.conf", 1, nil, "apache2.conf", nil, nil},
	}
	for _, tc := range cases {
		name := tc.name
		if name == "" {
			name = filepath.Base(tc.file)
		}
		t.Run(name, func(t *testing.T) {
			after := tc.after
			if strings.HasSuffix(tc.file, "mod_php.conf") {
				// docs/migrate/mod_php.md: the pool that replaces mod_php
				after = []string{fpmPool}
			}
			inputs := append(append(slices.Clone(tc.before), tc.file), after...)
			for _, f := range inputs {
				if _, err := os.Stat(f); err != nil {
					t.Skipf("%s is not installed: %v", f, err)
				}
			}
			dir := t.TempDir()
			var stdout, stderr bytes.Buffer
			args := append([]string{"migrate", tc.server}, inputs...)
			code := run(append(args, "--out", dir, "--format", "json"), &stdout, &stderr)
			if code != tc.want {
				t.Errorf("exit %d; want %d\n%s%s", code, tc.want, stdout.String(), stderr.String())
			}
			for _, id := range tc.findings {
				if !strings.Contains(stdout.String(), `"id": "`+id+`"`) {
					t.Errorf("no %s finding in:\n%s", id, stdout.String())
				}
			}
			if tc.findings == nil && strings.Contains(stdout.String(), `"id": "`) && tc.want == 0 {
				t.Errorf("findings in a clean file:\n%s", stdout.String())
			}
			f, err := bridge.LoadConfig(filepath.Join(dir, "ferry.toml"))
			if err != nil {
				t.Fatalf("ferry.toml does not load: %v", err)
			}
			cfg := f.Config
			for _, fd := range bridge.Check(context.Background(), cfg, bridge.CheckOptions{}) {
				if fd.Severity == bridge.Problem && !strings.Contains(fd.Msg, "does not exist") && !strings.Contains(fd.Msg, "not a directory") &&
					!strings.Contains(fd.Msg, "no such file or directory") { // a wsgi: interpreter not on this machine
					t.Errorf("ferry check: %s: %s", fd.Key(), fd.Msg)
				}
			}
		})
	}
}

// TestMigrateApacheIncludes: ferry migrate apache /etc/apache2/apache2.conf
// follows the includes as httpd does, so it writes what it writes from
// httpd's own list of them (apache2ctl -t -D DUMP_INCLUDES). Before, it read
// apache2.conf alone and translated only its Timeout.
func TestMigrateApacheIncludes(t *testing.T) {
	const conf = "/etc/apache2/apache2.conf"
	ctl := peerstest.Need(t, "apache2ctl")["apache2ctl"] // fails under CI=true when missing
	if _, err := os.Stat(conf); err != nil {
		t.Fatalf("apache2ctl is installed, but not Debian's %s: %v", conf, err)
	}
	dump, err := exec.Command(ctl, "-t", "-D", "DUMP_INCLUDES").CombinedOutput()
	if err != nil {
		t.Fatalf("apache2ctl -t -D DUMP_INCLUDES: %v\n%s", err, dump)
	}
	list := filepath.Join(t.TempDir(), "includes.txt")
	if err := os.WriteFile(list, dump, 0o644); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, in := range []string{conf, list} {
		dir := t.TempDir()
		var stdout, stderr bytes.Buffer
		if code := run([]string{"migrate", "apache", in, "--out", dir}, &stdout, &stderr); code == 2 {
			t.Fatalf("ferry migrate apache %s: exit 2\n%s", in, stderr.String())
		}
		for _, name := range []string{"ferry.toml", "front.conf"} {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			out[in+" "+name] = string(data)
		}
		if in == conf && strings.Count(stdout.String(), "\n") < 100 {
			t.Errorf("ferry migrate apache %s reported %d lines: were the includes read?\n%s", conf, strings.Count(stdout.String(), "\n"), stdout.String())
		}
	}
	for _, name := range []string{"ferry.toml", "front.conf"} {
		if a, b := out[conf+" "+name], out[list+" "+name]; a != b {
			t.Errorf("%s from %s differs from DUMP_INCLUDES's:\n%s", name, conf, firstDiff(b, a))
		}
	}
}
