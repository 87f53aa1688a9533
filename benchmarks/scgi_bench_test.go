package benchmarks

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/scgi"
)

// measured is a load run (loadWrk) with what it cost per request.
type measured struct {
	loadResult
	// Self is the CPU time per request of this process, µs: the gateways
	// and applications running in it, not wrk (a child reaped apart).
	Self float64
	// PeerGateway and PeerWorkers are the CPU time per request, µs, of the
	// peer processes measured (procTrees.Measure): nginx, and the applications
	// running apart, such as uwsgi.
	PeerGateway, PeerWorkers float64
	// Allocs and Bytes are this process's heap allocations per request.
	Allocs, Bytes float64
}

// CPU is the CPU time per request of every measured process, µs.
func (m measured) CPU() float64 { return m.Self + m.PeerGateway + m.PeerWorkers }

// measureLoad loads url with loadWrk and also reports the CPU time per
// request (cpu-us/req: this process plus the peer processes of peer) and
// this process's heap allocations per request (allocs/req and B/req, also
// given as allocs/op and B/op for -benchmem: here an op is one request).
// wrk runs in a process of its own and is not counted.
func measureLoad(b *testing.B, url, want string, peer procTrees) measured {
	b.Helper()
	runtime.GC() // do not charge this run for the garbage of the last
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0 := goroutinesCreated()
	u0, p0 := selfUsage(), peer.Measure()
	res := loadWrk(b, url, want)
	u1, p1 := selfUsage(), peer.Measure()
	g1 := goroutinesCreated()
	runtime.ReadMemStats(&m1)
	m := measured{loadResult: res}
	if res.Requests <= 0 {
		return m
	}
	n := float64(res.Requests)
	us := func(d time.Duration) float64 { return float64(d) / 1e3 / n }
	pd := p1.Sub(p0)
	m.Self, m.PeerGateway, m.PeerWorkers = us(u1.Sub(u0).Self), us(pd.Gateway), us(pd.Workers)
	m.Allocs, m.Bytes = float64(m1.Mallocs-m0.Mallocs)/n, float64(m1.TotalAlloc-m0.TotalAlloc)/n
	b.ReportMetric(m.CPU(), "cpu-us/req")
	b.ReportMetric(m.Allocs, "allocs/req")
	b.ReportMetric(m.Bytes, "B/req")
	b.ReportMetric(float64(g1-g0)/n, "goroutines/req")
	b.ReportMetric(m.Allocs, "allocs/op")
	b.ReportMetric(m.Bytes, "B/op")
	return m
}

// goroutinesCreated is the number of goroutines this process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// reportRatio reports cur's req/s over ref's as "x-NAME", when ref was
// measured in this run (a -bench pattern may have left it out).
func reportRatio(b *testing.B, cur measured, ref measured, ok bool, name string) {
	if ok && ref.RPS > 0 {
		b.ReportMetric(cur.RPS/ref.RPS, "x-"+name)
	}
}

