package benchmarks

import (
	"io"
	"net"
	"net/http"
	stdfcgi "net/http/fcgi"
	"testing"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// hello is the handler every FastCGI server runs: 13 bytes, as in PEERS.md.
var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "Hello, world\n")
})

// fcgiServers are the Go FastCGI application servers compared.
var fcgiServers = []struct {
	name  string
	serve func(l net.Listener) error
	stop  func()
}{
	{name: "ferry-fastcgi", serve: func(l net.Listener) error { return fastcgi.Serve(l, hello) }},
	{name: "net-http-fcgi", serve: func(l net.Listener) error { return stdfcgi.Serve(l, hello) }},
}

// BenchmarkFastCGIBehindNginx compares ferry's fastcgi.Serve with Go's
// net/http/fcgi.Serve, each running the same hello handler behind the same
// nginx, with a new backend connection per request and with keep-alive
// (fastcgi_keep_conn, upstream keepalive 16). Load: wrk -t2 -c16.
func BenchmarkFastCGIBehindNginx(b *testing.B) {
	peerstest.Need(b, "nginx")
	for _, keep := range []int{0, 16} {
		mode := "newconn"
		if keep > 0 {
			mode = "keepalive"
		}
		for _, s := range fcgiServers {
			b.Run(mode+"/"+s.name, func(b *testing.B) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				go s.serve(l)
				defer l.Close()
				ngx := peerstest.NginxFastCGI(b, peers.NginxFastCGIConfig{Backend: l.Addr().String(), KeepAlive: keep})
				loadWrk(b, ngx.URL+"/hello", "Hello, world\n")
			})
		}
	}
}
