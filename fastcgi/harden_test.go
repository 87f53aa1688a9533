package fastcgi

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/rs/zerolog"
)

// TestParamsNeverEnd is issue 16's "a FastCGI request whose PARAMS never
// end has no timeout (open after 420 s)": it is answered 408 at
// ReadHeaderTimeout and ended, the log says why, and the connection goes
// on serving.
func TestParamsNeverEnd(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, textHandler("ok"), func(s *Server) { s.ReadHeaderTimeout = 200 * time.Millisecond })
	start := time.Now()
	st.writeBegin(1, RoleResponder, FlagKeepConn)
	st.writeRecord(TypeParams, 1, string(pairs(get("/")...))) // and never the empty PARAMS
	resp := st.readResponse(1)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("answered after %v; want about the 200ms ReadHeaderTimeout", took)
	}
	if !strings.HasPrefix(resp.stdout, "Status: 408 ") {
		t.Errorf("STDOUT = %q; want a 408", resp.stdout)
	}
	if !st.log.Contains("PARAMS not complete within 200ms") {
		t.Errorf("log = %s; want the reason", st.log)
	}
	// The end of PARAMS arriving late is ignored; the connection serves on.
	st.writeRecord(TypeParams, 1, "")
	st.writeRequest(2, FlagKeepConn, "", get("/")...)
	if resp := st.readResponse(2); resp.stdout != cgiResponse(200, "ok") {
		t.Errorf("next request: STDOUT = %q", resp.stdout)
	}
}

// TestHalfRecordStalls: a peer that sends half a record and stalls has
// its connection closed at ReadHeaderTimeout, with a log line.
func TestHalfRecordStalls(t *testing.T) {
	leakcheck.Check(t)
	st := newServerTester(t, textHandler("ok"), func(s *Server) { s.ReadHeaderTimeout = 200 * time.Millisecond })
	st.write([]byte("\x01\x01\x00\x01")) // half a BEGIN_REQUEST header
	st.wantClosed()
	st.waitServed()
	if !st.log.Contains("did not end within 200ms") {
		t.Errorf("log = %s; want the reason", st.log)
	}
}

// serveFastCGI serves h on a loopback listener with opts, and returns its
// address.
func serveFastCGI(t *testing.T, h *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Serve(l)
	}()
	t.Cleanup(func() {
		h.Close()
		<-done
	})
	return l.Addr().String()
}

// dialTester opens a connection to a server at addr.
func dialTester(t *testing.T, addr string) *serverTester {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, c)
}

// TestRequestsInSetupDoNotOverload is issue 16's "16 connections × 256
// requests whose PARAMS never end make every new request OVERLOADED":
// requests in setup are bounded per connection (MaxConnSetup) and do not
// count against MaxRequests, which bounds running ones.
func TestRequestsInSetupDoNotOverload(t *testing.T) {
	leakcheck.Check(t)
	log := zerolog.Nop()
	srv := &Server{Handler: textHandler("ok"), Logger: &log}
	addr := serveFastCGI(t, srv)
	var wg sync.WaitGroup
	for range 16 {
		st := dialTester(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b []byte
			for id := uint16(1); id <= 256; id++ {
				b = AppendBeginRequest(b, id, RoleResponder, FlagKeepConn)
				b = AppendRecord(b, TypeParams, id, pairs(get("/")...))
			}
			st.cc.Write(b)
		}()
	}
	wg.Wait()
	st := dialTester(t, addr)
	st.sync() // the server has read this connection's records: the others' are in
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	st.writeRequest(1, FlagKeepConn, "", get("/")...)
	resp := st.readResponse(1)
	if resp.end.ProtocolStatus != RequestComplete || resp.stdout != cgiResponse(200, "ok") {
		t.Errorf("a normal request: %s %q; want REQUEST_COMPLETE and ok", resp.end.ProtocolStatus, resp.stdout)
	}
	t.Logf("a normal request beside 4096 requests in setup: %v", time.Since(start))
}

// TestSlowConnectionsGiveWay: with every connection taken by peers whose
// first request never finishes its PARAMS, a new connection is still
// served at once: the one that waited longest is closed for it.
func TestSlowConnectionsGiveWay(t *testing.T) {
	leakcheck.Check(t)
	log := zerolog.Nop()
	srv := &Server{Handler: textHandler("ok"), Logger: &log, MaxConns: 4}
	addr := serveFastCGI(t, srv)
	var slow []*serverTester
	for range 4 {
		st := dialTester(t, addr)
		st.writeBegin(1, RoleResponder, FlagKeepConn)
		st.writeRecord(TypeParams, 1, string(pairs(get("/")...)))
		st.sync()
		slow = append(slow, st)
	}
	start := time.Now()
	st := dialTester(t, addr)
	st.writeRequest(1, FlagKeepConn, "", get("/")...)
	if resp := st.readResponse(1); resp.stdout != cgiResponse(200, "ok") {
		t.Errorf("STDOUT = %q", resp.stdout)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a normal request took %v beside 4 slow connections", took)
	}
	slow[0].wantClosed() // the one that waited longest
}
