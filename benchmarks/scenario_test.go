package benchmarks

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// TestScenariosGo runs the Go scenarios of the set for a short time: the
// Go app as per-request CGI, as FastCGI and SCGI workers, as a plain HTTP handler,
// and under Go's net/http/cgi and net/http/fcgi, through helper processes
// (this test binary, re-executed); then the hops through ferry serve in
// front of one app process (HTTP, FastCGI, SCGI), each measured against
// the app served directly, and nginx in front of scgi.Serve of the app
// against nginx in front of the minimal SCGI server.
func TestScenariosGo(t *testing.T) {
	leakcheck.Check(t)
	rep, err := RunScenarios(context.Background(), Config{Apps: "../testdata/bench", Self: []string{os.Args[0]}, Only: "hello/go/",
		Duration: time.Second, Warmup: 10 * time.Millisecond, Concurrency: []int{2}})
	if err != nil {
		t.Fatal(err)
	}
	// The worker processes each row measures: the pools ferry starts have
	// 2, a hop or nginx goes to one app process, the rest have none.
	want := map[string]int{"hello/go/cgi/ferry": 0, "hello/go/fastcgi/ferry-pool": 2, "hello/go/scgi/ferry-workers": 2,
		"hello/go/http/net/http": 0, "hello/go/cgi/net/http/cgi": 0, "hello/go/fastcgi/net/http/fcgi": 2,
		"hello/go/http/ferry-http": 1, "hello/go/fastcgi/ferry": 1, "hello/go/scgi/ferry": 1,
		"hello/go/scgi/nginx-ferry-scgi": 1, "hello/go/scgi/nginx-scgi-minimal": 1}
	for _, s := range rep.Skipped {
		if strings.Contains(s.Scenario, "/nginx-") && strings.Contains(s.Reason, "nginx") && !onCI() {
			t.Logf("%s skipped: %s", s.Scenario, s.Reason)
			delete(want, s.Scenario)
			continue
		}
		t.Errorf("%s skipped: %s", s.Scenario, s.Reason)
	}
	seen := make(map[string]bool)
	for _, r := range rep.Rows {
		procs, ok := want[r.Scenario]
		if !ok {
			t.Errorf("unexpected row %s", r.Scenario)
			continue
		}
		seen[r.Scenario] = true
		if raceEnabled && r.Mode == "cgi" {
			continue // a race-instrumented test binary takes over a second to start
		}
		if r.Requests == 0 || r.Errors != 0 || r.RPS.Median <= 0 || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 {
			t.Errorf("%s: %d requests, %d errors (%s), %v req/s, p50 %v p99 %v", r.Scenario, r.Requests, r.Errors, r.Note, r.RPS.Median, r.Latency.P50, r.Latency.P99)
		}
		if r.CPU.Gateway <= 0 {
			t.Errorf("%s: no gateway CPU measured", r.Scenario)
		}
		if procs > 0 && (r.WorkerProcs != procs || r.TotalRSSKiB == 0) {
			t.Errorf("%s: %d worker processes, %d KiB; want %d workers measured", r.Scenario, r.WorkerProcs, r.TotalRSSKiB, procs)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no row %s", name)
		}
	}
	// Each hop is measured against the app served directly, and ferry's
	// SCGI server behind nginx against the minimal one.
	wantPairs := map[Pair]bool{
		{Ferry: "hello/go/http/ferry-http", Other: "hello/go/http/net/http", Concurrency: 2, Over: true}:                  false,
		{Ferry: "hello/go/fastcgi/ferry", Other: "hello/go/http/net/http", Concurrency: 2, Over: true}:                    false,
		{Ferry: "hello/go/scgi/ferry", Other: "hello/go/http/net/http", Concurrency: 2, Over: true}:                       false,
		{Ferry: "hello/go/scgi/nginx-ferry-scgi", Other: "hello/go/scgi/nginx-scgi-minimal", Concurrency: 2, Over: false}: false,
	}
	for _, p := range rep.Pairs {
		key := Pair{Ferry: p.Ferry, Other: p.Other, Concurrency: p.Concurrency, Over: p.Over}
		if _, ok := wantPairs[key]; !ok {
			continue // the CGI and FastCGI pairs with Go's own packages
		}
		wantPairs[key] = true
		if p.Ratio <= 0 {
			t.Errorf("%s over %s: no ratio (%s)", p.Ferry, p.Other, p.Note)
		}
	}
	for p, found := range wantPairs {
		if !found && seen[p.Ferry] && seen[p.Other] {
			t.Errorf("no pair %s over %s (over %v) in %+v", p.Ferry, p.Other, p.Over, rep.Pairs)
		}
	}
	if raceEnabled {
		return
	}
	if len(rep.Startup) != 1 || rep.Startup[0].Lang != "go" || rep.Startup[0].RawExecMs <= 0 || rep.Startup[0].WorkerRow == "" ||
		rep.Startup[0].StartupMs != rep.Startup[0].CGIMs-rep.Startup[0].WorkerMs {
		t.Errorf("startup breakdown = %+v; want one go entry with a worker row and a raw exec time", rep.Startup)
	}
}

