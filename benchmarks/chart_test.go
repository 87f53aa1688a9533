package benchmarks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// layoutScript measures every text of every chart in the page it is put
// in, with the browser's layout: each must lie inside its chart and the
// viewport, and no two of one chart may overlap. It writes its findings as
// JSON into <pre id="layout">, which --dump-dom shows.
const layoutScript = `<script>
(function () {
  var out = {charts: 0, texts: 0, problems: []};
  var vw = document.documentElement.clientWidth;
  document.querySelectorAll("svg[id^=chart-]").forEach(function (svg) {
    out.charts++;
    var box = svg.getBoundingClientRect();
    var rects = [];
    svg.querySelectorAll("text").forEach(function (t) {
      if (t.getBBox().width === 0) { return; }
      out.texts++;
      var r = t.getBoundingClientRect();
      var name = svg.id + " " + JSON.stringify(t.textContent);
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5) {
        out.problems.push(name + " outside its chart");
      }
      if (r.left < 0 || r.right > vw) {
        out.problems.push(name + " outside the viewport");
      }
      rects.forEach(function (o) {
        var ox = Math.min(r.right, o.r.right) - Math.max(r.left, o.r.left);
        var oy = Math.min(r.bottom, o.r.bottom) - Math.max(r.top, o.r.top);
        if (ox > 1 && oy > 1) { out.problems.push(name + " overlaps " + JSON.stringify(o.text)); }
      });
      rects.push({r: r, text: t.textContent});
    });
  });
  var pre = document.createElement("pre");
  pre.id = "layout";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>`

// chromiumArgs are the flags every headless Chromium run here gets.
func chromiumArgs(profile string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + profile}
}

// layoutReport is a report with what makes charts hard to lay out: rows
// three decades apart, long names, pairs (a hop through ferry among them),
// an n/a row and a failed one.
func layoutReport() *Report {
	rep := sampleReport()
	var h histogram
	for i := range int64(100) {
		h.Record(20_000 + i*100)
	}
	worker := Row{Scenario: "hello/php/fastcgi/ferry-php-fpm", App: "hello", Lang: "php", Mode: "fastcgi", Gateway: "ferry-php-fpm", Concurrency: 1}
	worker.fill(&h, []float64{21000, 19000, 20500}, 1000, 1000, nil, time.Second, time.Second, time.Second, treeUsage{})
	nginx := worker
	nginx.Scenario, nginx.Gateway, nginx.Peer, nginx.VS = "hello/php/fastcgi/nginx-php-fpm", "nginx-php-fpm", true, worker.Scenario
	nginx.RPS = summarize([]float64{20000, 22000, 21500})
	newconn := worker
	newconn.Scenario, newconn.Gateway, newconn.VS = "hello/php/fastcgi/ferry-php-fpm-newconn", "ferry-php-fpm-newconn", worker.Scenario
	newconn.RPS = summarize([]float64{12000, 12500, 11800})
	failed := Row{Scenario: "hello/php/module/apache-mod_php", App: "hello", Lang: "php", Mode: "module", Gateway: "apache-mod_php", Peer: true,
		VS: worker.Scenario, Concurrency: 1, Runs: 1, Requests: 500, Errors: 500, ErrorKind: map[string]int64{"status 502": 500}}
	rep.Rows = append(rep.Rows, worker, newconn, nginx, failed)
	// A hop through ferry in front of the Go app, right after the app
	// served directly (5,250 req/s at concurrency 1).
	hop := worker
	hop.Scenario, hop.Lang, hop.Gateway, hop.Over = "hello/go/fastcgi/ferry", "go", "ferry", "hello/go/http/net/http"
	hop.RPS = summarize([]float64{2300, 2362.5, 2400})
	at := slices.IndexFunc(rep.Rows, func(r Row) bool { return r.Scenario == hop.Over && r.Concurrency == hop.Concurrency })
	rep.Rows = slices.Insert(rep.Rows, at+1, hop)
	markFailed(rep.Rows)
	rep.Pairs = pairs(rep.Rows)
	return rep
}

