package bridge

import (
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestProbeTimeout: a backend that takes the connection and never
// answers is reached, and answers with no status of its own: the probe
// ends at its timeout with 504.
func TestProbeTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for c, err := l.Accept(); err == nil; c, err = l.Accept() {
			held = append(held, c)
		}
	}()
	for _, scheme := range []string{"scgi", "fastcgi", "http"} {
		a, err := ParseAddress(scheme + "://" + l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res, err := Probe(t.Context(), ProbeRequest{Backend: a, Path: "/x", Timeout: time.Second})
		if err != nil || errors.Is(err, ErrUnreachable) {
			t.Fatalf("%s: Probe = %v", scheme, err)
		}
		if res.Status != http.StatusGatewayTimeout || !res.TimedOut || !res.Connected || time.Since(start) > 5*time.Second {
			t.Errorf("%s: %d after %v (connected %v); want 504 at the timeout", scheme, res.Status, time.Since(start), res.Connected)
		}
	}
}
