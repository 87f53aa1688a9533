package bridge

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// Address is a front or back address in ferry's one spelling:
//
//	http://HOST:PORT
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
//
// A +unix listen address takes ?mode=0660 for the socket's permissions.
type Address struct {
	// Scheme is "http", "fastcgi", "fastcgi+unix", "fastcgi+fd", "scgi",
	// "scgi+unix" or "cgi".
	Scheme string
	// Host is HOST:PORT for TCP schemes, the descriptor number for +fd.
	Host string
	// Path is the socket path for +unix schemes, the file or directory for
	// cgi, and the URL path (if any) for the others.
	Path string
	// Query holds options given after "?".
	Query url.Values
}

// String returns the address in its canonical spelling.
func (a Address) String() string {
	switch {
	case a.Scheme == "cgi" || a.Scheme == "fastcgi+exec":
		if len(a.Query) > 0 {
			return a.Scheme + ":" + a.Path + "?" + a.Query.Encode()
		}
		return a.Scheme + ":" + a.Path
	case strings.HasSuffix(a.Scheme, "+unix"):
		return a.Scheme + "://" + a.Path
	}
	return a.Scheme + "://" + a.Host + a.Path
}

// Network returns the network to dial or listen on: "tcp", "unix", or "fd"
// for a handed-over descriptor.
func (a Address) Network() string {
	switch {
	case strings.HasSuffix(a.Scheme, "+unix"), a.Scheme == "fastcgi+exec":
		return "unix"
	case strings.HasSuffix(a.Scheme, "+fd"):
		return "fd"
	}
	return "tcp"
}

// Protocol returns the protocol spoken: "http", "fastcgi", "scgi" or "cgi".
func (a Address) Protocol() string {
	p, _, _ := strings.Cut(a.Scheme, "+")
	return p
}

// ParseAddress parses an address in ferry's spelling (see [Address]). A cgi
// path is made absolute.
func ParseAddress(s string) (Address, error) {
	if rest, ok := strings.CutPrefix(s, "fastcgi+exec:"); ok {
		a, err := ParseAddress("cgi:" + rest)
		if err != nil {
			return Address{}, fmt.Errorf("bridge: address %q: want fastcgi+exec:/path/to/worker[?workers=N&max_requests=N&min_workers=N&idle_timeout=D]", s)
		}
		a.Scheme = "fastcgi+exec"
		return a, nil
	}
	if rest, ok := strings.CutPrefix(s, "cgi:"); ok {
		rest = strings.TrimPrefix(rest, "//")
		rest, rawQuery, _ := strings.Cut(rest, "?")
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return Address{}, fmt.Errorf("bridge: address %q: %w", s, err)
		}
		if rest == "" {
			// As a front: this process is the CGI program a web server runs.
			return Address{Scheme: "cgi", Query: q}, nil
		}
		p, err := filepath.Abs(rest)
		if err != nil {
			return Address{}, fmt.Errorf("bridge: address %q: %w", s, err)
		}
		return Address{Scheme: "cgi", Path: p, Query: q}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return Address{}, fmt.Errorf("bridge: address %q: %w", s, err)
	}
	a := Address{Scheme: strings.ToLower(u.Scheme), Query: u.Query()}
	switch a.Scheme {
	case "http", "fastcgi", "scgi":
		if u.Host == "" || u.Port() == "" {
			return Address{}, fmt.Errorf("bridge: address %q: want %s://HOST:PORT", s, a.Scheme)
		}
		a.Host, a.Path = u.Host, u.Path
	case "fastcgi+fd", "http+fd", "scgi+fd":
		if _, err := strconv.Atoi(u.Host); err != nil || u.Path != "" {
			return Address{}, fmt.Errorf("bridge: address %q: want %s://N with N a file descriptor number", s, a.Scheme)
		}
		a.Host = u.Host
	case "fastcgi+unix", "scgi+unix":
		if u.Host != "" || u.Path == "" {
			return Address{}, fmt.Errorf("bridge: address %q: want %s:///path/to.sock (three slashes)", s, a.Scheme)
		}
		a.Path = u.Path
	case "":
		return Address{}, fmt.Errorf("bridge: address %q has no scheme; want http://, fastcgi://, fastcgi+unix://, scgi://, scgi+unix:// or cgi:", s)
	default:
		return Address{}, fmt.Errorf("bridge: address %q: unknown scheme %q; want http, fastcgi, fastcgi+unix, scgi, scgi+unix or cgi", s, a.Scheme)
	}
	return a, nil
}
