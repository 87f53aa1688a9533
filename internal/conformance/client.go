package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxBody caps how much of a response body the checks keep in memory; the
// 20 MiB output check streams instead.
const maxBody = 4 << 20

// stateHeader names the request header that tells a script where it may write
// (see sleep.sh and stream.sh). Scripts see it as HTTP_X_CONFORMANCE_STATE.
const stateHeader = "X-Conformance-State"

// session is what one check works with: the target, its parsed base URL and a
// client that does not follow redirects.
type session struct {
	tg     Target
	base   *url.URL
	client *http.Client
	own    *http.Transport // created by newSession, closed by close; nil if tg.Client was set
}

// newSession checks tg's base URL and sets up the client for one check.
func newSession(tg Target) (*session, error) {
	base, err := url.Parse(tg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("conformance: base URL: %w", err)
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || (base.Path != "" && base.Path != "/") || base.RawQuery != "" {
		return nil, fmt.Errorf("conformance: base URL %q: want http://host:port or https://host:port", tg.BaseURL)
	}
	s := &session{tg: tg, base: base}
	if tg.Client != nil {
		c := *tg.Client
		c.CheckRedirect = dontFollow
		s.client = &c
	} else {
		s.own = newTransport()
		s.client = &http.Client{Transport: s.own, CheckRedirect: dontFollow}
	}
	return s, nil
}

// close releases the connections of a transport the session created.
func (s *session) close() {
	if s.own != nil {
		s.own.CloseIdleConnections()
	}
}

// newTransport returns the default transport: no proxy from the environment (the
// gateway is local), no transparent gzip (which would hide what the gateway
// sent and buffer streams), enough idle connections for the parallel check.
func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
}

func dontFollow(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// script returns the raw request path of a script: the prefix plus rest, which
// may carry path info and a query and is sent exactly as written.
func (s *session) script(rest string) string { return s.tg.prefix() + rest }

// newRequest builds a request for rawPath (path and optional query) that is put
// on the wire byte for byte: url.URL.Opaque keeps net/url from re-encoding or
// cleaning it, so "%2e%2e" and "%00" stay as they are.
func (s *session) newRequest(ctx context.Context, method, rawPath string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.base.String(), body)
	if err != nil {
		return nil, fmt.Errorf("conformance: %s %s: %w", method, rawPath, err)
	}
	path, query, hasQuery := strings.Cut(rawPath, "?")
	req.URL.Opaque = path
	req.URL.Path, req.URL.RawPath = "", ""
	req.URL.RawQuery = query
	req.URL.ForceQuery = hasQuery && query == ""
	req.Header.Set("User-Agent", "ferry-conformance")
	req.Header.Set(stateHeader, s.tg.StateDir)
	return req, nil
}

// response is a response with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends req and reads at most maxBody bytes of the response body.
func (s *session) do(req *http.Request) (*response, error) {
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Opaque, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: status %d, reading body: %w", req.Method, req.URL.Opaque, resp.StatusCode, err)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("%s %s: status %d, body longer than %d bytes", req.Method, req.URL.Opaque, resp.StatusCode, maxBody)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// unwrapURLError returns the cause of a *url.Error from http.Client.Do. Its own
// message would repeat the URL, which net/url prints oddly for the opaque URLs
// of newRequest; callers name the request themselves.
func unwrapURLError(err error) error {
	if uerr, ok := errors.AsType[*url.Error](err); ok {
		return uerr.Err
	}
	return err
}

// stateDir returns Target.StateDir, or an error for checks that need one.
func (s *session) stateDir() (string, error) {
	if s.tg.StateDir == "" {
		return "", errors.New("conformance: Target.StateDir is empty (Run and Score make one; set it to call a Check directly)")
	}
	return s.tg.StateDir, nil
}

// get sends a GET for rawPath and reads the response.
func (s *session) get(ctx context.Context, rawPath string) (*response, error) {
	req, err := s.newRequest(ctx, http.MethodGet, rawPath, nil)
	if err != nil {
		return nil, err
	}
	return s.do(req)
}

// wantStatus returns an error unless res has status want. The error quotes the
// start of the body, which usually says why.
func wantStatus(method, rawPath string, res *response, want int) error {
	if res.status == want {
		return nil
	}
	return fmt.Errorf("%s %s: status %d; want %d (body %s)", method, rawPath, res.status, want, snippet(res.body))
}

// snippet quotes the start of a body for an error message.
func snippet(b []byte) string {
	const n = 120
	if len(b) > n {
		return fmt.Sprintf("%q...", b[:n])
	}
	return fmt.Sprintf("%q", b)
}

// wantVars compares variables parsed from a script's NAME=value output with want,
// and returns one error per difference, prefixed by what.
func wantVars(what string, got map[string]string, want [][2]string) error {
	var errs []error
	for _, kv := range want {
		v, ok := got[kv[0]]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: %s unset; want %q", what, kv[0], kv[1]))
		case v != kv[1]:
			errs = append(errs, fmt.Errorf("%s: %s = %q; want %q", what, kv[0], v, kv[1]))
		}
	}
	return errors.Join(errs...)
}
