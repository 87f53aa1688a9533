package benchmarks

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/yookoala/gofast"
)

// BenchmarkPHPFPM compares ferry's HTTP front with nginx in front of the
// same php-fpm pool (4 static children) serving a 13-byte hello.php: nginx
// with a connection per request (its default) and with kept connections,
// ferry likewise, and gofast v0.8.0 (the off-the-shelf Go FastCGI proxy,
// a connection per request). Load: wrk -t2 -c16.
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
	fpm := peerstest.RunPHPFPM(b, peers.PHPFPMConfig{Listen: "127.0.0.1:0", Children: 4})
	for _, tc := range []struct {
		name string
		keep int
	}{{"newconn", 0}, {"keepalive", 4}} {
		b.Run(tc.name+"/nginx", func(b *testing.B) {
			ngx := peerstest.NginxFastCGI(b, peers.NginxFastCGIConfig{Backend: fpm.Address, Root: root, KeepAlive: tc.keep})
			loadWrk(b, ngx.URL+"/hello.php", "Hello, world\n")
		})
		if tc.keep == 0 {
			// gofast v0.8.0, the off-the-shelf Go FastCGI proxy: a
			// connection per request is all it does.
			b.Run(tc.name+"/gofast", func(b *testing.B) {
				factory := gofast.SimpleClientFactory(gofast.SimpleConnFactory("tcp", fpm.Address))
				hs := httptest.NewServer(gofast.NewHandler(gofast.NewPHPFS(root)(gofast.BasicSession), factory))
				defer hs.Close()
				loadWrk(b, hs.URL+"/hello.php", "Hello, world\n")
			})
		}
		b.Run(tc.name+"/ferry", func(b *testing.B) {
			mount := "/=fastcgi://" + fpm.Address
			if tc.keep > 0 {
				mount += "?max_conns=4"
			}
			m, err := bridge.ParseMount(mount)
			if err != nil {
				b.Fatal(err)
			}
			srv, err := bridge.New(bridge.Config{Root: root, Mounts: []bridge.Mount{m}})
			if err != nil {
				b.Fatal(err)
			}
			hs := httptest.NewServer(srv.Handler())
			defer hs.Close()
			loadWrk(b, hs.URL+"/hello.php", "Hello, world\n")
		})
	}
}
