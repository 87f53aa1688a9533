package scgi

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"strings"

	"github.com/ferrygw/ferry/cgi"
	"github.com/rs/zerolog"
)

// Handler forwards HTTP requests to an SCGI application through a
// [Client]: the request becomes CGI meta-variables (package cgi, the same
// mapping a CGI script or a FastCGI application gets), and the
// application's answer, a CGI response or an HTTP status line and header
// (uwsgi), goes to the client.
//
// Failures map to statuses in one place, StatusFor: no connection slot free
// in time is 503, no answer within the read timeout 504, anything else
// wrong with the application 502; each with a log line naming the backend.
type Handler struct {
	// Client reaches the application.
	Client *Client
	// Prefix is the URL path the application is mounted at: SCRIPT_NAME,
	// with the rest of the path as PATH_INFO (the WSGI convention), unless
	// Script is set.
	Prefix string
	// Script, if set, says which script a request runs (SCRIPT_NAME,
	// PATH_INFO, SCRIPT_FILENAME, DOCUMENT_ROOT), or returns an error
	// wrapping fs.ErrNotExist (404) or fs.ErrPermission (403).
	Script func(r *http.Request) (cgi.Script, error)
	// Root is DOCUMENT_ROOT when Script is nil.
	Root string
	// Env holds extra "NAME=value" headers for every request.
	Env []string
	// ServerSoftware is SERVER_SOFTWARE. If empty, "ferry".
	ServerSoftware string
	// MaxRequestBody bounds request bodies (413 past it). If zero,
	// cgi.DefaultMaxRequestBody.
	MaxRequestBody int64
	// SpoolMemory bounds the memory a chunked body is spooled in before a
	// temporary file in TempDir: SCGI needs CONTENT_LENGTH before the body.
	// If zero, cgi.DefaultSpoolMemory.
	SpoolMemory int64
	// TempDir holds spooled bodies. If empty, os.TempDir().
	TempDir string
	// HeaderLimits bounds the application's response header block.
	HeaderLimits cgi.HeaderLimits
	// Logger receives errors. A logger in the request's context
	// (zerolog.Ctx) takes precedence. If both are absent, nothing is logged.
	Logger *zerolog.Logger
}

var _ http.Handler = (*Handler)(nil)

func (h *Handler) log(r *http.Request) *zerolog.Logger {
	if l := zerolog.Ctx(r.Context()); l.GetLevel() != zerolog.Disabled {
		return l
	}
	if h.Logger != nil {
		return h.Logger
	}
	l := zerolog.Nop()
	return &l
}

// StatusFor maps an error from [Client.Do] or the response to the status a
// gateway answers with: 503 for ErrPoolTimeout, 504 for a timeout, 502 for
// the rest (refused or reset connections, no or malformed response).
func StatusFor(err error) int {
	switch {
	case errors.Is(err, ErrPoolTimeout):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// ServeHTTP forwards r.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var s cgi.Script
	var err error
	if h.Script != nil {
		s, err = h.Script(r)
	} else {
		name := strings.TrimSuffix(h.Prefix, "/")
		rest, _ := strings.CutPrefix(r.URL.Path, name)
		if rest != "" && rest[0] != '/' {
			rest = "/" + rest
		}
		s = cgi.Script{Name: name, PathInfo: rest, Root: h.Root}
	}
	log := h.log(r)
	if err != nil {
		status := http.StatusNotFound
		if errors.Is(err, os.ErrPermission) {
			status = http.StatusForbidden
		} else if errors.Is(err, cgi.ErrInvalidMetaVariable) {
			status = http.StatusBadRequest
		}
		log.Debug().Err(err).Str("path", r.URL.Path).Msg("scgi: no script")
		http.Error(w, http.StatusText(status), status)
		return
	}

	// CONTENT_LENGTH comes first and must be exact (protocol.txt § 3): a
	// chunked body is spooled to learn its length.
	path := r.URL.Path
	r, body, sp, status, err := cgi.ExactBody(r, cgi.BodyLimits{Max: h.MaxRequestBody, Memory: h.SpoolMemory, TempDir: h.TempDir}, false)
	if err != nil {
		log.Warn().Err(err).Str("path", path).Msg("scgi: request body refused")
		http.Error(w, http.StatusText(status), status)
		return
	}
	if sp != nil {
		defer sp.Close()
	}
	software := h.ServerSoftware
	if software == "" {
		software = cgi.DefaultServerSoftware
	}
	params, err := cgi.AppendEnv(append([]string(nil), h.Env...), r, s, software)
	if err != nil {
		log.Debug().Err(err).Str("path", path).Msg("scgi: request refused")
		http.Error(w, "400 Bad Request", http.StatusBadRequest)
		return
	}
	req := &Request{Params: params, Body: body, ContentLength: max(r.ContentLength, 0)}
	if body == nil {
		req.ContentLength = 0
	}

	resp, err := h.Client.Do(r.Context(), req)
	if err != nil {
		h.fail(w, r, err, "scgi: request to the application failed")
		return
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 4096)
	// uwsgi and some other servers answer with an HTTP status line, which
	// nginx accepts too; anything else is a CGI response.
	start, _ := br.Peek(5) // a short peek is no status line; ReadResponse reports the rest
	nph := string(start) == "HTTP/"
	cr, err := cgi.ReadResponse(br, nph, h.HeaderLimits)
	if err != nil {
		h.fail(w, r, err, "scgi: bad response from the application")
		return
	}
	if cr.Kind == cgi.LocalRedirect {
		// As nginx does for SCGI: the client follows it.
		cr.Status = http.StatusFound
	}
	ready := func() bool { return br.Buffered() > 0 || resp.Ready() }
	if _, err := cgi.CopyResponseReady(w, cr, br, ready); err != nil {
		var ce *cgi.ClientError
		if !errors.As(err, &ce) && r.Context().Err() == nil {
			log.Warn().Err(err).Str("backend", h.Client.backend()).Str("path", path).Msg("scgi: response cut short")
			panic(http.ErrAbortHandler) // the client must not take it for whole
		}
	}
}

// fail answers for an error on the application's side, unless the client
// is gone.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error, msg string) {
	if r.Context().Err() != nil {
		return
	}
	status := StatusFor(err)
	h.log(r).Error().Err(err).Str("backend", h.Client.backend()).Int("status", status).Str("path", r.URL.Path).Msg(msg)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, http.StatusText(status), status)
}
