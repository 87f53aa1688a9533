package cgi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/rs/zerolog"
)

// Forwarding is the part of passing a request to a long-lived application
// (FastCGI, SCGI) that does not depend on the framing: the request becomes
// meta-variables and an exact-length body, the application's answer a CGI
// response copied to the client, and failures 502, 503 or 504 with one log
// line. A framing supplies the [Exchange] that carries the bytes.
type Forwarding struct {
	// Protocol names the framing in log lines: "fastcgi", "scgi".
	Protocol string
	// Network and Address name the application in log lines, as
	// "network:address" (joined only when a line is logged).
	Network, Address string
	// Env holds extra "NAME=value" meta-variables for every request.
	Env []string
	// ServerSoftware is SERVER_SOFTWARE. If empty, DefaultServerSoftware.
	ServerSoftware string
	// MaxRequestBody bounds request bodies (413 past it). If zero,
	// DefaultMaxRequestBody.
	MaxRequestBody int64
	// SpoolMemory bounds the memory a chunked body is spooled in before a
	// temporary file in TempDir. If zero, DefaultSpoolMemory.
	SpoolMemory int64
	// TempDir holds spooled bodies. If empty, os.TempDir().
	TempDir string
	// HeaderLimits bounds the application's response header block.
	HeaderLimits HeaderLimits
	// StatusLine accepts an HTTP status line ("HTTP/1.1 200 OK") in place
	// of a Status field, as uwsgi answers over SCGI and nginx accepts.
	StatusLine bool
	// StatusFor maps an exchange's error to the status answered: 503, 504
	// or 502. If nil, 504 for context.DeadlineExceeded, else 502.
	StatusFor func(error) int
	// Logger receives errors. A logger in the request's context
	// (zerolog.Ctx) takes precedence. If both are absent, nothing is logged.
	Logger *zerolog.Logger
}

// Exchange sends one request to the application, the meta-variables and
// the body of n bytes (nil when there is none), and returns the response
// stream once it has begun, and a function that reports whether the next
// read of it returns without waiting (see [CopyResponseReady]).
type Exchange func(ctx context.Context, params []string, body io.Reader, n int64) (io.ReadCloser, func() bool, error)

// PrefixScript is the script of a request to an application mounted at
// prefix, by the WSGI convention: SCRIPT_NAME is the prefix (without its
// trailing slash), PATH_INFO the rest of the path, and root DOCUMENT_ROOT.
func PrefixScript(r *http.Request, prefix, root string) Script {
	name := strings.TrimSuffix(prefix, "/")
	rest, _ := strings.CutPrefix(r.URL.Path, name)
	if rest != "" && rest[0] != '/' {
		rest = "/" + rest
	}
	return Script{Name: name, PathInfo: rest, Root: root}
}

func (f *Forwarding) backend() string { return f.Network + ":" + f.Address }

func (f *Forwarding) log(r *http.Request) *zerolog.Logger {
	if l := zerolog.Ctx(r.Context()); l.GetLevel() != zerolog.Disabled {
		return l
	}
	if f.Logger != nil {
		return f.Logger
	}
	l := zerolog.Nop()
	return &l
}

// Forward passes r, for script s, to the application through x, and
// copies the answer to w. If err is not nil, finding the script failed
// instead: 403 for an error wrapping fs.ErrPermission, 400 for
// ErrInvalidMetaVariable, 404 for the rest.
func (f *Forwarding) Forward(w http.ResponseWriter, r *http.Request, s Script, err error, x Exchange) {
	log := f.log(r)
	if err != nil {
		status := http.StatusNotFound
		if errors.Is(err, os.ErrPermission) {
			status = http.StatusForbidden
		} else if errors.Is(err, ErrInvalidMetaVariable) {
			status = http.StatusBadRequest
		}
		log.Debug().Err(err).Str("path", r.URL.Path).Msg(f.Protocol + ": no script")
		http.Error(w, http.StatusText(status), status)
		return
	}

	// CONTENT_LENGTH must be exact: applications read exactly that much.
	path := r.URL.Path
	r, body, sp, status, err := ExactBody(r, BodyLimits{Max: f.MaxRequestBody, Memory: f.SpoolMemory, TempDir: f.TempDir}, false)
	if err != nil {
		log.Warn().Err(err).Str("path", path).Msg(f.Protocol + ": request body refused")
		http.Error(w, http.StatusText(status), status)
		return
	}
	if sp != nil {
		defer sp.Close()
	}
	software := f.ServerSoftware
	if software == "" {
		software = DefaultServerSoftware
	}
	params, err := AppendEnv(append([]string(nil), f.Env...), r, s, software)
	if err != nil {
		log.Debug().Err(err).Str("path", path).Msg(f.Protocol + ": request refused")
		http.Error(w, "400 Bad Request", http.StatusBadRequest)
		return
	}
	var n int64
	if body != nil {
		n = max(r.ContentLength, 0)
	}

	ObserverFrom(r.Context()).Forwarded(s)
	stdout, ready, err := x(r.Context(), params, body, n)
	if err != nil {
		f.fail(w, r, err, f.Protocol+": request to the application failed")
		return
	}
	defer stdout.Close()
	br := getReader(stdout)
	defer putReader(br)
	nph := false
	if f.StatusLine {
		start, _ := br.Peek(5) // a short peek is no status line; ReadResponse reports the rest
		nph = string(start) == "HTTP/"
	}
	cr, err := ReadResponse(br, nph, f.HeaderLimits)
	if err != nil {
		f.fail(w, r, err, f.Protocol+": bad response from the application")
		return
	}
	if cr.Kind == LocalRedirect {
		// As nginx does for FastCGI and SCGI: the client follows it.
		cr.Status = http.StatusFound
	}
	more := func() bool { return br.Buffered() > 0 || ready() }
	if _, err := CopyResponseReady(w, cr, br, more); err != nil {
		var ce *ClientError
		if !errors.As(err, &ce) && r.Context().Err() == nil {
			log.Warn().Err(err).Str("backend", f.backend()).Str("path", path).Msg(f.Protocol + ": response cut short")
			panic(http.ErrAbortHandler) // the client must not take it for whole
		}
	}
}

// fail answers for an error on the application's side, unless the client
// is gone.
func (f *Forwarding) fail(w http.ResponseWriter, r *http.Request, err error, msg string) {
	if r.Context().Err() != nil {
		return
	}
	status := http.StatusBadGateway
	if f.StatusFor != nil {
		status = f.StatusFor(err)
	} else if errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	f.log(r).Error().Err(err).Str("backend", f.backend()).Int("status", status).Str("path", r.URL.Path).Msg(msg)
	ObserverFrom(r.Context()).Failed(status, err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, http.StatusText(status), status)
}
