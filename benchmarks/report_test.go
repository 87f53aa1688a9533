package benchmarks

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
)

// sampleReport is a report with two concurrency levels, a peer, an n/a row
// and a startup breakdown, from known numbers.
func sampleReport() *Report {
	rep := &Report{Schema: schemaVersion, Command: []string{"ferry", "bench"}, Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Machine: describeMachine(), Profile: "full", Load: LoadSpec{Mode: "closed", Concurrency: []int{1, 8}, DurationS: 1, Repeat: 2}}
	for _, sc := range []struct {
		name, lang, mode, gw string
		peer                 bool
		base                 int64
	}{
		{"hello/sh/cgi/ferry", "sh", "cgi", "ferry", false, 5_000_000},
		{"hello/go/http/net/http", "go", "http", "net/http", false, 200_000},
		{"hello/sh/cgi/apache-mod_cgid", "sh", "cgi", "apache-mod_cgid", true, 7_000_000},
	} {
		for _, c := range []int{1, 8} {
			var h histogram
			for i := range int64(1000) {
				h.Record(sc.base + i*1000)
			}
			r := Row{Scenario: sc.name, App: "hello", Lang: sc.lang, Mode: sc.mode, Gateway: sc.gw, Peer: sc.peer, Concurrency: c}
			if sc.peer {
				r.VS = "hello/sh/cgi/ferry"
			}
			r.fill(&h, []float64{float64(c) * 1e9 / float64(sc.base), float64(c) * 1.1e9 / float64(sc.base)}, 1000, 990,
				map[string]int64{"status 502": 10}, time.Second, 2*time.Second, time.Second/2, treeUsage{Procs: 2, PeakRSSKiB: 1024, TotalRSSKiB: 2048})
			rep.Rows = append(rep.Rows, r)
		}
	}
	rep.Rows = append(rep.Rows, Row{Scenario: "hello/sh/fastcgi/ferry", App: "hello", Lang: "sh", Mode: "fastcgi", Concurrency: 1, Note: "sh has no long-lived form"})
	rep.Startup = []Startup{{App: "hello", Lang: "sh", CGIMs: 5.5, WorkerMs: 0.7, WorkerRow: "hello/go/http/net/http", StartupMs: 4.8, RawExecMs: 2.1}}
	rep.Skipped = []Skip{{Scenario: "hello/php/fastcgi/nginx-php-fpm", Reason: "php-fpm is not installed"}}
	rep.Pairs = pairs(rep.Rows)
	return rep
}

func TestRowNumbers(t *testing.T) {
	r := sampleReport().Rows[0]
	// 1000 values 5.000 ms .. 5.999 ms: p50 is the 500th, 5.499 ms.
	if r.Latency.P50 < 5.499 || r.Latency.P50 > 5.499*(1+relativeError) || r.Latency.Max != 5.999 {
		t.Errorf("p50 %v, max %v; want 5.499, 5.999", r.Latency.P50, r.Latency.Max)
	}
	if r.CPU.Gateway != 1000 || r.CPU.Workers != 2000 || r.CPU.LoadGen != 500 {
		t.Errorf("CPU per request = %+v; want 1000, 2000, 500 µs", r.CPU)
	}
	if r.Errors != 10 || r.Runs != 2 || r.RPS.Median != (200+220)/2 {
		t.Errorf("errors %d, runs %d, rps %v; want 10, 2, 210", r.Errors, r.Runs, r.RPS.Median)
	}
}

func TestJSONRoundTripAndCompare(t *testing.T) {
	rep := sampleReport()
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != len(rep.Rows) || back.Rows[0].Latency != rep.Rows[0].Latency || back.Startup[0] != rep.Startup[0] {
		t.Errorf("JSON round trip changed the report")
	}
	for _, field := range []string{`"schema": 1`, `"rps"`, `"p99_9"`, `"cpu_us_per_req"`, `"worker_total_rss_kib"`, `"startup_ms"`, `"raw_exec_ms"`, `"skipped"`, `"machine"`, `"command"`} {
		if !strings.Contains(buf.String(), field) {
			t.Errorf("JSON has no %s", field)
		}
	}
	b2 := *back
	b2.Rows = append([]Row(nil), back.Rows...)
	b2.Rows[0].RPS.Median *= 2
	var out bytes.Buffer
	if err := WriteCompare(&out, rep, &b2); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "2.00x") || !strings.Contains(out.String(), "1.00x") {
		t.Errorf("compare output lacks the 2.00x and 1.00x ratios:\n%s", out.String())
	}
	if _, err := ReadReport(strings.NewReader(`{"schema": 99}`)); err == nil {
		t.Errorf("ReadReport accepted schema 99")
	}
}

func TestTableAndCSV(t *testing.T) {
	rep := sampleReport()
	var tb bytes.Buffer
	if err := rep.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hello/sh/cgi/ferry", "5.50", "n/a", "sh has no long-lived form", "Startup cost", "4.80", "Skipped:", "php-fpm is not installed", "Machine:", "Command: ferry bench"} {
		if !strings.Contains(tb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tb.String())
		}
	}
	var cb bytes.Buffer
	if err := rep.WriteCSV(&cb); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&cb).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(rep.Rows)+1 || len(recs[0]) != len(csvHeader) {
		t.Fatalf("CSV has %d lines of %d fields; want %d of %d", len(recs), len(recs[0]), len(rep.Rows)+1, len(csvHeader))
	}
	if recs[1][0] != "hello/sh/cgi/ferry" || recs[1][len(csvHeader)-3] != "4.800" {
		t.Errorf("CSV line 1 = %v; want the sh CGI row with startup 4.800", recs[1])
	}
}

// TestHTMLRendersInChromium writes a report and loads it in headless
// Chromium: the DOM it renders must hold the four charts with their series.
func TestHTMLRendersInChromium(t *testing.T) {
	leakcheck.Check(t)
	rep := sampleReport()
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, bad := range []string{"<script src", "<link", "@import", "url(http"} {
		if strings.Contains(page, bad) {
			t.Errorf("HTML report loads something from elsewhere: %q", bad)
		}
	}
	chromium := lookChromium(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, append(chromiumArgs(filepath.Join(dir, "profile")), "--dump-dom", "file://"+file)...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	for _, id := range []string{chartThroughput, chartLatency, chartConcurrency, chartStartup} {
		i := bytes.Index(dom, []byte(`<svg id="`+id+`"`))
		if i < 0 {
			t.Errorf("rendered DOM has no <svg id=%q>", id)
			continue
		}
		end := bytes.Index(dom[i:], []byte("</svg>"))
		if end < 0 || !bytes.Contains(dom[i:i+end], []byte("<rect")) && !bytes.Contains(dom[i:i+end], []byte("<polyline")) {
			t.Errorf("chart %s has no bars or lines", id)
		}
	}
	// The latency chart is percentile bars now; the concurrency chart keeps
	// a line per scenario.
	if n := bytes.Count(dom, []byte(`class="series"`)); n != 3 {
		t.Errorf("rendered DOM has %d series lines; want 3 (3 scenarios in the concurrency chart)", n)
	}
}

// lookChromium returns the path of Chromium, or skips the test (fails
// under CI=true, where .ci/run installs it).
func lookChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; CI must have it (Debian package chromium)")
	}
	t.Skip("chromium is not installed (Debian package chromium): the HTML report is not checked in a browser")
	return ""
}
