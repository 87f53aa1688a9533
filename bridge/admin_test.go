package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/ferrygw/ferry/internal/testdir"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestParseAdminAddress(t *testing.T) {
	for _, tt := range []struct {
		in, want, network string // want "" means an error
	}{
		{"http://127.0.0.1:2020", "http://127.0.0.1:2020", "tcp"},
		{"http://[::1]:2020", "http://[::1]:2020", "tcp"},
		{"unix:///run/ferry-admin.sock", "unix:///run/ferry-admin.sock", "unix"},
		{"unix:///run/ferry-admin.sock?mode=0660", "unix:///run/ferry-admin.sock?mode=0660", "unix"},
		{"unix:///run/ferry-admin.sock?mod=0660", "", ""},
		{"unix:///run/ferry-admin.sock?mode=999", "", ""},
		{"unix://relative.sock", "", ""},
		{"127.0.0.1:2020", "", ""},
		{"http://127.0.0.1:2020/admin", "", ""},
		{"http://127.0.0.1:2020?x=1", "", ""},
		{"fastcgi://127.0.0.1:2020", "", ""},
		{"scgi+unix:///run/a.sock", "", ""},
		{"http+fd://3", "", ""},
	} {
		a, err := ParseAdminAddress(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseAdminAddress(%q) = %v; want an error", tt.in, a)
			}
			continue
		}
		if err != nil || a.String() != tt.want || a.Network() != tt.network {
			t.Errorf("ParseAdminAddress(%q) = %q (%s), %v; want %q (%s)", tt.in, a, a.Network(), err, tt.want, tt.network)
		}
	}
	// The admin address is no front or back.
	a, _ := ParseAddress("unix:///tmp/x.sock")
	if _, err := New(Config{Listen: []Address{a}}); err == nil {
		t.Error("New with a unix:// front succeeded; want an error")
	}
	cgiFront, _ := ParseAddress("cgi:")
	admin, _ := ParseAdminAddress("http://127.0.0.1:0")
	if _, err := New(Config{Listen: []Address{cgiFront}, Admin: admin}); err == nil {
		t.Error("New with a cgi: front and an admin listener succeeded; want an error")
	}
}

// adminFerry is a ferry run in this process with an admin listener.
type adminFerry struct {
	srv   *Server
	base  string // the front's URL
	admin string // the admin listener's URL
}

