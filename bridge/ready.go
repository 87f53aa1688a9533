package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// A mount's readiness is checked at most once per readyCacheFor; a backend
// that takes no connection within readyDialTimeout is not ready.
const (
	readyCacheFor    = time.Second
	readyDialTimeout = 500 * time.Millisecond
)

// readiness is a mount's last readiness check.
type readiness struct {
	mu  sync.Mutex // held through a check, so that checks do not pile up
	at  time.Time
	err error
}

// checkReady reports whether the mount has a live backend: nil if so, else
// why not. The answer is cached for readyCacheFor.
func (m *mountStats) checkReady(ctx context.Context) error {
	m.ready.mu.Lock()
	defer m.ready.mu.Unlock()
	if !m.ready.at.IsZero() && time.Since(m.ready.at) < readyCacheFor {
		return m.ready.err
	}
	m.ready.err = m.probe(ctx)
	m.ready.at = time.Now()
	return m.ready.err
}

// probe checks the backend: a cgi: directory or script exists, a worker
// pool has a running worker, a FastCGI, SCGI or HTTP application takes a
// connection.
func (m *mountStats) probe(ctx context.Context) error {
	switch {
	case m.group != nil:
		return m.group.ready()
	case m.kind == "cgi":
		_, err := os.Stat(m.addr.Path)
		return err
	case m.pool != nil:
		if m.pool.pool.Stats().Running == 0 {
			return errors.New("no worker running")
		}
		return nil
	}
	addr := m.addr.Host
	if m.addr.Network() == "unix" {
		addr = m.addr.Path
	}
	d := net.Dialer{Timeout: readyDialTimeout}
	c, err := d.DialContext(ctx, m.addr.Network(), addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// serveReady answers /readyz: 200 when every mount has a live backend, else
// 503; the body has a line per mount, "ok" or "not ready" with the reason.
func (a *admin) serveReady(w http.ResponseWriter, r *http.Request) {
	mounts := a.mounts
	errs := make([]error, len(mounts))
	var wg sync.WaitGroup
	for i, m := range mounts {
		wg.Go(func() { errs[i] = m.checkReady(r.Context()) })
	}
	wg.Wait()
	var b strings.Builder
	status := http.StatusOK
	for i, m := range mounts {
		if errs[i] != nil {
			status = http.StatusServiceUnavailable
			fmt.Fprintf(&b, "not ready %s %s: %v\n", m.prefix, m.backend, errs[i])
		} else {
			fmt.Fprintf(&b, "ok %s %s\n", m.prefix, m.backend)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String())) // a probe that went away reads nothing
}
