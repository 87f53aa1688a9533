package benchmarks

import (
	"context"
	"slices"
	"strings"
	"syscall"

	"github.com/ferrygw/ferry/internal/peers"
)

// goDirect is the Go app served directly by net/http, the row the hops
// through ferry are measured against.
const goDirect = "go/http/net/http"

// frontPathScenarios returns the rows of what a hop through ferry costs
// the Go app, each against the app served directly (over goDirect): ferry
// serve in front of one app process speaking HTTP, FastCGI (fastcgi.Serve)
// or SCGI (scgi.Serve) on a loopback port. With hello they add ferry's
// SCGI server behind nginx (nginx scgi_pass to scgi.Serve of the app)
// against the least an SCGI server does behind the same nginx
// (minimalSCGI, which answers hello only).
func (c *Config) frontPathScenarios(app string) []scenario {
	var out []scenario
	for _, proto := range []string{"http", "fastcgi", "scgi"} {
		gateway := "ferry"
		if proto == "http" {
			gateway = "ferry-http"
		}
		out = append(out, scenario{app: app, lang: "go", mode: proto, gateway: gateway, over: goDirect,
			start: func(ctx context.Context, e *env) (*setup, error) { return ferryHop(ctx, e, proto) }})
	}
	if app != "hello" {
		return out
	}
	return append(out,
		scenario{app: app, lang: "go", mode: "scgi", gateway: "nginx-ferry-scgi", need: []string{"nginx"},
			start: func(ctx context.Context, e *env) (*setup, error) {
				return nginxSCGIApp(ctx, e, frontSpec{Kind: "app", Listen: "scgi"})
			}},
		scenario{app: app, lang: "go", mode: "scgi", gateway: "nginx-scgi-minimal", peer: true, vs: "go/scgi/nginx-ferry-scgi", need: []string{"nginx"},
			start: func(ctx context.Context, e *env) (*setup, error) {
				return nginxSCGIApp(ctx, e, frontSpec{Kind: "scgi-minimal"})
			}},
	)
}

// ferryHop runs the Go app in a helper of its own serving proto ("http",
// "fastcgi" or "scgi") on a loopback port and, in front of it, ferry serve
// with a mount of that address: ferry is the gateway, the app the worker.
func ferryHop(ctx context.Context, e *env, proto string) (*setup, error) {
	spec := frontSpec{Kind: "app"}
	if proto != "http" {
		spec.Listen = proto
	}
	app, err := startFront(ctx, e.cfg.Self, spec)
	if err != nil {
		return nil, err
	}
	return ferryFrontTo(ctx, e, frontSpec{Kind: "mount", Mount: "/=" + app.URL}, app.Pid(), func() error { app.Stop(); return nil })
}

// nginxSCGIApp runs the SCGI server spec describes in a helper and nginx
// scgi_pass in front of it: nginx is the gateway, the helper the worker.
func nginxSCGIApp(ctx context.Context, e *env, spec frontSpec) (*setup, error) {
	app, err := startFront(ctx, e.cfg.Self, spec)
	if err != nil {
		return nil, err
	}
	dir := e.newDir("nginx")
	srv, err := peers.StartNginxSCGI(ctx, dir, peers.NginxSCGIConfig{Backend: strings.TrimPrefix(app.URL, "scgi://")})
	if err != nil {
		app.Stop()
		return nil, err
	}
	return &setup{addr: srv.URL + "/", trees: procTrees{Roots: []int{app.Pid()}, Marks: []string{dir}, Gateway: isGatewayComm},
		stop: func() { srv.Stop(); app.Stop() }}, nil
}

