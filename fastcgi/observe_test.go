package fastcgi

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
)

// TestClientStats checks a Client's snapshot: nothing before its first
// request (Stats never connects), one idle kept connection after one.
func TestClientStats(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(l)
	defer srv.Close()
	c := &Client{Network: "tcp", Address: l.Addr().String(), MaxConns: 2, NoMultiplex: true}
	defer c.CloseIdle()
	if st := c.Stats(); st != (ClientStats{}) {
		t.Errorf("before any request: %+v; want zeros", st)
	}
	resp, err := c.Do(context.Background(), &Request{Params: []string{"REQUEST_METHOD=GET", "SCRIPT_NAME=/x"}})
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st != (ClientStats{Active: 1, Requests: 1}) {
		t.Errorf("during a request: %+v; want one active connection", st)
	}
	io.Copy(io.Discard, resp.Stdout)
	resp.Stdout.Close()
	if st := c.Stats(); st != (ClientStats{Idle: 1}) {
		t.Errorf("after a request: %+v; want one idle connection", st)
	}
}
