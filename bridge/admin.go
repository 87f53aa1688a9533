package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"

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

// admin is the admin listener: /metrics (Prometheus), /status (php-fpm's
// status page, as HTML or JSON), /healthz and /readyz (for load balancers
// and Kubernetes probes).
type admin struct {
	s     *Server
	stats *serverStats
	srv   *http.Server

	mu sync.Mutex // guards f
	f  front      // the listener, once Run opened it
}

// setUpAdmin checks Config.Admin and, when it is set, prepares the admin
// listener and the figures it reports, before the routes are built.
func (s *Server) setUpAdmin() error {
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
	errLog := log.New(s.log.With().Str("component", "admin").Logger(), "", 0)
	adm := &admin{s: s, stats: newServerStats(s.cfg.Version)}
	adm.srv = &http.Server{
		Handler:           adm.handler(errLog),
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		ErrorLog:          errLog,
	}
	s.admin = adm
	return nil
}

// handler routes the admin paths; errLog logs failed scrapes.
func (a *admin) handler(errLog *log.Logger) http.Handler {
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
	return a.stats.newMount(m)
}

// listen opens the admin listener; it does nothing without one.
func (a *admin) listen() error {
	if a == nil {
		return nil
	}
	l, err := listen(a.s.cfg.Admin, &a.s.log)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.f = front{addr: a.s.cfg.Admin, l: l}
	a.mu.Unlock()
	a.s.log.Info().Str("admin", a.f.String()).Msg("ferry: admin listening")
	return nil
}

// serve serves the admin paths until Shutdown, sending its error to errc.
func (a *admin) serve(errc chan<- error) {
	if a == nil {
		return
	}
	go func() { errc <- a.srv.Serve(a.f.l) }()
}

// Shutdown stops the admin listener as http.Server.Shutdown does.
func (a *admin) Shutdown(ctx context.Context) error {
	if a == nil {
		return nil
	}
	return a.srv.Shutdown(ctx)
}

// close closes the admin connections still open and removes the unix
// socket.
func (a *admin) close() {
	if a == nil {
		return
	}
	a.srv.Close()
	a.mu.Lock()
	f := a.f
	a.f = front{}
	a.mu.Unlock()
	if f.l != nil {
		f.cleanup()
	}
}

// AdminAddr returns the address the admin listener is bound to while Run
// serves, or nil.
func (s *Server) AdminAddr() net.Addr {
	if s.admin == nil {
		return nil
	}
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	if s.admin.f.l == nil {
		return nil
	}
	return s.admin.f.l.Addr()
}
