package bridge

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/scgi"
)

// halfHeads are the first bytes of an answer's head, cut before the blank
// line that ends it, in each protocol.
var halfHeads = map[string]string{
	"fastcgi": "Status: 200 OK\r\nContent-Ty",
	"scgi":    "Status: 200 OK\r\nContent-Ty",
	"http":    "HTTP/1.1 200 OK\r\nContent-Ty",
}

// brokenApp serves, on a loopback port, an application of protocol proto
// that reads a request, writes half of an answer's head and then breaks
// as mode says: "reset" resets the connection, "close" closes it, "hang"
// sends nothing more until the other side closes, "end" (FastCGI) ends the
// request with END_REQUEST, the head unfinished; "silent" sends nothing at
// all until the other side closes. hits counts the requests.
func brokenApp(t *testing.T, proto, mode string, hits *atomic.Int64) string {
	t.Helper()
	return fakeApp(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		id, ok := readRawRequest(proto, c, br)
		if !ok {
			return
		}
		hits.Add(1)
		if mode == "silent" {
			io.Copy(io.Discard, c) // until ferry or nginx closes
			return
		}
		half := halfHeads[proto]
		if proto == "fastcgi" {
			c.Write(rawRecord(6, id, half))
		} else {
			io.WriteString(c, half)
		}
		switch mode {
		case "reset":
			c.(*net.TCPConn).SetLinger(0) // the Close that follows sends RST
		case "hang":
			io.Copy(io.Discard, c)
		case "end":
			c.Write(append(rawRecord(6, id, ""), rawRecord(3, id, "\x00\x00\x00\x00\x00\x00\x00\x00")...))
			io.Copy(io.Discard, c) // until ferry or nginx closes
		}
	})
}

// healthyApp serves, on a loopback port, a working application of
// protocol proto, ferry's own fastcgi.Server or scgi.Server or net/http's
// server, that reads the request body and answers "ok", or 400 for a body
// that is not testBody (one sent again must come whole). hits counts the
// requests.
func healthyApp(t *testing.T, proto string, hits *atomic.Int64) string {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, err := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		if err != nil || len(b) > 0 && string(b) != testBody {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "body %q, %v", b, err)
			return
		}
		io.WriteString(w, "ok")
	})
	if proto == "http" {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s.Listener.Addr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var closer io.Closer
	if proto == "fastcgi" {
		s := &fastcgi.Server{Handler: h}
		go s.Serve(l)
		closer = s
	} else {
		s := &scgi.Server{Handler: h}
		go s.Serve(l)
		closer = s
	}
	t.Cleanup(func() { closer.Close() })
	return l.Addr().String()
}

// nginxPass is the location body that passes a request to the upstream
// "up" in protocol proto, waiting readTimeout for each read.
func nginxPass(proto, readTimeout string) string {
	switch proto {
	case "fastcgi":
		return "include fastcgi_params; fastcgi_read_timeout " + readTimeout + "; fastcgi_pass up;"
	case "scgi":
		// The lines of nginx's stock scgi_params scgi.Serve needs.
		return "scgi_param REQUEST_METHOD $request_method; scgi_param REQUEST_URI $request_uri; " +
			"scgi_param SERVER_PROTOCOL $server_protocol; scgi_param SERVER_NAME $server_name; " +
			"scgi_param SERVER_PORT $server_port; scgi_param REMOTE_ADDR $remote_addr; scgi_param SCGI 1; " +
			"scgi_read_timeout " + readTimeout + "; scgi_pass up;"
	}
	return "proxy_read_timeout " + readTimeout + "; proxy_pass http://up;"
}

// testBody is the body of the requests with one, which healthyApp checks.
const testBody = "name=value"

// send makes one request of method to url, with a body if body is not
// empty, and returns its status.
func send(t *testing.T, method, url, body string) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestGroupRetriesHeadCutShort: a group backend that took a request and
// then reset or closed its connection, or let read_timeout pass, after
// part of its answer's head (before the blank line that ends it), or
// before any of it, gave the client 502 or 504: the request was not sent
// to another backend. As nginx's default fastcgi_next_upstream,
// scgi_next_upstream and proxy_next_upstream ("error timeout"), nothing
// having gone to the client yet, a GET now goes to the next backend, and
// gets its 200; a POST, which the backend may have run, is not sent again
// (nginx ≥ 1.9.13 without non_idempotent), and gets the 502 or 504.
// Either way the broken backend's failure counts once toward max_fails:
// with max_fails=1 the requests that follow go to the other backend. A
// FastCGI answer that ends (END_REQUEST) inside its head is an invalid
// header to nginx, not an error, and is not sent again. nginx, with an
// upstream of the same two backends, gets the same statuses, and sends
// the broken backend as many requests.
func TestGroupRetriesHeadCutShort(t *testing.T) {
	leakcheck.Check(t)
	var cases []retryCase
	for _, proto := range []string{"fastcgi", "scgi", "http"} {
		for _, mode := range []string{"reset", "close", "hang", "silent"} {
			fail := http.StatusBadGateway
			if mode == "hang" || mode == "silent" {
				fail = http.StatusGatewayTimeout
			}
			cases = append(cases,
				retryCase{proto: proto, mode: mode, method: "GET", want: http.StatusOK, retried: true},
				retryCase{proto: proto, mode: mode, method: "PUT", body: testBody, want: http.StatusOK, retried: true},
				retryCase{proto: proto, mode: mode, method: "POST", body: testBody, want: fail})
		}
	}
	cases = append(cases, retryCase{proto: "fastcgi", mode: "end", method: "GET", want: http.StatusBadGateway})
	for _, tt := range cases {
		t.Run(tt.proto+" "+tt.mode+" "+tt.method, tt.check)
	}
}