// TestChartsLayoutInChromium renders the HTML report in headless Chromium
// and checks, with the browser's own text boxes, that every chart's labels,
// values and legend lie inside the chart and the viewport and do not
// overlap; it saves a screenshot of the throughput, latency and startup
// charts in the test's directory and copies them to /tmp/bench-shots.
func TestChartsLayoutInChromium(t *testing.T) {
	chromium := lookChromium(t)
	rep := layoutReport()
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"higher is better", "lower is better", "requests per second (log scale)", "latency in milliseconds",
		`class="na"`, "every request failed", "within noise", "ferry 0.95× (within noise)", "ferry 1.71×", "0.45× net/http", "worker RSS MiB"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	if strings.Contains(page, ">0 req/s<") {
		t.Errorf("HTML report charts a row without numbers as 0 req/s")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	file := filepath.Join(dir, "report.html")
	if err := os.WriteFile(file, []byte(strings.Replace(page, "</body>", layoutScript+"</body>", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The viewport is as wide as the widest chart plus the page's margins.
	args := append(chromiumArgs(filepath.Join(dir, "profile")), "--window-size=1100,900", "--dump-dom", "file://"+file)
	cmd := exec.CommandContext(ctx, chromium, args...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`<pre id="layout">([^<]*)</pre>`).FindSubmatch(dom)
	if m == nil {
		t.Fatalf("the layout script left no result in the DOM")
	}
	var res struct {
		Charts, Texts int
		Problems      []string
	}
	if err := json.Unmarshal([]byte(template.HTMLEscapeString(string(m[1]))), &res); err != nil {
		// The DOM escapes &, < and > in text; JSON holds none of them
		// but quotes, which stay.
		if err := json.Unmarshal(bytes.ReplaceAll(m[1], []byte("&amp;"), []byte("&")), &res); err != nil {
			t.Fatalf("layout result %q: %v", m[1], err)
		}
	}
	if res.Charts != 4 || res.Texts < 40 {
		t.Errorf("layout checked %d charts, %d texts; want 4 charts and their texts", res.Charts, res.Texts)
	}
	for _, p := range res.Problems {
		t.Errorf("layout: %s", p)
	}

	shots := "/tmp/bench-shots"
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Logf("no %s: %v", shots, err)
		shots = ""
	}
	for _, c := range []struct {
		name  string
		chart template.HTML
	}{{"throughput", throughputChart(rep)}, {"latency", latencyChart(rep)}, {"startup", startupChart(rep)}} {
		w, h := svgSize(t, string(c.chart))
		html := filepath.Join(dir, c.name+".html")
		doc := `<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{margin:10px;font-family:system-ui,sans-serif}</style></head><body>` + string(c.chart) + `</body></html>`
		if err := os.WriteFile(html, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		png := filepath.Join(dir, c.name+".png")
		args := append(chromiumArgs(filepath.Join(dir, "profile-"+c.name)), "--hide-scrollbars",
			fmt.Sprintf("--window-size=%d,%d", w+20, h+20), "--screenshot="+png, "file://"+html)
		cmd := exec.CommandContext(ctx, chromium, args...)
		cmd.WaitDelay = 5 * time.Second
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("chromium screenshot of %s: %v\n%s", c.name, err, out)
		}
		b, err := os.ReadFile(png)
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Fatalf("screenshot of %s: no PNG (%v)", c.name, err)
		}
		if shots != "" {
			if err := os.WriteFile(filepath.Join(shots, c.name+".png"), b, 0o644); err != nil {
				t.Logf("copying the screenshot: %v", err)
			}
		}
	}
}

// svgSize returns the width and height attributes of the <svg> element
// that starts s.
func svgSize(t *testing.T, s string) (w, h int) {
	m := regexp.MustCompile(`<svg [^>]*width="(\d+)" height="(\d+)"`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("chart has no width and height: %.80s", s)
	}
	fmt.Sscan(m[1], &w)
	fmt.Sscan(m[2], &h)
	return w, h
}
