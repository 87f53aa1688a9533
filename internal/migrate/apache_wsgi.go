package migrate

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
)

// mod_wsgi's defaults for WSGIDaemonProcess (its documentation,
// "WSGIDaemonProcess").
const (
	wsgiProcesses = 1
	wsgiThreads   = 15
)

// wsgiDirective collects a mod_wsgi directive in the first pass; the
// second pass (wsgiMount, wsgiSettings) translates them once every
// WSGIDaemonProcess is known.
func (g *apacheMig) wsgiDirective(d *Directive, name string, s scope) {
	switch name {
	case "wsgiscriptalias":
		g.makers = append(g.makers, item{d, s})
	case "wsgidaemonprocess":
		if len(d.Args) == 0 {
			g.entry(d, Untranslated, "", "WSGIDaemonProcess without a name")
			return
		}
		if g.wsgiDaemons == nil {
			g.wsgiDaemons = map[string]*Directive{}
		}
		g.wsgiDaemons[d.Args[0]] = d
	case "wsgiscriptaliasmatch":
		g.entry(d, Untranslated, "", "ferry mounts no regular expressions: mount each application's prefix to wsgi:FILE")
	case "wsgisocketprefix", "wsgirestrictembedded", "wsgilazyinitialization":
		g.entry(d, Translated, "", "nothing to write: ferry runs no Python in the web server, and its workers use sockets of their own")
	case "wsgiimportscript":
		g.entry(d, Untranslated, "", "ferry loads only the application's file when a worker starts: import the script from it")
	default:
		g.wsgi = append(g.wsgi, item{d, s})
	}
}

// wsgiOption returns the value of NAME=VALUE among args, the options of
// WSGIScriptAlias or WSGIDaemonProcess.
func wsgiOption(args []string, name string) (string, bool) {
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok && strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// wsgiInScope returns the last directive of that name among the mod_wsgi
// settings whose scope covers a mount of file at prefix in vhost: a
// <Directory> of the file or a <Location> of the prefix before its virtual
// host, before the main server.
func (g *apacheMig) wsgiInScope(name, file, prefix string, vhost int) *Directive {
	var best *Directive
	rank := 0
	for _, it := range g.wsgi {
		if !strings.EqualFold(it.d.Name, name) || len(it.d.Args) == 0 {
			continue
		}
		r := 0
		switch {
		case it.s.dir != "" && within(file, it.s.dir), it.s.loc != "" && within(strings.TrimSuffix(prefix, "/"), strings.TrimSuffix(it.s.loc, "/")):
			r = 3
		case it.s.dir != "" || it.s.loc != "":
			continue
		case it.s.vhost != 0 && it.s.vhost == vhost:
			r = 2
		case it.s.vhost == 0:
			r = 1
		default:
			continue
		}
		if r >= rank {
			best, rank = it.d, r
		}
	}
	return best
}

// wsgiMount translates WSGIScriptAlias URL FILE [options] to a wsgi:
// mount of FILE at URL, with the options of its WSGIDaemonProcess.
func (g *apacheMig) wsgiMount(d *Directive, s scope) {
	if len(d.Args) < 2 {
		g.entry(d, Untranslated, "", "WSGIScriptAlias without a URL and a file")
		return
	}
	prefix, target := d.Args[0], d.Args[1]
	file := g.path(target)
	if fi, err := os.Stat(g.r.path(file)); strings.HasSuffix(target, "/") || err == nil && fi.IsDir() {
		g.entry(d, Untranslated, "", "a directory of .wsgi files, one application per file: mount each file's URL to wsgi:FILE")
		return
	}
	q := url.Values{}
	var notes, untranslated []string
	if rel := g.relative(target); rel != "" {
		notes = append(notes, rel)
	}
	st := Translated

	group, ok := wsgiOption(d.Args[2:], "process-group")
	var groupDir *Directive
	if !ok {
		if groupDir = g.wsgiInScope("WSGIProcessGroup", file, prefix, s.vhost); groupDir != nil {
			group = groupDir.Args[0]
		}
	}
	daemon := g.wsgiDaemons[group]
	var user, grp string
	var env []string
	switch {
	case group == "" || group == "%{GLOBAL}":
		st = Review
		notes = append(notes, "mod_wsgi ran it in Apache's own processes (embedded mode): ferry runs it in workers of its own, 4 unless workers= says")
	case daemon == nil:
		g.entry(d, Untranslated, "", "process group %s: no WSGIDaemonProcess of the input defines it", group)
		return
	default:
		opts := daemon.Args[1:]
		procs, threads := wsgiProcesses, wsgiThreads
		for _, o := range []struct {
			name string
			n    *int
		}{{"processes", &procs}, {"threads", &threads}} {
			if v, ok := wsgiOption(opts, o.name); ok {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					g.entry(d, Untranslated, "", "%s=%s of %s is not a positive number", o.name, v, daemon.Where())
					return
				}
				*o.n = n
			}
		}
		q.Set("workers", strconv.Itoa(procs*threads))
		if threads > 1 {
			st = Review
			notes = append(notes, fmt.Sprintf("processes=%d threads=%d become workers=%d: ferry's workers are processes of one request each, so this keeps the requests served at once, at the memory of %d processes; lower it if the application is CPU-bound", procs, threads, procs*threads, procs*threads))
		}
		for _, o := range opts {
			k, v, _ := strings.Cut(o, "=")
			switch strings.ToLower(k) {
			case "processes", "threads", "display-name":
			case "python-home":
				q.Set("python", path.Join(v, "bin", "python3"))
			case "python-path":
				q.Set("pythonpath", v)
			case "home":
				q.Set("chdir", v)
			case "maximum-requests":
				q.Set("max_requests", v)
			case "request-timeout":
				q.Set("timeout", v+"s")
			case "user":
				user = v
			case "group":
				grp = v
			case "lang", "locale":
				env = append(env, "LANG="+v)
			case "inactivity-timeout":
				untranslated = append(untranslated, o+" (ferry stops idle workers only above min_workers: set min_workers= and idle_timeout=)")
			default:
				untranslated = append(untranslated, o+" (no counterpart in ferry)")
			}
		}
	}
	if _, ok := q["python"]; !ok {
		if h := g.wsgiInScope("WSGIPythonHome", file, prefix, s.vhost); h != nil {
			q.Set("python", path.Join(h.Args[0], "bin", "python3"))
		}
	}
	if daemon == nil {
		if p := g.wsgiInScope("WSGIPythonPath", file, prefix, s.vhost); p != nil {
			q.Set("pythonpath", p.Args[0])
		}
	}
	if c, ok := wsgiOption(d.Args[2:], "callable-object"); ok {
		q.Set("callable", c)
	} else if c := g.wsgiInScope("WSGICallableObject", file, prefix, s.vhost); c != nil {
		q.Set("callable", c.Args[0])
	}
	backend := "wsgi:" + file
	if len(q) > 0 {
		backend += "?" + q.Encode()
	}
	m := g.mount(d, prefix, backend, path.Dir(file), s.vhost)
	if m == nil {
		return
	}
	m.wsgi = true
	for _, kv := range env {
		m.env = addEnv(m.env, kv)
	}
	var creds []string
	for _, o := range []struct{ key, val string }{{"cgi_user", user}, {"cgi_group", grp}} {
		if o.val == "" {
			continue
		}
		if err := m.m.Set(o.key, o.val); err != nil {
			untranslated = append(untranslated, fmt.Sprintf("%s=%s (%v)", o.key, o.val, err))
			continue
		}
		creds = append(creds, fmt.Sprintf("%s = %q", o.key, o.val))
	}
	if len(creds) > 0 {
		st = Review
		notes = append(notes, strings.Join(creds, ", ")+": ferry can start the workers so only when it runs as root, as Apache started mod_wsgi's daemons")
	}
	if len(untranslated) > 0 {
		st = Review
		notes = append(notes, "not translated: "+strings.Join(untranslated, ", "))
	}
	key := mountKey(m, "backend")
	g.entry(d, st, key, "%s", strings.Join(notes, "; "))
	if daemon != nil {
		g.entry(daemon, Translated, key, "the mount's workers")
		g.wsgiUsed = append(g.wsgiUsed, daemon)
	}
	if groupDir != nil {
		g.entry(groupDir, Translated, key, "its WSGIDaemonProcess is the mount's workers")
		g.wsgiUsed = append(g.wsgiUsed, groupDir)
	}
}

