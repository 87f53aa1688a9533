// Package peerstest starts the real peers of package peers for tests.
//
// Each function starts one peer with the matching Start function of package
// peers, in a directory from [testing.TB.TempDir], and stops it in
// [testing.TB.Cleanup]. It calls [Need] first, so a test skips when the peer
// is not installed, with a message saying so, or fails when the CI
// environment variable is true: CI must have every peer, and .ci/run
// installs them. A peer that is installed but does not start fails the test,
// unless the error says that a part of it (such as an Apache module) is not
// installed, which is treated as by [Need].
//
// Only tests import this package; code that ships (ferry bench) uses the
// Start functions of package peers, which return errors and leave stopping
// to the caller.
package peerstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/peers"
)

// Need returns the absolute paths of the named programs, keyed by name, as
// found by [peers.Lookup]. When any is missing it stops the test: with
// tb.Fatalf when the CI environment variable is true (CI must have every
// peer; .ci/run installs them), with tb.Skipf otherwise.
//
// With -short (the edit-test loop), it skips: real peers start only in the
// whole suite.
func Need(tb testing.TB, names ...string) map[string]string {
	tb.Helper()
	if testing.Short() {
		tb.Skipf("peers: %s not started with -short; go test ./... runs this test", strings.Join(names, ", "))
	}
	paths := make(map[string]string, len(names))
	var missing []string
	for _, n := range names {
		p, err := peers.Lookup(n)
		if err != nil {
			missing = append(missing, n)
			continue
		}
		paths[n] = p
	}
	if len(missing) == 0 {
		return paths
	}
	pronoun := "it"
	if len(missing) > 1 {
		pronoun = "them"
	}
	msg := fmt.Sprintf("peers: %s not installed; .ci/run installs %s", strings.Join(missing, ", "), pronoun)
	if onCI() {
		tb.Fatalf("%s", msg)
	} else {
		tb.Skipf("%s", msg)
	}
	return nil
}

// Want returns the absolute path of the named program, for a test that
// does more with it but runs without it: when it is missing, Want logs so
// and returns false, unless the CI environment variable is true, where it
// fails the test (CI must have every peer). With -short it returns false.
func Want(tb testing.TB, name string) (string, bool) {
	tb.Helper()
	if testing.Short() {
		return "", false
	}
	p, err := peers.Lookup(name)
	if err == nil {
		return p, true
	}
	msg := fmt.Sprintf("peers: %s not installed (.ci/run installs it); going on without it", name)
	if onCI() {
		tb.Fatalf("%s", msg)
	}
	tb.Logf("%s", msg)
	return "", false
}

// onCI reports whether the CI environment variable is set to a true value.
func onCI() bool {
	ci, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ci
}

// start runs [Need] for the programs named, then launch with cfg in a
// directory from tb.TempDir, ends the test if the peer does not start (see
// the package comment), and stops the peer in tb.Cleanup.
func start[C any, T interface{ Stop() error }](tb testing.TB, launch func(context.Context, string, C) (T, error), cfg C, names ...string) T {
	tb.Helper()
	Need(tb, names...)
	p, err := launch(tb.Context(), tb.TempDir(), cfg)
	if err != nil {
		if errors.Is(err, peers.ErrNotInstalled) && !onCI() {
			tb.Skipf("%v; .ci/run installs it", err)
		}
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() {
		if err := p.Stop(); err != nil {
			tb.Errorf("%v", err)
		}
	})
	return p
}

// ApacheCGI starts Apache httpd with mod_cgid ([peers.StartApacheCGI]).
func ApacheCGI(tb testing.TB, cfg peers.ApacheCGIConfig) *peers.Server {
	tb.Helper()
	return start(tb, peers.StartApacheCGI, cfg, "apache2")
}

// NginxFcgiwrap starts nginx in front of fcgiwrap ([peers.StartNginxFcgiwrap]).
func NginxFcgiwrap(tb testing.TB, cfg peers.NginxFcgiwrapConfig) *peers.Server {
	tb.Helper()
	return start(tb, peers.StartNginxFcgiwrap, cfg, "nginx", "fcgiwrap")
}

// NginxFastCGI starts nginx in front of a FastCGI application ([peers.StartNginxFastCGI]).
func NginxFastCGI(tb testing.TB, cfg peers.NginxFastCGIConfig) *peers.Server {
	tb.Helper()
	return start(tb, peers.StartNginxFastCGI, cfg, "nginx")
}

