package cgi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/rs/zerolog"
)

// AppRequest is one request to a long-lived application, as a [Forwarder]
// hands it to a [Transport]: the meta-variables and a body of exact length.
type AppRequest struct {
	// Params are the CGI meta-variables, "NAME=value" ([AppendEnv]).
	Params []string
	// Body is the request body; nil when there is none. At most
	// ContentLength bytes are read from it: once the application has
	// answered, net/http may close a request body under a read that only
	// waits for its EOF.
	Body io.Reader
	// ContentLength is the body's exact length, as CONTENT_LENGTH among
	// Params says.
	ContentLength int64
}

// AppResponse is an application's answer as it begins.
type AppResponse struct {
	// Body streams the response, header block included: a CGI response
	// (RFC 3875 § 6). It must be closed. If Body has a method
	// Failed(error), a [Forwarder] calls it, before it closes Body, when
	// the header block cannot be read (malformed: [ErrMalformedResponse];
	// cut short; too slow): a group of backends counts that answer as its
	// backend's failure, as nginx counts an invalid header.
	Body io.ReadCloser
	// Ready reports whether the next Body read returns without waiting for
	// the application, so that output is flushed to the client only
	// before a read that would wait (see [CopyResponseReady]). If nil,
	// Body's own Ready method is used, if it has one (a transport saves
	// an allocation a request so); else every read is flushed.
	Ready func() bool
	// StatusLine says the response may begin with an HTTP status line
	// ("HTTP/1.1 200 OK") in place of a Status field, as uwsgi answers
	// over SCGI and nginx accepts.
	StatusLine bool
}

// Transport carries requests to a long-lived application, in the spirit
// of [http.RoundTripper]: fastcgi.Client and scgi.Client implement it.
//
// RoundTrip sends req and returns the response once it has begun, so
// that a failing application shows in the error before anything goes to
// the client. The error's status is read with [StatusOf]: a transport
// attaches one with [StatusError] where the default (504 for a timeout,
// 502 for the rest) is wrong, such as 503 for no connection free in time.
// Ending ctx abandons the request.
type Transport interface {
	RoundTrip(ctx context.Context, req *AppRequest) (*AppResponse, error)
}

// Forwarder passes requests to a long-lived application (FastCGI, SCGI)
// through a [Transport]: the request becomes meta-variables (the same a CGI
// script gets) and an exact-length body, the application's answer a CGI
// response copied to the client. fastcgi.NewHandler and scgi.NewHandler
// return one.
//
// Failures are answered in one place: the status [StatusOf] gives (a
// resolver's 404, 403 or 400; 413 for a body too large; 503, with
// Retry-After, when the application is overloaded; 504 for a timeout; 502
// for the rest), with one log line naming the backend. A local redirect
// from the application goes to the client as 302, as nginx does.
type Forwarder struct {
	Settings
	// Transport carries the requests to the application.
	Transport Transport
	// Resolver says which script a request runs (SCRIPT_NAME, PATH_INFO,
	// SCRIPT_FILENAME, DOCUMENT_ROOT). If nil, the application is mounted
	// at the root: the zero [Mount].
	Resolver Resolver
	// Busy, if set, is called as each request goes to the application,
	// and the function it returns when the request is over: an on-demand
	// worker pool counts its load so.
	Busy func() (done func())
	// Name names the framing at the start of log messages: "fastcgi",
	// "scgi". If empty, "cgi". The backend field of a log line is the
	// Transport's String, if it has that method.
	Name string
}

// backend names the application in log lines.
func (f *Forwarder) backend() string {
	if s, ok := f.Transport.(fmt.Stringer); ok {
		return s.String()
	}
	return ""
}

func (f *Forwarder) log(r *http.Request) *zerolog.Logger {
	if f.Logger != nil {
		return LoggerFrom(r.Context(), f.Logger)
	}
	return LoggerFrom(r.Context(), &nopLogger)
}

// ServeHTTP resolves r's script and forwards r.
func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var s Script
	var err error
	if f.Resolver != nil {
		s, err = f.Resolver.Resolve(r)
	} else {
		s, err = Mount{}.Resolve(r)
	}
	f.ServeScript(w, r, s, err)
}

