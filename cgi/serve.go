package cgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// Serve runs h for the one request of the current process, which a web
// server invoked as a CGI script: the request comes from the environment
// and standard input, and the response goes to standard output (RFC 3875).
// If h is nil, [http.DefaultServeMux] is used.
//
// A handler that panics gets a 500 response if it had sent nothing yet; the
// panic is reported on standard error, as a web server logs a script's stderr.
func Serve(h http.Handler) error {
	env := make(map[string]string)
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return ServeEnv(context.Background(), env, os.Stdin, os.Stdout, os.Stderr, h)
}

// ServeEnv is [Serve] with the environment, standard input, output and error
// given: it serves the request env describes, reading at most CONTENT_LENGTH
// bytes of body from stdin, writing the CGI response to stdout.
func ServeEnv(ctx context.Context, env map[string]string, stdin io.Reader, stdout, stderr io.Writer, h http.Handler) (err error) {
	if h == nil {
		h = http.DefaultServeMux
	}
	r, err := RequestFromEnv(ctx, env)
	if err != nil {
		return fmt.Errorf("cgi: not a CGI request: %w", err)
	}
	r.Body = http.NoBody
	if r.ContentLength > 0 {
		r.Body = io.NopCloser(io.LimitReader(stdin, r.ContentLength))
	}
	rw := NewResponseWriter(stdout, r)
	switch p, _ := rw.Run(h, r); {
	case p == http.ErrAbortHandler:
		// The response must not look complete: what is still buffered is
		// dropped, and with nothing sent the web server sees no response.
		return errors.New("cgi: handler aborted the response")
	case p != nil:
		fmt.Fprintf(stderr, "cgi: handler panic serving %s: %v\n", r.URL.Path, p)
		err = fmt.Errorf("cgi: handler panic: %v", p)
	}
	if cerr := rw.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("cgi: writing response: %w", cerr)
	}
	return err
}