// retryCase is a request to a group of two backends, a broken one
// (brokenApp, in mode) that gets it and a healthy one, made through
// ferry and through nginx, with an upstream of the same two backends.
type retryCase struct {
	proto, mode, method, body string
	// want is the request's status; retried says that it goes to the
	// healthy backend after the broken one.
	want    int
	retried bool
}

// check makes the request, and three GETs after it, through ferry (with
// max_fails=1: they go to the healthy backend) and through nginx, and
// compares the statuses and the requests each backend got.
func (tt retryCase) check(t *testing.T) {
	const readTimeout = "400ms"
	var badHits, goodHits atomic.Int64
	bad := brokenApp(t, tt.proto, tt.mode, &badHits)
	good := healthyApp(t, tt.proto, &goodHits)
	// The broken backend first: round_robin sends it the first request.
	run := func(url string) ([]int, int64, int64) {
		badHits.Store(0)
		goodHits.Store(0)
		codes := []int{send(t, tt.method, url, tt.body)}
		for range 3 {
			codes = append(codes, send(t, "GET", url, ""))
		}
		return codes, badHits.Load(), goodHits.Load()
	}
	addr, _ := startFerry(t, Config{Mounts: []Mount{mustMount(t, fmt.Sprintf("/=%s://%s,%s://%s?policy=round_robin&max_fails=1&fail_timeout=30s&read_timeout=%s",
		tt.proto, bad, tt.proto, good, readTimeout))}})
	codes, b, g := run("http://" + addr + "/x")
	want := []int{tt.want, 200, 200, 200}
	wantGood := int64(3)
	if tt.retried {
		wantGood = 4
	}
	if fmt.Sprint(codes) != fmt.Sprint(want) || b != 1 || g != wantGood {
		t.Errorf("ferry: statuses %v, %d requests to the broken backend, %d to the other; want %v, 1, %d", codes, b, g, want, wantGood)
	}

	n := peerstest.NginxFront(t, peers.NginxFrontConfig{
		HTTP:   fmt.Sprintf("  upstream up {\n    server %s max_fails=1 fail_timeout=30s;\n    server %s max_fails=1 fail_timeout=30s;\n  }", bad, good),
		Server: "    location / { " + nginxPass(tt.proto, readTimeout) + " }\n",
	})
	ncodes, nb, ng := run(n.URL + "/x")
	if fmt.Sprint(ncodes) != fmt.Sprint(codes) || nb != b || ng != g {
		logs, _ := n.Logs()
		t.Errorf("nginx: statuses %v, %d requests to the broken backend, %d to the other; ferry: %v, %d, %d\nnginx's log:\n%s",
			ncodes, nb, ng, codes, b, g, logs)
	}
}

// brokenGroup starts a ferry with a group of two backends of proto, in
// round robin with the options query: a broken one (brokenApp resetting
// inside its head), which gets the first request, and a healthy one. It
// returns ferry's address and the requests each backend got.
func brokenGroup(t *testing.T, proto, query string) (addr string, badHits, goodHits *atomic.Int64) {
	t.Helper()
	badHits, goodHits = new(atomic.Int64), new(atomic.Int64)
	bad := brokenApp(t, proto, "reset", badHits)
	good := healthyApp(t, proto, goodHits)
	addr, _ = startFerry(t, Config{Mounts: []Mount{mustMount(t, fmt.Sprintf("/=%s://%s,%s://%s?policy=round_robin&%s",
		proto, bad, proto, good, query))}})
	return addr, badHits, goodHits
}

