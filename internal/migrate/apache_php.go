package migrate

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// within reports whether dir is base or below it.
func within(dir, base string) bool {
	return dir == base || base == "/" || strings.HasPrefix(dir, base+"/")
}

// dirMatches reports whether the <Directory> path pattern covers dir: it
// names dir or a parent of it, wildcards (* ? [...]) matching within a
// path segment as Apache's do.
func dirMatches(pattern, dir string) bool {
	if !strings.ContainsAny(pattern, "*?[") {
		return within(dir, pattern)
	}
	segs := strings.Split(dir, "/")
	n := len(strings.Split(pattern, "/"))
	if n > len(segs) {
		return false
	}
	ok, err := path.Match(pattern, strings.Join(segs[:n], "/"))
	return ok && err == nil
}

// allowOverride returns the AllowOverride list in force for dir: that of
// the <Directory> section with the longest path covering dir (the last of
// equals), or Apache's default, None.
func (g *apacheMig) allowOverride(dir string, vhost int) []string {
	best, bestLen := []string{"None"}, -1
	for _, it := range g.overrides {
		p := it.s.dir
		if p == "" || (it.s.vhost != 0 && it.s.vhost != vhost) || !dirMatches(p, dir) {
			continue
		}
		if n := len(strings.Split(p, "/")); n >= bestLen {
			best, bestLen = it.d.Args, n
		}
	}
	return best
}

// overrideAllows reports whether .htaccess files in dir may hold
// directives of the AllowOverride category cat (such as "Options"), or of
// any category when cat is "".
func (g *apacheMig) overrideAllows(dir string, vhost int, cat string) bool {
	for _, a := range g.allowOverride(dir, vhost) {
		a, _, _ = strings.Cut(strings.ToLower(a), "=") // Options=Indexes,...
		switch {
		case a == "none":
			return false
		case a == "all", cat == "", a == strings.ToLower(cat):
			return true
		}
	}
	return false
}

// maxDirs bounds the directories searched for .htaccess files and PHP
// files under one document root or Alias.
const maxDirs = 10000

