package bridge

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// form is how the part of an address after its scheme is spelled.
type form int

const (
	formHostPort form = iota // scheme://HOST:PORT[/path]
	formUnix                 // scheme:///path/to.sock
	formFD                   // scheme://N, a descriptor number
	formPath                 // scheme:/path (cgi: alone is the CGI front)
)

// scheme describes one scheme of ferry's address spelling: what it speaks,
// how it is spelled, and whether it can be a front (listen) or a back
// (mount). It is the one place schemes are known; parsing, the network,
// the checks of fronts and the backend table all read it.
type scheme struct {
	name     string
	protocol string // "http", "fastcgi", "scgi" or "cgi"
	network  string // "tcp", "unix" or "fd"
	form     form
	front    bool
	back     bool
	admin    bool     // can be the admin listener's address (Config.Admin)
	usage    string   // the spelling, for error messages
	options  []Option // the options it takes as a front or the admin listener's address
	required []string // the options it cannot do without
}

// unixSocketOptions are the options of a unix socket ferry listens on.
var unixSocketOptions = []Option{
	{Name: "mode", Type: FileMode, Default: "0777 less the umask", Doc: "the socket file's permissions: the default, what bind(2) gives, lets only ferry's user connect under the usual umask 022 (0755)"},
	{Name: "owner", Type: String, Default: "ferry's user", Doc: "the socket file's owner, a user name or uid (ferry must run as root to give it away)"},
	{Name: "group", Type: String, Default: "ferry's group", Doc: "the socket file's group, a group name or gid: www-data lets nginx's and Apache's workers in with mode=0660"},
}

// tlsOptions are the options of an https:// front.
var tlsOptions = []Option{
	{Name: "cert", Type: String, Default: "none: required", Doc: "the PEM certificate file (the chain after it), read again when it changes"},
	{Name: "key", Type: String, Default: "none: required", Doc: "the PEM private key file, read again when it changes"},
}

// schemes lists every scheme, in the order error messages name them.
var schemes = [...]scheme{
	{name: "http", protocol: "http", network: "tcp", form: formHostPort, front: true, back: true, admin: true, usage: "http://HOST:PORT[/base]"},
	{name: "https", protocol: "http", network: "tcp", form: formHostPort, front: true, usage: "https://HOST:PORT?cert=FILE&key=FILE",
		options: tlsOptions, required: []string{"cert", "key"}},
	{name: "fastcgi", protocol: "fastcgi", network: "tcp", form: formHostPort, front: true, back: true, usage: "fastcgi://HOST:PORT"},
	{name: "fastcgi+unix", protocol: "fastcgi", network: "unix", form: formUnix, front: true, back: true, usage: "fastcgi+unix:///path/to.sock", options: unixSocketOptions},
	{name: "fastcgi+exec", protocol: "fastcgi", network: "unix", form: formPath, back: true, usage: "fastcgi+exec:/path/to/worker"},
	{name: "scgi", protocol: "scgi", network: "tcp", form: formHostPort, front: true, back: true, usage: "scgi://HOST:PORT"},
	{name: "scgi+unix", protocol: "scgi", network: "unix", form: formUnix, front: true, back: true, usage: "scgi+unix:///path/to.sock", options: unixSocketOptions},
	{name: "cgi", protocol: "cgi", network: "tcp", form: formPath, front: true, back: true, usage: "cgi:/path (a directory or a script; cgi: alone as a front)"},
	{name: "wsgi", protocol: "scgi", network: "unix", form: formPath, back: true, usage: "wsgi:/path/to/wsgi.py or wsgi:package.module:callable"},
	{name: "psgi", protocol: "scgi", network: "unix", form: formPath, back: true, usage: "psgi:/path/to/app.psgi"},
	{name: "fastcgi+fd", protocol: "fastcgi", network: "fd", form: formFD, front: true, usage: "fastcgi+fd://N"},
	{name: "http+fd", protocol: "http", network: "fd", form: formFD, front: true, usage: "http+fd://N"},
	{name: "scgi+fd", protocol: "scgi", network: "fd", form: formFD, front: true, usage: "scgi+fd://N"},
	{name: "unix", protocol: "http", network: "unix", form: formUnix, admin: true, usage: "unix:///path/to.sock", options: unixSocketOptions},
}

