package httpsyntax

import (
	"fmt"
	"testing"
)

func TestClasses(t *testing.T) {
	for _, tc := range []struct {
		s          string
		token, ctl bool
	}{
		{"Content-Type", true, false},
		{"x!#$%&'*+-.^_`|~9", true, false},
		{"", false, false},
		{"a b", false, false},
		{"a:b", false, false},
		{"é", false, false},
		{"a\tb", false, false},
		{"a\x00b", false, true},
		{"a\x7f", false, true},
		{"a\r\n", false, true},
	} {
		if got := IsToken(tc.s); got != tc.token {
			t.Errorf("IsToken(%q) = %v", tc.s, got)
		}
		if got := IsToken([]byte(tc.s)); got != tc.token {
			t.Errorf("IsToken([]byte(%q)) = %v", tc.s, got)
		}
		if got := HasCTL(tc.s); got != tc.ctl {
			t.Errorf("HasCTL(%q) = %v", tc.s, got)
		}
	}
}

func Example() {
	fmt.Println(IsToken("X-Request-Id"), IsToken("X Request"), HasCTL("ok\tvalue"), HasCTL("bad\x01"))
	// Output: true false false true
}
