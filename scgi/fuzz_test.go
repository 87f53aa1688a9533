package scgi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzReadRequest reads a request (header block, then CONTENT_LENGTH bytes
// of body) from arbitrary bytes: no panic, every error one of the named
// ones or io.EOF, and a header that parses re-encodes with AppendRequest to
// the same bytes and parses again to the same header.
func FuzzReadRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/golden/*.txt")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if i := bytes.Index(data, []byte(markWire)); i >= 0 {
			f.Add(data[i+len(markWire):])
		}
	}
	nginx, err := AppendRequest(nil, nginxParams)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "0:,", "024:", "5:A\x00B\x00,", "99999999999:", "3:\x00\x00\x00,"} {
		f.Add([]byte(s))
	}
	f.Add(nginx)
	lim := Limits{MaxHeaderBytes: 4096, MaxHeaders: 64, MaxContentLength: 1 << 16}
	named := []error{ErrMalformedHeader, ErrHeaderTooLarge, ErrTooManyHeaders, ErrContentTooLarge, io.EOF}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		br := bufio.NewReader(r)
		h, err := ReadHeader(br, lim)
		if err != nil {
			if !slices.ContainsFunc(named, func(e error) bool { return errors.Is(err, e) }) {
				t.Fatalf("ReadHeader(%q) = %v; want a named error", data, err)
			}
			return
		}
		// What ReadHeader took: read from data, less what br holds (an
		// input longer than br's buffer is not all read yet).
		consumed := len(data) - r.Len() - br.Buffered()
		body, err := io.ReadAll(io.LimitReader(br, h.ContentLength))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(body)) > h.ContentLength {
			t.Fatalf("body %d bytes; CONTENT_LENGTH %d", len(body), h.ContentLength)
		}
		enc, err := AppendRequest(nil, h.Params())
		if err != nil {
			t.Fatalf("AppendRequest(%q) of a parsed header: %v", h.Params(), err)
		}
		if !bytes.Equal(enc, data[:consumed]) {
			t.Fatalf("re-encoded header\n%q; read\n%q", enc, data[:consumed])
		}
		h2, err := ReadHeader(bufio.NewReader(bytes.NewReader(enc)), lim)
		if err != nil {
			t.Fatalf("ReadHeader of the re-encoded header %q: %v", enc, err)
		}
		if !slices.Equal(h2.Params(), h.Params()) || h2.ContentLength != h.ContentLength {
			t.Fatalf("round trip: %q, %d; want %q, %d", h2.Params(), h2.ContentLength, h.Params(), h.ContentLength)
		}
	})
}
