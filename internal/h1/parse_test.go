package h1

import (
	"bufio"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// browserHead is the head of a GET as a browser sends it: thirteen
// fields, one of them twice, one name in lower case (as Chromium sends its
// client hints).
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
	"sec-ch-ua-mobile: ?0\r\n" +
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
		"Sec-Ch-Ua-Mobile":          {"?0"},
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
	// Twelve names, thirteen fields: the map (4 allocations for twelve
	// keys in Go 1.26), the string, the lists, the Cookie append, and the
	// uncommon name x-custom-thing (1). Each field its own string and list
	// made 37.
	if allocs > 8 {
		t.Errorf("%v allocations to read a browser's head's 13 fields; want at most 8", allocs)
	}
}

// TestCanonicalKey checks header names against textproto's canonical
// form, in every case, and that the common ones cost no allocation
// whatever their case.
func TestCanonicalKey(t *testing.T) {
	for _, name := range []string{"host", "HOST", "Host", "user-agent", "USER-AGENT", "sec-ch-ua", "Sec-CH-UA-Platform",
		"x-custom-thing", "X-CUSTOM-THING", "a", "-", "a--b", "x1-2y", "content-length", "www-authenticate",
		strings.Repeat("long-", 13), strings.Repeat("a", 64), strings.Repeat("b", 65)} {
		if got, want := canonicalKey([]byte(name)), textproto.CanonicalMIMEHeaderKey(name); got != want {
			t.Errorf("canonicalKey(%q) = %q; want %q", name, got, want)
		}
	}
	// Not a token: left as it is (refused once the head is in).
	for _, name := range []string{"bad name", "bad\x7fname", "ünicode"} {
		if got := canonicalKey([]byte(name)); got != name {
			t.Errorf("canonicalKey(%q) = %q; want it unchanged", name, got)
		}
	}
	if raceEnabled {
		return
	}
	for _, name := range []string{"sec-ch-ua", "SEC-FETCH-SITE", "accept-encoding", "Host"} {
		b := []byte(name)
		if n := testing.AllocsPerRun(100, func() { canonicalKey(b) }); n != 0 {
			t.Errorf("canonicalKey(%q): %v allocations; want 0", name, n)
		}
	}
}

// TestReadFieldsSpill checks a head whose values pass the 1 KiB gathered
// in one string: every value still right, and each a string of its own,
// so that a value kept does not keep the rest of the head.
func TestReadFieldsSpill(t *testing.T) {
	long := strings.Repeat("v", 1500)
	head := "Host: a.test\r\nX-One: " + long + "\r\nX-Two: " + long + "\r\nX-Three: end\r\n\r\n"
	h := &headReader{br: bufio.NewReader(strings.NewReader(head)), budget: DefaultMaxHeaderBytes}
	hdr, err := readFields(h, false)
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{"Host": {"a.test"}, "X-One": {long}, "X-Two": {long}, "X-Three": {"end"}}
	if !reflect.DeepEqual(hdr, want) {
		t.Fatalf("fields %q; want %q", hdr, want)
	}
	one, two := unsafe.StringData(hdr["X-One"][0]), unsafe.StringData(hdr["X-Two"][0])
	if unsafe.Add(unsafe.Pointer(one), len(long)) == unsafe.Pointer(two) {
		t.Error("past 1 KiB, X-Two's value sits right after X-One's in one string; want a string each")
	}
	// Under the limit they share one string, side by side.
	h = &headReader{br: bufio.NewReader(strings.NewReader("X-One: ab\r\nX-Two: cd\r\n\r\n")), budget: DefaultMaxHeaderBytes}
	if hdr, err = readFields(h, false); err != nil {
		t.Fatal(err)
	}
	if unsafe.Add(unsafe.Pointer(unsafe.StringData(hdr["X-One"][0])), 2) != unsafe.Pointer(unsafe.StringData(hdr["X-Two"][0])) {
		t.Error("two short values are not side by side in one string")
	}
}

// TestFragmentRefused: "#" in a request target is refused with 400, as
// Apache does (RFC 9112 § 3.2: a request-target has no fragment); it
// reached the handler, "?a#b" as the query "a#b".
func TestFragmentRefused(t *testing.T) {
	for _, target := range []string{"/x?a#b", "/x#frag", "/#", "http://h/x#f"} {
		h := headReader{br: bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n")), budget: 1 << 10}
		var rq request
		err := readHead(&h, &rq)
		if he, ok := isHeadError(err); !ok || he.status != 400 || rq.line != "GET "+target+" HTTP/1.1" {
			t.Errorf("readHead(%q) = %v (query %q, line %q); want 400 with the line kept", target, err, rq.req.URL, rq.line)
		}
	}
}
