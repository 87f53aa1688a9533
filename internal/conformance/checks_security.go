package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
)

// checkNoexec checks that a file without the exec bit is neither run nor shown.
func checkNoexec(ctx context.Context, s *session) error {
	rawPath := s.script("noexec.sh")
	res, err := s.get(ctx, rawPath)
	if err != nil {
		return err
	}
	switch {
	case bytes.Contains(res.body, []byte("#!/bin/sh")):
		return fmt.Errorf("GET %s: status %d and the script's source in the body; want 403 or 404, source not shown", rawPath, res.status)
	case bytes.Contains(res.body, []byte("noexec-ran")):
		return fmt.Errorf("GET %s: status %d and the script's output: a file without exec bit was run; want 403 or 404", rawPath, res.status)
	case res.status != http.StatusForbidden && res.status != http.StatusNotFound:
		return fmt.Errorf("GET %s: status %d; want 403 or 404 for a file without exec bit (body %s)", rawPath, res.status, snippet(res.body))
	}
	return nil
}

// checkTraversal checks that no traversal attempt leaks a file, runs a script or
// gives 5xx. With Target.ScriptDir it also plants symlinks to /etc/passwd and to
// /etc in the script directory; through those, only leaks and script output fail.
func checkTraversal(ctx context.Context, s *session) error {
	// Requests (after the prefix) that try to leave the script directory or
	// to confuse the mapping from URL to file.
	type attempt struct {
		rawPath string
		link    bool // through a symlink planted in the script directory
	}
	// Requests (after the prefix) that try to leave the script directory or
	// to confuse the mapping from URL to file.
	var attempts []attempt
	for _, p := range []string{
		"../../../../etc/passwd",
		"%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
		"..%2f..%2f..%2f..%2fetc%2fpasswd",
		"%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"%252e%252e/%252e%252e/%252e%252e/%252e%252e/etc/passwd",
		"env.sh/../../../../etc/passwd",
		"env.sh%00.txt",
	} {
		attempts = append(attempts, attempt{rawPath: s.script(p)})
	}
	if dir := s.tg.ScriptDir; dir != "" {
		tok := rand.Text()
		links := map[string]string{
			"conformance-file-link-" + tok: "/etc/passwd",
			"conformance-dir-link-" + tok:  "/etc",
		}
		for name, target := range links {
			link := filepath.Join(dir, name)
			if err := os.Symlink(target, link); err != nil {
				return fmt.Errorf("conformance: planting symlink: %w", err)
			}
			defer os.Remove(link) // best effort, in the caller's copy of the scripts
		}
		attempts = append(attempts,
			attempt{rawPath: s.script("conformance-file-link-" + tok), link: true},
			attempt{rawPath: s.script("conformance-dir-link-" + tok + "/passwd"), link: true})
	}
	var errs []error
	for _, a := range attempts {
		res, err := s.get(ctx, a.rawPath)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case bytes.Contains(res.body, []byte("root:x:0:0")) || bytes.Contains(res.body, []byte("root:*:0:0")):
			errs = append(errs, fmt.Errorf("GET %s: status %d and /etc/passwd in the body", a.rawPath, res.status))
		case bytes.Contains(res.body, []byte("GATEWAY_INTERFACE=")):
			errs = append(errs, fmt.Errorf("GET %s: status %d and a script ran (body %s); want 400, 403 or 404", a.rawPath, res.status, snippet(res.body)))
		case a.link && res.status >= 500:
			// Whether a gateway follows symlinks is policy (Apache's
			// FollowSymLinks; Debian links gitweb.cgi into /usr/lib/cgi-bin).
			// Following one to a file without exec bit and failing to run it
			// leaks nothing; the status for that case is the noexec check's
			// business.
		case !traversalStatusOK(res.status):
			errs = append(errs, fmt.Errorf("GET %s: status %d; want 400, 403, 404 or a redirect (body %s)", a.rawPath, res.status, snippet(res.body)))
		}
	}
	return errors.Join(errs...)
}

// traversalStatusOK reports whether status is an acceptable answer to a traversal
// attempt: a refusal, or a redirect to a cleaned path (which is not followed).
func traversalStatusOK(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound,
		http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// checkMissing checks that a script that does not exist gives 404, with or
// without path info after it.
func checkMissing(ctx context.Context, s *session) error {
	var errs []error
	for _, rest := range []string{"does-not-exist", "does-not-exist/extra/path"} {
		rawPath := s.script(rest)
		res, err := s.get(ctx, rawPath)
		if err == nil {
			err = wantStatus("GET", rawPath, res, http.StatusNotFound)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
