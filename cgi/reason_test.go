package cgi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStatusReason: a script's or an application's own reason phrase
// ("Status: 404 Nope") reaches a ResponseWriter that can send one
// (SetStatusReason), through wrappers with an Unwrap method, as Apache
// and nginx pass it on; it went out as "404 Not Found". A standard phrase
// or none is not set, and a ResponseWriter that cannot send one (net/http)
// still gets the status.
func TestStatusReason(t *testing.T) {
	for _, tt := range []struct {
		name, answer, want string
	}{
		{"own", "Status: 404 Nope\r\n\r\n", "Status: 404 Nope\r\n"},
		{"standard", "Status: 404 Not Found\r\n\r\n", "Status: 404 Not Found\r\n"},
		{"none", "Status: 404\r\n\r\n", "Status: 404 Not Found\r\n"},
		{"local redirect", "Location: /x\r\n\r\n", "Status: 302 Found\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := transportFunc(func(ctx context.Context, req *AppRequest) (*AppResponse, error) {
				return &AppResponse{Body: &stream{r: strings.NewReader(tt.answer)}}, nil
			})
			var out bytes.Buffer
			rw := NewResponseWriter(&out, nil)
			// A wrapper, as a gateway's access log puts between.
			w := &outputLimit{ResponseWriter: rw, left: 1 << 20}
			f := &Forwarder{Name: "test", Transport: x, Resolver: Mount{Prefix: "/app/"}}
			f.ServeHTTP(w, httptest.NewRequest("GET", "/app/x", nil))
			if err := rw.Close(); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out.String(), tt.want) {
				t.Errorf("got %q; want it to start with %q", out.String(), tt.want)
			}
		})
	}

	rec := httptest.NewRecorder()
	if setStatusReason(rec, "Nope") {
		t.Error("setStatusReason found a reason setter in an httptest.ResponseRecorder")
	}
	var out bytes.Buffer
	rw := NewResponseWriter(&out, nil)
	rw.SetStatusReason("Nope\r\nX-Evil: 1")
	rw.WriteHeader(http.StatusNotFound)
	rw.Close()
	if got := out.String(); !strings.HasPrefix(got, "Status: 404 Not Found\r\n") || strings.Contains(got, "X-Evil") {
		t.Errorf("a reason with CR LF: %q; want it ignored", got)
	}
	out.Reset()
	rw = NewResponseWriter(&out, nil)
	rw.SetStatusReason("Nope")
	rw.WriteHeader(http.StatusNotFound)
	if !rw.Reset() {
		t.Fatal("Reset before the header was sent: false")
	}
	rw.WriteHeader(http.StatusInternalServerError)
	rw.Close()
	if got := out.String(); !strings.HasPrefix(got, "Status: 500 Internal Server Error\r\n") {
		t.Errorf("after Reset: %q; want the reason dropped", got)
	}
}
