package fastcgi

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/rs/zerolog"
)

// scriptedApp is a FastCGI application whose answer to a request is the
// records answer returns for its REQUEST_URI and request ID, written once
// the request's STDIN has ended. It then closes the connection, unless
// the request asked FCGI_KEEP_CONN: the client closes it then. It answers
// GET_VALUES with the records values holds. It returns the listening
// address.
func scriptedApp(t *testing.T, values []byte, answer func(uri string, id uint16) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &recListener{Listener: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		rl.Close()
		rl.closeAll()
		wg.Wait()
	})
	serve := func(nc net.Conn) {
		defer wg.Done()
		defer nc.Close()
		rd := NewReader(bufio.NewReader(nc))
		params := make(map[uint16][]byte)
		keep := make(map[uint16]bool)
		for {
			rec, err := rd.Next()
			if err != nil {
				return
			}
			id := rec.RequestID
			switch rec.Type {
			case TypeGetValues:
				nc.Write(values)
			case TypeBeginRequest:
				br, _ := ParseBeginRequest(rec.Content)
				keep[id] = br.Flags&FlagKeepConn != 0
			case TypeParams:
				params[id] = append(params[id], rec.Content...)
			case TypeStdin:
				if len(rec.Content) > 0 {
					continue
				}
				var uri string
				ParsePairs(params[id], func(n, v []byte) error {
					if string(n) == "REQUEST_URI" {
						uri = string(v)
					}
					return nil
				})
				if _, err := nc.Write(answer(uri, id)); err != nil || !keep[id] {
					return
				}
			}
		}
	}
	go func() {
		for {
			nc, err := rl.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go serve(nc)
		}
	}()
	return ln.Addr().String()
}

// valuesResult is a GET_VALUES_RESULT record: FCGI_MAX_CONNS=4, and
// FCGI_MPXS_CONNS=1 if mpx (else 0).
func valuesResult(mpx bool) []byte {
	mpxs := "0"
	if mpx {
		mpxs = "1"
	}
	return AppendRecord(nil, TypeGetValuesResult, 0, pairs("FCGI_MAX_CONNS", "4", "FCGI_MPXS_CONNS", mpxs))
}

// TestClientUnexpectedRecordType: a record for the request of a type an
// application must not send (BEGIN_REQUEST, PARAMS, STDIN, DATA,
// ABORT_REQUEST, a management type, an undefined type) fails the request
// with 502 and a log line naming the backend and the record's type, as
// nginx answers 502 ("upstream sent invalid FastCGI record type: N"). It
// was skipped: with the answer following it, the client got 200.
// Management records (request ID 0) are not the request's and are
// skipped (FastCGI 1.0 § 4: an application answers a management record
// it does not know with {FCGI_UNKNOWN_TYPE, 0, {T}}), where nginx, which
// takes any record of another ID than 1 for an error, answers 502. Each
// sequence runs through a Client on a connection per request and
// multiplexed, and through a real nginx for comparison.
func TestClientUnexpectedRecordType(t *testing.T) {
	leakcheck.Check(t)
	answer := func(id uint16) []byte {
		b := AppendRecord(nil, TypeStdout, id, []byte("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok"))
		b = AppendRecord(b, TypeStdout, id, nil)
		return AppendEndRequest(b, id, 0, RequestComplete)
	}
	before := func(t RecordType, content []byte, management bool) func(uint16) []byte {
		return func(id uint16) []byte {
			rid := id
			if management {
				rid = 0
			}
			return append(AppendRecord(nil, t, rid, content), answer(id)...)
		}
	}
	tests := []struct {
		name    string
		records func(id uint16) []byte
		want    int    // ferry's status
		wantLog string // in ferry's log, with the backend's address
		nginx   int    // nginx's status
	}{
		{"answer", answer, 200, "", 200},
		{"management UNKNOWN_TYPE", before(TypeUnknownType, []byte{99, 0, 0, 0, 0, 0, 0, 0}, true), 200, "", 502},
		{"management GET_VALUES_RESULT", before(TypeGetValuesResult, pairs("FCGI_MPXS_CONNS", "0"), true), 200, "", 502},
		{"management type 12", before(12, nil, true), 200, "", 502},
		{"BEGIN_REQUEST", func(id uint16) []byte {
			return append(AppendBeginRequest(nil, id, RoleResponder, 0), answer(id)...)
		}, 502, "a record of type BEGIN_REQUEST for request ID", 502},
		{"ABORT_REQUEST", before(TypeAbortRequest, nil, false), 502, "a record of type ABORT_REQUEST for request ID", 502},
		{"PARAMS", before(TypeParams, pairs("A", "b"), false), 502, "a record of type PARAMS for request ID", 502},
		{"empty PARAMS", before(TypeParams, nil, false), 502, "a record of type PARAMS for request ID", 502},
		{"STDIN", before(TypeStdin, nil, false), 502, "a record of type STDIN for request ID", 502},
		{"DATA", before(TypeData, []byte("x"), false), 502, "a record of type DATA for request ID", 502},
		{"GET_VALUES", before(TypeGetValues, pairs("FCGI_MAX_CONNS", ""), false), 502, "a record of type GET_VALUES for request ID", 502},
		{"GET_VALUES_RESULT", before(TypeGetValuesResult, pairs("FCGI_MAX_CONNS", "1"), false), 502, "a record of type GET_VALUES_RESULT for request ID", 502},
		{"UNKNOWN_TYPE", before(TypeUnknownType, []byte{99, 0, 0, 0, 0, 0, 0, 0}, false), 502, "a record of type UNKNOWN_TYPE for request ID", 502},
		{"type 12", before(12, nil, false), 502, "a record of type RecordType(12) for request ID", 502},
		{"type 255", before(255, []byte("x"), false), 502, "a record of type RecordType(255) for request ID", 502},
		{"after STDERR", func(id uint16) []byte {
			b := AppendRecord(nil, TypeStderr, id, []byte("warning\n"))
			b = AppendRecord(b, TypeParams, id, nil)
			return append(b, answer(id)...)
		}, 502, "a record of type PARAMS for request ID", 502},
		{"inside the header", func(id uint16) []byte {
			b := AppendRecord(nil, TypeStdout, id, []byte("Status: 200 OK\r\n"))
			b = AppendRecord(b, TypeData, id, []byte("x"))
			b = AppendRecord(b, TypeStdout, id, []byte("Content-Type: text/plain\r\n\r\nok"))
			b = AppendRecord(b, TypeStdout, id, nil)
			return AppendEndRequest(b, id, 0, RequestComplete)
		}, 502, "a record of type DATA for request ID", 502},
	}
	byPath := func(uri string, id uint16) []byte {
		for i, tt := range tests {
			if uri == fmt.Sprintf("/%d", i) {
				return tt.records(id)
			}
		}
		return nil
	}

	for _, mode := range []string{"conn", "mpx"} {
		t.Run(mode, func(t *testing.T) {
			addr := scriptedApp(t, valuesResult(mode == "mpx"), byPath)
			c := &Client{Network: "tcp", Address: addr, ReadTimeout: 5 * time.Second}
			defer c.CloseIdle()
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var log bytes.Buffer
					l := zerolog.New(&log)
					h := NewHandler(c, nil, cgi.Settings{Logger: &l})
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest("GET", fmt.Sprintf("/%d", i), nil))
					if w.Code != tt.want {
						t.Errorf("GET /%d = %d %q; want %d", i, w.Code, w.Body, tt.want)
					}
					if tt.want == 200 && w.Body.String() != "ok" {
						t.Errorf("GET /%d body = %q; want \"ok\"", i, w.Body)
					}
					if tt.wantLog != "" && (!strings.Contains(log.String(), tt.wantLog) || !strings.Contains(log.String(), addr)) {
						t.Errorf("log = %q; want a line naming %s and %q", log.String(), addr, tt.wantLog)
					}
				})
			}
			if mode == "mpx" && !c.multi {
				t.Errorf("the client did not multiplex")
			}
		})
	}

	t.Run("nginx", func(t *testing.T) {
		addr := scriptedApp(t, valuesResult(false), byPath)
		p := peerstest.NginxFastCGI(t, peers.NginxFastCGIConfig{Backend: addr})
		for i, tt := range tests {
			resp, err := http.Get(fmt.Sprintf("%s/%d", p.URL, i))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.nginx {
				t.Errorf("%s: nginx answered %d %q; want %d", tt.name, resp.StatusCode, body, tt.nginx)
			}
		}
		logs, err := p.Logs()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs, "upstream sent invalid FastCGI record type: 1 ") {
			t.Errorf("nginx's error log does not say \"upstream sent invalid FastCGI record type: 1\":\n%s", logs)
		}
	})
}

