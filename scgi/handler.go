package scgi

import (
	"context"
	"errors"
	"io"
	"net/http"

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
		s = cgi.PrefixScript(r, h.Prefix, h.Root)
	}
	f := cgi.Forwarding{
		Protocol:       "scgi",
		Network:        h.Client.Network,
		Address:        h.Client.Address,
		Env:            h.Env,
		ServerSoftware: h.ServerSoftware,
		MaxRequestBody: h.MaxRequestBody,
		SpoolMemory:    h.SpoolMemory,
		TempDir:        h.TempDir,
		HeaderLimits:   h.HeaderLimits,
		// uwsgi and some other servers answer with an HTTP status line,
		// which nginx accepts too.
		StatusLine: true,
		StatusFor:  StatusFor,
		Logger:     h.Logger,
	}
	f.Forward(w, r, s, err, h.exchange)
}

// exchange sends one request through the client: CONTENT_LENGTH comes
// first and is exact (protocol.txt § 3), which cgi.Forwarding sees to.
func (h *Handler) exchange(ctx context.Context, params []string, body io.Reader, n int64) (io.ReadCloser, func() bool, error) {
	resp, err := h.Client.Do(ctx, &Request{Params: params, Body: body, ContentLength: n})
	if err != nil {
		return nil, nil, err
	}
	return resp.Body, resp.Ready, nil
}
