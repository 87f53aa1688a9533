package main

import (
	"bytes"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ferrygw/ferry/benchmarks"
	"github.com/ferrygw/ferry/internal/leakcheck"
)

func TestBenchTargetJSONAndCompare(t *testing.T) {
	// os/signal starts its watcher goroutine once per process, for good.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	signal.Stop(c)
	leakcheck.Check(t)
	script, _ := filepath.Abs("../../testdata/bench/bench.sh")
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "cgi:" + script, "--requests", "20", "--concurrency", "2", "--warmup", "1ms", "--format", "json"}, &out, &errb); code != 0 {
		t.Fatalf("ferry bench exited %d: %s", code, errb.String())
	}
	rep, err := benchmarks.ReadReport(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Requests != 20 || rep.Rows[0].Errors != 0 || rep.Rows[0].Concurrency != 2 {
		t.Fatalf("report rows = %+v; want one row of 20 requests at concurrency 2, no errors", rep.Rows)
	}
	if !strings.Contains(strings.Join(rep.Command, " "), "--requests 20") {
		t.Errorf("report command = %q; want the command line", rep.Command)
	}
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	if err := os.WriteFile(a, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"bench", "compare", a, a}, &out, &errb); code != 0 || !strings.Contains(out.String(), "1.00x") {
		t.Errorf("ferry bench compare a a = %d:\n%s%s", code, out.String(), errb.String())
	}
}

func TestBenchUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"bad format", []string{"bench", "--format", "xml", "http://127.0.0.1:1/"}},
		{"bad profile", []string{"bench", "--profile", "huge"}},
		{"two targets", []string{"bench", "http://a/", "http://b/"}},
		{"bad header", []string{"bench", "--header", "nocolon", "http://127.0.0.1:1/"}},
		{"compare one file", []string{"bench", "compare", "a.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != 2 {
				t.Errorf("run(%q) = %d; want 2 (stderr %q)", tt.args, code, errb.String())
			}
		})
	}
}
