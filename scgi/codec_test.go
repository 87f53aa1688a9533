package scgi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// golden is one case of testdata/golden: the params given to
// AppendRequest, the bytes on the wire (header block then body), and the
// params ReadHeader gives back, in wire order.
type golden struct {
	params, parsed []string
	wire           []byte
}

const (
	markParams = "-- params --\n"
	markParsed = "\n-- parsed --\n"
	markWire   = "\n-- wire --\n"
)

// readGolden parses a golden file: "-- params --", "-- parsed --" and
// "-- wire --" sections, the last holding raw bytes (NULs included) to the
// end of the file.
func readGolden(t *testing.T, path string) golden {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := strings.CutPrefix(string(data), markParams)
	params, rest, ok2 := strings.Cut(s, markParsed)
	parsed, wire, ok3 := strings.Cut(rest, markWire)
	if !ok || !ok2 || !ok3 {
		t.Fatalf("%s: want sections %q, %q, %q", path, markParams, markParsed, markWire)
	}
	return golden{params: lines(params), parsed: lines(parsed), wire: []byte(wire)}
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestGolden encodes each case's params and compares with its wire bytes,
// then reads the wire bytes back: the parsed params, and the body left in
// the reader.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			g := readGolden(t, f)
			enc, err := AppendRequest(nil, g.params)
			if err != nil {
				t.Fatalf("AppendRequest(%q): %v", g.params, err)
			}
			if !bytes.HasPrefix(g.wire, enc) {
				t.Errorf("AppendRequest(%q) =\n%q; want\n%q", g.params, enc, g.wire)
			}
			br := bufio.NewReader(bytes.NewReader(g.wire))
			h, err := ReadHeader(br, Limits{})
			if err != nil {
				t.Fatalf("ReadHeader(%q): %v", g.wire, err)
			}
			if got := h.Params(); !slices.Equal(got, g.parsed) {
				t.Errorf("ReadHeader(%q).Params() = %q; want %q", g.wire, got, g.parsed)
			}
			body, _ := io.ReadAll(br)
			if int64(len(body)) != h.ContentLength {
				t.Errorf("body after the header is %d bytes %q; CONTENT_LENGTH says %d", len(body), body, h.ContentLength)
			}
		})
	}
}

func TestReadHeaderMalformed(t *testing.T) {
	const ok = "CONTENT_LENGTH\x000\x00SCGI\x001\x00"
	net := func(s string) string { return itoa(len(s)) + ":" + s + "," }
	tests := []struct {
		name string
		in   string
		lim  Limits
		want error
	}{
		{"leading zero", "024:" + ok + ",", Limits{}, ErrLengthLeadingZero},
		{"double zero", "00:,", Limits{}, ErrLengthLeadingZero},
		{"negative", "-24:" + ok + ",", Limits{}, ErrBadLength},
		{"plus sign", "+24:" + ok + ",", Limits{}, ErrBadLength},
		{"space", " 24:" + ok + ",", Limits{}, ErrBadLength},
		{"no length", ":" + ok + ",", Limits{}, ErrBadLength},
		{"hex", "0x18:" + ok + ",", Limits{}, ErrMissingColon},
		{"no colon", "24;" + ok + ",", Limits{}, ErrMissingColon},
		{"no comma", "24:" + ok + ";", Limits{}, ErrMissingComma},
		{"length too short", "23:" + ok + ",", Limits{}, ErrMissingComma},
		{"eof in length", "24", Limits{}, ErrTruncated},
		{"eof in block", "24:CONTENT_LENGTH\x000", Limits{}, ErrTruncated},
		{"eof before comma", "24:" + ok, Limits{}, ErrTruncated},
		{"oversized length", "99999999999999999999999:", Limits{}, ErrHeaderTooLarge},
		{"over the limit", net(ok), Limits{MaxHeaderBytes: 23}, ErrHeaderTooLarge},
		{"10 MB declared", "10000000:", Limits{}, ErrHeaderTooLarge},
		{"pair without NUL", net(ok + "A\x00b"), Limits{}, ErrUnterminatedPair},
		{"name without NUL", net(ok + "A"), Limits{}, ErrUnterminatedPair},
		{"empty name", net(ok + "\x00b\x00"), Limits{}, ErrEmptyName},
		{"name with =", net(ok + "A=B\x00b\x00"), Limits{}, ErrInvalidName},
		{"empty block", "0:,", Limits{}, ErrContentLengthNotFirst},
		{"content length second", net("SCGI\x001\x00CONTENT_LENGTH\x000\x00"), Limits{}, ErrContentLengthNotFirst},
		{"no content length", net("SCGI\x001\x00"), Limits{}, ErrContentLengthNotFirst},
		{"content length empty", net("CONTENT_LENGTH\x00\x00SCGI\x001\x00"), Limits{}, ErrInvalidContentLength},
		{"content length leading zero", net("CONTENT_LENGTH\x0007\x00SCGI\x001\x00"), Limits{}, ErrInvalidContentLength},
		{"content length negative", net("CONTENT_LENGTH\x00-1\x00SCGI\x001\x00"), Limits{}, ErrInvalidContentLength},
		{"content length spaces", net("CONTENT_LENGTH\x00 1\x00SCGI\x001\x00"), Limits{}, ErrInvalidContentLength},
		{"content length huge", net("CONTENT_LENGTH\x0099999999999999999999\x00SCGI\x001\x00"), Limits{}, ErrContentTooLarge},
		{"content length over limit", net("CONTENT_LENGTH\x00101\x00SCGI\x001\x00"), Limits{MaxContentLength: 100}, ErrContentTooLarge},
		{"no SCGI", net("CONTENT_LENGTH\x000\x00"), Limits{}, ErrNoSCGI},
		{"SCGI 2", net("CONTENT_LENGTH\x000\x00SCGI\x002\x00"), Limits{}, ErrNoSCGI},
		{"SCGI empty", net("CONTENT_LENGTH\x000\x00SCGI\x00\x00"), Limits{}, ErrNoSCGI},
		{"duplicate", net(ok + "A\x001\x00A\x002\x00"), Limits{}, ErrDuplicateName},
		{"duplicate SCGI", net(ok + "SCGI\x001\x00"), Limits{}, ErrDuplicateName},
		{"duplicate CONTENT_LENGTH", net(ok + "CONTENT_LENGTH\x000\x00"), Limits{}, ErrDuplicateName},
		{"too many", net(ok + "A\x00\x00B\x00\x00"), Limits{MaxHeaders: 3}, ErrTooManyHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadHeader(bufio.NewReader(strings.NewReader(tt.in)), tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadHeader(%q) = %v; want %v", tt.in, err, tt.want)
			}
			var m *malformed
			if isLimit := errors.As(tt.want, &m); isLimit != errors.Is(err, ErrMalformedHeader) {
				t.Errorf("errors.Is(%v, ErrMalformedHeader) = %v; want %v", err, !isLimit, isLimit)
			}
		})
	}
	if _, err := ReadHeader(bufio.NewReader(strings.NewReader("")), Limits{}); err != io.EOF {
		t.Errorf("ReadHeader of nothing = %v; want io.EOF", err)
	}
}

