package conformance

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Limits of the checks that wait for something. They only matter when a gateway
// fails: a conforming one passes without waiting for them.
const (
	streamWait = 5 * time.Second  // for the first line of stream.sh
	logWait    = 5 * time.Second  // for stderr.sh's marker to reach Target.Log
	startWait  = 5 * time.Second  // for sleep.sh to write its PID
	reapWait   = 10 * time.Second // for the gateway to kill and reap sleep.sh
	pollEvery  = 20 * time.Millisecond
)

// poll calls cond every pollEvery until it returns true, limit has passed or ctx
// is done, and returns cond's last result.
func poll(ctx context.Context, limit time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-tick.C:
		}
	}
}

// checkStreaming reads stream.sh's first line, and only then creates the file
// the script waits for. Receiving that line proves the gateway forwarded it
// while the script was still running; no timing is assumed on success.
func checkStreaming(ctx context.Context, s *session) error {
	dir, err := s.stateDir()
	if err != nil {
		return err
	}
	tok := rand.Text()
	release := filepath.Join(dir, tok+".release")
	released := false
	releaseScript := func() error {
		released = true
		return os.WriteFile(release, nil, 0o644)
	}
	defer func() {
		if !released {
			// Let the script end now rather than after its own 30 s limit, so
			// the gateway is not left with it. The file stays: the script
			// polls for it. Nothing to report on failure.
			_ = releaseScript()
		}
	}()

	rawPath := s.script("stream.sh?" + tok)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(streamWait, cancel)
	buffered := fmt.Errorf("GET %s: first line not received within %v while the script waits for the client: the gateway buffers script output", rawPath, streamWait)

	req, err := s.newRequest(rctx, http.MethodGet, rawPath, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if !timer.Stop() {
			return buffered
		}
		return fmt.Errorf("GET %s: %w", rawPath, unwrapURLError(err))
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if !timer.Stop() {
		return buffered
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d; want 200 (body %q)", rawPath, resp.StatusCode, line)
	}
	if err != nil || line != "first\n" {
		return fmt.Errorf("GET %s: first line %q (error %v); want %q", rawPath, line, err, "first\n")
	}
	if err := releaseScript(); err != nil {
		return fmt.Errorf("conformance: releasing stream.sh: %w", err)
	}
	rest, err := io.ReadAll(io.LimitReader(br, maxBody))
	if err != nil {
		return fmt.Errorf("GET %s: after the first line: %w", rawPath, err)
	}
	if string(rest) != "released\n" {
		return fmt.Errorf("GET %s: rest of body %s; want %q", rawPath, snippet(rest), "released\n")
	}
	// The script has ended, so its release file can go.
	_ = os.Remove(release) // best effort, in a directory we own
	return nil
}

// checkStderr checks that output on stderr does not disturb the response and,
// if the target exposes its log, that it lands there.
func checkStderr(ctx context.Context, s *session) error {
	tok := rand.Text()
	rawPath := s.script("stderr.sh?" + tok)
	res, err := s.get(ctx, rawPath)
	if err != nil {
		return err
	}
	if err := wantStatus("GET", rawPath, res, http.StatusOK); err != nil {
		return err
	}
	if want := "stderr ok " + tok + "\n"; string(res.body) != want {
		return fmt.Errorf("GET %s: body %s; want %q", rawPath, snippet(res.body), want)
	}
	if s.tg.Log == nil {
		return nil
	}
	marker := "conformance-stderr-" + tok
	if !poll(ctx, logWait, func() bool { return strings.Contains(s.tg.Log(), marker) }) {
		return fmt.Errorf("GET %s: marker %q that the script wrote to stderr is not in the gateway's log after %v", rawPath, marker, logWait)
	}
	return nil
}

// checkCrash checks that a script dying without output gives 500 or 502, and that
// the gateway goes on serving.
func checkCrash(ctx context.Context, s *session) error {
	rawPath := s.script("crash.sh")
	res, err := s.get(ctx, rawPath)
	if err != nil {
		return err
	}
	if res.status != http.StatusInternalServerError && res.status != http.StatusBadGateway {
		return fmt.Errorf("GET %s: status %d; want 500 or 502 for a script killed by SIGSEGV before any output (body %s)", rawPath, res.status, snippet(res.body))
	}
	after := s.script("env.sh")
	res, err = s.get(ctx, after)
	if err != nil {
		return fmt.Errorf("after the crash: %w", err)
	}
	if err := wantStatus("GET", after, res, http.StatusOK); err != nil {
		return fmt.Errorf("after the crash: %w", err)
	}
	if _, err := parseEnvDump(res.body); err != nil {
		return fmt.Errorf("after the crash: GET %s: %w", after, err)
	}
	return nil
}

// checkNPH checks that a non-parsed-header script's status line, header and body
// reach the client (RFC 3875 § 5).
func checkNPH(ctx context.Context, s *session) error {
	rawPath := s.script("nph-hello.sh")
	res, err := s.get(ctx, rawPath)
	if err != nil {
		return err
	}
	var errs []error
	if res.status != http.StatusAccepted {
		errs = append(errs, fmt.Errorf("GET %s: status %d; want 202 from the script's own status line (RFC 3875 § 5: NPH output is not parsed)", rawPath, res.status))
	}
	if got := res.header.Get("X-NPH"); got != "yes" {
		errs = append(errs, fmt.Errorf("GET %s: header X-NPH = %q; want %q", rawPath, got, "yes"))
	}
	if string(res.body) != "nph hello\n" {
		errs = append(errs, fmt.Errorf("GET %s: body %s; want %q", rawPath, snippet(res.body), "nph hello\n"))
	}
	return errors.Join(errs...)
}

// checkHead sends HEAD on a raw connection, so that body bytes the gateway
// wrongly sends are seen (net/http's client would silently drop them), then a
// GET on the same connection to check the framing.
func checkHead(ctx context.Context, s *session) error {
	if s.base.Scheme != "http" {
		return fmt.Errorf("raw HEAD needs an http:// base URL, not %q: %w", s.base.Scheme, ErrUnavailable)
	}
	addr := s.base.Host
	if s.base.Port() == "" {
		addr = net.JoinHostPort(s.base.Hostname(), "80")
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() {
		// Wake blocked reads and writes; the check then fails with their error.
		_ = conn.SetDeadline(time.Unix(1, 0))
	})
	defer stop()
	br := bufio.NewReader(conn)

	send := func(method, rawPath string) (*http.Response, error) {
		_, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ferry-conformance\r\n%s: %s\r\n\r\n",
			method, rawPath, s.base.Host, stateHeader, s.tg.StateDir)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, rawPath, err)
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return nil, fmt.Errorf("%s %s: reading response: %w", method, rawPath, err)
		}
		return resp, nil
	}

	head := s.script("env.sh")
	resp, err := send(http.MethodHead, head)
	if err != nil {
		return err
	}
	resp.Body.Close() // empty for HEAD: ReadResponse does not read a body
	var errs []error
	if resp.StatusCode != http.StatusOK {
		errs = append(errs, fmt.Errorf("HEAD %s: status %d; want 200", head, resp.StatusCode))
	}
	if got := resp.Header.Get("Content-Type"); got != "text/plain" {
		errs = append(errs, fmt.Errorf("HEAD %s: Content-Type %q; want %q as for GET", head, got, "text/plain"))
	}
	if got := resp.Header.Get("X-Conformance-Script"); got != "env.sh" {
		errs = append(errs, fmt.Errorf("HEAD %s: header X-Conformance-Script = %q; want %q as for GET", head, got, "env.sh"))
	}
	if errs != nil || resp.Close {
		// The gateway may end the connection after HEAD; then there is no
		// follow-up to check the framing with.
		return errors.Join(errs...)
	}

	next := s.script("status.sh")
	resp, err = send(http.MethodGet, next)
	if err != nil {
		return fmt.Errorf("after HEAD %s, the next response on the connection is garbled (did the HEAD response carry a body?): %w", head, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("GET %s after HEAD: %w", next, err)
	}
	if resp.StatusCode != http.StatusTeapot || string(body) != "teapot\n" {
		return fmt.Errorf("GET %s after HEAD %s: status %d, body %s; want 418, %q (did the HEAD response carry a body?)", next, head, resp.StatusCode, snippet(body), "teapot\n")
	}
	return nil
}

