package benchmarks

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/yookoala/gofast"
)

// phpChildren is the size of every php-fpm pool compared (pm = static),
// and ferry's max_conns to it in the keepalive rows.
const phpChildren = 4

// BenchmarkPHPFPM compares ferry's HTTP front with nginx in front of
// php-fpm (4 static children) serving a 13-byte hello.php: nginx with a
// connection per request (its default) and with kept connections
// (fastcgi_keep_conn, upstream keepalive 4), ferry likewise (max_conns=4;
// kept, also with cpus = 1, as nginx's one worker process), the Go floors
// of floor_test.go (go-floor also on one CPU), and gofast v0.8.0 (the off-the-shelf Go FastCGI proxy, a connection per
// request). Load: wrk -t2 -c16.
//
// Each row starts a php-fpm of its own: nginx's idle kept connections
// would otherwise hold the children of a shared pool, and the next row
// would wait behind them. gw-cpu-us/req is the front's CPU time per
// request (nginx, or this process for ferry and gofast), app-cpu-us/req
// php-fpm's; a ferry row reports its req/s over nginx's in the same mode
// and run (x-nginx), and its front CPU over nginx's (x-nginx-gw-cpu).
func BenchmarkPHPFPM(b *testing.B) {
	peerstest.Need(b, "php-fpm", "nginx")
	root, err := os.MkdirTemp("", "ferry-bench-php-*")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(root)
	if err := os.WriteFile(filepath.Join(root, "hello.php"), []byte("<?php header('Content-Type: text/plain'); echo \"Hello, world\\n\";"), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := peers.MakeWorldReadable(root); err != nil {
		b.Fatal(err)
	}
	startFPM := func(b *testing.B) (*peers.PHPFPM, procTrees) {
		fpm := peerstest.RunPHPFPM(b, peers.PHPFPMConfig{Listen: "127.0.0.1:0", Children: phpChildren})
		return fpm, procTrees{Roots: []int{fpm.Process.Pid()}, Gateway: func(int, string) bool { return false }}
	}
	report := func(b *testing.B, m measured) {
		b.ReportMetric(m.Self+m.PeerGateway, "gw-cpu-us/req")
		b.ReportMetric(m.PeerWorkers, "app-cpu-us/req")
	}
	for _, tc := range []struct {
		name string
		keep int
	}{{"newconn", 0}, {"keepalive", phpChildren}} {
		var nginx measured
		var haveNginx bool
		b.Run(tc.name+"/nginx", func(b *testing.B) {
			fpm, t := startFPM(b)
			ngx := peerstest.NginxFastCGI(b, peers.NginxFastCGIConfig{Backend: fpm.Address, Root: root, KeepAlive: tc.keep})
			nt := nginxTrees(ngx)
			nt.Roots = t.Roots
			nginx, haveNginx = measureLoad(b, ngx.URL+"/hello.php", "Hello, world\n", nt), true
			report(b, nginx)
		})
		if tc.keep == 0 {
			// gofast v0.8.0, the off-the-shelf Go FastCGI proxy: a
			// connection per request is all it does.
			b.Run(tc.name+"/gofast", func(b *testing.B) {
				fpm, t := startFPM(b)
				factory := gofast.SimpleClientFactory(gofast.SimpleConnFactory("tcp", fpm.Address))
				hs := httptest.NewServer(gofast.NewHandler(gofast.NewPHPFS(root)(gofast.BasicSession), factory))
				defer hs.Close()
				m := measureLoad(b, hs.URL+"/hello.php", "Hello, world\n", t)
				report(b, m)
				reportRatio(b, m, nginx, haveNginx, "nginx")
			})
		}
		// ferry with Go's default (both CPUs here), and with cpus = 1:
		// nginx runs one worker process (worker_processes 1, its best here:
		// with 2, each worker keeps its own 4 connections to the 4
		// children and they queue behind each other's).
		for _, fr := range []struct {
			name string
			cpus int
		}{{"ferry", 0}, {"ferry-cpus1", 1}} {
			if fr.cpus > 0 && tc.keep == 0 {
				break
			}
			b.Run(tc.name+"/"+fr.name, func(b *testing.B) {
				fpm, t := startFPM(b)
				mount := "/=fastcgi://" + fpm.Address
				if tc.keep > 0 {
					mount += "?max_conns=4"
				}
				url := ferryFrontURLCPUs(b, root, mount, fr.cpus)
				m := measureLoad(b, url+"/hello.php", "Hello, world\n", t)
				report(b, m)
				reportRatio(b, m, nginx, haveNginx, "nginx")
				if haveNginx && nginx.PeerGateway > 0 {
					b.ReportMetric(m.Self/nginx.PeerGateway, "x-nginx-gw-cpu")
				}
			})
		}
		for _, floor := range []struct {
			name  string
			serve func(testing.TB, string, string, int) string
			cpus  int
		}{{"go-floor", serveFloorFront, 0}, {"go-floor-cpus1", serveFloorFront, 1}, {"go-floor-nethttp", serveFloorNetHTTP, 0}} {
			if tc.keep == 0 {
				break
			}
			b.Run(tc.name+"/"+floor.name, func(b *testing.B) {
				if floor.cpus > 0 {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(floor.cpus))
				}
				fpm, t := startFPM(b)
				url := floor.serve(b, fpm.Address, filepath.Join(root, "hello.php"), tc.keep)
				m := measureLoad(b, url+"/hello.php", "Hello, world\n", t)
				report(b, m)
				reportRatio(b, m, nginx, haveNginx, "nginx")
				if haveNginx && nginx.PeerGateway > 0 {
					b.ReportMetric(m.Self/nginx.PeerGateway, "x-nginx-gw-cpu")
				}
			})
		}
	}
}
