package h1

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/leakcheck"
)

// TestStatusReason: a handler's reason phrase (SetStatusReason, as the CGI
// runner sets a script's "Status: 404 Nope") goes out in the status line,
// as Apache and nginx send a script's; it went out as "404 Not Found". One
// with a control byte, or set after WriteHeader, is ignored.
func TestStatusReason(t *testing.T) {
	leakcheck.Check(t)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs := w.(interface{ SetStatusReason(string) })
		switch r.URL.Path {
		case "/nope":
			rs.SetStatusReason("Nope")
		case "/ctl":
			rs.SetStatusReason("Nope\r\nX-Evil: 1")
		case "/late":
			w.WriteHeader(http.StatusNotFound)
			rs.SetStatusReason("Nope")
		}
		w.WriteHeader(http.StatusNotFound)
	})})
	for path, want := range map[string]string{
		"/nope": "HTTP/1.1 404 Nope\r\n",
		"/ctl":  "HTTP/1.1 404 Not Found\r\n",
		"/late": "HTTP/1.1 404 Not Found\r\n",
		"/std":  "HTTP/1.1 404 Not Found\r\n",
	} {
		out, _ := exchange(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, want) || strings.Contains(out, "X-Evil") {
			t.Errorf("GET %s: %q; want it to start with %q", path, out, want)
		}
	}
}
