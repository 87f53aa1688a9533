package migrate

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// nctx is what an nginx level inherits.
type nctx struct {
	root    string
	rootD   *Directive
	params  []*Directive // fastcgi_param in effect (a level with its own replaces them)
	split   *Directive
	index   string
	bodyMax *Directive
	front   bool // location / tries /index.php
}

type nginxMig struct {
	*mig
	upstreams map[string]*Directive
	front     strings.Builder
	usedRoot  bool
}

// Nginx translates nginx configuration files (or the output of nginx -T)
// into a ferry configuration. The error is a [*ParseError] for input it
// cannot read.
func Nginx(files []string, opts Options) (*Result, error) {
	g := &nginxMig{mig: newMig("nginx", files, opts), upstreams: map[string]*Directive{}}
	inputs, err := g.splitPools(files)
	if err != nil {
		return nil, err
	}
	ds, missing, err := loadNginx(g.r, inputs)
	if err != nil {
		return nil, err
	}
	_ = missing // unresolved includes stay as include directives, reported below
	g.collectUpstreams(ds)
	g.walk(ds, nctx{index: "index.php"})
	for _, name := range sortedKeys(g.upstreams) {
		if u := g.upstreams[name]; u != nil {
			g.entry(u, Kept, "", "no fastcgi_pass or scgi_pass uses upstream %s", name)
			for _, s := range u.Block {
				g.entry(s, Kept, "", "")
			}
		}
	}
	g.reportPools(g.usedPool())
	res := g.finish()
	if g.front.Len() == 0 {
		g.front.WriteString("# nothing to hand to ferry: no CGI, FastCGI or SCGI location was found\n")
	}
	res.Front = g.front.String()
	return res, nil
}

func (g *nginxMig) collectUpstreams(ds []*Directive) {
	for _, d := range ds {
		if d.Name == "upstream" && len(d.Args) == 1 {
			g.upstreams[d.Args[0]] = d
		}
		if d.Section {
			g.collectUpstreams(d.Block)
		}
	}
}

// level applies a level's inheritable directives to c.
func level(ds []*Directive, c nctx) nctx {
	var own []*Directive
	for _, d := range ds {
		switch d.Name {
		case "root", "alias":
			if len(d.Args) > 0 {
				c.root, c.rootD = strings.TrimSuffix(d.Args[0], "/"), d
			}
		case "fastcgi_param":
			own = append(own, d)
		case "fastcgi_split_path_info":
			c.split = d
		case "fastcgi_index":
			if len(d.Args) > 0 {
				c.index = d.Args[0]
			}
		case "client_max_body_size":
			c.bodyMax = d
		}
	}
	if own != nil {
		c.params = own
	}
	return c
}

func (g *nginxMig) walk(ds []*Directive, c nctx) {
	c = level(ds, c)
	for _, d := range ds {
		if d.Name == "location" && d.Section {
			for _, t := range d.Block {
				if t.Name == "try_files" && strings.Contains(strings.Join(t.Args, " "), "/index.php") && len(d.Args) == 1 && d.Args[0] == "/" {
					c.front = true
				}
			}
		}
	}
	for _, d := range ds {
		switch {
		case d.Name == "upstream":
			continue // reported with the pass that uses it
		case d.Name == "location" && d.Section:
			g.entry(d, Kept, "", "")
			g.location(d, c)
		case d.Section:
			g.entry(d, Kept, "", "")
			g.walk(d.Block, c)
		default:
			g.plain(d)
		}
	}
}

// plain records a directive that is not part of a translated location.
func (g *nginxMig) plain(d *Directive) {
	switch {
	case d.Name == "#resolved include":
		d.Name = "include"
		g.entry(d, Kept, "", "resolved: the included file's directives are listed in its place")
	case d.Name == "include":
		g.entry(d, Untranslated, "", "the included file was not found: give it too, or the output of nginx -T")
	case strings.HasPrefix(d.Name, "fastcgi_"), strings.HasPrefix(d.Name, "scgi_"), strings.HasPrefix(d.Name, "uwsgi_"):
		g.entry(d, Kept, "", "outside a location that passes requests: nothing to translate")
	default:
		g.entry(d, Kept, "", "")
	}
}

