package fastcgi

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/rs/zerolog"
)

// stderrApp is a raw FastCGI application that answers every request with
// stderr, split over records: a CRLF line, a line longer than a log line,
// and a last line without a line end. mpx says whether it multiplexes.
func stderrApp(t *testing.T, mpx bool) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	long := strings.Repeat("x", 5000)
	serve := func(nc net.Conn) {
		defer nc.Close()
		rd := NewReader(bufio.NewReader(nc))
		for {
			rec, err := rd.Next()
			if err != nil {
				return
			}
			var out []byte
			switch {
			case rec.Type == TypeGetValues:
				vals := AppendPair(AppendPair(nil, "FCGI_MAX_CONNS", "1"), "FCGI_MPXS_CONNS", map[bool]string{true: "1", false: "0"}[mpx])
				out = AppendRecord(nil, TypeGetValuesResult, 0, vals)
			case rec.Type == TypeStdin && len(rec.Content) == 0:
				id := rec.RequestID
				out = AppendRecord(out, TypeStderr, id, []byte("first "))
				out = AppendRecord(out, TypeStderr, id, []byte("line\r\n"+long[:3000]))
				out = AppendRecord(out, TypeStderr, id, []byte(long[3000:]+"\npartial"))
				out = AppendRecord(out, TypeStdout, id, []byte("Content-Type: text/plain\r\n\r\nok"))
				out = AppendRecord(out, TypeStdout, id, nil)
				out = AppendEndRequest(out, id, 0, RequestComplete)
			default:
				continue
			}
			if _, err := nc.Write(out); err != nil {
				return
			}
		}
	}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go serve(nc)
		}
	}()
	return l
}

// TestClientLogsStderr checks that an application's STDERR stream is
// logged line by line, a long line in marked pieces and a last line
// without end at END_REQUEST, over kept and multiplexed connections.
func TestClientLogsStderr(t *testing.T) {
	for _, mpx := range []bool{false, true} {
		t.Run(map[bool]string{false: "conn", true: "mpx"}[mpx], func(t *testing.T) {
			leakcheck.Check(t)
			l := stderrApp(t, mpx)
			lg := &testlog.Buffer{}
			logger := zerolog.New(lg)
			c := &Client{Network: "tcp", Address: l.Addr().String(), MaxConns: 1, Logger: &logger}
			defer c.CloseIdle()
			if got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/")}); err != nil || got != "ok" {
				t.Fatalf("Do = %q, %v; want ok", got, err)
			}
			if c.multi != mpx {
				t.Fatalf("multiplexed = %v; want %v", c.multi, mpx)
			}
			backend := `"backend":"` + l.Addr().String() + `"`
			for _, want := range [][]string{
				{`"stderr":"first line"`},
				{`"split":true`, `"stderr":"` + strings.Repeat("x", 4096) + `"`},
				{`"stderr":"` + strings.Repeat("x", 5000-4096) + `"`},
				{`"stderr":"partial"`},
			} {
				if got := lg.Lines(append(want, backend, "fastcgi: application stderr")...); len(got) != 1 {
					t.Errorf("log lines with %q: %d; want 1\n%s", want, len(got), lg)
				}
			}
			if got := lg.Lines("application stderr"); len(got) != 4 {
				t.Errorf("%d stderr lines logged; want 4\n%s", len(got), lg)
			}
		})
	}
}

// TestClientStderrBounded: an application that writes without end to its
// STDERR stream does not flood the log: past MaxStderrBytes a request's
// stderr is dropped, said once, and the answer still comes (10 MiB of
// it made 103,819 log lines).
func TestClientStderrBounded(t *testing.T) {
	leakcheck.Check(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	line := strings.Repeat("e", 99) + "\n"
	serve := func(nc net.Conn) {
		defer nc.Close()
		rd := NewReader(bufio.NewReader(nc))
		for {
			rec, err := rd.Next()
			if err != nil {
				return
			}
			if rec.Type == TypeGetValues {
				nc.Write(AppendRecord(nil, TypeGetValuesResult, 0, AppendPair(nil, "FCGI_MAX_CONNS", "1")))
				continue
			}
			if rec.Type != TypeStdin || len(rec.Content) != 0 {
				continue
			}
			id := rec.RequestID
			for range 100 { // 100 records of 10,000 bytes: 1 MB
				if _, err := nc.Write(AppendRecord(nil, TypeStderr, id, []byte(strings.Repeat(line, 100)))); err != nil {
					return
				}
			}
			out := AppendRecord(nil, TypeStdout, id, []byte("Content-Type: text/plain\r\n\r\nok"))
			out = AppendRecord(out, TypeStdout, id, nil)
			nc.Write(AppendEndRequest(out, id, 0, RequestComplete))
		}
	}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go serve(nc)
		}
	}()
	lg := &testlog.Buffer{}
	logger := zerolog.New(lg)
	c := &Client{Network: "tcp", Address: l.Addr().String(), MaxConns: 1, Logger: &logger}
	defer c.CloseIdle()
	if got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/")}); err != nil || got != "ok" {
		t.Fatalf("Do = %q, %v; want ok", got, err)
	}
	// 64 KiB at 99 bytes a line: 662 lines, the last reaching the bound.
	if got := len(lg.Lines(`"message":"fastcgi: application stderr"`)); got != 662 {
		t.Errorf("%d stderr lines logged; want 662", got)
	}
	if got := lg.Lines("stderr limit reached", `"limit_bytes":65536`); len(got) != 1 {
		t.Errorf("lines saying the rest is dropped: %q; want 1", got)
	}
}
