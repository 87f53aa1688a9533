package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/bridge"
)

// TestMigrateChecks runs ferry migrate on the corpus and on the
// configurations Debian ships, and ferry check on every ferry.toml it
// writes: only checks that need the input's paths on this machine may fail.
func TestMigrateChecks(t *testing.T) {
	cases := []struct {
		server, file string
		want         int
		findings     []string
	}{
		{"apache", "../../testdata/migrate/apache/clean.conf", 0, nil},
		{"nginx", "../../testdata/migrate/nginx/cve-2019-11043.conf", 1, []string{"cve-2019-11043", "fastcgi-param-twice", "php-fpm-exposed"}},
		{"nginx", "../../testdata/migrate/nginx/clean.conf", 0, nil},
		{"apache", "../../testdata/migrate/apache/fcgid.conf", 1, nil},
		{"apache", "../../testdata/migrate/apache/mod_php.conf", 1, nil},
		{"apache", "../../testdata/migrate/apache/modperl.conf", 1, nil},
		{"apache", "../../testdata/migrate/apache/modpython.conf", 1, nil},
		{"apache", "/etc/apache2/conf-available/serve-cgi-bin.conf", 1, []string{"httpoxy"}},
		{"apache", "/etc/apache2/conf-available/php8.2-fpm.conf", 1, nil},
		{"apache", "/etc/apache2/conf-available/gitweb.conf", 1, []string{"httpoxy"}},
		{"apache", "/etc/apache2/conf-available/cgit.conf", 1, []string{"httpoxy"}},
		{"nginx", "/etc/nginx/snippets/fastcgi-php.conf", 0, nil},
		{"nginx", "/etc/nginx/fastcgi_params", 0, nil},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			if _, err := os.Stat(tc.file); err != nil {
				t.Skipf("%s is not installed: %v", tc.file, err)
			}
			dir := t.TempDir()
			var stdout, stderr bytes.Buffer
			args := []string{"migrate", tc.server, tc.file}
			if strings.HasSuffix(tc.file, "mod_php.conf") {
				// docs/migrate/mod_php.md: the pool that replaces mod_php
				if _, err := os.Stat("/etc/php/8.2/fpm/pool.d/www.conf"); err != nil {
					t.Skipf("php8.2-fpm is not installed: %v", err)
				}
				args = append(args, "/etc/php/8.2/fpm/pool.d/www.conf")
			}
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
				if fd.Severity == bridge.Problem && !strings.Contains(fd.Msg, "does not exist") && !strings.Contains(fd.Msg, "not a directory") {
					t.Errorf("ferry check: %s: %s", fd.Key(), fd.Msg)
				}
			}
		})
	}
}