// TestAppsAgree checks that the bundled app gives the same body in every
// language, for both variants, and as a PSGI application.
func TestAppsAgree(t *testing.T) {
	for _, path := range []string{"/", "/?rows=5&name=a<b"} {
		req := httptest.NewRequest("GET", path, nil)
		w := httptest.NewRecorder()
		goApp().ServeHTTP(w, req)
		want := w.Body.String()
		if w.Code != http.StatusOK || want == "" {
			t.Fatalf("Go app %s: %d %q", path, w.Code, want)
		}
		_, query, _ := strings.Cut(path, "?")
		for _, script := range []string{"bench.sh", "bench.pl", "bench.py", "bench.php"} {
			p, _ := filepath.Abs(filepath.Join("../testdata/bench", script))
			interp := map[string]string{"bench.pl": "perl", "bench.py": "python3", "bench.php": "php-cgi"}[script]
			if interp != "" {
				if _, err := exec.LookPath(interp); err != nil {
					t.Logf("%s not installed: %s not checked", interp, script)
					continue
				}
			}
			cmd := exec.Command(p)
			cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "QUERY_STRING=" + query, "SCRIPT_FILENAME=" + p}
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("%s: %v", script, err)
				continue
			}
			_, body, _ := strings.Cut(string(out), "\r\n\r\n")
			if strings.Contains(path, "a<b") && script != "bench.pl" && script != "bench.py" && script != "bench.php" {
				// sh does not decode the query; compare the structure only.
				body = strings.ReplaceAll(body, "a&lt;b", "X")
				want := strings.ReplaceAll(want, "a&lt;b", "X")
				if body != want {
					t.Errorf("%s %s: body differs from the Go app's", script, path)
				}
				continue
			}
			if body != want {
				t.Errorf("%s %s: body = %q; want the Go app's %q", script, path, body, want)
			}
		}
		// bench.psgi, called as a PSGI server calls it.
		if _, err := exec.LookPath("perl"); err != nil {
			t.Logf("perl not installed: bench.psgi not checked")
			continue
		}
		psgi, _ := filepath.Abs("../testdata/bench/bench.psgi")
		call := `my $app = do $ARGV[0] or die $@; my $r = $app->({REQUEST_METHOD => "GET", QUERY_STRING => $ARGV[1]}); print @{$r->[2]}`
		out, err := exec.Command("perl", "-e", call, psgi, query).Output()
		if err != nil || string(out) != want {
			t.Errorf("bench.psgi %s: body = %q, %v; want the Go app's %q", path, out, err, want)
		}
	}
}