// cgiVars are the params ferry sets itself, from the request.
var cgiVars = map[string]bool{"GATEWAY_INTERFACE": true, "SERVER_SOFTWARE": true, "SERVER_PROTOCOL": true, "SERVER_NAME": true, "SERVER_PORT": true,
	"SERVER_ADDR": true, "REMOTE_ADDR": true, "REMOTE_PORT": true, "REQUEST_METHOD": true, "REQUEST_URI": true, "DOCUMENT_URI": true, "DOCUMENT_ROOT": true,
	"SCRIPT_NAME": true, "SCRIPT_FILENAME": true, "PATH_INFO": true, "QUERY_STRING": true, "CONTENT_TYPE": true, "CONTENT_LENGTH": true,
	"HTTPS": true, "REDIRECT_STATUS": true, "HTTP_PROXY": true, "REQUEST_SCHEME": true}

var clientVars = []string{"$http_", "$arg_", "$cookie_", "$args", "$query_string", "$request_uri", "$uri", "$request_body"}

// location translates one location block.
func (g *nginxMig) location(loc *Directive, outer nctx) {
	c := level(loc.Block, outer)
	var pass *Directive
	for _, d := range loc.Block {
		switch d.Name {
		case "fastcgi_pass", "scgi_pass", "uwsgi_pass", "proxy_pass":
			pass = d
		}
	}
	if pass == nil {
		g.walk(loc.Block, c)
		return
	}
	prefix := ""
	if len(loc.Args) == 1 {
		prefix = loc.Args[0]
	} else if len(loc.Args) == 2 && loc.Args[0] == "^~" {
		prefix = loc.Args[1]
	}
	target := ""
	if len(pass.Args) > 0 {
		target = pass.Args[0]
	}
	backend, host := g.nginxTarget(pass, target)
	params := map[string]*Directive{}
	var scriptFilename string
	httpoxy := false
	for _, p := range c.params {
		if len(p.Args) < 2 {
			continue
		}
		name := p.Args[0]
		if first, ok := params[name]; ok && (len(p.Args) < 3 || p.Args[2] != "if_not_empty") {
			g.finding(p, "fastcgi-param-twice", "give each fastcgi_param once (remove this one or the one at "+first.Where()+")",
				"%s is given twice (first at %s): fcgiwrap and most applications take the first, php-fpm the last, so the two disagree on what runs", name, first.Where())
		} else if !ok {
			params[name] = p
			if name == "SCRIPT_FILENAME" {
				scriptFilename = p.Args[1]
			}
		}
		if name == "HTTP_PROXY" && p.Args[1] == "" {
			httpoxy = true
		}
		if name == "PHP_VALUE" || name == "PHP_ADMIN_VALUE" {
			for _, v := range clientVars {
				if strings.Contains(p.Args[1], v) {
					g.finding(p, "php-value-from-client", "set "+name+" only from constants",
						"%s is built from %s, which the client sends: a client can set any PHP ini value, such as auto_prepend_file", name, v)
					break
				}
			}
		}
	}
	if pass.Name != "proxy_pass" && pass.Name != "uwsgi_pass" && !httpoxy {
		g.finding(pass, "httpoxy", strings.TrimSuffix(pass.Name, "_pass")+`_param HTTP_PROXY ""; (ferry drops the Proxy header itself)`,
			"the client's Proxy header reaches the application as HTTP_PROXY, which many HTTP libraries take as their proxy (httpoxy, CVE-2016-5385)")
	}
	if host != "" && !loopback(host) && pass.Name == "fastcgi_pass" {
		g.finding(pass, "php-fpm-exposed", "have the application listen on 127.0.0.1 or a unix socket (php-fpm: listen = /run/php/php-fpm.sock), or firewall its port",
			"the FastCGI application is reached at %s, beyond this machine: anyone who reaches its port can run any file as SCRIPT_FILENAME", host)
	}
	isPHP := strings.Contains(strings.Join(loc.Args, " "), "php") || strings.Contains(scriptFilename, ".php") || c.split != nil && strings.Contains(strings.Join(c.split.Args, " "), "php")
	tried := false
	for _, d := range loc.Block {
		if d.Name == "try_files" || d.Name == "if" && strings.Contains(strings.Join(d.Args, " "), "-f") {
			tried = true
		}
	}
	var m *mnt
	var mode string
	switch {
	case backend == "":
		mode = "none"
	case pass.Name == "proxy_pass":
		mode = "kept"
	case pass.Name == "uwsgi_pass":
		mode = "uwsgi"
	case pass.Name == "scgi_pass":
		if prefix == "" {
			prefix = "/"
		}
		m = g.mount(pass, prefix, backend, "", 0)
		mode = "scgi"
		if m != nil {
			fmt.Fprintf(&g.front, "# %s: ferry speaks SCGI to the application now\nlocation %s {\n    proxy_pass %s;\n    proxy_set_header Host $host;\n    proxy_set_header Proxy \"\";\n}\n",
				loc.Where(), strings.Join(loc.Args, " "), g.opts.http())
		}
	case isPHP:
		if c.split != nil && !tried {
			g.finding(c.split, "cve-2019-11043", "add try_files $fastcgi_script_name =404; to the location (as Debian's snippets/fastcgi-php.conf does)",
				"fastcgi_split_path_info without a try_files or file check: a crafted URL with a newline underflows php-fpm's buffer (CVE-2019-11043, remote code execution)")
		} else if !tried {
			g.finding(pass, "fix-pathinfo", "add try_files $fastcgi_script_name =404; (or set cgi.fix_pathinfo=0)",
				"PHP locations pass any path ending in .php without checking the script exists: with cgi.fix_pathinfo=1, /uploads/photo.jpg/x.php runs photo.jpg as PHP")
		}
		if c.root == "" {
			g.entry(pass, Untranslated, "", "a PHP location without root: ferry's PHP site needs its document root")
			break
		}
		if g.cfg.Root != "" && g.cfg.Root != c.root {
			g.entry(pass, Untranslated, "", "ferry serves one document root (%s already): run one ferry per site", g.cfg.Root)
			break
		}
		if !g.usedRoot {
			g.cfg.Root, g.usedRoot = c.root, true
			g.entry(c.rootD, Translated, "root", "")
		}
		m = g.mount(pass, "/", backend, c.root, 0)
		if m != nil {
			if c.index != "index.php" {
				m.m.Backend.Query.Set("index", c.index)
			}
			if !outer.front {
				m.m.Backend.Query.Set("front", "")
			}
		}
		mode = "php"
		fmt.Fprintf(&g.front, "# %s: ferry serves this PHP site itself (static files from %s, .php through %s):\n# it can serve it alone; or keep nginx in front with\n#   location / { proxy_pass %s; proxy_set_header Host $host; }\n",
			loc.Where(), c.root, backend, g.opts.http())
	default:
		dir, fixed := "", false
		if v, ok := strings.CutSuffix(scriptFilename, "$fastcgi_script_name"); ok {
			if v == "$document_root" || v == "$realpath_root" {
				v = c.root
			}
			if !strings.Contains(v, "$") {
				dir = v
				if strings.HasPrefix(prefix, "/") {
					dir = path.Join(v, prefix)
				}
			}
		} else if scriptFilename != "" && !strings.Contains(scriptFilename, "$") {
			// one fixed script: the mount is the location's path, as
			// nginx matches it (/gitweb.cgi and /gitweb.cgi/...)
			dir = path.Dir(scriptFilename)
			fixed = true
		}
		if dir == "" {
			g.entry(pass, Untranslated, "", "SCRIPT_FILENAME %q does not name a script directory ferry can confine scripts to", scriptFilename)
			break
		}
		if !strings.HasPrefix(prefix, "/") {
			prefix = "/"
		}
		if !strings.HasSuffix(prefix, "/") && !fixed {
			prefix += "/"
		}
		// A plain cgi: mount runs the same scripts as fcgiwrap did, both
		// behind nginx (ferry's FastCGI listener takes the path from
		// REQUEST_URI) and alone over HTTP, where no SCRIPT_FILENAME comes.
		backend := "cgi:" + dir
		if fixed {
			backend = "cgi:" + scriptFilename
		}
		m = g.mount(pass, prefix, backend, dir, 0)
		if m != nil {
			g.listen(g.opts.fastcgi())
			g.listen(g.opts.http())
			g.checkCGIDir(pass, dir)
			g.frontLocation(loc)
		}
		mode = "cgi"
	}
	if m != nil {
		note, st := "", Translated
		if mode == "cgi" {
			note = "fcgiwrap's job: ferry listens on " + g.opts.fastcgi() + " for nginx (front.conf) and on " + g.opts.http() + " to serve alone, and runs the scripts of " + m.dir + " under " + m.m.Prefix
			if len(loc.Args) > 1 && strings.HasPrefix(loc.Args[0], "~") {
				// a regular expression: ferry mounts prefixes only
				st = Review
				note += "; nginx passed only the paths matching " + loc.Args[len(loc.Args)-1] + ", ferry runs every executable file of " + m.dir + " and serves no static file there: keep it behind nginx's location (front.conf), not alone"
			}
		}
		g.entry(pass, st, mountKey(m, "backend"), note)
	} else if mode == "kept" {
		g.entry(pass, Kept, "", "an HTTP reverse proxy: nginx keeps doing it")
	} else if mode == "uwsgi" {
		g.entry(pass, Untranslated, "", "ferry has no uwsgi back: run the application with uwsgi --http-socket 127.0.0.1:PORT and mount it as http://127.0.0.1:PORT")
	}
	g.locationDirectives(loc, c, m, mode, pass)
}

