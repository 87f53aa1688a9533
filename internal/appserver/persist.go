package appserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/ferrygw/ferry/cgi"
	"github.com/rs/zerolog"
)

// FallbackHeader is the response header with which the Perl CGI workers
// send a script back to ferry, to be run as a CGI process; its value is
// "cgi".
const FallbackHeader = "X-Ferry-Fallback"

// NoContentLengthHeader marks a request forwarded over SCGI whose CGI
// environment has no CONTENT_LENGTH (see [Persistent.SCGI]).
const NoContentLengthHeader = "X-Ferry-No-Content-Length"

// Persistent serves a directory of CGI scripts as a cgi: mount does (the
// CGI handler's resolver, a [cgi.Dir], finds the script of each request,
// with ScriptAlias semantics), but runs the scripts Accept takes in
// long-lived workers: persistent CGI, opt-in per mount. The other scripts,
// nph- scripts, and those the workers send back run as CGI processes
// through the CGI handler.
//
// Which scripts run where is decided per script and version (its file's
// device, inode, size and modification time): a script that changes on
// disk is looked at again, and the workers compile it again.
type Persistent struct {
	// CGI runs as CGI processes the scripts that do not run in the
	// workers, and its Resolver (a [cgi.Dir]) finds the script of each
	// request. It is required, with its Resolver.
	CGI *cgi.Handler
	// Workers forwards a request to the workers: the [cgi.Forwarder] of
	// scgi.NewHandler or fastcgi.NewHandler with [ScriptOf] as its
	// resolver, usually behind [Workers.Handler]. It is required.
	Workers http.Handler
	// Accept reports whether the script at filename runs in the workers,
	// such as [IsPHP] or [IsPerl]. If nil, every script does.
	Accept func(filename string) bool
	// Fallback says that the workers may send a script back (a response
	// with FallbackHeader, sent before they read the request body): the
	// body of a request for a script not yet known to run in the workers
	// is spooled first, so that it can go to the CGI process instead, and
	// a script sent back runs as CGI until it changes.
	Fallback bool
	// Limits bound the bodies spooled for Fallback.
	Limits cgi.BodyLimits
	// SCGI says the workers are reached over SCGI, which sends
	// CONTENT_LENGTH with every request, "0" for none: a request without a
	// body and without a Content-Length header, for which a CGI process
	// gets no CONTENT_LENGTH (RFC 3875 § 4.1.2), is marked with the header
	// NoContentLengthHeader, on which the Perl CGI adapter unsets it.
	SCGI bool
	// PassAuthorization lets the Authorization and Proxy-Authorization
	// headers reach scripts in the workers, as [cgi.Handler]'s field of
	// the same name does for CGI processes. If false, they are withheld.
	PassAuthorization bool
	// Logger receives the scripts sent back. A logger in the request's
	// context takes precedence; if both are absent, nothing is logged.
	Logger *zerolog.Logger

	mu      sync.Mutex
	scripts map[string]scriptInfo // by file name
}

// scriptInfo is what is known of one version of a script.
type scriptInfo struct {
	version fileVersion
	accept  bool // Accept said yes
	// known: it ran in the workers (true), or was sent back (false, with
	// sentBack); neither before its first request.
	known, sentBack bool
}

// fileVersion identifies a version of a file.
type fileVersion struct {
	dev, ino    uint64
	size, mtime int64
}

func versionOf(fi fs.FileInfo) fileVersion {
	v := fileVersion{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		v.dev, v.ino = uint64(st.Dev), uint64(st.Ino)
	}
	return v
}

type scriptKey struct{}

// ScriptOf returns the script [Persistent] found for r: the resolver
// (as a [cgi.ResolverFunc]) of the handler that forwards r to the workers.
func ScriptOf(r *http.Request) (cgi.Script, error) {
	s, ok := r.Context().Value(scriptKey{}).(cgi.Script)
	if !ok {
		return cgi.Script{}, fmt.Errorf("appserver: no script for %s: %w", r.URL.Path, fs.ErrNotExist)
	}
	return s, nil
}

// IsPHP reports whether filename ends in ".php".
func IsPHP(filename string) bool { return strings.HasSuffix(filename, ".php") }

// IsPerl reports whether filename is a Perl script: its first line is a
// "#!" line naming perl.
func IsPerl(filename string) bool {
	f, err := os.Open(filename)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [128]byte
	n, _ := io.ReadFull(f, b[:]) // a short file is read whole
	line, _, _ := bytes.Cut(b[:n], []byte("\n"))
	if !bytes.HasPrefix(line, []byte("#!")) {
		return false
	}
	prog, _, _ := bytes.Cut(bytes.TrimSpace(line[2:]), []byte(" "))
	base := filepath.Base(string(prog))
	if base == "env" {
		fields := bytes.Fields(line[2:])
		if len(fields) < 2 {
			return false
		}
		base = string(fields[1])
	}
	return base == "perl" || strings.HasPrefix(base, "perl5")
}

func (p *Persistent) log(r *http.Request) *zerolog.Logger {
	if l := cgi.LoggerFrom(r.Context(), p.Logger); l != nil {
		return l
	}
	l := zerolog.Nop()
	return &l
}

// info returns what is known of the script at name in version v,
// asking Accept on a new version.
func (p *Persistent) info(name string, v fileVersion) scriptInfo {
	p.mu.Lock()
	si, ok := p.scripts[name]
	p.mu.Unlock()
	if ok && si.version == v {
		return si
	}
	si = scriptInfo{version: v, accept: p.Accept == nil || p.Accept(name)}
	p.mu.Lock()
	if p.scripts == nil {
		p.scripts = make(map[string]scriptInfo)
	}
	p.scripts[name] = si
	p.mu.Unlock()
	return si
}

