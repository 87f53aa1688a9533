package h1

import (
	"bufio"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// browserHead is the head of a GET as a browser sends it: twelve fields,
// one of them twice.
const browserHead = "GET /index.php?page=2 HTTP/1.1\r\n" +
	"Host: www.example.test\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-GB,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: session=4f3c2a1b\r\n" +
	"Cookie: theme=dark\r\n" +
	"Upgrade-Insecure-Requests: 1\r\n" +
	"Sec-Fetch-Dest: document\r\n" +
	"Sec-Fetch-Mode: navigate\r\n" +
	"x-custom-thing:   padded value\t \r\n" +
	"\r\n"

// TestReadFieldsValues checks the fields of a browser's head as read: the
// canonical names, the values without their surrounding whitespace, a
// repeated field's values in order, and each one-value list holding only
// its own value (an append to one must not reach another's).
func TestReadFieldsValues(t *testing.T) {
	h := &headReader{br: bufio.NewReader(strings.NewReader(browserHead)), budget: DefaultMaxHeaderBytes}
	if _, err := h.line(); err != nil {
		t.Fatal(err)
	}
	hdr, err := readFields(h, false)
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{
		"Host":                      {"www.example.test"},
		"User-Agent":                {"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
		"Accept":                    {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Language":           {"en-GB,en;q=0.5"},
		"Accept-Encoding":           {"gzip, deflate, br, zstd"},
		"Connection":                {"keep-alive"},
		"Cookie":                    {"session=4f3c2a1b", "theme=dark"},
		"Upgrade-Insecure-Requests": {"1"},
		"Sec-Fetch-Dest":            {"document"},
		"Sec-Fetch-Mode":            {"navigate"},
		"X-Custom-Thing":            {"padded value"},
	}
	if !reflect.DeepEqual(hdr, want) {
		t.Fatalf("fields:\n%#v\nwant:\n%#v", hdr, want)
	}
	for k, v := range hdr {
		if cap(v) != len(v) && len(v) == 1 {
			t.Errorf("%s: a one-value list with room after it (cap %d): an append would write into another field's", k, cap(v))
		}
	}
	hdr["Host"] = append(hdr["Host"], "other")
	if got := hdr["User-Agent"]; len(got) != 1 || !strings.HasPrefix(got[0], "Mozilla/") {
		t.Errorf("an append to Host changed User-Agent: %q", got)
	}
}

// TestReadFieldsAllocs checks that a head's fields cost the same few
// allocations however many there are: the map, one string of all the
// values, one backing array of the one-value lists, and an append for a
// repeated field, where a string and a list each made two a field.
func TestReadFieldsAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	r := strings.NewReader(browserHead)
	br := bufio.NewReader(r)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(browserHead)
		br.Reset(r)
		h := &headReader{br: br, budget: DefaultMaxHeaderBytes}
		h.line()
		if _, err := readFields(h, false); err != nil {
			t.Fatal(err)
		}
	})
	// Eleven names, twelve fields: the map (4 allocations for eleven
	// keys in Go 1.26), the string, the lists, the Cookie append, and the
	// name x-custom-thing made canonical (2). Each field its own string and
	// list made 33.
	if allocs > 9 {
		t.Errorf("%v allocations to read a browser's head's 12 fields; want at most 9", allocs)
	}
}
