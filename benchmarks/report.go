package benchmarks

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// schemaVersion is the version of the JSON report; it changes only when a
// field changes meaning or goes away (new fields may appear in any version).
const schemaVersion = 1

// Report is the result of a ferry bench run, as written with --format json.
type Report struct {
	// Schema is the version of the format, 1 for now: it changes only when
	// a field changes meaning or goes away (new fields may appear in any
	// version), and ReadReport refuses a newer one.
	Schema  int       `json:"schema"`
	Command []string  `json:"command"`
	Started time.Time `json:"started"`
	Machine Machine   `json:"machine"`
	Profile string    `json:"profile"`
	// Load is what every row was run with (rows record their concurrency).
	Load LoadSpec `json:"load"`
	Rows []Row    `json:"rows"`
	// Startup is the startup-cost breakdown of per-request CGI.
	Startup []Startup `json:"startup,omitempty"`
	// Skipped lists the scenarios not run, and why.
	Skipped []Skip `json:"skipped,omitempty"`
	// Pairs compares each ferry row with the rows doing its job otherwise.
	Pairs []Pair `json:"pairs,omitempty"`
	// MachineLoad is what else the machine was doing during the run.
	MachineLoad *MachineLoad `json:"machine_load,omitempty"`
	// Failed lists the rows whose requests all failed (row@concurrency).
	Failed []string `json:"failed,omitempty"`
}

// finish completes a measured report: the failed rows, the pairs and the
// machine's load. It returns ErrAllFailed when a row failed.
func (rep *Report) finish(m *loadMeter) error {
	err := markFailed(rep.Rows)
	rep.Failed = nil
	for _, r := range rep.Rows {
		if r.failed() {
			rep.Failed = append(rep.Failed, rowKey(r))
		}
	}
	rep.Pairs = pairs(rep.Rows)
	rep.MachineLoad = m.stop()
	return err
}

// LoadSpec records the load settings of a run.
type LoadSpec struct {
	Mode        string  `json:"mode"` // "closed" or "open"
	Concurrency []int   `json:"concurrency"`
	Rate        float64 `json:"rate,omitempty"`
	DurationS   float64 `json:"duration_s"`
	Requests    int64   `json:"requests,omitempty"`
	WarmupS     float64 `json:"warmup_s"`
	Repeat      int     `json:"repeat"`
}

// Row is one scenario at one concurrency level.
type Row struct {
	// Scenario is the row's stable key: APP/LANG/MODE/GATEWAY.
	Scenario string `json:"scenario"`
	App      string `json:"app"`
	Lang     string `json:"lang"`
	Mode     string `json:"mode"` // cgi, fastcgi, scgi, http
	Gateway  string `json:"gateway"`
	Peer     bool   `json:"peer"`
	// VS is the scenario of the ferry row this one is compared with (see
	// Report.Pairs), or "".
	VS string `json:"vs,omitempty"`
	// Over is the scenario of the row this ferry row adds something to (a
	// hop through ferry in front of the app that row serves directly, or
	// idle connections held through its load; see Report.Pairs), or "".
	Over        string `json:"over,omitempty"`
	Target      string `json:"target"`
	Concurrency int    `json:"concurrency"`
	// Note says why a row has no numbers (n/a), or what to know about it.
	Note string `json:"note,omitempty"`

	Runs      int              `json:"runs"`
	Requests  int64            `json:"requests"`
	Errors    int64            `json:"errors"`
	ErrorKind map[string]int64 `json:"error_kinds,omitempty"`
	// RPS is requests per second over the runs.
	RPS Summary `json:"rps"`
	// Latency is from all runs' requests together, in milliseconds.
	Latency Latency `json:"latency_ms"`
	// CPU is CPU time per request in microseconds, from the OS.
	CPU CPU `json:"cpu_us_per_req"`
	// Memory of the worker processes alive at the end (none for per-request
	// CGI: see Startup for one script's).
	WorkerProcs int   `json:"worker_procs"`
	PeakRSSKiB  int64 `json:"worker_peak_rss_kib"`
	TotalRSSKiB int64 `json:"worker_total_rss_kib"`
	// Distribution is the latency distribution for charts: the percentile
	// (0 to 100) and its latency in milliseconds.
	Distribution []Point `json:"distribution,omitempty"`
}

