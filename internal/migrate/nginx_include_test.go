package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNginxIncludeErrors: a file that includes itself, directly or not, is
// an error naming each include of the cycle by file and line, as migrate
// apache names an Include cycle; it was reported as "nesting too deep"
// with the line of one include, leaving the user to find the cycle. nginx
// -t on such a file dies of SIGSEGV (nginx 1.22.1: its include recursion
// overflows the stack) without a word. Includes nested more than
// Limits.MaxDepth deep are an error naming the chain.
func TestNginxIncludeErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // DIR stands for the directory; main.conf is the input
		lim   Limits
		want  error
		where []string // in the message, DIR/ removed
	}{
		{name: "cycle",
			files: map[string]string{
				"main.conf": "events {}\nhttp {\n    include DIR/a.conf;\n}\n",
				"a.conf":    "# a\ninclude DIR/b.conf;\n",
				"b.conf":    "# b\n\ninclude DIR/a.conf;\n",
			},
			want:  ErrIncludeCycle,
			where: []string{"b.conf:3: migrate: include cycle: a.conf:2 includes b.conf, b.conf:3 includes a.conf"}},
		{name: "self",
			files: map[string]string{"main.conf": "http {\n    include DIR/main.conf;\n}\n"},
			want:  ErrIncludeCycle,
			where: []string{"main.conf:2: migrate: include cycle: main.conf:2 includes main.conf"}},
		{name: "wildcard matching its own file",
			files: map[string]string{
				"main.conf":        "http {\n    include DIR/conf.d/*.conf;\n}\n",
				"conf.d/a.conf":    "server_tokens off;\n",
				"conf.d/more.conf": "include DIR/conf.d/*.conf;\n",
			},
			want:  ErrIncludeCycle,
			where: []string{"conf.d/more.conf:1: migrate: include cycle: conf.d/more.conf:1 includes conf.d/more.conf"}},
		{name: "cycle in nginx -T output",
			files: map[string]string{"main.conf": "# configuration file DIR/nginx.conf:\nhttp {\n    include DIR/a.conf;\n}\n\n" +
				"# configuration file DIR/a.conf:\ninclude DIR/nginx.conf;\n\n"},
			want:  ErrIncludeCycle,
			where: []string{"a.conf:1: migrate: include cycle: nginx.conf:2 includes a.conf, a.conf:1 includes nginx.conf"}},
		{name: "depth", lim: Limits{MaxDepth: 3},
			files: map[string]string{
				"main.conf": "include DIR/1.conf;\n", "1.conf": "include DIR/2.conf;\n", "2.conf": "include DIR/3.conf;\n",
				"3.conf": "include DIR/4.conf;\n", "4.conf": "server_tokens off;\n",
			},
			want: ErrTooDeep,
			where: []string{"3.conf:1: migrate: nesting too deep: includes nest more than 3 deep: " +
				"main.conf:1 includes 1.conf, 1.conf:1 includes 2.conf, 2.conf:1 includes 3.conf, 3.conf:1 includes 4.conf"}},
		{name: "empty file past the depth", lim: Limits{MaxDepth: 1},
			files: map[string]string{"main.conf": "include DIR/1.conf;\n", "1.conf": "include DIR/2.conf;\n", "2.conf": ""},
			want:  ErrTooDeep,
			where: []string{"1.conf:1: migrate: nesting too deep: includes nest more than 1 deep: main.conf:1 includes 1.conf, 1.conf:1 includes 2.conf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(strings.ReplaceAll(data, "DIR", dir)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			main := filepath.Join(dir, "main.conf")
			_, err := Nginx([]string{main}, Options{Limits: tt.lim})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Nginx(%s) = %v; want %v", main, err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Nginx(%s) = %T; want a *ParseError", main, err)
			}
			msg := strings.ReplaceAll(err.Error(), dir+"/", "")
			for _, w := range tt.where {
				if !strings.Contains(msg, w) {
					t.Errorf("Nginx(%s) = %q; want %q in it", main, msg, w)
				}
			}
		})
	}
}
