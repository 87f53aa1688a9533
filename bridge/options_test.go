package bridge

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestParseMountOptions checks every kind's options: each declared one is
// accepted with a good value, and misspelt, unknown, repeated or ill-typed
// ones are errors that say what was wrong, naming the closest option.
func TestParseMountOptions(t *testing.T) {
	for _, tt := range []struct {
		mount string
		want  string // a substring of the error; "" means accepted
	}{
		{"/a/=fastcgi://127.0.0.1:9000?max_conns=4", ""},
		{"/a/=fastcgi+unix:///run/php.sock?max_conns=5&ext=.php5&index=main.php&front=", ""},
		{"/a/=fastcgi+exec:/usr/bin/php-cgi?workers=4&max_requests=500&min_workers=1&idle_timeout=10s", ""},
		{"/a/=scgi://127.0.0.1:4000?max_conns=2", ""},
		{"/a/=http://127.0.0.1:5000/base?max_conns=2", ""},
		{"/a/=cgi:/usr/lib/cgi-bin?from=script-filename", ""},
		{"/a/=fastcgi://127.0.0.1:9000?max_con=4", `unknown option "max_con" (did you mean max_conns?); fastcgi:// takes max_conns, read_timeout, ext, index, front, alias`},
		{"/a/=cgi:/srv/cgi?bogus=1", `unknown option "bogus"; cgi: takes symlinks, from`},
		{"/a/=scgi://127.0.0.1:4000?workers=2", `unknown option "workers"; scgi:// takes max_conns, read_timeout`},
		{"/a/=fastcgi+exec:/usr/bin/php-cgi?max_conns=2", `unknown option "max_conns"`},
		{"/a/=fastcgi+exec:/usr/bin/php-cgi?worker=2", `(did you mean workers?)`},
		{"/a/=fastcgi://127.0.0.1:9000?max_conns=x", `max_conns="x": want a positive number`},
		{"/a/=fastcgi://127.0.0.1:9000?max_conns=0", `max_conns="0": want a positive number`},
		{"/a/=fastcgi+exec:/usr/bin/php-cgi?idle_timeout=10", `idle_timeout="10": want a duration such as 10s`},
		{"/a/=cgi:/srv/cgi?from=path", `from="path": want script-filename`},
		{"/a/=scgi://127.0.0.1:4000?max_conns=1&max_conns=2", `option max_conns given 2 times`},
		{"/a/=fastcgi+fd://0", `fastcgi+fd is not a backend; ferry's backends are http://, fastcgi://`},
		{"/a/=127.0.0.1:9000", `did you mean http://127.0.0.1:9000`},
		{"/a/=gopher://h:70", `unknown scheme "gopher"`},
	} {
		t.Run(tt.mount, func(t *testing.T) {
			_, err := ParseMount(tt.mount)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ParseMount(%q): %v; want no error", tt.mount, err)
			case tt.want != "" && err == nil:
				t.Errorf("ParseMount(%q) succeeded; want an error with %q", tt.mount, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("ParseMount(%q) = %q; want it to contain %q", tt.mount, err, tt.want)
			}
			if err != nil && strings.Count(err.Error(), "bridge:") != 1 {
				t.Errorf("ParseMount(%q) = %q: says bridge: more than once", tt.mount, err)
			}
		})
	}
}

// TestBackendTable checks that every scheme that can be a back has exactly
// one kind in the table, that no front-only scheme has one, and that each
// option is declared once with a doc.
func TestBackendTable(t *testing.T) {
	seen := map[string]int{}
	for _, k := range Backends() {
		if k.Summary == "" || k.build == nil {
			t.Errorf("kind %v has no summary or no constructor", k.Schemes)
		}
		names := map[string]bool{}
		for _, o := range k.Options {
			if names[o.Name] || o.Doc == "" || o.Default == "" {
				t.Errorf("kind %v: option %q repeated or without doc/default", k.Schemes, o.Name)
			}
			names[o.Name] = true
		}
		for _, s := range k.Schemes {
			seen[s]++
		}
	}
	for _, sc := range schemes {
		if sc.back && seen[sc.name] != 1 {
			t.Errorf("back scheme %s has %d kinds; want 1", sc.name, seen[sc.name])
		}
		if !sc.back && seen[sc.name] != 0 {
			t.Errorf("front-only scheme %s has a kind of back", sc.name)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"max_con", "max_conns", 2}, {"worker", "workers", 1}, {"ext", "index", 4}, {"abc", "", 3},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d; want %d", tt.a, tt.b, got, tt.want)
		}
	}
	if !slices.Equal(strings.Fields(schemeNames(func(s *scheme) bool { return s.front && s.form == formFD })), []string{"fastcgi+fd://,", "http+fd://,", "scgi+fd://"}) {
		t.Errorf("schemeNames: %q", schemeNames(func(s *scheme) bool { return s.front && s.form == formFD }))
	}
}

// TestOptionCheckNumbers: a count or positive number is checked for its
// range, Max included, as the configuration file's loader checks a key.
func TestOptionCheckNumbers(t *testing.T) {
	for _, tt := range []struct {
		o    Option
		v    string
		want string // "" for no error
	}{
		{Option{Type: Count}, "0", ""},
		{Option{Type: Count}, "-1", "want a whole number, 0 or more"},
		{Option{Type: PositiveInt}, "0", "want a positive number"},
		{Option{Type: PositiveInt, Max: 3}, "3", ""},
		{Option{Type: PositiveInt, Max: 3}, "4", "want at most 3"},
		{Option{Type: Count, Max: 1024}, "2000", "want at most 1024"},
	} {
		err := tt.o.check(tt.v)
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
			t.Errorf("%v check(%q) = %v; want %q", tt.o.Type, tt.v, err, tt.want)
		}
	}
}