// startAdminFerry runs cfg (with an admin listener on a free loopback port)
// until the test ends.
func startAdminFerry(t *testing.T, cfg Config) *adminFerry {
	t.Helper()
	cfg.Version = "test"
	var err error
	if cfg.Admin, err = ParseAdminAddress("http://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s, a, _ := runFerry(t, cfg)
	return &adminFerry{srv: s, base: "http://" + a, admin: "http://" + s.AdminAddr().String()}
}

// get requests url and returns the status and body.
func get(t *testing.T, method, url string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

// scrape returns the admin listener's /metrics text.
func (f *adminFerry) scrape(t *testing.T) string {
	t.Helper()
	code, body := get(t, "GET", f.admin+"/metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	return body
}

// metricSet is a scrape, parsed: a value per series, keyed by the metric
// name and its labels in order ("name{a=x,b=y}").
type metricSet map[string]float64

func parseMetrics(t *testing.T, text string) metricSet {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing the exposition text: %v", err)
	}
	set := metricSet{}
	for name, fam := range families {
		for _, m := range fam.GetMetric() {
			var v float64
			switch fam.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				v = float64(m.GetHistogram().GetSampleCount())
			default:
				continue
			}
			set[seriesKey(name, m.GetLabel())] = v
		}
	}
	return set
}

func seriesKey(name string, labels []*dto.LabelPair) string {
	var kv []string
	for _, l := range labels {
		kv = append(kv, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

// series returns the key of name with the mount's labels and extra
// "label=value" pairs.
func series(name, mount, backend string, extra ...string) string {
	kv := append([]string{"mount=" + mount, "backend=" + backend}, extra...)
	sort.Strings(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

// A ferry with a cgi-bin, a FastCGI application, a worker pool, and two
// dead backends (FastCGI and HTTP), after a known sequence of requests.
type countersFixture struct {
	f                          *adminFerry
	cgiDir, fcgi, dead, deadHT string
	pool                       string
}

const (
	okScript    = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok'\n"
	slowScript  = "#!/bin/sh\nexec sleep 30\n"
	crashScript = "#!/bin/sh\nkill -SEGV $$\n"
	// waitScript answers, then runs until its marker file is removed.
	waitScript = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nwhile [ -e \"$QUERY_STRING\" ]; do sleep 0.02; done\necho done\n"
)

func newCountersFixture(t *testing.T) *countersFixture {
	fx := &countersFixture{cgiDir: testdir.Open(t)}
	writeExec(t, filepath.Join(fx.cgiDir, "ok.sh"), okScript)
	writeExec(t, filepath.Join(fx.cgiDir, "slow.sh"), slowScript)
	writeExec(t, filepath.Join(fx.cgiDir, "crash.sh"), crashScript)
	writeExec(t, filepath.Join(fx.cgiDir, "wait.sh"), waitScript)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &fastcgi.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "read %d", n)
	})}
	go app.Serve(l)
	t.Cleanup(func() { app.Close() })
	fx.fcgi = "fastcgi://" + l.Addr().String()
	fx.dead = "fastcgi://" + deadAddr(t)
	fx.deadHT = "http://" + deadAddr(t)
	fx.pool = "fastcgi+exec:" + testdir.Executable(t)

	cfg, err := matrixConfig("http://127.0.0.1:0", []string{
		"/cgi-bin/=cgi:" + fx.cgiDir,
		"/fcgi/=" + fx.fcgi + "?max_conns=2",
		matrixPrefix + "/=" + fx.pool + "?workers=1",
		"/dead/=" + fx.dead,
		"/http/=" + fx.deadHT,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Settings.ScriptTimeout = 2 * time.Second // slow.sh's 504; long enough for the status checks of wait.sh
	cfg.Settings.KillGrace = 200 * time.Millisecond
	fx.f = startAdminFerry(t, cfg)
	return fx
}

// run sends the known sequence of requests, each checked.
func (fx *countersFixture) run(t *testing.T) {
	base := fx.f.base
	for _, tt := range []struct {
		method, path string
		body         io.Reader
		status       int
	}{
		{"GET", "/cgi-bin/ok.sh", nil, 200},
		{"GET", "/cgi-bin/ok.sh", nil, 200},
		{"POST", "/cgi-bin/ok.sh", strings.NewReader("12345"), 200},
		{"GET", "/cgi-bin/nope.sh", nil, 404},
		{"GET", "/cgi-bin/slow.sh", nil, 504},
		{"GET", "/cgi-bin/crash.sh", nil, 502},
		{"GET", "/fcgi/a", nil, 200},
		{"POST", "/fcgi/b", struct{ io.Reader }{strings.NewReader("chunked body")}, 200}, // no length: chunked
		{"GET", matrixPrefix + "/status", nil, 201},
		{"GET", matrixPrefix + "/crash", nil, 502},
		{"GET", "/dead/x", nil, 502},
		{"GET", "/http/x", nil, 502},
	} {
		if code, body := get(t, tt.method, base+tt.path, tt.body); code != tt.status {
			t.Fatalf("%s %s = %d %q; want %d", tt.method, tt.path, code, body, tt.status)
		}
	}
}

// TestAdminMetrics runs a known sequence of requests through a real ferry
// and checks every counter it moves, exactly, and the whole exposition
// with promtool.
func TestAdminMetrics(t *testing.T) {
	fx := newCountersFixture(t)
	fx.run(t)
	cgiB, poolB := "cgi:"+fx.cgiDir, fx.pool
	// The crashed worker is reaped and restarted in the background.
	restart := series("ferry_pool_worker_restarts_total", matrixPrefix+"/", poolB, "reason=crash")
	var got metricSet
	var text string
	for deadline := time.Now().Add(10 * time.Second); ; {
		text = fx.f.scrape(t)
		got = parseMetrics(t, text)
		if got[restart] == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := map[string]float64{
		// The cgi-bin: three 200s, a 404, a timeout, a crash.
		series("ferry_requests_total", "/cgi-bin/", cgiB, "class=2xx"):                              3,
		series("ferry_requests_total", "/cgi-bin/", cgiB, "class=4xx"):                              1,
		series("ferry_requests_total", "/cgi-bin/", cgiB, "class=5xx"):                              2,
		series("ferry_requests_total", "/cgi-bin/", cgiB, "class=3xx"):                              0,
		series("ferry_requests_total", "/cgi-bin/", cgiB, "class=aborted"):                          0,
		series("ferry_request_duration_seconds", "/cgi-bin/", cgiB):                                 6,
		series("ferry_response_first_byte_seconds", "/cgi-bin/", cgiB):                              6,
		series("ferry_request_bytes_total", "/cgi-bin/", cgiB):                                      5,
		series("ferry_response_bytes_total", "/cgi-bin/", cgiB):                                     3*2 + int2f(len("404 Not Found\n")) + int2f(len("504 Gateway Timeout\n")) + int2f(len("502 Bad Gateway\n")),
		series("ferry_gateway_errors_total", "/cgi-bin/", cgiB, "status=504", "cause=timeout"):      1,
		series("ferry_gateway_errors_total", "/cgi-bin/", cgiB, "status=502", "cause=bad_response"): 1,
		series("ferry_cgi_scripts_started_total", "/cgi-bin/", cgiB):                                5,
		series("ferry_cgi_spawn_seconds", "/cgi-bin/", cgiB):                                        5,
		series("ferry_cgi_scripts_killed_total", "/cgi-bin/", cgiB, "reason=timeout"):               1,
		series("ferry_cgi_scripts_killed_total", "/cgi-bin/", cgiB, "reason=client_abort"):          0,
		series("ferry_cgi_scripts_killed_total", "/cgi-bin/", cgiB, "reason=bad_response"):          0,
		series("ferry_cgi_script_exits_total", "/cgi-bin/", cgiB, "code=0"):                         3,
		series("ferry_cgi_script_exits_total", "/cgi-bin/", cgiB, "code=SIGTERM"):                   1,
		series("ferry_cgi_script_exits_total", "/cgi-bin/", cgiB, "code=SIGSEGV"):                   1,
		series("ferry_cgi_scripts_running", "/cgi-bin/", cgiB):                                      0,
		series("ferry_requests_in_flight", "/cgi-bin/", cgiB):                                       0,
		series("ferry_queue_length", "/cgi-bin/", cgiB):                                             0,
		series("ferry_queue_wait_seconds", "/cgi-bin/", cgiB):                                       0,

		// The FastCGI application: two 200s, one with a chunked body.
		series("ferry_requests_total", "/fcgi/", fx.fcgi, "class=2xx"):                2,
		series("ferry_request_bytes_total", "/fcgi/", fx.fcgi):                        int2f(len("chunked body")),
		series("ferry_response_bytes_total", "/fcgi/", fx.fcgi):                       int2f(len("read 0") + len("read 12")),
		series("ferry_fastcgi_client_connections", "/fcgi/", fx.fcgi, "state=active"): 0,
		series("ferry_fastcgi_client_connections", "/fcgi/", fx.fcgi, "state=idle"):   1,
		series("ferry_fastcgi_client_multiplexed_requests", "/fcgi/", fx.fcgi):        0,

		// The worker pool: a 201, and a worker that died mid-request.
		series("ferry_requests_total", matrixPrefix+"/", poolB, "class=2xx"):                              1,
		series("ferry_requests_total", matrixPrefix+"/", poolB, "class=5xx"):                              1,
		series("ferry_gateway_errors_total", matrixPrefix+"/", poolB, "status=502", "cause=bad_response"): 1,
		restart: 1,
		series("ferry_pool_worker_restarts_total", matrixPrefix+"/", poolB, "reason=max_requests"): 0,
		series("ferry_pool_worker_restarts_total", matrixPrefix+"/", poolB, "reason=scale-down"):   0,
		series("ferry_pool_worker_restarts_total", matrixPrefix+"/", poolB, "reason=stop"):         0,
		series("ferry_pool_worker_restarts_total", matrixPrefix+"/", poolB, "reason=reload"):       0,
		series("ferry_pool_workers_max", matrixPrefix+"/", poolB):                                  1,
		series("ferry_pool_workers", matrixPrefix+"/", poolB, "state=busy"):                        0,
		series("ferry_pool_max_workers_reached_total", matrixPrefix+"/", poolB):                    0,

		// The dead backends.
		series("ferry_requests_total", "/dead/", fx.dead, "class=5xx"):                           1,
		series("ferry_gateway_errors_total", "/dead/", fx.dead, "status=502", "cause=connect"):   1,
		series("ferry_requests_total", "/http/", fx.deadHT, "class=5xx"):                         1,
		series("ferry_gateway_errors_total", "/http/", fx.deadHT, "status=502", "cause=connect"): 1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present: %v); want %v", k, g, ok, v)
		}
	}
	// Nothing else failed, and no other exit code showed up.
	for k, v := range got {
		if _, ok := want[k]; !ok && v != 0 && (strings.HasPrefix(k, "ferry_gateway_errors_total") || strings.HasPrefix(k, "ferry_cgi_script_exits_total")) {
			t.Errorf("unexpected %s = %v", k, v)
		}
	}
	// The worker came back: idle and starting make up for it.
	idle := got[series("ferry_pool_workers", matrixPrefix+"/", poolB, "state=idle")]
	starting := got[series("ferry_pool_workers", matrixPrefix+"/", poolB, "state=starting")]
	if idle+starting != 1 {
		t.Errorf("pool workers idle %v + starting %v; want 1", idle, starting)
	}
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if _, ok := got[name+"{}"]; !ok {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}
	checkPromtool(t, text)
}

func int2f(n int) float64 { return float64(n) }

// checkPromtool runs promtool check metrics on an exposition.
func checkPromtool(t *testing.T, text string) {
	t.Helper()
	bin := peerstest.Need(t, "promtool")["promtool"]
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestAdminStatus checks the /status JSON of a ferry exactly, with a
// request in progress listed with its script's pid under ?full.
func TestAdminStatus(t *testing.T) {
	fx := newCountersFixture(t)
	fx.run(t)
	status := func() statusReport {
		code, body := get(t, "GET", fx.f.admin+"/status?json&full", nil)
		if code != http.StatusOK {
			t.Fatalf("/status?json&full: %d", code)
		}
		var rep statusReport
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatalf("/status?json&full: %v\n%s", err, body)
		}
		return rep
	}
	// The crashed worker comes back after its restart delay.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if p := status().Mounts[2].Pool; p.Restarts["crash"] == 1 && p.Workers == 1 {
			break
		}
	}
	marker := filepath.Join(testdir.Open(t), "running")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A request that runs until the marker goes: its headers come first.
	resp, err := http.Get(fx.f.base + "/cgi-bin/wait.sh?" + marker)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rep := status()
	if time.Since(rep.StartTime) > time.Minute || rep.UptimeSeconds <= 0 {
		t.Errorf("start_time %v, uptime %v s: want a start within the minute", rep.StartTime, rep.UptimeSeconds)
	}
	// Times vary: check them, then zero them.
	req := rep.Mounts[0].Requests
	if len(req) != 1 || req[0].PID == 0 || !leakcheck.Alive(req[0].PID) || req[0].DurationSeconds < 0 {
		t.Fatalf("cgi-bin requests in progress = %+v; want wait.sh with its live pid", req)
	}
	req[0].PID, req[0].DurationSeconds = 0, 0
	workers := rep.Mounts[2].Workers
	if len(workers) != 1 || !leakcheck.Alive(workers[0].PID) || workers[0].UptimeSeconds < 0 {
		t.Fatalf("pool workers = %+v; want one live worker", workers)
	}
	rep.Mounts[2].Workers = nil
	rep.StartTime, rep.UptimeSeconds = time.Time{}, 0

	want := statusReport{Version: "test", Mounts: []mountStatus{
		{Prefix: "/cgi-bin/", Backend: "cgi:" + fx.cgiDir, Kind: "cgi", Accepted: 7, Active: 1, MaxActive: 1,
			Scripts:  &scriptsStatus{Running: 1, Started: 6},
			Requests: []requestEntry{{Method: "GET", URI: "/cgi-bin/wait.sh?" + marker, Script: filepath.Join(fx.cgiDir, "wait.sh")}}},
		{Prefix: "/fcgi/", Backend: fx.fcgi, Kind: "fastcgi", Accepted: 2, MaxActive: 1,
			Connections: &connStatus{Idle: 1}, Requests: []requestEntry{}},
		{Prefix: matrixPrefix + "/", Backend: fx.pool, Kind: "fastcgi+exec", Accepted: 2, MaxActive: 1,
			Pool: &poolStatus{MaxWorkers: 1, Workers: 1, Idle: 1,
				Restarts: map[string]uint64{"crash": 1, "max_requests": 0, "scale-down": 0, "stop": 0, "reload": 0}},
			Connections: &connStatus{}, Requests: []requestEntry{}},
		{Prefix: "/dead/", Backend: fx.dead, Kind: "fastcgi", Accepted: 1, MaxActive: 1, Connections: &connStatus{}, Requests: []requestEntry{}},
		{Prefix: "/http/", Backend: fx.deadHT, Kind: "http", Accepted: 1, MaxActive: 1, Requests: []requestEntry{}},
	}}
	if !reflect.DeepEqual(rep, want) {
		g, _ := json.MarshalIndent(rep, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("/status?json&full:\n%s\nwant:\n%s", g, w)
	}

	// Without full: no requests or workers.
	_, body := get(t, "GET", fx.f.admin+"/status?json", nil)
	var short statusReport
	if err := json.Unmarshal([]byte(body), &short); err != nil {
		t.Fatal(err)
	}
	for _, m := range short.Mounts {
		if m.Requests != nil || m.Workers != nil {
			t.Errorf("/status?json lists requests or workers:\n%s", body)
		}
	}
	os.Remove(marker)
	if b, _ := io.ReadAll(resp.Body); string(b) != "done\n" {
		t.Errorf("wait.sh answered %q", b)
	}
}

// TestAdminHealth checks /healthz and /readyz: ready when every mount has
// a live backend, 503 naming the dead ones otherwise.
func TestAdminHealth(t *testing.T) {
	fx := newCountersFixture(t)
	if code, body := get(t, "GET", fx.f.admin+"/healthz", nil); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q; want 200 ok", code, body)
	}
	code, body := get(t, "GET", fx.f.admin+"/readyz", nil)
	want := strings.Join([]string{
		"ok /cgi-bin/ cgi:" + fx.cgiDir,
		"ok /fcgi/ " + fx.fcgi,
		"ok " + matrixPrefix + "/ " + fx.pool,
		"not ready /dead/ " + fx.dead + ": dial tcp " + strings.TrimPrefix(fx.dead, "fastcgi://") + ": connect: connection refused",
		"not ready /http/ " + fx.deadHT + ": dial tcp " + strings.TrimPrefix(fx.deadHT, "http://") + ": connect: connection refused",
	}, "\n") + "\n"
	if code != http.StatusServiceUnavailable || body != want {
		t.Errorf("/readyz = %d\n%s\nwant 503\n%s", code, body, want)
	}

	// All live: ready. A cgi-bin that goes away is not, once the cached
	// answer is older than a second.
	dir := testdir.Open(t)
	cfg, err := matrixConfig("http://127.0.0.1:0", []string{"/cgi-bin/=cgi:" + dir, "/fcgi/=" + fx.fcgi})
	if err != nil {
		t.Fatal(err)
	}
	f := startAdminFerry(t, cfg)
	if code, body := get(t, "GET", f.admin+"/readyz", nil); code != 200 {
		t.Errorf("/readyz with live backends = %d\n%s", code, body)
	}
	os.Remove(dir)
	if code, _ := get(t, "GET", f.admin+"/readyz", nil); code != 200 {
		t.Errorf("/readyz right after: %d; want the cached 200", code)
	}
	time.Sleep(readyCacheFor + 50*time.Millisecond)
	if code, body := get(t, "GET", f.admin+"/readyz", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready /cgi-bin/") {
		t.Errorf("/readyz without the cgi-bin = %d\n%s; want 503 naming it", code, body)
	}
}

// TestAdminNoLeak starts and stops ferries with an admin listener, on TCP
// and on a unix socket, scraped and with a connection left open: nothing
// stays behind, the socket file included.
func TestAdminNoLeak(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "ok.sh"), okScript)
	sock := filepath.Join(t.TempDir(), "admin.sock")
	for _, admin := range []string{"http://127.0.0.1:0", "unix://" + sock + "?mode=0600"} {
		cfg, err := matrixConfig("http://127.0.0.1:0", []string{"/cgi-bin/=cgi:" + dir})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Admin, err = ParseAdminAddress(admin); err != nil {
			t.Fatal(err)
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan string, 1)
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, func(ls []net.Listener) { ready <- ls[0].Addr().String() }) }()
		front := <-ready
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, s.AdminAddr().Network(), s.AdminAddr().String())
		}}
		client := &http.Client{Transport: tr}
		if code, _ := get(t, "GET", "http://"+front+"/cgi-bin/ok.sh", nil); code != 200 {
			t.Fatalf("%s: ok.sh = %d", admin, code)
		}
		resp, err := client.Get("http://admin/metrics")
		if err != nil {
			t.Fatalf("%s: /metrics: %v", admin, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close() // the connection stays open, idle
		if strings.HasPrefix(admin, "unix:") {
			if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("admin socket: %v, %v; want mode 0600", fi, err)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run: %v", admin, err)
		}
		tr.CloseIdleConnections()
		if s.AdminAddr() != nil {
			t.Errorf("%s: AdminAddr after Run = %v; want nil", admin, s.AdminAddr())
		}
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the admin socket is left behind: %v", err)
	}
}

