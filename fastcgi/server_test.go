package fastcgi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/rs/zerolog"
)

// timeout bounds every wait for the server; a healthy test never nears it.
const timeout = 10 * time.Second

// serverTester plays the web server: it writes raw records to a Server's
// connection and reads what comes back, record by record (after h2's
// serverTester).
type serverTester struct {
	t    testing.TB
	srv  *Server
	cc   net.Conn      // the web server's end
	done chan struct{} // closed when ServeConn returns; nil for a dialled conn
	log  *syncBuffer

	recs    chan Record // records from the server; closed at the end of the connection
	pending []Record    // read but not yet asked for
	rawMu   sync.Mutex
	raw     bytes.Buffer // every byte the server sent
}

// newServerTester serves h on one end of a net.Pipe with ServeConn. opts
// adjust the Server before it starts.
func newServerTester(t testing.TB, h http.Handler, opts ...func(*Server)) *serverTester {
	t.Helper()
	log := &syncBuffer{}
	l := zerolog.New(log)
	srv := &Server{Handler: h, Logger: &l}
	for _, o := range opts {
		o(srv)
	}
	sc, cc := net.Pipe()
	st := newClient(t, cc)
	st.srv, st.log, st.done = srv, log, make(chan struct{})
	go func() {
		defer close(st.done)
		srv.ServeConn(sc)
	}()
	return st
}

// newClient wraps a connection to a server.
func newClient(t testing.TB, cc net.Conn) *serverTester {
	st := &serverTester{t: t, cc: cc, recs: make(chan Record, 1024)}
	go st.readLoop()
	t.Cleanup(st.close)
	return st
}

func (st *serverTester) readLoop() {
	defer close(st.recs)
	rd := NewReader(io.TeeReader(st.cc, rawWriter{st}))
	for {
		r, err := rd.Next()
		if err != nil {
			return
		}
		r.Content = bytes.Clone(r.Content)
		st.recs <- r
	}
}

type rawWriter struct{ st *serverTester }

func (w rawWriter) Write(p []byte) (int, error) {
	w.st.rawMu.Lock()
	defer w.st.rawMu.Unlock()
	return w.st.raw.Write(p)
}

// rawBytes returns every byte the server has sent so far.
func (st *serverTester) rawBytes() string {
	st.rawMu.Lock()
	defer st.rawMu.Unlock()
	return st.raw.String()
}

// close ends the connection and checks the server lets go of it.
func (st *serverTester) close() {
	st.cc.Close()
	for range st.recs {
	}
	if st.done != nil {
		select {
		case <-st.done:
		case <-time.After(timeout):
			st.t.Errorf("ServeConn did not return after the web server closed the connection")
		}
	}
}

// waitServed waits for ServeConn to return.
func (st *serverTester) waitServed() {
	st.t.Helper()
	select {
	case <-st.done:
	case <-time.After(timeout):
		st.t.Fatalf("ServeConn did not return")
	}
}

// write sends raw bytes; the server must read them all.
func (st *serverTester) write(b []byte) {
	st.t.Helper()
	if _, err := st.cc.Write(b); err != nil {
		st.t.Fatalf("writing %d bytes to the server: %v", len(b), err)
	}
}

// writeMayFail sends raw bytes to a server that may close the connection
// part way.
func (st *serverTester) writeMayFail(b []byte) {
	st.cc.Write(b) // an error is the server closing the connection, which the caller checks
}

func (st *serverTester) writeRecord(t RecordType, id uint16, content string) {
	st.t.Helper()
	st.write(AppendRecord(nil, t, id, []byte(content)))
}

func (st *serverTester) writeBegin(id uint16, role Role, flags uint8) {
	st.t.Helper()
	st.write(AppendBeginRequest(nil, id, role, flags))
}

// writeParams sends the name-value pairs nv (name, value, name, value...) as
// one PARAMS record and the empty one that ends the stream.
func (st *serverTester) writeParams(id uint16, nv ...string) {
	st.t.Helper()
	st.writeParamsChunked(id, MaxContent, nv...)
}

// writeParamsChunked sends the PARAMS stream in records of at most chunk
// bytes, then the end of the stream.
func (st *serverTester) writeParamsChunked(id uint16, chunk int, nv ...string) {
	st.t.Helper()
	st.writeStream(TypeParams, id, chunk, string(pairs(nv...)))
}

// writeStream sends s as records of at most chunk bytes, then the empty
// record that ends the stream.
func (st *serverTester) writeStream(t RecordType, id uint16, chunk int, s string) {
	st.t.Helper()
	var b []byte
	for len(s) > 0 {
		n := min(len(s), chunk)
		b = AppendRecord(b, t, id, []byte(s[:n]))
		s = s[n:]
	}
	b = AppendRecord(b, t, id, nil)
	st.write(b)
}

// writeRequest sends a whole request: BEGIN_REQUEST, PARAMS, STDIN.
func (st *serverTester) writeRequest(id uint16, flags uint8, body string, nv ...string) {
	st.t.Helper()
	st.writeBegin(id, RoleResponder, flags)
	st.writeParams(id, nv...)
	st.writeStream(TypeStdin, id, MaxContent, body)
}

func pairs(nv ...string) []byte {
	if len(nv)%2 != 0 {
		panic("odd name-value list")
	}
	var b []byte
	for i := 0; i < len(nv); i += 2 {
		b = AppendPair(b, nv[i], nv[i+1])
	}
	return b
}

// get returns the params of a simple GET request for uri.
func get(uri string, more ...string) []string {
	return append([]string{"REQUEST_METHOD", "GET", "REQUEST_URI", uri, "SERVER_PROTOCOL", "HTTP/1.1",
		"SERVER_NAME", "example.com", "SERVER_PORT", "80"}, more...)
}

// readRecord returns the next record from the server; ok is false at the
// end of the connection.
func (st *serverTester) readRecord() (r Record, ok bool) {
	st.t.Helper()
	if len(st.pending) > 0 {
		r = st.pending[0]
		st.pending = st.pending[1:]
		return r, true
	}
	select {
	case r, ok = <-st.recs:
		return r, ok
	case <-time.After(timeout):
		st.t.Fatalf("timed out waiting for a record from the server")
		panic("unreachable")
	}
}

// readRecordFor returns the next record for request id, keeping the others
// for later.
func (st *serverTester) readRecordFor(id uint16) Record {
	st.t.Helper()
	for i, r := range st.pending {
		if r.RequestID == id {
			st.pending = append(st.pending[:i:i], st.pending[i+1:]...)
			return r
		}
	}
	for {
		select {
		case r, ok := <-st.recs:
			if !ok {
				st.t.Fatalf("connection closed while waiting for a record of request %d", id)
			}
			if r.RequestID == id {
				return r
			}
			st.pending = append(st.pending, r)
		case <-time.After(timeout):
			st.t.Fatalf("timed out waiting for a record of request %d", id)
		}
	}
}

