package benchmarks

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestPairs checks the comparisons the reports print: the ratio, its range
// from the runs' extremes, "within noise" when the runs overlap, and what a
// single run or a row without numbers gives.
func TestPairs(t *testing.T) {
	row := func(name string, runs int, med, lo, hi float64) Row {
		return Row{Scenario: name, Concurrency: 8, Runs: runs, Requests: 1000, RPS: Summary{Median: med, Min: lo, Max: hi, N: runs}}
	}
	peer := func(r Row) Row { r.Peer, r.VS = true, "ferry"; return r }
	failed := func(r Row) Row { r.Errors = r.Requests; return r }
	cases := []struct {
		name             string
		ferry, other     Row
		ratio, low, high float64
		noise            bool
		verdict, note    string
	}{
		{"apart", row("ferry", 3, 200, 190, 210), peer(row("peer", 3, 100, 95, 105)),
			2, 190.0 / 105, 210.0 / 95, false, "ferry faster", ""},
		{"slower", row("ferry", 3, 50, 48, 52), peer(row("peer", 3, 100, 95, 105)),
			0.5, 48.0 / 105, 52.0 / 95, false, "ferry slower", ""},
		{"overlapping runs", row("ferry", 3, 104, 96, 110), peer(row("peer", 3, 100, 95, 105)),
			1.04, 96.0 / 105, 110.0 / 95, true, "within noise", ""},
		{"one run, near", row("ferry", 1, 96, 96, 96), peer(row("peer", 1, 100, 100, 100)),
			0.96, 0, 0, false, "about even", "one run"},
		{"one run, apart", row("ferry", 1, 187, 187, 187), peer(row("peer", 1, 100, 100, 100)),
			1.87, 0, 0, false, "ferry faster", "one run"},
		{"peer failed", row("ferry", 3, 100, 95, 105), failed(peer(row("peer", 3, 0, 0, 0))),
			0, 0, 0, false, "—", "peer has no numbers: every request failed"},
		{"ferry n/a", Row{Scenario: "ferry", Concurrency: 8, Note: "sh has no long-lived form"}, peer(row("peer", 3, 100, 95, 105)),
			0, 0, 0, false, "—", "ferry has no numbers: sh has no long-lived form"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := pairs([]Row{tc.ferry, tc.other})
			if len(ps) != 1 {
				t.Fatalf("%d pairs; want 1: %+v", len(ps), ps)
			}
			p := ps[0]
			near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
			if !near(p.Ratio, tc.ratio) || !near(p.Low, tc.low) || !near(p.High, tc.high) || p.WithinNoise != tc.noise {
				t.Errorf("ratio %v (%v–%v) noise %v; want %v (%v–%v) noise %v", p.Ratio, p.Low, p.High, p.WithinNoise, tc.ratio, tc.low, tc.high, tc.noise)
			}
			if p.Verdict() != tc.verdict {
				t.Errorf("verdict %q; want %q", p.Verdict(), tc.verdict)
			}
			if !strings.HasPrefix(p.Note, tc.note) || (tc.note == "") != (p.Note == "") {
				t.Errorf("note %q; want it to begin %q", p.Note, tc.note)
			}
		})
	}
}

