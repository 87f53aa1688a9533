package fastcgi

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// seedRecords are record streams for the fuzzers' corpora.
func seedRecords() [][]byte {
	var full []byte
	full = AppendBeginRequest(full, 1, RoleResponder, 0)
	full = AppendRecord(full, TypeParams, 1, pairs(get("/a?b=c", "CONTENT_LENGTH", "5", "HTTP_X_A", "1")...))
	full = AppendRecord(full, TypeParams, 1, nil)
	full = AppendRecord(full, TypeStdin, 1, []byte("hello"))
	full = AppendRecord(full, TypeStdin, 1, nil)

	var mux []byte
	mux = AppendBeginRequest(mux, 1, RoleResponder, FlagKeepConn)
	mux = AppendBeginRequest(mux, 2, RoleFilter, FlagKeepConn)
	mux = AppendRecord(mux, TypeParams, 2, pairs(get("/f")...))
	mux = AppendRecord(mux, TypeParams, 1, pairs(get("/r")...))
	mux = AppendRecord(mux, TypeParams, 2, nil)
	mux = AppendRecord(mux, TypeParams, 1, nil)
	mux = AppendRecord(mux, TypeStdin, 2, []byte("in"))
	mux = AppendRecord(mux, TypeData, 2, []byte("data"))
	mux = AppendRecord(mux, TypeStdin, 1, nil)
	mux = AppendRecord(mux, TypeAbortRequest, 2, nil)
	mux = AppendRecord(mux, TypeGetValues, 0, pairs("FCGI_MAX_CONNS", "", "FCGI_MPXS_CONNS", ""))
	mux = AppendRecord(mux, RecordType(100), 0, []byte("x"))

	var auth []byte
	auth = AppendBeginRequest(auth, 3, RoleAuthorizer, 0)
	auth = AppendRecord(auth, TypeParams, 3, pairs(get("/")...))
	auth = AppendRecord(auth, TypeParams, 3, nil)
	auth = AppendRecord(auth, TypeStdin, 3, nil)

	var abort []byte
	abort = AppendBeginRequest(abort, 1, RoleResponder, FlagKeepConn)
	abort = AppendRecord(abort, TypeParams, 1, []byte("\x0e\x03REQUEST_METHODGET"))
	abort = AppendRecord(abort, TypeAbortRequest, 1, nil)
	abort = AppendBeginRequest(abort, 1, Role(9), 0)

	return [][]byte{
		nil,
		full,
		mux,
		auth,
		abort,
		full[:len(full)-3],
		[]byte("\x01\x05\x00\x02\x00\x03\xff\x00abc" + string(make([]byte, 255))),
		[]byte("\x02\x01\x00\x01\x00\x08\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00"),
		AppendRecord(nil, TypeParams, 1, []byte("\x80\x00\x00\x01\x80\x00\x00\x02abc")),
	}
}

// FuzzReader reads records from arbitrary bytes until an error: no panic,
// each record's content as long as its header says, every byte accounted
// for, and the records re-encoded by AppendRecord read back the same.
func FuzzReader(f *testing.F) {
	for _, s := range seedRecords() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := NewReader(bytes.NewReader(data))
		var recs []Record
		consumed := 0
		var err error
		for {
			var r Record
			r, err = rd.Next()
			if err != nil {
				break
			}
			if r.Version != Version1 {
				t.Fatalf("Next() returned version %d", r.Version)
			}
			if len(r.Content) != int(r.ContentLength) {
				t.Fatalf("Next() content is %d bytes; header says %d", len(r.Content), r.ContentLength)
			}
			consumed += HeaderLen + int(r.ContentLength) + int(r.PaddingLength)
			if consumed > len(data) {
				t.Fatalf("records span %d bytes of %d", consumed, len(data))
			}
			if !bytes.Equal(r.Content, data[consumed-int(r.PaddingLength)-int(r.ContentLength):consumed-int(r.PaddingLength)]) {
				t.Fatalf("content does not match the input bytes")
			}
			r.Content = bytes.Clone(r.Content)
			recs = append(recs, r)
		}
		switch {
		case err == io.EOF:
			if consumed != len(data) {
				t.Fatalf("io.EOF after %d of %d bytes", consumed, len(data))
			}
		case errors.Is(err, ErrBadVersion), errors.Is(err, io.ErrUnexpectedEOF):
			if consumed >= len(data) {
				t.Fatalf("error %v with no bytes left", err)
			}
		default:
			t.Fatalf("Next() error = %v; want io.EOF, ErrBadVersion or io.ErrUnexpectedEOF", err)
		}

		var enc []byte
		for _, r := range recs {
			enc = AppendRecord(enc, r.Type, r.RequestID, r.Content)
		}
		rd = NewReader(bytes.NewReader(enc))
		for i, want := range recs {
			got, err := rd.Next()
			if err != nil || got.Type != want.Type || got.RequestID != want.RequestID || !bytes.Equal(got.Content, want.Content) {
				t.Fatalf("record %d re-encoded reads back as %+v, %v; want %+v", i, got.Header, err, want.Header)
			}
			if got.PaddingLength != uint8(-int(got.ContentLength)&7) {
				t.Fatalf("AppendRecord padding = %d for %d bytes", got.PaddingLength, got.ContentLength)
			}
		}
		if _, err := rd.Next(); err != io.EOF {
			t.Fatalf("re-encoded stream has extra data: %v", err)
		}
	})
}

