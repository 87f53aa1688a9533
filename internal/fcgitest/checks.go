package fcgitest

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// testBody returns n bytes of deterministic pseudo-random data.
func testBody(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'f', 'c', 'g', 'i'})
	b := make([]byte, n)
	_, _ = r.Read(b) // ChaCha8.Read never fails
	return b
}

// checkResponder sends one request without KEEP_CONN and checks the whole
// exchange: STDOUT with a CGI response, the empty STDOUT record, exactly one
// END_REQUEST with REQUEST_COMPLETE, then the server closes the connection
// (§ 5.1: without FCGI_KEEP_CONN the application closes it).
func checkResponder(ctx context.Context, tg Target) error {
	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	req := request{id: 1, path: tg.echoPath(), query: "check=responder"}
	if err := c.send(ctx, req.records(tg).all()...); err != nil {
		return err
	}
	resps, err := c.readResponses(ctx, answerWait, req.id)
	if err != nil {
		return err
	}
	r := resps[req.id]
	var errs []error
	if !r.stdoutClosed {
		errs = append(errs, errors.New("no empty STDOUT record ended the stream before END_REQUEST"))
	}
	errs = append(errs, r.checkEcho(wantEcho(req)))
	errs = append(errs, c.expectClose(ctx, closeWait, "END_REQUEST of a request without KEEP_CONN"))
	return errors.Join(errs...)
}

// getValuesNames are the variables of § 4.1, asked for by get-values.
var getValuesNames = []string{"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"}

