package bridge

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// watchGroup makes the mount report its group's backends.
func (m *mountStats) watchGroup(g *group) {
	if m != nil {
		m.group = g
	}
}

// The ferry_backend_* family: each backend of each group.
var (
	backendLabels       = []string{"mount", "backend"}
	backendStateDesc    = prometheus.NewDesc("ferry_backend_state", "A group's backend's state now: 1 for the state it is in (up, down, draining), 0 for the others.", append(backendLabels, "state"), nil)
	backendInFlightDesc = prometheus.NewDesc("ferry_backend_in_flight", "Requests a group's backend is serving now.", backendLabels, nil)
	backendRequestsDesc = prometheus.NewDesc("ferry_backend_requests_total", "Requests sent to a group's backend, retries included.", backendLabels, nil)
	backendFailuresDesc = prometheus.NewDesc("ferry_backend_failures_total", "Requests to a group's backend that failed in a way that counts against it (max_fails).", backendLabels, nil)
	backendRetriesDesc  = prometheus.NewDesc("ferry_backend_retries_total", "Requests a group's backend got after another backend failed them.", backendLabels, nil)
	backendChecksDesc   = prometheus.NewDesc("ferry_backend_health_checks_total", "Active health checks of a group's backend, by result.", append(backendLabels, "result"), nil)
	backendWeightDesc   = prometheus.NewDesc("ferry_backend_weight", "A group's backend's weight now (slow start ramps it up).", backendLabels, nil)
)

// groupCollector reports the groups' backends at each scrape, from their
// counters: the requests pay no Prometheus call.
type groupCollector struct{ s *serverStats }

// Describe implements prometheus.Collector.
func (groupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{backendStateDesc, backendInFlightDesc, backendRequestsDesc, backendFailuresDesc, backendRetriesDesc, backendChecksDesc, backendWeightDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c groupCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.s.inForce.Load()
	if a == nil {
		return
	}
	now := time.Now()
	for _, ms := range a.mounts {
		g := ms.group
		if g == nil {
			continue
		}
		for _, m := range g.list() {
			l := []string{g.prefix, m.name}
			st := g.state(m, now)
			for s, name := range memberStateNames {
				v := 0.0
				if memberState(s) == st {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(backendStateDesc, prometheus.GaugeValue, v, append(l, name)...)
			}
			ch <- prometheus.MustNewConstMetric(backendInFlightDesc, prometheus.GaugeValue, float64(m.inflight.Load()), l...)
			ch <- prometheus.MustNewConstMetric(backendRequestsDesc, prometheus.CounterValue, float64(m.requests.Load()), l...)
			ch <- prometheus.MustNewConstMetric(backendFailuresDesc, prometheus.CounterValue, float64(m.failures.Load()), l...)
			ch <- prometheus.MustNewConstMetric(backendRetriesDesc, prometheus.CounterValue, float64(m.retries.Load()), l...)
			ch <- prometheus.MustNewConstMetric(backendChecksDesc, prometheus.CounterValue, float64(m.checksPassed.Load()), append(l, "pass")...)
			ch <- prometheus.MustNewConstMetric(backendChecksDesc, prometheus.CounterValue, float64(m.checksFailed.Load()), append(l, "fail")...)
			ch <- prometheus.MustNewConstMetric(backendWeightDesc, prometheus.GaugeValue, g.effWeight(m, now), l...)
		}
	}
}

// backendStatus is a group's backend on the status page.
type backendStatus struct {
	Address      string  `json:"address"`
	State        string  `json:"state"`
	Weight       float64 `json:"weight"`
	InFlight     int64   `json:"in_flight"`
	Requests     uint64  `json:"requests"`
	Failures     uint64  `json:"failures"`
	Retries      uint64  `json:"retries"`
	ChecksPassed uint64  `json:"health_checks_passed"`
	ChecksFailed uint64  `json:"health_checks_failed"`
	LastCheck    string  `json:"last_health_check,omitempty"`
}

// status returns the group's backends for the status page.
func (g *group) status() []backendStatus {
	now := time.Now()
	var out []backendStatus
	for _, m := range g.list() {
		st := g.state(m, now)
		m.mu.Lock()
		last := m.lastCheck
		m.mu.Unlock()
		out = append(out, backendStatus{Address: m.name, State: st.String(), Weight: g.effWeight(m, now), InFlight: m.inflight.Load(),
			Requests: m.requests.Load(), Failures: m.failures.Load(), Retries: m.retries.Load(),
			ChecksPassed: m.checksPassed.Load(), ChecksFailed: m.checksFailed.Load(), LastCheck: last})
	}
	return out
}

// ready reports whether the group has a backend up: a lone backend (see
// group.lone) is up unless its health checks fail.
func (g *group) ready() error {
	now := time.Now()
	lone := g.lone()
	for _, m := range g.list() {
		if m.usable(now, m == lone) {
			return nil
		}
	}
	return errors.New("no backend of the group is up")
}

// serveDrain answers POST /backends/drain and /backends/undrain
// ?mount=PREFIX&backend=ADDRESS: the backend takes no new request (its
// requests in flight finish), or takes them again.
func (a *admin) serveDrain(drain bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		prefix, name := r.FormValue("mount"), r.FormValue("backend")
		for _, ms := range a.mounts {
			if ms.group == nil || ms.prefix != prefix {
				continue
			}
			for _, m := range ms.group.list() {
				if m.name == name {
					m.draining.Store(drain)
					what := "undrained"
					if drain {
						what = "draining"
					}
					ms.group.log.Info().Str("mount", prefix).Str("backend", name).Msg("ferry: backend " + what + " through the admin listener")
					w.Header().Set("Content-Type", "text/plain; charset=utf-8")
					fmt.Fprintf(w, "%s %s: %s (%d in flight)\n", prefix, name, what, m.inflight.Load())
					return
				}
			}
		}
		http.Error(w, fmt.Sprintf("no backend %q in a group mounted at %q", name, prefix), http.StatusNotFound)
	}
}