// FuzzPairs parses arbitrary name-value pair streams: no panic, only
// ErrMalformedPairs errors, and what parses re-encodes with AppendPair to a
// stream that parses to the same pairs (and re-encodes to itself).
func FuzzPairs(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("\x0b\x02SERVER_PORT80\x0b\x0eSERVER_ADDR199.170.183.42"))
	f.Add([]byte("\x80\x00\x00\x01\x80\x00\x00\x02abc"))
	f.Add([]byte("\x80\x00\x00\x80\x00" + string(bytes.Repeat([]byte("N"), 128))))
	f.Add([]byte("\x01\x80\x00\x00"))
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\xffab"))
	f.Add(pairs(get("/x", "HTTP_COOKIE", "a=b")...))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseAll(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedPairs) {
				t.Fatalf("ParsePairs(%q) error = %v; want ErrMalformedPairs", data, err)
			}
			return
		}
		var enc []byte
		for _, p := range got {
			enc = AppendPair(enc, p.name, p.value)
		}
		again, err := parseAll(enc)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoded pairs parse as %q, %v; want %q", again, err, got)
		}
		var enc2 []byte
		for _, p := range again {
			enc2 = AppendPair(enc2, p.name, p.value)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("AppendPair is not stable: %q then %q", enc, enc2)
		}
		if len(enc) > len(data) {
			// AppendPair picks the shortest length form, so it never grows
			// what it re-encodes.
			t.Fatalf("re-encoding grew %d bytes to %d", len(data), len(enc))
		}
	})
}

// FuzzServerConn writes arbitrary bytes to a server connection: the server
// never panics, every record it sends is well formed, and it lets go of the
// connection soon after the web server closes it.
func FuzzServerConn(f *testing.F) {
	for _, s := range seedRecords() {
		f.Add(s)
	}
	tmp := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := &Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if d := FilterData(r); d != nil {
					io.Copy(io.Discard, d)
				}
				io.WriteString(w, "ok")
			}),
			BodyMemory:     256,
			MaxRequestBody: 64 << 10,
			MaxParamsBytes: 4 << 10,
			TempDir:        tmp,
		}
		sc, cc := net.Pipe()
		served := make(chan struct{})
		go func() {
			defer close(served)
			srv.ServeConn(sc)
		}()
		readErr := make(chan error, 1)
		go func() {
			// Keep reading after a bad record, so that the server never
			// blocks on a write.
			var bad error
			defer func() { readErr <- bad }()
			rd := NewReader(cc)
			for {
				r, err := rd.Next()
				if err != nil {
					return
				}
				switch r.Type {
				case TypeStdout, TypeGetValuesResult:
				case TypeEndRequest:
					if _, err := ParseEndRequest(r.Content); err != nil && bad == nil {
						bad = err
					}
				case TypeUnknownType:
					if len(r.Content) != 8 && bad == nil {
						bad = errors.New("UNKNOWN_TYPE body is not 8 bytes")
					}
				default:
					if bad == nil {
						bad = errors.New("server sent a " + r.Type.String() + " record")
					}
				}
			}
		}()
		// Write in pieces, as a socket would deliver them. An error is the
		// server closing the connection, which is allowed.
		for p := data; len(p) > 0; {
			n := min(len(p), 1+int(p[0])%61)
			if _, err := cc.Write(p[:n]); err != nil {
				break
			}
			p = p[n:]
		}
		cc.Close()
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("ServeConn did not return 5s after the connection closed\n%s", buf[:runtime.Stack(buf, true)])
		}
		if err := <-readErr; err != nil {
			t.Fatalf("server output: %v", err)
		}
	})
}