// lookupScheme returns the scheme named name, or nil.
func lookupScheme(name string) *scheme {
	for i := range schemes {
		if schemes[i].name == name {
			return &schemes[i]
		}
	}
	return nil
}

// schemeNames lists the schemes for which keep is true, spelled as in
// addresses ("http://", "cgi:").
func schemeNames(keep func(*scheme) bool) string {
	var names []string
	for i := range schemes {
		if s := &schemes[i]; keep(s) {
			if s.form == formPath {
				names = append(names, s.name+":")
			} else {
				names = append(names, s.name+"://")
			}
		}
	}
	return strings.Join(names, ", ")
}

// Address is a front or back address in ferry's one spelling:
//
//	http://HOST:PORT       https://HOST:PORT?cert=FILE&key=FILE   (a front)
//	fastcgi://HOST:PORT    fastcgi+unix:///run/app.sock
//	scgi://HOST:PORT       scgi+unix:///run/app.sock
//	fastcgi+fd://0         (a listening socket handed over as a file descriptor:
//	http+fd://3             0 from spawn-fcgi or mod_fcgid, 3 and up from systemd)
//	cgi:/usr/lib/cgi-bin   (a directory)   cgi:/path/script   (one script)
//	cgi:                   (as a front: ferry is the CGI program a web server
//	                        runs, and serves that one request: cgi-fcgi's job)
//	fastcgi+exec:/usr/bin/php-cgi?workers=4&max_requests=500&min_workers=1&idle_timeout=10s   (FastCGI workers
//	                        ferry starts and supervises, on a socket it makes)
//	cgi:/usr/lib/cgi-bin?from=script-filename   (the script the front web
//	                        server names in SCRIPT_FILENAME, confined to the
//	                        directory: fcgiwrap's behaviour)
//	cgi:/usr/lib/cgi-bin?persist=perl   (its Perl scripts kept compiled in
//	                        workers ferry runs; persist=php: its .php files
//	                        in php-cgi workers)
//	wsgi:/srv/app/wsgi.py?callable=application&workers=4   (a Python WSGI
//	wsgi:mysite.wsgi:application?chdir=/srv/mysite          application, or a
//	                        PSGI one with psgi:/srv/app/app.psgi, in workers
//	                        ferry starts and supervises)
//
// Options follow "?"; each kind of back declares the ones it takes (see
// [Backends]), a +unix listen address takes ?mode=0660&owner=USER&group=GROUP
// for the socket file, and an https:// front ?cert=FILE&key=FILE.
type Address struct {
	// Scheme is "http", "https" (a front only), "fastcgi", "fastcgi+unix",
	// "fastcgi+fd", "scgi", "scgi+unix", "cgi", "wsgi", "psgi", or "unix"
	// (the admin listener's socket only).
	Scheme string
	// Host is HOST:PORT for TCP schemes, the descriptor number for +fd.
	Host string
	// Path is the socket path for +unix schemes, the file or directory for
	// cgi, wsgi and psgi (or the module for wsgi), and the URL path (if
	// any) for the others.
	Path string
	// Query holds options given after "?".
	Query url.Values
}

func (a Address) scheme() *scheme { return lookupScheme(a.Scheme) }

// String returns the address in its canonical spelling.
func (a Address) String() string {
	s := a.scheme()
	if s == nil {
		return a.Scheme + "://" + a.Host + a.Path
	}
	var b strings.Builder
	switch s.form {
	case formPath:
		b.WriteString(a.Scheme + ":" + a.Path)
	case formUnix:
		b.WriteString(a.Scheme + "://" + escapePath(a.Path))
	default:
		b.WriteString(a.Scheme + "://" + a.Host + escapePath(a.Path))
	}
	if len(a.Query) > 0 {
		b.WriteString("?" + a.Query.Encode())
	}
	return b.String()
}

