package peers

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Server is a started web server made of one or more processes.
type Server struct {
	// URL is the server's base URL, "http://127.0.0.1:PORT", without a trailing slash.
	URL string
	// Dir holds the generated configuration, sockets and logs.
	Dir string

	procs   []*Process // in the order Stop stops them: front end first
	errLogs []string   // files Logs concatenates
}

// Logs returns the content of the server's error logs, concatenated:
// where CGI scripts' stderr and the servers' own errors go.
func (s *Server) Logs() (string, error) { return readLogs(s.errLogs) }

// Stop stops every process of the server (see [Process.Stop]). It is
// idempotent and safe to register with [testing.TB.Cleanup].
func (s *Server) Stop() error {
	var errs []error
	for _, p := range s.procs {
		errs = append(errs, p.Stop())
	}
	return errors.Join(errs...)
}

// readyPath is the URL path the readiness check of a generated web server
// fetches. The server answers it itself, so the check never reaches a
// backend and never logs an error.
const readyPath = "/ferry-peers-ready"

// removeFiles removes the given files, ignoring ones that do not exist.
func removeFiles(paths ...string) error {
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("peers: %w", err)
		}
	}
	return nil
}

// loopbackURL returns the base URL for port on 127.0.0.1.
func loopbackURL(port int) string {
	return "http://" + net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
}

// envName matches the environment variable names the config writers accept.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkConfigString rejects strings that cannot be written safely, without
// interpretation, into an Apache or nginx configuration: both expand '$'
// (nginx variables, Apache ${defines}) and neither has a way to quote
// control characters.
func checkConfigString(what, s string) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '$' {
			return fmt.Errorf("peers: %s %q contains %q, which the configuration cannot hold", what, s, r)
		}
	}
	return nil
}

// quote returns s as a double-quoted configuration string, escaping
// backslashes and double quotes (both Apache and nginx accept this form).
// Call checkConfigString first.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// checkEnv validates an Env map of a server config.
func checkEnv(env map[string]string) error {
	for k, v := range env {
		if !envName.MatchString(k) {
			return fmt.Errorf("peers: invalid environment variable name %q", k)
		}
		if err := checkConfigString("value of "+k, v); err != nil {
			return err
		}
	}
	return nil
}

// cgiDirPath checks that dir is a directory and returns its absolute path.
func cgiDirPath(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("peers: CGIDir is empty")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("peers: CGIDir: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("peers: CGIDir %s is not a directory", dir)
	}
	p, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("peers: CGIDir: %w", err)
	}
	return p, checkConfigString("CGIDir", p)
}

// readLogs returns the content of the files at paths, concatenated;
// missing files are skipped.
func readLogs(paths []string) (string, error) {
	var b strings.Builder
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return b.String(), fmt.Errorf("peers: reading log: %w", err)
		}
		b.Write(data)
	}
	return b.String(), nil
}
