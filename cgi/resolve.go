package cgi

import (
	"errors"
	"net/http"
	"strings"
)

// A Resolver says which script a request runs: its SCRIPT_NAME, PATH_INFO,
// SCRIPT_FILENAME and DOCUMENT_ROOT, as a [Script]. [Handler] runs that
// script; [Forwarder] passes the meta-variables to an application.
//
// This package has one Resolver for each way web servers map paths to
// scripts: [Mount] (an application or a script mounted at a prefix, the
// WSGI convention), [Dir] (Apache's ScriptAlias), [FilenameDir] (the
// SCRIPT_FILENAME a front web server sends, as fcgiwrap uses it) and
// [PHPSite] (split at an extension, as nginx + php-fpm sites do).
type Resolver interface {
	// Resolve returns the script r runs, or an error saying why there is
	// none. A [*StatusError] in its chain carries the status to answer
	// (404 for no script, 403 for one that must not run, 400 for a path
	// no script may have); an error without one is 403 if it wraps
	// fs.ErrPermission, else 404.
	Resolve(r *http.Request) (Script, error)
}

// ResolverFunc adapts a function to a [Resolver].
type ResolverFunc func(r *http.Request) (Script, error)

// Resolve returns f(r).
func (f ResolverFunc) Resolve(r *http.Request) (Script, error) { return f(r) }

// A ScriptHandler serves a request for a script a [Resolver] has already
// found: [Handler] runs it, [Forwarder] passes the request to the
// application. A layer that resolves the script itself ([PHPSite.Handler])
// hands the result on so, instead of resolving twice.
type ScriptHandler interface {
	// ServeScript serves r with script s or, if err is not nil, answers
	// for the error resolving it (see [Resolver]).
	ServeScript(w http.ResponseWriter, r *http.Request, s Script, err error)
}

// Mount resolves every request under Prefix to the one script or
// application mounted there, by the WSGI convention: SCRIPT_NAME is Prefix
// (without its trailing slash) and PATH_INFO the rest of the path. A path
// outside Prefix is 404. The zero value mounts at "/": SCRIPT_NAME is empty
// and the whole path is PATH_INFO.
type Mount struct {
	// Prefix is the URL path the script is mounted at, such as "/app/" or
	// "/app". If empty, the root.
	Prefix string
	// Filename is SCRIPT_FILENAME. If empty, it is not set.
	Filename string
	// Root is DOCUMENT_ROOT. If empty, it is not set.
	Root string
}

var errOutsideMount = statusError(http.StatusNotFound, errors.New("cgi: path outside the mount"))

// Resolve returns the script mounted at m.Prefix for r.
func (m Mount) Resolve(r *http.Request) (Script, error) {
	name := strings.TrimSuffix(m.Prefix, "/")
	rest, ok := strings.CutPrefix(r.URL.Path, name)
	if !ok || (rest != "" && rest[0] != '/') {
		return Script{}, errOutsideMount
	}
	return Script{Name: name, PathInfo: rest, Filename: m.Filename, Root: m.Root}, nil
}
