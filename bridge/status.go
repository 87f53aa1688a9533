package bridge

import (
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/ferrygw/ferry/spawn"
)

// statusReport is the /status page: what php-fpm's status page says, for
// every mount.
type statusReport struct {
	Version       string        `json:"version"`
	StartTime     time.Time     `json:"start_time"`
	UptimeSeconds float64       `json:"uptime_seconds"`
	Full          bool          `json:"-"`
	Mounts        []mountStatus `json:"mounts"`
}

// mountStatus is one mount on the status page. Accepted, Active, MaxActive,
// Queue, MaxQueue and MaxReached are php-fpm's accepted conn, active
// processes, max active processes, listen queue, max listen queue and max
// children reached, counted per mount.
type mountStatus struct {
	Prefix      string          `json:"prefix"`
	Backend     string          `json:"backend"`
	Kind        string          `json:"kind"`
	Accepted    uint64          `json:"accepted"`
	Active      int             `json:"active"`
	MaxActive   int             `json:"max_active"`
	Queue       int             `json:"queue"`
	MaxQueue    int             `json:"max_queue"`
	MaxReached  uint64          `json:"max_reached"`
	Scripts     *scriptsStatus  `json:"scripts,omitempty"`
	Pool        *poolStatus     `json:"pool,omitempty"`
	Connections *connStatus     `json:"connections,omitempty"`
	Backends    []backendStatus `json:"backends,omitempty"` // for an upstream group
	Requests    []requestEntry  `json:"requests,omitzero"`  // with full
	Workers     []workerEntry   `json:"workers,omitzero"`   // with full, for pools
}

// scriptsStatus is a cgi: mount's scripts.
type scriptsStatus struct {
	Running int    `json:"running"`
	Started uint64 `json:"started"`
}

// poolStatus is a worker pool: php-fpm's idle, active and total processes.
type poolStatus struct {
	MaxWorkers int               `json:"max_workers"`
	Workers    int               `json:"workers"`
	Idle       int               `json:"idle"`
	Busy       int               `json:"busy"`
	Starting   int               `json:"starting"`
	Restarts   map[string]uint64 `json:"restarts"`
}

// connStatus is a FastCGI mount's client connections.
type connStatus struct {
	Active      int `json:"active"`
	Idle        int `json:"idle"`
	Multiplexed int `json:"multiplexed_requests"`
}