// idleConns returns how many idle connections the ferry-idle row holds:
// 1,000 in the quick profile, 10,000 in the full one (issue 11's figure),
// fewer when this process's open-file limit is under twice that: the
// front, which inherits the limit, needs a descriptor for each too.
func (c *Config) idleConns() int {
	n := 1000
	if c.full() {
		n = 10000
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && uint64(rl.Cur) < uint64(2*n+200) { // int64 on some BSDs
		n = max(int(rl.Cur/2)-100, 0)
	}
	return n
}

// idleScenarios returns the rows of what held client connections cost
// ferry's HTTP front: ferry serve with a static root, the load on
// /hello.txt, alone (static/http/ferry) and with idleConns idle keep-alive
// connections held open through the load (static/http/ferry-idle, over the
// first: its req/s over the load alone's); and nginx serving the same
// file with as many idle connections (static/http/nginx-idle, vs ferry's).
// An idle row's note gives the KiB an idle connection costs the front
// (VmRSS slope), its RSS with all of them and its peak, and whether every
// one is still open after the load.
func (c *Config) idleScenarios(app string) []scenario {
	n := c.idleConns()
	idle := scenario{app: app, lang: "static", mode: "http", gateway: "ferry-idle", over: "static/http/ferry",
		start: func(ctx context.Context, e *env) (*setup, error) { return ferryStatic(ctx, e, n) }}
	nginx := scenario{app: app, lang: "static", mode: "http", gateway: "nginx-idle", peer: true, vs: "static/http/ferry-idle",
		need: []string{"nginx"}, start: func(ctx context.Context, e *env) (*setup, error) { return nginxStatic(ctx, e, n) }}
	if n == 0 {
		idle.na = "the open-file limit leaves no room for idle connections"
		nginx.na = idle.na
	}
	return []scenario{
		{app: app, lang: "static", mode: "http", gateway: "ferry",
			start: func(ctx context.Context, e *env) (*setup, error) { return ferryStatic(ctx, e, 0) }},
		idle,
		nginx,
	}
}

// nginxStatic runs nginx serving the static root (one worker, as every
// generated nginx.conf has, with worker_connections above idle and the
// load: connsBeyond) and holds idle idle keep-alive connections
// open to it (holdIdle) until the setup stops.
func nginxStatic(ctx context.Context, e *env, idle int) (*setup, error) {
	root, err := staticRoot(e.newDir("static"))
	if err != nil {
		return nil, err
	}
	dir := e.newDir("nginx")
	srv, err := peers.StartNginxFront(ctx, dir, peers.NginxFrontConfig{Server: "    location / { }\n", Root: root,
		WorkerConnections: e.connsBeyond(idle)})
	if err != nil {
		return nil, err
	}
	s := &setup{addr: srv.URL + "/hello.txt", trees: procTrees{Marks: []string{dir}, Gateway: isGatewayComm}, stop: func() { srv.Stop() }}
	return holdIdleOn(s, strings.TrimPrefix(srv.URL, "http://"), idle)
}

// connsBeyond returns a front's connection limit above idle held
// connections and the load's highest concurrency: past its limit ferry
// closes the idle connections that waited longest, and nginx refuses new
// ones.
func (e *env) connsBeyond(idle int) int { return idle + slices.Max(e.cfg.levels()) + 100 }

// ferryStatic runs ferry serve with the static root alone, max_conns above
// idle and the load (connsBeyond), and, if idle > 0, holds
// that many idle keep-alive connections open to it (holdIdle) until the
// setup stops.
func ferryStatic(ctx context.Context, e *env, idle int) (*setup, error) {
	root, err := staticRoot(e.newDir("static"))
	if err != nil {
		return nil, err
	}
	s, err := ferryFront(ctx, e, frontSpec{Kind: "mount", Root: root, MaxConns: e.connsBeyond(idle)})
	if err != nil {
		return nil, err
	}
	hostport := strings.TrimPrefix(s.addr, "http://")
	s.addr += "/hello.txt"
	if idle == 0 {
		return s, nil
	}
	return holdIdleOn(s, hostport, idle)
}

// holdIdleOn holds idle idle keep-alive connections open to the front of
// s at hostport (holdIdle) until s stops, and puts what they cost in the
// notes of its rows; it stops s if they cannot all be opened.
func holdIdleOn(s *setup, hostport string, idle int) (*setup, error) {
	h, err := holdIdle(hostport, s.trees, idle)
	if err != nil {
		s.stop()
		return nil, err
	}
	s.annotate = h.note
	stop := s.stop
	s.stop = func() { h.close(); stop() }
	return s, nil
}