// response is what the server sent for one request.
type response struct {
	stdout, stderr string
	end            EndRequest
}

// readResponse reads request id's records up to its END_REQUEST, checking
// that STDOUT was ended by an empty record first.
func (st *serverTester) readResponse(id uint16) response {
	st.t.Helper()
	var resp response
	stdoutEnded := false
	for {
		r := st.readRecordFor(id)
		switch r.Type {
		case TypeStdout:
			if stdoutEnded {
				st.t.Fatalf("request %d: STDOUT record after the end of STDOUT", id)
			}
			if len(r.Content) == 0 {
				stdoutEnded = true
			}
			resp.stdout += string(r.Content)
		case TypeStderr:
			resp.stderr += string(r.Content)
		case TypeEndRequest:
			end, err := ParseEndRequest(r.Content)
			if err != nil {
				st.t.Fatalf("request %d: %v", id, err)
			}
			if !stdoutEnded {
				st.t.Errorf("request %d: END_REQUEST without an empty STDOUT record first", id)
			}
			resp.end = end
			return resp
		default:
			st.t.Fatalf("request %d: unexpected %s record", id, r.Type)
		}
	}
}

// wantClosed reads until the server closes the connection, and returns the
// records read on the way.
func (st *serverTester) wantClosed() []Record {
	st.t.Helper()
	recs := st.pending
	st.pending = nil
	for {
		select {
		case r, ok := <-st.recs:
			if !ok {
				return recs
			}
			recs = append(recs, r)
		case <-time.After(timeout):
			st.t.Fatalf("the server did not close the connection")
		}
	}
}

// sync sends GET_VALUES and waits for its result: every record sent before
// has been handled by the read loop. It returns the records that came
// before the result.
func (st *serverTester) sync() []Record {
	st.t.Helper()
	st.writeRecord(TypeGetValues, 0, string(pairs("FCGI_MPXS_CONNS", "")))
	var before []Record
	for {
		r, ok := st.readRecord()
		if !ok {
			st.t.Fatalf("connection closed while waiting for GET_VALUES_RESULT")
		}
		if r.Type == TypeGetValuesResult {
			return before
		}
		before = append(before, r)
	}
}

// syncBuffer is the shared concurrent log sink.
type syncBuffer = testlog.Buffer

// cgiResponse is the CGI response header block for status and a text/plain
// body, as cgi.ResponseWriter writes it.
func cgiResponse(status int, body string) string {
	return fmt.Sprintf("Status: %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s", status, http.StatusText(status), body)
}

// textHandler answers every request with body as text/plain.
func textHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, body)
	}
}

// echoHandler writes back what it saw of the request.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "method=%s path=%s query=%s role=%s\n", r.Method, r.URL.Path, r.URL.RawQuery, RoleOf(r))
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		fmt.Fprintf(w, "%s: %s\n", k, strings.Join(r.Header[k], ","))
	}
	fmt.Fprintf(w, "body=%q err=%v data=%v\n", body, err, FilterData(r) != nil)
}

// releaseOnCleanup returns a channel closed at the end of the test at the
// latest, so that a handler blocked on it cannot outlive a failed test.
func releaseOnCleanup(t *testing.T) (release func(), ch chan struct{}) {
	ch = make(chan struct{})
	var once atomic.Bool
	release = func() {
		if once.CompareAndSwap(false, true) {
			close(ch)
		}
	}
	t.Cleanup(release)
	return release, ch
}

func TestResponderEcho(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, http.HandlerFunc(echoHandler))
	st.writeBegin(1, RoleResponder, 0)
	// PARAMS and STDIN arrive in many small records; the streams' values do
	// not depend on how they are cut (spec § 3.3).
	st.writeParamsChunked(1, 3,
		"REQUEST_METHOD", "POST",
		"REQUEST_URI", "/a/b?x=1&y=2",
		"SERVER_PROTOCOL", "HTTP/1.1",
		"HTTP_HOST", "example.com",
		"HTTP_X_FOO", "bar",
		"CONTENT_LENGTH", "11",
		"CONTENT_TYPE", "application/x-www-form-urlencoded")
	st.writeStream(TypeStdin, 1, 2, "hello world")
	resp := st.readResponse(1)
	want := cgiResponse(200, "method=POST path=/a/b query=x=1&y=2 role=RESPONDER\n"+
		"Content-Length: 11\nContent-Type: application/x-www-form-urlencoded\nX-Foo: bar\n"+
		"body=\"hello world\" err=<nil> data=false\n")
	if resp.stdout != want {
		t.Errorf("STDOUT = %q; want %q", resp.stdout, want)
	}
	if resp.end != (EndRequest{0, RequestComplete}) {
		t.Errorf("END_REQUEST = %+v; want {0 REQUEST_COMPLETE}", resp.end)
	}
	if resp.stderr != "" {
		t.Errorf("STDERR = %q; want nothing", resp.stderr)
	}
	// No FCGI_KEEP_CONN: the application closes the connection (spec § 5.1),
	// and sends no other END_REQUEST on the way.
	for _, r := range st.wantClosed() {
		t.Errorf("unexpected %s record for request %d after END_REQUEST", r.Type, r.RequestID)
	}
}

// TestResponseBytes checks the whole output of a request byte for byte.
func TestResponseBytes(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, textHandler("hello"))
	st.writeRequest(1, 0, "", get("/")...)
	st.wantClosed()
	body := "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello"
	want := rec(TypeStdout, 1, body, -len(body)&7) +
		"\x01\x06\x00\x01\x00\x00\x00\x00" + // empty STDOUT: end of stream
		"\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" // END_REQUEST {0, REQUEST_COMPLETE}
	if got := st.rawBytes(); got != want {
		t.Errorf("server sent\n%q\nwant\n%q", got, want)
	}
}

func TestKeepConn(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, http.HandlerFunc(echoHandler))
	for i := range 3 {
		// Distinct IDs: TestRequestIDReuse covers reusing one.
		id := uint16(i + 1)
		st.writeRequest(id, FlagKeepConn, fmt.Sprintf("body %d", i), get(fmt.Sprintf("/r%d", i))...)
		resp := st.readResponse(id)
		if !strings.Contains(resp.stdout, fmt.Sprintf("path=/r%d ", i)) || !strings.Contains(resp.stdout, fmt.Sprintf("body=\"body %d\"", i)) {
			t.Errorf("request %d: STDOUT = %q", i, resp.stdout)
		}
	}
	// Still open: GET_VALUES is answered, and nothing else came.
	for _, r := range st.sync() {
		t.Errorf("unexpected %s record for request %d", r.Type, r.RequestID)
	}
}