// TestScenariosSCGI runs the SCGI rows for a short time: Python in uwsgi
// --scgi-socket, Perl's SCGI module and the Go app as scgi.Serve workers
// behind ferry's scgi.NewHandler, and the n/a rows of the languages with no
// long-lived SCGI form.
func TestScenariosSCGI(t *testing.T) {
	peerstest.Need(t, "uwsgi", "python3", "perl", "nginx")
	if why := uwsgiPython(); why != "" {
		t.Fatal(why)
	}
	leakcheck.Check(t)
	rep, err := RunScenarios(context.Background(), Config{Apps: "../testdata/bench", Self: []string{os.Args[0]}, Only: "/scgi/",
		Duration: 150 * time.Millisecond, Warmup: 10 * time.Millisecond, Concurrency: []int{2}})
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]string) // scenario -> n/a reason, or "" for a measured row
	for _, app := range []string{"hello", "realistic"} {
		want[app+"/sh/scgi/ferry"] = "sh has no long-lived form"
		want[app+"/php/scgi/ferry"] = "PHP has no SCGI server API"
		measured := "" // the quick profile leaves the realistic app's SCGI workers to --profile full
		if app == "realistic" {
			measured = "in --profile full"
		}
		want[app+"/python/scgi/ferry+uwsgi"] = measured
		want[app+"/perl/scgi/ferry-workers"] = measured
		want[app+"/go/scgi/ferry-workers"] = measured
	}
	want["hello/python/scgi/nginx-uwsgi"] = "" // the README recipe's peer, on the hello app only in the quick profile
	// ferry serve in front of scgi.Serve of the Go app, and nginx in front
	// of it and of the minimal SCGI server: hello only in the quick profile.
	want["hello/go/scgi/ferry"] = ""
	want["hello/go/scgi/nginx-ferry-scgi"] = ""
	want["hello/go/scgi/nginx-scgi-minimal"] = ""
	for _, fw := range frameworks {
		want[fw+"/python/scgi/ferry+uwsgi"] = "" // compared with ferry's wsgi: workers
	}
	for _, s := range rep.Skipped {
		if strings.Contains(s.Scenario, "/perl/scgi/") && strings.Contains(s.Reason, "libscgi-perl") ||
			strings.Contains(s.Reason, "cannot import") && !onCI() {
			t.Logf("%s skipped: %s", s.Scenario, s.Reason)
			delete(want, s.Scenario)
			continue
		}
		t.Errorf("%s skipped: %s", s.Scenario, s.Reason)
	}
	// /proc counts CPU time in 10 ms ticks per process: a row of a short
	// run may measure 0 for its workers (uwsgi's 5 processes over 67
	// requests did, once), the measured rows together cannot.
	var workersCPU float64
	measuredRows := 0
	for _, r := range rep.Rows {
		na, ok := want[r.Scenario]
		if !ok {
			t.Errorf("unexpected row %s", r.Scenario)
			continue
		}
		delete(want, r.Scenario)
		if na != "" {
			if !strings.Contains(r.Note, na) || r.Requests != 0 {
				t.Errorf("%s: %d requests, note %q; want n/a: %q", r.Scenario, r.Requests, r.Note, na)
			}
			continue
		}
		measuredRows++
		workersCPU += float64(r.CPU.Workers)
		if r.Requests == 0 || r.Errors != 0 || r.WorkerProcs == 0 || r.CPU.Workers < 0 {
			t.Errorf("%s: %d requests, %d errors (%s), %d worker processes, %v µs worker CPU; want requests, no errors, workers measured",
				r.Scenario, r.Requests, r.Errors, r.Note, r.WorkerProcs, r.CPU.Workers)
		}
	}
	if measuredRows > 0 && workersCPU <= 0 {
		t.Errorf("the workers of %d measured SCGI rows used no CPU time; want them measured", measuredRows)
	}
	for name := range want {
		t.Errorf("no row %s", name)
	}
}

