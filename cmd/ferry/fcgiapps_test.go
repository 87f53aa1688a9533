package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
)

// perlFCGIApp is a long-lived Perl FCGI application: it echoes what the
// WSGI-style convention gives it (SCRIPT_NAME = the mount, PATH_INFO = the
// rest) and what the front said about the connection.
const perlFCGIApp = `use strict; use warnings; use FCGI;
my $sock = FCGI::OpenSocket($ARGV[0], 16);
my $req = FCGI::Request(\*STDIN, \*STDOUT, \*STDERR, \%ENV, $sock);
while ($req->Accept() >= 0) {
    my $body = '';
    read(STDIN, $body, $ENV{CONTENT_LENGTH}) if ($ENV{CONTENT_LENGTH} || 0) > 0;
    print "Content-Type: text/plain\r\n\r\n";
    print "pid=$$\n";
    print "script=$ENV{SCRIPT_NAME}\n";
    print "path_info=", ($ENV{PATH_INFO} // ''), "\n";
    print "port=$ENV{SERVER_PORT}\n";
    print "body=", length($body), "\n";
}
`

// startApp runs argv with env, stopped at cleanup, and waits until addr
// accepts connections.
func startApp(t *testing.T, addr string, env []string, argv ...string) {
	t.Helper()
	p, err := peers.Start(t.Context(), peers.Spec{Path: argv[0], Args: argv[1:], Env: env, ReadyTCP: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := peers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// TestFastCGIToPerlFCGI mounts a Perl FCGI application at /app/: the mount
// is SCRIPT_NAME, the rest PATH_INFO, and ferry's front port carries through.
func TestFastCGIToPerlFCGI(t *testing.T) {
	peerstest.Need(t, "perl")
	if err := exec.Command("perl", "-MFCGI", "-e", "1").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Perl FCGI module missing (Debian libfcgi-perl): %v", err)
		}
		t.Skipf("Perl FCGI module missing (Debian libfcgi-perl): %v", err)
	}
	app := filepath.Join(t.TempDir(), "app.pl")
	if err := os.WriteFile(app, []byte(perlFCGIApp), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	perl, _ := peers.Lookup("perl")
	startApp(t, addr, nil, perl, app, addr)
	p := startFerry(t, "--mount", "/app/=fastcgi://"+addr+"?max_conns=1")
	port := p.URL[strings.LastIndexByte(p.URL, ':')+1:]
	code, body := httpGet(t, p.URL+"/app/users/42?x=1")
	for _, want := range []string{"script=/app\n", "path_info=/users/42\n", "port=" + port + "\n"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET /app/users/42 = %d %q; want %q", code, body, want)
		}
	}
}

// TestFastCGIToPHPCGIBound runs "php-cgi -b" with children: it answers
// FCGI_GET_VALUES, so ferry sizes its pool from it and keeps connections.
func TestFastCGIToPHPCGIBound(t *testing.T) {
	peerstest.Need(t, "php-cgi")
	root := phpSite(t)
	addr := freeAddr(t)
	php, _ := peers.Lookup("php-cgi")
	startApp(t, addr, []string{"PHP_FCGI_CHILDREN=2", "PATH=/usr/bin:/bin"}, php, "-b", addr)
	p := startFerry(t, "--root", root, "--mount", "/=fastcgi://"+addr)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(p.URL + "/info.php/x")
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body := string(b); resp.StatusCode != 200 || !strings.Contains(body, "script=/info.php\n") || !strings.Contains(body, "path_info=/x\n") {
				t.Errorf("GET /info.php/x = %d %q", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if !strings.Contains(p.logs.String(), "pool sized by the application") {
		t.Errorf("ferry did not size its pool from php-cgi's FCGI_MAX_CONNS:\n%s", p.logs)
	}
}

// perlFCGIWorker is a Perl FCGI program for fastcgi+exec:, on the
// listening socket ferry hands it on descriptor 0. Perl's FCGI module is
// libfcgi's C code: it answers FCGI_GET_VALUES only once it has read the
// start of the next record, as C programs linked with libfcgi do.
const perlFCGIWorker = `use strict; use warnings; use FCGI;
my $req = FCGI::Request();
while ($req->Accept() >= 0) {
    print "Content-Type: text/plain\r\n\r\npid=$$\n";
}
`

// TestSpawnPerlFCGI runs a Perl FCGI program as fastcgi+exec: workers:
// ferry starts serving at once. Before, its start probe sent
// FCGI_GET_VALUES and waited for an answer that libfcgi gives only on the
// next record, and "ferry serve" exited after 10 s: "did not serve within
// 10s" (so did C programs linked with libfcgi; php-cgi answers at once).
func TestSpawnPerlFCGI(t *testing.T) {
	bins := peerstest.Need(t, "perl")
	if err := exec.Command(bins["perl"], "-MFCGI", "-e", "1").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Perl FCGI module missing (Debian libfcgi-perl): %v", err)
		}
		t.Skipf("Perl FCGI module missing (Debian libfcgi-perl): %v", err)
	}
	app := filepath.Join(testdir.Open(t), "app.fcgi")
	if err := os.WriteFile(app, []byte("#!"+bins["perl"]+"\n"+perlFCGIWorker), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p := startFerry(t, "--mount", "/app/=fastcgi+exec:"+app+"?workers=2")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("ferry listened after %v; want at once", d)
	}
	if code, body := httpGet(t, p.URL+"/app/"); code != 200 || !strings.HasPrefix(body, "pid=") {
		t.Errorf("GET /app/ = %d %q; want 200 pid=N", code, body)
	}
}
