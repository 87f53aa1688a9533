package cgi

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

var updateGolden = flag.Bool("update", false, "rewrite the want sections of ../testdata/response/*.txt")

// responseGoldenDir holds one ReadResponse case per file.
const responseGoldenDir = "../testdata/response"

// A golden file is:
//
//	# comment lines
//	nph: true                          (optional: parse as an NPH response)
//	limits: line=32 bytes=64 fields=3  (optional HeaderLimits; absent means 0)
//	skip: BUG: one line                (optional: a mismatch skips, naming the bug)
//	-- output --
//	the script's output, escaped (see unescapeGolden)
//	-- want --
//	the expected parse (see formatParse), or "error: <substring>" and
//	optionally "is: ErrNoResponse"
type goldenCase struct {
	nph    bool
	lim    HeaderLimits
	skip   string
	output []byte
	want   string
	head   string // everything up to and including "-- want --\n", for -update
}

const (
	goldenOutputMarker = "-- output --\n"
	goldenWantMarker   = "-- want --\n"
)

func parseGolden(t testing.TB, data string) goldenCase {
	t.Helper()
	var c goldenCase
	opts, rest, ok := strings.Cut(data, goldenOutputMarker)
	if !ok {
		t.Fatalf("golden file has no %q line", strings.TrimSpace(goldenOutputMarker))
	}
	out, want, ok := strings.Cut(rest, goldenWantMarker)
	if !ok {
		t.Fatalf("golden file has no %q line", strings.TrimSpace(goldenWantMarker))
	}
	c.head = data[:len(data)-len(want)]
	c.want = want
	for _, line := range strings.Split(opts, "\n") {
		key, val, _ := strings.Cut(line, ":")
		val = strings.TrimSpace(val)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case key == "nph":
			c.nph = val == "true"
		case key == "skip":
			c.skip = val
		case key == "limits":
			for _, f := range strings.Fields(val) {
				k, v, _ := strings.Cut(f, "=")
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("golden limits %q: %v", f, err)
				}
				switch k {
				case "line":
					c.lim.MaxLine = n
				case "bytes":
					c.lim.MaxBytes = n
				case "fields":
					c.lim.MaxFields = n
				default:
					t.Fatalf("golden limits: unknown %q", k)
				}
			}
		default:
			t.Fatalf("golden option line %q not understood", line)
		}
	}
	b, err := unescapeGolden(out)
	if err != nil {
		t.Fatalf("golden output: %v", err)
	}
	c.output = b
	return c
}

// unescapeGolden turns the output section into bytes. Lines end in LF as
// written; these escapes give the rest: \r CR, \n LF, \t HTAB, \0 NUL, \xHH
// any byte, \\ a backslash, \[N]c the byte c N times, and a backslash at the
// end of a line joins it to the next (no LF), so a last line ending in '\'
// gives output without a final newline.
func unescapeGolden(s string) ([]byte, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		i++
		if i == len(s) {
			return nil, errors.New("backslash at end of section")
		}
		switch s[i] {
		case 'r':
			b = append(b, '\r')
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case '0':
			b = append(b, 0)
		case '\\':
			b = append(b, '\\')
		case '\n':
			// joined line
		case 'x':
			if i+2 >= len(s) {
				return nil, errors.New(`short \x escape`)
			}
			n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf(`bad \x escape %q`, s[i-1:i+3])
			}
			b = append(b, byte(n))
			i += 2
		case '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 || i+end+1 >= len(s) {
				return nil, errors.New(`bad \[N]c escape`)
			}
			n, err := strconv.Atoi(s[i+1 : i+end])
			if err != nil {
				return nil, fmt.Errorf(`bad \[N]c count: %v`, err)
			}
			b = append(b, bytes.Repeat([]byte{s[i+end+1]}, n)...)
			i += end + 1
		default:
			return nil, fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b, nil
}

// formatParse renders a ReadResponse result in the golden text format:
// header fields sorted by name, the values of one name in the order given.
func formatParse(resp *Response, err error, rest []byte) string {
	var b strings.Builder
	if err != nil {
		fmt.Fprintf(&b, "error: %s\n", err)
		if errors.Is(err, ErrNoResponse) {
			b.WriteString("is: ErrNoResponse\n")
		}
		return b.String()
	}
	fmt.Fprintf(&b, "kind: %s\nstatus: %d\n", resp.Kind, resp.Status)
	if resp.Reason != "" {
		fmt.Fprintf(&b, "reason: %s\n", resp.Reason)
	}
	if resp.Location != "" {
		fmt.Fprintf(&b, "location: %s\n", resp.Location)
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range resp.Header {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(&b, "header: %s: %s\n", k, v)
		}
	}
	fmt.Fprintf(&b, "body: %s\n", strconv.Quote(string(rest)))
	return b.String()
}