// TestNextToReference checks the row order: a row with vs, over or beside
// right after the row it names; and the pairs: a vs row with the ferry row
// it names, an over row (a hop) as the ferry side against the app it names,
// beside rows not at all.
func TestNextToReference(t *testing.T) {
	list := []scenario{
		{app: "a", lang: "sh", mode: "cgi", gateway: "nginx-ferry-fastcgi", beside: "sh/cgi/ferry"},
		{app: "a", lang: "sh", mode: "cgi", gateway: "ferry"},
		{app: "a", lang: "go", mode: "fastcgi", gateway: "ferry", over: "go/http/net/http"},
		{app: "a", lang: "go", mode: "http", gateway: "net/http"},
		{app: "a", lang: "sh", mode: "cgi", gateway: "apache-mod_cgid", peer: true, vs: "sh/cgi/ferry"},
		{app: "a", lang: "sh", mode: "cgi", gateway: "nginx-fcgiwrap", peer: true, vs: "sh/cgi/nginx-ferry-fastcgi"},
		{app: "a", lang: "go", mode: "cgi", gateway: "net/http/cgi", peer: true, vs: "go/cgi/missing"},
	}
	var got []string
	var rows []Row
	for _, s := range nextToReference(list) {
		got = append(got, s.name())
		r := s.row(8, "")
		r.Runs, r.Requests, r.RPS = 1, 10, Summary{Median: 10, Min: 10, Max: 10, N: 1}
		if s.over != "" {
			r.RPS = Summary{Median: 4, Min: 4, Max: 4, N: 1} // the hop keeps 0.4 of the direct row's
		}
		rows = append(rows, r)
	}
	want := []string{"a/sh/cgi/ferry", "a/sh/cgi/nginx-ferry-fastcgi", "a/sh/cgi/nginx-fcgiwrap", "a/sh/cgi/apache-mod_cgid", "a/go/http/net/http", "a/go/fastcgi/ferry", "a/go/cgi/net/http/cgi"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var ps []string
	for _, p := range pairs(rows) {
		ps = append(ps, fmt.Sprintf("%s vs %s %.1f over=%v", p.Ferry, p.Other, p.Ratio, p.Over))
	}
	wantPairs := []string{"a/sh/cgi/nginx-ferry-fastcgi vs a/sh/cgi/nginx-fcgiwrap 1.0 over=false", "a/sh/cgi/ferry vs a/sh/cgi/apache-mod_cgid 1.0 over=false",
		"a/go/fastcgi/ferry vs a/go/http/net/http 0.4 over=true"}
	if strings.Join(ps, "; ") != strings.Join(wantPairs, "; ") {
		t.Errorf("pairs %q; want %q", ps, wantPairs)
	}
}

// TestOverviewHop checks the overview's sentence on the FastCGI hop
// through ferry: its req/s and what it leaves of the Go app's served
// directly; the other hops stay in the table of pairs.
func TestOverviewHop(t *testing.T) {
	row := func(name, over string, rps float64) Row {
		parts := strings.Split(name, "/")
		return Row{Scenario: name, App: parts[0], Lang: parts[1], Mode: parts[2], Gateway: parts[3], Over: over, Concurrency: 8,
			Runs: 1, Requests: 100, RPS: Summary{Median: rps, Min: rps, Max: rps, N: 1}}
	}
	rep := &Report{Load: LoadSpec{Concurrency: []int{8}}, Rows: []Row{
		row("hello/go/http/net/http", "", 10000),
		row("hello/go/http/ferry-http", "hello/go/http/net/http", 3000),
		row("hello/go/fastcgi/ferry", "hello/go/http/net/http", 4000),
	}}
	rep.Pairs = pairs(rep.Rows)
	got := rep.Overview()
	want := "At concurrency 8: ferry in front of the Go app's fastcgi.Serve serves 4000 req/s, 0.40× the Go app on net/http directly."
	if got != want {
		t.Errorf("overview:\n%s\nwant:\n%s", got, want)
	}
}

// TestVerdictOver checks the words of a pair whose row adds to another (a
// hop, idle connections): what it costs, not "ferry slower".
func TestVerdictOver(t *testing.T) {
	for _, c := range []struct {
		p    Pair
		want string
	}{
		{Pair{Over: true, Ratio: 0.4, Note: "one run: no spread (--repeat 3 shows it)"}, "costs 60% of the req/s"},
		{Pair{Over: true, Ratio: 0.98, Note: "one run: no spread (--repeat 3 shows it)"}, "about even"},
		{Pair{Over: true, Ratio: 1.2, Low: 1.1, High: 1.3}, "no cost seen"},
		{Pair{Over: true, Ratio: 0.9, Low: 0.8, High: 1.05, WithinNoise: true}, "within noise"},
		{Pair{Ratio: 0.4, Note: "one run: no spread (--repeat 3 shows it)"}, "ferry slower"},
	} {
		if got := c.p.verdict(); got != c.want {
			t.Errorf("verdict of %+v = %q; want %q", c.p, got, c.want)
		}
	}
}
