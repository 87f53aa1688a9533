package fastcgi

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// rec builds the wire bytes of one record by hand, independently of
// AppendRecord: header, content, then pad zero bytes.
func rec(t RecordType, id uint16, content string, pad int) string {
	n := len(content)
	return string([]byte{Version1, byte(t), byte(id >> 8), byte(id), byte(n >> 8), byte(n), byte(pad), 0}) +
		content + strings.Repeat("\x00", pad)
}

func TestAppendRecord(t *testing.T) {
	big := strings.Repeat("z", MaxContent)
	tests := []struct {
		name    string
		typ     RecordType
		id      uint16
		content string
		want    string
	}{
		{"empty", TypeStdout, 1, "", "\x01\x06\x00\x01\x00\x00\x00\x00"},
		{"one", TypeStdout, 1, "a", "\x01\x06\x00\x01\x00\x01\x07\x00a\x00\x00\x00\x00\x00\x00\x00"},
		{"seven", TypeStdin, 0x0102, "abcdefg", "\x01\x05\x01\x02\x00\x07\x01\x00abcdefg\x00"},
		{"eight", TypeParams, 0xffff, "abcdefgh", "\x01\x04\xff\xff\x00\x08\x00\x00abcdefgh"},
		{"nine", TypeData, 3, "abcdefghi", "\x01\x08\x00\x03\x00\x09\x07\x00abcdefghi\x00\x00\x00\x00\x00\x00\x00"},
		{"max", TypeStdout, 1, big, "\x01\x06\x00\x01\xff\xff\x01\x00" + big + "\x00"},
		{"management", TypeGetValues, 0, "", "\x01\x09\x00\x00\x00\x00\x00\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendRecord([]byte("prefix"), tt.typ, tt.id, []byte(tt.content)))
			if got != "prefix"+tt.want {
				t.Errorf("AppendRecord(%s, %d, %d bytes) = %.80q; want %.80q", tt.typ, tt.id, len(tt.content), got, "prefix"+tt.want)
			}
			if len(got)%8 != len("prefix")%8 {
				t.Errorf("AppendRecord(%d bytes) appended %d bytes, not a multiple of 8", len(tt.content), len(got)-len("prefix"))
			}
			// And back.
			rd := NewReader(strings.NewReader(tt.want))
			r, err := rd.Next()
			if err != nil {
				t.Fatalf("Next() error = %v", err)
			}
			if r.Type != tt.typ || r.RequestID != tt.id || string(r.Content) != tt.content || r.Version != Version1 {
				t.Errorf("Next() = %v %d %.40q; want %v %d %.40q", r.Type, r.RequestID, r.Content, tt.typ, tt.id, tt.content)
			}
			if _, err := rd.Next(); err != io.EOF {
				t.Errorf("second Next() error = %v; want io.EOF", err)
			}
		})
	}
}

func TestAppendRecordTooLong(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("AppendRecord(65536 bytes) did not panic")
		}
	}()
	AppendRecord(nil, TypeStdout, 1, make([]byte, MaxContent+1))
}

func TestAppendStream(t *testing.T) {
	max := strings.Repeat("m", MaxContent)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", ""},
		{"short", "hello", rec(TypeStdout, 1, "hello", 3)},
		{"exactly max", max, rec(TypeStdout, 1, max, 1)},
		{"max plus one", max + "x", rec(TypeStdout, 1, max, 1) + rec(TypeStdout, 1, "x", 7)},
		{"two max plus eight", max + max + "12345678", rec(TypeStdout, 1, max, 1) + rec(TypeStdout, 1, max, 1) + rec(TypeStdout, 1, "12345678", 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendStream(nil, TypeStdout, 1, []byte(tt.in)))
			if got != tt.want {
				t.Errorf("AppendStream(%d bytes) = %d bytes %.40q; want %d bytes %.40q", len(tt.in), len(got), got, len(tt.want), tt.want)
			}
			// Reading the records back and concatenating gives the stream.
			var joined []byte
			rd := NewReader(strings.NewReader(got))
			for {
				r, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Next() error = %v", err)
				}
				if len(r.Content) == 0 {
					t.Errorf("AppendStream wrote an empty record, which would end the stream")
				}
				joined = append(joined, r.Content...)
			}
			if string(joined) != tt.in {
				t.Errorf("stream read back = %d bytes; want %d", len(joined), len(tt.in))
			}
		})
	}
}

