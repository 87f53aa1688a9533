package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/scgi"
	"github.com/rs/zerolog"
)

// scgiTarget sends requests straight to an SCGI application with ferry's
// scgi.Client, a connection per request (protocol.txt § 2), and reads the
// answer as scgi.NewHandler does: a CGI response, or an HTTP status line and
// header (uwsgi). The header block is the same for every request, so it
// is built once: the load generator's cost per request is the exchange.
type scgiTarget struct {
	client *scgi.Client
	params []string
	body   []byte
}

// readers recycles the response readers of scgiTarget.Do.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func newSCGITarget(u *url.URL, req Request, conns int) (*scgiTarget, error) {
	a, err := parseAppAddress(u, req, conns)
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequest(req.method(), "http://127.0.0.1"+a.target, nil)
	if err != nil {
		return nil, fmt.Errorf("benchmarks: scgi target %s: %w", u.Redacted(), err)
	}
	r.RemoteAddr = "127.0.0.1:40000"
	r.RequestURI = a.target
	for k, vs := range req.Header {
		r.Header[k] = vs
	}
	if h := req.Header.Get("Host"); h != "" {
		r.Host = h
	}
	r.ContentLength = int64(len(req.Body))
	// As scgi.NewHandler mounted at "/": the whole path is PATH_INFO, the WSGI
	// convention.
	s := cgi.Script{PathInfo: r.URL.Path, Root: req.Root, Filename: req.Script}
	params, err := cgi.AppendEnv(nil, r, s, cgi.DefaultServerSoftware)
	if err != nil {
		return nil, fmt.Errorf("benchmarks: scgi target %s: %w", u.Redacted(), err)
	}
	nop := zerolog.Nop()
	c := &scgi.Client{Network: a.network, Address: a.address, MaxConns: a.maxConns, Logger: &nop}
	return &scgiTarget{client: c, params: params, body: req.Body}, nil
}

func (t *scgiTarget) Do(ctx context.Context) (int, error) {
	req := &cgi.AppRequest{Params: t.params, ContentLength: int64(len(t.body))}
	if len(t.body) > 0 {
		req.Body = bytes.NewReader(t.body)
	}
	resp, err := t.client.RoundTrip(ctx, req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	br := readers.Get().(*bufio.Reader)
	br.Reset(resp.Body)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	start, _ := br.Peek(5) // a short peek is no status line; ReadResponse reports the rest
	cr, err := cgi.ReadResponse(br, string(start) == "HTTP/", cgi.HeaderLimits{})
	if err != nil {
		return 0, fmt.Errorf("benchmarks: scgi response: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return cr.Status, fmt.Errorf("benchmarks: scgi response body: %w", err)
	}
	return cr.Status, nil
}

// Close does nothing: the client keeps no connection between requests.
func (t *scgiTarget) Close() error { return nil }
