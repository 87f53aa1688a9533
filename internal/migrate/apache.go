package migrate

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// scope is where an Apache directive sits.
type scope struct {
	vhost int    // 0: the main server
	dir   string // <Directory> path, or a .htaccess file's directory
	loc   string // <Location> path
	files string // <Files>/<FilesMatch> pattern
	// htaccess is true in a .htaccess file, whose directives Apache
	// allows by AllowOverride.
	htaccess bool
	// sect is the <Directory> section, or for a .htaccess file a
	// directive standing for the file; nil elsewhere.
	sect *Directive
	// wrap are the sections between sect (or the top) and the directive:
	// <IfModule>, <Files>, <RequireAny>...
	wrap []*Directive
}

// item is a directive the second pass translates, with its scope.
type item struct {
	d *Directive
	s scope
}

// apacheMig holds what the first pass collected.
type apacheMig struct {
	*mig
	vhosts   int
	docroots map[int]*Directive
	execDirs map[string]*Directive // directory -> Options +ExecCGI
	cgiDirs  map[string]*Directive // directory -> AddHandler/SetHandler cgi-script
	aliases  []item
	makers   []item // directives that make mounts
	settings []item
	php      []item
	// AddHandler/SetHandler fcgid-script, resolved to the FcgidWrapper
	// mount of their directory
	fcgidHandlers []item
	unsetPxy      bool
	phpHandler    bool   // a PHP handler (mod_php's, or php-fpm's SetHandler proxy:) is in the input
	overrides     []item // AllowOverride, by <Directory>
	access        []item // access rules and redirects, which ProxyPass skips in <Directory> and .htaccess
	blocks        []*accessBlock
	conds         *conds // Define and LoadModule so far, as httpd reads
	serverRoot    string // the last ServerRoot read, or Options.ServerRoot
	// mod_wsgi: WSGIDaemonProcess by name, the settings wsgiMount looks
	// up by scope, and those it used
	wsgiDaemons map[string]*Directive
	wsgi        []item
	wsgiUsed    []*Directive
}

// webServerOwn lists directives that are the web server's own job and stay
// with it.
var webServerOwn = map[string]bool{
	"require": true, "allowoverride": true, "servername": true, "serveralias": true, "serveradmin": true, "errorlog": true,
	"customlog": true, "loglevel": true, "logformat": true, "redirect": true, "redirectmatch": true, "directoryindex": true,
	"header": true, "order": true, "allow": true, "deny": true, "satisfy": true, "authtype": true, "authname": true,
	"authuserfile": true, "rewriteengine": true, "rewriterule": true, "rewritecond": true, "listen": true, "servertokens": true,
	"serversignature": true, "adddefaultcharset": true, "addtype": true, "define": true, "undefine": true, "loadmodule": true, "serverroot": true, "sslengine": true, "sslcertificatefile": true,
	"sslcertificatekeyfile": true, "expiresactive": true, "expiresdefault": true, "errordocument": true, "indexoptions": true,
	"proxypassreverse": true, "user": true, "group": true, "keepalive": true, "maxkeepaliverequests": true, "keepalivetimeout": true,
	"setenvif": true, "setenvifnocase": true, "browsermatch": true, "requestheader": true, "scriptlog": true, "dav": true,
	// Debian's stock mods-enabled: the core's, the MPM's, mime,
	// autoindex, negotiation, deflate, reqtimeout, status
	"defaultruntimedir": true, "pidfile": true, "traceenable": true, "mutex": true, "startservers": true,
	"minspareservers": true, "maxspareservers": true, "minsparethreads": true, "maxsparethreads": true,
	"maxrequestworkers": true, "maxclients": true, "maxconnectionsperchild": true, "maxrequestsperchild": true,
	"serverlimit": true, "threadlimit": true, "threadsperchild": true, "typesconfig": true, "addlanguage": true,
	"addcharset": true, "removetype": true, "addencoding": true, "addoutputfilter": true, "addoutputfilterbytype": true,
	"addicon": true, "addiconbytype": true, "addiconbyencoding": true, "addalt": true, "addaltbytype": true,
	"addaltbyencoding": true, "adddescription": true, "defaulticon": true, "readmename": true, "headername": true,
	"indexignore": true, "indexorderdefault": true, "indexstylesheet": true, "languagepriority": true,
	"forcelanguagepriority": true, "requestreadtimeout": true, "extendedstatus": true, "proxystatus": true,
	"deflatecompressionlevel": true,
}

// Apache translates Apache httpd configuration files (or the output of
// apache2ctl -t -D DUMP_INCLUDES) into a ferry configuration. The error is
// a [*ParseError] for input it cannot read.
func Apache(files []string, opts Options) (*Result, error) {
	g := &apacheMig{mig: newMig("apache", files, opts), docroots: map[int]*Directive{}, execDirs: map[string]*Directive{}, cgiDirs: map[string]*Directive{}}
	inputs, err := g.splitPools(files)
	if err != nil {
		return nil, err
	}
	ds, err := loadApache(g.r, inputs, g.opts.serverRoot())
	if err != nil {
		return nil, err
	}
	g.conds = newConds(ds)
	g.serverRoot = g.opts.serverRoot()
	g.walk(ds, scope{})
	if err := g.htaccess(); err != nil {
		return nil, err
	}
	g.translate()
	g.reportPools(g.usedPool())
	if len(g.mounts) > 0 {
		g.listen(g.opts.fastcgi())
		g.listen(g.opts.http())
	}
	res := g.finish()
	res.Front = g.front()
	return res, nil
}