// TestAdminStatusPage renders /status?full in headless Chromium and checks
// the page it shows: a section per mount with its figures, and the request
// in progress.
func TestAdminStatusPage(t *testing.T) {
	bin := peerstest.Need(t, "chromium")["chromium"]
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "ok.sh"), okScript)
	writeExec(t, filepath.Join(dir, "wait.sh"), waitScript)
	cfg, err := matrixConfig("http://127.0.0.1:0", []string{"/cgi-bin/=cgi:" + dir})
	if err != nil {
		t.Fatal(err)
	}
	f := startAdminFerry(t, cfg)
	get(t, "GET", f.base+"/cgi-bin/ok.sh", nil)
	marker := filepath.Join(testdir.Open(t), "running")
	os.WriteFile(marker, nil, 0o644)
	resp, err := http.Get(f.base + "/cgi-bin/wait.sh?" + marker)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		os.Remove(marker)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	profile := t.TempDir()
	shot := filepath.Join(t.TempDir(), "status.png")
	chromium := func(args ...string) []byte {
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + profile}, args...)
		cmd := exec.CommandContext(ctx, bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
		}
		return out
	}
	dom := string(chromium("--dump-dom", f.admin+"/status?full"))
	for _, want := range []string{
		"<h1>ferry test</h1>",
		`<section class="mount" data-prefix="/cgi-bin/">`,
		"<tr><th>accepted</th><td class=\"n\">2</td></tr>",
		"<tr><th>scripts running</th><td class=\"n\">1</td></tr>",
		"<tr><th>scripts started</th><td class=\"n\">2</td></tr>",
		"<td>GET</td><td><code>/cgi-bin/wait.sh?" + marker + "</code></td><td><code>" + filepath.Join(dir, "wait.sh") + "</code></td>",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the status page lacks %q; chromium shows:\n%s", want, dom)
		}
	}
	chromium("--screenshot="+shot, "--window-size=1024,768", f.admin+"/status")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("screenshot of the status page: %v, %v", fi, err)
	}
}

