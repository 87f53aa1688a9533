package bridge

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/scgi"
)

// answerFirstApp answers before it reads its request body, as a CGI
// application may: it sends "reading" at once, then reads the whole body
// and says how much came.
func answerFirstApp(w http.ResponseWriter, r *http.Request) {
	// Needed when the application is itself a net/http server.
	_ = http.NewResponseController(w).EnableFullDuplex()
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "reading\n")
	http.NewResponseController(w).Flush()
	n, err := io.Copy(io.Discard, r.Body)
	fmt.Fprintf(w, "read %d, %v\n", n, err)
}

// listenLoopback returns a listener on a free loopback port, closed at
// cleanup.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestAnswerBeforeBody: an application that begins its answer before it
// has read the request body still gets the whole body, through every
// front and every long-lived back. Without full duplex, the front read
// what was left of the body for itself when the answer's header went out
// (as net/http does before a response, up to 256 KiB): the application
// got a body cut short and took it for whole, or the client, waiting for
// the answer to begin before sending the rest, waited forever.
func TestAnswerBeforeBody(t *testing.T) {
	leakcheck.Check(t)
	app := http.HandlerFunc(answerFirstApp)
	fl, sl := listenLoopback(t), listenLoopback(t)
	go fastcgi.Serve(fl, app)
	go scgi.Serve(sl, app)
	hs := httptest.NewServer(app)
	t.Cleanup(hs.Close)

	cert := writeTestCert(t, t.TempDir(), 1)
	httpFront, _ := ParseAddress("http://127.0.0.1:0")
	httpsFront, err := ParseAddress(cert.httpsListen())
	if err != nil {
		t.Fatal(err)
	}
	addrs, logs := startFerryFronts(t, Config{
		Listen: []Address{httpFront, httpsFront},
		Mounts: []Mount{
			mustMount(t, "/fcgi/=fastcgi://"+fl.Addr().String()),
			mustMount(t, "/scgi/=scgi://"+sl.Addr().String()),
			mustMount(t, "/http/=http://"+hs.Listener.Addr().String()),
		},
	})
	fronts := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"http", func() (net.Conn, error) { return net.Dial("tcp", addrs[0]) }},
		{"https", func() (net.Conn, error) {
			return tls.Dial("tcp", addrs[1], &tls.Config{RootCAs: cert.pool, NextProtos: []string{"http/1.1"}})
		}},
	}
	for _, front := range fronts {
		for _, back := range []string{"fcgi", "scgi", "http"} {
			// Under 256 KiB left when the answer begins, and over.
			for _, size := range []int{200 << 10, 1 << 20} {
				t.Run(fmt.Sprintf("%s/%s/%d", front.name, back, size), func(t *testing.T) {
					c, err := front.dial()
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(10 * time.Second))
					body := strings.Repeat("0123456789abcdef", size/16)
					half := len(body) / 2
					if _, err := fmt.Fprintf(c, "POST /%s/app HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s", back, len(body), body[:half]); err != nil {
						t.Fatal(err)
					}
					// The rest of the body goes only once the answer has
					// begun.
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil {
						t.Fatalf("no answer before the rest of the body: %v\n%s", err, logs)
					}
					defer resp.Body.Close()
					lines := bufio.NewReader(resp.Body)
					if line, err := lines.ReadString('\n'); line != "reading\n" {
						t.Fatalf("the answer begins %q, %v; want \"reading\\n\"\n%s", line, err, logs)
					}
					if _, err := io.WriteString(c, body[half:]); err != nil {
						t.Fatal(err)
					}
					rest, err := io.ReadAll(lines)
					if want := fmt.Sprintf("read %d, <nil>\n", len(body)); string(rest) != want || err != nil {
						t.Errorf("the application said %q (%v); want %q\n%s", rest, err, want, logs)
					}
				})
			}
		}
	}
}
