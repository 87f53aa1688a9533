package benchmarks

import (
	"context"
	"net/url"
	"strconv"

	"github.com/ferrygw/ferry/internal/peers"
)

// recipeScenarios returns the README's deployment recipes run on app, each
// with the rows of what it replaces pointing at it (vs): ferry's HTTP front
// in front of php-fpm (kept connections, and a connection per request as
// when max_conns is unset) against nginx in front of the same pool size;
// ferry in front of uwsgi's SCGI socket against nginx scgi_pass; nginx in
// front of ferry's FastCGI server running a cgi-bin against nginx in front
// of fcgiwrap; Apache mod_proxy_fcgi in front of ferry's php-cgi workers
// against Apache mod_php.
func (c *Config) recipeScenarios(app string) []scenario {
	var out []scenario
	out = append(out,
		scenario{app: app, lang: "php", mode: "fastcgi", gateway: "ferry-php-fpm", need: []string{"php-fpm"},
			start: func(ctx context.Context, e *env) (*setup, error) { return ferryFPM(ctx, e, 4, 0) }},
		scenario{app: app, lang: "php", mode: "fastcgi", gateway: "ferry-php-fpm-newconn", vs: "php/fastcgi/ferry-php-fpm", need: []string{"php-fpm"},
			start: func(ctx context.Context, e *env) (*setup, error) { return ferryFPM(ctx, e, 0, 0) }},
		scenario{app: app, lang: "php", mode: "fastcgi", gateway: "ferry-php-fpm-cpus1", vs: "php/fastcgi/ferry-php-fpm", need: []string{"php-fpm"},
			start: func(ctx context.Context, e *env) (*setup, error) { return ferryFPM(ctx, e, 4, 1) }},
		scenario{app: app, lang: "python", mode: "scgi", gateway: "nginx-uwsgi", peer: true, vs: "python/scgi/ferry+uwsgi",
			need: []string{"nginx", "uwsgi"}, check: uwsgiPython, start: startNginxUwsgi},
	)
	for _, lang := range []string{"sh", "perl", "python", "php"} {
		need := append([]string{"nginx"}, map[string][]string{"perl": {"perl"}, "python": {"python3"}, "php": {"php-cgi"}}[lang]...)
		out = append(out, scenario{app: app, lang: lang, mode: "cgi", gateway: "nginx-ferry-fastcgi", beside: lang + "/cgi/ferry", need: need,
			start: func(ctx context.Context, e *env) (*setup, error) {
				return nginxFerryCGI(ctx, e, "bench."+scriptExt(lang))
			}})
	}
	out = append(out,
		scenario{app: app, lang: "php", mode: "fastcgi", gateway: "apache-ferry-php-cgi", need: []string{"apache2", "php-cgi"},
			start: startApacheFerryPHP},
		scenario{app: app, lang: "php", mode: "module", gateway: "apache-mod_php", peer: true, vs: "php/fastcgi/apache-ferry-php-cgi",
			need: []string{"apache2"}, start: func(ctx context.Context, e *env) (*setup, error) {
				dir := e.newDir("mod_php")
				srv, err := peers.StartApacheModPHP(ctx, dir, peers.ApacheModPHPConfig{Root: e.apps, Workers: 4})
				if err != nil {
					return nil, err
				}
				return &setup{addr: srv.URL + "/php/bench.php", trees: procTrees{Marks: []string{dir}, Gateway: isGatewayComm},
					stop: func() { srv.Stop() }}, nil
			}},
	)
	return out
}

// ferryFPM runs php-fpm (4 children) and, in front of it, ferry serve as
// the README's recipe has it: the PHP site under --root, a fastcgi mount
// with max_conns = maxConns (zero leaves it unset: a connection per
// request) and cpus = cpus (zero: Go's default).
func ferryFPM(ctx context.Context, e *env, maxConns, cpus int) (*setup, error) {
	return frontFPM(ctx, e, "/bench.php", func(fpm *peers.PHPFPM) frontSpec {
		mount := "/=fastcgi://" + fpm.Address
		if fpm.Network == "unix" {
			mount = "/=fastcgi+unix://" + fpm.Address
		}
		if maxConns > 0 {
			mount += "?max_conns=" + strconv.Itoa(maxConns)
		}
		return frontSpec{Kind: "mount", Mount: mount, Root: e.apps, CPUs: cpus}
	})
}

