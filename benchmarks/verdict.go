package benchmarks

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// ErrAllFailed is returned, with the report, by RunScenarios and RunTarget
// when the requests of some row all failed (every one a 502, say): such a
// row measured how fast an error comes back, not the gateway.
var ErrAllFailed = errors.New("benchmarks: every request of a row failed")

// Pair compares a ferry row with a row doing the same job another way (a
// peer, or ferry configured otherwise), at one concurrency level.
type Pair struct {
	Ferry       string `json:"ferry"`
	Other       string `json:"other"`
	Concurrency int    `json:"concurrency"`
	// Over is set when Ferry's row is Other's with something added: a hop
	// through ferry in front of the app Other serves directly, or idle
	// connections held through the load. Ratio is then what is left of
	// Other's req/s.
	Over bool `json:"over,omitempty"`
	// Ratio is the ferry row's median req/s over the other's; Low and High
	// bound it with the runs' extremes (ferry's min over the other's max,
	// and the reverse).
	Ratio float64 `json:"ratio,omitempty"`
	Low   float64 `json:"ratio_low,omitempty"`
	High  float64 `json:"ratio_high,omitempty"`
	// WithinNoise is set when the two rows' min..max intervals overlap:
	// the runs cannot tell them apart.
	WithinNoise bool `json:"within_noise,omitempty"`
	// Note says why there is no ratio (a row did not run or failed), or
	// that one run gives no spread.
	Note string `json:"note,omitempty"`
}

// failed reports whether every request of r failed.
func (r *Row) failed() bool { return r.Requests > 0 && r.Errors == r.Requests }

// measured reports whether r has numbers to show.
func (r *Row) measured() bool { return r.Runs > 0 && r.Requests > 0 && !r.failed() }

// pairs returns the comparisons of rows: each row with a VS against that
// row at the same concurrency, and each row with an Over against the row
// it adds to (Pair.Over).
func pairs(rows []Row) []Pair {
	byKey := make(map[string]*Row)
	for i := range rows {
		byKey[rowKey(rows[i])] = &rows[i]
	}
	var out []Pair
	for i := range rows {
		var f, o *Row
		var over bool
		switch r := &rows[i]; {
		case r.VS != "":
			f, o = byKey[r.VS+"@"+strconv.Itoa(r.Concurrency)], r
		case r.Over != "":
			f, o, over = r, byKey[r.Over+"@"+strconv.Itoa(r.Concurrency)], true
		}
		if f == nil || o == nil {
			continue
		}
		p := Pair{Ferry: f.Scenario, Other: o.Scenario, Concurrency: o.Concurrency, Over: over}
		switch {
		case !f.measured():
			p.Note = f.Scenario + " has no numbers: " + cmpNote(f)
		case !o.measured():
			p.Note = o.Scenario + " has no numbers: " + cmpNote(o)
		default:
			p.Ratio = f.RPS.Median / o.RPS.Median
			if f.Runs < 2 || o.Runs < 2 {
				// One run has no interval: a range of 0.96–0.96 would
				// claim a precision the run does not have.
				p.Note = "one run: no spread (--repeat 3 shows it)"
				break
			}
			if o.RPS.Max > 0 && o.RPS.Min > 0 {
				p.Low, p.High = f.RPS.Min/o.RPS.Max, f.RPS.Max/o.RPS.Min
			}
			p.WithinNoise = f.RPS.Min <= o.RPS.Max && o.RPS.Min <= f.RPS.Max
		}
		out = append(out, p)
	}
	return out
}

// noNumbers is what a row without numbers shows in place of its req/s:
// "failed" when every request failed, "n/a" otherwise.
func (r *Row) noNumbers() string {
	if r.failed() {
		return "failed"
	}
	return "n/a"
}

// cmpNote says why r has no numbers.
func cmpNote(r *Row) string {
	if r.failed() && r.Note == "" {
		return "every request failed"
	}
	if r.Note != "" {
		return r.Note
	}
	return "not run"
}

// evenBand is how far from 1 a single run's ratio may be and still read
// "about even": one run's req/s on a shared machine move by a few percent.
const evenBand = 0.05

// Verdict is the pair's ratio in words: "within noise", "about even" (one
// run, within 5%), "ferry faster", "ferry slower", or "—" without a ratio;
// for a row that adds to another (Over), "costs N% of the req/s" or "no
// cost seen" in place of faster and slower.
func (p Pair) Verdict() string { return p.verdict() }