// TestAdminQueueAndAbort checks the queue figures and the scripts killed
// when their client goes away: a cgi-bin with one script slot and a pool of
// one worker, each held by a request while a second one waits.
func TestAdminQueueAndAbort(t *testing.T) {
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "wait.sh"), waitScript)
	pool := "fastcgi+exec:" + testdir.Executable(t)
	cfg, err := matrixConfig("http://127.0.0.1:0", []string{"/cgi-bin/=cgi:" + dir, matrixPrefix + "/=" + pool + "?workers=1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Settings.MaxConcurrent = 1
	f := startAdminFerry(t, cfg)
	cgiB := "cgi:" + dir
	marks := t.TempDir()
	mark := func(name string) string {
		p := filepath.Join(marks, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	waitFor := func(what string, ok func(metricSet) bool) metricSet {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			m := parseMetrics(t, f.scrape(t))
			if ok(m) {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 10s", what)
			}
		}
	}
	type result struct {
		code int
		body string
	}
	fetch := func(ctx context.Context, path string) chan result {
		c := make(chan result, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", f.base+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				c <- result{0, err.Error()}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c <- result{resp.StatusCode, string(b)}
		}()
		return c
	}

	// The cgi-bin: a script holds the slot; a second request queues; the
	// first client goes away, its script is killed, the second runs.
	held := mark("held")
	ctx, cancel := context.WithCancel(context.Background())
	first := fetch(ctx, "/cgi-bin/wait.sh?"+held)
	waitFor("running script", func(m metricSet) bool { return m[series("ferry_cgi_scripts_running", "/cgi-bin/", cgiB)] == 1 })
	queued := mark("queued")
	second := fetch(context.Background(), "/cgi-bin/wait.sh?"+queued)
	m := waitFor("queued request", func(m metricSet) bool { return m[series("ferry_queue_length", "/cgi-bin/", cgiB)] == 1 })
	if v := m[series("ferry_requests_in_flight", "/cgi-bin/", cgiB)]; v != 2 {
		t.Errorf("in flight with one queued = %v; want 2", v)
	}
	cancel()
	<-first
	waitFor("second script", func(m metricSet) bool {
		return m[series("ferry_cgi_scripts_started_total", "/cgi-bin/", cgiB)] == 2 && m[series("ferry_queue_length", "/cgi-bin/", cgiB)] == 0
	})
	os.Remove(queued)
	if r := <-second; r.code != 200 || r.body != "done\n" {
		t.Errorf("the queued request = %d %q; want 200 done", r.code, r.body)
	}

	// The pool: a request holds its one worker (until its mark file
	// appears); a second waits for it.
	stream := filepath.Join(marks, "stream")
	one := fetch(context.Background(), matrixPrefix+"/stream?mark="+stream)
	// The second starts once the first holds the worker: started
	// together, either could get it.
	waitFor("busy worker", func(m metricSet) bool {
		return m[series("ferry_pool_workers", matrixPrefix+"/", pool, "state=busy")] == 1
	})
	two := fetch(context.Background(), matrixPrefix+"/status")
	m = waitFor("request waiting for the worker", func(m metricSet) bool {
		return m[series("ferry_queue_length", matrixPrefix+"/", pool)] == 1
	})
	if v := m[series("ferry_pool_workers", matrixPrefix+"/", pool, "state=busy")]; v != 1 {
		t.Errorf("busy workers = %v; want 1", v)
	}
	mark("stream")
	if r := <-one; r.code != 200 {
		t.Errorf("the streaming request = %d %q", r.code, r.body)
	}
	if r := <-two; r.code != 201 {
		t.Errorf("the waiting request = %d %q", r.code, r.body)
	}

	m = parseMetrics(t, f.scrape(t))
	for k, v := range map[string]float64{
		series("ferry_cgi_scripts_killed_total", "/cgi-bin/", cgiB, "reason=client_abort"): 1,
		series("ferry_cgi_scripts_killed_total", "/cgi-bin/", cgiB, "reason=timeout"):      0,
		series("ferry_cgi_script_exits_total", "/cgi-bin/", cgiB, "code=SIGTERM"):          1,
		series("ferry_cgi_script_exits_total", "/cgi-bin/", cgiB, "code=0"):                1,
		series("ferry_queue_wait_seconds", "/cgi-bin/", cgiB):                              1,
		series("ferry_queue_length", "/cgi-bin/", cgiB):                                    0,
		series("ferry_requests_in_flight", "/cgi-bin/", cgiB):                              0,
		series("ferry_queue_wait_seconds", matrixPrefix+"/", pool):                         1,
		series("ferry_pool_max_workers_reached_total", matrixPrefix+"/", pool):             1,
		series("ferry_requests_total", matrixPrefix+"/", pool, "class=2xx"):                2,
	} {
		if m[k] != v {
			t.Errorf("%s = %v; want %v", k, m[k], v)
		}
	}
	rep := f.srv.admin.report(false)
	if c := rep.Mounts[0]; c.MaxQueue != 1 || c.MaxReached != 1 || c.MaxActive != 2 || c.Accepted != 2 {
		t.Errorf("cgi-bin status: max queue %d, max reached %d, max active %d, accepted %d; want 1, 1, 2, 2", c.MaxQueue, c.MaxReached, c.MaxActive, c.Accepted)
	}
}

// TestClientGoneBeforeAnswer: a client that closes its connection while
// a CGI script or a FastCGI application works on its request never gets
// the answer, and the access log and ferry_requests_total say so: 499
// (nginx's "client closed request"), aborted, counted "aborted". They
// said what the handler wrote into the void: the CGI runner's 503 (a 5xx
// in the metrics, for a client that left), and for FastCGI a 200 with 0
// bytes.
func TestClientGoneBeforeAnswer(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "sleep.sh"), "#!/bin/sh\nsleep 5\nprintf 'Content-Type: text/plain\\n\\nlate\\n'\n")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &fastcgi.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done(): // ferry aborted the request
		case <-time.After(5 * time.Second):
			io.WriteString(w, "late")
		}
	})}
	go app.Serve(l)
	t.Cleanup(func() { app.Close() })
	fcgi := "fastcgi://" + l.Addr().String()
	cfg := Config{Mounts: []Mount{mustMount(t, "/cgi-bin/=cgi:"+dir), mustMount(t, "/fcgi/="+fcgi)}, AccessLog: true}
	cfg.Version = "test"
	if cfg.Admin, err = ParseAdminAddress("http://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s, addr, logs := runFerry(t, cfg)
	f := &adminFerry{srv: s, admin: "http://" + s.AdminAddr().String()}
	for _, tt := range []struct{ path, backend, handlerStatus string }{
		{"/cgi-bin/sleep.sh", "cgi:" + dir, `"handler_status":503`},
		{"/fcgi/x", fcgi, ""},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET "+tt.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(300 * time.Millisecond)
		c.Close()
		var lines []string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if lines = logs.Lines(`"path":"`+tt.path+`"`, `"message":"request"`); len(lines) > 0 {
				break
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], `"status":499`) || !strings.Contains(lines[0], `"aborted":true`) ||
			!strings.Contains(lines[0], "the client closed the connection") || !strings.Contains(lines[0], tt.handlerStatus) {
			t.Errorf("access log %q; want one line with status 499, aborted, the client closed, %s", lines, tt.handlerStatus)
		}
		got := parseMetrics(t, f.scrape(t))
		mount := tt.path[:strings.LastIndex(tt.path, "/")+1]
		for class, want := range map[string]float64{"aborted": 1, "2xx": 0, "5xx": 0} {
			if k := series("ferry_requests_total", mount, tt.backend, "class="+class); got[k] != want {
				t.Errorf("%s = %v; want %v", k, got[k], want)
			}
		}
	}
}
