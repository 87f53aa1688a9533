package conformance

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseEnvDump(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string // substring of the error; "" means no error
	}{
		{name: "empty", in: "", want: map[string]string{}},
		{name: "one", in: "A=1\n", want: map[string]string{"A": "1"}},
		{name: "no final newline", in: "A=1\nB=2", want: map[string]string{"A": "1", "B": "2"}},
		{name: "empty value", in: "CONTENT_LENGTH=\n", want: map[string]string{"CONTENT_LENGTH": ""}},
		{name: "equals in value", in: "QUERY_STRING=a=1&b=%2F\n", want: map[string]string{"QUERY_STRING": "a=1&b=%2F"}},
		{name: "space in value", in: "PATH_INFO=/extra/path x\n", want: map[string]string{"PATH_INFO": "/extra/path x"}},
		{name: "lower case", in: "read=5\nsha256=ab\n", want: map[string]string{"read": "5", "sha256": "ab"}},
		{
			name: "multi-line value",
			in:   "A=line1\nline2\n\nnot a name=x\nB=2\n",
			want: map[string]string{"A": "line1\nline2\n\nnot a name=x", "B": "2"},
		},
		{name: "value with CR kept", in: "A=1\r\n", want: map[string]string{"A": "1\r"}},
		{name: "digit first is a continuation", in: "A=1\n9X=2\n", want: map[string]string{"A": "1\n9X=2"}},
		{name: "first line not a variable", in: "hello\n", wantErr: `line 1 "hello" is not NAME=value`},
		{name: "first line empty name", in: "=x\n", wantErr: "line 1"},
		{name: "duplicate", in: "A=1\nB=2\nA=3\n", wantErr: "line 3: A given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEnvDump([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseEnvDump(%q) error = %v; want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseEnvDump(%q) error = %v", tt.in, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("parseEnvDump(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

// formatEnvDump writes vars the way env.pl does: sorted NAME=value lines.
func formatEnvDump(vars map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		b.WriteString(k + "=" + vars[k] + "\n")
	}
	return b.String()
}

// FuzzParseEnvDump checks that parsing never panics and that what it returns
// formats back to an equivalent dump.
func FuzzParseEnvDump(f *testing.F) {
	for _, s := range []string{"", "A=1\n", "A=1\nB=x=y\n", "A=l1\nl2\nB=2", "x\n", "A=1\nA=2\n", "_=\n\n\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		vars, err := parseEnvDump([]byte(in))
		if err != nil {
			return
		}
		for k := range vars {
			if !isEnvName(k) {
				t.Fatalf("parseEnvDump(%q) returned name %q", in, k)
			}
		}
		again, err := parseEnvDump([]byte(formatEnvDump(vars)))
		if err != nil {
			t.Fatalf("reparsing %q: %v", formatEnvDump(vars), err)
		}
		if !maps.Equal(vars, again) {
			t.Fatalf("round trip of %q: %q, then %q", in, vars, again)
		}
	})
}
