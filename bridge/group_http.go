package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"

	"github.com/ferrygw/ferry/cgi"
)

// affinity is what a group's handler learns of a request before its
// transport picks a backend, and what the transport tells it back: the
// sticky key, the backend chosen, and whether that one failed.
type affinity struct {
	stickyKey string
	chosen    *member
	cookie    string // the Set-Cookie value to send, if the backend changed
	failedAt  bool   // the chosen backend's failure is counted already
}

type affinityKey struct{}

// affinity returns the request's affinity, or nil: only the groups whose
// handler wraps the mount's (see group.handler) pay for the lookup.
func (g *group) affinity(ctx context.Context) *affinity {
	if g.sticky == "" && !g.fail5xx {
		return nil
	}
	a, _ := ctx.Value(affinityKey{}).(*affinity)
	return a
}

// key returns the sticky key, "" for none.
func (a *affinity) key() string {
	if a == nil {
		return ""
	}
	return a.stickyKey
}

// chose records the backend a request went to; with a sticky cookie that
// did not name it, the response sets one that does. A backend tried
// before it failed (its failure counted), not this one: its 5xx counts
// (fail_on_5xx).
func (a *affinity) chose(g *group, m *member) {
	if a == nil {
		return
	}
	a.chosen, a.failedAt = m, false
	if g.sticky != "" && g.sticky != "addr" && a.stickyKey != m.cookie {
		a.cookie = (&http.Cookie{Name: g.sticky, Value: m.cookie, Path: cookiePath(g.prefix), HttpOnly: true, SameSite: http.SameSiteLaxMode}).String()
	}
}

// failed notes that the chosen backend's failure was counted.
func (a *affinity) failed() {
	if a != nil {
		a.failedAt = true
	}
}

// cookiePath is the sticky cookie's Path: the mount's prefix.
func cookiePath(prefix string) string {
	if prefix == "" {
		return "/"
	}
	return prefix
}

// handler wraps the mount's handler h when the group needs to see requests
// and responses: a sticky key to read, a cookie to set, an application's
// 5xx to count. Otherwise it returns h: the hot path pays nothing.
func (g *group) handler(h http.Handler) http.Handler {
	if g.sticky == "" && !g.fail5xx {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := &affinity{}
		switch {
		case g.sticky == "addr":
			a.stickyKey = clientAddr(r)
		case g.sticky != "":
			if c, err := r.Cookie(g.sticky); err == nil {
				a.stickyKey = c.Value
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), affinityKey{}, a))
		h.ServeHTTP(&groupWriter{ResponseWriter: w, g: g, a: a}, r)
	})
}

