package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// checkEnv requests the three env scripts with path info, a query and custom
// headers, and checks the meta-variables of RFC 3875 § 4.1.
func checkEnv(ctx context.Context, s *session) error {
	var errs []error
	for _, name := range []string{"env.sh", "env.pl", "env.py"} {
		errs = append(errs, s.checkEnvScript(ctx, name))
	}
	return errors.Join(errs...)
}

func (s *session) checkEnvScript(ctx context.Context, name string) error {
	rawPath := s.script(name + "/extra/path%20x?a=1&b=%2F")
	var local atomic.Pointer[string] // the client's IP, as the gateway should see it
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if a, ok := info.Conn.LocalAddr().(*net.TCPAddr); ok {
			ip := a.IP.String()
			local.Store(&ip)
		}
	}}
	req, err := s.newRequest(httptrace.WithClientTrace(ctx, trace), http.MethodGet, rawPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Custom-Header", "v1")
	req.Header.Set("Proxy", "evil") // httpoxy, golang.org/issue/16405
	res, err := s.do(req)
	if err != nil {
		return err
	}
	if err := wantStatus("GET", rawPath, res, http.StatusOK); err != nil {
		return err
	}
	env, err := parseEnvDump(res.body)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	port := s.base.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[s.base.Scheme]
	}
	want := [][2]string{
		{"REQUEST_METHOD", "GET"},
		{"PATH_INFO", "/extra/path x"},
		{"QUERY_STRING", "a=1&b=%2F"},
		{"SCRIPT_NAME", s.script(name)},
		{"GATEWAY_INTERFACE", "CGI/1.1"},
		{"SERVER_PROTOCOL", "HTTP/1.1"},
		{"SERVER_PORT", port},
		{"HTTP_HOST", s.base.Host},
		{"HTTP_X_CUSTOM_HEADER", "v1"},
	}
	if ip := local.Load(); ip != nil {
		want = append(want, [2]string{"REMOTE_ADDR", *ip})
	}
	errs := []error{wantVars(name, env, want)}
	for _, v := range []string{"SERVER_NAME", "SERVER_SOFTWARE"} {
		if env[v] == "" {
			errs = append(errs, fmt.Errorf("%s: %s empty or unset; want a value", name, v))
		}
	}
	if v, ok := env["HTTP_PROXY"]; ok {
		errs = append(errs, fmt.Errorf("%s: HTTP_PROXY = %q; want unset (httpoxy: the Proxy header must not become HTTP_PROXY)", name, v))
	}
	if v := env["CONTENT_LENGTH"]; v != "" {
		errs = append(errs, fmt.Errorf("%s: CONTENT_LENGTH = %q; want unset or empty for a GET without body (RFC 3875 § 4.1.2)", name, v))
	}
	if got := res.header.Get("X-Conformance-Script"); got != name {
		errs = append(errs, fmt.Errorf("%s: response header X-Conformance-Script = %q; want %q", name, got, name))
	}
	return errors.Join(errs...)
}