func TestGetValues(t *testing.T) {
	tests := []struct {
		name string
		opts func(*Server)
		want string
	}{
		{"defaults", func(*Server) {}, string(pairs("FCGI_MAX_CONNS", "1024", "FCGI_MAX_REQS", "4096", "FCGI_MPXS_CONNS", "1"))},
		{"set", func(s *Server) { s.MaxConns, s.MaxRequests = 7, 42 }, string(pairs("FCGI_MAX_CONNS", "7", "FCGI_MAX_REQS", "42", "FCGI_MPXS_CONNS", "1"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			st := newServerTester(t, http.HandlerFunc(echoHandler), tt.opts)
			// Unknown names are left out of the answer (spec § 4.1).
			st.writeRecord(TypeGetValues, 0, string(pairs("FCGI_MAX_CONNS", "", "FCGI_MAX_REQS", "", "FCGI_UNKNOWN_VAR", "", "FCGI_MPXS_CONNS", "")))
			r, ok := st.readRecord()
			if !ok {
				t.Fatalf("connection closed; want GET_VALUES_RESULT")
			}
			if r.Type != TypeGetValuesResult || r.RequestID != 0 || string(r.Content) != tt.want {
				t.Errorf("got %s %d %q; want GET_VALUES_RESULT 0 %q", r.Type, r.RequestID, r.Content, tt.want)
			}
			// An empty query gets an empty answer.
			st.writeRecord(TypeGetValues, 0, "")
			r, _ = st.readRecord()
			if r.Type != TypeGetValuesResult || len(r.Content) != 0 {
				t.Errorf("empty GET_VALUES: got %s %q; want an empty GET_VALUES_RESULT", r.Type, r.Content)
			}
		})
	}
}

func TestUnknownManagementType(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, http.HandlerFunc(echoHandler))
	st.writeRecord(RecordType(100), 0, "whatever")
	r, ok := st.readRecord()
	if !ok {
		t.Fatalf("connection closed; want UNKNOWN_TYPE")
	}
	// {FCGI_UNKNOWN_TYPE, 0, {100}} (spec § 4.2).
	if got, want := st.rawBytes(), "\x01\x0b\x00\x00\x00\x08\x00\x00\x64\x00\x00\x00\x00\x00\x00\x00"; got != want {
		t.Errorf("server sent %q (%s); want %q", got, r.Type, want)
	}
	st.sync() // the connection carries on
}

func TestUnknownRole(t *testing.T) {
	leakcheck.Check(t)
	var calls atomic.Int32
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		echoHandler(w, r)
	}))
	st.writeBegin(1, Role(9), FlagKeepConn)
	r := st.readRecordFor(1)
	if got, want := string(AppendRecord(nil, r.Type, r.RequestID, r.Content)), "\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00"; got != want {
		t.Errorf("got %q; want END_REQUEST {0, UNKNOWN_ROLE} %q", got, want)
	}
	// The request never became active: what follows for it is ignored.
	st.writeParams(1, get("/")...)
	st.writeStream(TypeStdin, 1, MaxContent, "")
	if recs := st.sync(); len(recs) != 0 {
		t.Errorf("records for a rejected request: %v", recs)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler ran %d times for a rejected request", n)
	}
	// The ID can be used again.
	st.writeRequest(1, FlagKeepConn, "", get("/ok")...)
	if resp := st.readResponse(1); !strings.Contains(resp.stdout, "path=/ok ") {
		t.Errorf("STDOUT = %q", resp.stdout)
	}
}

// TestUnknownRoleNoKeepConn: without FCGI_KEEP_CONN the application closes
// the connection after responding to the request (spec § 5.1), rejected or
// not.
func TestUnknownRoleNoKeepConn(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, http.HandlerFunc(echoHandler), func(s *Server) { s.IdleTimeout = -1 })
	st.writeBegin(1, Role(9), 0)
	if r := st.readRecordFor(1); r.Type != TypeEndRequest {
		t.Fatalf("got %s; want END_REQUEST", r.Type)
	}
	st.wantClosed()
}

func TestOverloaded(t *testing.T) {
	leakcheck.Check(t)
	release, released := releaseOnCleanup(t)
	entered := make(chan struct{}, 1)
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-released
		io.WriteString(w, "ok")
	}), func(s *Server) { s.MaxConnRequests = 1 })
	st.writeRequest(1, FlagKeepConn, "", get("/")...)
	recv(t, entered)
	st.writeBegin(2, RoleResponder, FlagKeepConn)
	r := st.readRecordFor(2)
	if got, want := string(AppendRecord(nil, r.Type, r.RequestID, r.Content)), "\x01\x03\x00\x02\x00\x08\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00"; got != want {
		t.Errorf("got %q; want END_REQUEST {0, OVERLOADED} %q", got, want)
	}
	release()
	if resp := st.readResponse(1); !strings.HasSuffix(resp.stdout, "\r\n\r\nok") {
		t.Errorf("request 1 STDOUT = %q", resp.stdout)
	}
}

// TestRequestIDReuse: a request ID becomes inactive when the application
// sends END_REQUEST (spec § 3.3), so the web server may send a
// BEGIN_REQUEST for it as soon as it has read the END_REQUEST.
func TestRequestIDReuse(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, textHandler("ok"))
	for i := range 200 {
		st.writeBegin(1, RoleResponder, FlagKeepConn)
		st.writeParams(1, get("/")...)
		st.writeStream(TypeStdin, 1, MaxContent, "")
		if resp := st.readResponse(1); resp.stdout != cgiResponse(200, "ok") {
			t.Fatalf("request %d: STDOUT = %q", i, resp.stdout)
		}
	}
}