// verdict is a pair's ratio in words, for the tables.
func (p Pair) verdict() string {
	switch {
	case p.Ratio == 0:
		return "—"
	case p.WithinNoise && p.Note == "":
		return "within noise"
	case p.Low == 0 && math.Abs(p.Ratio-1) < evenBand:
		return "about even"
	case p.Over && p.Ratio < 1:
		return fmt.Sprintf("costs %.0f%% of the req/s", (1-p.Ratio)*100)
	case p.Over:
		return "no cost seen"
	case p.Ratio >= 1:
		return "ferry faster"
	}
	return "ferry slower"
}

// markFailed turns rows whose requests all failed into errors: their
// note says so, and the error returned is ErrAllFailed naming them.
func markFailed(rows []Row) error {
	var names []string
	for i := range rows {
		r := &rows[i]
		if !r.failed() {
			continue
		}
		kinds := make([]string, 0, len(r.ErrorKind))
		for k, n := range r.ErrorKind {
			kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
		}
		r.Note = strings.TrimSpace("every request failed (" + strings.Join(kinds, ", ") + "): no req/s to show. " + r.Note)
		names = append(names, rowKey(*r))
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrAllFailed, strings.Join(names, ", "))
}

// MachineLoad is what the machine was doing besides the run: a benchmark
// on a busy machine measures the other work too.
type MachineLoad struct {
	// LoadBefore and LoadAfter are the 1, 5 and 15-minute load averages.
	LoadBefore string `json:"loadavg_before"`
	LoadAfter  string `json:"loadavg_after"`
	// OtherCPUPct is the CPU time other processes took during the run, in
	// percent of the machine's (cores × wall time): all CPU time counted in
	// /proc/stat minus this run's own (this process and its children).
	OtherCPUPct float64 `json:"other_cpu_pct"`
	// OwnCPUPct is this run's CPU time in percent of the machine's.
	OwnCPUPct float64 `json:"own_cpu_pct"`
	// Busy is set when other processes took more than busyOtherPct of the
	// machine, or the load average before the run was above half the
	// cores: the numbers are lower and noisier than on a quiet machine.
	Busy   bool   `json:"busy"`
	Reason string `json:"reason,omitempty"`
}

// busyOtherPct is the share of the machine other processes may take
// before a run is flagged busy.
const busyOtherPct = 10

// loadMeter measures the machine's load over a run.
type loadMeter struct {
	start   time.Time
	load    string
	total   time.Duration // busy CPU time in /proc/stat
	own     cpuUsage
	readErr error
}

func startLoadMeter() *loadMeter {
	m := &loadMeter{start: time.Now(), load: loadAvg(), own: selfUsage()}
	m.total, m.readErr = busyCPU()
	return m
}

// stop returns the load measured since start. Children must have been
// reaped for their CPU time to count as the run's own.
func (m *loadMeter) stop() *MachineLoad {
	l := &MachineLoad{LoadBefore: m.load, LoadAfter: loadAvg()}
	wall := time.Since(m.start)
	total, err := busyCPU()
	capacity := float64(wall) * float64(runtime.NumCPU())
	if err == nil && m.readErr == nil && capacity > 0 {
		d := selfUsage().Sub(m.own)
		own := d.Self + d.Children
		l.OwnCPUPct = float64(own) / capacity * 100
		l.OtherCPUPct = max(float64(total-m.total-own)/capacity*100, 0)
	}
	var why []string
	if l.OtherCPUPct > busyOtherPct {
		why = append(why, fmt.Sprintf("other processes took %.0f%% of the CPU during the run", l.OtherCPUPct))
	}
	if f := strings.Fields(l.LoadBefore); len(f) > 0 {
		if v, err := strconv.ParseFloat(f[0], 64); err == nil && v > float64(runtime.NumCPU())/2 {
			why = append(why, fmt.Sprintf("the load average was %s on %d cores before it", f[0], runtime.NumCPU()))
		}
	}
	if len(why) > 0 {
		l.Busy, l.Reason = true, "busy machine: "+strings.Join(why, "; ")+": numbers are low and noisy, compare ratios within one run"
	}
	return l
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// busyCPU returns the CPU time of every core spent outside idle and iowait,
// from the first line of /proc/stat.
func busyCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("benchmarks: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, errors.New("benchmarks: malformed /proc/stat")
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user already
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("benchmarks: /proc/stat: %w", err)
		}
		busy += n
	}
	return time.Duration(busy) * clockTick, nil
}