// learn records how version v of the script at name ran.
func (p *Persistent) learn(name string, v fileVersion, sentBack bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if si, ok := p.scripts[name]; ok && si.version == v {
		si.known, si.sentBack = !sentBack, sentBack
		p.scripts[name] = si
	}
}

// ServeHTTP runs r's script in the workers or as a CGI process.
func (p *Persistent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, err := p.CGI.Resolver.Resolve(r)
	if err != nil || strings.HasPrefix(filepath.Base(s.Filename), "nph-") {
		p.CGI.ServeScript(w, r, s, err) // it answers the error, or runs the NPH script
		return
	}
	fi, err := os.Stat(s.Filename)
	if err != nil {
		p.CGI.ServeScript(w, r, s, err) // gone since: 404, or 403
		return
	}
	v := versionOf(fi)
	si := p.info(s.Filename, v)
	if !si.accept || si.sentBack {
		p.CGI.ServeScript(w, r, s, nil)
		return
	}
	ctx := context.WithValue(r.Context(), scriptKey{}, s)
	if !p.PassAuthorization {
		r = withoutCredentials(r)
	}
	if p.SCGI && r.ContentLength == 0 && r.Header.Get("Content-Length") == "" {
		r = withHeader(r, NoContentLengthHeader, "1")
	}
	if si.known || !p.Fallback {
		fw := &fallbackWriter{w: w, h: maps.Clone(w.Header())}
		p.Workers.ServeHTTP(fw, r.WithContext(ctx))
		if !fw.fell {
			return
		}
		// Changed on disk since it was last looked at: look again. A body
		// was sent on, and cannot be sent again.
		p.log(r).Info().Str("script", s.Filename).Msg("appserver: the workers sent the script back; it runs as CGI")
		p.learn(s.Filename, v, true)
		if r.ContentLength != 0 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
			return
		}
		p.CGI.ServeScript(w, r, s, nil)
		return
	}

	// A script not run yet: the workers may send it back, so its body is
	// kept to be sent again.
	r2, body, sp, err := cgi.ExactBody(r, p.Limits, true)
	if err != nil {
		p.log(r).Warn().Err(err).Str("path", r.URL.Path).Msg("appserver: request body refused")
		status := cgi.StatusOf(err)
		http.Error(w, http.StatusText(status), status)
		return
	}
	if sp != nil {
		defer sp.Close()
	}
	fw := &fallbackWriter{w: w, h: maps.Clone(w.Header())}
	first := r2.WithContext(ctx)
	first.Body = readCloser(body)
	p.Workers.ServeHTTP(fw, first)
	p.learn(s.Filename, v, fw.fell)
	if !fw.fell {
		return
	}
	p.log(r).Info().Str("script", s.Filename).Msg("appserver: the workers sent the script back; it runs as CGI")
	again := *r2
	again.Body = http.NoBody
	if sp != nil && sp.Size() > 0 {
		if f := sp.File(); f != nil {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
				return
			}
		}
		again.Body = io.NopCloser(sp.Reader())
	}
	p.CGI.ServeScript(w, &again, s, nil)
}

// withoutCredentials returns r without the headers that carry the
// client's credentials (RFC 3875 § 4.1.18 advises withholding them).
func withoutCredentials(r *http.Request) *http.Request {
	if r.Header.Get("Authorization") == "" && r.Header.Get("Proxy-Authorization") == "" {
		return r
	}
	r = withHeader(r, "Authorization", "")
	r.Header.Del("Proxy-Authorization")
	return r
}

// withHeader returns a copy of r with the header name set to value, or
// removed if value is empty.
func withHeader(r *http.Request, name, value string) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	if value == "" {
		r2.Header.Del(name)
	} else {
		r2.Header.Set(name, value)
	}
	return r2
}

// readCloser returns body as a request body; nil is none.
func readCloser(body io.Reader) io.ReadCloser {
	if body == nil {
		return http.NoBody
	}
	return io.NopCloser(body)
}

// fallbackWriter passes a response on unless it carries FallbackHeader:
// then nothing of it goes to the client. The header is its own until the
// status is known.
type fallbackWriter struct {
	w     http.ResponseWriter
	h     http.Header
	wrote bool
	fell  bool // the response was a fallback, swallowed
}

func (fw *fallbackWriter) Header() http.Header { return fw.h }

func (fw *fallbackWriter) WriteHeader(code int) {
	if fw.wrote || code < 200 {
		return
	}
	fw.wrote = true
	if fw.h.Get(FallbackHeader) == "cgi" {
		fw.fell = true
		return
	}
	dst := fw.w.Header()
	clear(dst)
	maps.Copy(dst, fw.h)
	fw.w.WriteHeader(code)
}

func (fw *fallbackWriter) Write(b []byte) (int, error) {
	if !fw.wrote {
		fw.WriteHeader(http.StatusOK)
	}
	if fw.fell {
		return len(b), nil
	}
	return fw.w.Write(b)
}

// FlushError flushes the response passed on (http.ResponseController).
func (fw *fallbackWriter) FlushError() error {
	if !fw.wrote || fw.fell {
		return nil
	}
	return http.NewResponseController(fw.w).Flush()
}

// Flush implements http.Flusher.
func (fw *fallbackWriter) Flush() { _ = fw.FlushError() } // Flusher cannot report it

// Unwrap returns the underlying writer (http.ResponseController).
func (fw *fallbackWriter) Unwrap() http.ResponseWriter { return fw.w }