// ServeScript forwards r, for script s, to the application and copies the
// answer to w. If err is not nil, resolving the script failed instead, and
// the answer is its status (see [Resolver]).
func (f *Forwarder) ServeScript(w http.ResponseWriter, r *http.Request, s Script, err error) {
	// The logger is looked up in r's context only for a line to log.
	name := cmp.Or(f.Name, "cgi")
	if err != nil {
		answerNoScript(w, r, f.log(r), err, name+": no script")
		return
	}
	if f.Busy != nil {
		done := f.Busy()
		defer done()
	}

	// CONTENT_LENGTH must be exact: applications read exactly that much.
	path := r.URL.Path
	r, body, sp, err := ExactBody(r, f.BodyLimits, false)
	if err != nil {
		answerError(w, r, f.log(r), zerolog.WarnLevel, StatusOf(err), err, "", name+": request body refused")
		return
	}
	if sp != nil {
		defer sp.Close()
	}
	params, err := AppendEnv(append([]string(nil), f.Env...), r, s, f.software())
	if err != nil {
		answerError(w, r, f.log(r), zerolog.DebugLevel, StatusOf(err), err, "", name+": request refused")
		return
	}
	req := AppRequest{Params: params, Body: body}
	if body != nil {
		req.ContentLength = max(r.ContentLength, 0)
	}

	if body != nil && sp == nil && http.NewResponseController(w).EnableFullDuplex() == nil {
		// The Transport sends the body while the answer comes, as nginx
		// does. Without full duplex, the server would read what is left
		// of the body for itself when the answer's header goes out (up
		// to 256 KiB, as net/http does): the application would get a body
		// cut short and end at the cut, or the header would wait, under
		// the body's lock, for a client that sends the rest only once the
		// answer has begun. Closed before the handler returns, and after
		// the Transport's last read (resp.Body.Close waits for it), as
		// net/http needs in full duplex (go.dev/issue/68560).
		defer r.Body.Close()
	}
	ObserverFrom(r.Context()).Forwarded(s)
	resp, err := f.Transport.RoundTrip(r.Context(), &req)
	if err != nil {
		answerError(w, r, f.log(r), zerolog.ErrorLevel, StatusOf(err), err, f.backend(), name+": request to the application failed")
		return
	}
	defer resp.Body.Close()
	br := getReader(resp.Body)
	defer putReader(br)
	// The header is read into a parser on this stack and its fields set
	// in w.Header() directly: no Response, no map in between.
	p := respParser{br: br, lim: f.HeaderLimits}
	if err := p.read(appNPH(br, resp)); err != nil {
		if fb, ok := resp.Body.(interface{ Failed(error) }); ok {
			fb.Failed(err)
		}
		answerError(w, r, f.log(r), zerolog.ErrorLevel, StatusOf(err), err, f.backend(), name+": bad response from the application")
		return
	}
	status := p.resp.Status
	if p.resp.Kind == LocalRedirect {
		// As nginx does for FastCGI and SCGI: the client follows it.
		status = http.StatusFound
	} else {
		passReason(w, status, p.resp.Reason)
	}
	p.fields.SetIn(w.Header())
	noSniff(w.Header())
	var more func() bool
	ready := resp.Ready
	if rb, ok := resp.Body.(interface{ Ready() bool }); ready == nil && ok {
		ready = rb.Ready
	}
	if ready != nil {
		more = func() bool { return br.Buffered() > 0 || ready() }
	} else {
		more = func() bool { return br.Buffered() > 0 }
	}
	if n, err := copyBody(w, status, br, nil, more); err != nil {
		var ce *ClientError
		if errors.Is(err, ErrPastContentLength) {
			f.log(r).Warn().Str("backend", f.backend()).Str("path", path).Int64("content_length", n).
				Msg(name + ": the application sent more than its Content-Length; the rest was dropped")
			return
		}
		if !errors.As(err, &ce) && r.Context().Err() == nil {
			f.log(r).Warn().Err(err).Str("backend", f.backend()).Str("path", path).Msg(name + ": response cut short")
			panic(http.ErrAbortHandler) // the client must not take it for whole
		}
	}
}
