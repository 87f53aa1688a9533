package migrate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferrygw/ferry/bridge"
)

func seeds(f *testing.F, dir string) {
	files, _ := filepath.Glob(filepath.Join("../../testdata/migrate", dir, "*.conf"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
}

// FuzzApacheConfig: the parser never panics, and fails only with its named
// errors.
func FuzzApacheConfig(f *testing.F) {
	seeds(f, "apache")
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseApache("fuzz.conf", data, Limits{}); err != nil && !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrTooDeep) && !errors.Is(err, ErrLineTooLong) && !errors.Is(err, ErrFileTooLarge) {
			t.Fatalf("unnamed error: %v", err)
		}
	})
}

// FuzzApacheMigrate: translating any configuration that parses never
// panics, and the ferry configuration it writes loads back.
func FuzzApacheMigrate(f *testing.F) {
	seeds(f, "apache")
	f.Add([]byte("<Directory>\nAllowOverride All\nRequire all denied\n</Directory>\nAlias /x\n<Files>\nDeny from all\n</Files>\n"))
	f.Add([]byte("SetHandler application/x-httpd-php\nAliasMatch\nphp_value a b\n<Location>\nphp_flag c on\n</Location>\n"))
	f.Fuzz(func(t *testing.T, data []byte) { migratesToLoadable(t, Apache, data) })
}

// FuzzNginxMigrate: the same for nginx.
func FuzzNginxMigrate(f *testing.F) {
	seeds(f, "nginx")
	f.Add([]byte("server {\nlisten 01;\nroot \"/srv\";\nlocation ~ \\.php$ {\nfastcgi_pass unix:/x.sock;\n}\n}\n"))
	f.Fuzz(func(t *testing.T, data []byte) { migratesToLoadable(t, Nginx, data) })
}

// migratesToLoadable translates data, as a file, with translate (Apache or
// Nginx); if it parses, the ferry.toml written for it must load.
func migratesToLoadable(t *testing.T, translate func([]string, Options) (*Result, error), data []byte) {
	conf := filepath.Join(t.TempDir(), "fuzz.conf")
	if err := os.WriteFile(conf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := translate([]string{conf}, Options{Limits: Limits{MaxFiles: 20}})
	if err != nil {
		return
	}
	var b bytes.Buffer
	if err := bridge.WriteConfig(&b, res.Config); err != nil {
		t.Fatal(err)
	}
	if _, err := bridge.ParseConfig("ferry.toml", b.Bytes()); err != nil {
		t.Fatalf("ferry.toml does not load: %v\n%s", err, b.String())
	}
}

// FuzzNginxConfig: the parser never panics, and fails only with its named
// errors.
func FuzzNginxConfig(f *testing.F) {
	seeds(f, "nginx")
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseNginx("fuzz.conf", data, Limits{}); err != nil && !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrTooDeep) && !errors.Is(err, ErrLineTooLong) && !errors.Is(err, ErrFileTooLarge) {
			t.Fatalf("unnamed error: %v", err)
		}
	})
}

func TestLimits(t *testing.T) {
	deep := []byte{}
	for range 40 {
		deep = append(deep, "a {\n"...)
	}
	if _, err := ParseNginx("x", deep, Limits{}); !errors.Is(err, ErrTooDeep) {
		t.Errorf("ParseNginx(40 nested blocks) = %v; want ErrTooDeep", err)
	}
	if _, err := ParseApache("x", make([]byte, 100), Limits{MaxFileSize: 10}); !errors.Is(err, ErrFileTooLarge) {
		t.Errorf("ParseApache(100 bytes, max 10) = %v; want ErrFileTooLarge", err)
	}
	long := append([]byte("SetEnv A "), make([]byte, 200)...)
	for i := range long[9:] {
		long[9+i] = 'x'
	}
	if _, err := ParseApache("x", long, Limits{MaxLine: 100}); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("ParseApache(long line) = %v; want ErrLineTooLong", err)
	}
}

// TestMalformed: each malformed configuration fails with its named error at
// the line that holds the fault.
func TestMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, kind, conf string
		want             error
		line             int
	}{
		{"apache unbalanced quotes", "apache", "ServerName x\nDocumentRoot \"/srv\n", ErrSyntax, 2},
		{"apache close without open", "apache", "\n</Directory>\n", ErrSyntax, 2},
		{"apache section without >", "apache", "<Directory /x\n", ErrSyntax, 1},
		{"apache never closed", "apache", "<Directory /x>\n<Files a>\n</Files>\n", ErrSyntax, 1},
		{"apache wrong close", "apache", "<Directory /x>\n</Location>\n", ErrSyntax, 2},
		{"apache NUL", "apache", "ServerName x\nDocumentRoot \"\x00\"\n", ErrSyntax, 2},
		{"apache NUL in a comment", "apache", "# \x00\n", ErrSyntax, 1},
		{"nginx unexpected }", "nginx", "http {\n}\n}\n", ErrSyntax, 3},
		{"nginx unclosed block", "nginx", "http {\nserver {\n", ErrSyntax, 0},
		{"nginx NUL", "nginx", "http {\n  root /\x00;\n}\n", ErrSyntax, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parse := ParseApache
			if tc.kind == "nginx" {
				parse = ParseNginx
			}
			_, err := parse("t.conf", []byte(tc.conf), Limits{})
			var pe *ParseError
			if !errors.Is(err, tc.want) || !errors.As(err, &pe) {
				t.Fatalf("parse = %v; want a ParseError of %v", err, tc.want)
			}
			if tc.line > 0 && pe.Line != tc.line {
				t.Errorf("parse = %v; want line %d", err, tc.line)
			}
			if pe.File != "t.conf" {
				t.Errorf("parse = %v; want the file named", err)
			}
		})
	}
}