// matchGolden compares a result with a want section: an "error:" line
// matches as a substring of the error, everything else exactly.
func matchGolden(want string, resp *Response, err error, rest []byte) (got string, ok bool) {
	got = formatParse(resp, err, rest)
	wantErr, isError := strings.CutPrefix(want, "error: ")
	if !isError {
		return got, got == want
	}
	if err == nil || !errors.Is(err, ErrMalformedResponse) {
		return got, false
	}
	first, more, _ := strings.Cut(wantErr, "\n")
	if !strings.Contains(err.Error(), first) {
		return got, false
	}
	if wantIs := strings.TrimSpace(more) == "is: ErrNoResponse"; wantIs != errors.Is(err, ErrNoResponse) {
		return got, false
	}
	return got, true
}

func TestReadResponseGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(responseGoldenDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("found %d golden files in %s; want the whole set", len(files), responseGoldenDir)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c := parseGolden(t, string(data))
			if *updateGolden && c.skip == "" {
				br := bufio.NewReader(bytes.NewReader(c.output))
				resp, err := ReadResponse(br, c.nph, c.lim)
				var rest []byte
				if err == nil {
					rest, _ = io.ReadAll(br) // a bytes.Reader does not fail
				}
				if _, ok := matchGolden(c.want, resp, err, rest); ok {
					return // keep a hand-written error substring
				}
				if err := os.WriteFile(file, []byte(c.head+formatParse(resp, err, rest)), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			// The same bytes must parse the same way however they arrive:
			// through the smallest bufio buffer (every line overflows it),
			// the handler's 4 KiB one, and one byte per Read.
			readers := []struct {
				name string
				br   func() *bufio.Reader
			}{
				{"buf16", func() *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(c.output), 16) }},
				{"buf4096", func() *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(c.output), 4096) }},
				{"onebyte", func() *bufio.Reader {
					return bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(c.output)), 4096)
				}},
			}
			for _, rd := range readers {
				br := rd.br()
				resp, err := ReadResponse(br, c.nph, c.lim)
				var rest []byte
				if err == nil {
					var rerr error
					rest, rerr = io.ReadAll(br)
					if rerr != nil {
						t.Fatalf("%s: reading the body: %v", rd.name, rerr)
					}
				}
				got, ok := matchGolden(c.want, resp, err, rest)
				if ok {
					if c.skip != "" {
						t.Logf("%s: matches although marked %q; remove the skip line", rd.name, c.skip)
					}
					continue
				}
				if c.skip != "" {
					t.Skip(c.skip)
				}
				t.Errorf("%s: ReadResponse(%q, nph=%v, %+v) =\n%s\nwant\n%s", rd.name, trimForLog(c.output), c.nph, c.lim, got, c.want)
			}
		})
	}
}

func trimForLog(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "..."...)
	}
	return b
}

// TestReadResponseBodyStart checks, byte by byte, that the reader is left on
// the first body byte whatever the line ends, and that nothing past the
// header block is consumed from the underlying reader beyond what bufio
// buffered.
func TestReadResponseBodyStart(t *testing.T) {
	tests := []struct {
		name, in, body string
	}{
		{"LF", "Content-Type: text/plain\nA: 1\n\nbody\n", "body\n"},
		{"CRLF", "Content-Type: text/plain\nA: 1\r\n\r\nbody\r\n", "body\r\n"},
		{"CRLF then LF blank", "Content-Type: text/plain\nA: 1\r\n\n\r\nbody", "\r\nbody"},
		{"LF then CRLF blank", "Content-Type: text/plain\nA: 1\n\r\n\nbody", "\nbody"},
		{"blank lines in body", "Content-Type: text/plain\nA: 1\n\n\n\nB: 2\n\n", "\n\nB: 2\n\n"},
		{"empty body", "Content-Type: text/plain\nA: 1\n\n", ""},
		{"binary body", "Content-Type: text/plain\nA: 1\n\n\x00\xff\r\n", "\x00\xff\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			resp, err := ReadResponse(br, false, HeaderLimits{})
			if err != nil {
				t.Fatalf("ReadResponse(%q): %v", tt.in, err)
			}
			if got := resp.Header.Get("A"); got != "1" {
				t.Errorf("ReadResponse(%q): A = %q; want %q", tt.in, got, "1")
			}
			rest, err := io.ReadAll(br)
			if err != nil {
				t.Fatal(err)
			}
			if string(rest) != tt.body {
				t.Errorf("ReadResponse(%q): body = %q; want %q", tt.in, rest, tt.body)
			}
		})
	}
}