// TestClientGetValuesUnknownType: an application that does not know
// GET_VALUES answers {FCGI_UNKNOWN_TYPE, 0, {GET_VALUES}} (FastCGI 1.0
// § 4.2), and the client takes that answer at once: the pool is sized as
// for an application that says nothing (a connection per request). The
// answer was skipped, and the client waited for a GET_VALUES_RESULT until
// its dial timeout: the first request took 3 s more (DefaultDialTimeout),
// and GetValues failed with a timeout. An UNKNOWN_TYPE of another type is
// not an answer to GET_VALUES, and is skipped.
func TestClientGetValuesUnknownType(t *testing.T) {
	leakcheck.Check(t)
	answer := func(_ string, id uint16) []byte {
		b := AppendRecord(nil, TypeStdout, id, []byte("Content-Type: text/plain\r\n\r\nok"))
		b = AppendRecord(b, TypeStdout, id, nil)
		return AppendEndRequest(b, id, 0, RequestComplete)
	}
	unknown := func(t RecordType) []byte {
		return AppendRecord(nil, TypeUnknownType, 0, []byte{byte(t), 0, 0, 0, 0, 0, 0, 0})
	}
	addr := scriptedApp(t, append(unknown(99), unknown(TypeGetValues)...), answer)

	c := &Client{Network: "tcp", Address: addr}
	defer c.CloseIdle()
	start := time.Now()
	vals, err := c.GetValues(t.Context(), "FCGI_MAX_CONNS")
	if err == nil || !strings.Contains(err.Error(), "UNKNOWN_TYPE") || time.Since(start) > time.Second {
		t.Errorf("GetValues = %v, %v after %v; want an error saying UNKNOWN_TYPE at once", vals, err, time.Since(start))
	}
	start = time.Now()
	got, err := doBody(t, c, t.Context(), &Request{Params: clientParams("/")})
	if err != nil || got != "ok" || time.Since(start) > time.Second {
		t.Errorf("Do = %q, %v after %v; want \"ok\" at once", got, err, time.Since(start))
	}
	if c.keep || c.multi {
		t.Errorf("keep %v, multi %v; want a connection per request", c.keep, c.multi)
	}
}
