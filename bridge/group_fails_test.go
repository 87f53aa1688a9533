package bridge

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/scgi"
)

// rawApp serves, on a loopback port, an application of protocol proto
// ("fastcgi", "scgi" or "http") that reads a request and writes answer
// as it is: a FastCGI application as its STDOUT stream, an SCGI or HTTP
// one on the connection, which it then closes. hits counts the requests.
func rawApp(t *testing.T, proto, answer string, hits *atomic.Int64) string {
	t.Helper()
	return fakeApp(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		id, ok := readRawRequest(proto, c, br)
		if !ok {
			return
		}
		hits.Add(1)
		if proto == "fastcgi" {
			var out []byte
			out = append(out, rawRecord(6, id, answer)...)
			out = append(out, rawRecord(6, id, "")...)
			out = append(out, rawRecord(3, id, "\x00\x00\x00\x00\x00\x00\x00\x00")...) // END_REQUEST, complete
			c.Write(out)
			return
		}
		io.WriteString(c, answer)
	})
}

// readRawRequest reads a request of protocol proto ("fastcgi", "scgi" or
// "http") from br, c's reader, body included, and reports whether it came
// whole; id is a FastCGI request's ID. FastCGI records are read up to the
// empty STDIN (FastCGI 1.0 § 3.3); a GET_VALUES (§ 4.1) gets an empty
// answer, nothing said of FCGI_MAX_CONNS, and no request. An HTTP
// request's body is read by its Content-Length, so that closing the
// connection after it sends a FIN, not a reset for unread data.
func readRawRequest(proto string, c net.Conn, br *bufio.Reader) (id uint16, ok bool) {
	switch proto {
	case "fastcgi":
		for {
			var h [8]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				return 0, false
			}
			id = uint16(h[2])<<8 | uint16(h[3])
			n := int(h[4])<<8 | int(h[5])
			if _, err := io.CopyN(io.Discard, br, int64(n+int(h[6]))); err != nil {
				return 0, false
			}
			if h[1] == 9 {
				c.Write(rawRecord(10, 0, ""))
				return 0, false
			}
			if h[1] == 5 && n == 0 {
				return id, true
			}
		}
	case "scgi":
		h, err := scgi.ReadHeader(br, scgi.Limits{})
		if err != nil {
			return 0, false
		}
		_, err = io.CopyN(io.Discard, br, h.ContentLength)
		return 0, err == nil
	case "http":
		length := int64(0)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return 0, false
			}
			if line == "\r\n" {
				break
			}
			if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Content-Length") {
				length, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		_, err := io.CopyN(io.Discard, br, length)
		return 0, err == nil
	}
	return 0, false
}

// rawRecord is a FastCGI record of type typ for request id, unpadded.
func rawRecord(typ byte, id uint16, content string) []byte {
	return append([]byte{1, typ, byte(id >> 8), byte(id), byte(len(content) >> 8), byte(len(content)), 0, 0}, content...)
}

