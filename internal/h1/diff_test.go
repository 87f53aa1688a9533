package h1

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// testHandler answers what differential tests compare: a few paths that
// exercise the response rules, the rest echoes what the request said.
func testHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("b", 5000)))
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html><body>hi</body></html>")
	})
	mux.HandleFunc("/cl", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "hello")
	})
	mux.HandleFunc("/204", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(204)
		io.WriteString(w, "not allowed")
	})
	mux.HandleFunc("/304", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Etag", `"x"`)
		w.WriteHeader(304)
	})
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "one")
		w.(http.Flusher).Flush()
		io.WriteString(w, "two")
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "1")
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/noread", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ignored your body")
	})
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-A", "1")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "after hints")
	})
	mux.HandleFunc("/multi", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("X-Bad", "a\r\nInjected: yes")
		w.Header()["bad name"] = []string{"x"}
		w.Header()["Date"] = nil
		io.WriteString(w, "m")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "method=%s uri=%s url=%s host=%s proto=%s close=%v cl=%d te=%q body=%q err=%v\n",
			r.Method, r.RequestURI, r.URL, r.Host, r.Proto, r.Close, r.ContentLength, r.TransferEncoding, b, err != nil)
		fmt.Fprintf(w, "trailer=%v\n", r.Trailer)
		for _, k := range sortedKeys(r.Header) {
			fmt.Fprintf(w, "%s=%q\n", k, r.Header[k])
		}
	})
	return mux
}

func sortedKeys(h http.Header) []string {
	var ks []string
	for k := range h {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// startBoth serves h with net/http and with a Server, on loopback, and
// returns their addresses.
func startBoth(t testing.TB, h http.Handler) (std, ours string) {
	t.Helper()
	l1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	s := &Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(l1)
	go s.Serve(l2)
	t.Cleanup(func() { hs.Close(); s.Close() })
	return l1.Addr().String(), l2.Addr().String()
}

// exchange writes req on a new connection to addr and returns what comes
// back until the connection closes or 1 s passes, and whether it closed.
func exchange(t testing.TB, addr, req string) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err) // not Fatal: exchanges run in goroutines of their own
		return "", false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	io.WriteString(c, req)
	b, err := io.ReadAll(c)
	ne, _ := err.(net.Error)
	return string(b), ne == nil || !ne.Timeout()
}

var dateLine = regexp.MustCompile(`(?m)^Date: .*\r\n`)

// refusalFields are the fields the Server's answer to a refused head has
// and net/http's has not: a Date and a Content-Length, as nginx's.
var refusalFields = regexp.MustCompile(`^(HTTP/1.1 (?:4|5)\d\d [^\r]*\r\nContent-Type: text/plain; charset=utf-8\r\n)Date: -\r\nContent-Length: \d+\r\n(Connection: close\r\n\r\n)`)

// asNetHTTPRefusal returns out, the Server's answer, without the fields
// of its answer to a refused head that net/http's lacks.
func asNetHTTPRefusal(out string) string {
	return refusalFields.ReplaceAllString(out, "$1$2")
}

// diffCases are raw requests whose answers must be net/http's, byte for
// byte but the Date.
var diffCases = []struct {
	name, req    string
	closeDiffers string // why the Server closes the connection where net/http does not
}{
	{"get", "GET /x?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n", ""},
	{"pipelined", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"http/1.0", "GET /a HTTP/1.0\r\n\r\n", ""},
	{"http/1.0 keep-alive", "GET /cl HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /cl HTTP/1.0\r\n\r\n", ""},
	{"http/1.0 keep-alive, no length", "GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", ""},
	{"connection close", "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"head", "HEAD /html HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"head big", "HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"big chunked", "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"sniffed", "GET /html HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"content-length", "GET /cl HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"short content-length", "GET /short HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"204", "GET /204 HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"304", "GET /304 HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"flush", "GET /flush HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"trailer", "GET /trailer HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"handler close", "GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"early hints", "GET /early HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"field rules", "GET /multi HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"post", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /a HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"post crlf", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"post unread", "POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /a HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"chunked", "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 9\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"chunked unread", "POST /noread HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"bad chunk size", "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"chunk size over 64 bits", "POST /noread HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nabc\r\n0\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"bare LF in chunked", "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", ""},
	{"bare LF head", "GET /a HTTP/1.1\nHost: x\n\nGET /b HTTP/1.1\nHost: x\n\n", ""},
	{"expect 100", "POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", ""},
	{"expect 100 unread", "POST /noread HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
		"both answer Connection: close; net/http then keeps the connection open until the client closes it"},
	{"expect other", "POST /p HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 3\r\n\r\nabc", ""},
	{"absolute form", "GET http://other.example/path?x HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"options star", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", ""},
	{"pragma", "GET /a HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n", ""},
	{"lower-case names", "GET /a HTTP/1.1\r\nhost: x\r\nx-lower: 1\r\ncontent-type: text/x\r\n\r\n", ""},
	{"two equal lengths", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", ""},
	// Refused by both.
	{"no host", "GET /a HTTP/1.1\r\n\r\n", ""},
	{"two hosts", "GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ""},
	{"bad host", "GET /a HTTP/1.1\r\nHost: a b\r\n\r\n", ""},
	{"http/2", "GET /a HTTP/2.0\r\nHost: x\r\n\r\n", ""},
	{"bad version", "GET /a HTTP/1.x\r\nHost: x\r\n\r\n", ""},
	{"bad method", "G(T /a HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"no uri", "GET HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"relative uri", "GET a HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	{"space in name", "GET /a HTTP/1.1\r\nHost: x\r\nX A: 1\r\n\r\n", ""},
	{"space before colon", "GET /a HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n", ""},
	{"no colon", "GET /a HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n", ""},
	{"control in value", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", ""},
	{"two lengths", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", ""},
	{"length list", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", ""},
	{"bad length", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", ""},
	{"gzip chunked", "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", ""},
	{"bad trailer key", "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n", ""},
	{"initial space", "GET /a HTTP/1.1\r\n Host: x\r\n\r\n", ""},
}

// TestDifferential holds the Server to net/http: the same handler, the
// same raw requests, the same bytes back (Date aside), and the same
// connection closes.
func TestDifferential(t *testing.T) {
	std, ours := startBoth(t, testHandler())
	// Every exchange waits up to 1 s for a close: they run all at once.
	type result struct {
		out    string
		closed bool
	}
	results := make([][2]result, len(diffCases))
	var wg sync.WaitGroup
	for i, tc := range diffCases {
		for j, addr := range []string{std, ours} {
			wg.Go(func() {
				out, closed := exchange(t, addr, tc.req)
				results[i][j] = result{dateLine.ReplaceAllString(out, "Date: -\r\n"), closed}
				if j == 1 {
					results[i][j].out = asNetHTTPRefusal(results[i][j].out)
				}
			})
		}
	}
	wg.Wait()
	for i, tc := range diffCases {
		want, got := results[i][0], results[i][1]
		if got.out != want.out {
			t.Errorf("%s: request %q:\n got %q\nwant %q", tc.name, tc.req, got.out, want.out)
		}
		if got.closed != want.closed && tc.closeDiffers == "" {
			t.Errorf("%s: connection closed: %v; net/http: %v", tc.name, got.closed, want.closed)
		}
	}
}