// locationDirectives records the directives of a location with a pass.
func (g *nginxMig) locationDirectives(loc *Directive, c nctx, m *mnt, mode string, pass *Directive) {
	for _, d := range loc.Block {
		if d == pass {
			continue
		}
		if d.Section {
			g.entry(d, Kept, "", "")
			g.walk(d.Block, c)
			continue
		}
		arg := ""
		if len(d.Args) > 0 {
			arg = d.Args[0]
		}
		switch {
		case m != nil && d.Name == "fastcgi_param" && (arg == "PHP_VALUE" || arg == "PHP_ADMIN_VALUE") && len(d.Args) > 1 && strings.Contains(d.Args[1], "$"):
			g.entry(d, Untranslated, "", "built from nginx variables: ferry sends fixed values only (env of the mount)")
		case m != nil && d.Name == "fastcgi_param" && (arg == "PHP_VALUE" || arg == "PHP_ADMIN_VALUE") && len(d.Args) > 1:
			for _, line := range strings.Split(d.Args[1], "\n") {
				if line = strings.TrimSpace(line); line != "" {
					m.php[arg] = append(m.php[arg], line)
				}
			}
			g.entry(d, Translated, mountKey(m, "env")+"."+arg, "")
		case m != nil && d.Name == "fastcgi_param" && mode == "php":
			g.entry(d, Kept, "", "ferry sets the CGI variables itself; a fixed value needs env of the mount")
		case m != nil && mode == "cgi" && d.Name == "fastcgi_read_timeout":
			g.setOn(d, []*mnt{m}, "cgi_timeout", nginxDuration(arg))
		case m != nil && d.Name == "client_max_body_size":
			g.setOn(d, []*mnt{m}, "max_request_body", strings.ToUpper(arg))
		case m != nil && d.Name == "fastcgi_keep_conn":
			g.entry(d, Translated, "", "ferry keeps its connections to FastCGI applications (max_conns sets how many)")
		case m != nil && mode == "php" && strings.HasSuffix(d.Name, "_timeout"):
			g.entry(d, Untranslated, "", "ferry has no per-request timeout for FastCGI applications; the client's own and cgi_queue_timeout bound a request")
		case d.Name == "fastcgi_split_path_info" && mode == "php":
			g.entry(d, Translated, "", "ferry's PHP site splits the path at .php itself (ext option)")
		case d.Name == "try_files" && mode == "php":
			g.entry(d, Translated, "", "ferry checks the script exists before passing it")
		case d.Name == "fastcgi_index" && m != nil:
			g.entry(d, Translated, mountKey(m, "index"), "")
		case m != nil && d.Name == "fastcgi_param" && mode == "cgi" && len(d.Args) > 1 && !strings.Contains(d.Args[1], "$") && !cgiVars[arg]:
			// fcgiwrap gives scripts its params as their environment
			m.env = addEnv(m.env, arg+"="+d.Args[1])
			g.entry(d, Translated, mountKey(m, "env"), "fcgiwrap passed it to the scripts as environment")
		case d.Name == "fastcgi_param" && mode == "cgi":
			g.entry(d, Kept, "", "nginx keeps sending it to ferry (front.conf)")
		case strings.HasPrefix(d.Name, "fastcgi_") && mode == "php":
			g.entry(d, Kept, "", "ferry sets the CGI variables and FastCGI framing itself")
		case d.Name == "#resolved include" || d.Name == "include":
			g.plain(d)
		default:
			g.entry(d, Kept, "", "")
		}
	}
}