// TestMultiplexSlowHandler runs two requests on one connection; the first
// handler blocks until the second request has completed, and its large body
// sits unread meanwhile: a slow handler stalls no other request.
func TestMultiplexSlowHandler(t *testing.T) {
	leakcheck.Check(t)
	release, released := releaseOnCleanup(t)
	entered := make(chan struct{})
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-released
		}
		echoHandler(w, r)
	}), func(s *Server) { s.BodyMemory = 64 << 10; s.TempDir = t.TempDir() })
	big := strings.Repeat("0123456789abcdef", 3<<20/16) // spills to a file
	st.writeBegin(1, RoleResponder, FlagKeepConn)
	// With CONTENT_LENGTH the handler starts at the end of PARAMS.
	st.writeParams(1, get("/slow", "REQUEST_METHOD", "POST", "CONTENT_LENGTH", fmt.Sprint(len(big)))...)
	recv(t, entered)
	st.writeStream(TypeStdin, 1, MaxContent, big)
	st.writeBegin(2, RoleResponder, FlagKeepConn)
	st.writeParamsChunked(2, 5, get("/fast")...)
	// GET_VALUES is answered at any time (spec § 4.1).
	st.sync()
	st.writeStream(TypeStdin, 2, 1, "two")
	resp := st.readResponse(2)
	if !strings.Contains(resp.stdout, "path=/fast ") || !strings.Contains(resp.stdout, `body="two"`) {
		t.Errorf("request 2 STDOUT = %q", resp.stdout)
	}
	if len(st.pending) != 0 {
		t.Errorf("request 1 sent %d records while its handler was blocked", len(st.pending))
	}
	release()
	resp = st.readResponse(1)
	if !strings.Contains(resp.stdout, "path=/slow ") || !strings.Contains(resp.stdout, fmt.Sprintf("body=%q err=<nil>", big)) {
		t.Errorf("request 1 STDOUT = %.200q...", resp.stdout)
	}
	if recs := st.sync(); len(recs) != 0 {
		t.Errorf("extra records: %v", recs)
	}
}

func TestAbortRequest(t *testing.T) {
	leakcheck.Check(t)
	entered := make(chan struct{})
	type seen struct{ ctxErr, bodyErr error }
	saw := make(chan seen, 1)
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		_, err := io.ReadAll(r.Body)
		saw <- seen{r.Context().Err(), err}
		io.WriteString(w, "aborted")
	}))
	st.writeBegin(1, RoleResponder, FlagKeepConn)
	st.writeParams(1, get("/")...)
	st.writeRecord(TypeStdin, 1, "partial") // STDIN not ended
	recv(t, entered)
	st.writeRecord(TypeAbortRequest, 1, "")
	resp := st.readResponse(1)
	if resp.end != (EndRequest{0, RequestComplete}) {
		t.Errorf("END_REQUEST = %+v; want {0 REQUEST_COMPLETE} (spec § 5.4)", resp.end)
	}
	s := recv(t, saw)
	if !errors.Is(s.ctxErr, context.Canceled) {
		t.Errorf("handler context error = %v; want context.Canceled", s.ctxErr)
	}
	if !errors.Is(s.bodyErr, ErrRequestAborted) {
		t.Errorf("handler body error = %v; want ErrRequestAborted", s.bodyErr)
	}
	// Records for the now inactive request are ignored; a second ABORT gets
	// no second END_REQUEST.
	st.writeRecord(TypeStdin, 1, "more")
	st.writeRecord(TypeAbortRequest, 1, "")
	for _, r := range st.sync() {
		t.Errorf("unexpected %s record for request %d after END_REQUEST", r.Type, r.RequestID)
	}
	st.cc.Close()
	for _, r := range st.wantClosed() {
		t.Errorf("unexpected %s record for request %d after END_REQUEST", r.Type, r.RequestID)
	}
}

func TestAbortBeforeParamsEnd(t *testing.T) {
	leakcheck.Check(t)
	var calls atomic.Int32
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	st.writeBegin(1, RoleResponder, FlagKeepConn)
	st.writeRecord(TypeParams, 1, string(pairs("REQUEST_METHOD", "GET")))
	st.writeRecord(TypeAbortRequest, 1, "")
	r := st.readRecordFor(1)
	if got, want := string(AppendRecord(nil, r.Type, r.RequestID, r.Content)), "\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"; got != want {
		t.Errorf("got %q; want END_REQUEST {0, REQUEST_COMPLETE} %q", got, want)
	}
	// The end of PARAMS after the abort starts nothing.
	st.writeRecord(TypeParams, 1, "")
	st.writeRecord(TypeStdin, 1, "")
	if recs := st.sync(); len(recs) != 0 {
		t.Errorf("records after the abort: %v", recs)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler ran %d times for a request aborted during PARAMS", n)
	}
}

func TestInactiveRequestIgnored(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, http.HandlerFunc(echoHandler))
	st.writeRecord(TypeParams, 7, string(pairs(get("/")...)))
	st.writeRecord(TypeParams, 7, "")
	st.writeRecord(TypeStdin, 7, "x")
	st.writeRecord(TypeStdin, 7, "")
	st.writeRecord(TypeData, 7, "x")
	st.writeRecord(TypeAbortRequest, 7, "")
	if recs := st.sync(); len(recs) != 0 {
		t.Errorf("records for an inactive request: %v", recs)
	}
	st.writeRequest(1, 0, "", get("/after")...)
	if resp := st.readResponse(1); !strings.Contains(resp.stdout, "path=/after ") {
		t.Errorf("STDOUT = %q", resp.stdout)
	}
}

// TestProtocolErrors sends records out of the spec's order: the connection
// is closed and the ConnError logged.
func TestProtocolErrors(t *testing.T) {
	begin := func(id uint16, role Role) []byte { return AppendBeginRequest(nil, id, role, FlagKeepConn) }
	params := func(id uint16) []byte {
		return AppendRecord(AppendRecord(nil, TypeParams, id, pairs(get("/")...)), TypeParams, id, nil)
	}
	record := func(t RecordType, id uint16, c string) []byte { return AppendRecord(nil, t, id, []byte(c)) }
	tests := []struct {
		name string
		in   [][]byte
	}{
		{"STDIN before end of PARAMS", [][]byte{begin(1, RoleResponder), record(TypeParams, 1, "\x01\x01ab"), record(TypeStdin, 1, "x")}},
		{"empty STDIN before end of PARAMS", [][]byte{begin(1, RoleResponder), record(TypeStdin, 1, "")}},
		{"PARAMS after end of PARAMS", [][]byte{begin(1, RoleResponder), params(1), record(TypeParams, 1, "\x01\x01ab")}},
		{"empty PARAMS after end of PARAMS", [][]byte{begin(1, RoleResponder), params(1), record(TypeParams, 1, "")}},
		{"BEGIN twice", [][]byte{begin(1, RoleResponder), begin(1, RoleResponder)}},
		{"BEGIN twice after PARAMS", [][]byte{begin(1, RoleResponder), params(1), begin(1, RoleResponder)}},
		{"STDIN after end of STDIN", [][]byte{begin(1, RoleResponder), params(1), record(TypeStdin, 1, ""), record(TypeStdin, 1, "x")}},
		{"DATA for a responder", [][]byte{begin(1, RoleResponder), params(1), record(TypeData, 1, "x")}},
		{"DATA before end of PARAMS", [][]byte{begin(1, RoleFilter), record(TypeData, 1, "x")}},
		{"BEGIN_REQUEST on request 0", [][]byte{begin(0, RoleResponder)}},
		{"BEGIN_REQUEST of 7 bytes", [][]byte{record(TypeBeginRequest, 1, "\x00\x01\x01\x00\x00\x00\x00")}},
		{"GET_VALUES on request 1", [][]byte{record(TypeGetValues, 1, "")}},
		{"malformed GET_VALUES", [][]byte{record(TypeGetValues, 0, "\x05\x00ab")}},
		{"PARAMS on request 0", [][]byte{record(TypeParams, 0, "")}},
		{"ABORT on request 0", [][]byte{record(TypeAbortRequest, 0, "")}},
		{"END_REQUEST from the web server", [][]byte{begin(1, RoleResponder), record(TypeEndRequest, 1, "\x00\x00\x00\x00\x00\x00\x00\x00")}},
		{"STDOUT from the web server", [][]byte{begin(1, RoleResponder), record(TypeStdout, 1, "x")}},
		{"version 2", [][]byte{[]byte("\x02\x01\x00\x01\x00\x08\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00")}},
		{"version 0", [][]byte{[]byte("\x00\x09\x00\x00\x00\x00\x00\x00")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			// The handler stays active until the connection ends.
			st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				<-r.Context().Done()
			}))
			for _, b := range tt.in {
				st.writeMayFail(b)
			}
			for _, r := range st.wantClosed() {
				t.Errorf("unexpected %s record for request %d", r.Type, r.RequestID)
			}
			st.waitServed()
			if !st.log.Contains("fastcgi: connection error") {
				t.Errorf("log = %q; want a ConnError", st.log.String())
			}
		})
	}
}