// path is a file name of the input as httpd takes it: cleaned, and a
// relative one under ServerRoot. httpd resolves DocumentRoot with
// ap_server_root_relative; Alias and ScriptAlias targets it keeps as
// written, and a relative one still names a file under ServerRoot
// (httpd 2.4.71, tried by hand: ServerRoot /tmp/rel, ScriptAlias /cgi/
// www/cgi/ runs /tmp/rel/www/cgi/t.sh, whatever the directory httpd is
// started from).
func (g *apacheMig) path(p string) string {
	return cleanDir(serverRootRelative(g.serverRoot, p))
}

// relative says, for the report, where a relative name of the input was
// taken.
func (g *apacheMig) relative(p string) string {
	if p == "" || path.IsAbs(p) {
		return ""
	}
	return fmt.Sprintf("%s is relative: under ServerRoot %s, as httpd takes it", p, g.serverRoot)
}

func cleanDir(p string) string {
	if p == "" {
		return ""
	}
	return path.Clean(p)
}

func (g *apacheMig) walk(ds []*Directive, s scope) {
	for _, d := range ds {
		if _, ok := g.order[d.File]; !ok {
			g.order[d.File] = len(g.order) // the report lists files as httpd reads them
		}
		name := strings.ToLower(d.Name)
		if unset := g.conds.expand(d); unset != "" && !d.Section && !webServerOwn[name] && !accessDirectives[name] {
			g.entry(d, Untranslated, "", "${%s} is not defined by a Define of the input: httpd takes it from its environment (Debian: /etc/apache2/envvars); give a file that defines it, or write the value in", unset)
			continue
		}
		g.conds.read(d)
		if d.Section {
			inner := s
			inner.wrap = append(s.wrap[:len(s.wrap):len(s.wrap)], d)
			switch name {
			case "virtualhost":
				g.vhosts++
				inner.vhost = g.vhosts
				inner.wrap = nil
				g.entry(d, Kept, "", "a virtual host: its dynamic paths are translated below")
			case "directory", "directorymatch":
				if len(d.Args) > 0 {
					inner.dir = cleanDir(d.Args[0])
					if name == "directory" && d.Args[0] != "~" {
						inner.dir = g.path(d.Args[0])
					}
				}
				if name == "directory" {
					inner.sect, inner.wrap = d, nil
				}
				g.entry(d, Kept, "", "")
			case "location", "locationmatch":
				if len(d.Args) > 0 {
					inner.loc = d.Args[0]
				}
				g.entry(d, Kept, "", "")
			case "files", "filesmatch":
				if len(d.Args) > 0 {
					inner.files = d.Args[len(d.Args)-1]
				}
				g.entry(d, Kept, "", "")
			case "ifmodule", "ifdefine", "ifversion":
				holds, known := g.conds.holds(d)
				switch {
				case !holds:
					g.entry(d, Kept, "", "not in effect: %s", notHolding(d))
					g.inert(d.Block, fmt.Sprintf("not in effect: <%s> at %s does not hold", d.Text(), d.Where()))
					continue
				case known:
					g.entry(d, Kept, "", "holds")
				default:
					g.entry(d, Kept, "", "assumed to hold")
				}
			default:
				g.entry(d, Kept, "", "a section of the web server's own; its directives are listed one by one")
			}
			g.walk(d.Block, inner)
			continue
		}
		g.directive(d, name, s)
	}
}

