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
	"github.com/ferrygw/ferry/internal/leakcheck"
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

// TestHTTPBackInvalidStatus: an application answering a status outside
// 100-599 (net/http's Transport takes any three digits) had it passed on
// to the client; a CGI, FastCGI or SCGI answer with such a Status gets
// 502. Now an http:// backend's does too, with a log line naming the
// backend, alone or in a group; a malformed status line was a 502
// already, and still is.
func TestHTTPBackInvalidStatus(t *testing.T) {
	leakcheck.Check(t)
	for _, tt := range []struct {
		line  string // after "HTTP/1.1 "
		want  int
		cause string // in the log line
	}{
		{"999 Weird", http.StatusBadGateway, "invalid status"},
		{"600 Beyond", http.StatusBadGateway, "invalid status"},
		{"099 Below", http.StatusBadGateway, "invalid status"},
		{"000 Zero", http.StatusBadGateway, "invalid status"},
		{"+99 Signed", http.StatusBadGateway, "invalid status"},
		{"1000 Long", http.StatusBadGateway, "malformed HTTP status code"},
		{"abc Letters", http.StatusBadGateway, "malformed HTTP status code"},
		{"599 Edge", 599, ""},
		{"299 Odd", 299, ""},
	} {
		t.Run(tt.line, func(t *testing.T) {
			app := fakeApp(t, func(c net.Conn) {
				c.Read(make([]byte, 4096))
				io.WriteString(c, "HTTP/1.1 "+tt.line+"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
			})
			addr, logs := startFerry(t, Config{Mounts: []Mount{
				mustMount(t, "/alone/=http://"+app),
				mustMount(t, "/group/=http://"+app+"?max_fails=0"), // a group of one
			}})
			for i, mount := range []string{"/alone/", "/group/"} {
				status, body := getStatus(t, "http://"+addr+mount)
				if status != tt.want {
					t.Errorf("%s answering %q: %d %q; want %d", mount, tt.line, status, body, tt.want)
				}
				lines := logs.Lines(`"backend":"http://`+app, "request to the application failed")
				switch {
				case tt.cause == "" && len(lines) != 0:
					t.Errorf("%s answering %q: log lines %q; want none", mount, tt.line, lines)
				case tt.cause != "" && (len(lines) != i+1 || !strings.Contains(lines[i], tt.cause)):
					t.Errorf("%s answering %q: log lines %q; want one more naming %s and %q", mount, tt.line, lines, app, tt.cause)
				}
			}
		})
	}
}
