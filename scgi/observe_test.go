package scgi

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/ferrygw/ferry/cgi"
)

// TestClientStats checks a Client's snapshot: nothing before its first
// request, one request in progress while its answer is read, none after.
func TestClientStats(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	c := &Client{Network: "tcp", Address: ts.addr, MaxConns: 2}
	if st := c.Stats(); st != (ClientStats{}) {
		t.Errorf("before any request: %+v; want zeros", st)
	}
	resp, err := c.RoundTrip(context.Background(), &cgi.AppRequest{Params: []string{"REQUEST_METHOD=GET", "REQUEST_URI=/"}})
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st != (ClientStats{Requests: 1}) {
		t.Errorf("during a request: %+v; want one in progress", st)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if st := c.Stats(); st != (ClientStats{}) {
		t.Errorf("after a request: %+v; want zeros", st)
	}
}