func (g *apacheMig) directive(d *Directive, name string, s scope) {
	arg := func(i int) string {
		if i < len(d.Args) {
			return d.Args[i]
		}
		return ""
	}
	switch {
	case strings.HasPrefix(name, "#resolved"):
		d.Name = strings.TrimPrefix(d.Name, "#resolved ")
		g.entry(d, Kept, "", "resolved from the DUMP_INCLUDES list: the included files are read in its place")
	case (name == "include" || name == "includeoptional") && d.followed:
		if len(d.included) == 0 {
			g.entry(d, Kept, "", "matches no file: nothing included")
			return
		}
		g.entry(d, Kept, "", "followed: %s", strings.Join(d.included, ", "))
	case name == "include" || name == "includeoptional":
		g.entry(d, Untranslated, "", "not followed: give the included files too, or the output of apache2ctl -t -D DUMP_INCLUDES")
	case name == "serverroot" && len(d.Args) == 1:
		// the last one read is httpd's when it resolves names
		g.serverRoot = serverRootRelative(g.serverRoot, d.Args[0])
		g.entry(d, Kept, "", "")
	case name == "documentroot":
		if len(d.Args) == 0 {
			g.entry(d, Untranslated, "", "DocumentRoot without a directory")
			return
		}
		if _, ok := g.docroots[s.vhost]; ok {
			g.entry(d, Untranslated, "", "a second DocumentRoot for the same server")
			return
		}
		g.docroots[s.vhost] = d
	case name == "scriptalias", name == "scriptaliasmatch", name == "fcgidwrapper", name == "proxypass", name == "proxypassmatch",
		name == "perlresponsehandler" || name == "perlhandler", name == "pythonhandler":
		g.makers = append(g.makers, item{d, s})
	case name == "alias" || name == "aliasmatch":
		g.aliases = append(g.aliases, item{d, s})
	case name == "options":
		for _, o := range d.Args {
			if strings.EqualFold(strings.TrimPrefix(o, "+"), "ExecCGI") {
				g.execDirs[s.dir] = d
				return
			}
		}
		g.entry(d, Kept, "", "")
	case name == "addhandler" || name == "sethandler" || name == "addtype":
		h := strings.ToLower(arg(0))
		switch {
		case h == "cgi-script":
			g.cgiDirs[s.dir] = d
		case strings.Contains(h, "x-httpd-php") && !strings.HasSuffix(h, "-source"):
			g.phpHandler = true
			g.makers = append(g.makers, item{d, s})
			if name == "addhandler" {
				g.finding(d, "php-upload-exec", `use <FilesMatch "\.php$"> SetHandler ... </FilesMatch> instead of AddHandler`,
					"AddHandler maps every file with .php among its extensions (photo.php.jpg) to PHP: an upload with such a name runs as PHP")
			}
		case strings.HasPrefix(h, "proxy:"):
			g.phpHandler = true
			g.makers = append(g.makers, item{d, s})
		case h == "fcgid-script":
			g.fcgidHandlers = append(g.fcgidHandlers, item{d, s})
		case h == "perl-script" || h == "mod_python" || h == "python-program":
			g.entry(d, Kept, "", "the handler's module is translated with its Perl/Python handler directive")
		default:
			g.entry(d, Kept, "", "")
		}
	case name == "php_value" || name == "php_flag" || name == "php_admin_value" || name == "php_admin_flag":
		g.php = append(g.php, item{d, s})
		if strings.EqualFold(arg(0), "cgi.fix_pathinfo") && arg(1) == "1" {
			g.finding(d, "fix-pathinfo", "set cgi.fix_pathinfo=0, or have the web server check that the script exists before passing it",
				"cgi.fix_pathinfo=1 lets /uploads/photo.jpg/x.php run photo.jpg as PHP")
		}
	case name == "setenv" || name == "passenv" || name == "unsetenv" || name == "cgipassauth" || name == "cgiscripttimeout" ||
		name == "timeout" || name == "limitrequestbody" || name == "suexecusergroup" || strings.HasPrefix(name, "fcgid"):
		g.settings = append(g.settings, item{d, s})
	case strings.HasPrefix(name, "wsgi"):
		g.wsgiDirective(d, name, s)
	case name == "perlmodule" && strings.HasPrefix(arg(0), "ModPerl::"), name == "perloptions":
		g.entry(d, Translated, "", "nothing to write: CGI scripts print their own headers and load their modules themselves")
	case name == "proxyfcgisetenvif":
		if strings.Contains(strings.ToUpper(arg(1)), "PHP_") && (strings.Contains(arg(2), "%{HTTP") || strings.Contains(arg(2), "%{QUERY_STRING") || strings.Contains(arg(2), "%{REQUEST_URI")) {
			g.finding(d, "php-value-from-client", "set PHP_VALUE only from constants; never from headers, the query or the URL",
				"PHP settings taken from the request: a client can set any PHP ini value, such as auto_prepend_file")
		}
		g.entry(d, Untranslated, "", "ferry sets fixed variables only (env of the mount)")
	case name == "requestheader":
		if strings.EqualFold(arg(0), "unset") && strings.EqualFold(arg(1), "proxy") {
			g.unsetPxy = true
		}
		g.entry(d, Kept, "", "")
	case (name == "setenvif" || name == "setenvifnocase") && strings.Contains(strings.ToUpper(strings.Join(d.Args, " ")), "PHP_VALUE"):
		g.finding(d, "php-value-from-client", "set PHP_VALUE only from constants; never from headers, the query or the URL",
			"PHP_VALUE set from a request attribute: a client can influence PHP ini values")
		g.entry(d, Untranslated, "", "ferry sets fixed variables only (env of the mount)")
	case name == "allowoverride":
		if s.sect != nil && !s.htaccess {
			g.overrides = append(g.overrides, item{d, s})
		}
		g.entry(d, Kept, "", "")
	case name == "hostnamelookups" && !strings.EqualFold(arg(0), "off"):
		g.entry(d, Untranslated, "", "mod_cgi gave scripts the client's host name as REMOTE_HOST; ferry does not look names up (REMOTE_HOST is the address, as RFC 3875 § 4.1.9 allows)")
	case name == "accessfilename" && !(len(d.Args) == 1 && d.Args[0] == ".htaccess"):
		g.entry(d, Untranslated, "", "migrate reads .htaccess files only: give the settings of %s files in the input", strings.Join(d.Args, ", "))
	case name == "hostnamelookups" || name == "accessfilename":
		g.entry(d, Kept, "", "")
	case accessDirectives[name]:
		g.access = append(g.access, item{d, s})
	case webServerOwn[name]:
		g.entry(d, Kept, "", "")
	default:
		g.entry(d, Untranslated, "", "ferry does not know this directive: check whether the scripts depend on it")
	}
}

// docroot returns the document root of a virtual host, or the main
// server's.
func (g *apacheMig) docroot(vhost int) string {
	if d, ok := g.docroots[vhost]; ok && len(d.Args) > 0 {
		return g.path(d.Args[0])
	}
	if d, ok := g.docroots[0]; ok && len(d.Args) > 0 {
		return g.path(d.Args[0])
	}
	return ""
}

// firstVhostRoot returns the document root of the first virtual host
// that has one, which translate makes ferry's root when the main server
// has none, and that virtual host.
func (g *apacheMig) firstVhostRoot() (string, int) {
	for vh := 1; vh <= g.vhosts; vh++ {
		if d, ok := g.docroots[vh]; ok && len(d.Args) > 0 {
			return g.path(d.Args[0]), vh
		}
	}
	return "", 0
}

var scriptAliasMatchRE = regexp.MustCompile(`^\^(/[A-Za-z0-9_./~-]*/)\(\.\*\)\$?$`)

