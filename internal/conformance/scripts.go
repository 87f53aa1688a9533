package conformance

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// Scripts returns the absolute path of the module's testdata/cgi-bin, the scripts
// the checks request. It is found relative to this source file, so it works from
// the test of any package; in a binary built with -trimpath it is searched for
// upwards from the working directory instead.
func Scripts() (string, error) {
	var tried []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "cgi-bin")
		if isScriptDir(dir) {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("conformance: locating testdata/cgi-bin: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		cand := filepath.Join(dir, "testdata", "cgi-bin")
		if isScriptDir(cand) {
			return cand, nil
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	tried = append(tried, "testdata/cgi-bin above "+wd)
	return "", fmt.Errorf("conformance: testdata/cgi-bin not found (tried %q)", tried)
}

// isScriptDir reports whether dir holds the suite's scripts.
func isScriptDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "env.sh"))
	return err == nil
}

// CopyScripts copies the scripts of [Scripts] into dst, creating dst if needed.
// Each file keeps its permission bits exactly (noexec.sh stays 0644, the others
// 0755) regardless of the umask. Tests serve such a copy so they can add
// symlinks and the git apps without touching the source tree. For a gateway
// that runs scripts as another user, dst and its parents must be searchable by
// that user.
func CopyScripts(dst string) error {
	src, err := Scripts()
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("conformance: copying scripts: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("conformance: copying scripts: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("conformance: copying scripts: %w", err)
		}
		if err := copyFile(filepath.Join(dst, e.Name()), filepath.Join(src, e.Name()), info.Mode().Perm()); err != nil {
			return fmt.Errorf("conformance: copying scripts: %w", err)
		}
	}
	return nil
}

// copyFile copies src to dst and gives dst the permission bits perm.
func copyFile(dst, src string, perm os.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, out.Close())
	}()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	// Chmod, unlike OpenFile, is not subject to the umask.
	return out.Chmod(perm)
}
