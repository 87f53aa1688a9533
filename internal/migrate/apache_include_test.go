package migrate

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestApacheIncludeErrors: an Include httpd refuses is an error of
// migrate too, naming the file and line of the Include (or of the bad
// line in an included file), and a cycle by its steps. Before includes
// were followed, they were only listed as untranslated.
func TestApacheIncludeErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // under the ServerRoot; main.conf is the input
		lim   Limits
		setup func(t *testing.T, root string)
		want  error
		where []string // in the message
	}{
		{name: "missing include", files: map[string]string{"main.conf": "Timeout 30\nInclude missing.conf\n"},
			want: fs.ErrNotExist, where: []string{"main.conf:2", "missing.conf"}},
		{name: "wildcard matching nothing", files: map[string]string{"main.conf": "Include conf.d/*.conf\n", "conf.d/README": "x\n"},
			want: ErrNoMatch, where: []string{"main.conf:1", `"*.conf"`}},
		{name: "wildcard in a missing directory", files: map[string]string{"main.conf": "Include nowhere/*.conf\n"},
			want: fs.ErrNotExist, where: []string{"main.conf:1"}},
		{name: "cycle", files: map[string]string{"main.conf": "Include a.conf\n", "a.conf": "Timeout 1\nInclude b.conf\n", "b.conf": "Include a.conf\n"},
			want: ErrIncludeCycle, where: []string{"b.conf:1", "a.conf:2 includes ", "b.conf, ", "b.conf:1 includes ", "a.conf"}},
		{name: "self", files: map[string]string{"main.conf": "Include main.conf\n"},
			want: ErrIncludeCycle, where: []string{"main.conf:1 includes "}},
		{name: "depth", lim: Limits{MaxDepth: 3},
			files: map[string]string{"main.conf": "Include 1.conf\n", "1.conf": "Include 2.conf\n", "2.conf": "Include 3.conf\n", "3.conf": "Include 4.conf\n", "4.conf": "Include 5.conf\n", "5.conf": "Timeout 1\n"},
			want:  ErrTooDeep, where: []string{"3.conf:1", "more than 3 deep", "main.conf:1 includes "}},
		{name: "unreadable", files: map[string]string{"main.conf": "Include secret.conf\n", "secret.conf": "Timeout 1\n"},
			setup: func(t *testing.T, root string) {
				if os.Geteuid() == 0 {
					t.Skip("root reads a file of mode 000")
				}
				if err := os.Chmod(filepath.Join(root, "secret.conf"), 0); err != nil {
					t.Fatal(err)
				}
			},
			want: fs.ErrPermission, where: []string{"main.conf:1", "secret.conf"}},
		{name: "symlink loop", files: map[string]string{"main.conf": "Include loop.conf\n"},
			setup: func(t *testing.T, root string) {
				if err := os.Symlink("loop.conf", filepath.Join(root, "loop.conf")); err != nil {
					t.Fatal(err)
				}
			},
			want: syscall.ELOOP, where: []string{"main.conf:1", "loop.conf"}},
		{name: "syntax error in an included file", files: map[string]string{"main.conf": "Include inc.conf\n", "inc.conf": "Timeout 1\n</Directory>\n"},
			want: ErrSyntax, where: []string{"inc.conf:2"}},
		{name: "two arguments", files: map[string]string{"main.conf": "Include a.conf b.conf\n"},
			want: ErrSyntax, where: []string{"main.conf:1", "one argument"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, data := range tt.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.setup != nil {
				tt.setup(t, root)
			}
			main := filepath.Join(root, "main.conf")
			_, err := Apache([]string{main}, Options{ServerRoot: root, Limits: tt.lim})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Apache(%s) = %v; want %v", main, err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Apache(%s) = %T; want a *ParseError", main, err)
			}
			for _, w := range tt.where {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Apache(%s) = %q; want %q in it", main, err, w)
				}
			}
		})
	}
}

// TestFnmatch: Include wildcards match names as httpd's apr_fnmatch with
// APR_FNM_PERIOD.
func TestFnmatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*.conf", "a.conf", true},
		{"*.conf", ".a.conf", false},
		{".*.conf", ".a.conf", true},
		{"*.conf", "a.conf~", false},
		{"[!0-9]*.conf", "a.conf", true},
		{"[!0-9]*.conf", "0a.conf", false},
		{"?.load", "x.load", true},
		{"*", "dir", true},
	}
	for _, tt := range tests {
		if got := fnmatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("fnmatch(%q, %q) = %v; want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}
