package migrate

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/ferrygw/ferry/bridge"
)

// Options says how to migrate.
type Options struct {
	// Limits bound the parsers.
	Limits Limits
	// Chroot, if set, is a directory absolute paths of the input (includes,
	// .htaccess files, cgi-bin directories) are looked for in first: tests
	// use it to stand a corpus's paths somewhere else.
	Chroot string
	// ServerRoot is Apache's ServerRoot until the input sets one, as
	// httpd's -d: relative Include and DocumentRoot paths are taken under
	// it. If empty, [DefaultServerRoot].
	ServerRoot string
	// HTTP is the address ferry serves the web server's proxied paths on.
	// If empty, http://127.0.0.1:8080.
	HTTP string
	// FastCGI is the address ferry listens on in place of fcgiwrap. If
	// empty, fastcgi://127.0.0.1:9090.
	FastCGI string
}

func (o Options) serverRoot() string {
	if o.ServerRoot == "" {
		return DefaultServerRoot
	}
	return o.ServerRoot
}

func (o Options) http() string {
	if o.HTTP == "" {
		return "http://127.0.0.1:8080"
	}
	return o.HTTP
}

func (o Options) fastcgi() string {
	if o.FastCGI == "" {
		return "fastcgi://127.0.0.1:9090"
	}
	return o.FastCGI
}

// mnt is a mount being built, with where it came from.
type mnt struct {
	m     bridge.Mount
	dir   string // the directory of a cgi: back, or the document root of a PHP site
	vhost int
	src   *Directive
	env   []string
	php   map[string][]string // PHP_VALUE / PHP_ADMIN_VALUE lines
	// phpSite is true for a PHP site (a document root or an Alias served
	// by php-fpm), which php_value settings go to.
	phpSite bool
	// sub is true for a mount of a PHP site's subdirectory made for its
	// own PHP settings.
	sub bool
	// wsgi is true for a WSGIScriptAlias's wsgi: mount.
	wsgi bool
}

// mig is one migration under way.
type mig struct {
	opts    Options
	r       *reader
	cfg     bridge.Config
	mounts  []*mnt
	rep     Report
	defEnv  []string
	order   map[string]int // file -> order of first appearance
	listens []string
	pools   []*fpmPool // php-fpm pool files given as input
}

func newMig(server string, files []string, opts Options) *mig {
	g := &mig{opts: opts, r: &reader{chroot: opts.Chroot, lim: opts.Limits}, cfg: bridge.DefaultConfig(), order: map[string]int{}}
	g.rep.Server, g.rep.Inputs = server, files
	g.rep.Entries, g.rep.Findings = []Entry{}, []Finding{}
	return g
}

func (g *mig) entry(d *Directive, st Status, key, note string, args ...any) {
	if _, ok := g.order[d.File]; !ok {
		g.order[d.File] = len(g.order)
	}
	if len(args) > 0 {
		note = fmt.Sprintf(note, args...)
	}
	g.rep.Entries = append(g.rep.Entries, Entry{File: d.File, Line: d.Line, Directive: d.Text(), Status: st, Key: key, Note: note})
}

func (g *mig) finding(d *Directive, id, fix, msg string, args ...any) {
	g.rep.Findings = append(g.rep.Findings, Finding{ID: id, File: d.File, Line: d.Line, Message: fmt.Sprintf(msg, args...), Fix: fix})
}

// listen adds a front address once.
func (g *mig) listen(addr string) {
	if slices.Contains(g.listens, addr) {
		return
	}
	g.listens = append(g.listens, addr)
	a, err := bridge.ParseAddress(addr)
	if err == nil {
		g.cfg.Listen = append(g.cfg.Listen, a)
	}
}

// mount adds a mount, or says why it cannot.
func (g *mig) mount(d *Directive, prefix, backend, dir string, vhost int) *mnt {
	m, err := bridge.ParseMount(prefix + "=" + backend)
	if err != nil {
		g.entry(d, Untranslated, "", "%v", err)
		return nil
	}
	for _, o := range g.mounts {
		if o.m.Prefix == prefix {
			g.entry(d, Untranslated, "", "%s is already mounted (from %s) to %s: ferry has one backend per path prefix", prefix, o.src.Where(), o.m.Backend)
			return nil
		}
	}
	mt := &mnt{m: m, dir: dir, vhost: vhost, src: d, php: map[string][]string{}}
	g.mounts = append(g.mounts, mt)
	return mt
}

// usedPool returns the listen line of the pool a mount's backend is, or
// nil.
func (g *mig) usedPool() *Directive {
	b, d := g.poolBackend()
	for _, m := range g.mounts {
		if b != "" && strings.HasPrefix(m.m.Backend.String(), b) {
			return d
		}
	}
	return nil
}

// mountKey spells a mount's key path.
func mountKey(m *mnt, key string) string {
	return fmt.Sprintf("mount.%q.%s", m.m.Prefix, key)
}