// checkDisconnect starts sleep.sh, waits until it has written its PID, closes
// the connection, and waits until that process is gone and reaped.
func checkDisconnect(ctx context.Context, s *session) error {
	dir, err := s.stateDir()
	if err != nil {
		return err
	}
	tok := rand.Text()
	pidFile := filepath.Join(dir, tok+".pid")
	defer os.Remove(pidFile) // best effort, in a directory we own

	rawPath := s.script("sleep.sh?" + tok)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := s.newRequest(rctx, http.MethodGet, rawPath, nil)
	if err != nil {
		return err
	}
	done := make(chan error, 1) // the request's end; always received before return
	go func() {
		resp, err := s.client.Do(req)
		if err != nil {
			done <- unwrapURLError(err)
			return
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		done <- fmt.Errorf("status %d, %d body bytes, read error %v", resp.StatusCode, n, err)
	}()
	ended := false
	disconnect := func() error {
		cancel() // closes the connection
		if ended {
			return nil
		}
		ended = true
		return <-done
	}
	defer disconnect()

	pid := 0
	sctx, scancel := context.WithTimeout(ctx, startWait)
	defer scancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for pid == 0 {
		select {
		case err := <-done:
			ended = true
			return fmt.Errorf("GET %s ended before the script wrote its PID: %v", rawPath, err)
		case <-sctx.Done():
			return fmt.Errorf("GET %s: no PID file from sleep.sh within %v", rawPath, startWait)
		case <-tick.C:
			b, err := os.ReadFile(pidFile)
			if err != nil {
				continue
			}
			if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || pid <= 0 {
				return fmt.Errorf("sleep.sh wrote PID file %q; want a PID", b)
			}
		}
	}
	_ = disconnect() // the request's error is context.Canceled, as intended

	if poll(ctx, reapWait, func() bool { return procState(pid) == procGone }) {
		return nil
	}
	state := procState(pid)
	if p, err := os.FindProcess(pid); err == nil {
		// Clean up after the gateway so that it can shut down; a zombie is
		// not helped by this, only by its parent.
		_ = p.Kill()
		_ = p.Release()
	}
	if state == procZombie {
		return fmt.Errorf("script (pid %d) killed but not reaped %v after the client disconnected (zombie)", pid, reapWait)
	}
	return fmt.Errorf("script (pid %d) still running %v after the client disconnected; want it killed", pid, reapWait)
}

// procStatus says whether a process exists.
type procStatus int

const (
	procGone    procStatus = iota // no such process: it ended and was reaped
	procZombie                    // it ended but its parent has not reaped it
	procRunning                   // anything else
)

// String returns "gone", "zombie" or "running".
func (p procStatus) String() string {
	names := [...]string{procGone: "gone", procZombie: "zombie", procRunning: "running"}
	if p >= 0 && int(p) < len(names) {
		return names[p]
	}
	return "procStatus(" + strconv.Itoa(int(p)) + ")"
}

// procState reports on pid from /proc/PID/stat, or with signal 0 where there is
// no /proc (which cannot tell a zombie from a running process).
func procState(pid int) procStatus {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil {
		// The state follows the command name, which is in parentheses and
		// may itself contain ") ".
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return procZombie
		}
		return procRunning
	}
	if _, serr := os.Stat("/proc/self/stat"); serr == nil {
		return procGone // /proc works, and pid is not in it
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return procGone
	}
	defer p.Release()
	if p.Signal(syscall.Signal(0)) != nil {
		return procGone
	}
	return procRunning
}
