package httpsyntax

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// TestFieldsHeader checks the header built from gathered fields: a name's
// values in order, one-value lists an append to which copies, and Lookup
// finding a name's first value.
func TestFieldsHeader(t *testing.T) {
	var f Fields
	for _, kv := range [][2]string{{"Host", "a.test"}, {"Cookie", "a=1"}, {"Accept", "*/*"}, {"Cookie", "b=2"}, {"X-Empty", ""}} {
		f.Add(kv[0], []byte(kv[1]))
	}
	h := f.Header()
	want := http.Header{"Host": {"a.test"}, "Cookie": {"a=1", "b=2"}, "Accept": {"*/*"}, "X-Empty": {""}}
	if !reflect.DeepEqual(h, want) || f.Len() != 5 {
		t.Fatalf("Header() = %q (%d fields); want %q (5)", h, f.Len(), want)
	}
	h["Host"] = append(h["Host"], "b.test")
	if !reflect.DeepEqual(h["Accept"], []string{"*/*"}) {
		t.Errorf("an append to Host reached Accept: %q", h["Accept"])
	}
	if v, ok := f.Lookup("Cookie"); !ok || string(v) != "a=1" {
		t.Errorf("Lookup(Cookie) = %q, %v; want the first, a=1", v, ok)
	}
	if _, ok := f.Lookup("Missing"); ok {
		t.Error("Lookup(Missing) found a field")
	}
}

// TestFieldsSetIn checks that SetIn replaces what a header holds under a
// gathered name and keeps the rest, with few fields (a scan for the names
// seen) and with many (a map), and that an empty Fields changes nothing.
func TestFieldsSetIn(t *testing.T) {
	for _, extra := range []int{0, 40} {
		var f Fields
		f.Add("Content-Type", []byte("text/plain"))
		f.Add("Set-Cookie", []byte("a=1"))
		f.Add("Set-Cookie", []byte("b=2"))
		for i := range extra {
			f.Add("X-Many", []byte{byte('a' + i%26)})
		}
		h := http.Header{"Content-Type": {"text/html"}, "X-Request-Id": {"7"}}
		f.SetIn(h)
		if !reflect.DeepEqual(h["Content-Type"], []string{"text/plain"}) || !reflect.DeepEqual(h["Set-Cookie"], []string{"a=1", "b=2"}) ||
			!reflect.DeepEqual(h["X-Request-Id"], []string{"7"}) || len(h["X-Many"]) != extra {
			t.Errorf("with %d more fields: SetIn gave %q", extra, h)
		}
	}
	var none Fields
	h := http.Header{"A": {"1"}}
	none.SetIn(h)
	if !reflect.DeepEqual(h, http.Header{"A": {"1"}}) {
		t.Errorf("an empty Fields changed the header: %q", h)
	}
}

// TestFieldsSpill checks values past the in-place buffer: still right,
// and each a string of its own, where values within it share one string.
func TestFieldsSpill(t *testing.T) {
	long := strings.Repeat("v", 700)
	var f Fields
	f.Add("X-One", []byte(long))
	f.Add("X-Two", []byte(long))
	h := f.Header()
	if h.Get("X-One") != long || h.Get("X-Two") != long {
		t.Fatal("a value past the buffer is wrong")
	}
	if unsafe.Add(unsafe.Pointer(unsafe.StringData(h["X-One"][0])), len(long)) == unsafe.Pointer(unsafe.StringData(h["X-Two"][0])) {
		t.Error("past the buffer, two values share one string; want a string each")
	}
	var g Fields
	g.Add("X-One", []byte("ab"))
	g.Add("X-Two", []byte("cd"))
	h = g.Header()
	if unsafe.Add(unsafe.Pointer(unsafe.StringData(h["X-One"][0])), 2) != unsafe.Pointer(unsafe.StringData(h["X-Two"][0])) {
		t.Error("two short values are not side by side in one string")
	}
}