// checkGetValues asks for the three variables of § 4.1 and checks that one
// GET_VALUES_RESULT record answers with well-formed values for at least one,
// and that nothing follows it.
func checkGetValues(ctx context.Context, tg Target) error {
	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	var q []byte
	for _, n := range getValuesNames {
		q = appendPair(q, n, "")
	}
	if err := c.send(ctx, appendRecord(nil, typeGetValues, nullID, q, 0)); err != nil {
		return err
	}
	rec, err := c.next(ctx, until(ctx, answerWait))
	if err != nil {
		return fmt.Errorf("no GET_VALUES_RESULT: %w", err)
	}
	if rec.Type != typeGetValuesResult || rec.ID != nullID {
		return fmt.Errorf("got %v; want GET_VALUES_RESULT id=0", rec)
	}
	pairs, err := parsePairs(rec.Content)
	if err != nil {
		return fmt.Errorf("GET_VALUES_RESULT content %q: %w", rec.Content, err)
	}
	var errs []error
	if len(pairs) == 0 {
		errs = append(errs, errors.New("GET_VALUES_RESULT is empty; want a value for at least one of "+strings.Join(getValuesNames, ", ")))
	}
	seen := map[string]bool{}
	for _, p := range pairs {
		switch {
		case !contains(getValuesNames, p.Name):
			errs = append(errs, fmt.Errorf("GET_VALUES_RESULT has %q, which was not asked for", p.Name))
		case seen[p.Name]:
			errs = append(errs, fmt.Errorf("GET_VALUES_RESULT has %q twice", p.Name))
		case !isDecimal(p.Value):
			errs = append(errs, fmt.Errorf("GET_VALUES_RESULT %s=%q; want a decimal number", p.Name, p.Value))
		case p.Name == "FCGI_MPXS_CONNS" && p.Value != "0" && p.Value != "1":
			errs = append(errs, fmt.Errorf("GET_VALUES_RESULT FCGI_MPXS_CONNS=%q; want 0 or 1", p.Value))
		}
		seen[p.Name] = true
	}
	if _, err := c.expectQuiet(ctx, quietWait, "GET_VALUES_RESULT (one query, one record)"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func isDecimal(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// unknownType is the management record type the unknown-type check sends;
// FastCGI 1.0 defines types up to 11.
const unknownType = 100

// checkUnknownType sends a management record of type 100 with an 8-byte body
// and wants FCGI_UNKNOWN_TYPE naming it (§ 4.2); then a request on the same
// connection must be answered, so the server skipped the record's body.
func checkUnknownType(ctx context.Context, tg Target) error {
	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.send(ctx, appendRecord(nil, unknownType, nullID, []byte("fcgitest"), 0)); err != nil {
		return err
	}
	rec, err := c.next(ctx, until(ctx, answerWait))
	if err != nil {
		return fmt.Errorf("no UNKNOWN_TYPE for a management record of type %d: %w", unknownType, err)
	}
	if rec.Type != typeUnknownType || rec.ID != nullID || len(rec.Content) != 8 || rec.Content[0] != unknownType {
		return fmt.Errorf("got %v content %q; want UNKNOWN_TYPE id=0 with an 8-byte body naming type %d", rec, rec.Content, unknownType)
	}
	req := request{id: 1, path: tg.echoPath(), query: "check=unknown-type"}
	if err := c.roundTrip(ctx, tg, req); err != nil {
		return fmt.Errorf("connection unusable after UNKNOWN_TYPE: %w", err)
	}
	return nil
}

// stdinChunks are the STDIN record sizes of stdin-300k: the largest, the
// smallest and odd ones between.
var stdinChunks = []int{maxContent, 1, 32768, maxContent, 8191, 12345}

// checkStdin300K sends a 300 KiB body over STDIN records of several sizes.
func checkStdin300K(ctx context.Context, tg Target) error {
	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	req := request{id: 1, path: tg.echoPath(), query: "check=stdin-300k", body: testBody(300<<10, 300), stdinChunks: stdinChunks}
	return c.roundTrip(ctx, tg, req)
}

// checkPadding255 sends a POST whose every record, BEGIN_REQUEST included,
// carries 255 bytes of padding (§ 3.3).
func checkPadding255(ctx context.Context, tg Target) error {
	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	req := request{id: 1, path: tg.echoPath(), query: "check=padding-255", body: testBody(1000, 255),
		stdinChunks: []int{400}, paramsRecords: 2, pad: maxPadding}
	return c.roundTrip(ctx, tg, req)
}

// checkInterleaved sends two requests on one connection with their records
// interleaved (§ 3.3: the application must be able to tell requests apart by
// ID) and wants both answered, each with its own END_REQUEST.
func checkInterleaved(ctx context.Context, tg Target) error {
	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	reqs := []request{
		{id: 1, keepConn: true, path: tg.echoPath(), query: "check=interleaved&req=1", body: testBody(5000, 1), stdinChunks: []int{3000}, paramsRecords: 2},
		{id: 2, keepConn: true, path: tg.echoPath(), query: "check=interleaved&req=2", body: testBody(7000, 2), stdinChunks: []int{4000}, paramsRecords: 2},
	}
	a, b := reqs[0].records(tg), reqs[1].records(tg)
	recs := [][]byte{a.begin, b.begin}
	recs = append(recs, zip(a.params, b.params)...)
	recs = append(recs, zip(a.stdin, b.stdin)...)
	if err := c.send(ctx, recs...); err != nil {
		return err
	}
	resps, err := c.readResponses(ctx, answerWait, 1, 2)
	for _, r := range resps {
		if r.end != nil && r.end.ProtocolStatus == statusCantMpxConn {
			return fmt.Errorf("%w: END_REQUEST CANT_MPX_CONN for request %d", ErrNoMultiplex, r.id)
		}
	}
	if err != nil {
		return err
	}
	return errors.Join(resps[1].checkEcho(wantEcho(reqs[0])), resps[2].checkEcho(wantEcho(reqs[1])))
}

// zip interleaves two lists: a0 b0 a1 b1 ..., then what is left of the longer.
func zip(a, b [][]byte) [][]byte {
	var out [][]byte
	for i := range max(len(a), len(b)) {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return out
}

// checkKeepConn sends three requests one after the other on one connection,
// all with KEEP_CONN and request ID 1 (reusable once ended, as web servers
// do), and wants the connection open after the third.
func checkKeepConn(ctx context.Context, tg Target) error {
	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	for i, n := range []int{100, 0, 2000} {
		req := request{id: 1, keepConn: true, path: tg.echoPath(),
			query: "check=keep-conn&n=" + strconv.Itoa(i+1), body: testBody(n, uint64(i))}
		if err := c.roundTrip(ctx, tg, req); err != nil {
			return fmt.Errorf("request %d of 3 on one KEEP_CONN connection: %w", i+1, err)
		}
	}
	closed, err := c.expectQuiet(ctx, quietWait, "the third END_REQUEST")
	if err != nil {
		return err
	}
	if closed {
		return errors.New("server closed the connection after the third request despite KEEP_CONN")
	}
	return nil
}

const (
	// abortWait bounds the wait for END_REQUEST after ABORT_REQUEST, and for
	// the script to be gone.
	abortWait = 10 * time.Second
	// pidWait bounds the wait for the sleep script to start.
	pidWait = 10 * time.Second
)

// checkAbort starts the sleep script, aborts its request (§ 5.4) and wants
// exactly one END_REQUEST for it and the script killed and reaped.
func checkAbort(ctx context.Context, tg Target) error {
	if _, err := readStat(os.Getpid()); err != nil {
		return fmt.Errorf("the abort check inspects processes through Linux's /proc: %w", err)
	}
	dir := tg.StateDir
	if dir == "" {
		d, err := os.MkdirTemp("", "fcgitest-")
		if err != nil {
			return err
		}
		// Best effort: a script running as another user may leave a file
		// we cannot remove, which must not fail the check.
		defer func() { _ = os.RemoveAll(d) }()
		// The script may run as another user. Chmod, unlike MkdirTemp's
		// mode, ignores the umask.
		if err := os.Chmod(d, 0o777); err != nil {
			return err
		}
		dir = d
	}
	pidFile := filepath.Join(dir, "abort-"+crand.Text()[:10]+".pid")
	if strings.Trim(pidFile, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-") != "" {
		return fmt.Errorf("state directory %q holds characters other than letters, digits and /._-", dir)
	}
	defer os.Remove(pidFile)

	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	req := request{id: 1, keepConn: true, path: tg.sleepPath(), query: "pid=" + pidFile}
	if err := c.send(ctx, req.records(tg).all()...); err != nil {
		return err
	}
	pid, start, err := waitPIDFile(ctx, pidFile)
	if err != nil {
		// Say what the server answered instead, if anything.
		resps, rerr := c.readResponses(ctx, 100*time.Millisecond, req.id)
		if r := resps[req.id]; r != nil && len(r.stdout)+len(r.stderr) > 0 {
			return fmt.Errorf("%w; server answered STDOUT %q STDERR %q (%v)", err, truncate(r.stdout, 200), truncate(r.stderr, 200), rerr)
		}
		return err
	}
	// Whatever happens, the script must not outlive the check.
	defer kill(pid, start)

	abortAt := time.Now()
	if err := c.send(ctx, appendRecord(nil, typeAbortRequest, req.id, nil, 0)); err != nil {
		return err
	}
	var errs []error
	ended, closed, err := readAborted(ctx, c, req.id)
	if err != nil {
		errs = append(errs, err)
	}

	// The script: gone within abortWait of the abort.
	state, err := waitGone(ctx, pid, start, time.Until(abortAt.Add(abortWait)))
	switch {
	case err != nil:
		errs = append(errs, err)
	case state != "gone":
		errs = append(errs, fmt.Errorf("script (pid %d) still %s %v after ABORT_REQUEST", pid, state, abortWait))
	}

	// The connection: if the server kept it open, it must serve on it.
	if ended && !closed {
		next := request{id: 2, path: tg.echoPath(), query: "check=abort&after=1"}
		err := c.roundTrip(ctx, tg, next)
		if err != nil && !isClosed(err) {
			errs = append(errs, fmt.Errorf("connection kept open after the abort, but a request on it failed: %w", err))
		}
	}
	return errors.Join(errs...)
}

// waitPIDFile waits for the sleep script to write its PID and returns it
// with the process's start time.
func waitPIDFile(ctx context.Context, path string) (int, uint64, error) {
	deadline := until(ctx, pidWait)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid <= 0 {
				return 0, 0, fmt.Errorf("sleep script wrote %q to its pid file", b)
			}
			st, err := readStat(pid)
			if err != nil {
				return 0, 0, fmt.Errorf("sleep script (pid %d) exited before the abort: %w", pid, err)
			}
			return pid, st.start, nil
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("sleep script did not write %s within %v", path, pidWait)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readAborted reads the records that follow an ABORT_REQUEST for id: STDOUT
// and STDERR may still come, then exactly one END_REQUEST within abortWait,
// then nothing for id during quietWait*2. It reports whether the END_REQUEST
// came and whether the server closed the connection.
func readAborted(ctx context.Context, c *conn, id uint16) (ended, closed bool, err error) {
	r := &response{id: id}
	deadline := until(ctx, abortWait)
	for r.end == nil {
		rec, err := c.next(ctx, deadline)
		switch {
		case isTimeout(err):
			return false, false, fmt.Errorf("no END_REQUEST within %v of ABORT_REQUEST", abortWait)
		case isClosed(err):
			return false, true, fmt.Errorf("connection closed without END_REQUEST after ABORT_REQUEST: %w", err)
		case err != nil:
			return false, false, err
		case rec.ID != id:
			return false, false, fmt.Errorf("unexpected %v after ABORT_REQUEST for request %d", rec, id)
		}
		if err := r.accept(rec); err != nil {
			return false, false, err
		}
	}
	// Exactly one: listen a while for a second END_REQUEST (or any record).
	deadline = until(ctx, 2*quietWait)
	for {
		rec, err := c.next(ctx, deadline)
		switch {
		case isTimeout(err):
			return true, false, nil
		case isClosed(err):
			return true, true, nil
		case err != nil:
			return true, false, err
		case rec.Type == typeEndRequest && rec.ID == id:
			return true, false, fmt.Errorf("second END_REQUEST for aborted request %d", id)
		default:
			return true, false, fmt.Errorf("unexpected %v after END_REQUEST of the aborted request", rec)
		}
	}
}

// waitGone polls until the process pid started at start is gone, for up to
// wait (at least one look), and returns its last state.
func waitGone(ctx context.Context, pid int, start uint64, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		state, err := procState(pid, start)
		if err != nil || state == "gone" || time.Now().After(deadline) {
			return state, err
		}
		select {
		case <-ctx.Done():
			return state, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkLyingLengths sends records whose lengths lie and wants the server to
// give up on each connection within closeWait (answering or closing), and
// to stay alive.
func checkLyingLengths(ctx context.Context, tg Target) error {
	var errs []error
	for _, sub := range []struct {
		name string
		run  func(context.Context, Target) error
	}{
		{"record cut short", lieRecordCut},
		{"value longer than the params stream", liePairLength},
		{"length cut by the end of the params stream", lieSizeCut},
	} {
		if err := sub.run(ctx, tg); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sub.name, err))
		}
		if err := checkAlive(tg); err != nil {
			errs = append(errs, fmt.Errorf("after %s: %w", sub.name, err))
			break
		}
	}
	return errors.Join(errs...)
}

// checkAlive fails if tg.PID is set and that process is gone or a zombie.
func checkAlive(tg Target) error {
	if tg.PID == 0 {
		return nil
	}
	st, err := readStat(tg.PID)
	if err != nil {
		return fmt.Errorf("server process %d: %w", tg.PID, err)
	}
	if st.state == 'Z' {
		return fmt.Errorf("server process %d exited", tg.PID)
	}
	return nil
}

// lieRecordCut announces a PARAMS record of 65535 bytes, sends 100, and
// shuts its side of the connection down: the server must notice the end of
// the stream and close the connection.
func lieRecordCut(ctx context.Context, tg Target) error {
	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	params := encodePairs(tg.baseParams(tg.echoPath(), "check=lying-lengths&case=1", 0))
	content := make([]byte, 100)
	copy(content, params)
	recs := [][]byte{
		appendRecord(nil, typeBeginRequest, 1, beginBody(roleResponder, false), 0),
		appendHeader(nil, typeParams, 1, maxContent, 0),
		content,
	}
	if err := c.send(ctx, recs...); err != nil {
		return err
	}
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("cannot shut down writing on a %T", c.nc)
	}
	if err := cw.CloseWrite(); err != nil {
		return err
	}
	return c.drainUntilClosed(ctx, closeWait, "its client stopped mid-record")
}

// drainUntilClosed reads and drops records until the server closes the
// connection, for up to wait.
func (c *conn) drainUntilClosed(ctx context.Context, wait time.Duration, after string) error {
	deadline := until(ctx, wait)
	for {
		_, err := c.next(ctx, deadline)
		switch {
		case err == nil:
		case isClosed(err):
			return nil
		case isTimeout(err):
			return fmt.Errorf("connection still open %v after %s", wait, after)
		default:
			return err
		}
	}
}

// liePairLength ends the params stream with a pair whose value claims
// 2^31-1 bytes but has 16: the server must answer or close, not wait for
// more params, nor try to allocate 2 GiB.
func liePairLength(ctx context.Context, tg Target) error {
	params := encodePairs(tg.baseParams(tg.echoPath(), "check=lying-lengths&case=2", 0))
	params = appendSize(params, 10)
	params = appendSize(params, 1<<31-1)
	params = append(params, "HTTP_X_LIE0123456789abcdef"...)
	return sendLie(ctx, tg, params)
}

// lieSizeCut ends the params stream in the middle of a 4-byte length.
func lieSizeCut(ctx context.Context, tg Target) error {
	params := encodePairs(tg.baseParams(tg.echoPath(), "check=lying-lengths&case=3", 0))
	params = append(params, 0x80, 0x00)
	return sendLie(ctx, tg, params)
}

// sendLie sends a request whose params stream is params (well framed in
// records, badly encoded inside) and wants an END_REQUEST, of any status, or
// the connection closed within closeWait.
func sendLie(ctx context.Context, tg Target, params []byte) error {
	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	recs := [][]byte{
		appendRecord(nil, typeBeginRequest, 1, beginBody(roleResponder, false), 0),
		appendRecord(nil, typeParams, 1, params, 0),
		appendRecord(nil, typeParams, 1, nil, 0),
		appendRecord(nil, typeStdin, 1, nil, 0),
	}
	if err := c.send(ctx, recs...); err != nil {
		if isClosed(err) {
			return nil
		}
		return err
	}
	return c.answeredOrClosed(ctx, closeWait, 1)
}

// answeredOrClosed reads until the END_REQUEST for id or the end of the
// connection, for up to wait. Any status will do.
func (c *conn) answeredOrClosed(ctx context.Context, wait time.Duration, id uint16) error {
	deadline := until(ctx, wait)
	r := &response{id: id}
	for {
		rec, err := c.next(ctx, deadline)
		switch {
		case isClosed(err):
			return nil
		case isTimeout(err):
			return fmt.Errorf("neither END_REQUEST nor close within %v", wait)
		case err != nil:
			return err
		case rec.ID != id:
			return fmt.Errorf("unexpected %v", rec)
		}
		if err := r.accept(rec); err != nil {
			return err
		}
		if r.end != nil {
			return nil
		}
	}
}

const (
	// bigParams is the size of the value params-10mb sends.
	bigParams = 10 << 20
	// bigWait bounds the params-10mb exchange.
	bigWait = 20 * time.Second
)

// checkParams10MB sends a params stream of 10 MiB (one huge HTTP_X_BIG
// value in full-size records) and wants an answer of any status or the
// connection closed, and the server's memory not to grow by MaxRSSGrowth.
func checkParams10MB(ctx context.Context, tg Target) error {
	measure := tg.memory()
	var before int64
	if measure != nil {
		n, err := measure()
		if err != nil {
			return fmt.Errorf("measuring the server's memory: %w", err)
		}
		before = n
	}
	c, err := dial(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.nc.SetWriteDeadline(until(ctx, bigWait)); err != nil {
		return err
	}
	werr := make(chan error, 1)
	go func() { werr <- writeBigRequest(c.nc, tg) }()
	err = c.answeredOrClosed(ctx, bigWait, 1)
	c.Close() // unblocks the writer
	if wErr := <-werr; err == nil && wErr != nil && !isClosed(wErr) && !errors.Is(wErr, net.ErrClosed) {
		err = fmt.Errorf("sending the request: %w", wErr)
	}
	if err != nil || measure == nil {
		return err
	}
	// Let the server finish what it does after the answer, and answer a
	// plain request, before measuring.
	if err := probe(ctx, tg, "params-10mb"); err != nil {
		return fmt.Errorf("server stopped serving: %w", err)
	}
	after, err := measure()
	if err != nil {
		return fmt.Errorf("measuring the server's memory: %w", err)
	}
	if growth := after - before; growth >= tg.maxRSSGrowth() {
		return fmt.Errorf("server memory grew by %s (%s -> %s); the bound is %s",
			mib(growth), mib(before), mib(after), mib(tg.maxRSSGrowth()))
	}
	return nil
}

// writeBigRequest writes request 1 with the 10 MiB params stream, streaming
// it through a small buffer so that the suite's own memory stays flat (the
// server may be this very process).
func writeBigRequest(w io.Writer, tg Target) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(appendRecord(nil, typeBeginRequest, 1, beginBody(roleResponder, false), 0))
	rw := &recordWriter{w: bw, t: typeParams, id: 1}
	pw := bufio.NewWriterSize(rw, maxContent)
	pw.Write(encodePairs(tg.baseParams(tg.echoPath(), "check=params-10mb", 0)))
	pw.Write(appendSize(appendSize(nil, 10), bigParams))
	pw.WriteString("HTTP_X_BIG")
	chunk := []byte(strings.Repeat("0123456789abcdef", 4096))
	for n := 0; n < bigParams; n += len(chunk) {
		pw.Write(chunk[:min(len(chunk), bigParams-n)])
	}
	pw.Flush()
	bw.Write(appendRecord(nil, typeParams, 1, nil, 0))
	bw.Write(appendRecord(nil, typeStdin, 1, nil, 0))
	// bufio.Writer keeps the first error: the writes above need no check.
	if rw.err != nil {
		return rw.err
	}
	return bw.Flush()
}

// recordWriter cuts what is written to it into records of one type.
type recordWriter struct {
	w   io.Writer
	t   recType
	id  uint16
	err error
	hdr []byte
}

func (rw *recordWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && rw.err == nil {
		m := min(len(p), maxContent)
		rw.hdr = appendHeader(rw.hdr[:0], rw.t, rw.id, m, 0)
		if _, rw.err = rw.w.Write(rw.hdr); rw.err == nil {
			_, rw.err = rw.w.Write(p[:m])
		}
		n += m
		p = p[m:]
	}
	return n, rw.err
}
