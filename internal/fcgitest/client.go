package fcgitest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxCapture bounds the STDOUT and STDERR kept per request, so that a server
// that answers with endless output cannot exhaust the suite's memory.
const maxCapture = 1 << 20

// conn is the suite's side of one connection to the application server.
type conn struct {
	nc   net.Conn
	br   *bufio.Reader
	stop func() bool // unregisters the context watcher
}

// dial connects to tg. Once ctx is done, reads and writes on the connection
// fail at once.
func dial(ctx context.Context, tg Target) (*conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, tg.network(), tg.Address)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c := &conn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	c.stop = context.AfterFunc(ctx, func() {
		// A deadline in the past wakes blocked reads and writes; the error
		// from SetDeadline on a closed connection does not matter.
		_ = nc.SetDeadline(time.Unix(1, 0))
	})
	return c, nil
}

// Close closes the connection.
func (c *conn) Close() error {
	c.stop()
	return c.nc.Close()
}

// until returns the earlier of now+d and ctx's deadline.
func until(ctx context.Context, d time.Duration) time.Time {
	t := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		return dl
	}
	return t
}

// send writes the records, each an encoded record, in one write.
func (c *conn) send(ctx context.Context, recs ...[]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.nc.SetWriteDeadline(until(ctx, writeWait)); err != nil {
		return err
	}
	if _, err := c.nc.Write(bytes.Join(recs, nil)); err != nil {
		return fmt.Errorf("writing to the server: %w", err)
	}
	return nil
}

// next reads one record, waiting until deadline at most.
func (c *conn) next(ctx context.Context, deadline time.Time) (record, error) {
	if err := ctx.Err(); err != nil {
		return record{}, err
	}
	if err := c.nc.SetReadDeadline(deadline); err != nil {
		return record{}, err
	}
	return readRecord(c.br)
}

// isTimeout reports whether err is a read or write deadline expiring.
func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// isClosed reports whether err means the server closed or reset the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// expectClose reads until the server closes the connection and fails if a
// record arrives first or the connection is still open after wait.
func (c *conn) expectClose(ctx context.Context, wait time.Duration, after string) error {
	rec, err := c.next(ctx, until(ctx, wait))
	switch {
	case err == nil:
		return fmt.Errorf("unexpected %v after %s", rec, after)
	case isClosed(err):
		return nil
	case isTimeout(err):
		return fmt.Errorf("connection still open %v after %s", wait, after)
	default:
		return err
	}
}

// expectQuiet waits for wait and fails if a record arrives meanwhile. The
// server closing the connection is not an error; the returned bool says
// whether it did.
func (c *conn) expectQuiet(ctx context.Context, wait time.Duration, after string) (closed bool, err error) {
	rec, err := c.next(ctx, until(ctx, wait))
	switch {
	case err == nil:
		return false, fmt.Errorf("unexpected %v after %s", rec, after)
	case isTimeout(err) && ctx.Err() == nil:
		return false, nil
	case isClosed(err):
		return true, nil
	default:
		return false, err
	}
}

// request is a responder request the suite sends.
type request struct {
	id       uint16
	keepConn bool
	path     string
	query    string
	body     []byte
	// stdinChunks are the content sizes of successive STDIN records, used in
	// turn, cyclically. If empty, records are as large as allowed.
	stdinChunks []int
	// paramsRecords is how many PARAMS records the parameters are split
	// into (before the empty one). If zero, as few as possible.
	paramsRecords int
	// pad is the padding length of every record.
	pad int
}

