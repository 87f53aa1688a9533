package bridge

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// checkAdmin checks that a is an admin listener's address.
func checkAdmin(a Address) error {
	switch {
	case a.Scheme == "http" && a.Path == "" && len(a.Query) == 0:
		return nil
	case a.Scheme == "unix":
		_, err := checkOptions(a.Query, frontOptions(a.scheme()), "unix:// (the admin listener)")
		return err
	}
	return errAdminSpelling
}

var errAdminSpelling = errors.New("the admin listener is http://HOST:PORT or unix:///path/to.sock[?mode=0660]")

// admin is what the admin listener serves for one configuration:
// /metrics (Prometheus), /status (php-fpm's status page, as HTML or JSON),
// /healthz and /readyz (for load balancers and Kubernetes probes). The
// listener itself is the running ferry's ([runner.openAdmin]), which
// hands each request to the admin of the configuration in force.
type admin struct {
	// stats holds the registry and the metrics. A reload's configuration
	// shares those of the one it replaces, so that counters go on across
	// reloads for the mounts that stay.
	stats   *serverStats
	mounts  []*mountStats // this configuration's, in configuration order; appended while New builds the routes
	handler http.Handler
}

// setUpAdmin checks Config.Admin and, when it is set, prepares the admin
// handler and the figures it reports, before the routes are built. stats,
// if not nil, are those of the configuration this one replaces.
func (s *Server) setUpAdmin(stats *serverStats) error {
	a := s.cfg.Admin
	if a.Scheme == "" {
		return nil
	}
	if err := checkAdmin(a); err != nil {
		return fmt.Errorf("bridge: admin %s: %w", a, err)
	}
	if len(s.cfg.Listen) == 1 && s.cfg.Listen[0].Protocol() == "cgi" {
		return fmt.Errorf("bridge: admin %s: a cgi: front serves one request and exits: it has no admin listener", a)
	}
	if stats == nil {
		stats = newServerStats(s.cfg.Version)
	}
	adm := &admin{stats: stats}
	adm.handler = adm.newHandler(log.New(s.log.With().Str("component", "admin").Logger(), "", 0))
	s.admin = adm
	return nil
}

// newHandler routes the admin paths; errLog logs failed scrapes.
func (a *admin) newHandler(errLog *log.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.stats.reg, promhttp.HandlerOpts{ErrorLog: errLog}))
	mux.HandleFunc("GET /status", a.serveStatus)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, "ok\n") // a probe that went away reads nothing
	})
	mux.HandleFunc("GET /readyz", a.serveReady)
	mux.HandleFunc("POST /backends/drain", a.serveDrain(true))
	mux.HandleFunc("POST /backends/undrain", a.serveDrain(false))
	return mux
}

// newMount returns the figures of mount m, or nil without an admin
// listener.
func (a *admin) newMount(m Mount) *mountStats {
	if a == nil {
		return nil
	}
	ms := a.stats.newMount(m)
	a.mounts = append(a.mounts, ms)
	return ms
}

// inForce makes a's mounts those the metrics of gauges report: a's
// configuration is in force. It does nothing without an admin listener.
func (a *admin) inForce() {
	if a != nil {
		a.stats.inForce.Store(a)
	}
}

// adminStats returns the admin figures of s, or nil.
func (s *Server) adminStats() *serverStats {
	if s == nil || s.admin == nil {
		return nil
	}
	return s.admin.stats
}

// AdminAddr returns the address the admin listener is bound to while Run
// serves, or nil.
func (s *Server) AdminAddr() net.Addr {
	r := s.run.Load()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.admin == nil {
		return nil
	}
	return r.admin.l.Addr()
}
