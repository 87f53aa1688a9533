package benchmarks

import (
	"fmt"
	"io"
	"log"
	"net/http"
	stdcgi "net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/rs/zerolog"
)

// The same 13-byte "Hello, world\n" CGI script in several languages, as in
// shared/PEERS.md.
var helloScripts = map[string]string{
	"sh":     "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nHello, world\\n'\n",
	"perl":   "#!/usr/bin/perl\nprint \"Content-Type: text/plain\\r\\n\\r\\nHello, world\\n\";\n",
	"python": "#!/usr/bin/python3\nimport sys\nsys.stdout.write(\"Content-Type: text/plain\\r\\n\\r\\nHello, world\\n\")\n",
}

const helloC = `#include <stdio.h>
int main(void) { fputs("Content-Type: text/plain\r\n\r\nHello, world\n", stdout); return 0; }
`

// scriptDir writes the hello scripts (and the C one, compiled, when a C
// compiler is at hand) into a world-readable temp dir, for every gateway.
var scriptDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ferry-bench-*")
	if err != nil {
		return "", err
	}
	for lang, src := range helloScripts {
		if err := os.WriteFile(filepath.Join(dir, "hello-"+lang), []byte(src), 0o755); err != nil {
			return "", err
		}
	}
	if cc, err := exec.LookPath("cc"); err == nil {
		src := filepath.Join(dir, "hello.c")
		if err := os.WriteFile(src, []byte(helloC), 0o644); err != nil {
			return "", err
		}
		if out, err := exec.Command(cc, "-O2", "-o", filepath.Join(dir, "hello-c"), src).CombinedOutput(); err != nil {
			return "", fmt.Errorf("compiling hello.c: %v\n%s", err, out)
		}
	}
	return dir, peers.MakeWorldReadable(dir)
})

// languages are the scripts benchmarked, fastest start first.
func languages(b *testing.B, dir string) []string {
	var langs []string
	for _, l := range []string{"c", "sh", "perl", "python"} {
		if _, err := os.Stat(filepath.Join(dir, "hello-"+l)); err == nil {
			langs = append(langs, l)
		}
	}
	return langs
}

// stdGateway serves dir's scripts at /cgi-bin/NAME with net/http/cgi, one
// Handler per request as a directory dispatcher must.
type stdGateway struct{ dir string }

func (g stdGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/cgi-bin/"), "/")
	h := &stdcgi.Handler{Path: filepath.Join(g.dir, name), Root: "/cgi-bin/" + name, Logger: log.New(io.Discard, "", 0)}
	h.ServeHTTP(w, r)
}

// gateway is one way of serving the scripts over HTTP.
type gateway struct {
	name  string
	start func(tb testing.TB, dir string) string // returns the base URL
}

var gateways = []gateway{
	{"ferry", func(tb testing.TB, dir string) string {
		nop := zerolog.Nop()
		// The same environment net/http/cgi gives: passing LANG (ferry's
		// default) makes Perl and Python initialise their locale, which
		// costs more than the whole gateway.
		h := &cgi.Handler{Settings: cgi.Settings{Logger: &nop}, InheritEnv: []string{"PATH"},
			Resolver: &cgi.Dir{Path: dir, Prefix: "/cgi-bin/"}}
		srv := httptest.NewServer(h)
		tb.Cleanup(srv.Close)
		return srv.URL
	}},
	{"net-http-cgi", func(tb testing.TB, dir string) string {
		srv := httptest.NewServer(stdGateway{dir})
		tb.Cleanup(srv.Close)
		return srv.URL
	}},
	{"apache-mod_cgid", func(tb testing.TB, dir string) string {
		return peerstest.ApacheCGI(tb, peers.ApacheCGIConfig{CGIDir: dir}).URL
	}},
	{"nginx-fcgiwrap-c4", func(tb testing.TB, dir string) string {
		return peerstest.NginxFcgiwrap(tb, peers.NginxFcgiwrapConfig{CGIDir: dir, Workers: 4}).URL
	}},
}

// load sends GETs of url from 16 concurrent keep-alive clients (as wrk -c16
// in PEERS.md) and checks every answer.
func load(b *testing.B, url string, want string) float64 {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	// Warm up, and check the gateway works before timing it.
	if err := fetch(client, url, want); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(8) // GOMAXPROCS 2 × 8 = 16 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := fetch(client, url, want); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	rps := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rps, "req/s")
	return rps
}

func fetch(c *http.Client, url, want string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(body) != want {
		return fmt.Errorf("GET %s: %d %q; want 200 %q", url, resp.StatusCode, body, want)
	}
	return nil
}

// BenchmarkCGIThroughput compares gateways running the same hello script,
// one process per request, under 16 concurrent clients. Compare req/s of
// ferry against the others within one run: the machine is noisy.
func BenchmarkCGIThroughput(b *testing.B) {
	dir, err := scriptDir()
	if err != nil {
		b.Fatal(err)
	}
	for _, lang := range languages(b, dir) {
		for _, g := range gateways {
			b.Run(lang+"/"+g.name, func(b *testing.B) {
				base := g.start(b, dir)
				load(b, base+"/cgi-bin/hello-"+lang, "Hello, world\n")
			})
		}
	}
}

// BenchmarkCGIOverhead measures one request at a time: the raw fork+exec of
// the script with a CGI environment (the floor) against the same script
// through ferry and net/http/cgi. The difference in ns/op is the gateway's
// per-request overhead.
func BenchmarkCGIOverhead(b *testing.B) {
	dir, err := scriptDir()
	if err != nil {
		b.Fatal(err)
	}
	for _, lang := range languages(b, dir) {
		script := filepath.Join(dir, "hello-"+lang)
		b.Run(lang+"/raw-fork-exec", func(b *testing.B) {
			req := httptest.NewRequest("GET", "/cgi-bin/hello-"+lang, nil)
			env, err := cgi.AppendEnv(nil, req, cgi.Script{Name: "/cgi-bin/hello-" + lang, Filename: script}, "bench")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				cmd := &exec.Cmd{Path: script, Args: []string{script}, Env: env, Dir: dir}
				out, err := cmd.Output()
				if err != nil || !strings.HasSuffix(string(out), "Hello, world\n") {
					b.Fatalf("%s: %v %q", script, err, out)
				}
			}
		})
		for _, g := range gateways[:2] {
			b.Run(lang+"/"+g.name, func(b *testing.B) {
				url := g.start(b, dir) + "/cgi-bin/hello-" + lang
				client := &http.Client{Transport: &http.Transport{}}
				defer client.CloseIdleConnections()
				b.ReportAllocs()
				for b.Loop() {
					if err := fetch(client, url, "Hello, world\n"); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestBenchmarkTargetsAnswer checks, without timing anything, that every
// gateway of the benchmarks serves the hello scripts, so that a broken
// benchmark shows up in the ordinary test run.
func TestBenchmarkTargetsAnswer(t *testing.T) {
	dir, err := scriptDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gateways {
		t.Run(g.name, func(t *testing.T) {
			base := g.start(t, dir)
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			for _, lang := range []string{"sh", "perl"} {
				if err := fetch(client, base+"/cgi-bin/hello-"+lang, "Hello, world\n"); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