func sortedKeys(m map[string]*Directive) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// nginxTarget turns a pass target into a ferry backend, reporting the
// upstream it names.
func (g *nginxMig) nginxTarget(pass *Directive, target string) (backend, host string) {
	scheme := map[string]string{"fastcgi_pass": "fastcgi", "scgi_pass": "scgi", "uwsgi_pass": "uwsgi", "proxy_pass": "http"}[pass.Name]
	if pass.Name == "proxy_pass" {
		return target, ""
	}
	if u, ok := g.upstreams[target]; ok {
		if u == nil {
			u = g.findUpstream(target)
		}
		g.upstreams[target] = nil
		g.entry(u, Kept, "", "upstream %s: its first server becomes the mount's backend", target)
		target = ""
		for _, s := range u.Block {
			switch {
			case s.Name == "server" && target == "" && len(s.Args) > 0:
				target = s.Args[0]
				g.entry(s, Translated, "", "the mount's backend")
				for _, a := range s.Args[1:] {
					if strings.HasPrefix(a, "max_fails") || strings.HasPrefix(a, "fail_timeout") || strings.HasPrefix(a, "weight") {
						g.entry(s, Untranslated, "", "%s: ferry has one backend per mount, without health checks", a)
					}
				}
			case s.Name == "server":
				g.entry(s, Untranslated, "", "another server of the group: ferry has one backend per mount today; balance with the web server or run one pool")
			case s.Name == "keepalive":
				g.entry(s, Translated, "", "ferry keeps its connections to FastCGI applications (max_conns sets how many)")
			default:
				g.entry(s, Untranslated, "", "ferry has one backend per mount, without balancing options")
			}
		}
	}
	if sock, ok := strings.CutPrefix(target, "unix:"); ok {
		return scheme + "+unix://" + sock, ""
	}
	if target == "" {
		return "", ""
	}
	host = target
	if h, _, ok := strings.Cut(target, ":"); ok {
		host = h
	} else {
		target += ":80"
	}
	return scheme + "://" + target, host
}

