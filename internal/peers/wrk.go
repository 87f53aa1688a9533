package peers

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// WrkConfig configures [StartWrk].
type WrkConfig struct {
	// URL is what every request asks for. It is required.
	URL string
	// Duration is how long the load lasts, in whole seconds (wrk's
	// unit); less than a second is one.
	Duration time.Duration
	// Connections kept open, and Threads sending on them. If zero or
	// negative, 8 and 2.
	Connections, Threads int
}

// Wrk is a running wrk.
type Wrk struct {
	cmd  *exec.Cmd
	out  strings.Builder
	done chan struct{}
	err  error
}

// WrkResult is what a wrk run reports.
type WrkResult struct {
	// Requests completed, and Failed among them or beside them: answers
	// other than 2xx and 3xx, and socket errors (connect, read, write,
	// timeout).
	Requests, Failed int
	// Report is wrk's output.
	Report string
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkFailures = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// StartWrk starts wrk, the HTTP load generator, as cfg says: it sends
// requests until cfg.Duration is over. A request waits up to 10 s for
// its answer. Call [Wrk.Wait] for the report; ctx ends the load early.
func StartWrk(ctx context.Context, cfg WrkConfig) (*Wrk, error) {
	bin, err := Lookup("wrk")
	if err != nil {
		return nil, err
	}
	if cfg.URL == "" {
		return nil, fmt.Errorf("peers: WrkConfig.URL is empty")
	}
	secs := max(int(cfg.Duration/time.Second), 1)
	w := &Wrk{done: make(chan struct{})}
	w.cmd = exec.CommandContext(ctx, bin, "-t"+strconv.Itoa(positiveOr(cfg.Threads, 2)), "-c"+strconv.Itoa(positiveOr(cfg.Connections, 8)),
		"-d"+strconv.Itoa(secs)+"s", "--timeout", "10s", cfg.URL)
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("peers: starting wrk: %w", err)
	}
	go func() {
		w.err = w.cmd.Wait()
		close(w.done)
	}()
	return w, nil
}

// Wait waits for wrk to end and returns its report.
func (w *Wrk) Wait() (WrkResult, error) {
	<-w.done
	r := WrkResult{Report: w.out.String()}
	if w.err != nil {
		return r, fmt.Errorf("peers: wrk: %w\n%s", w.err, r.Report)
	}
	m := wrkRequests.FindStringSubmatch(r.Report)
	if m == nil {
		return r, fmt.Errorf("peers: wrk reported no request count:\n%s", r.Report)
	}
	r.Requests, _ = strconv.Atoi(m[1])
	for _, m := range wrkFailures.FindAllStringSubmatch(r.Report, -1) {
		for _, n := range m[1:] {
			v, _ := strconv.Atoi(n) // "" for the other alternative: 0
			r.Failed += v
		}
	}
	return r, nil
}