func TestTruncatedRecordLogged(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, http.HandlerFunc(echoHandler))
	st.write([]byte("\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01")) // BEGIN_REQUEST cut short
	st.cc.Close()
	st.waitServed()
	if !st.log.Contains("fastcgi: connection error") || !st.log.Contains("unexpected EOF") {
		t.Errorf("log = %q; want a ConnError for unexpected EOF", st.log.String())
	}
}

func TestConnError(t *testing.T) {
	inner := ErrMalformedRecord
	var err error = &ConnError{inner}
	if !errors.Is(err, ErrMalformedRecord) {
		t.Errorf("errors.Is(ConnError{ErrMalformedRecord}, ErrMalformedRecord) = false")
	}
	if got, want := err.Error(), "fastcgi: connection error: fastcgi: malformed record"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
}

func TestCleanCloseNotLogged(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, http.HandlerFunc(echoHandler))
	st.sync()
	st.cc.Close()
	st.waitServed()
	if st.log.Contains("connection error") {
		t.Errorf("log = %q; want no ConnError for a close between records", st.log.String())
	}
}

func TestParamsTooLarge(t *testing.T) {
	leakcheck.Check(t)
	var calls atomic.Int32
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		textHandler("ok")(w, r)
	}), func(s *Server) { s.MaxParamsBytes = 1 << 10 })

	// 32 MiB of PARAMS against a 1 KiB limit: read and dropped, so what the
	// server allocates stays far below what was sent.
	chunk := AppendRecord(nil, TypeParams, 1, []byte(strings.Repeat("p", MaxContent)))
	const records = 512
	st.writeBegin(1, RoleResponder, FlagKeepConn)
	st.writeRecord(TypeParams, 1, string(pairs(get("/")...)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range records {
		st.write(chunk)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("server allocated %d MiB reading %d MiB of PARAMS over a 1 KiB limit", grew>>20, records*MaxContent>>20)
	}
	st.writeRecord(TypeParams, 1, "")
	st.writeStream(TypeStdin, 1, MaxContent, "")
	resp := st.readResponse(1)
	if want := cgiResponse(431, "431 Request Header Fields Too Large\n"); resp.stdout != want {
		t.Errorf("STDOUT = %q; want %q", resp.stdout, want)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler ran for a request with oversized PARAMS")
	}
	// The connection keeps serving.
	st.writeRequest(2, FlagKeepConn, "", get("/")...)
	if resp := st.readResponse(2); resp.stdout != cgiResponse(200, "ok") {
		t.Errorf("second request STDOUT = %q", resp.stdout)
	}
}

func TestBadParams(t *testing.T) {
	tests := []struct {
		name   string
		params string
		opts   func(*Server)
		status int
	}{
		{"too many params", string(pairs(get("/", "A", "1", "B", "2", "C", "3")...)), func(s *Server) { s.MaxParams = 5 }, 431},
		{"malformed pairs", string(pairs(get("/")...)) + "\x05\x00ab", func(*Server) {}, 400},
		{"no REQUEST_METHOD", string(pairs("REQUEST_URI", "/")), func(*Server) {}, 400},
		{"bad CONTENT_LENGTH", string(pairs(get("/", "CONTENT_LENGTH", "-1")...)), func(*Server) {}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			st := newServerTester(t, textHandler("handler ran"), tt.opts)
			st.writeBegin(1, RoleResponder, FlagKeepConn)
			st.writeStream(TypeParams, 1, MaxContent, tt.params)
			st.writeStream(TypeStdin, 1, MaxContent, "")
			resp := st.readResponse(1)
			want := cgiResponse(tt.status, fmt.Sprintf("%d %s\n", tt.status, http.StatusText(tt.status)))
			if resp.stdout != want {
				t.Errorf("STDOUT = %q; want %q", resp.stdout, want)
			}
			st.sync()
		})
	}
}

// TestBodyWithoutContentLength: with no CONTENT_LENGTH (Apache sends none
// for a chunked body) the first STDIN record tells whether a body follows.
func TestBodyWithoutContentLength(t *testing.T) {
	tests := []struct {
		name    string
		stdin   []string
		wantLen int64
	}{
		{"no body", nil, 0},
		{"body", []string{"chu", "nked"}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				fmt.Fprintf(w, "len=%d body=%q err=%v", r.ContentLength, body, err)
			}))
			st.writeBegin(1, RoleResponder, FlagKeepConn)
			st.writeParams(1, get("/", "REQUEST_METHOD", "POST")...)
			for _, s := range tt.stdin {
				st.writeRecord(TypeStdin, 1, s)
			}
			st.writeRecord(TypeStdin, 1, "")
			want := fmt.Sprintf("len=%d body=%q err=<nil>", tt.wantLen, strings.Join(tt.stdin, ""))
			if resp := st.readResponse(1); !strings.HasSuffix(resp.stdout, "\r\n\r\n"+want) {
				t.Errorf("STDOUT = %q; want body %q", resp.stdout, want)
			}
		})
	}
}