// TestGroupHeadCutCountedOnce: a backend whose connection broke inside
// its answer's head, the request then sent to another backend, has that
// failure counted once toward max_fails: with max_fails=2, round robin
// sends it a second GET (the third request) before it is down, and every
// GET gets its 200 from the other backend.
func TestGroupHeadCutCountedOnce(t *testing.T) {
	leakcheck.Check(t)
	for _, proto := range []string{"fastcgi", "scgi", "http"} {
		t.Run(proto, func(t *testing.T) {
			addr, badHits, goodHits := brokenGroup(t, proto, "max_fails=2&fail_timeout=30s")
			want := []int{200, 200, 200, 200, 200, 200}
			if got := statuses(t, "http://"+addr+"/x", len(want)); fmt.Sprint(got) != fmt.Sprint(want) || badHits.Load() != 2 || goodHits.Load() != 6 {
				t.Errorf("statuses %v, %d requests to the broken backend, %d to the other; want %v, 2, 6", got, badHits.Load(), goodHits.Load(), want)
			}
		})
	}
}

// TestGroupRetriesIdempotentMethods: a group sent a request on, once its
// backend may have run it (the connection broke before the answer's head
// was whole), only for GET and HEAD: a PUT, DELETE or OPTIONS without a
// body got 502. nginx (≥ 1.9.13) sends on every method but POST, LOCK and
// PATCH, which it does not without non_idempotent; ferry now does the
// same for a request without a body (one with a body is not kept to send
// again), and idempotent=true still sends on every method. nginx, with an
// upstream of the same two backends, gets the same statuses.
func TestGroupRetriesIdempotentMethods(t *testing.T) {
	leakcheck.Check(t)
	for _, proto := range []string{"fastcgi", "scgi", "http"} {
		for _, method := range []string{"PUT", "DELETE", "OPTIONS", "PATCH", "LOCK"} {
			tt := retryCase{proto: proto, mode: "reset", method: method, want: http.StatusBadGateway}
			if method != "PATCH" && method != "LOCK" {
				tt.want, tt.retried = http.StatusOK, true
			}
			t.Run(proto+" "+method, tt.check)
		}
	}
}

// TestGroupFailOn5xxAfterRetry: with fail_on_5xx, a 5xx from the backend
// a request went to after another one failed it was not counted: the
// first backend's failure, counted already, stood for the whole request.
// Now each backend's own failure counts: the broken one's, once, and the
// 500 of the one that answered.
func TestGroupFailOn5xxAfterRetry(t *testing.T) {
	leakcheck.Check(t)
	for _, proto := range []string{"fastcgi", "http"} {
		t.Run(proto, func(t *testing.T) {
			var badHits atomic.Int64
			bad := brokenApp(t, proto, "reset", &badHits)
			five := rawApp(t, proto, map[string]string{
				"fastcgi": "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nno",
				"http":    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
			}[proto], new(atomic.Int64))
			s, addrs, _ := startFerryServer(t, Config{Mounts: []Mount{mustMount(t, fmt.Sprintf("/=%s://%s,%s://%s?policy=round_robin&max_fails=5&fail_timeout=30s&fail_on_5xx=true",
				proto, bad, proto, five))}})
			if got := send(t, "GET", "http://"+addrs[0]+"/x", ""); got != http.StatusInternalServerError || badHits.Load() != 1 {
				t.Fatalf("GET: %d, %d requests to the broken backend; want 500 from the other, 1", got, badHits.Load())
			}
			failures := map[string]uint64{}
			for _, m := range s.groups[0].list() {
				failures[m.name] = m.failures.Load()
			}
			want := map[string]uint64{proto + "://" + bad: 1, proto + "://" + five: 1}
			if fmt.Sprint(failures) != fmt.Sprint(want) {
				t.Errorf("failures counted %v; want %v", failures, want)
			}
		})
	}
}

// TestGroupLongBodyNotSentAgain: a PUT whose body is longer than a group
// keeps (maxReplayBody) is not sent to another backend once the first
// read it, though its backend broke inside the answer's head: 502. One
// that fits goes on, with its whole body, as TestGroupRetriesHeadCutShort
// shows. (nginx sends any body again: it keeps it in a file past its
// buffer.)
func TestGroupLongBodyNotSentAgain(t *testing.T) {
	leakcheck.Check(t)
	for _, proto := range []string{"fastcgi", "scgi", "http"} {
		t.Run(proto, func(t *testing.T) {
			addr, badHits, goodHits := brokenGroup(t, proto, "max_fails=0")
			long := strings.Repeat("x", maxReplayBody+1)
			if got := send(t, "PUT", "http://"+addr+"/x", long); got != http.StatusBadGateway || badHits.Load() != 1 || goodHits.Load() != 0 {
				t.Errorf("PUT of %d bytes: %d, %d requests to the broken backend, %d to the other; want 502, 1, 0", len(long), got, badHits.Load(), goodHits.Load())
			}
		})
	}
}