func (g *apacheMig) translate() {
	first := -1
	for vh := 0; vh <= g.vhosts; vh++ {
		d, ok := g.docroots[vh]
		if !ok {
			continue
		}
		if first < 0 {
			first = vh
			g.cfg.Root = g.path(d.Args[0])
			g.entry(d, Translated, "root", "%s", g.relative(d.Args[0]))
		} else {
			g.entry(d, Untranslated, "", "ferry serves one document root: run one ferry per virtual host (this one: --root %s)", g.path(d.Args[0]))
		}
	}
	for _, it := range g.makers {
		g.maker(it)
	}
	g.wsgiSettings()
	for _, it := range g.aliases {
		g.alias(it)
	}
	off := g.cgiOff()
	for dir, d := range g.execDirs {
		if d == nil {
			continue
		}
		if off != "" {
			g.entry(d, Kept, "", "ExecCGI runs nothing: %s", off)
			if h, ok := g.cgiDirs[dir]; ok {
				g.entry(h, Kept, "", "runs nothing: the cgi-script handler is mod_cgi's or mod_cgid's, and neither is loaded")
				if root := g.docroot(0); root != "" && dir != "" && within(dir, root) {
					g.noCGIFinding(h, fmt.Sprintf("the files of %s under %s as files", dir, strings.TrimPrefix(dir, root)+"/"))
				}
			}
			continue
		}
		if h, ok := g.cgiDirs[dir]; ok && dir != "" {
			root := g.docroot(0)
			if root != "" && (dir == root || strings.HasPrefix(dir, root+"/")) {
				prefix := strings.TrimPrefix(dir, root) + "/"
				if m := g.mount(d, prefix, "cgi:"+dir, dir, 0); m != nil {
					g.entry(d, Review, mountKey(m, "backend"), "ExecCGI in the document root: ferry runs every executable file under %s as a script, and serves no static files there", prefix)
					g.entry(h, Translated, mountKey(m, "backend"), "")
					g.checkCGIDir(d, dir)
				}
				continue
			}
		}
		if m := g.mountUnder(dir); m != nil {
			g.entry(d, Translated, mountKey(m, "backend"), "the directory of a script mount")
			continue
		}
		if m := g.mountOf(dir); m != nil {
			g.entry(d, Translated, mountKey(m, "backend"), "the directory of a FastCGI mount")
			continue
		}
		g.entry(d, Kept, "", "ExecCGI on a directory no ScriptAlias, Alias or document root maps to a URL")
	}
	for _, it := range g.fcgidHandlers {
		if m := g.mountOf(it.s.dir); m != nil && m.m.Backend.Scheme == "fastcgi+exec" {
			g.entry(it.d, Translated, mountKey(m, "backend"), "the FcgidWrapper mount runs these files")
			continue
		}
		g.entry(it.d, Untranslated, "", "fcgid-script without a FcgidWrapper: a native FastCGI program; mount it as fastcgi+exec:PROGRAM")
	}
	for dir, h := range g.cgiDirs {
		if _, ok := g.execDirs[dir]; !ok && off != "" {
			g.entry(h, Kept, "", "runs nothing: no Options +ExecCGI, and the cgi-script handler is mod_cgi's or mod_cgid's, neither of which is loaded")
		} else if !ok {
			g.entry(h, Kept, "", "a cgi-script handler without Options +ExecCGI runs nothing")
		}
	}
	for _, it := range g.settings {
		g.setting(it)
	}
	g.phpSettings()
	g.accessRules()
	g.vhostMounts()
	if !g.unsetPxy && len(g.mounts) > 0 {
		g.finding(g.mounts[0].src, "httpoxy", `RequestHeader unset Proxy early (ferry drops the Proxy header itself)`,
			"the client's Proxy header reaches scripts as HTTP_PROXY, which many HTTP libraries take as their proxy (httpoxy, CVE-2016-5385)")
	}
}

// cgiOff says why Apache runs no CGI script at all, when the input loads
// modules and neither mod_cgi nor mod_cgid among them: the cgi-script
// handler that ScriptAlias and AddHandler name is theirs, wherever their
// LoadModule line is. It is empty when one is loaded, or when the input
// has no LoadModule line to tell.
func (g *apacheMig) cgiOff() string {
	if !g.conds.loads || g.conds.modules["cgi"] || g.conds.modules["cgid"] {
		return ""
	}
	return "neither mod_cgi nor mod_cgid is loaded (no LoadModule of the input loads either), so Apache runs no CGI script"
}

// noCGI reports d, which maps URLs to CGI scripts, in an input that loads
// no CGI module (off, from cgiOff): Apache's default handler then sends
// what (such as "the files of DIR under /cgi-bin/ as files") unrun, the
// scripts' source, to whoever asks, so ferry mounts nothing there either.
// httpd 2.4.71 without mod_cgi and mod_cgid, tried by hand: ScriptAlias
// /cgi-bin/ DIR/, ScriptAliasMatch ^/m/(.*) DIR/$1, ScriptAlias /app
// DIR/test.sh and an Alias of an ExecCGI directory with AddHandler
// cgi-script .sh all answered 200 text/x-sh with test.sh's text.
func (g *apacheMig) noCGI(d *Directive, off, what string) {
	g.entry(d, Kept, "", "%s: it sends %s (a script's source, not its output); no mount", off, what)
	g.noCGIFinding(d, what)
}

