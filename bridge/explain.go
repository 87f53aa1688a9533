package bridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"path/filepath"
	"strings"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/appserver"
)

// Explanation says what ferry would do with a request, found by the same
// routing and script resolution that serve it, without running anything:
// the answer to php-fpm's "Primary script unknown".
type Explanation struct {
	// Mount is the prefix of the mount the request reaches, or "" when
	// none does.
	Mount string
	// Backend is the mount's backend address, "static" for the document
	// root, or "" when nothing serves the path.
	Backend string
	// Kind says what serves the request, such as "a CGI script".
	Kind string
	// Status is 0 when the request reaches a script or an application;
	// else the status ferry answers with itself (200 for a static file).
	Status int
	// Reason says why ferry answers itself, or why it cannot say more.
	Reason string
	// Notes say what the explanation cannot know: how the meta-variables
	// differ when the request comes through a web server in front (a
	// FastCGI, SCGI or CGI front), which sends some of its own.
	Notes []string
	// Script is the script that runs and how the path splits
	// (SCRIPT_NAME, PATH_INFO, SCRIPT_FILENAME, DOCUMENT_ROOT).
	Script cgi.Script
	// Vars are the meta-variables the script or application gets, in the
	// order they are sent ("NAME=value"); for an http:// back, the
	// request line and the X-Forwarded-* headers it gets.
	Vars []string
	// Extra are the variables given besides: env, and for a CGI script
	// those passed from ferry's environment.
	Extra []string
}

// Explain says what s would do with r, without doing it.
func (s *Server) Explain(r *http.Request) Explanation {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") {
		return Explanation{Status: http.StatusBadRequest, Reason: "the path does not start with /"}
	}
	m := s.rt.match(p)
	if m == nil {
		if s.rt.static == nil {
			return Explanation{Status: http.StatusNotFound, Reason: "no mount covers " + p + ", and there is no document root"}
		}
		e := Explanation{Backend: "static", Kind: "a static file under " + s.cfg.Root}
		e.Status, e.Reason = staticStatus(s.rt.static, r)
		return e
	}
	e := Explanation{Mount: m.prefix, Backend: m.backend}
	if p+"/" == m.prefix {
		e.Status, e.Reason = http.StatusMovedPermanently, "redirected to "+m.prefix
		return e
	}
	s.resolve(&e, m.handler, r)
	return e
}

// resolve fills e from the mount's handler h: which script r runs, or why
// none. It is the one place explain asks the resolution code of cgi,
// fastcgi and scgi, so that it answers as serving would.
func (s *Server) resolve(e *Explanation, h http.Handler, r *http.Request) {
	software := (&builder{s: s}).serverSoftware()
	var env []string
	script := false // a CGI script, run by cgi.Handler
	switch h := h.(type) {
	case *appserver.Persistent:
		s.resolve(e, h.CGI, r)
		if e.Script.Filename != "" {
			e.Kind += "; run in ferry's workers if persist takes it, else a process per request"
		}
		return
	case *appMount:
		s.resolve(e, h.app, r)
		e.Kind = h.kind + " (SCRIPT_NAME is the prefix)"
		return
	case *cgi.Handler:
		switch res := h.Resolver.(type) {
		case *cgi.Dir:
			e.Kind = "a CGI script of " + res.Path + " (ScriptAlias semantics)"
			sc, err := res.Resolve(r)
			if err != nil {
				e.Status, e.Reason = scriptStatus(err), "no script for "+r.URL.Path+" in "+res.Path+": missing, not executable, a directory, or outside it"
				return
			}
			e.Script = sc
		case *cgi.FilenameDir:
			e.Kind = "a CGI script of " + strings.Join(res.Roots, ", ") + ", named by the front web server"
			e.Reason = "the script is the SCRIPT_FILENAME the front web server sends, if it lies under " + strings.Join(res.Roots, ", ") + "; a plain HTTP request gets 500"
			return
		case nil:
			e.Kind = "the CGI script " + h.Path
			sc, err := cgi.Mount{Prefix: h.ScriptName, Filename: h.Path, Root: h.DocumentRoot}.Resolve(r)
			if err != nil {
				e.Status, e.Reason = scriptStatus(err), err.Error()
				return
			}
			e.Script = sc
		default:
			e.Reason = fmt.Sprintf("ferry cannot explain a %T", res)
			return
		}
		env, script = cgiExtra(h), true
	case *phpSite:
		e.Kind = "a PHP site under " + h.site.Root + " (scripts split at " + orDefault(h.site.Ext, ".php") + ", as nginx + php-fpm do)"
		sc, err := h.site.Resolve(r)
		if err != nil {
			e.Status, e.Reason = scriptStatus(err), err.Error()
			static := s.rt.static
			if h.static != nil {
				static = h.static
			}
			if e.Status == http.StatusNotFound && static != nil {
				if st, why := staticStatus(static, r); st != http.StatusNotFound {
					e.Kind = "a static file under " + static.root + " (never sent to the application)"
					e.Status, e.Reason = st, why
				}
			}
			return
		}
		e.Script, env = sc, h.app.Env
	case *cgi.Forwarder:
		e.Kind = "a " + map[string]string{"fastcgi": "FastCGI", "scgi": "SCGI"}[h.Name] + " application (SCRIPT_NAME is the prefix)"
		sc, err := h.Resolver.Resolve(r)
		if err != nil {
			e.Status, e.Reason = scriptStatus(err), err.Error()
			return
		}
		e.Script, env = sc, h.Env
	case *httpBack:
		e.Kind = "an HTTP application, through ferry's reverse proxy"
		out := r.Clone(r.Context())
		h.rewrite(&httputil.ProxyRequest{In: r, Out: out})
		e.Vars = []string{r.Method + " " + out.URL.String()}
		for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Prefix"} {
			if v := out.Header.Get(k); v != "" {
				e.Vars = append(e.Vars, k+": "+v)
			}
		}
		return
	default:
		e.Reason = fmt.Sprintf("ferry cannot explain a %T", h)
		return
	}
	if script && e.Script.Root == "" {
		e.Script.Root = filepath.Dir(e.Script.Filename) // as cgi.Handler does over HTTP
		if fronts := s.webServerFronts(); len(fronts) > 0 {
			// Since 4bdb37b the script takes a front web server's
			// DOCUMENT_ROOT (cgi.Dir.Root), which explain's request, as
			// over HTTP, does not carry.
			e.Notes = append(e.Notes, "DOCUMENT_ROOT (and PATH_TRANSLATED under it) is the script's directory for a request that brings none, as over HTTP (no --root); through "+
				strings.Join(fronts, ", ")+" it is the DOCUMENT_ROOT the web server sends, if it sends one (nginx's $document_root, Apache's DocumentRoot), as under fcgiwrap")
		}
	}
	vars, err := cgi.AppendEnv(nil, r, e.Script, software)
	if err != nil {
		e.Status, e.Reason = http.StatusBadRequest, err.Error()
		return
	}
	e.Vars, e.Extra = vars, env
	if fronts := s.webServerFronts(); len(fronts) > 0 {
		// A FastCGI, SCGI or CGI front passes on the web server's
		// SERVER_NAME and SERVER_PORT (cgi.Origin), and its HTTP_HOST.
		name, port := varOf(vars, "SERVER_NAME"), varOf(vars, "SERVER_PORT")
		e.Notes = append(e.Notes, "SERVER_NAME, SERVER_PORT and HTTP_HOST are those of a request to "+orDefault(name, "no host")+" on port "+port+"; through "+
			strings.Join(fronts, ", ")+" they are what the web server sends: nginx's $server_name (empty without a server_name), $server_port (the port it listens on) and $host")
	}
}

