package bridge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ferrygw/ferry/cgi"
)

// healthConfig is how a group checks its backends actively; a zero path
// means it does not.
type healthConfig struct {
	path           string
	interval       time.Duration
	timeout        time.Duration
	status         int    // 0: any 2xx
	body           string // text the body must contain, or ""
	passes, fails  int
	protocol       string // "fastcgi", "scgi" or "http"
	serverSoftware string
}

// healthBodyMax bounds what a check reads of the answer.
const healthBodyMax = 64 << 10

// start runs the group's health checks and re-resolution until ctx ends;
// stop waits for them.
func (g *group) start(ctx context.Context) (stop func()) {
	var wg sync.WaitGroup
	if g.health.path != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.checkLoop(ctx)
		}()
	}
	if g.resolver != nil && g.resolver.every > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.resolver.loop(ctx, g)
		}()
	}
	return wg.Wait
}

// checkLoop checks every backend each interval, all at once, until ctx
// ends.
func (g *group) checkLoop(ctx context.Context) {
	t := time.NewTicker(g.health.interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, m := range g.list() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, g.health.timeout)
				err := g.probe(cctx, m)
				cancel()
				if ctx.Err() == nil {
					g.checked(m, err)
				}
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checked records a check's result: health_fails failures in a row take
// an up backend down, health_passes passes bring a down one back (with
// slow start, and its passive failures forgotten).
func (g *group) checked(m *member, err error) {
	now := time.Now()
	m.mu.Lock()
	changed := false
	if err == nil {
		m.checksPassed.Add(1)
		m.lastCheck = "pass"
		if m.checkDown {
			if m.checkRun++; m.checkRun >= g.health.passes {
				m.checkDown, m.checkRun, changed = false, 0, true
				m.downUntil, m.fails, m.upSince = time.Time{}, 0, now
			}
		} else {
			m.checkRun = 0
		}
	} else {
		m.checksFailed.Add(1)
		m.lastCheck = err.Error()
		if !m.checkDown {
			if m.checkRun++; m.checkRun >= g.health.fails {
				m.checkDown, m.checkRun, changed = true, 0, true
			}
		} else {
			m.checkRun = 0
		}
	}
	down := m.checkDown
	m.mu.Unlock()
	switch {
	case changed && down:
		g.log.Warn().Err(err).Str("mount", g.prefix).Str("backend", m.name).Msg("ferry: backend down: health checks failed")
	case changed:
		g.log.Info().Str("mount", g.prefix).Str("backend", m.name).Msg("ferry: backend up: health checks pass")
	}
}

// probe runs one health check of m in its own protocol.
func (g *group) probe(ctx context.Context, m *member) error {
	var status int
	var body io.Reader
	if m.rt != nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.host+g.health.path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", g.health.serverSoftware+" health check")
		resp, err := m.rt.RoundTrip(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		status, body = resp.StatusCode, resp.Body
	} else {
		params, err := g.healthParams()
		if err != nil {
			return err
		}
		resp, err := m.t.RoundTrip(ctx, &cgi.AppRequest{Params: params})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		cr, err := cgi.ReadAppResponse(br, resp, cgi.HeaderLimits{})
		if err != nil {
			return err
		}
		status, body = cr.Status, br
	}
	if want := g.health.status; (want != 0 && status != want) || (want == 0 && status/100 != 2) {
		return fmt.Errorf("bridge: health check answered %d", status)
	}
	if g.health.body == "" {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(body, healthBodyMax))
	if err != nil {
		return fmt.Errorf("bridge: health check: %w", err)
	}
	if !strings.Contains(string(b), g.health.body) {
		return fmt.Errorf("bridge: health check answered without %q", g.health.body)
	}
	return nil
}

// healthParams are the meta-variables of a FastCGI or SCGI health check:
// a GET of the path from 127.0.0.1, which FastCGI names as the script
// (php-fpm's ping.path matches SCRIPT_NAME) and SCGI as PATH_INFO (a WSGI
// application routes on it).
func (g *group) healthParams() ([]string, error) {
	p := g.health.path
	s := cgi.Script{Name: p, Filename: p}
	if g.health.protocol == "scgi" {
		s = cgi.Script{PathInfo: p}
	}
	r, err := http.NewRequest(http.MethodGet, "http://localhost"+p, nil)
	if err != nil {
		return nil, fmt.Errorf("bridge: health check of %s: %w", p, err)
	}
	r.RemoteAddr = "127.0.0.1:0"
	r.Header.Set("User-Agent", g.health.serverSoftware+" health check")
	return cgi.AppendEnv(nil, r, s, g.health.serverSoftware)
}