// wsgiSettings reports the mod_wsgi settings wsgiMount did not use.
func (g *apacheMig) wsgiSettings() {
	used := map[*Directive]bool{}
	for _, d := range g.wsgiUsed {
		used[d] = true
	}
	wsgiMounts := func() []*mnt {
		var ms []*mnt
		for _, m := range g.mounts {
			if m.wsgi {
				ms = append(ms, m)
			}
		}
		return ms
	}
	for _, d := range g.wsgiDaemons {
		if !used[d] {
			g.entry(d, Kept, "", "no WSGIScriptAlias of the input runs in this process group")
		}
	}
	for _, it := range g.wsgi {
		d := it.d
		if used[d] {
			continue
		}
		arg := ""
		if len(d.Args) > 0 {
			arg = d.Args[0]
		}
		switch strings.ToLower(d.Name) {
		case "wsgiprocessgroup":
			g.entry(d, Kept, "", "no WSGIScriptAlias of the input is in its scope")
		case "wsgipythonhome", "wsgipythonpath", "wsgicallableobject":
			if ms := wsgiMounts(); len(ms) > 0 {
				g.entry(d, Translated, mountsKey(ms, "backend"), "")
			} else {
				g.entry(d, Kept, "", "no WSGIScriptAlias of the input")
			}
		case "wsgiapplicationgroup":
			if arg == "%{GLOBAL}" {
				g.entry(d, Translated, "", "nothing to write: ferry's workers run the application in Python's main interpreter, which %{GLOBAL} asks for (C extensions such as numpy work)")
				continue
			}
			g.entry(d, Review, "", "ferry runs each mount's application in worker processes of its own, in the main interpreter: applications mod_wsgi put in one application group no longer share an interpreter")
		case "wsgipassauthorization":
			if strings.EqualFold(arg, "on") {
				g.entry(d, Translated, "", "nothing to write: ferry gives wsgi: applications the Authorization header (HTTP_AUTHORIZATION)")
				continue
			}
			g.entry(d, Review, "", "ferry gives wsgi: applications the Authorization header (HTTP_AUTHORIZATION), which mod_wsgi kept from them: check the application does not take it for a login Apache checked")
		default:
			g.entry(d, Untranslated, "", "a mod_wsgi setting ferry has no counterpart for")
		}
	}
}