func TestRequestBodyTooLarge(t *testing.T) {
	leakcheck.Check(t)
	readErr := make(chan error, 1)
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		if errors.Is(err, ErrBodyTooLarge) {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		}
	}), func(s *Server) { s.MaxRequestBody = 16 })
	st.writeBegin(1, RoleResponder, FlagKeepConn)
	st.writeParams(1, get("/", "REQUEST_METHOD", "POST", "CONTENT_LENGTH", "40")...)
	st.writeStream(TypeStdin, 1, 8, strings.Repeat("b", 40))
	if err := recv(t, readErr); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("handler's body read error = %v; want ErrBodyTooLarge", err)
	}
	if resp := st.readResponse(1); !strings.HasPrefix(resp.stdout, "Status: 413 ") {
		t.Errorf("STDOUT = %q", resp.stdout)
	}
	st.sync()
}

// TestFlushStreams: a handler's flushed bytes reach the web server before
// the handler returns.
func TestFlushStreams(t *testing.T) {
	leakcheck.Check(t)
	release, released := releaseOnCleanup(t)
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "first")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush() = %v", err)
		}
		<-released
		io.WriteString(w, "second")
	}))
	st.writeRequest(1, FlagKeepConn, "", get("/")...)
	r := st.readRecordFor(1)
	if r.Type != TypeStdout || string(r.Content) != cgiResponse(200, "first") {
		t.Fatalf("first record = %s %q; want STDOUT %q before the handler returns", r.Type, r.Content, cgiResponse(200, "first"))
	}
	release()
	if resp := st.readResponse(1); resp.stdout != "second" {
		t.Errorf("rest of STDOUT = %q; want \"second\"", resp.stdout)
	}
}

func TestLargeResponse(t *testing.T) {
	leakcheck.Check(t)
	body := strings.Repeat("0123456789", 30000) // several records
	st := newServerTester(t, textHandler(body))
	st.writeRequest(1, FlagKeepConn, "", get("/")...)
	if resp := st.readResponse(1); resp.stdout != cgiResponse(200, body) {
		t.Errorf("STDOUT = %d bytes; want %d", len(resp.stdout), len(cgiResponse(200, body)))
	}
}

func TestHandlerPanicBeforeOutput(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Partial", "1")
		panic("boom")
	}))
	st.writeRequest(1, FlagKeepConn, "", get("/")...)
	resp := st.readResponse(1)
	if !strings.HasPrefix(resp.stdout, "Status: 500 Internal Server Error\r\n") || !strings.HasSuffix(resp.stdout, "\r\n\r\n500 Internal Server Error\n") {
		t.Errorf("STDOUT = %q; want a 500 response", resp.stdout)
	}
	if resp.end != (EndRequest{0, RequestComplete}) {
		t.Errorf("END_REQUEST = %+v", resp.end)
	}
	st.sync() // the connection carries on
	if !st.log.Contains("boom") {
		t.Errorf("log = %q; want the panic", st.log.String())
	}
}

// TestHandlerPanicAfterWriteHeader: a handler that chose a status but wrote
// nothing, then panicked, must not produce a successful response.
func TestHandlerPanicAfterWriteHeader(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		panic("boom")
	}))
	st.writeRequest(1, FlagKeepConn, "", get("/")...)
	r := st.readRecordFor(1)
	if r.Type == TypeStdout && strings.HasPrefix(string(r.Content), "Status: 200") {
		t.Errorf("STDOUT = %q: a panicking handler's response looks successful", r.Content)
	}
}

func TestHandlerPanicAfterOutput(t *testing.T) {
	tests := []struct {
		name  string
		flush bool
		p     any
	}{
		{"ErrAbortHandler before output", false, http.ErrAbortHandler},
		{"ErrAbortHandler after flush", true, http.ErrAbortHandler},
		{"panic after flush", true, "boom"},
		{"panic after buffered write", false, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.p != http.ErrAbortHandler || tt.flush {
					io.WriteString(w, "partial")
				}
				if tt.flush {
					w.(http.Flusher).Flush()
				}
				panic(tt.p)
			}))
			st.writeRequest(1, FlagKeepConn, "", get("/")...)
			// The response must not look complete: the connection closes
			// with no end of STDOUT and no END_REQUEST.
			for _, r := range st.wantClosed() {
				if r.Type == TypeEndRequest || (r.Type == TypeStdout && len(r.Content) == 0) {
					t.Errorf("got %s %q after a handler panic; want the connection closed", r.Type, r.Content)
				}
			}
		})
	}
}

func TestAuthorizer(t *testing.T) {
	leakcheck.Check(t)
	type seen struct {
		role   Role
		noBody bool
		data   io.Reader
	}
	saw := make(chan seen, 1)
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		saw <- seen{RoleOf(r), r.Body == http.NoBody, FilterData(r)}
		w.Header()["Variable-AUTH_METHOD"] = []string{"database lookup"}
	}))
	st.writeBegin(1, RoleAuthorizer, FlagKeepConn)
	st.writeParams(1, get("/private", "REMOTE_USER", "alice")...)
	st.writeStream(TypeStdin, 1, MaxContent, "")
	resp := st.readResponse(1)
	s := recv(t, saw)
	if s.role != RoleAuthorizer || !s.noBody || s.data != nil {
		t.Errorf("handler saw role %v, NoBody %v, FilterData %v; want AUTHORIZER, true, nil", s.role, s.noBody, s.data)
	}
	if want := "Status: 200 OK\r\nVariable-AUTH_METHOD: database lookup\r\n\r\n"; resp.stdout != want {
		t.Errorf("STDOUT = %q; want %q", resp.stdout, want)
	}
}

func TestFilter(t *testing.T) {
	tests := []struct {
		name string
		send func(st *serverTester)
	}{
		{"STDIN then DATA", func(st *serverTester) {
			st.writeStream(TypeStdin, 1, 2, "form")
			st.writeStream(TypeData, 1, 3, "file-data")
		}},
		{"DATA interleaved with STDIN", func(st *serverTester) {
			st.writeRecord(TypeData, 1, "file-")
			st.writeRecord(TypeStdin, 1, "fo")
			st.writeRecord(TypeData, 1, "data")
			st.writeRecord(TypeStdin, 1, "rm")
			st.writeRecord(TypeData, 1, "")
			st.writeRecord(TypeStdin, 1, "")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				d := FilterData(r)
				if d == nil {
					t.Errorf("FilterData = nil for a Filter request")
					return
				}
				data, err2 := io.ReadAll(d)
				fmt.Fprintf(w, "role=%s body=%q %v data=%q %v len=%s", RoleOf(r), body, err, data, err2, cgi.Origin(r.Context())["FCGI_DATA_LENGTH"])
			}))
			st.writeBegin(1, RoleFilter, FlagKeepConn)
			st.writeParams(1, get("/f.html", "FCGI_DATA_LENGTH", "9", "FCGI_DATA_LAST_MOD", "0")...)
			tt.send(st)
			resp := st.readResponse(1)
			if want := `role=FILTER body="form" <nil> data="file-data" <nil> len=9`; !strings.HasSuffix(resp.stdout, "\r\n\r\n"+want) {
				t.Errorf("STDOUT = %q; want body %q", resp.stdout, want)
			}
			st.sync()
		})
	}
}