// requestEntry is a request in progress.
type requestEntry struct {
	PID             int     `json:"pid,omitempty"`
	Method          string  `json:"method"`
	URI             string  `json:"uri"`
	Script          string  `json:"script,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// workerEntry is a running worker of a pool.
type workerEntry struct {
	PID           int       `json:"pid"`
	StartTime     time.Time `json:"start_time"`
	UptimeSeconds float64   `json:"uptime_seconds"`
}

// report takes a snapshot of every mount of a's configuration (the one in
// force, as the admin listener serves it); with full, of every request in
// progress and every pool worker too. A mount's figures count from when
// its configuration came into force; a pool's, from when it started.
func (a *admin) report(full bool) statusReport {
	now := time.Now()
	st := a.stats
	rep := statusReport{Version: st.version, StartTime: st.start.Round(time.Second), UptimeSeconds: seconds(now.Sub(st.start)), Full: full}
	for _, m := range a.mounts {
		ms := mountStatus{Prefix: m.prefix, Backend: m.backend, Kind: m.kind, Queue: int(m.waiting.Load()), MaxReached: m.maxReached.Load()}
		m.mu.Lock()
		ms.Accepted, ms.Active, ms.MaxActive, ms.MaxQueue = m.accepted, m.active, m.maxActive, m.maxQueue
		if full {
			ms.Requests = []requestEntry{}
			for l := m.live.next; l != &m.live; l = l.next {
				l.mu.Lock()
				ms.Requests = append(ms.Requests, requestEntry{PID: l.pid, Method: l.method, URI: l.uri, Script: l.script, DurationSeconds: seconds(now.Sub(l.start))})
				l.mu.Unlock()
			}
		}
		m.mu.Unlock()
		if m.cgi != nil {
			ms.Scripts = &scriptsStatus{Running: int(m.cgi.running.Load()), Started: m.cgi.count.Load()}
		}
		if m.pool != nil {
			ms.Pool, ms.Workers = m.pool.status(now, full)
		}
		if m.group != nil {
			ms.Backends = m.group.status()
		}
		if m.client != nil {
			cs := m.client.Stats()
			ms.Connections = &connStatus{Active: cs.Active, Idle: cs.Idle, Multiplexed: cs.Multiplexed}
		}
		rep.Mounts = append(rep.Mounts, ms)
	}
	return rep
}

// status returns the pool's figures and, with full, its workers by pid.
func (ps *poolStats) status(now time.Time, full bool) (*poolStatus, []workerEntry) {
	st, busy := ps.workers()
	p := &poolStatus{MaxWorkers: st.Max, Workers: st.Running, Idle: st.Running - busy, Busy: busy, Starting: st.Starting,
		Restarts: make(map[string]uint64, len(ps.counts))}
	for why := range ps.counts {
		p.Restarts[exitName(spawn.WorkerExit(why))] = ps.counts[why].Load()
	}
	if !full {
		return p, nil
	}
	workers := []workerEntry{}
	ps.mu.Lock()
	for pid, at := range ps.started {
		workers = append(workers, workerEntry{PID: pid, StartTime: at.Round(time.Second), UptimeSeconds: seconds(now.Sub(at))})
	}
	ps.mu.Unlock()
	slices.SortFunc(workers, func(a, b workerEntry) int { return a.PID - b.PID })
	return p, workers
}

// seconds is d in seconds, to the millisecond.
func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// serveStatus answers /status: an HTML page, or JSON with ?json; ?full (or
// &full) adds the requests in progress and the pool workers.
func (a *admin) serveStatus(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rep := a.report(q.Has("full"))
	w.Header().Set("Cache-Control", "no-store")
	if q.Has("json") {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep) // a client that went away reads nothing
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = statusPage.Execute(w, rep) // the report's fields always render; a write error means the client left
}

var statusPage = template.Must(template.New("status").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ferry status</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: .95em; }
</style>
</head>
<body>
<h1>ferry {{.Version}}</h1>
<p id="summary">Started <time datetime="{{.StartTime.Format "2006-01-02T15:04:05Z07:00"}}">{{.StartTime.Format "2006-01-02 15:04:05 MST"}}</time>, up {{printf "%.0f" .UptimeSeconds}} s.
{{if .Full}}<a href="?">Summary</a>{{else}}<a href="?full">Requests and workers</a>{{end}} · <a href="?json{{if .Full}}&amp;full{{end}}">JSON</a> · <a href="metrics">Metrics</a></p>
{{range .Mounts}}
<section class="mount" data-prefix="{{.Prefix}}">
<h2><code>{{.Prefix}}</code> → <code>{{.Backend}}</code></h2>
<table class="figures">
<tr><th>kind</th><td>{{.Kind}}</td></tr>
<tr><th>accepted</th><td class="n">{{.Accepted}}</td></tr>
<tr><th>active</th><td class="n">{{.Active}}</td></tr>
<tr><th>max active</th><td class="n">{{.MaxActive}}</td></tr>
<tr><th>queue</th><td class="n">{{.Queue}}</td></tr>
<tr><th>max queue</th><td class="n">{{.MaxQueue}}</td></tr>
<tr><th>max reached</th><td class="n">{{.MaxReached}}</td></tr>
{{with .Scripts}}<tr><th>scripts running</th><td class="n">{{.Running}}</td></tr>
<tr><th>scripts started</th><td class="n">{{.Started}}</td></tr>{{end}}
{{with .Pool}}<tr><th>workers</th><td class="n">{{.Workers}} of {{.MaxWorkers}}</td></tr>
<tr><th>idle workers</th><td class="n">{{.Idle}}</td></tr>
<tr><th>busy workers</th><td class="n">{{.Busy}}</td></tr>
<tr><th>starting workers</th><td class="n">{{.Starting}}</td></tr>
{{range $why, $n := .Restarts}}<tr><th>ended: {{$why}}</th><td class="n">{{$n}}</td></tr>
{{end}}{{end}}
{{with .Connections}}<tr><th>connections active</th><td class="n">{{.Active}}</td></tr>
<tr><th>connections idle</th><td class="n">{{.Idle}}</td></tr>
<tr><th>multiplexed requests</th><td class="n">{{.Multiplexed}}</td></tr>{{end}}
</table>
{{with .Backends}}<table class="backends">
<tr><th>backend</th><th>state</th><th>weight</th><th>in flight</th><th>requests</th><th>failures</th><th>retries</th><th>checks passed</th><th>checks failed</th><th>last check</th></tr>
{{range .}}<tr><td><code>{{.Address}}</code></td><td>{{.State}}</td><td class="n">{{printf "%.2f" .Weight}}</td><td class="n">{{.InFlight}}</td><td class="n">{{.Requests}}</td><td class="n">{{.Failures}}</td><td class="n">{{.Retries}}</td><td class="n">{{.ChecksPassed}}</td><td class="n">{{.ChecksFailed}}</td><td>{{.LastCheck}}</td></tr>
{{end}}</table>{{end}}
{{if $.Full}}
<table class="requests">
<tr><th>pid</th><th>method</th><th>URI</th><th>script</th><th>duration (s)</th></tr>
{{range .Requests}}<tr><td class="n">{{if .PID}}{{.PID}}{{end}}</td><td>{{.Method}}</td><td><code>{{.URI}}</code></td><td><code>{{.Script}}</code></td><td class="n">{{printf "%.3f" .DurationSeconds}}</td></tr>
{{else}}<tr><td colspan="5">no request in progress</td></tr>
{{end}}</table>
{{if .Pool}}<table class="workers">
<tr><th>worker pid</th><th>started</th><th>up (s)</th></tr>
{{range .Workers}}<tr><td class="n">{{.PID}}</td><td>{{.StartTime.Format "15:04:05"}}</td><td class="n">{{printf "%.0f" .UptimeSeconds}}</td></tr>
{{end}}</table>{{end}}
{{end}}
</section>
{{else}}<p>No mounts.</p>
{{end}}
</body>
</html>
`))
