package scgi

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
)

// TestSlowConnectionsGiveWay is issue 16's "1,030 SCGI connections that
// each send one byte make a normal request wait 29.5 s": a connection
// whose header block has not come gives its place to a new one when every
// place is taken, so a normal request is answered at once.
func TestSlowConnectionsGiveWay(t *testing.T) {
	leakcheck.Check(t)
	ts := startServer(t, okHandler(), func(s *Server) { s.MaxConns = 8 })
	var slow []net.Conn
	for range 8 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("7")) // the first digit of a netstring, and no more
		slow = append(slow, c)
	}
	time.Sleep(50 * time.Millisecond) // accepted
	start := time.Now()
	out := ts.roundTrip(t, request(t, "GET", "/x", ""))
	if took := time.Since(start); took > time.Second {
		t.Errorf("a normal request took %v beside 8 silent connections; want it at once", took)
	}
	if !strings.HasPrefix(out, "Status: 200 OK\r\n") {
		t.Errorf("response %q", out)
	}
	slow[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := slow[0].Read(make([]byte, 1)); err == nil || isTimeoutErr(err) {
		t.Errorf("the connection that waited longest: read %v; want it closed", err)
	}
	if !ts.log.Contains("closing the connections that waited longest") {
		t.Errorf("log = %s; want a line about the bound", ts.log)
	}
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// okHandler answers 200 "ok".
func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
}