// htaccess reads the .htaccess files under each document root and each
// directory an Alias maps, as <Directory> sections of their directory,
// where AllowOverride lets Apache read them. Symbolic links to
// directories are followed, as Apache follows them (Debian's DokuWiki
// links its templates in from /var/lib).
func (g *apacheMig) htaccess() error {
	var roots []item
	for vh := 0; vh <= g.vhosts; vh++ {
		if d, ok := g.docroots[vh]; ok && len(d.Args) > 0 {
			roots = append(roots, item{d, scope{vhost: vh}})
		}
	}
	for _, a := range g.aliases {
		if strings.EqualFold(a.d.Name, "Alias") && len(a.d.Args) >= 2 {
			roots = append(roots, a)
		}
	}
	read := map[string]bool{} // .htaccess files, by the path Apache knows them by
	for _, rt := range roots {
		root := g.path(rt.d.Args[len(rt.d.Args)-1])
		err := g.walkDirs(rt.d, root, func(dir string, names []string) (bool, error) {
			if !slices.Contains(names, ".htaccess") {
				return true, nil
			}
			name := path.Join(dir, ".htaccess")
			if read[name] {
				return true, nil
			}
			read[name] = true
			data, err := g.r.read(name)
			if err != nil {
				return false, err
			}
			ds, err := ParseApache(name, data, g.r.lim)
			if err != nil {
				return false, err
			}
			if !g.overrideAllows(dir, rt.s.vhost, "") {
				g.inert(ds, fmt.Sprintf("not in effect: AllowOverride None for %s, so Apache does not read this file", dir))
				return true, nil
			}
			sect := &Directive{File: name, Name: ".htaccess", Args: []string{dir}}
			g.walk(ds, scope{vhost: rt.s.vhost, dir: dir, htaccess: true, sect: sect})
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// inert lists directives Apache does not read as kept, with why.
func (g *apacheMig) inert(ds []*Directive, why string) {
	for _, d := range ds {
		g.entry(d, Kept, "", why)
		g.inert(d.Block, why)
	}
}

// walkDirs calls visit for root and each directory below it, breadth
// first, with the names of its entries, until visit returns false.
// Symbolic links to directories are followed; each directory is visited
// once. A root that cannot be read is skipped. Past maxDirs directories
// it stops and says so in the report, at src.
func (g *apacheMig) walkDirs(src *Directive, root string, visit func(dir string, names []string) (bool, error)) error {
	seen := map[string]bool{}
	queue := []string{root}
	for n := 0; len(queue) > 0; n++ {
		if n == maxDirs {
			g.entry(src, Review, "", "more than %d directories under %s: the rest were not searched for .htaccess or PHP files", maxDirs, root)
			return nil
		}
		dir := queue[0]
		queue = queue[1:]
		p := g.r.path(dir)
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		entries, err := os.ReadDir(p)
		if err != nil {
			continue
		}
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name()
			isDir := e.IsDir()
			if e.Type()&fs.ModeSymlink != 0 {
				fi, err := os.Stat(filepath.Join(p, e.Name()))
				isDir = err == nil && fi.IsDir()
			}
			if isDir {
				queue = append(queue, path.Join(dir, e.Name()))
			}
		}
		more, err := visit(dir, names)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// phpFile is the files mod_php runs when its handler's <FilesMatch> does
// not say: Debian's php8.2.conf pattern.
var phpFile = regexp.MustCompile(`.+\.ph(?:ar|p|tml)$`)

// holdsPHP reports whether dir holds a file the handler of scope s runs
// (known is false when dir is not on this machine).
func (g *apacheMig) holdsPHP(src *Directive, dir string, s scope) (found, known bool) {
	re := phpFile
	if s.files != "" {
		if r, err := regexp.Compile(s.files); err == nil {
			re = r
		}
	}
	if fi, err := os.Stat(g.r.path(dir)); err != nil || !fi.IsDir() {
		return false, false
	}
	err := g.walkDirs(src, dir, func(_ string, names []string) (bool, error) {
		found = slices.ContainsFunc(names, re.MatchString)
		return !found, nil
	})
	return found, err == nil
}

// phpMounts mounts the PHP sites a PHP handler (mod_php, or a
// SetHandler proxy:fcgi to php-fpm) in scope s covers: the document root
// at "/", and each directory an Alias maps that holds PHP files at the
// Alias's URL (as ferry's alias option, scripts and static files). mod_php
// runs the file a path names and has no front controller: a missing file
// is 404, so front is off. notes says what the person should check.
func (g *apacheMig) phpMounts(d *Directive, s scope, backend string) (ms []*mnt, notes []string) {
	add := func(prefix, dir string, vhost int, alias bool) {
		m := g.mount(d, prefix, backend, dir, vhost)
		if m == nil {
			return
		}
		m.m.Backend.Query.Set("front", "")
		if alias {
			m.m.Backend.Query.Set("alias", dir)
		}
		m.phpSite = true
		ms = append(ms, m)
	}
	root, vhost := g.docroot(s.vhost), s.vhost
	if root == "" && s.vhost == 0 {
		// a handler of the main server covers its virtual hosts'
		// document roots (Debian: mods-enabled/php8.2.conf and
		// sites-enabled/000-default.conf); ferry serves the first, as
		// its root
		root, vhost = g.firstVhostRoot()
	}
	if root != "" && (s.dir == "" || within(root, s.dir) || within(s.dir, root)) {
		add("/", root, vhost, false)
	}
	for _, a := range g.aliases {
		if !strings.EqualFold(a.d.Name, "Alias") || len(a.d.Args) < 2 || s.vhost != 0 && a.s.vhost != 0 && a.s.vhost != s.vhost {
			continue
		}
		target := g.path(a.d.Args[1])
		if s.dir != "" && !within(target, s.dir) && !within(s.dir, target) {
			continue
		}
		found, known := g.holdsPHP(a.d, target, s)
		if known && !found {
			continue
		}
		if !known {
			notes = append(notes, fmt.Sprintf("%s is not on this machine: mounted as a PHP site, as the handler covers it (if it holds no PHP, drop the mount and keep the Alias)", target))
		}
		add(strings.TrimSuffix(a.d.Args[0], "/")+"/", target, a.s.vhost, true)
	}
	return ms, notes
}

// accessDirectives are the web server's own directives that ProxyPass
// skips when they sit in a <Directory> section or a .htaccess file of a
// path handed to ferry: front.conf repeats them in a <Location>.
var accessDirectives = map[string]bool{
	"require": true, "order": true, "allow": true, "deny": true, "satisfy": true, "authtype": true, "authname": true,
	"authuserfile": true, "authgroupfile": true, "authbasicprovider": true, "redirect": true, "redirectmatch": true,
}

// phpDepth orders PHP settings as Apache merges them: the server's first,
// then <Directory> sections and .htaccess files from the shallowest (a
// section before the .htaccess file of its directory), <Location> last.
func phpDepth(s scope) int {
	switch {
	case s.loc != "":
		return 1 << 20
	case s.dir == "":
		return 0
	}
	n := 2 * strings.Count(s.dir, "/")
	if s.htaccess {
		n++
	}
	return n
}

// phpTargets returns the PHP mounts a php_value of scope s applies to:
// those of the server, or under its directory; a directory below a
// mount's gets a mount of its own (its URL under the mount's), created
// from the mount with the settings it has so far.
func (g *apacheMig) phpTargets(s scope) []*mnt {
	var sites []*mnt
	for _, m := range g.mounts {
		if m.phpSite && (s.vhost == 0 || m.vhost == s.vhost || m.vhost == 0) {
			sites = append(sites, m)
		}
	}
	dir := s.dir
	if s.loc != "" {
		dir = ""
		loc := strings.TrimSuffix(s.loc, "/")
		for _, m := range sites {
			base := strings.TrimSuffix(m.m.Prefix, "/")
			if loc == base || strings.HasPrefix(loc, base+"/") {
				dir = m.dir + strings.TrimPrefix(loc, base)
			}
		}
		if dir == "" {
			return nil
		}
	}
	if dir == "" {
		return sites
	}
	var out []*mnt
	var parent *mnt
	for _, m := range sites {
		switch {
		case within(m.dir, dir):
			out = append(out, m)
		case within(dir, m.dir) && (parent == nil || len(m.dir) > len(parent.dir)):
			parent = m
		}
	}
	if parent == nil || slices.ContainsFunc(out, func(m *mnt) bool { return m.dir == dir }) {
		return out
	}
	prefix := strings.TrimSuffix(parent.m.Prefix, "/") + strings.TrimPrefix(dir, parent.dir) + "/"
	sub := &mnt{m: parent.m, dir: dir, vhost: parent.vhost, src: parent.src, php: map[string][]string{}, env: slices.Clone(parent.env), phpSite: true, sub: true}
	sub.m.Prefix = prefix
	sub.m.Own = slices.Clone(parent.m.Own)
	sub.m.Backend.Query = url.Values{}
	for k, v := range parent.m.Backend.Query {
		sub.m.Backend.Query[k] = slices.Clone(v)
	}
	if sub.m.Backend.Query.Has("alias") {
		sub.m.Backend.Query.Set("alias", dir)
	}
	for k, v := range parent.php {
		sub.php[k] = slices.Clone(v)
	}
	g.mounts = append(g.mounts, sub)
	return append(out, sub)
}

// phpSettings turns php_value and friends into PHP_VALUE and
// PHP_ADMIN_VALUE of the PHP mounts they apply to, as Apache merges them.
func (g *apacheMig) phpSettings() {
	items := slices.Clone(g.php)
	sort.SliceStable(items, func(i, j int) bool { return phpDepth(items[i].s) < phpDepth(items[j].s) })
	for _, it := range items {
		d := it.d
		if len(d.Args) < 2 {
			g.entry(d, Untranslated, "", "want NAME VALUE")
			continue
		}
		admin := strings.Contains(strings.ToLower(d.Name), "admin")
		if it.s.htaccess && admin {
			g.entry(d, Untranslated, "", "Apache refuses %s in .htaccess: every request under %s is a 500; remove it, or move it to the <Directory> section", d.Name, it.s.dir)
			continue
		}
		if it.s.htaccess && !g.overrideAllows(it.s.dir, it.s.vhost, "Options") {
			g.entry(d, Untranslated, "", "Apache refuses it here (AllowOverride for %s lacks Options): every request under it is a 500; remove it, or allow Options", it.s.dir)
			continue
		}
		targets := g.phpTargets(it.s)
		if len(targets) == 0 && slices.ContainsFunc(g.mounts, func(m *mnt) bool { return m.phpSite }) {
			g.entry(d, Kept, "", "for a directory no PHP mount covers: nothing to translate")
			continue
		}
		if len(targets) == 0 {
			g.entry(d, Untranslated, "", "no PHP mount to give it to")
			continue
		}
		env := "PHP_VALUE"
		if admin {
			env = "PHP_ADMIN_VALUE"
		}
		val := d.Args[1]
		if strings.HasSuffix(strings.ToLower(d.Name), "flag") {
			val = map[bool]string{true: "1", false: "0"}[strings.EqualFold(val, "on") || val == "1"]
		}
		var keys []string
		for _, m := range targets {
			m.php[env] = append(m.php[env], d.Args[0]+"="+val)
			keys = append(keys, mountKey(m, "env")+"."+env)
		}
		note := "php-fpm reads it from the " + env + " param ferry sends"
		for _, m := range targets {
			if m.sub && m.dir == it.s.dir {
				note += fmt.Sprintf("; a mount of its own for %s, whose settings came from %s", m.m.Prefix, it.s.dir)
			}
		}
		g.entry(d, Translated, strings.Join(keys, ", "), note)
	}
}