func itoa(n int) string { return string(AppendInt(nil, n)) }

// AppendInt is strconv.AppendInt for tests, spelled out to keep the
// test's expectations independent of the code under test.
func AppendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = AppendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func TestReadHeaderAtLimits(t *testing.T) {
	block := "CONTENT_LENGTH\x00100\x00SCGI\x001\x00A\x00\x00"
	in := itoa(len(block)) + ":" + block + ","
	h, err := ReadHeader(bufio.NewReader(strings.NewReader(in)), Limits{MaxHeaderBytes: len(block), MaxHeaders: 3, MaxContentLength: 100})
	if err != nil {
		t.Fatalf("ReadHeader at every limit: %v", err)
	}
	if h.ContentLength != 100 || h.Vars["A"] != "" || len(h.Names) != 3 {
		t.Errorf("ReadHeader = %+v", h)
	}
}

func TestAppendRequestInvalid(t *testing.T) {
	for _, params := range [][]string{
		{"NOEQUALS"},
		{"=value"},
		{"A\x00B=1"},
		{"A=1\x002"},
		{"A=1", "A=2"},
		{"SCGI=2"},
		{"CONTENT_LENGTH=-1"},
		{"CONTENT_LENGTH=01"},
		{"CONTENT_LENGTH=x"},
	} {
		if b, err := AppendRequest([]byte("x"), params); !errors.Is(err, ErrInvalidParam) || string(b) != "x" {
			t.Errorf("AppendRequest(%q) = %q, %v; want dst unchanged and ErrInvalidParam", params, b, err)
		}
	}
}

// TestAppendRequestAllocs: the netstring is sized before it is written, so
// building one into nil allocates once.
func TestAppendRequestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's allocations are its own")
	}
	if a := testing.AllocsPerRun(100, func() {
		if _, err := AppendRequest(nil, nginxParams); err != nil {
			t.Fatal(err)
		}
	}); a != 1 {
		t.Errorf("AppendRequest(nil, ...) made %v allocations; want 1", a)
	}
}

func BenchmarkReadHeader(b *testing.B) {
	wire, err := AppendRequest(nil, nginxParams)
	if err != nil {
		b.Fatal(err)
	}
	r := bytes.NewReader(wire)
	br := bufio.NewReader(r)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(wire)
		br.Reset(r)
		if _, err := ReadHeader(br, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRequest(b *testing.B) {
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendRequest(buf[:0], nginxParams); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// nginxParams is what nginx 1.22 sends for a GET through scgi_pass with
// the stock scgi_params, in that order.
var nginxParams = []string{
	"CONTENT_LENGTH=0",
	"REQUEST_METHOD=GET",
	"REQUEST_URI=/cgi-bin/env.sh/extra/path?a=1",
	"QUERY_STRING=a=1",
	"CONTENT_TYPE=",
	"DOCUMENT_URI=/cgi-bin/env.sh/extra/path",
	"DOCUMENT_ROOT=/srv/www",
	"SCGI=1",
	"SERVER_PROTOCOL=HTTP/1.1",
	"REQUEST_SCHEME=http",
	"REMOTE_ADDR=127.0.0.1",
	"REMOTE_PORT=53124",
	"SERVER_PORT=8080",
	"SERVER_NAME=localhost",
	"HTTP_HOST=127.0.0.1:8080",
	"HTTP_USER_AGENT=Go-http-client/1.1",
	"HTTP_ACCEPT_ENCODING=gzip",
	"HTTP_COOKIE=session=0123456789abcdef; theme=dark",
}
