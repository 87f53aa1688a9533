package cgi

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"reflect"
	"testing"
)

// FuzzReadResponsePipe reads a script's output from a real pipe, written
// in pieces of the sizes splits gives, one write each, as a script's
// writes arrive, and checks that ReadResponse gives what it gives for the
// same bytes in memory, and leaves the same body.
func FuzzReadResponsePipe(f *testing.F) {
	for _, c := range goldenSeeds(f) {
		f.Add(c.output, c.nph, []byte{3, 1, 7})
	}
	f.Fuzz(func(t *testing.T, data []byte, nph bool, splits []byte) {
		want, wantErr := ReadResponse(bufio.NewReader(bytes.NewReader(data)), nph, HeaderLimits{})
		var wantBody []byte
		if wantErr == nil {
			wantBody = data[len(data)-bodyLen(data, nph):]
		}

		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		written := make(chan struct{})
		go func() {
			defer close(written)
			defer pw.Close()
			rest := data
			for i := 0; len(rest) > 0; i++ {
				n := len(rest)
				if len(splits) > 0 {
					n = min(n, 1+int(splits[i%len(splits)]))
				}
				if _, err := pw.Write(rest[:n]); err != nil {
					return // the reader stopped: it has its answer
				}
				rest = rest[n:]
			}
		}()
		br := bufio.NewReaderSize(pr, 16)
		got, err := ReadResponse(br, nph, HeaderLimits{})
		if (err == nil) != (wantErr == nil) || (err == nil && !reflect.DeepEqual(got, want)) {
			t.Fatalf("ReadResponse(%q) from a pipe = %+v, %v; from memory %+v, %v", data, got, err, want, wantErr)
		}
		if err == nil {
			body, rerr := io.ReadAll(br)
			if rerr != nil || !bytes.Equal(body, wantBody) {
				t.Fatalf("ReadResponse(%q): body from the pipe %q (%v); want %q", data, body, rerr, wantBody)
			}
		}
		pr.Close()
		<-written
	})
}

// bodyLen returns the length of what follows the header block ReadResponse
// reads from data.
func bodyLen(data []byte, nph bool) int {
	br := bufio.NewReader(bytes.NewReader(data))
	if _, err := ReadResponse(br, nph, HeaderLimits{}); err != nil {
		return 0
	}
	rest, _ := io.ReadAll(br)
	return len(rest)
}