func TestBeginEndRequest(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"begin responder keep", AppendBeginRequest(nil, 1, RoleResponder, FlagKeepConn),
			"\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00"},
		{"begin filter", AppendBeginRequest(nil, 0x1234, RoleFilter, 0),
			"\x01\x01\x12\x34\x00\x08\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00"},
		{"begin role 0x0102", AppendBeginRequest(nil, 2, Role(0x0102), 0xfe),
			"\x01\x01\x00\x02\x00\x08\x00\x00\x01\x02\xfe\x00\x00\x00\x00\x00"},
		{"end complete", AppendEndRequest(nil, 1, 0, RequestComplete),
			"\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"end unknown role", AppendEndRequest(nil, 1, 0x01020304, UnknownRole),
			"\x01\x03\x00\x01\x00\x08\x00\x00\x01\x02\x03\x04\x03\x00\x00\x00"},
		{"end overloaded", AppendEndRequest(nil, 0xffff, 938, Overloaded),
			"\x01\x03\xff\xff\x00\x08\x00\x00\x00\x00\x03\xaa\x02\x00\x00\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("got %q; want %q", tt.got, tt.want)
			}
		})
	}

	br, err := ParseBeginRequest([]byte("\x00\x02\x01\x00\x00\x00\x00\x00"))
	if err != nil || br != (BeginRequest{Role: RoleAuthorizer, Flags: FlagKeepConn}) {
		t.Errorf("ParseBeginRequest = %+v, %v; want {AUTHORIZER 1}, nil", br, err)
	}
	// Reserved bytes are ignored.
	br, err = ParseBeginRequest([]byte("\x00\x01\x00\xff\xff\xff\xff\xff"))
	if err != nil || br != (BeginRequest{Role: RoleResponder}) {
		t.Errorf("ParseBeginRequest(reserved set) = %+v, %v; want {RESPONDER 0}, nil", br, err)
	}
	er, err := ParseEndRequest([]byte("\x01\x02\x03\x04\x03\x00\x00\x00"))
	if err != nil || er != (EndRequest{AppStatus: 0x01020304, ProtocolStatus: UnknownRole}) {
		t.Errorf("ParseEndRequest = %+v, %v; want {0x01020304 UNKNOWN_ROLE}, nil", er, err)
	}
}

func TestParseBadLength(t *testing.T) {
	for _, n := range []int{0, 1, 7, 9, 16} {
		c := make([]byte, n)
		if _, err := ParseBeginRequest(c); !errors.Is(err, ErrMalformedRecord) {
			t.Errorf("ParseBeginRequest(%d bytes) error = %v; want ErrMalformedRecord", n, err)
		}
		if _, err := ParseEndRequest(c); !errors.Is(err, ErrMalformedRecord) {
			t.Errorf("ParseEndRequest(%d bytes) error = %v; want ErrMalformedRecord", n, err)
		}
	}
}

func TestReaderNext(t *testing.T) {
	// Two records: STDIN "abc" with the largest padding, then an empty
	// PARAMS with a nonzero reserved byte.
	pad := strings.Repeat("\xee", 255)
	in := "\x01\x05\x00\x02\x00\x03\xff\x00abc" + pad + "\x01\x04\x00\x02\x00\x00\x00\x7f"
	rd := NewReader(strings.NewReader(in))
	r, err := rd.Next()
	if err != nil {
		t.Fatalf("Next() error = %v", err)
	}
	want := Header{Version: 1, Type: TypeStdin, RequestID: 2, ContentLength: 3, PaddingLength: 255}
	if r.Header != want || string(r.Content) != "abc" {
		t.Errorf("Next() = %+v %q; want %+v \"abc\"", r.Header, r.Content, want)
	}
	r, err = rd.Next()
	if err != nil {
		t.Fatalf("second Next() error = %v", err)
	}
	want = Header{Version: 1, Type: TypeParams, RequestID: 2}
	if r.Header != want || len(r.Content) != 0 {
		t.Errorf("second Next() = %+v %q; want %+v \"\"", r.Header, r.Content, want)
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Errorf("third Next() error = %v; want io.EOF", err)
	}
}

func TestReaderErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", io.EOF},
		{"version 0", "\x00\x01\x00\x01\x00\x08\x00\x00" + strings.Repeat("\x00", 8), ErrBadVersion},
		{"version 2", "\x02\x01\x00\x01\x00\x00\x00\x00", ErrBadVersion},
		{"header of 1 byte", "\x01", io.ErrUnexpectedEOF},
		{"header of 7 bytes", "\x01\x06\x00\x01\x00\x00\x00", io.ErrUnexpectedEOF},
		{"no content", "\x01\x06\x00\x01\x00\x05\x03\x00", io.ErrUnexpectedEOF},
		{"content cut", "\x01\x06\x00\x01\x00\x05\x03\x00abc", io.ErrUnexpectedEOF},
		{"padding cut", "\x01\x06\x00\x01\x00\x05\x03\x00abcde\x00", io.ErrUnexpectedEOF},
		{"padding only cut", "\x01\x06\x00\x01\x00\x00\x08\x00\x00\x00", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(strings.NewReader(tt.in)).Next()
			if !errors.Is(err, tt.want) {
				t.Errorf("Next(%q) error = %v; want %v", tt.in, err, tt.want)
			}
			if tt.want != io.EOF && err == io.EOF {
				t.Errorf("Next(%q) error = io.EOF inside a record", tt.in)
			}
		})
	}
}

func TestReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("\x01\x06\x00\x01\x00\x05\x03\x00ab"), &errReader{boom})
	_, err := NewReader(r).Next()
	if !errors.Is(err, boom) {
		t.Errorf("Next() error = %v; want it to wrap %v", err, boom)
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// TestReaderByteAtATime reads records whose bytes arrive one at a time.
func TestReaderByteAtATime(t *testing.T) {
	var in []byte
	in = AppendBeginRequest(in, 1, RoleResponder, 0)
	in = AppendRecord(in, TypeParams, 1, []byte("\x01\x01ab"))
	in = AppendRecord(in, TypeParams, 1, nil)
	rd := NewReader(&oneByteReader{bytes.NewReader(in)})
	var types []RecordType
	for {
		r, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next() error = %v", err)
		}
		types = append(types, r.Type)
	}
	if len(types) != 3 || types[0] != TypeBeginRequest || types[1] != TypeParams || types[2] != TypeParams {
		t.Errorf("read types %v; want [BEGIN_REQUEST PARAMS PARAMS]", types)
	}
}

type oneByteReader struct{ r io.Reader }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return r.r.Read(p[:1])
}

func TestStringers(t *testing.T) {
	tests := []struct {
		in   interface{ String() string }
		want string
	}{
		{RecordType(0), "RecordType(0)"},
		{TypeBeginRequest, "BEGIN_REQUEST"},
		{TypeAbortRequest, "ABORT_REQUEST"},
		{TypeEndRequest, "END_REQUEST"},
		{TypeParams, "PARAMS"},
		{TypeStdin, "STDIN"},
		{TypeStdout, "STDOUT"},
		{TypeStderr, "STDERR"},
		{TypeData, "DATA"},
		{TypeGetValues, "GET_VALUES"},
		{TypeGetValuesResult, "GET_VALUES_RESULT"},
		{TypeUnknownType, "UNKNOWN_TYPE"},
		{RecordType(12), "RecordType(12)"},
		{RecordType(255), "RecordType(255)"},
		{Role(0), "Role(0)"},
		{RoleResponder, "RESPONDER"},
		{RoleAuthorizer, "AUTHORIZER"},
		{RoleFilter, "FILTER"},
		{Role(4), "Role(4)"},
		{Role(65535), "Role(65535)"},
		{RequestComplete, "REQUEST_COMPLETE"},
		{CantMpxConn, "CANT_MPX_CONN"},
		{Overloaded, "OVERLOADED"},
		{UnknownRole, "UNKNOWN_ROLE"},
		{ProtocolStatus(4), "ProtocolStatus(4)"},
		{ProtocolStatus(255), "ProtocolStatus(255)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("%T(%v).String() = %q; want %q", tt.in, tt.in, got, tt.want)
			}
		})
	}
}

// TestSpecConstants pins the numbers of spec § 8.
func TestSpecConstants(t *testing.T) {
	got := []int{Version1, HeaderLen, MaxContent, FlagKeepConn,
		int(TypeBeginRequest), int(TypeAbortRequest), int(TypeEndRequest), int(TypeParams), int(TypeStdin),
		int(TypeStdout), int(TypeStderr), int(TypeData), int(TypeGetValues), int(TypeGetValuesResult), int(TypeUnknownType),
		int(RoleResponder), int(RoleAuthorizer), int(RoleFilter),
		int(RequestComplete), int(CantMpxConn), int(Overloaded), int(UnknownRole)}
	want := []int{1, 8, 65535, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2, 3, 0, 1, 2, 3}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("constant %d = %d; want %d", i, got[i], want[i])
		}
	}
}