// TestScenariosFcgiwrapRecipe runs the README's fcgiwrap replacement for a
// short time: nginx fastcgi_pass to ferry serve --listen fastcgi:// with the
// cgi-bin mounted, beside nginx in front of fcgiwrap, on the sh script.
func TestScenariosFcgiwrapRecipe(t *testing.T) {
	peerstest.Need(t, "nginx", "fcgiwrap")
	leakcheck.Check(t)
	rep, err := RunScenarios(context.Background(), Config{Apps: "../testdata/bench", Self: []string{os.Args[0]}, Only: "hello/sh/cgi/nginx-",
		Duration: 150 * time.Millisecond, Warmup: 10 * time.Millisecond, Concurrency: []int{2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Skipped {
		t.Errorf("%s skipped: %s", s.Scenario, s.Reason)
	}
	want := map[string]bool{"hello/sh/cgi/nginx-ferry-fastcgi": false, "hello/sh/cgi/nginx-fcgiwrap": false}
	for _, r := range rep.Rows {
		if _, ok := want[r.Scenario]; !ok {
			t.Errorf("unexpected row %s", r.Scenario)
			continue
		}
		want[r.Scenario] = true
		// /proc counts CPU time in 10 ms ticks per process: nginx and
		// fcgiwrap over a short run's few requests may measure 0 (19
		// requests did, once, under CI); ferry under the race detector
		// cannot.
		gatewayCPU := r.CPU.Gateway > 0 || r.Scenario == "hello/sh/cgi/nginx-fcgiwrap" && r.CPU.Gateway == 0
		if r.Requests == 0 || r.Errors != 0 || !gatewayCPU {
			t.Errorf("%s: %d requests, %d errors (%s), %v µs gateway CPU; want requests, no errors, the gateway measured",
				r.Scenario, r.Requests, r.Errors, r.Note, r.CPU.Gateway)
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("no row %s", name)
		}
	}
}

// TestScenariosAppServers runs the application-server rows for a short
// time: bench.py and the Flask and Django hellos in ferry's wsgi: workers
// next to Gunicorn, bench.psgi in psgi: workers next to plackup's FastCGI
// server (each peer row paired with its ferry row), and the Perl and PHP
// scripts kept in persist= workers. A framework Debian's python3 cannot
// import skips its rows (fails under CI=true).
func TestScenariosAppServers(t *testing.T) {
	peerstest.Need(t, "python3", "gunicorn", "perl", "plackup", "php-cgi")
	leakcheck.Check(t)
	want := make(map[string]bool) // scenario -> seen
	for _, app := range []string{"hello", "realistic"} {
		want[app+"/python/wsgi/ferry-wsgi"] = false
		want[app+"/python/wsgi/ferry+gunicorn"] = false
		want[app+"/perl/cgi-persist/ferry"] = false
		want[app+"/php/cgi-persist/ferry"] = false
		want[app+"/perl/psgi/ferry-psgi"] = false
		want[app+"/perl/psgi/ferry+plackup-fcgi"] = false
	}
	for _, fw := range frameworks {
		if why := pythonImports(benchPython("../testdata/bench"), fw); why != "" {
			if onCI() {
				t.Errorf("%s; .ci/run installs it", why)
			}
			t.Log(why)
			continue
		}
		want[fw+"/python/wsgi/ferry-wsgi"] = false
		want[fw+"/python/wsgi/ferry+gunicorn"] = false
	}
	var pairs []Pair
	for _, only := range []string{"/wsgi/", "/psgi/", "/cgi-persist/"} {
		rep, err := RunScenarios(context.Background(), Config{Apps: "../testdata/bench", Self: []string{os.Args[0]}, Only: only,
			Duration: 150 * time.Millisecond, Warmup: 10 * time.Millisecond, Concurrency: []int{2}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range rep.Skipped {
			if _, ok := want[s.Scenario]; ok {
				t.Errorf("%s skipped: %s", s.Scenario, s.Reason)
			}
		}
		// /proc counts CPU time in 10 ms ticks per process: a row of a
		// short run under load may measure 0 for its workers, the rows of
		// a family together cannot.
		var workersCPU float64
		for _, r := range rep.Rows {
			if _, ok := want[r.Scenario]; !ok {
				t.Errorf("unexpected row %s", r.Scenario)
				continue
			}
			want[r.Scenario] = true
			workersCPU += float64(r.CPU.Workers)
			if r.Requests == 0 || r.Errors != 0 || r.WorkerProcs == 0 || r.CPU.Workers < 0 {
				t.Errorf("%s: %d requests, %d errors (%s), %d worker processes, %v µs worker CPU; want requests, no errors, workers measured",
					r.Scenario, r.Requests, r.Errors, r.Note, r.WorkerProcs, r.CPU.Workers)
			}
		}
		if len(rep.Rows) > 0 && workersCPU <= 0 {
			t.Errorf("%s: the workers of %d rows used no CPU time; want them measured", only, len(rep.Rows))
		}
		pairs = append(pairs, rep.Pairs...)
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("no row %s", name)
		}
	}
	for name := range want {
		var ferry string
		switch {
		case strings.HasSuffix(name, "/ferry+gunicorn"):
			ferry = strings.TrimSuffix(name, "ferry+gunicorn") + "ferry-wsgi"
		case strings.HasSuffix(name, "/ferry+plackup-fcgi"):
			ferry = strings.TrimSuffix(name, "ferry+plackup-fcgi") + "ferry-psgi"
		default:
			continue
		}
		if !slices.ContainsFunc(pairs, func(p Pair) bool { return p.Ferry == ferry && p.Other == name && p.Ratio > 0 }) {
			t.Errorf("no ratio of %s over %s in %+v", ferry, name, pairs)
		}
	}
}

// onCI reports whether the CI environment variable is true: there, .ci/run
// has installed every peer and framework.
func onCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// TestScenariosApachePHPRecipe runs the README's Apache recipe for legacy
// PHP for a short time: Apache mod_proxy_fcgi to ferry serve --listen
// fastcgi:// with a fastcgi+exec: mount of php-cgi workers, beside Apache
// mod_php, on the hello app.
func TestScenariosApachePHPRecipe(t *testing.T) {
	peerstest.Need(t, "apache2", "php-cgi")
	leakcheck.Check(t)
	rep, err := RunScenarios(context.Background(), Config{Apps: "../testdata/bench", Self: []string{os.Args[0]}, Only: "hello/php/fastcgi/apache-ferry-php-cgi",
		Duration: 300 * time.Millisecond, Warmup: 10 * time.Millisecond, Concurrency: []int{2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Skipped {
		t.Errorf("%s skipped: %s", s.Scenario, s.Reason)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Scenario != "hello/php/fastcgi/apache-ferry-php-cgi" {
		t.Fatalf("rows %+v; want hello/php/fastcgi/apache-ferry-php-cgi alone", rep.Rows)
	}
	r := rep.Rows[0]
	// ferry's 4 php-cgi workers are its children: the workers measured.
	if r.Requests == 0 || r.Errors != 0 || r.CPU.Gateway <= 0 || r.WorkerProcs != 4 {
		t.Errorf("%s: %d requests, %d errors (%s), %v µs gateway CPU, %d worker processes; want requests, no errors, the gateway and 4 workers measured",
			r.Scenario, r.Requests, r.Errors, r.Note, r.CPU.Gateway, r.WorkerProcs)
	}
}

// TestScenariosFrontIdle runs the idle-connection rows for a short time:
// ferry serve with a static root, alone and with 1,000 idle keep-alive
// connections held through the load, and nginx serving the same file with
// as many; an idle row's note must give what each connection cost the
// front and say that it still held them all after the load.
func TestScenariosFrontIdle(t *testing.T) {
	peerstest.Need(t, "nginx")
	leakcheck.Check(t)
	cfg := Config{Apps: "../testdata/bench", Self: []string{os.Args[0]}, Only: "hello/static/",
		Duration: 300 * time.Millisecond, Warmup: 10 * time.Millisecond, Concurrency: []int{2}}
	n := cfg.idleConns()
	if n < 1000 {
		t.Fatalf("the open-file limit leaves room for %d idle connections; want 1000", n)
	}
	rep, err := RunScenarios(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Skipped {
		t.Errorf("%s skipped: %s", s.Scenario, s.Reason)
	}
	var names []string
	for _, r := range rep.Rows {
		names = append(names, r.Scenario)
		if r.Requests == 0 || r.Errors != 0 || r.CPU.Gateway <= 0 {
			t.Errorf("%s: %d requests, %d errors (%s), %v µs gateway CPU; want requests, no errors, the front measured",
				r.Scenario, r.Requests, r.Errors, r.Note, r.CPU.Gateway)
		}
	}
	if want := []string{"hello/static/http/ferry", "hello/static/http/ferry-idle", "hello/static/http/nginx-idle"}; !slices.Equal(names, want) {
		t.Fatalf("rows %q; want %q", names, want)
	}
	noteRE := regexp.MustCompile(`^1000 idle keep-alive connections held through the load: ([0-9.]+) KiB each \(VmRSS at 0, 100, 500, 1000 open\), RSS ([0-9.]+) MiB with them, peak ([0-9.]+) MiB; all still open after it$`)
	for _, r := range rep.Rows[1:] {
		m := noteRE.FindStringSubmatch(r.Note)
		if m == nil {
			t.Errorf("%s: note %q; want the cost of 1000 idle connections, all still open after the load", r.Scenario, r.Note)
			continue
		}
		if rss, _ := strconv.ParseFloat(m[2], 64); rss <= 0 {
			t.Errorf("%s: RSS %v MiB with the idle connections; want the front's measured", r.Scenario, rss)
		}
	}
	want := []Pair{
		{Ferry: "hello/static/http/ferry-idle", Other: "hello/static/http/ferry", Concurrency: 2, Over: true},
		{Ferry: "hello/static/http/ferry-idle", Other: "hello/static/http/nginx-idle", Concurrency: 2},
	}
	var got []Pair
	for _, p := range rep.Pairs {
		if p.Ratio <= 0 {
			t.Errorf("%s over %s: no ratio (%s)", p.Ferry, p.Other, p.Note)
		}
		got = append(got, Pair{Ferry: p.Ferry, Other: p.Other, Concurrency: p.Concurrency, Over: p.Over})
	}
	if !slices.Equal(got, want) {
		t.Errorf("pairs %+v; want %+v", got, want)
	}
}

// TestStillOpen checks the peek that tells an idle connection still open
// from one its peer closed, on real loopback connections.
func TestStillOpen(t *testing.T) {
	l := listenLoopback(t)
	defer l.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	open, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	openPeer := <-accepted
	defer openPeer.Close()
	closed, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()
	(<-accepted).Close()
	if !stillOpen(open) {
		t.Error("an idle connection whose peer holds it: stillOpen = false")
	}
	deadline := time.Now().Add(5 * time.Second)
	for stillOpen(closed) {
		if time.Now().After(deadline) {
			t.Fatal("a connection its peer closed: stillOpen = true after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if stillOpen(&net.UnixConn{}) {
		t.Error("a connection with no socket: stillOpen = true")
	}
}