// noCGIFinding reports CGI scripts Apache sends as files (what, as for
// noCGI).
func (g *apacheMig) noCGIFinding(d *Directive, what string) {
	g.finding(d, "cgi-source-served", "remove the mapping, or load mod_cgid (a2enmod cgid) if the scripts are meant to run, then migrate again",
		"no CGI module is loaded: Apache sends %s to whoever asks: a script's source, and any password in it", what)
}

// vhostMounts marks the mounts of a virtual host for review when mounts
// come from more than one server: ferry does not route by host name.
func (g *apacheMig) vhostMounts() {
	servers := map[int]bool{}
	for _, m := range g.mounts {
		servers[m.vhost] = true
	}
	if len(servers) < 2 {
		return
	}
	for _, m := range g.mounts {
		if m.vhost == 0 {
			continue
		}
		for i := range g.rep.Entries {
			e := &g.rep.Entries[i]
			if e.File == m.src.File && e.Line == m.src.Line && e.Key == mountKey(m, "backend") {
				e.Status = Review
				e.Note = strings.TrimPrefix(e.Note+"; ", "; ") + "from a <VirtualHost>: ferry does not route by host name, so this mount answers for every host; hand it to ferry from that virtual host only"
			}
		}
	}
}

// maker translates a directive that makes a mount.
func (g *apacheMig) maker(it item) {
	d, s := it.d, it.s
	name := strings.ToLower(d.Name)
	arg := func(i int) string {
		if i < len(d.Args) {
			return d.Args[i]
		}
		return ""
	}
	switch name {
	case "scriptalias":
		url, target := arg(0), arg(1)
		if target == "" {
			g.entry(d, Untranslated, "", "ScriptAlias without a target")
			return
		}
		clean := g.path(target)
		fi, err := os.Stat(g.r.path(clean))
		isFile := err == nil && fi.Mode().IsRegular() || err != nil && path.Ext(clean) != "" && !strings.HasSuffix(target, "/")
		if !isFile && !strings.HasSuffix(url, "/") {
			url += "/"
		}
		if off := g.cgiOff(); off != "" {
			if isFile && strings.HasSuffix(url, "/") {
				// Debian's cgit.conf: ScriptAlias /cgit/ "/usr/lib/cgit/cgit.cgi/"
				g.entry(d, Kept, "", "%s: it answers 404 for every URL under %s (%s is a file, and the rest of the URL would be its path info, which Apache refuses for a file); no mount", off, url, clean)
				return
			}
			if isFile {
				g.noCGI(d, off, fmt.Sprintf("%s at %s as a file", clean, url))
				return
			}
			g.noCGI(d, off, fmt.Sprintf("the files of %s under %s as files", clean, url))
			return
		}
		if m := g.mount(d, url, "cgi:"+clean, clean, s.vhost); m != nil {
			g.entry(d, Translated, mountKey(m, "backend"), "%s", g.relative(target))
			if !isFile {
				g.checkCGIDir(d, clean)
				g.execDirs[clean] = nil
				g.cgiDirs[clean] = d
			}
		}
	case "scriptaliasmatch":
		if off := g.cgiOff(); off != "" {
			g.noCGI(d, off, fmt.Sprintf("the files %s maps to (%s) as files", arg(0), arg(1)))
			return
		}
		sm := scriptAliasMatchRE.FindStringSubmatch(arg(0))
		if sm == nil || !strings.HasSuffix(arg(1), "$1") {
			g.entry(d, Untranslated, "", "only ^/PREFIX/(.*) to DIR/$1 maps to a mount; write a mount per script directory")
			return
		}
		dir := g.path(strings.TrimSuffix(arg(1), "$1"))
		if m := g.mount(d, sm[1], "cgi:"+dir, dir, s.vhost); m != nil {
			g.entry(d, Translated, mountKey(m, "backend"), "%s", g.relative(arg(1)))
			g.checkCGIDir(d, dir)
		}
	case "fcgidwrapper":
		cmd := strings.Fields(arg(0))
		if len(cmd) != 1 {
			g.entry(d, Untranslated, "", "a wrapper with arguments: write a script that runs it, and give that to fastcgi+exec:")
			return
		}
		root := g.docroot(s.vhost)
		ext := arg(1)
		backend := "fastcgi+exec:" + cmd[0]
		if ext != "" && ext != ".php" {
			backend += "?ext=" + ext
		}
		if root == "" {
			g.entry(d, Untranslated, "", "no DocumentRoot: ferry runs FastCGI workers as a site of its document root")
			return
		}
		if m := g.mount(d, "/", backend, root, s.vhost); m != nil {
			m.phpSite = true
			g.entry(d, Translated, mountKey(m, "backend"), "")
		}
	case "proxypass", "proxypassmatch":
		g.proxy(d, s, arg(0), arg(1))
	case "sethandler", "addhandler", "addtype":
		h := arg(0)
		if strings.HasPrefix(strings.ToLower(h), "proxy:") {
			g.proxy(d, s, "", strings.TrimPrefix(h, "proxy:"))
			return
		}
		backend, listen := g.poolBackend()
		note := "mod_php becomes php-fpm"
		if backend != "" {
			note += ": the pool of " + listen.Where() + " serves it"
		} else {
			backend = "fastcgi+unix:///run/php/php8.2-fpm.sock"
			note = "mod_php becomes php-fpm: no pool file was given, so this assumes Debian's php8.2-fpm www pool on /run/php/php8.2-fpm.sock (give the pool file after the configuration to take its listen address)"
		}
		ms, notes := g.phpMounts(d, s, backend)
		if len(ms) == 0 {
			if !g.untranslated(d) {
				g.entry(d, Untranslated, "", "mod_php without a DocumentRoot, or an Alias of a directory with PHP files, in its scope")
			}
			return
		}
		g.entry(d, Review, mountsKey(ms, "backend"), "%s", strings.Join(append([]string{note + "; php_value settings become PHP_VALUE params of the mount"}, notes...), "; "))
	case "perlresponsehandler", "perlhandler":
		if !strings.Contains(arg(0), "ModPerl::Registry") && !strings.Contains(arg(0), "ModPerl::PerlRun") {
			g.entry(d, Untranslated, "", "a mod_perl handler module is not a script: port it to PSGI (plackup -s FCGI) and mount it as fastcgi+exec: or http://")
			return
		}
		prefix, dir := g.locationDir(s)
		if dir == "" {
			g.entry(d, Untranslated, "", "run the Registry scripts as CGI: mount their URL prefix to cgi:DIR (the scripts' directory was not found from an Alias)")
			return
		}
		if m := g.mount(d, prefix, "cgi:"+dir, dir, s.vhost); m != nil {
			g.entry(d, Review, mountKey(m, "backend"), "Registry scripts now run as CGI, a process per request: globals no longer persist between requests, and each needs #!/usr/bin/perl and +x")
			g.checkCGIDir(d, dir)
		}
	case "wsgiscriptalias":
		g.wsgiMount(d, s)
	case "pythonhandler":
		g.entry(d, Untranslated, "", "mod_python has no CGI equivalent: port the handler to WSGI, run it with gunicorn or uwsgi --http, and mount its prefix to http://127.0.0.1:PORT (see docs/migrate/mod_python.md)")
	}
}

