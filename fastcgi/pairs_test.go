package fastcgi

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

type pair struct{ name, value string }

func parseAll(b []byte) ([]pair, error) {
	var ps []pair
	err := ParsePairs(b, func(name, value []byte) error {
		ps = append(ps, pair{string(name), string(value)})
		return nil
	})
	return ps, err
}

func TestAppendPair(t *testing.T) {
	n128 := strings.Repeat("N", 128)
	v127 := strings.Repeat("v", 127)
	v128 := strings.Repeat("v", 128)
	v65536 := strings.Repeat("v", 65536)
	tests := []struct {
		name        string
		pname, pval string
		want        string
	}{
		// Spec appendix B.
		{"spec example", "SERVER_PORT", "80", "\x0b\x02SERVER_PORT80"},
		{"empty value", "FCGI_MAX_CONNS", "", "\x0e\x00FCGI_MAX_CONNS"},
		{"empty both", "", "", "\x00\x00"},
		{"value 127", "a", v127, "\x01\x7fa" + v127},
		{"value 128", "a", v128, "\x01\x80\x00\x00\x80a" + v128},
		{"value 65536", "a", v65536, "\x01\x80\x01\x00\x00a" + v65536},
		{"name 128", n128, "", "\x80\x00\x00\x80\x00" + n128},
		{"name 128 value 128", n128, v128, "\x80\x00\x00\x80\x80\x00\x00\x80" + n128 + v128},
		{"binary", "a\x00b", "\xff\x80", "\x03\x02a\x00b\xff\x80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendPair([]byte("x"), tt.pname, tt.pval))
			if got != "x"+tt.want {
				t.Errorf("AppendPair(%.20q, %.20q) = %.40q; want %.40q", tt.pname, tt.pval, got, "x"+tt.want)
			}
			ps, err := parseAll([]byte(tt.want))
			if err != nil || len(ps) != 1 || ps[0] != (pair{tt.pname, tt.pval}) {
				t.Errorf("ParsePairs(%.40q) = %.60q, %v; want one pair (%.20q, %.20q)", tt.want, ps, err, tt.pname, tt.pval)
			}
		})
	}
}

func TestParsePairs(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []pair
	}{
		{"empty stream", "", nil},
		{"spec example", "\x0b\x02SERVER_PORT80\x0b\x0eSERVER_ADDR199.170.183.42",
			[]pair{{"SERVER_PORT", "80"}, {"SERVER_ADDR", "199.170.183.42"}}},
		// A four-byte length may encode a small number: it is still valid.
		{"long form of short length", "\x80\x00\x00\x01\x80\x00\x00\x02abc", []pair{{"a", "bc"}}},
		// The top bit of a four-byte length is the marker, not part of the length.
		{"top bit masked", "\x01\x80\x00\x00\x00a", []pair{{"a", ""}}},
		{"duplicates kept", "\x01\x01ab\x01\x01ac", []pair{{"a", "b"}, {"a", "c"}}},
		{"empty values", "\x01\x00a\x01\x00b", []pair{{"a", ""}, {"b", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAll([]byte(tt.in))
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePairs(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePairsRoundTrip(t *testing.T) {
	want := []pair{
		{"REQUEST_METHOD", "POST"},
		{"EMPTY", ""},
		{"", "empty name"},
		{strings.Repeat("K", 127), strings.Repeat("V", 128)},
		{strings.Repeat("K", 128), strings.Repeat("V", 127)},
		{"BIG", strings.Repeat("b", 70000)},
		{"BINARY", "\x00\x01\xff\r\n"},
	}
	var b []byte
	for _, p := range want {
		b = AppendPair(b, p.name, p.value)
	}
	got, err := parseAll(b)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePairs(AppendPair(...)) = %d pairs, %v; want %d pairs", len(got), err, len(want))
	}
}

func TestParsePairsMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"name length only", "\x01"},
		{"truncated 4-byte name length", "\x80\x00\x00"},
		{"truncated 4-byte value length", "\x01\x80\x00\x00"},
		{"name past data", "\x05\x00abc"},
		{"value past data", "\x01\x05abcd"},
		{"4-byte name length past data", "\x80\x00\x01\x00\x00abc"},
		{"huge lengths", "\xff\xff\xff\xff\xff\xff\xff\xffab"},
		{"good pair then truncated", "\x01\x01ab\x02"},
		{"good pair then past", "\x01\x01ab\x01\x01a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAll([]byte(tt.in))
			if !errors.Is(err, ErrMalformedPairs) {
				t.Errorf("ParsePairs(%q) = %q, %v; want ErrMalformedPairs", tt.in, got, err)
			}
		})
	}
}

func TestParsePairsCallbackError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := ParsePairs([]byte("\x01\x01ab\x01\x01cd"), func(name, value []byte) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Errorf("ParsePairs with failing fn = %v after %d calls; want %v after 1", err, calls, stop)
	}
}
