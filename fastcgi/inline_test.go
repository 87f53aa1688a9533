package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/serving"
)

// inReadLoop reports whether the calling goroutine is a connection's read
// loop: a request run in it (runInline) rather than in a goroutine of its
// own.
func inReadLoop() bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "fastcgi.(*conn).readLoop")
}

// newInlineTester starts a server whose handler reads the body, answers
// "ok", and sends on inline, per request, its path and whether it ran in
// the connection's read loop.
func newInlineTester(t *testing.T) (*serverTester, chan map[string]bool) {
	inline := make(chan map[string]bool, 4)
	st := newServerTester(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inline <- map[string]bool{r.URL.Path: inReadLoop()}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	return st, inline
}

// TestRequestWithoutBodyRunsInReadLoop: a GET alone on its connection, as
// nginx sends it (no CONTENT_LENGTH, an empty STDIN), runs in the read
// loop's goroutine; a request whose body still comes, or one with another
// request behind it, gets a goroutine of its own.
func TestRequestWithoutBodyRunsInReadLoop(t *testing.T) {
	leakcheck.Check(t)
	st, inline := newInlineTester(t)
	st.writeRequest(1, FlagKeepConn, "", get("/get")...)
	st.readResponse(1)
	if !recv(t, inline)["/get"] {
		t.Error("GET without a body: the handler ran in a goroutine of its own; want the read loop's")
	}
	st.writeRequest(2, FlagKeepConn, "a body", get("/post", "REQUEST_METHOD", "POST", "CONTENT_LENGTH", "6")...)
	st.readResponse(2)
	if recv(t, inline)["/post"] {
		t.Error("POST whose body streams: the handler ran in the read loop; want a goroutine of its own")
	}
	// Two requests in one write: the second is buffered when the first
	// starts, so the first must not keep the loop from it. (The second
	// may run in the loop, if the first is over by then.)
	var b []byte
	for _, id := range []uint16{3, 4} {
		b = AppendBeginRequest(b, id, RoleResponder, FlagKeepConn)
		b = AppendStream(b, TypeParams, id, pairs(get(fmt.Sprintf("/both%d", id))...))
		b = AppendRecord(b, TypeParams, id, nil)
		b = AppendRecord(b, TypeStdin, id, nil)
	}
	st.write(b)
	st.readResponse(3)
	st.readResponse(4)
	seen := recv(t, inline)
	maps.Copy(seen, recv(t, inline))
	if in, ok := seen["/both3"]; !ok || in {
		t.Errorf("the first of two requests in one write: in the read loop %v (served: %v); want a goroutine of its own", in, ok)
	}
	st.cc.Close()
	st.wantClosed()
}

// TestMultiplexedConnectionRunsNoneInReadLoop: once a connection has
// carried two requests at once (a web server that multiplexes, as ferry's
// own client does for an application that allows few connections), no
// request runs in its read loop: one that did would keep the next ones
// unread until it handed the reading on.
func TestMultiplexedConnectionRunsNoneInReadLoop(t *testing.T) {
	leakcheck.Check(t)
	st, inline := newInlineTester(t)
	// Request 1's body is still to come when request 2 begins.
	st.writeBegin(1, RoleResponder, FlagKeepConn)
	st.writeParams(1, get("/one", "REQUEST_METHOD", "POST", "CONTENT_LENGTH", "3")...)
	st.writeRequest(2, FlagKeepConn, "", get("/two")...)
	st.readResponse(2)
	st.writeStream(TypeStdin, 1, MaxContent, "abc")
	st.readResponse(1)
	recv(t, inline)
	recv(t, inline)
	st.writeRequest(3, FlagKeepConn, "", get("/three")...)
	st.readResponse(3)
	if recv(t, inline)["/three"] {
		t.Error("a GET alone on a connection that has multiplexed ran in the read loop; want a goroutine of its own")
	}
	st.cc.Close()
	st.wantClosed()
}

// settle sends GETs for /probe until one runs in the read loop, which it
// does once a request that handed the reading on has given the
// connection up (see conn.start); after it, the next GET alone on the
// connection runs there too. saw gets whether each ran in the loop.
func settle(t *testing.T, st *serverTester, id *uint16, saw <-chan bool) {
	t.Helper()
	for range 200 {
		*id++
		st.writeRequest(*id, FlagKeepConn, "", get("/probe")...)
		st.readResponse(*id)
		if recv(t, saw) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no request ran in the read loop again after a hand-over")
}

// TestInlineRequestHandsReadingOn: a request run in the read loop that
// lasts hands the reading on, so the connection's other records are read:
// its ABORT_REQUEST ends it, a request multiplexed beside it is served
// meanwhile (within a sweep or two), and the web server closing the
// connection ends its context.
func TestInlineRequestHandsReadingOn(t *testing.T) {
	leakcheck.Check(t)
	type seen struct {
		inline bool
		err    error
	}
	saw := make(chan seen, 8)
	probes := make(chan bool, 1)
	release, released := releaseOnCleanup(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := inReadLoop()
		switch r.URL.Path {
		case "/probe":
			probes <- in
			return
		case "/wait": // until the request's context ends
			<-r.Context().Done()
		case "/held": // until the test releases it
			<-released
		}
		saw <- seen{in, r.Context().Err()}
		io.WriteString(w, "done "+r.URL.Path)
	})
	st := newServerTester(t, h)

	// ABORT_REQUEST of a request running in the read loop.
	st.writeRequest(1, FlagKeepConn, "", get("/wait")...)
	st.writeRecord(TypeAbortRequest, 1, "") // read once the reading is handed on
	resp := st.readResponse(1)
	if s := recv(t, saw); !s.inline || !errors.Is(s.err, context.Canceled) {
		t.Errorf("aborted request: in the read loop %v, context error %v; want true, context.Canceled", s.inline, s.err)
	}
	if resp.end != (EndRequest{0, RequestComplete}) {
		t.Errorf("aborted request: END_REQUEST %+v", resp.end)
	}

	// A request beside one held in the read loop is served while it is
	// held.
	id := uint16(1)
	settle(t, st, &id, probes)
	held, beside := id+1, id+2
	st.writeRequest(held, FlagKeepConn, "", get("/held")...)
	st.writeRequest(beside, FlagKeepConn, "", get("/fast")...)
	if resp := st.readResponse(beside); !strings.Contains(resp.stdout, "done /fast") {
		t.Errorf("request beside a held one: STDOUT %q", resp.stdout)
	}
	if s := recv(t, saw); s.inline || s.err != nil {
		t.Errorf("request beside a held one: in the read loop %v, context error %v; want false, nil", s.inline, s.err)
	}
	release()
	if resp := st.readResponse(held); !strings.Contains(resp.stdout, "done /held") {
		t.Errorf("held request: STDOUT %q", resp.stdout)
	}
	if s := recv(t, saw); !s.inline || s.err != nil {
		t.Errorf("held request: in the read loop %v, context error %v; want true, nil", s.inline, s.err)
	}

	// That connection has multiplexed, and runs no more requests in its
	// loop (TestMultiplexedConnectionRunsNoneInReadLoop).
	st.cc.Close()
	st.wantClosed()
	st.waitServed()

	// The web server closes the connection under a request in the loop.
	st = newServerTester(t, h)
	st.writeRequest(1, FlagKeepConn, "", get("/wait")...)
	st.cc.Close()
	if s := recv(t, saw); !s.inline || !errors.Is(s.err, context.Canceled) {
		t.Errorf("connection closed: in the read loop %v, context error %v; want true, context.Canceled", s.inline, s.err)
	}
	st.wantClosed()
	st.waitServed()
}

// TestInlineHandOverThenNextRequest: right after a request that ran in the
// read loop and handed the reading on has finished, the next request comes
// at once, to the goroutine reading now. Both must not read: the request
// that ran in the loop gives the connection up before that reader may run
// one of its own there (the race detector sees two readers otherwise, and
// requests are lost). Eight connections at once, to vary the timing.
func TestInlineHandOverThenNextRequest(t *testing.T) {
	leakcheck.Check(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(2*serving.SweepEvery + 5*time.Millisecond) // long enough to hand the reading on
		}
		io.WriteString(w, "done "+r.URL.Path)
	})
	var wg sync.WaitGroup
	for range 8 {
		st := newServerTester(t, h)
		wg.Go(func() {
			id := uint16(1)
			for range 15 {
				st.writeRequest(id, FlagKeepConn, "", get("/slow")...)
				st.readResponse(id)
				for range 3 {
					id++
					st.writeRequest(id, FlagKeepConn, "", get("/fast")...)
					if resp := st.readResponse(id); !strings.Contains(resp.stdout, "done /fast") {
						t.Errorf("request %d after a hand-over: STDOUT %q", id, resp.stdout)
						return
					}
				}
				id++
			}
			st.cc.Close()
			st.wantClosed()
			st.waitServed()
		})
	}
	wg.Wait()
}