// locationDir returns the URL prefix and directory of a <Location> or
// <Directory> scope, through the Alias that maps one to the other.
func (g *apacheMig) locationDir(s scope) (prefix, dir string) {
	for _, a := range g.aliases {
		if len(a.d.Args) < 2 || !strings.EqualFold(a.d.Name, "Alias") {
			continue
		}
		url, target := strings.TrimSuffix(a.d.Args[0], "/"), g.path(a.d.Args[1])
		if s.loc != "" && strings.TrimSuffix(s.loc, "/") == url || s.dir != "" && s.dir == target {
			return url + "/", target
		}
	}
	return "", ""
}

var proxyMatchPHP = regexp.MustCompile(`\\\.php`)

// proxy translates ProxyPass, ProxyPassMatch and SetHandler proxy: to a
// FastCGI or SCGI application.
func (g *apacheMig) proxy(d *Directive, s scope, from, to string) {
	low := strings.ToLower(to)
	var backend, host string
	sock, rest, isUnix := strings.Cut(to, "|")
	switch {
	case isUnix && strings.HasPrefix(strings.ToLower(sock), "unix:"):
		scheme := "fastcgi+unix"
		if strings.HasPrefix(strings.ToLower(rest), "scgi:") {
			scheme = "scgi+unix"
		}
		backend = scheme + "://" + strings.TrimPrefix(sock[len("unix:"):], "//")
	case strings.HasPrefix(low, "fcgi://"), strings.HasPrefix(low, "scgi://"):
		hostport, _, _ := strings.Cut(to[len("fcgi://"):], "/")
		host = hostport
		if h, _, ok := strings.Cut(hostport, ":"); ok {
			host = h
		}
		scheme := "fastcgi"
		if strings.HasPrefix(low, "scgi") {
			scheme = "scgi"
		}
		backend = scheme + "://" + hostport
	default:
		g.entry(d, Kept, "", "an HTTP reverse proxy: the web server keeps doing it")
		return
	}
	if host != "" && !loopback(host) {
		g.finding(d, "php-fpm-exposed", "have the application listen on 127.0.0.1 or a unix socket (php-fpm: listen = /run/php/php-fpm.sock), or firewall its port",
			"the FastCGI/SCGI application listens on %s, beyond this machine: anyone who reaches its port can run any script file as any SCRIPT_FILENAME", host)
	}
	php := proxyMatchPHP.MatchString(from) || strings.Contains(s.files, "ph")
	prefix := from
	if php || from == "" {
		ms, notes := g.phpMounts(d, s, backend)
		if len(ms) == 0 {
			if !g.untranslated(d) {
				g.entry(d, Untranslated, "", "a PHP handler without a DocumentRoot, or an Alias of a directory with PHP files, in its scope")
			}
			return
		}
		st := Translated
		if len(notes) > 0 {
			st = Review
		}
		g.entry(d, st, mountsKey(ms, "backend"), "%s", strings.Join(append([]string{"a PHP site: ferry serves static files from root and runs .php through the application, index.php for directories"}, notes...), "; "))
		return
	}
	if strings.EqualFold(d.Name, "ProxyPassMatch") {
		g.entry(d, Untranslated, "", "a ProxyPassMatch that is not a .php pattern: write the mount by hand")
		return
	}
	if m := g.mount(d, prefix, backend, "", s.vhost); m != nil {
		g.entry(d, Translated, mountKey(m, "backend"), "")
	}
}