// setOn sets a setting on the mounts given, or on the defaults with none,
// and records the entry.
func (g *mig) setOn(d *Directive, ms []*mnt, key string, vals ...string) {
	if ms == nil {
		for _, k := range bridge.Keys() {
			if k.Table == "defaults" && k.Name == key {
				if err := k.Set(&g.cfg, vals...); err != nil {
					g.entry(d, Untranslated, "", "%v", err)
					return
				}
				g.entry(d, Translated, "defaults."+key, "")
				return
			}
		}
		panic("migrate: no setting " + key)
	}
	var keys, errs []string
	for _, m := range ms {
		if err := m.m.Set(key, vals...); err != nil {
			errs = append(errs, strings.TrimPrefix(err.Error(), "bridge: "))
			continue
		}
		keys = append(keys, mountKey(m, key))
	}
	switch {
	case len(keys) == 0:
		g.entry(d, Untranslated, "", "%s", strings.Join(errs, "; "))
	case len(errs) > 0 && !allUnused(errs):
		g.entry(d, Review, strings.Join(keys, ", "), "not set on: %s", strings.Join(errs, "; "))
	default:
		g.entry(d, Translated, strings.Join(keys, ", "), "")
	}
}

// setOption sets an option of the mounts' backend address.
func (g *mig) setOption(d *Directive, ms []*mnt, name, val string) {
	if len(ms) == 0 {
		g.entry(d, Untranslated, "", "no fastcgi+exec mount this applies to")
		return
	}
	var keys []string
	for _, m := range ms {
		q := m.m.Backend.Query
		if q == nil {
			q = url.Values{}
		}
		q.Set(name, val)
		m.m.Backend.Query = q
		if _, err := bridge.ParseMount(m.m.Prefix + "=" + m.m.Backend.String()); err != nil {
			q.Del(name)
			g.entry(d, Untranslated, "", "%v", err)
			return
		}
		keys = append(keys, mountKey(m, name))
	}
	g.entry(d, Translated, strings.Join(keys, ", "), "")
}

// finish applies the accumulated env and PHP settings and sorts the
// report.
func (g *mig) finish() *Result {
	if len(g.defEnv) > 0 {
		for _, k := range bridge.Keys() {
			if k.Table == "defaults" && k.Name == "env" {
				_ = k.Set(&g.cfg, g.defEnv...) // each pair was checked when added
			}
		}
	}
	for _, m := range g.mounts {
		env := slices.Clone(m.env)
		for _, name := range []string{"PHP_VALUE", "PHP_ADMIN_VALUE"} {
			if len(m.php[name]) > 0 {
				env = append(env, name+"="+strings.Join(m.php[name], "\n"))
			}
		}
		if len(env) > 0 {
			if err := m.m.Set("env", env...); err != nil {
				g.entry(m.src, Untranslated, "", "%v", err)
			}
		}
		g.cfg.Mounts = append(g.cfg.Mounts, m.m)
	}
	if len(g.cfg.Listen) == 0 {
		g.listen(g.opts.http())
	}
	sort.SliceStable(g.rep.Entries, func(i, j int) bool {
		a, b := g.rep.Entries[i], g.rep.Entries[j]
		if a.File != b.File {
			return g.order[a.File] < g.order[b.File]
		}
		return a.Line < b.Line
	})
	sort.SliceStable(g.rep.Findings, func(i, j int) bool {
		a, b := g.rep.Findings[i], g.rep.Findings[j]
		if a.File != b.File {
			return g.order[a.File] < g.order[b.File]
		}
		return a.Line < b.Line
	})
	return &Result{Config: g.cfg, Report: g.rep}
}

// addEnv adds KEY=VALUE to a list, replacing an earlier value of KEY.
func addEnv(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
	return append(env, kv)
}

// loopback reports whether host (a name or an address) is this machine
// only.
func loopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// checkCGIDir reports a cgi-bin a web server user can write to, or that
// sits in an upload directory.
func (g *mig) checkCGIDir(d *Directive, dir string) {
	for _, part := range strings.Split(strings.ToLower(dir), "/") {
		if strings.Contains(part, "upload") {
			g.finding(d, "cgi-dir-writable", "keep scripts out of upload directories: move them to a directory only root can write (such as /usr/lib/cgi-bin) and serve uploads as static files only",
				"scripts run from %s, an upload directory: an uploaded file with the right name would run as a script", dir)
			return
		}
	}
	fi, err := os.Stat(g.r.path(dir))
	if err != nil {
		return
	}
	if fi.Mode().Perm()&0o002 != 0 || writableByWebUser(fi) {
		g.finding(d, "cgi-dir-writable", "chown root:root "+dir+" && chmod 755 "+dir,
			"%s (mode %v) is writable by the web server's user or by anyone: whoever takes over a script can add scripts", dir, fi.Mode().Perm())
	}
}

// allUnused reports whether every error says a kind of mount does not use
// the setting: those mounts are left alone, as the web server left them.
func allUnused(errs []string) bool {
	for _, e := range errs {
		if !strings.Contains(e, "is not used by") {
			return false
		}
	}
	return true
}

// untranslated reports whether the report already says d is
// untranslated.
func (g *mig) untranslated(d *Directive) bool {
	return slices.ContainsFunc(g.rep.Entries, func(e Entry) bool {
		return e.File == d.File && e.Line == d.Line && e.Status == Untranslated
	})
}