// Latency holds latency percentiles in milliseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// CPU is CPU time per request in microseconds.
type CPU struct {
	// Gateway is the front: ferry's helper process, nginx, Apache.
	Gateway float64 `json:"gateway"`
	// Workers is the application processes: scripts, FastCGI workers.
	Workers float64 `json:"workers"`
	// LoadGen is the load generator (with in-process targets, such as
	// cgi: and fastcgi:// in ferry bench TARGET, their client side).
	LoadGen float64 `json:"loadgen"`
}

// Point is one point of a latency distribution.
type Point struct {
	Percentile float64 `json:"p"`
	Ms         float64 `json:"ms"`
}

// Startup is the startup share of per-request CGI for one app and language.
type Startup struct {
	App  string `json:"app"`
	Lang string `json:"lang"`
	// CGIMs is the per-request CGI row's p50, WorkerMs that of the
	// long-lived worker row (WorkerRow) at the same concurrency.
	CGIMs     float64 `json:"cgi_p50_ms"`
	WorkerMs  float64 `json:"worker_p50_ms,omitempty"`
	WorkerRow string  `json:"worker_row,omitempty"`
	// StartupMs is CGIMs - WorkerMs: what starting a process per request
	// costs, queueing included.
	StartupMs float64 `json:"startup_ms,omitempty"`
	// RawExecMs is the median wall time of running the script directly,
	// one at a time with the CGI environment (fork, exec, interpreter start,
	// the work, exit).
	RawExecMs float64 `json:"raw_exec_ms"`
	// CGI and worker CPU per request (gateway + workers), microseconds.
	CGICPUUs    float64 `json:"cgi_cpu_us"`
	WorkerCPUUs float64 `json:"worker_cpu_us,omitempty"`
}

// Skip is a scenario that was not run.
type Skip struct {
	Scenario string `json:"scenario"`
	Reason   string `json:"reason"`
}

// Machine describes where a report was made.
type Machine struct {
	Cores   int    `json:"cores"`
	CPU     string `json:"cpu"`
	Kernel  string `json:"kernel"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	Go      string `json:"go"`
	LoadAvg string `json:"loadavg,omitempty"`
	// Build identifies the program that ran: its VCS revision ("-dirty"
	// when modified) or module version. ferry bench compare warns when two
	// reports of one build differ by more than their spread.
	Build string `json:"build,omitempty"`
}

// describeMachine returns the description of this machine.
func describeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version(), Build: buildID()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.Kernel = kernelName()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

// buildID returns the VCS revision of this program, with "-dirty" when
// its tree was modified, or its main module's version.
func buildID() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" {
		return rev + dirty
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return bi.Main.Path + "@" + v
	}
	return ""
}

// fill sets the row's numbers from merged results.
func (r *Row) fill(h *histogram, rps []float64, requests, ok int64, errs map[string]int64, gw, wk, lg time.Duration, tu treeUsage) {
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	r.Requests = requests
	r.Errors = requests - ok
	r.ErrorKind = errs
	r.RPS = summarize(rps)
	r.Runs = len(rps)
	r.Latency = Latency{
		Mean: h.Mean() / 1e6, P50: ms(h.ValueAtPercentile(50)), P90: ms(h.ValueAtPercentile(90)),
		P99: ms(h.ValueAtPercentile(99)), P999: ms(h.ValueAtPercentile(99.9)), Max: ms(h.Max()),
	}
	for _, p := range []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100} {
		r.Distribution = append(r.Distribution, Point{Percentile: p, Ms: ms(h.ValueAtPercentile(p))})
	}
	if requests > 0 {
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(requests) }
		r.CPU = CPU{Gateway: per(gw), Workers: per(wk), LoadGen: per(lg)}
	}
	r.WorkerProcs, r.PeakRSSKiB, r.TotalRSSKiB = tu.Procs, tu.PeakRSSKiB, tu.TotalRSSKiB
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("benchmarks: writing JSON: %w", err)
	}
	return nil
}

// ReadReport parses a JSON report, refusing a newer schema.
func ReadReport(r io.Reader) (*Report, error) {
	var rep Report
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return nil, fmt.Errorf("benchmarks: reading report: %w", err)
	}
	if rep.Schema < 1 || rep.Schema > schemaVersion {
		return nil, fmt.Errorf("benchmarks: report schema %d; this ferry reads 1 to %d", rep.Schema, schemaVersion)
	}
	return &rep, nil
}
