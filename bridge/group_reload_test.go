package bridge

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testdir"
)

// namedFastCGI starts a Go FastCGI application that answers its name, and
// "pong" on /ping (counted in pings); it stops at the end of the test.
func namedFastCGI(t *testing.T, name string, pings *atomic.Int64) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &fastcgi.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			pings.Add(1)
			io.WriteString(w, "pong")
			return
		}
		io.WriteString(w, name)
	})}
	go app.Serve(l)
	t.Cleanup(func() { app.Close() })
	return "fastcgi://" + l.Addr().String()
}

// groupChecks returns the health checks s's groups have run.
func groupChecks(s *Server) (n uint64) {
	for _, g := range s.groups {
		for _, m := range g.list() {
			n += m.checksPassed.Load() + m.checksFailed.Load()
		}
	}
	return n
}

// TestGroupReload reloads a ferry whose mount is a group: a backend
// drained through the admin listener stays drained in the new
// configuration, the new group's health checks run from the switch and the
// replaced group's stop once its requests are over, and nothing is left
// running at the end.
func TestGroupReload(t *testing.T) {
	leakcheck.Check(t)
	var pingsA, pingsB atomic.Int64
	a, b := namedFastCGI(t, "a", &pingsA), namedFastCGI(t, "b", &pingsB)
	config := func(more bool) Config {
		mounts := []string{"/=" + a + "," + b + "?health=/ping&health_body=pong&health_interval=20ms&policy=round_robin"}
		if more {
			mounts = append(mounts, "/more/="+b)
		}
		cfg := mustConfig(t, "http://127.0.0.1:0", mounts...)
		var err error
		if cfg.Admin, err = ParseAdminAddress("http://127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	s, err := New(config(false))
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := runReloadable(t, s)
	answers := func(what string) string {
		t.Helper()
		var got []string
		for range 6 {
			got = append(got, getBody(t, "http://"+addr+"/x"))
		}
		return strings.Join(got, "")
	}
	if got := answers("before the drain"); strings.Count(got, "a") != 3 {
		t.Fatalf("round robin over a and b answered %q", got)
	}
	u := fmt.Sprintf("http://%s/backends/drain?mount=/&backend=%s", s.AdminAddr(), url.QueryEscape(a))
	if code, body := get(t, "POST", u, nil); code != 200 {
		t.Fatalf("drain: %d %s", code, body)
	}
	if got := answers("drained"); got != "bbbbbb" {
		t.Fatalf("with a drained: %q; want b only", got)
	}

	if err := s.Reload(config(true)); err != nil {
		t.Fatal(err)
	}
	r := s.run.Load()
	r.mu.Lock()
	retired, next := r.retired, r.cur.Load()
	r.mu.Unlock()
	<-retired // the replaced configuration had no request left
	if got := answers("after the reload"); got != "bbbbbb" {
		t.Errorf("after the reload: %q; want b only (a stays drained)", got)
	}
	metrics := getBody(t, "http://"+s.AdminAddr().String()+"/metrics")
	want := fmt.Sprintf(`ferry_backend_state{backend=%q,mount="/",state="draining"} 1`, a)
	if !strings.Contains(metrics, want) {
		t.Errorf("/metrics after the reload has no %s", want)
	}

	old, fresh := groupChecks(s), groupChecks(next)
	deadline := time.Now().Add(10 * time.Second)
	for groupChecks(next) < fresh+5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := groupChecks(next); n < fresh+5 {
		t.Errorf("the new group ran %d health checks in 10 s; want them every 20 ms", n-fresh)
	}
	if n := groupChecks(s); n != old {
		t.Errorf("the replaced group ran %d more health checks after it retired", n-old)
	}
	stop()
	// A check sent just before Run returned may still reach its
	// application (which counts it) after: count from once those have
	// landed. Checks going on would add ten each 200 ms.
	time.Sleep(200 * time.Millisecond)
	pa, pb := pingsA.Load(), pingsB.Load()
	time.Sleep(200 * time.Millisecond)
	if pingsA.Load() != pa || pingsB.Load() != pb {
		t.Errorf("health checks went on after Run returned")
	}
}

// TestGroupOfWorkerPools: pools ferry spawns (fastcgi+exec:) are a
// group's backends too: round robin alternates between the two pools'
// workers, each backend's requests show in /metrics, and a reload that
// changes nothing keeps both pools and their workers.
func TestGroupOfWorkerPools(t *testing.T) {
	leakcheck.Check(t)
	a, b := testdir.Executable(t), testdir.Executable(t) // two programs: two backends
	cfg, err := matrixConfig("http://127.0.0.1:0", []string{
		matrixPrefix + "/=fastcgi+exec:" + a + ",fastcgi+exec:" + b + "?workers=1&policy=round_robin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin, err = ParseAdminAddress("http://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := runReloadable(t, s)
	pids := func() map[string]int {
		t.Helper()
		m := map[string]int{}
		for _, sp := range s.run.Load().cur.Load().pools {
			ps := sp.procs.PIDs()
			if len(ps) != 1 {
				t.Fatalf("pool %s runs %v; want one worker", sp.name, ps)
			}
			m[sp.name] = ps[0]
		}
		return m
	}
	before := pids()
	if len(before) != 2 {
		t.Fatalf("pools %v; want one per backend", before)
	}
	count := map[string]int{}
	for range 10 {
		count[getBody(t, "http://"+addr+matrixPrefix+"/pid")]++
	}
	for name, pid := range before {
		if n := count[strconv.Itoa(pid)]; n != 5 {
			t.Errorf("the worker of %s (pid %d) answered %d of 10; want 5 (round robin): %v", name, pid, n, count)
		}
	}
	metrics := getBody(t, "http://"+s.AdminAddr().String()+"/metrics")
	for _, w := range []string{a, b} {
		want := fmt.Sprintf(`ferry_backend_requests_total{backend="fastcgi+exec:%s",mount=%q} 5`, w, matrixPrefix+"/")
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if after := pids(); !maps.Equal(after, before) {
		t.Errorf("a reload that changed nothing: workers %v; want the same %v", after, before)
	}
	if got := getBody(t, "http://"+addr+matrixPrefix+"/pid"); got != strconv.Itoa(before[a]) && got != strconv.Itoa(before[b]) {
		t.Errorf("after the reload: %q; want one of the kept workers", got)
	}
}