// frontFPM runs php-fpm (4 children) and the front helper spec gives for
// it; path is added to the front's address, the URL the load requests.
func frontFPM(ctx context.Context, e *env, path string, spec func(*peers.PHPFPM) frontSpec) (*setup, error) {
	fpm, fdir, err := e.startFPM(ctx)
	if err != nil {
		return nil, err
	}
	s, err := ferryFront(ctx, e, spec(fpm))
	if err != nil {
		fpm.Stop()
		return nil, err
	}
	s.addr += path
	s.trees.Marks = []string{fdir}
	stop := s.stop
	s.stop = func() { stop(); fpm.Stop() }
	return s, nil
}

// startNginxUwsgi runs the Python app in uwsgi on an SCGI unix socket, as
// startUwsgi does for ferry, with nginx scgi_pass in front.
func startNginxUwsgi(ctx context.Context, e *env) (*setup, error) {
	p, dir, sock, err := e.startUwsgiApp(ctx, "scgi", e.benchApp())
	if err != nil {
		return nil, err
	}
	ndir := e.newDir("nginx")
	srv, err := peers.StartNginxSCGI(ctx, ndir, peers.NginxSCGIConfig{Backend: "unix:" + sock, Root: e.apps})
	if err != nil {
		p.Stop()
		return nil, err
	}
	return &setup{addr: srv.URL + "/", trees: procTrees{Roots: []int{p.Pid()}, Marks: []string{ndir, dir}, Gateway: isGatewayComm},
		stop: func() { srv.Stop(); p.Stop() }}, nil
}

// ferryFastCGIFront starts a ferry FastCGI server helper serving spec and
// returns its setup (address host:port in addr) for a web server in front.
func ferryFastCGIFront(ctx context.Context, e *env, spec frontSpec) (*setup, string, error) {
	spec.Listen = "fastcgi"
	s, err := ferryFront(ctx, e, spec)
	if err != nil {
		return nil, "", err
	}
	u, err := url.Parse(s.addr)
	if err != nil {
		s.stop()
		return nil, "", err
	}
	return s, u.Host, nil
}

// nginxFerryCGI runs the README's fcgiwrap replacement: nginx
// fastcgi_pass to ferry serve --listen fastcgi:// with the apps directory
// mounted as a cgi-bin (--mount /cgi-bin/=cgi:DIR); addr loads script.
func nginxFerryCGI(ctx context.Context, e *env, script string) (*setup, error) {
	s, hostport, err := ferryFastCGIFront(ctx, e, frontSpec{Kind: "mount", Mount: "/cgi-bin/=cgi:" + e.apps})
	if err != nil {
		return nil, err
	}
	dir := e.newDir("nginx")
	srv, err := peers.StartNginxFastCGI(ctx, dir, peers.NginxFastCGIConfig{Backend: hostport, Locations: []string{"/cgi-bin/"}, Root: e.apps})
	if err != nil {
		s.stop()
		return nil, err
	}
	return withWebServer(s, srv, dir, "/cgi-bin/"+script), nil
}

// startApacheFerryPHP runs Apache mod_proxy_fcgi (as the README's recipe:
// flushpackets=on) to ferry serve --listen fastcgi:// with the apps
// directory as a PHP site at /php/ on 4 php-cgi workers ferry spawns
// (--mount '/php/=fastcgi+exec:php-cgi?workers=4&alias=DIR'): ferry routes
// on Apache's REQUEST_URI, /php/bench.php.
func startApacheFerryPHP(ctx context.Context, e *env) (*setup, error) {
	php, err := peers.Lookup("php-cgi")
	if err != nil {
		return nil, err
	}
	mount := "/php/=fastcgi+exec:" + php + "?workers=4&max_requests=100000&alias=" + url.QueryEscape(e.apps)
	s, hostport, err := ferryFastCGIFront(ctx, e, frontSpec{Kind: "mount", Mount: mount})
	if err != nil {
		return nil, err
	}
	dir := e.newDir("apache")
	srv, err := peers.StartApacheProxyFCGI(ctx, dir, peers.ApacheProxyFCGIConfig{Backend: hostport, Prefix: "/php/", FlushPackets: true})
	if err != nil {
		s.stop()
		return nil, err
	}
	return withWebServer(s, srv, dir, "/php/bench.php"), nil
}

// withWebServer puts the web server srv (its files in dir) in front of the
// ferry helper of s: requests go to srv's path, and both count as the
// gateway.
func withWebServer(s *setup, srv *peers.Server, dir, path string) *setup {
	helper := s.trees.Gateway
	s.addr = srv.URL + path
	s.trees.Marks = append(s.trees.Marks, dir)
	s.trees.Gateway = func(pid int, comm string) bool { return helper(pid, comm) || isGatewayComm(pid, comm) }
	stop := s.stop
	s.stop = func() { srv.Stop(); stop() }
	return s
}