// TestGroupMalformedAnswerCounts: a group backend whose answer's head is
// malformed (not a CGI header block, a bad Status, an HTTP header line
// that is not a field, an HTTP status outside 100-599) counted toward
// max_fails only with fail_on_5xx: a group of two, one of them broken,
// gave 502 to every other request. As nginx ("error, timeout and
// invalid_header are always considered unsuccessful attempts"), it
// counts always: with max_fails=1 the broken backend is down for
// fail_timeout after its first answer. As nginx's default
// fastcgi_next_upstream, scgi_next_upstream and proxy_next_upstream
// ("error timeout"), that request is not sent to the other backend: its
// client gets 502. Where nginx finds the head invalid too, it runs the
// same requests through an upstream block of the same two backends, and
// the statuses must be the same.
func TestGroupMalformedAnswerCounts(t *testing.T) {
	leakcheck.Check(t)
	good := map[string]string{
		"fastcgi": "Content-Type: text/plain\r\n\r\nok",
		"scgi":    "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok",
		"http":    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
	}
	for _, tt := range []struct {
		name, proto, answer string
		nginx               bool // nginx finds it invalid too: compare
	}{
		{"fastcgi no header", "fastcgi", "this is no header\r\n\r\nbody", true},
		{"fastcgi letters for status", "fastcgi", "Status: abc\r\nContent-Type: text/plain\r\n\r\nbody", true},
		{"fastcgi status 999", "fastcgi", "Status: 999 Weird\r\nContent-Type: text/plain\r\n\r\nbody", false},
		{"scgi no header", "scgi", "this is no header\r\n\r\nbody", true},
		{"http bad header line", "http", "HTTP/1.1 200 OK\r\nBad Header Line\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody", true},
		{"http status 999", "http", "HTTP/1.1 999 Weird\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var badHits, goodHits atomic.Int64
			bad := rawApp(t, tt.proto, tt.answer, &badHits)
			ok := rawApp(t, tt.proto, good[tt.proto], &goodHits)
			want := []int{502, 200, 200, 200, 200, 200}

			// The broken backend first, so that the first request goes to it.
			addr, _ := startFerry(t, Config{Mounts: []Mount{mustMount(t, fmt.Sprintf("/=%s://%s,%s://%s?policy=round_robin&max_fails=1&fail_timeout=30s",
				tt.proto, bad, tt.proto, ok))}})
			ferry := statuses(t, "http://"+addr+"/x", len(want))
			if fmt.Sprint(ferry) != fmt.Sprint(want) || badHits.Load() != 1 {
				t.Errorf("ferry: statuses %v, %d requests to the broken backend; want %v, 1 (down for fail_timeout after one failure, its request not retried)",
					ferry, badHits.Load(), want)
			}
			if !tt.nginx {
				return
			}

			badHits.Store(0)
			pass := map[string]string{
				"fastcgi": "include fastcgi_params; fastcgi_pass up;",
				"scgi":    "scgi_param SCGI 1; scgi_pass up;", // the stock scgi_params's one line SCGI needs
				"http":    "proxy_pass http://up;",
			}[tt.proto]
			n := peerstest.NginxFront(t, peers.NginxFrontConfig{
				HTTP:   fmt.Sprintf("  upstream up {\n    server %s max_fails=1 fail_timeout=30s;\n    server %s max_fails=1 fail_timeout=30s;\n  }", bad, ok),
				Server: "    location / { " + pass + " }\n",
			})
			ng := statuses(t, n.URL+"/x", len(want))
			if fmt.Sprint(ng) != fmt.Sprint(ferry) || badHits.Load() != 1 {
				logs, _ := n.Logs()
				t.Errorf("nginx: statuses %v, %d requests to the broken backend; ferry: %v\nnginx's log:\n%s", ng, badHits.Load(), ferry, logs)
			}
		})
	}
}

// statuses GETs url n times, one after the other, and returns the
// statuses.
func statuses(t *testing.T, url string, n int) []int {
	t.Helper()
	var codes []int
	for range n {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	return codes
}

// TestGroupMalformedAnswerCountedOnce: with fail_on_5xx, the 502 a
// malformed answer gets is not counted a second time: with max_fails=2 the
// broken backend takes its second request before it is down.
func TestGroupMalformedAnswerCountedOnce(t *testing.T) {
	leakcheck.Check(t)
	for _, tt := range []struct{ proto, bad, good string }{
		{"fastcgi", "this is no header\r\n\r\nbody", "Content-Type: text/plain\r\n\r\nok"},
		{"http", "HTTP/1.1 999 Weird\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"},
	} {
		t.Run(tt.proto, func(t *testing.T) {
			var badHits, goodHits atomic.Int64
			bad, ok := rawApp(t, tt.proto, tt.bad, &badHits), rawApp(t, tt.proto, tt.good, &goodHits)
			addr, _ := startFerry(t, Config{Mounts: []Mount{mustMount(t, fmt.Sprintf("/=%s://%s,%s://%s?policy=round_robin&max_fails=2&fail_timeout=30s&fail_on_5xx=true",
				tt.proto, bad, tt.proto, ok))}})
			want := []int{502, 200, 502, 200, 200, 200}
			if got := statuses(t, "http://"+addr+"/x", len(want)); fmt.Sprint(got) != fmt.Sprint(want) || badHits.Load() != 2 {
				t.Errorf("statuses %v, %d requests to the broken backend; want %v, 2", got, badHits.Load(), want)
			}
		})
	}
}
