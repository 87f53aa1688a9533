package benchmarks

import (
	"context"
	"strings"

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