// TestReadResponseLimitBoundaries checks each limit at N (passes) and N+1
// (fails), for LF and CRLF lines.
func TestReadResponseLimitBoundaries(t *testing.T) {
	// Every block carries one CGI field (RFC 3875 § 6.3): field is a
	// Content-Type line, pad any other, each of total bytes, eol included.
	field := func(total int, eol string) string {
		return "Content-Type: " + strings.Repeat("a", total-len("Content-Type: ")-len(eol)) + eol
	}
	pad := func(total int, eol string) string {
		return "X-Pad: " + strings.Repeat("a", total-len("X-Pad: ")-len(eol)) + eol
	}
	const st = "Status: 200\n"
	tests := []struct {
		name string
		in   string
		lim  HeaderLimits
		ok   bool
	}{
		{"line at MaxLine LF", field(40, "\n") + "\n", HeaderLimits{MaxLine: 40}, true},
		{"line over MaxLine LF", field(41, "\n") + "\n", HeaderLimits{MaxLine: 40}, false},
		{"line at MaxLine CRLF", field(40, "\r\n") + "\r\n", HeaderLimits{MaxLine: 40}, true},
		{"line over MaxLine CRLF", field(41, "\r\n") + "\r\n", HeaderLimits{MaxLine: 40}, false},
		{"line at default MaxLine", field(DefaultMaxHeaderLine, "\n") + "\n", HeaderLimits{}, true},
		{"line over default MaxLine", field(DefaultMaxHeaderLine+1, "\n") + "\n", HeaderLimits{}, false},
		{"4 KiB line, defaults", field(4<<10, "\n") + "\n", HeaderLimits{}, true},
		{"12 KiB line, defaults", field(12<<10, "\r\n") + "\r\n", HeaderLimits{}, true},
		{"block at MaxBytes", field(30, "\n") + pad(29, "\n") + "\n", HeaderLimits{MaxBytes: 60}, true},
		{"block over MaxBytes", field(30, "\n") + pad(30, "\n") + "\n", HeaderLimits{MaxBytes: 60}, false},
		{"fields at MaxFields", st + strings.Repeat("A: 1\n", 4) + "\n", HeaderLimits{MaxFields: 5}, true},
		{"fields over MaxFields", st + strings.Repeat("A: 1\n", 5) + "\n", HeaderLimits{MaxFields: 5}, false},
		{"fields at default MaxFields", st + strings.Repeat("A: 1\n", DefaultMaxHeaderFields-1) + "\n", HeaderLimits{}, true},
		{"fields over default MaxFields", st + strings.Repeat("A: 1\n", DefaultMaxHeaderFields) + "\n", HeaderLimits{}, false},
		{"block over default MaxBytes", field(1000, "\n") + strings.Repeat(pad(1000, "\n"), DefaultMaxHeaderBytes/1000) + "\n", HeaderLimits{MaxFields: 1 << 20}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				br := bufio.NewReaderSize(strings.NewReader(tt.in+"body"), size)
				_, err := ReadResponse(br, false, tt.lim)
				if tt.ok {
					if err != nil {
						t.Fatalf("buf %d: ReadResponse(%d bytes, %+v): %v; want success", size, len(tt.in), tt.lim, err)
					}
					if rest, _ := io.ReadAll(br); string(rest) != "body" {
						t.Errorf("buf %d: body = %q; want %q", size, trimForLog(rest), "body")
					}
					continue
				}
				if !errors.Is(err, ErrMalformedResponse) {
					t.Errorf("buf %d: ReadResponse(%d bytes, %+v) error = %v; want ErrMalformedResponse", size, len(tt.in), tt.lim, err)
				}
			}
		})
	}
}