// testData returns n deterministic pseudo-random bytes for seed.
func testData(n int, seed byte) []byte {
	b := make([]byte, n)
	// ChaCha8.Read never fails.
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// postEcho sends body to echo.py and checks what the script read. If chunked,
// the body goes out with Transfer-Encoding: chunked and no Content-Length.
func (s *session) postEcho(ctx context.Context, body []byte, chunked bool) error {
	rawPath := s.script("echo.py")
	req, err := s.newRequest(ctx, http.MethodPost, rawPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if chunked {
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		req.GetBody = nil
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := s.do(req)
	if err != nil {
		if chunked {
			return fmt.Errorf("chunked body: %w", err)
		}
		return err
	}
	if chunked && res.status == http.StatusLengthRequired {
		return fmt.Errorf("POST %s: status 411 Length Required; want 200: the gateway must read a chunked body and pass its length as CONTENT_LENGTH (RFC 3875 § 4.2)", rawPath)
	}
	if err := wantStatus("POST", rawPath, res, http.StatusOK); err != nil {
		return err
	}
	got, err := parseEnvDump(res.body)
	if err != nil {
		return fmt.Errorf("POST %s: %w", rawPath, err)
	}
	n := strconv.Itoa(len(body))
	return wantVars("echo.py", got, [][2]string{
		{"REQUEST_METHOD", "POST"},
		{"CONTENT_LENGTH", n},
		{"CONTENT_TYPE", "application/octet-stream"},
		{"read", n},
		{"sha256", sha256Hex(body)},
	})
}

// checkPost1MiB posts 1 MiB with a Content-Length.
func checkPost1MiB(ctx context.Context, s *session) error {
	return s.postEcho(ctx, testData(1<<20, 1), false)
}

// checkPostChunked posts 300 KiB with chunked transfer coding; the script must
// still see CONTENT_LENGTH.
func checkPostChunked(ctx context.Context, s *session) error {
	return s.postEcho(ctx, testData(300<<10, 2), true)
}

// checkStatus checks that a Status header sets the response status.
func checkStatus(ctx context.Context, s *session) error {
	rawPath := s.script("status.sh")
	res, err := s.get(ctx, rawPath)
	if err != nil {
		return err
	}
	if err := wantStatus("GET", rawPath, res, http.StatusTeapot); err != nil {
		return err
	}
	if string(res.body) != "teapot\n" {
		return fmt.Errorf("GET %s: body %s; want %q", rawPath, snippet(res.body), "teapot\n")
	}
	return nil
}

// checkCookies checks that two header fields of one name both arrive, in order.
func checkCookies(ctx context.Context, s *session) error {
	rawPath := s.script("cookies.sh")
	res, err := s.get(ctx, rawPath)
	if err != nil {
		return err
	}
	if err := wantStatus("GET", rawPath, res, http.StatusOK); err != nil {
		return err
	}
	got := res.header.Values("Set-Cookie")
	want := []string{"first=1; Path=/", "second=2; Path=/"}
	if !slices.Equal(got, want) {
		return fmt.Errorf("GET %s: Set-Cookie = %q; want %q", rawPath, got, want)
	}
	return nil
}

// checkRedirect checks local (RFC 3875 § 6.2.2) and client (§ 6.2.3) redirects.
func checkRedirect(ctx context.Context, s *session) error {
	var errs []error

	local := s.script("redirect-local.sh")
	res, err := s.get(ctx, local)
	switch {
	case err != nil:
		errs = append(errs, err)
	case res.status != http.StatusOK:
		errs = append(errs, fmt.Errorf("GET %s: status %d, Location %q; want 200 with the output of env.sh: a local redirect must be served inside the gateway (RFC 3875 § 6.2.2)",
			local, res.status, res.header.Get("Location")))
	default:
		if loc := res.header.Get("Location"); loc != "" {
			errs = append(errs, fmt.Errorf("GET %s: Location %q reached the client; want none", local, loc))
		}
		env, err := parseEnvDump(res.body)
		if err != nil {
			errs = append(errs, fmt.Errorf("GET %s: %w", local, err))
			break
		}
		errs = append(errs, wantVars("redirected env.sh", env, [][2]string{
			{"REQUEST_METHOD", "GET"},
			{"SCRIPT_NAME", s.script("env.sh")},
			{"PATH_INFO", "/from-redirect"},
			{"QUERY_STRING", "x=1"},
		}))
	}

	client := s.script("redirect-client.sh")
	res, err = s.get(ctx, client)
	switch {
	case err != nil:
		errs = append(errs, err)
	case res.status != http.StatusFound:
		errs = append(errs, fmt.Errorf("GET %s: status %d; want 302 for a client redirect (RFC 3875 § 6.2.3)", client, res.status))
	default:
		const want = "http://example.invalid/elsewhere"
		if loc := res.header.Get("Location"); loc != want {
			errs = append(errs, fmt.Errorf("GET %s: Location %q; want %q", client, loc, want))
		}
	}
	return errors.Join(errs...)
}

// bigLines and bigLen describe big.pl's output: lines "%063d\n" for 0..bigLines-1.
const (
	bigLines = 327680
	bigLen   = bigLines * 64 // 20 MiB
)

// bigSum returns the SHA-256 of big.pl's output.
func bigSum() string {
	h := sha256.New()
	for i := range bigLines {
		fmt.Fprintf(h, "%063d\n", i) // hash.Hash.Write never fails
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkOutput20MiB streams 20 MiB of script output and checks length and hash.
func checkOutput20MiB(ctx context.Context, s *session) error {
	rawPath := s.script("big.pl")
	req, err := s.newRequest(ctx, http.MethodGet, rawPath, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", rawPath, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200)) // only for the message
		return fmt.Errorf("GET %s: status %d; want 200 (body %s)", rawPath, resp.StatusCode, snippet(b))
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: read %d bytes, then: %w", rawPath, n, err)
	}
	if n != bigLen {
		return fmt.Errorf("GET %s: body is %d bytes; want %d", rawPath, n, bigLen)
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), bigSum(); got != want {
		return fmt.Errorf("GET %s: body SHA-256 %s; want %s", rawPath, got, want)
	}
	return nil
}

// parallelRequests is how many requests checkParallel sends at once.
const parallelRequests = 64

// checkParallel sends 64 requests at once, alternating GETs of env.sh with a
// distinct query and POSTs of distinct 4 KiB bodies to echo.py.
func checkParallel(ctx context.Context, s *session) error {
	errs := make([]error, parallelRequests)
	var wg sync.WaitGroup
	for i := range parallelRequests {
		wg.Go(func() {
			if i%2 == 1 {
				if err := s.postEcho(ctx, testData(4<<10, byte(i)), false); err != nil {
					errs[i] = fmt.Errorf("request %d: %w", i, err)
				}
				return
			}
			rawPath := s.script(fmt.Sprintf("env.sh?n=%d", i))
			res, err := s.get(ctx, rawPath)
			if err == nil {
				err = wantStatus("GET", rawPath, res, http.StatusOK)
			}
			if err == nil {
				var env map[string]string
				env, err = parseEnvDump(res.body)
				if err == nil {
					err = wantVars("env.sh", env, [][2]string{{"QUERY_STRING", fmt.Sprintf("n=%d", i)}})
				}
			}
			if err != nil {
				errs[i] = fmt.Errorf("request %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	const show = 3
	if len(failed) > show {
		failed = append(failed[:show], fmt.Errorf("... and %d more", len(failed)-show))
	}
	return fmt.Errorf("%d of %d parallel requests failed: %w", countNonNil(errs), parallelRequests, errors.Join(failed...))
}

func countNonNil(errs []error) int {
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	return n
}