// alias translates Alias to a directory of CGI scripts; others stay.
func (g *apacheMig) alias(it item) {
	d := it.d
	if len(d.Args) < 2 || !strings.EqualFold(d.Name, "Alias") {
		// AliasMatch into a PHP site's directory: once mod_php is off,
		// Apache would send its .php files as text.
		for _, m := range g.mounts {
			if len(d.Args) < 2 {
				break
			}
			if target, _, _ := strings.Cut(d.Args[1], "$"); m.phpSite && within(g.path(target), m.dir) {
				g.entry(d, Untranslated, "", "maps URLs into the PHP site of %s (mounted at %s): ferry mounts no regular expressions, and without mod_php Apache would send its .php files as text; remove it, or mount each path it maps", m.dir, m.m.Prefix)
				return
			}
		}
		g.entry(d, Kept, "", "")
		return
	}
	dir := g.path(d.Args[1])
	for _, m := range g.mounts {
		if m.dir == dir && m.m.Prefix == strings.TrimSuffix(d.Args[0], "/")+"/" {
			note := "the URL of the scripts' mount"
			if m.phpSite {
				note = "the URL of the PHP site's mount (front.conf's ProxyPass takes the path before the Alias would)"
			}
			g.entry(d, Translated, mountKey(m, "backend"), "%s", note)
			return
		}
	}
	opt, exec := g.execDirs[dir]
	h, cgi := g.cgiDirs[dir]
	if !exec || !cgi || opt == nil {
		if found, _ := g.holdsPHP(d, dir, scope{}); found && !g.phpHandler {
			g.entry(d, Review, "", "%s holds PHP files, and no PHP handler in the input covers it: give the file that sets its handler (Debian: /etc/apache2/mods-enabled/php8.2.conf), or the output of apache2ctl -t -D DUMP_INCLUDES", dir)
			return
		}
		g.entry(d, Kept, "", "static files: the web server keeps serving them")
		return
	}
	prefix := strings.TrimSuffix(d.Args[0], "/") + "/"
	if off := g.cgiOff(); off != "" {
		g.noCGI(d, off, fmt.Sprintf("the files of %s under %s as files", dir, prefix)) // the loop over ExecCGI directories reports its Options and handler
		return
	}
	if m := g.mount(d, prefix, "cgi:"+dir, dir, it.s.vhost); m != nil {
		note := fmt.Sprintf("ferry runs the executable files of %s as scripts: its static files (not executable) are no longer served under %s; leave an Alias for them in the web server", dir, prefix)
		if rel := g.relative(d.Args[1]); rel != "" {
			note += "; " + rel
		}
		g.entry(d, Review, mountKey(m, "backend"), "%s", note)
		g.entry(opt, Translated, mountKey(m, "backend"), "")
		g.entry(h, Translated, mountKey(m, "backend"), "")
		g.execDirs[dir] = nil
		g.checkCGIDir(d, dir)
	}
}

// scoped returns the mounts a scope covers; nil means every mount (the
// defaults).
func (g *apacheMig) scoped(s scope) ([]*mnt, bool) {
	if s.vhost == 0 && s.dir == "" && s.loc == "" && s.files == "" {
		return nil, true
	}
	var out []*mnt
	for _, m := range g.mounts {
		switch {
		case s.dir != "" && (m.dir == s.dir || strings.HasPrefix(m.dir, s.dir+"/") || strings.HasPrefix(s.dir, m.dir+"/") && m.m.Prefix == "/"):
		case s.loc != "" && strings.HasPrefix(m.m.Prefix, strings.TrimSuffix(s.loc, "/")):
		case s.dir == "" && s.loc == "" && (m.vhost == s.vhost || s.vhost == 0 || m.vhost == 0):
			// a virtual host inherits the main server's mounts
		default:
			continue
		}
		out = append(out, m)
	}
	return out, len(out) > 0
}

func (g *apacheMig) setting(it item) {
	d := it.d
	name := strings.ToLower(d.Name)
	ms, ok := g.scoped(it.s)
	if !ok {
		g.entry(d, Untranslated, "", "no ferry mount is under this directive's scope")
		return
	}
	arg := func(i int) string {
		if i < len(d.Args) {
			return d.Args[i]
		}
		return ""
	}
	secs := func(v string) (string, bool) {
		n, err := strconv.Atoi(strings.TrimSuffix(v, "s"))
		return strconv.Itoa(n) + "s", err == nil
	}
	execMounts := func() []*mnt {
		var out []*mnt
		for _, m := range g.mounts {
			if m.m.Backend.Scheme == "fastcgi+exec" && (ms == nil || containsMount(ms, m)) {
				out = append(out, m)
			}
		}
		return out
	}
	switch name {
	case "setenv", "fcgidinitialenv":
		kv := arg(0) + "=" + arg(1)
		if ms == nil {
			g.defEnv = addEnv(g.defEnv, kv)
			g.entry(d, Translated, "defaults.env", "")
			return
		}
		for _, m := range ms {
			m.env = addEnv(m.env, kv)
		}
		g.entry(d, Translated, mountsKey(ms, "env"), "")
	case "passenv":
		g.setOn(d, ms, "pass_env", d.Args...)
	case "unsetenv":
		g.entry(d, Translated, "", "nothing to write: ferry passes scripts only PATH, LANG, LC_*, TZ, TMPDIR and pass_env of its own environment")
	case "cgipassauth":
		g.setOn(d, ms, "cgi_pass_auth", strconv.FormatBool(strings.EqualFold(arg(0), "on")))
	case "cgiscripttimeout", "timeout":
		v, ok := secs(arg(0))
		if !ok {
			g.entry(d, Untranslated, "", "not a number of seconds")
			return
		}
		if name == "timeout" {
			g.setOn(d, ms, "cgi_timeout", v)
			g.rep.Entries[len(g.rep.Entries)-1].Note = "mod_cgi stops a script that is silent for Timeout; ferry's cgi_timeout bounds its whole run"
			return
		}
		g.setOn(d, ms, "cgi_timeout", v)
	case "limitrequestbody", "fcgidmaxrequestlen":
		if arg(0) == "0" {
			g.entry(d, Review, "", "0 means no limit in Apache; ferry keeps a limit: max_request_body stays 1G")
			return
		}
		g.setOn(d, ms, "max_request_body", arg(0))
	case "suexecusergroup":
		var cgi []*mnt
		for _, m := range g.mounts {
			if m.m.Backend.Scheme == "cgi" && (ms == nil || containsMount(ms, m)) {
				cgi = append(cgi, m)
			}
		}
		if len(cgi) == 0 {
			g.entry(d, Untranslated, "", "no CGI mount in its scope: for PHP, run a php-fpm pool as %s:%s (user = / group = in the pool file)", arg(0), arg(1))
			return
		}
		g.setOn(d, cgi, "cgi_user", arg(0))
		g.setOn(d, cgi, "cgi_group", arg(1))
		g.rep.Entries = g.rep.Entries[:len(g.rep.Entries)-1]
		g.rep.Entries[len(g.rep.Entries)-1].Key += ", cgi_group"
	case "fcgidmaxprocesses", "fcgidmaxprocessesperclass":
		g.setOption(d, execMounts(), "workers", arg(0))
	case "fcgidminprocessesperclass":
		if arg(0) == "0" {
			g.entry(d, Translated, "", "ferry's default: workers start with the first request")
			return
		}
		g.setOption(d, execMounts(), "min_workers", arg(0))
	case "fcgidmaxrequestsperprocess":
		g.setOption(d, execMounts(), "max_requests", arg(0))
	case "fcgididletimeout":
		v, ok := secs(arg(0))
		if !ok {
			g.entry(d, Untranslated, "", "not a number of seconds")
			return
		}
		g.setOption(d, execMounts(), "idle_timeout", v)
	case "fcgidiotimeout", "fcgidbusytimeout":
		g.entry(d, Untranslated, "", "ferry bounds a FastCGI request by the client and cgi_queue_timeout only: no per-request time limit for workers")
	default:
		g.entry(d, Untranslated, "", "a mod_fcgid setting ferry has no counterpart for")
	}
}