// errReader fails after its data.
type errReader struct {
	data string
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadResponseReadError(t *testing.T) {
	boom := errors.New("pipe broke")
	_, err := ReadResponse(bufio.NewReader(&errReader{"Content-Type: text/plain\n", boom}), false, HeaderLimits{})
	if !errors.Is(err, boom) {
		t.Errorf("ReadResponse on a failing reader: error = %v; want it to wrap %v", err, boom)
	}
	if errors.Is(err, ErrMalformedResponse) {
		t.Errorf("ReadResponse on a failing reader: error = %v; want no ErrMalformedResponse (the output was not malformed)", err)
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		k    Kind
		want string
	}{
		{Document, "document"}, {LocalRedirect, "local-redirect"}, {ClientRedirect, "client-redirect"}, {Kind(7), "Kind(7)"},
	}
	for _, tt := range tests {
		if got := tt.k.String(); got != tt.want {
			t.Errorf("Kind(%d).String() = %q; want %q", uint8(tt.k), got, tt.want)
		}
	}
}

// TestCanonicalKey: canonicalKey agrees with textproto for token names,
// common or not, short or long.
func TestCanonicalKey(t *testing.T) {
	names := []string{
		"content-type", "CONTENT-LENGTH", "x-powered-by", "X-POWERED-BY", "set-cookie", "status", "a", "-",
		"-x", "x-", "x--y", "1abc-2DEF", "foo_bar", "~!#$%&'*+.^_`|", "te", "ETag", "WWW-Authenticate",
		strings.Repeat("ab-", 21) + "c", strings.Repeat("Ab-", 22) + "c",
	}
	for k := range commonKeys {
		names = append(names, k, strings.ToLower(k), strings.ToUpper(k))
	}
	for _, n := range names {
		if got, want := canonicalKey([]byte(n)), textproto.CanonicalMIMEHeaderKey(n); got != want {
			t.Errorf("canonicalKey(%q) = %q; want %q", n, got, want)
		}
	}
}

// TestHeadEnd: HeadEnd finds the end of a header block where ReadResponse
// would, and says when the bytes so far already break the limits that
// ReadResponse would refuse them for; for every whole block it finds,
// ReadResponse reads the same bytes as the header.
func TestHeadEnd(t *testing.T) {
	lim := HeaderLimits{MaxLine: 16, MaxBytes: 40, MaxFields: 3}
	for _, tt := range []struct {
		in   string
		n    int
		over bool
	}{
		{"", 0, false},
		{"Status: 200", 0, false},
		{"Status: 200\n", 0, false},
		{"Status: 200\n\n", 13, false},
		{"Status: 200\r\n\r\nbody", 15, false},
		{"Status: 200\nB: 2\r\n\nbody\n\n", 19, false},
		{"Status: 200\nX: 123456789012\n\n", 29, false}, // a line of 16 bytes, LF included
		{"Status: 200\nX: 1234567890123\n", 0, true},    // 17
		{"Status: 200\nX: 1234567890123", 0, true},      // 16 so far: its end makes 17
		{"Status: 200\nX: 123456789012", 0, false},      // 15 so far
		{"Status: 200\nB: 2\nC: 3\n\n", 23, false},
		{"Status: 200\nB: 2\nC: 3\nD: 4\n\n", 0, true},             // 4 fields
		{"Status: 200\nAB: 123456789\nCD: 123456789\n\n", 0, true}, // 41 bytes
		{"Status: 200\nAB: 123456789\nCD: 12345678\n\n", 40, false},
		{"Status: 200\nAB: 123456789\nCD: 1234567890", 0, true}, // 40 so far, its end to come
	} {
		n, over := lim.HeadEnd([]byte(tt.in))
		if n != tt.n || over != tt.over {
			t.Errorf("HeadEnd(%q) = %d, %v; want %d, %v", tt.in, n, over, tt.n, tt.over)
		}
		if over {
			// Ended now, it is refused all the same.
			if _, err := ReadResponse(bufio.NewReader(strings.NewReader(tt.in+"\n\n")), false, lim); !errors.Is(err, ErrMalformedResponse) {
				t.Errorf("ReadResponse(%q) = %v; HeadEnd says it is over the limits", tt.in+"\n\n", err)
			}
		}
		if n == 0 {
			continue
		}
		br := bufio.NewReader(strings.NewReader(tt.in))
		if _, err := ReadResponse(br, false, lim); err != nil {
			t.Errorf("ReadResponse(%q): %v; HeadEnd found its end", tt.in, err)
		} else if rest := br.Buffered(); len(tt.in)-rest != n {
			t.Errorf("ReadResponse(%q) read %d bytes of header; HeadEnd says %d", tt.in, len(tt.in)-rest, n)
		}
	}
}
