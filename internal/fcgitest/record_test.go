package fcgitest

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestAppendRecord(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"begin keep-conn", appendRecord(nil, typeBeginRequest, 1, beginBody(roleResponder, true), 0),
			"\x01\x01\x00\x01\x00\x08\x00\x00" + "\x00\x01\x01\x00\x00\x00\x00\x00"},
		{"params padded", appendRecord(nil, typeParams, 0x0102, []byte("ab"), 3),
			"\x01\x04\x01\x02\x00\x02\x03\x00ab\x00\x00\x00"},
		{"empty stdin", appendRecord(nil, typeStdin, 7, nil, 0), "\x01\x05\x00\x07\x00\x00\x00\x00"},
		{"abort", appendRecord(nil, typeAbortRequest, 1, nil, 0), "\x01\x02\x00\x01\x00\x00\x00\x00"},
		{"lying header", appendHeader(nil, typeParams, 1, maxContent, maxPadding), "\x01\x04\x00\x01\xff\xff\xff\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("got %q; want %q", tt.got, tt.want)
			}
		})
	}
}

func TestAppendPair(t *testing.T) {
	tests := []struct {
		name, value string
		want        string
	}{
		{"A", "", "\x01\x00A"},
		{"FCGI_MPXS_CONNS", "1", "\x0f\x01FCGI_MPXS_CONNS1"},
		{"K", strings.Repeat("v", 127), "\x01\x7fK" + strings.Repeat("v", 127)},
		{"K", strings.Repeat("v", 128), "\x01\x80\x00\x00\x80K" + strings.Repeat("v", 128)},
	}
	for _, tt := range tests {
		if got := appendPair(nil, tt.name, tt.value); string(got) != tt.want {
			t.Errorf("appendPair(%q, %d bytes) = %q; want %q", tt.name, len(tt.value), got, tt.want)
		}
	}
	if got, want := appendSize(nil, 1<<31-1), "\xff\xff\xff\xff"; string(got) != want {
		t.Errorf("appendSize(2^31-1) = %q; want %q", got, want)
	}
}

func TestParsePairs(t *testing.T) {
	// The second value length uses the 4-byte form for 1: legal, if odd.
	got, err := parsePairs([]byte("\x01\x02ABC\x0e\x80\x00\x00\x01FCGI_MAX_CONNS1"))
	if err != nil {
		t.Fatal(err)
	}
	want := []pair{{"A", "BC"}, {"FCGI_MAX_CONNS", "1"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parsePairs = %q; want %q", got, want)
	}
	for _, bad := range []string{
		"\x01",                  // value length missing
		"\x01\x05AB",            // value runs past the end
		"\x80\x00",              // 4-byte length cut
		"\x01\xff\xff\xff\xffA", // 2^31-1 bytes claimed
	} {
		if p, err := parsePairs([]byte(bad)); err == nil {
			t.Errorf("parsePairs(%q) = %q, nil; want an error", bad, p)
		}
	}
}

func TestReadRecord(t *testing.T) {
	in := "\x01\x06\x00\x01\x00\x03\x05\x00abc\x00\x00\x00\x00\x00" + "\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x2a\x01\x00\x00\x00"
	r := strings.NewReader(in)
	rec, err := readRecord(r)
	if err != nil || rec.Type != typeStdout || rec.ID != 1 || string(rec.Content) != "abc" {
		t.Fatalf("readRecord = %v %q, %v; want STDOUT id=1 \"abc\"", rec, rec.Content, err)
	}
	rec, err = readRecord(r)
	if err != nil || rec.Type != typeEndRequest {
		t.Fatalf("readRecord = %v, %v; want END_REQUEST", rec, err)
	}
	end, err := parseEndRequest(rec.Content)
	if err != nil || end.AppStatus != 42 || end.ProtocolStatus != statusCantMpxConn {
		t.Errorf("parseEndRequest = %+v, %v; want appStatus 42, CANT_MPX_CONN", end, err)
	}
	if _, err := readRecord(r); err != io.EOF {
		t.Errorf("readRecord at the end = %v; want io.EOF", err)
	}
	if _, err := readRecord(strings.NewReader("\x01\x06\x00\x01\x00\x03\x00\x00ab")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("readRecord of a cut record = %v; want io.ErrUnexpectedEOF", err)
	}
	if _, err := readRecord(strings.NewReader("\x02\x06\x00\x01\x00\x00\x00\x00")); !errors.Is(err, errBadVersion) {
		t.Errorf("readRecord of version 2 = %v; want errBadVersion", err)
	}
}

func TestTypeNames(t *testing.T) {
	for typ, want := range map[recType]string{
		typeAbortRequest: "ABORT_REQUEST", typeGetValuesResult: "GET_VALUES_RESULT", 0: "type 0", 100: "type 100",
	} {
		if got := typ.String(); got != want {
			t.Errorf("recType(%d).String() = %q; want %q", uint8(typ), got, want)
		}
	}
	if got := statusCantMpxConn.String(); got != "CANT_MPX_CONN" {
		t.Errorf("statusCantMpxConn.String() = %q", got)
	}
}

func TestParseCGI(t *testing.T) {
	resp, err := parseCGI([]byte("Status: 404 Not Found\nContent-Type: text/plain\r\n\r\nbody"))
	if err != nil || resp.status != 404 || resp.header.Get("Content-Type") != "text/plain" || string(resp.body) != "body" {
		t.Errorf("parseCGI = %+v, %v", resp, err)
	}
	if resp, err := parseCGI([]byte("Content-Type: text/plain\n\n")); err != nil || resp.status != 200 {
		t.Errorf("parseCGI without Status = %+v, %v; want status 200", resp, err)
	}
	if _, err := parseCGI([]byte("Status: x\n\n")); err == nil {
		t.Error("parseCGI accepted Status: x")
	}
}

// FuzzParsePairs checks that whatever parsePairs accepts encodes back to
// pairs it parses the same way.
func FuzzParsePairs(f *testing.F) {
	f.Add([]byte("\x01\x02ABC"))
	f.Add([]byte("\x0e\x80\x00\x00\x01FCGI_MAX_CONNS1"))
	f.Add([]byte("\x80\x00"))
	f.Add(appendPair(nil, "HTTP_X", strings.Repeat("v", 300)))
	f.Fuzz(func(t *testing.T, b []byte) {
		pairs, err := parsePairs(b)
		if err != nil {
			return
		}
		enc := encodePairs(pairs)
		again, err := parsePairs(enc)
		if err != nil {
			t.Fatalf("parsePairs(encodePairs(%q)): %v", pairs, err)
		}
		if len(again) != len(pairs) {
			t.Fatalf("round trip: %q -> %q", pairs, again)
		}
		for i := range pairs {
			if pairs[i] != again[i] {
				t.Fatalf("round trip: %q -> %q", pairs, again)
			}
		}
		if len(enc) > len(b) || !bytes.Equal(encodePairs(again), enc) {
			t.Fatalf("encoding of %q is not canonical: %q", pairs, enc)
		}
	})
}
