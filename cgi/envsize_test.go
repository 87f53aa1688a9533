package cgi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestAppendEnvTooLarge: an environment execve would refuse (E2BIG) is
// refused here, with ErrEnvTooLarge: too many bytes in all, or one
// variable over MAX_ARG_STRLEN.
func TestAppendEnvTooLarge(t *testing.T) {
	many := http.Header{}
	for i := range 100000 {
		many["X"+strconv.FormatInt(int64(i), 36)] = []string{"1"}
	}
	long := http.Header{"X-Long": {strings.Repeat("v", MaxEnvVarBytes)}}
	fits := http.Header{"X-Ok": {strings.Repeat("v", 64<<10)}}
	for _, tt := range []struct {
		name string
		h    http.Header
		dst  []string
		want bool // too large
	}{
		{"100,000 headers", many, nil, true},
		{"one variable past 128 KiB", long, nil, true},
		{"64 KiB header", fits, nil, false},
		{"64 KiB header on 1 MiB of inherited variables", fits, []string{"BIG=" + strings.Repeat("x", MaxEnvBytes-4)}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "http://example.com/", nil)
			r.Header = tt.h
			_, err := AppendEnv(tt.dst, r, Script{Name: "/s"}, "ferry")
			if got := errors.Is(err, ErrEnvTooLarge); got != tt.want {
				t.Errorf("AppendEnv = %v; want ErrEnvTooLarge: %v", err, tt.want)
			}
		})
	}
}