func TestRoleOfOutsideServer(t *testing.T) {
	r, _ := http.NewRequest("GET", "/", nil)
	if RoleOf(r) != 0 || FilterData(r) != nil {
		t.Errorf("RoleOf, FilterData of a plain request = %v, %v; want 0, nil", RoleOf(r), FilterData(r))
	}
}

func TestConnectionParams(t *testing.T) {
	leakcheck.Check(t)
	type seen struct {
		remote, host string
		tls          bool
		origin       map[string]string
	}
	saw := make(chan seen, 1)
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		saw <- seen{r.RemoteAddr, r.Host, r.TLS != nil, cgi.Origin(r.Context())}
	}))
	st.writeRequest(1, FlagKeepConn, "",
		"REQUEST_METHOD", "GET", "REQUEST_URI", "/", "SERVER_PROTOCOL", "HTTP/1.1",
		"REMOTE_ADDR", "192.0.2.1", "REMOTE_PORT", "5555",
		"SERVER_NAME", "example.com", "SERVER_PORT", "8443", "HTTPS", "on",
		"SSL_CLIENT_S_DN", "CN=alice")
	st.readResponse(1)
	s := recv(t, saw)
	if s.remote != "192.0.2.1:5555" || s.host != "example.com:8443" || !s.tls {
		t.Errorf("handler saw RemoteAddr %q, Host %q, TLS %v; want \"192.0.2.1:5555\", \"example.com:8443\", true", s.remote, s.host, s.tls)
	}
	for k, v := range map[string]string{"REMOTE_ADDR": "192.0.2.1", "SERVER_PORT": "8443", "HTTPS": "on", "SSL_CLIENT_S_DN": "CN=alice"} {
		if s.origin[k] != v {
			t.Errorf("cgi.Origin(ctx)[%q] = %q; want %q", k, s.origin[k], v)
		}
	}
}

// TestIdleTimeout: a kept-alive connection with nothing in progress closes
// after IdleTimeout.
func TestIdleTimeout(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, textHandler("ok"), func(s *Server) { s.IdleTimeout = 20 * time.Millisecond })
	st.wantClosed()
}

// TestIdleTimeoutAfterRequest: IdleTimeout "closes a kept-alive connection
// with no request in progress", also once a request has come and gone. The
// connection is idle from its start too, until the request's first record:
// the timeout leaves the test room to write it on a loaded machine (20 ms
// did not, under -race in a full run).
func TestIdleTimeoutAfterRequest(t *testing.T) {
	leakcheck.Check(t)
	release, released := releaseOnCleanup(t)
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-released
	}), func(s *Server) { s.IdleTimeout = 500 * time.Millisecond })
	st.writeRequest(1, FlagKeepConn, "", get("/")...)
	st.sync() // the read loop saw the request in progress, and waits for the next record
	release()
	st.readResponse(1)
	st.wantClosed()
}

// TestClosedConnFreesRequestSlot: a web server closing a connection while a
// request is still reading PARAMS must not use up MaxRequests.
func TestClosedConnFreesRequestSlot(t *testing.T) {
	leakcheck.Check(t)
	srv := &Server{Handler: textHandler("ok"), MaxRequests: 1}
	serveOne := func() *serverTester {
		sc, cc := net.Pipe()
		c := newClient(t, cc)
		c.done = make(chan struct{})
		go func() {
			defer close(c.done)
			srv.ServeConn(sc)
		}()
		return c
	}
	a := serveOne()
	a.writeBegin(1, RoleResponder, 0)
	a.writeRecord(TypeParams, 1, "\x01\x01ab")
	a.cc.Close()
	a.waitServed()
	b := serveOne()
	b.writeRequest(1, 0, "", get("/")...)
	if resp := b.readResponse(1); resp.end.ProtocolStatus != RequestComplete || resp.stdout != cgiResponse(200, "ok") {
		t.Errorf("next request got %q, %v; want a 200 response", resp.stdout, resp.end.ProtocolStatus)
	}
}

// recv waits for a value on ch, failing the test after timeout.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out waiting on a channel")
		panic("unreachable")
	}
}

// listen returns a loopback listener.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func dial(t *testing.T, l net.Listener) *serverTester {
	t.Helper()
	c, err := net.Dial(l.Addr().Network(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, c)
}

func TestShutdown(t *testing.T) {
	leakcheck.Check(t)
	release, released := releaseOnCleanup(t)
	entered := make(chan struct{})
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-released
		}
		io.WriteString(w, "done")
	})}
	l := listen(t)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()

	idle := dial(t, l)
	idle.writeRequest(1, FlagKeepConn, "", get("/")...)
	idle.readResponse(1)
	busy := dial(t, l)
	busy.writeRequest(1, FlagKeepConn, "", get("/slow")...)
	recv(t, entered)

	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- srv.Shutdown(context.Background()) }()
	idle.wantClosed() // idle connections close at once
	select {
	case err := <-serveErr:
		if err != ErrServerClosed {
			t.Errorf("Serve() = %v; want ErrServerClosed", err)
		}
	case <-time.After(timeout):
		t.Fatalf("Serve did not return after Shutdown")
	}
	if _, err := net.Dial(l.Addr().Network(), l.Addr().String()); err == nil {
		t.Errorf("listener still accepts after Shutdown")
	}
	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	release()
	if resp := busy.readResponse(1); !strings.HasSuffix(resp.stdout, "done") {
		t.Errorf("in-flight request STDOUT = %q", resp.stdout)
	}
	busy.wantClosed()
	select {
	case err := <-shutdownErr:
		if err != nil {
			t.Errorf("Shutdown() = %v; want nil", err)
		}
	case <-time.After(timeout):
		t.Fatalf("Shutdown did not return after the last request ended")
	}
	// Serve on a shut-down server returns at once.
	l2 := listen(t)
	defer l2.Close()
	if err := srv.Serve(l2); err != ErrServerClosed {
		t.Errorf("Serve after Shutdown = %v; want ErrServerClosed", err)
	}
}