// ExplainRequest returns the request [Server.Explain] is asked about:
// method and target, a path or a whole URL, from a client at
// 127.0.0.1:54321. A path is asked of the first front of s that listens
// for HTTP on a TCP port (https:// over TLS), as a client of it would ask;
// with none, of localhost on port 80, as a web server in front of a
// FastCGI, SCGI or CGI front typically passes a request on (nginx's
// $server_port is the port it listens on, not ferry's).
func (s *Server) ExplainRequest(method, target string) (*http.Request, error) {
	if strings.HasPrefix(target, "/") {
		base := "http://localhost"
		for _, a := range s.cfg.Listen {
			if a.Protocol() == "http" && a.Network() == "tcp" {
				base = a.Scheme + "://" + a.Host
				break
			}
		}
		target = base + target
	}
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		return nil, fmt.Errorf("bridge: explain: %w", err)
	}
	if r.URL.Scheme == "https" {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: r.URL.Hostname()}
	}
	r.RemoteAddr = net.JoinHostPort("127.0.0.1", "54321")
	r.RequestURI = r.URL.RequestURI()
	return r, nil
}

// varOf returns the value of the meta-variable name in vars, or "".
func varOf(vars []string, name string) string {
	for _, kv := range vars {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// webServerFronts returns the fronts of s through which a web server
// passes requests on with the meta-variables it made (FastCGI, SCGI,
// CGI): DOCUMENT_ROOT among them.
func (s *Server) webServerFronts() []string {
	var fronts []string
	for _, a := range s.cfg.Listen {
		switch a.Protocol() {
		case "fastcgi", "scgi", "cgi":
			fronts = append(fronts, a.String())
		}
	}
	return fronts
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// cgiExtra returns what a CGI script gets besides the meta-variables.
func cgiExtra(h *cgi.Handler) []string {
	if h == nil {
		return cgi.InheritedEnv(nil)
	}
	return append(cgi.InheritedEnv(h.InheritEnv), h.Env...)
}

// scriptStatus is the status ferry answers with when finding the script
// failed with err: the resolver's status error, else 404.
func scriptStatus(err error) int {
	var se *cgi.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return http.StatusNotFound
}

// staticStatus asks the document root's handler how it would answer a
// HEAD of r's path.
func staticStatus(h http.Handler, r *http.Request) (int, string) {
	head := r.Clone(r.Context())
	head.Method = http.MethodHead
	w := &headRecorder{header: http.Header{}}
	h.ServeHTTP(w, head)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	why := "served by ferry from the document root"
	switch {
	case w.status == http.StatusNotFound:
		why = "no such file in the document root (or a dotfile)"
	case w.status == http.StatusForbidden:
		why = "a directory without index.html, or an unreadable file"
	case w.status >= 300 && w.status < 400:
		why = "redirected to " + w.header.Get("Location")
	}
	return w.status, why
}

// headRecorder records the status and header of a response.
type headRecorder struct {
	header http.Header
	status int
}

func (w *headRecorder) Header() http.Header { return w.header }

func (w *headRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

func (w *headRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
