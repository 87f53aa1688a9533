package bridge

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/rs/zerolog"
)

func TestHTTPBack(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, strings.Join([]string{
			"uri=" + r.RequestURI,
			"host=" + r.Host,
			"xff=" + r.Header.Get("X-Forwarded-For"),
			"proto=" + r.Header.Get("X-Forwarded-Proto"),
			"xhost=" + r.Header.Get("X-Forwarded-Host"),
			"port=" + r.Header.Get("X-Forwarded-Port"),
			"prefix=" + r.Header.Get("X-Forwarded-Prefix"),
		}, "\n"))
	}))
	defer app.Close()
	host := strings.TrimPrefix(app.URL, "http://")

	for _, tt := range []struct {
		name, backend, path string
		origin              map[string]string
		want                []string
	}{
		{"path unchanged", "http://" + host, "/app/x/y?q=1", nil,
			[]string{"uri=/app/x/y?q=1", "host=client.example", "xff=192.0.2.7", "proto=http", "xhost=client.example", "prefix=/app"}},
		{"prefix replaced by the base path", "http://" + host + "/base/", "/app/x/y?q=1", nil,
			[]string{"uri=/base/x/y?q=1", "prefix=/app"}},
		{"what the front web server said", "http://" + host, "/app/z", map[string]string{"REMOTE_ADDR": "198.51.100.9", "HTTPS": "on", "SERVER_PORT": "8443"},
			[]string{"xff=192.0.2.1, 198.51.100.9", "proto=https", "port=8443"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAddress(tt.backend)
			if err != nil {
				t.Fatal(err)
			}
			b := newHTTPBack(Mount{Prefix: "/app/", Backend: a}, zerolog.Nop(), 0, 0)
			r := httptest.NewRequest("GET", tt.path, nil)
			r.Host = "client.example"
			r.RemoteAddr = "192.0.2.7:5555"
			if tt.origin != nil {
				r.Header.Set("X-Forwarded-For", "192.0.2.1")
				r = r.WithContext(cgi.WithOrigin(r.Context(), tt.origin))
			}
			w := httptest.NewRecorder()
			b.ServeHTTP(w, r)
			if w.Code != http.StatusCreated || len(w.Result().Header.Values("Set-Cookie")) != 2 {
				t.Errorf("status %d, cookies %q; want 201 and both cookies", w.Code, w.Result().Header.Values("Set-Cookie"))
			}
			for _, want := range tt.want {
				if !strings.Contains(w.Body.String()+"\n", want+"\n") {
					t.Errorf("the application saw:\n%s\nwant the line %q", w.Body, want)
				}
			}
		})
	}
}

func TestHTTPBackFailures(t *testing.T) {
	// Nothing listens: 502.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	a, _ := ParseAddress("http://" + dead)
	b := newHTTPBack(Mount{Prefix: "/", Backend: a}, zerolog.Nop(), 0, 0)
	w := httptest.NewRecorder()
	b.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	if w.Code != http.StatusBadGateway {
		t.Errorf("backend down: %d; want 502", w.Code)
	}

	// No answer in time: 504.
	stall := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-stall }))
	defer app.Close()
	defer close(stall)
	a, _ = ParseAddress(app.URL)
	b = newHTTPBack(Mount{Prefix: "/", Backend: a}, zerolog.Nop(), 0, 0)
	b.proxy.Transport.(*http.Transport).ResponseHeaderTimeout = 100 * time.Millisecond
	w = httptest.NewRecorder()
	b.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil).WithContext(context.Background()))
	if w.Code != http.StatusGatewayTimeout {
		t.Errorf("backend silent: %d; want 504", w.Code)
	}
}