func containsMount(ms []*mnt, m *mnt) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

func mountsKey(ms []*mnt, key string) string {
	var keys []string
	for _, m := range ms {
		keys = append(keys, mountKey(m, key))
	}
	return strings.Join(keys, ", ")
}

// front writes the Apache snippet that hands the mounts to ferry.
//
// It speaks FastCGI to ferry's fastcgi:// listener (mod_proxy_fcgi), not
// HTTP: scripts then see the client's REMOTE_ADDR, not 127.0.0.1.
func (g *apacheMig) front() string {
	var b strings.Builder
	if len(g.mounts) == 0 {
		return "# nothing to hand to ferry: no CGI, FastCGI, SCGI or PHP path was translated\n"
	}
	b.WriteString("# Apache: hand ferry's paths to its FastCGI listener (a2enmod proxy proxy_fcgi), in\n# place of the ScriptAlias/Alias/handler directives report.txt lists as translated.\n")
	b.WriteString("RequestHeader unset Proxy early\n")
	addr := strings.TrimPrefix(g.opts.fastcgi(), "fastcgi://")
	if sock, ok := strings.CutPrefix(g.opts.fastcgi(), "fastcgi+unix://"); ok {
		addr = "unix:" + sock + "|fcgi://localhost"
	}
	var site *mnt
	// ProxyPass takes the first rule that matches: longer prefixes first.
	ms := slices.Clone(g.mounts)
	sort.SliceStable(ms, func(i, j int) bool { return len(ms[i].m.Prefix) > len(ms[j].m.Prefix) })
	for _, m := range ms {
		if m.m.Prefix == "/" {
			site = m
			continue
		}
		fmt.Fprintf(&b, "ProxyPass %q \"fcgi://%s%s\"\n", m.m.Prefix, addr, m.m.Prefix)
	}
	if site != nil && site.wsgi {
		b.WriteString("# The WSGI application at /, last: the web server keeps the paths of its Alias lines.\n")
		for _, a := range g.aliases {
			if strings.EqualFold(a.d.Name, "Alias") && len(a.d.Args) >= 2 && g.mountOf(g.path(a.d.Args[1])) == nil {
				fmt.Fprintf(&b, "ProxyPass %q \"!\"\n", a.d.Args[0])
			}
		}
		fmt.Fprintf(&b, "ProxyPass \"/\" \"fcgi://%s/\"\n", addr)
	} else if site != nil {
		fmt.Fprintf(&b, "# The PHP site: ferry serves it whole (static files from root too), so it can\n# serve it alone on port 80 (its http:// listener); or behind Apache, last:\nProxyPass \"/\" \"fcgi://%s/\"\n", addr)
	}
	if len(g.blocks) > 0 {
		b.WriteString("# ProxyPass hands these paths to ferry without Apache's <Directory> and .htaccess\n# checks: their access rules again, by URL (Apache merges <Location> sections in order).\n")
		for _, blk := range g.blocks {
			blk.write(&b)
		}
	}
	return b.String()
}

// mountOf returns a mount whose directory (or document root) is dir.
func (g *apacheMig) mountOf(dir string) *mnt {
	for _, m := range g.mounts {
		if dir != "" && m.dir == dir {
			return m
		}
	}
	return nil
}

// mountUnder returns a cgi: mount of dir or of a script in it.
func (g *apacheMig) mountUnder(dir string) *mnt {
	for _, m := range g.mounts {
		if m.m.Backend.Scheme == "cgi" && (m.dir == dir || path.Dir(m.dir) == dir) {
			return m
		}
	}
	return nil
}