// clientAddr is the client's address: REMOTE_ADDR from the web server in
// front, else the connection's.
func clientAddr(r *http.Request) string {
	if o := cgi.Origin(r.Context()); o != nil && o["REMOTE_ADDR"] != "" {
		return o["REMOTE_ADDR"]
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// groupWriter adds the sticky cookie to the response, and counts a 5xx
// from the application against its backend when the group says so.
type groupWriter struct {
	http.ResponseWriter
	g     *group
	a     *affinity
	wrote bool
}

func (w *groupWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.wrote = true
		if w.a.cookie != "" {
			w.Header().Add("Set-Cookie", w.a.cookie)
		}
		if w.g.fail5xx && code >= 500 && w.a.chosen != nil && !w.a.failedAt {
			w.g.failed(w.a.chosen, errors.New("bridge: the application answered "+http.StatusText(code)))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *groupWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the writer beneath (Flush).
func (w *groupWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// httpGroup is a group of HTTP backends as the reverse proxy's transport.
type httpGroup struct{ *group }

var _ http.RoundTripper = httpGroup{}

// RoundTrip sends an HTTP request to a backend the policy picks, and to
// another when it fails in a way that allows: the connection could not be
// made (the request was not sent), or, for a request without a body that
// is safe to repeat, the connection broke or timed out before the
// response's head was whole (see tryConn.cut), not for a head that is
// malformed.
func (hg httpGroup) RoundTrip(req *http.Request) (*http.Response, error) {
	g := hg.group
	ctx := req.Context()
	t := g.newTries(ctx)
	var buf [4]*member
	tried := buf[:0]
	noBody := req.Body == nil || req.Body == http.NoBody
	// A request that may go on once sent: its method allows it, and its
	// body, if any, has a length short enough to keep (see touchedBody).
	safe := g.safeMethod(req.Method) && (noBody || req.ContentLength > 0 && req.ContentLength <= maxReplayBody)
	var kb *keptBody
	if !noBody {
		kb = &keptBody{touchedBody: &touchedBody{r: req.Body}, c: req.Body}
		if safe && len(g.list()) > 1 { // another backend could take it
			kb.keepFor(req.ContentLength)
		}
	}
	var hw *tryConn
	if safe && len(g.list()) > 1 {
		// Another backend could take it: learn which connection each try
		// goes on, to tell a head cut short from a malformed one.
		hw = &tryConn{}
		hw.trace.GotConn = func(i httptrace.GotConnInfo) {
			if hc, ok := i.Conn.(*headConn); ok {
				hw.conn.Store(hc)
			}
		}
		ctx = httptrace.WithClientTrace(ctx, &hw.trace)
	}
	for {
		m, err := t.next(tried)
		if err != nil {
			return nil, err
		}
		tried = append(tried, m)
		out := req
		if len(tried) > 1 || req.URL.Host != m.host {
			out = req.Clone(ctx)
			out.URL.Host = m.host
		} else if kb != nil || hw != nil {
			out = req.WithContext(ctx) // a copy: req keeps its own body and context
		}
		if kb != nil {
			out.Body = kb
		}
		if hw != nil {
			hw.conn.Store(nil)
		}
		resp, err := m.rt.RoundTrip(out)
		if err == nil {
			t.aff.chose(g, m)
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// The body is the upgraded connection, which the proxy
				// needs as it is (an io.ReadWriteCloser).
				g.release(m)
				return resp, nil
			}
			resp.Body = &httpGroupBody{ReadCloser: resp.Body, g: g, m: m, aff: t.aff}
			return resp, nil
		}
		if hw != nil && invalidHead(err) {
			err = hw.cut(err)
		}
		// The log line names the group: the error, its backend.
		err = fmt.Errorf("http: %s: %w", m.name, err)
		retry := isDialError(err)
		var again *touchedBody // the body once more, when the try read it
		if !retry && safe && !invalidHead(err) {
			if kb != nil && kb.touched.Load() {
				again = kb.replay()
			}
			retry = kb == nil || !kb.touched.Load() || again != nil
		}
		if !t.failed(m, err, ctx.Err() == nil, retry) {
			return nil, err
		}
		if again != nil {
			// The proxy closes the request's own body; the copy needs no
			// closing.
			kb = &keptBody{touchedBody: again}
		}
	}
}

// keptBody is a request body as one try sends it: http.Transport closes a
// request body when it fails, even before reading any of it (no
// connection), which left nothing for the next backend but "invalid Read
// on closed Body". Closing a body none of which was read is left to the
// proxy, which closes the request's own body when it is done.
type keptBody struct {
	*touchedBody
	c io.Closer // the request's own body; nil for a copy sent again
}

func (b *keptBody) Close() error {
	if !b.touched.Load() || b.c == nil {
		return nil
	}
	return b.c.Close()
}

// tryConn is what an HTTP group's request learns of the connection its
// try went on, through net/http's trace.
type tryConn struct {
	trace httptrace.ClientTrace
	conn  atomic.Pointer[headConn] // the try's, once it has one
}

// cut returns err, http.Transport refusing the head of an answer, as the
// failure of a connection that ended inside that head, when it did:
// net/http takes the part that came for a malformed head (bufio's
// ReadLine drops the error under a line cut short, and a header line
// without its colon follows), where nginx sees the connection closed
// ("upstream prematurely closed connection") or reset, and its default
// proxy_next_upstream ("error timeout") sends the request to the next
// backend. A head that is malformed whole stays err.
func (hw *tryConn) cut(err error) error {
	hc := hw.conn.Load()
	if hc == nil {
		return err
	}
	rerr := hc.readErr.Load()
	switch {
	case rerr == nil:
		return err
	case *rerr == io.EOF:
		return fmt.Errorf("%w: %v", errClosedInHead, err)
	}
	return fmt.Errorf("%w, inside the answer's head: %v", *rerr, err)
}

// headConn is a connection to a backend of an HTTP group that keeps the
// error its reading first ended with (see tryConn.cut).
type headConn struct {
	net.Conn
	readErr atomic.Pointer[error]
}

// dialHeadConns returns dial with its connections made headConns.
func dialHeadConns(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &headConn{Conn: c}, nil
	}
}

func (c *headConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.readErr.Load() == nil {
		c.readErr.Store(&err)
	}
	return n, err
}

// ReadFrom sends a request body by the connection's own ReadFrom
// (splice, sendfile), as http.Transport does with a bare connection.
func (c *headConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

// invalidHead reports whether err is http.Transport refusing the head of
// an answer: a status line or header field it cannot parse, a bad
// Content-Length or Transfer-Encoding, a header block past its bound.
// nginx calls these an invalid header, and its default
// proxy_next_upstream ("error timeout") does not send the request to the
// next backend for one: the backend may have run it. net/http gives them
// no type but textproto.ProtocolError, so the others are known by their
// text.
func invalidHead(err error) bool {
	var pe textproto.ProtocolError
	if errors.As(err, &pe) {
		return true
	}
	s := err.Error()
	for _, t := range [...]string{"malformed HTTP ", "server response headers exceeded", "Content-Length", "transfer encoding"} {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

// isDialError reports whether err is a failure to connect: nothing of the
// request was sent.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// httpGroupBody is an HTTP backend's response body: closing it ends the
// request's count on the backend.
type httpGroupBody struct {
	io.ReadCloser
	g      *group
	m      *member
	aff    *affinity
	closed bool
}

// failed counts an answer refused after its backend sent it (an invalid
// status, see httpBack.watchBody) against the backend, whatever
// fail_on_5xx says, as nginx counts an invalid header. ctx is the
// request's.
func (b *httpGroupBody) failed(ctx context.Context, err error) {
	if ctx.Err() == nil {
		b.aff.failed() // the 502 is not counted again (fail_on_5xx)
		b.g.failed(b.m, err)
	}
}

func (b *httpGroupBody) Close() error {
	if !b.closed {
		b.closed = true
		b.g.release(b.m)
	}
	return b.ReadCloser.Close()
}
