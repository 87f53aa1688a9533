package benchmarks

import (
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wrkDuration is how long one wrk run lasts.
const wrkDuration = 5 * time.Second

// wrkTimeout is how long wrk waits for a response before it counts a
// timeout (its default is 2s): per-request php-cgi takes some 50 ms on a
// 2-core machine, and 16 clients queued in front of it wait longer than
// 2s when a neighbour loads the machine; a slow answer is slow, not an
// error.
const wrkTimeout = 10 * time.Second

var (
	wrkReqs    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)`)
	wrkErrors  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: .*`)
	wrkCount   = regexp.MustCompile(`(\d+) requests in `)
)

// loadResult is what one load run measured.
type loadResult struct {
	RPS      float64 // requests per second
	P50, P99 float64 // latency percentiles, ms; zero from the Go load generator
	Requests int64   // requests completed
}

// loadWrk drives url with wrk -t2 -c16 (as in shared/PEERS.md) for a fixed
// time, once, and reports req/s and latency percentiles. Where wrk is not
// installed it falls back to the in-process Go load generator. wrk runs in
// its own process, so the gateway's own CPU cost is not diluted by a Go
// client's; compare req/s within one run.
func loadWrk(b *testing.B, url, want string) loadResult {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Logf("wrk not installed; using the in-process Go load generator")
		rps := load(b, url, want)
		return loadResult{RPS: rps, Requests: int64(b.N)}
	}
	if err := fetch(newClient(), url, want); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	out, err := exec.Command(wrk, "-t2", "-c16", "-d"+wrkDuration.String(), "--timeout", wrkTimeout.String(), "--latency", url).CombinedOutput()
	b.StopTimer()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	m := wrkReqs.FindSubmatch(out)
	if m == nil {
		b.Fatalf("wrk output without Requests/sec:\n%s", out)
	}
	if e := wrkErrors.Find(out); e != nil {
		b.Errorf("wrk saw errors: %s\n%s", e, out)
	}
	var res loadResult
	res.RPS, _ = strconv.ParseFloat(string(m[1]), 64)
	if c := wrkCount.FindSubmatch(out); c != nil {
		res.Requests, _ = strconv.ParseInt(string(c[1]), 10, 64)
	}
	b.ReportMetric(res.RPS, "req/s")
	for _, l := range wrkLatency.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(l[2]), 64)
		switch string(l[3]) {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		b.ReportMetric(v, "p"+string(l[1])+"-ms")
		if string(l[1]) == "50" {
			res.P50 = v
		} else {
			res.P99 = v
		}
	}
	b.ReportMetric(0, "ns/op") // one fixed-time run: ns/op means nothing here
	if strings.Contains(string(out), "Socket errors") {
		b.Logf("%s", out)
	}
	return res
}

func newClient() *http.Client { return &http.Client{Transport: &http.Transport{}} }