// listenLoopback returns a listener on a free 127.0.0.1 port.
func listenLoopback(tb testing.TB) net.Listener {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// serveSCGI serves h with ferry's scgi.Server on a loopback port until the
// test ends, and returns the address.
func serveSCGI(tb testing.TB, h http.Handler) string {
	l := listenLoopback(tb)
	srv := &scgi.Server{Handler: h}
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// serveFastCGI serves h with ferry's fastcgi.Server on a loopback port
// until the test ends, and returns the address.
func serveFastCGI(tb testing.TB, h http.Handler) string {
	l := listenLoopback(tb)
	srv := &fastcgi.Server{Handler: h}
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// ferryHandler returns ferry's whole handler (bridge) with one mount, as
// `ferry serve --mount MOUNT` builds it.
func ferryHandler(tb testing.TB, mount string) http.Handler {
	tb.Helper()
	return ferryHandlerRoot(tb, "", mount)
}

// ferryHandlerRoot is ferryHandler with a document root (--root): a PHP
// site's static files and scripts.
func ferryHandlerRoot(tb testing.TB, root, mount string) http.Handler {
	tb.Helper()
	m, err := bridge.ParseMount(mount)
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := bridge.New(bridge.Config{Root: root, Mounts: []bridge.Mount{m}})
	if err != nil {
		tb.Fatal(err)
	}
	return srv.Handler()
}

// ferryFrontURL serves ferry's HTTP front with one mount on a loopback port
// until the test ends, and returns its URL.
func ferryFrontURL(tb testing.TB, mount string) string {
	return ferryFrontURLRoot(tb, "", mount)
}

// ferryFrontURLRoot is ferryFrontURL with a document root (--root). The
// front is ferry's own (bridge.Server.Run on http://127.0.0.1:0), as
// `ferry serve` runs it: its connection bound, timeouts and framing
// checks included, without an access log.
func ferryFrontURLRoot(tb testing.TB, root, mount string) string {
	tb.Helper()
	return ferryFrontURLCPUs(tb, root, mount, 0)
}

// ferryFrontURLCPUs is ferryFrontURLRoot with ferry's cpus setting (0: Go's
// default): GOMAXPROCS of this whole process while the front runs.
func ferryFrontURLCPUs(tb testing.TB, root, mount string, cpus int) string {
	tb.Helper()
	m, err := bridge.ParseMount(mount)
	if err != nil {
		tb.Fatal(err)
	}
	front, err := bridge.ParseAddress("http://127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := bridge.New(bridge.Config{Root: root, Mounts: []bridge.Mount{m}, Listen: []bridge.Address{front}, CPUs: cpus})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- srv.Run(ctx, func(ls []net.Listener) { addr <- ls[0].Addr().String() })
	}()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("ferry's front: %v", err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		done <- nil // Run returned: nothing left for the cleanup to wait for
		tb.Fatalf("ferry's front: %v", err)
	}
	return ""
}

// nginxTrees measures the nginx processes of a peers.Server.
func nginxTrees(s *peers.Server) procTrees {
	return procTrees{Marks: []string{s.Dir}, Gateway: isGatewayComm}
}

// BenchmarkSCGIBehindNginx compares ferry's SCGI server (scgi.Serve) with
// its FastCGI server (fastcgi.Serve), each running the same hello handler
// in this process behind the same nginx configuration: FastCGI with a
// connection per request (nginx's default) and with kept connections
// (fastcgi_keep_conn, upstream keepalive 16); SCGI has a connection per
// request by design. The scgi-minimal row is the floor a hand-written Go
// SCGI server reaches behind the same nginx (serveMinimalSCGI). Load:
// wrk -t2 -c16. The scgi row reports its req/s over each other row's
// (x-fastcgi-newconn, x-fastcgi-keepalive, x-scgi-minimal; issue 11 asks
// for x-scgi-minimal ≥ 1.05); cpu-us/req counts nginx and this process.
func BenchmarkSCGIBehindNginx(b *testing.B) {
	peerstest.Need(b, "nginx")
	ref := make(map[string]measured)
	rows := []struct {
		name  string
		start func(b *testing.B) *peers.Server
	}{
		{"fastcgi-newconn", func(b *testing.B) *peers.Server {
			return peerstest.NginxFastCGI(b, peers.NginxFastCGIConfig{Backend: serveFastCGI(b, hello)})
		}},
		{"fastcgi-keepalive", func(b *testing.B) *peers.Server {
			return peerstest.NginxFastCGI(b, peers.NginxFastCGIConfig{Backend: serveFastCGI(b, hello), KeepAlive: 16})
		}},
		{"scgi-minimal", func(b *testing.B) *peers.Server {
			return peerstest.NginxSCGI(b, peers.NginxSCGIConfig{Backend: serveMinimalSCGI(b)})
		}},
		{"scgi", func(b *testing.B) *peers.Server {
			return peerstest.NginxSCGI(b, peers.NginxSCGIConfig{Backend: serveSCGI(b, hello)})
		}},
	}
	for _, row := range rows {
		b.Run(row.name, func(b *testing.B) {
			ngx := row.start(b)
			m := measureLoad(b, ngx.URL+"/hello", "Hello, world\n", nginxTrees(ngx))
			ref[row.name] = m
			if row.name == "scgi" {
				for _, f := range []string{"fastcgi-newconn", "fastcgi-keepalive", "scgi-minimal"} {
					r, ok := ref[f]
					reportRatio(b, m, r, ok, f)
				}
			}
		})
	}
}

// serveMinimalSCGI runs minimalSCGI on a loopback port until the test
// ends and returns its address.
func serveMinimalSCGI(tb testing.TB) string {
	l := listenLoopback(tb)
	go minimalSCGI(l)
	tb.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// wsgiHello is the WSGI application uwsgi serves: the same 13 bytes.
const wsgiHello = `def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'Hello, world\n']
`

// uwsgiProcesses is the number of uwsgi workers, and ferry's connection
// limit to them (max_conns, as scgi.Client's documentation advises).
const uwsgiProcesses = 4

// BenchmarkUWSGISCGI compares ferry's HTTP front (bridge, --mount
// /=scgi://...?max_conns=4) with nginx scgi_pass in front of the same uwsgi
// (4 processes, --scgi-socket on loopback TCP) serving a 13-byte WSGI
// hello. Load: wrk -t2 -c16. gw-cpu-us/req is the front's CPU time per
// request (nginx, or this process for ferry), app-cpu-us/req uwsgi's; the
// other rows report their req/s over nginx's (x-nginx). ferry-cpus1 is
// ferry with cpus = 1 (GOMAXPROCS 1, as nginx runs one worker); go-floor
// and go-floor-cpus1 are serveSCGIFloorFront with the same 4 connections,
// the least a Go front can do on this path.
func BenchmarkUWSGISCGI(b *testing.B) {
	dir := b.TempDir()
	app := filepath.Join(dir, "hello.py")
	if err := os.WriteFile(app, []byte(wsgiHello), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := peers.MakeWorldReadable(dir); err != nil {
		b.Fatal(err)
	}
	uw := peerstest.RunUWSGI(b, peers.UWSGIConfig{WSGIFile: app, Listen: "127.0.0.1:0", Processes: uwsgiProcesses})
	uwsgiTree := procTrees{Roots: []int{uw.Process.Pid()}}
	var nginx measured
	var haveNginx bool
	report := func(b *testing.B, m measured) {
		b.ReportMetric(m.Self+m.PeerGateway, "gw-cpu-us/req")
		b.ReportMetric(m.PeerWorkers, "app-cpu-us/req")
	}
	b.Run("nginx", func(b *testing.B) {
		peerstest.Need(b, "nginx")
		ngx := peerstest.NginxSCGI(b, peers.NginxSCGIConfig{Backend: uw.Listen})
		t := nginxTrees(ngx)
		t.Roots = uwsgiTree.Roots
		nginx = measureLoad(b, ngx.URL+"/", "Hello, world\n", t)
		haveNginx = true
		report(b, nginx)
	})
	for _, cpus := range []int{0, 1} {
		name := "ferry"
		if cpus > 0 {
			name += "-cpus1"
		}
		b.Run(name, func(b *testing.B) {
			url := ferryFrontURLCPUs(b, "", fmt.Sprintf("/=scgi://%s?max_conns=%d", uw.Address, uwsgiProcesses), cpus)
			t := uwsgiTree
			t.Gateway = func(int, string) bool { return false } // the gateway is this process
			m := measureLoad(b, url+"/", "Hello, world\n", t)
			report(b, m)
			reportRatio(b, m, nginx, haveNginx, "nginx")
		})
	}
	for _, cpus := range []int{0, 1} {
		name := "go-floor"
		if cpus > 0 {
			name += "-cpus1"
		}
		b.Run(name, func(b *testing.B) {
			if cpus > 0 {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cpus))
			}
			url := serveSCGIFloorFront(b, uw.Address, uwsgiProcesses)
			t := uwsgiTree
			t.Gateway = func(int, string) bool { return false }
			m := measureLoad(b, url+"/", "Hello, world\n", t)
			report(b, m)
			reportRatio(b, m, nginx, haveNginx, "nginx")
		})
	}
}

// BenchmarkHopCost measures what each hop of translation adds to a direct
// Go net/http hello handler (the "direct" row, this process's
// httptest.Server), with the same handler reached through:
//
//	ferry-http       ferry's HTTP front (bridge) proxying to it over http://
//	ferry-fastcgi    ferry's HTTP front, fastcgi:// to it under fastcgi.Serve
//	ferry-scgi       ferry's HTTP front, scgi:// to it under scgi.Serve
//	nginx-fastcgi    nginx (fastcgi_keep_conn, keepalive 16) to fastcgi.Serve
//	nginx-scgi       nginx scgi_pass to scgi.Serve
//	nginx-scgi-ferry-http  two hops: nginx scgi_pass to ferry's SCGI front
//	                 (scgi.Serve of bridge's handler), which proxies over
//	                 http:// to the direct handler
//
// Every row but direct reports, against direct measured in the same run:
// x-direct (req/s ratio), added-p50-us and added-p99-us (latency),
// added-cpu-us/req (CPU per request of this process and nginx; wrk is not
// counted) and added-allocs/req (heap allocations in this process, which
// runs the Go side of every hop). Load: wrk -t2 -c16, which on a 2-core
// machine shares the cores with the gateways: read ratios, not absolutes.
func BenchmarkHopCost(b *testing.B) {
	peerstest.Need(b, "wrk")
	direct := httptest.NewServer(hello)
	defer direct.Close()
	httpBack := "http://" + direct.Listener.Addr().String()

	var base measured
	var haveBase bool
	rows := []struct {
		name  string
		nginx bool
		start func(b *testing.B) (string, procTrees)
	}{
		{"direct", false, func(b *testing.B) (string, procTrees) { return direct.URL, procTrees{} }},
		{"ferry-http", false, func(b *testing.B) (string, procTrees) { return ferryFrontURL(b, "/="+httpBack), procTrees{} }},
		{"ferry-fastcgi", false, func(b *testing.B) (string, procTrees) {
			return ferryFrontURL(b, "/=fastcgi://"+serveFastCGI(b, hello)), procTrees{}
		}},
		{"ferry-scgi", false, func(b *testing.B) (string, procTrees) {
			return ferryFrontURL(b, "/=scgi://"+serveSCGI(b, hello)), procTrees{}
		}},
		{"nginx-fastcgi", true, func(b *testing.B) (string, procTrees) {
			ngx := peerstest.NginxFastCGI(b, peers.NginxFastCGIConfig{Backend: serveFastCGI(b, hello), KeepAlive: 16})
			return ngx.URL, nginxTrees(ngx)
		}},
		{"nginx-scgi", true, func(b *testing.B) (string, procTrees) {
			ngx := peerstest.NginxSCGI(b, peers.NginxSCGIConfig{Backend: serveSCGI(b, hello)})
			return ngx.URL, nginxTrees(ngx)
		}},
		{"nginx-scgi-ferry-http", true, func(b *testing.B) (string, procTrees) {
			ngx := peerstest.NginxSCGI(b, peers.NginxSCGIConfig{Backend: serveSCGI(b, ferryHandler(b, "/="+httpBack))})
			return ngx.URL, nginxTrees(ngx)
		}},
	}
	var summary strings.Builder
	for _, row := range rows {
		b.Run(row.name, func(b *testing.B) {
			if row.nginx {
				peerstest.Need(b, "nginx")
			}
			url, trees := row.start(b)
			m := measureLoad(b, url+"/hello", "Hello, world\n", trees)
			if row.name == "direct" {
				base, haveBase = m, true
				return
			}
			if !haveBase {
				return
			}
			reportRatio(b, m, base, true, "direct")
			b.ReportMetric((m.P50-base.P50)*1e3, "added-p50-us")
			b.ReportMetric((m.P99-base.P99)*1e3, "added-p99-us")
			b.ReportMetric(m.CPU()-base.CPU(), "added-cpu-us/req")
			b.ReportMetric(m.Allocs-base.Allocs, "added-allocs/req")
			fmt.Fprintf(&summary, "%-22s %6.2fx req/s  %+7.0f µs p50  %+7.0f µs p99  %+6.1f µs CPU/req  %+5.0f allocs/req\n",
				row.name, m.RPS/base.RPS, (m.P50-base.P50)*1e3, (m.P99-base.P99)*1e3, m.CPU()-base.CPU(), m.Allocs-base.Allocs)
		})
	}
	if summary.Len() > 0 {
		b.Logf("against direct (%.0f req/s, p50 %.0f µs, %.1f µs CPU/req, %.0f allocs/req):\n%s",
			base.RPS, base.P50*1e3, base.CPU(), base.Allocs, summary.String())
	}
}