// escapePath spells the path of a URL-form address as it is parsed back:
// a "?", "#", "%" or space in it escaped ("/a?b" is "/a%3Fb").
func escapePath(p string) string {
	u := url.URL{Path: p}
	return u.EscapedPath()
}

// Network returns the network to dial or listen on: "tcp", "unix", or "fd"
// for a handed-over descriptor.
func (a Address) Network() string {
	if s := a.scheme(); s != nil {
		return s.network
	}
	return "tcp"
}

// Protocol returns the protocol spoken: "http", "fastcgi", "scgi" or "cgi".
func (a Address) Protocol() string {
	if s := a.scheme(); s != nil {
		return s.protocol
	}
	p, _, _ := strings.Cut(a.Scheme, "+")
	return p
}

// ParseAddress parses an address in ferry's spelling (see [Address]). A cgi,
// fastcgi+exec, wsgi or psgi path is made absolute (a wsgi module name is
// kept). Options are checked against what
// the address is used for by [ParseMount] and [New].
func ParseAddress(s string) (Address, error) {
	a, err := parseAddress(s)
	if err != nil {
		return Address{}, fmt.Errorf("bridge: address %q: %w", s, err)
	}
	return a, nil
}

// parseAddress is ParseAddress with errors that do not repeat the address.
func parseAddress(s string) (Address, error) {
	if _, port, err := net.SplitHostPort(s); err == nil && port != "" && !strings.Contains(s, "/") {
		if _, err := strconv.Atoi(port); err == nil {
			return Address{}, fmt.Errorf("no scheme; did you mean http://%s (or fastcgi://, scgi://)?", s)
		}
	}
	name, rest, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return Address{}, fmt.Errorf("no scheme; want %s", schemeNames(func(*scheme) bool { return true }))
	}
	name = strings.ToLower(name)
	sc := lookupScheme(name)
	if sc == nil {
		return Address{}, fmt.Errorf("unknown scheme %q; want %s", name, schemeNames(func(*scheme) bool { return true }))
	}
	if sc.form == formPath {
		rest = strings.TrimPrefix(rest, "//")
		p, rawQuery, _ := strings.Cut(rest, "?")
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return Address{}, fmt.Errorf("options: %w", err)
		}
		a := Address{Scheme: sc.name, Query: q}
		if p == "" {
			if sc.name != "cgi" {
				return Address{}, fmt.Errorf("want %s", sc.usage)
			}
			return a, nil // as a front: this process is the CGI program a web server runs
		}
		if sc.name == "wsgi" && isModule(p) {
			a.Path = p // a module, imported by name
			return a, nil
		}
		if a.Path, err = filepath.Abs(p); err != nil {
			return Address{}, err
		}
		return a, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return Address{}, err
	}
	a := Address{Scheme: sc.name, Query: u.Query()}
	if strings.ContainsFunc(u.Path, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return Address{}, fmt.Errorf("want a path without control characters (such as %%00)")
	}
	switch sc.form {
	case formHostPort:
		// A name starting with "_" is an SRV record's
		// (_service._proto.name), which gives the ports.
		if u.Host == "" || (u.Port() == "" && !strings.HasPrefix(u.Host, "_")) {
			return Address{}, fmt.Errorf("want %s", sc.usage)
		}
		// url.Parse takes any digits as a port; the kernel takes 16 bits,
		// and a larger one would only fail at listen or dial, where no
		// file line names it. 0 stays: a front on a port the kernel picks.
		if p := u.Port(); p != "" {
			if _, err := strconv.ParseUint(p, 10, 16); err != nil {
				return Address{}, fmt.Errorf("port %s: want a port number up to 65535", p)
			}
		}
		a.Host, a.Path = u.Host, u.Path
	case formFD:
		if _, err := strconv.Atoi(u.Host); err != nil || u.Path != "" {
			return Address{}, fmt.Errorf("want %s with N a file descriptor number", sc.usage)
		}
		a.Host = u.Host
	case formUnix:
		if u.Host != "" || u.Path == "" {
			return Address{}, fmt.Errorf("want %s (three slashes)", sc.usage)
		}
		a.Path = u.Path
	}
	return a, nil
}
