package fastcgi

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/ferrygw/ferry/cgi"
	"github.com/rs/zerolog"
)

// Handler forwards HTTP requests to a FastCGI application through a
// [Client]: the request becomes CGI meta-variables (package cgi, the same
// mapping a CGI script gets), the application's STDOUT a CGI response.
//
// Failures map to statuses in one place, StatusFor: no connection free in
// time or OVERLOADED is 503, no answer within the read timeout 504, anything
// else wrong with the application 502; each with a log line naming the
// backend.
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
	// Env holds extra "NAME=value" parameters for every request.
	Env []string
	// ServerSoftware is SERVER_SOFTWARE. If empty, "ferry".
	ServerSoftware string
	// MaxRequestBody bounds request bodies (413 past it). If zero,
	// cgi.DefaultMaxRequestBody.
	MaxRequestBody int64
	// SpoolMemory bounds the memory a chunked body is spooled in before a
	// temporary file in TempDir. If zero, cgi.DefaultSpoolMemory.
	SpoolMemory int64
	// TempDir holds spooled bodies. If empty, os.TempDir().
	TempDir string
	// HeaderLimits bounds the application's response header block.
	HeaderLimits cgi.HeaderLimits
	// Logger receives errors. A logger in the request's context
	// (zerolog.Ctx) takes precedence. If both are absent, nothing is logged.
	Logger *zerolog.Logger
	// Busy, if set, is called as each request goes to the application,
	// and the function it returns when the request is over: a [Pool]'s
	// Busy, for on-demand scaling.
	Busy func() (done func())
}

// StatusFor maps an error from [Client.Do] or the response to the status a
// gateway answers with: 503 for ErrPoolTimeout and ErrOverloaded, 504 for a
// timeout, 502 for the rest.
func StatusFor(err error) int {
	switch {
	case errors.Is(err, ErrPoolTimeout), errors.Is(err, ErrOverloaded):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// ServeHTTP forwards r.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.Script != nil {
		s, err := h.Script(r)
		h.serve(w, r, s, err)
		return
	}
	h.serve(w, r, cgi.PrefixScript(r, h.Prefix, h.Root), nil)
}

// serve forwards r for script s, or answers for the error finding it.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, s cgi.Script, err error) {
	if h.Busy != nil && err == nil {
		done := h.Busy()
		defer done()
	}
	f := cgi.Forwarding{
		Protocol:       "fastcgi",
		Network:        h.Client.Network,
		Address:        h.Client.Address,
		Env:            h.Env,
		ServerSoftware: h.ServerSoftware,
		MaxRequestBody: h.MaxRequestBody,
		SpoolMemory:    h.SpoolMemory,
		TempDir:        h.TempDir,
		HeaderLimits:   h.HeaderLimits,
		StatusFor:      StatusFor,
		Logger:         h.Logger,
	}
	f.Forward(w, r, s, err, h.exchange)
}

// exchange sends one request through the client, with a body of n bytes.
func (h *Handler) exchange(ctx context.Context, params []string, body io.Reader, n int64) (io.ReadCloser, func() bool, error) {
	if body != nil {
		// Never read past CONTENT_LENGTH: once the application answers,
		// net/http may close the request body under a read that only
		// waits for its EOF.
		body = io.LimitReader(body, n)
	}
	resp, err := h.Client.Do(ctx, &Request{Params: params, Body: body})
	if err != nil {
		return nil, nil, err
	}
	return resp.Stdout, resp.Ready, nil
}
