package linelog

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/rs/zerolog"
)

// logged runs writes through a Writer with the given bounds, flushes it,
// and returns each event as "msg|stderr" with "+" after a split piece.
func logged(t *testing.T, maxLine int, maxBytes int64, writes ...string) []string {
	t.Helper()
	var buf bytes.Buffer
	lg := zerolog.New(&buf)
	w := &Writer{
		Event:    func() *zerolog.Event { return lg.Warn().Str("who", "test") },
		Msg:      "line",
		MaxLine:  maxLine,
		MaxBytes: maxBytes,
		DropMsg:  "dropped",
	}
	for _, s := range writes {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", s, n, err, len(s))
		}
	}
	w.Flush()
	return decode(t, &buf)
}

func decode(t *testing.T, buf *bytes.Buffer) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var ev struct {
			Who    string `json:"who"`
			Msg    string `json:"message"`
			Stderr string `json:"stderr"`
			Split  bool   `json:"split"`
			Limit  int64  `json:"limit_bytes"`
			Level  string `json:"level"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if ev.Who != "test" || ev.Level != "warn" {
			t.Errorf("event %q lost the Event's fields", l)
		}
		s := ev.Msg + "|" + ev.Stderr
		if ev.Split {
			s += "+"
		}
		if ev.Msg == "dropped" && ev.Limit == 0 {
			t.Errorf("drop event %q has no limit", l)
		}
		out = append(out, s)
	}
	return out
}

func TestWriter(t *testing.T) {
	for _, tt := range []struct {
		name     string
		maxLine  int
		maxBytes int64
		writes   []string
		want     []string
	}{
		{"lines", 0, 0, []string{"one\ntwo\n"}, []string{"line|one", "line|two"}},
		{"across writes", 0, 0, []string{"o", "n", "e\nt", "wo\n"}, []string{"line|one", "line|two"}},
		{"crlf", 0, 0, []string{"one\r\n"}, []string{"line|one"}},
		{"empty line", 0, 0, []string{"\n\nx\n"}, []string{"line|", "line|", "line|x"}},
		{"last line without end", 0, 0, []string{"one\ntwo"}, []string{"line|one", "line|two"}},
		{"nothing", 0, 0, nil, nil},
		{"exactly maxLine", 4, 0, []string{"abcd\n"}, []string{"line|abcd"}},
		{"exactly maxLine, open", 4, 0, []string{"abcd", "\n"}, []string{"line|abcd"}},
		{"split", 4, 0, []string{"abcdefghij\n"}, []string{"line|abcd+", "line|efgh+", "line|ij"}},
		{"split across writes", 4, 0, []string{"ab", "cdef", "g\nxy\n"}, []string{"line|abcd+", "line|efg", "line|xy"}},
		{"split at flush", 4, 0, []string{"abcde"}, []string{"line|abcd+", "line|e"}},
		{"budget", 0, 6, []string{"abc\ndef\nghi\n"}, []string{"line|abc", "line|def", "dropped|"}},
		{"budget crossed by a line", 0, 5, []string{"abc\ndef\nghi\n"}, []string{"line|abc", "line|def", "dropped|"}},
		{"budget, open line dropped", 0, 3, []string{"abc\nde"}, []string{"line|abc", "dropped|"}},
		{"budget with split", 4, 6, []string{"abcdefghij\n"}, []string{"line|abcd+", "line|efgh+", "dropped|"}},
		{"budget not reached", 0, 100, []string{"abc\n"}, []string{"line|abc"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := logged(t, tt.maxLine, tt.maxBytes, tt.writes...); !slices.Equal(got, tt.want) {
				t.Errorf("lines of %q (MaxLine %d, MaxBytes %d) = %q; want %q", tt.writes, tt.maxLine, tt.maxBytes, got, tt.want)
			}
		})
	}
}

func TestWriterDefaultMaxLine(t *testing.T) {
	long := strings.Repeat("x", DefaultMaxLine+1)
	got := logged(t, 0, 0, long+"\n")
	want := []string{"line|" + long[:DefaultMaxLine] + "+", "line|x"}
	if !slices.Equal(got, want) {
		t.Errorf("a line of DefaultMaxLine+1 bytes logged as %d events; want a split piece and the last byte", len(got))
	}
}

func TestWriterReadFrom(t *testing.T) {
	var buf bytes.Buffer
	lg := zerolog.New(&buf)
	w := &Writer{Event: func() *zerolog.Event { return lg.Warn().Str("who", "test") }, Msg: "line", MaxBytes: 10, DropMsg: "dropped"}
	// Much more than the budget, in small reads: all of it is read.
	in := strings.Repeat("0123456789\n", 10000)
	n, err := w.ReadFrom(iotest.OneByteReader(strings.NewReader(in)))
	if n != int64(len(in)) || err != nil {
		t.Fatalf("ReadFrom = %d, %v; want %d, nil", n, err, len(in))
	}
	w.Flush()
	if got, want := decode(t, &buf), []string{"line|0123456789", "dropped|"}; !slices.Equal(got, want) {
		t.Errorf("logged %q; want %q", got, want)
	}

	buf.Reset()
	w = &Writer{Event: func() *zerolog.Event { return lg.Warn().Str("who", "test") }, Msg: "line"}
	boom := errors.New("boom")
	n, err = w.ReadFrom(io.MultiReader(strings.NewReader("one\ntw"), iotest.ErrReader(boom)))
	if n != 6 || !errors.Is(err, boom) {
		t.Errorf("ReadFrom of a failing reader = %d, %v; want 6, boom", n, err)
	}
	w.Flush()
	if got, want := decode(t, &buf), []string{"line|one", "line|tw"}; !slices.Equal(got, want) {
		t.Errorf("logged %q; want %q", got, want)
	}
}

func TestWriterNilEvent(t *testing.T) {
	w := &Writer{MaxBytes: 1}
	if n, err := w.Write([]byte("quiet\n")); n != 6 || err != nil {
		t.Errorf("Write with no Event = %d, %v; want 6, nil", n, err)
	}
	w.Flush()
}

func BenchmarkWriter(b *testing.B) {
	lg := zerolog.New(io.Discard)
	w := &Writer{Event: func() *zerolog.Event { return lg.Warn().Int("pid", 1) }, Msg: "line"}
	p := []byte(strings.Repeat("a line of stderr output, as a script writes it\n", 80))
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		w.Write(p)
	}
}