// baseParams returns the parameters the suite sends for a request of path
// and query with a body of bodyLen bytes, with tg.Params applied, sorted by name.
func (tg Target) baseParams(path, query string, bodyLen int) []pair {
	uri := path
	if query != "" {
		uri += "?" + query
	}
	m := map[string]string{
		"REQUEST_METHOD":    "GET",
		"REQUEST_URI":       uri,
		"SCRIPT_NAME":       path,
		"PATH_INFO":         "",
		"QUERY_STRING":      query,
		"CONTENT_LENGTH":    "",
		"SERVER_PROTOCOL":   "HTTP/1.1",
		"SERVER_NAME":       "localhost",
		"SERVER_PORT":       "80",
		"SERVER_SOFTWARE":   "fcgitest",
		"REMOTE_ADDR":       "127.0.0.1",
		"GATEWAY_INTERFACE": "CGI/1.1",
		"HTTP_HOST":         "localhost",
	}
	if bodyLen > 0 {
		m["REQUEST_METHOD"] = "POST"
		m["CONTENT_LENGTH"] = strconv.Itoa(bodyLen)
		m["CONTENT_TYPE"] = "application/octet-stream"
	}
	if tg.Params != nil {
		for k, v := range tg.Params(path, query) {
			m[k] = v
		}
	}
	out := make([]pair, 0, len(m))
	for k, v := range m {
		out = append(out, pair{k, v})
	}
	slices.SortFunc(out, func(a, b pair) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// encodePairs encodes pairs as a params stream.
func encodePairs(pairs []pair) []byte {
	var b []byte
	for _, p := range pairs {
		b = appendPair(b, p.Name, p.Value)
	}
	return b
}

// requestRecords holds the records of one request, in the order they are sent.
type requestRecords struct {
	begin  []byte
	params [][]byte // ending with the empty PARAMS record
	stdin  [][]byte // ending with the empty STDIN record
}

func (rr requestRecords) all() [][]byte {
	out := [][]byte{rr.begin}
	out = append(out, rr.params...)
	return append(out, rr.stdin...)
}

// records encodes r for tg.
func (r request) records(tg Target) requestRecords {
	var rr requestRecords
	rr.begin = appendRecord(nil, typeBeginRequest, r.id, beginBody(roleResponder, r.keepConn), r.pad)
	params := encodePairs(tg.baseParams(r.path, r.query, len(r.body)))
	size := maxContent
	if r.paramsRecords > 0 {
		size = min(maxContent, max(1, (len(params)+r.paramsRecords-1)/r.paramsRecords))
	}
	for len(params) > 0 {
		n := min(size, len(params))
		rr.params = append(rr.params, appendRecord(nil, typeParams, r.id, params[:n], r.pad))
		params = params[n:]
	}
	rr.params = append(rr.params, appendRecord(nil, typeParams, r.id, nil, r.pad))
	body := r.body
	for i := 0; len(body) > 0; i++ {
		n := maxContent
		if len(r.stdinChunks) > 0 {
			n = r.stdinChunks[i%len(r.stdinChunks)]
		}
		n = min(n, len(body))
		rr.stdin = append(rr.stdin, appendRecord(nil, typeStdin, r.id, body[:n], r.pad))
		body = body[n:]
	}
	rr.stdin = append(rr.stdin, appendRecord(nil, typeStdin, r.id, nil, r.pad))
	return rr
}

// response collects what the server sent for one request.
type response struct {
	id           uint16
	stdout       []byte
	stderr       []byte
	stdoutClosed bool // an empty STDOUT record arrived
	end          *endRequest
}

// addOutput appends content to a capture, up to maxCapture bytes.
func addOutput(dst, content []byte) []byte {
	return append(dst, content[:min(len(content), maxCapture-len(dst))]...)
}

// accept takes one record for this request and rejects those the protocol
// does not allow: anything after END_REQUEST, STDOUT after its empty record,
// and record types an application does not send for a request.
func (r *response) accept(rec record) error {
	if r.end != nil {
		return fmt.Errorf("request %d: %v after its END_REQUEST", r.id, rec)
	}
	switch rec.Type {
	case typeStdout:
		if r.stdoutClosed {
			return fmt.Errorf("request %d: %v after the empty STDOUT record that ended the stream", r.id, rec)
		}
		if len(rec.Content) == 0 {
			r.stdoutClosed = true
		}
		r.stdout = addOutput(r.stdout, rec.Content)
	case typeStderr:
		r.stderr = addOutput(r.stderr, rec.Content)
	case typeEndRequest:
		end, err := parseEndRequest(rec.Content)
		if err != nil {
			return fmt.Errorf("request %d: %w", r.id, err)
		}
		r.end = &end
	default:
		return fmt.Errorf("request %d: unexpected %v", r.id, rec)
	}
	return nil
}

// readResponses reads records until each request in ids has ended, waiting
// up to wait in all.
func (c *conn) readResponses(ctx context.Context, wait time.Duration, ids ...uint16) (map[uint16]*response, error) {
	deadline := until(ctx, wait)
	resps := make(map[uint16]*response, len(ids))
	for _, id := range ids {
		resps[id] = &response{id: id}
	}
	open := len(ids)
	for open > 0 {
		rec, err := c.next(ctx, deadline)
		if err != nil {
			var pending []uint16
			for _, id := range ids {
				if resps[id].end == nil {
					pending = append(pending, id)
				}
			}
			switch {
			case isTimeout(err):
				err = fmt.Errorf("no END_REQUEST for request %v within %v", pending, wait)
			case isClosed(err):
				// Wrapped so that isClosed still recognises it.
				err = fmt.Errorf("connection closed before END_REQUEST for request %v: %w", pending, err)
			}
			return resps, fmt.Errorf("%w%s", err, stderrNote(resps))
		}
		r, ok := resps[rec.ID]
		if !ok {
			return resps, fmt.Errorf("unexpected %v (waiting for requests %v)", rec, ids)
		}
		if err := r.accept(rec); err != nil {
			return resps, err
		}
		if rec.Type == typeEndRequest {
			open--
		}
	}
	return resps, nil
}

// stderrNote quotes what the server wrote to STDERR, for error messages.
func stderrNote(resps map[uint16]*response) string {
	var b strings.Builder
	for _, r := range resps {
		if len(r.stderr) > 0 {
			fmt.Fprintf(&b, " (request %d STDERR: %q)", r.id, truncate(r.stderr, 200))
		}
	}
	return b.String()
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

// cgiResponse is the CGI response (RFC 3875 § 6) carried by STDOUT.
type cgiResponse struct {
	status int
	header textproto.MIMEHeader
	body   []byte
}

// parseCGI parses a CGI response: header lines ended by \n or \r\n, an
// empty line, the body. A missing Status means 200.
func parseCGI(stdout []byte) (cgiResponse, error) {
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(stdout)))
	h, err := tr.ReadMIMEHeader()
	if err != nil {
		return cgiResponse{}, fmt.Errorf("STDOUT is not a CGI response (%v): %q", err, truncate(stdout, 200))
	}
	resp := cgiResponse{status: 200, header: h}
	if s := h.Get("Status"); s != "" {
		code, _, _ := strings.Cut(s, " ")
		resp.status, err = strconv.Atoi(code)
		if err != nil || len(code) != 3 {
			return resp, fmt.Errorf("bad Status header %q", s)
		}
	}
	resp.body, err = io.ReadAll(tr.R)
	return resp, err
}

// echoWant is what the echo endpoint must report.
type echoWant struct {
	length int
	sum    string // hex SHA-256 of the body
	query  string
}

func wantEcho(r request) echoWant {
	sum := sha256.Sum256(r.body)
	return echoWant{length: len(r.body), sum: hex.EncodeToString(sum[:]), query: r.query}
}

// checkEcho verifies a complete response from the echo endpoint.
func (r *response) checkEcho(want echoWant) error {
	if r.end == nil {
		return fmt.Errorf("request %d: no END_REQUEST", r.id)
	}
	if r.end.ProtocolStatus != statusRequestComplete {
		return fmt.Errorf("request %d: END_REQUEST protocolStatus %v; want REQUEST_COMPLETE", r.id, r.end.ProtocolStatus)
	}
	cgi, err := parseCGI(r.stdout)
	if err != nil {
		return fmt.Errorf("request %d: %w%s", r.id, err, stderrNote(map[uint16]*response{r.id: r}))
	}
	if cgi.status != 200 {
		return fmt.Errorf("request %d: status %d; want 200; body %q%s", r.id, cgi.status, truncate(cgi.body, 200),
			stderrNote(map[uint16]*response{r.id: r}))
	}
	if ct := cgi.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		return fmt.Errorf("request %d: Content-Type %q; want text/plain", r.id, ct)
	}
	got := map[string]string{}
	for line := range strings.Lines(string(cgi.body)) {
		k, v, _ := strings.Cut(strings.TrimRight(line, "\r\n"), "=")
		got[k] = v
	}
	var errs []error
	for _, kv := range [][2]string{
		{"CONTENT_LENGTH", strconv.Itoa(want.length)},
		{"SHA256", want.sum},
		{"QUERY_STRING", want.query},
	} {
		if g, ok := got[kv[0]]; !ok || g != kv[1] {
			errs = append(errs, fmt.Errorf("%s=%q; want %q", kv[0], g, kv[1]))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("request %d: echo answered wrongly: %w", r.id, errors.Join(errs...))
	}
	return nil
}

// roundTrip sends r on c and reads and checks the echo answer.
func (c *conn) roundTrip(ctx context.Context, tg Target, r request) error {
	if err := c.send(ctx, r.records(tg).all()...); err != nil {
		return err
	}
	resps, err := c.readResponses(ctx, answerWait, r.id)
	if err != nil {
		return err
	}
	return resps[r.id].checkEcho(wantEcho(r))
}

// probe checks that the server answers a plain echo request on a new
// connection.
func probe(ctx context.Context, tg Target, tag string) error {
	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.roundTrip(ctx, tg, request{id: 1, path: tg.echoPath(), query: "probe=" + tag})
}