// ApacheProxyFCGI starts Apache httpd with mod_proxy_fcgi ([peers.StartApacheProxyFCGI]).
func ApacheProxyFCGI(tb testing.TB, cfg peers.ApacheProxyFCGIConfig) *peers.Server {
	tb.Helper()
	return start(tb, peers.StartApacheProxyFCGI, cfg, "apache2")
}

// RunPHPFPM starts php-fpm ([peers.StartPHPFPM]).
func RunPHPFPM(tb testing.TB, cfg peers.PHPFPMConfig) *peers.PHPFPM {
	tb.Helper()
	return start(tb, peers.StartPHPFPM, cfg, "php-fpm")
}

// NginxSCGI starts nginx in front of an SCGI application ([peers.StartNginxSCGI]).
func NginxSCGI(tb testing.TB, cfg peers.NginxSCGIConfig) *peers.Server {
	tb.Helper()
	return start(tb, peers.StartNginxSCGI, cfg, "nginx")
}

// ApacheProxySCGI starts Apache httpd with mod_proxy_scgi
// ([peers.StartApacheProxySCGI]); a missing mod_proxy_scgi is treated as a
// missing peer.
func ApacheProxySCGI(tb testing.TB, cfg peers.ApacheProxySCGIConfig) *peers.Server {
	tb.Helper()
	return start(tb, peers.StartApacheProxySCGI, cfg, "apache2")
}

// LighttpdSCGI starts lighttpd with mod_scgi ([peers.StartLighttpdSCGI]).
func LighttpdSCGI(tb testing.TB, cfg peers.LighttpdSCGIConfig) *peers.Server {
	tb.Helper()
	return start(tb, peers.StartLighttpdSCGI, cfg, "lighttpd")
}

// RunUWSGI starts uwsgi serving a WSGI application over SCGI
// ([peers.StartUWSGI]); it needs python3 too.
func RunUWSGI(tb testing.TB, cfg peers.UWSGIConfig) *peers.UWSGI {
	tb.Helper()
	return start(tb, peers.StartUWSGI, cfg, "uwsgi", "python3")
}

// RunRTorrent starts rtorrent with its SCGI XML-RPC port ([peers.StartRTorrent]).
func RunRTorrent(tb testing.TB) *peers.RTorrent {
	tb.Helper()
	return start(tb, func(ctx context.Context, dir string, _ struct{}) (*peers.RTorrent, error) {
		return peers.StartRTorrent(ctx, dir)
	}, struct{}{}, "rtorrent")
}

// HAProxy starts HAProxy ([peers.StartHAProxy]).
func HAProxy(tb testing.TB, cfg peers.HAProxyConfig) *peers.Server {
	tb.Helper()
	return start(tb, peers.StartHAProxy, cfg, "haproxy")
}

// Wrk starts wrk's load ([peers.StartWrk]); the function it returns waits
// for the report, and fails the test if wrk failed. The load stops at
// cleanup if it still runs.
func Wrk(tb testing.TB, cfg peers.WrkConfig) func() peers.WrkResult {
	tb.Helper()
	Need(tb, "wrk")
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	w, err := peers.StartWrk(ctx, cfg)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	return func() peers.WrkResult {
		tb.Helper()
		r, err := w.Wait()
		if err != nil {
			tb.Fatalf("%v", err)
		}
		return r
	}
}

// ApacheModPHP starts Apache httpd with mod_php ([peers.StartApacheModPHP]);
// a missing mod_php is treated as a missing peer.
func ApacheModPHP(tb testing.TB, cfg peers.ApacheModPHPConfig) *peers.Server {
	tb.Helper()
	return start(tb, peers.StartApacheModPHP, cfg, "apache2")
}

// ApacheFront starts Apache httpd with a given site, in front of ferry
// ([peers.StartApacheFront]).
func ApacheFront(tb testing.TB, cfg peers.ApacheFrontConfig) *peers.Server {
	tb.Helper()
	return start(tb, peers.StartApacheFront, cfg, "apache2")
}

// NginxFront starts nginx with a given server block, in front of ferry
// ([peers.StartNginxFront]).
func NginxFront(tb testing.TB, cfg peers.NginxFrontConfig) *peers.Server {
	tb.Helper()
	return start(tb, peers.StartNginxFront, cfg, "nginx")
}