func TestShutdownContextEnds(t *testing.T) {
	leakcheck.Check(t)
	entered := make(chan struct{})
	ctxErr := make(chan error, 1)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		ctxErr <- r.Context().Err()
	})}
	l := listen(t)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	c := dial(t, l)
	c.writeRequest(1, FlagKeepConn, "", get("/")...)
	recv(t, entered)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Shutdown(ctx); err != context.Canceled {
		t.Errorf("Shutdown(canceled ctx) = %v; want context.Canceled", err)
	}
	if err := recv(t, ctxErr); !errors.Is(err, context.Canceled) {
		t.Errorf("handler context error = %v; want context.Canceled", err)
	}
	if err := recv(t, serveErr); err != ErrServerClosed {
		t.Errorf("Serve() = %v; want ErrServerClosed", err)
	}
	c.wantClosed()
}

func TestClose(t *testing.T) {
	leakcheck.Check(t)
	entered := make(chan struct{})
	ctxErr := make(chan error, 1)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		ctxErr <- r.Context().Err()
	})}
	l := listen(t)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	c := dial(t, l)
	c.writeRequest(1, FlagKeepConn, "", get("/")...)
	recv(t, entered)
	if err := srv.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	// Close waited for the handler, whose context ended.
	select {
	case err := <-ctxErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("handler context error = %v; want context.Canceled", err)
		}
	default:
		t.Errorf("Close returned before the handler did")
	}
	if err := recv(t, serveErr); err != ErrServerClosed {
		t.Errorf("Serve() = %v; want ErrServerClosed", err)
	}
	c.wantClosed()
	// ServeConn on a closed server closes the connection.
	sc, cc := net.Pipe()
	defer cc.Close()
	srv.ServeConn(sc)
	if _, err := cc.Write([]byte("x")); err == nil {
		t.Errorf("ServeConn on a closed server left the connection open")
	}
}

func TestBaseContext(t *testing.T) {
	leakcheck.Check(t)
	type key struct{}
	got := make(chan any, 1)
	srv := &Server{
		Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Context().Value(key{}) }),
		BaseContext: func(net.Listener) context.Context { return context.WithValue(context.Background(), key{}, "base") },
	}
	l := listen(t)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	c := dial(t, l)
	c.writeRequest(1, 0, "", get("/")...)
	c.readResponse(1)
	if v := recv(t, got); v != "base" {
		t.Errorf("request context value = %v; want \"base\"", v)
	}
	srv.Close()
	recv(t, serveErr)
}

func TestServeUnixSocket(t *testing.T) {
	leakcheck.Check(t)
	l, err := net.Listen("unix", t.TempDir()+"/fcgi.sock")
	if err != nil {
		t.Skipf("no unix sockets: %v", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- Serve(l, textHandler("ok")) }()
	c := dial(t, l)
	c.writeRequest(1, 0, "", get("/")...)
	if resp := c.readResponse(1); resp.stdout != cgiResponse(200, "ok") {
		t.Errorf("STDOUT = %q", resp.stdout)
	}
	c.wantClosed()
	l.Close()
	if err := recv(t, serveErr); err == nil {
		t.Errorf("Serve returned nil after its listener closed")
	}
}

func TestListenerFromFD(t *testing.T) {
	leakcheck.Check(t)
	f, err := os.CreateTemp(t.TempDir(), "notasocket")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// ListenerFromFD takes the descriptor over: give it a copy.
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if l, err := ListenerFromFD(fd); err == nil {
		l.Close()
		t.Errorf("ListenerFromFD(regular file) = nil error")
	}
	if _, err := ListenerFromFD(-1); err == nil {
		t.Errorf("ListenerFromFD(-1) = nil error")
	}

	// A real listening socket works.
	tl := listen(t).(*net.TCPListener)
	defer tl.Close()
	lf, err := tl.File()
	if err != nil {
		t.Fatal(err)
	}
	fd, err = syscall.Dup(int(lf.Fd()))
	lf.Close()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ListenerFromFD(fd)
	if err != nil {
		t.Fatalf("ListenerFromFD(listening socket) error = %v", err)
	}
	l.Close()
}

// TestResponderGolden runs the cases in testdata/responder: PARAMS as
// NAME=value lines (comments start with #), then "-- stdin --" and the body,
// then "-- stdout --" and the CGI response echoHandler must produce, its
// header block written with LF for CRLF.
func TestResponderGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/responder/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			leakcheck.Check(t)
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			head, rest, ok1 := strings.Cut(string(data), "-- stdin --\n")
			stdin, stdout, ok2 := strings.Cut(rest, "-- stdout --\n")
			hdr, body, ok3 := strings.Cut(stdout, "\n\n")
			if !ok1 || !ok2 || !ok3 {
				t.Fatalf("%s: want params, -- stdin --, -- stdout -- with a header block", file)
			}
			want := strings.ReplaceAll(hdr+"\n\n", "\n", "\r\n") + body
			stdin = strings.TrimSuffix(stdin, "\n")
			var nv []string
			for line := range strings.Lines(head) {
				line = strings.TrimSuffix(line, "\n")
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				name, value, ok := strings.Cut(line, "=")
				if !ok {
					t.Fatalf("%s: bad param line %q", file, line)
				}
				nv = append(nv, name, value)
			}
			st := newServerTester(t, http.HandlerFunc(echoHandler))
			st.writeRequest(1, 0, stdin, nv...)
			if resp := st.readResponse(1); resp.stdout != want {
				t.Errorf("STDOUT =\n%q\nwant\n%q", resp.stdout, want)
			}
			st.wantClosed()
		})
	}
}

// TestIdleConnHoldsNoWriteBuffer: a kept connection between requests
// holds no write buffer (64 KiB each); the next request takes one again.
func TestIdleConnHoldsNoWriteBuffer(t *testing.T) {
	leakcheck.Check(t)
	srv := &Server{Handler: http.HandlerFunc(echoHandler)}
	sc, cc := net.Pipe()
	c := srv.newConn(sc, context.Background(), nil).(*conn)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Serve()
	}()
	st := newClient(t, cc)
	holds := func() bool {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.bw != nil
	}
	for i := range 2 {
		id := uint16(i + 1)
		st.writeRequest(id, FlagKeepConn, "body", get("/idle")...)
		if resp := st.readResponse(id); !strings.Contains(resp.stdout, "path=/idle ") {
			t.Fatalf("request %d: STDOUT = %q", i, resp.stdout)
		}
		deadline := time.Now().Add(5 * time.Second)
		for holds() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if holds() {
			t.Errorf("after request %d the idle connection still holds its write buffer", i)
		}
	}
	cc.Close()
	<-done
}
