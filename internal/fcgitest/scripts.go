package fcgitest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Scripts returns the absolute path of this package's testdata directory,
// which holds echo.sh and sleep.sh: the endpoints of [Target] as CGI scripts
// (they need /bin/sh, head, sha256sum and sleep). It is found relative to
// this source file, so it works from the test of any package; in a binary
// built with -trimpath it is searched for upwards from the working directory
// instead.
func Scripts() (dir string, err error) {
	var tried []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "testdata")
		if isScriptDir(dir) {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("fcgitest: locating the scripts: %w", err)
	}
	rel := filepath.Join("internal", "fcgitest", "testdata")
	for d := wd; ; d = filepath.Dir(d) {
		if cand := filepath.Join(d, rel); isScriptDir(cand) {
			return cand, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	tried = append(tried, rel+" above "+wd)
	return "", fmt.Errorf("fcgitest: echo.sh and sleep.sh not found (tried %q)", tried)
}

// isScriptDir reports whether dir holds the suite's scripts.
func isScriptDir(dir string) bool {
	for _, name := range []string{"echo.sh", "sleep.sh"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return false
		}
	}
	return true
}