func (g *nginxMig) findUpstream(name string) *Directive {
	return &Directive{Name: "upstream", Args: []string{name}}
}

// nginxDuration turns nginx's 60 or 60s or 1m into ferry's spelling.
func nginxDuration(v string) string {
	if strings.Trim(v, "0123456789") == "" {
		return v + "s"
	}
	return v
}

// frontLocation writes a location with its pass pointing to ferry.
func (g *nginxMig) frontLocation(loc *Directive) {
	addr := strings.TrimPrefix(g.opts.fastcgi(), "fastcgi://")
	if a, ok := strings.CutPrefix(g.opts.fastcgi(), "fastcgi+unix://"); ok {
		addr = "unix:" + a
	}
	fmt.Fprintf(&g.front, "# %s: fcgiwrap replaced by ferry\n%s {\n", loc.Where(), loc.Text())
	httpoxy := false
	for _, d := range loc.Block {
		switch {
		case d.File != loc.File:
			// brought in by an include, which the snippet keeps
		case d.Section:
			fmt.Fprintf(&g.front, "    # %s { ... } kept as it was (%s)\n", d.Text(), d.Where())
		case d.Name == "fastcgi_pass":
			fmt.Fprintf(&g.front, "    fastcgi_pass %s;\n", addr)
		case d.Name == "#resolved include":
			fmt.Fprintf(&g.front, "    include %s;\n", strings.Join(d.Args, " "))
		default:
			if d.Name == "fastcgi_param" && len(d.Args) > 1 && d.Args[0] == "HTTP_PROXY" && d.Args[1] == "" {
				httpoxy = true
			}
			fmt.Fprintf(&g.front, "    %s;\n", d.Text())
		}
	}
	if !httpoxy {
		g.front.WriteString("    fastcgi_param HTTP_PROXY \"\";\n")
	}
	g.front.WriteString("}\n")
}
