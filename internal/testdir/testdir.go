// Package testdir gives tests temporary directories that the scripts they
// run can use whatever user those run as: when ferry runs as root, CGI
// scripts run as www-data (or nobody), and t.TempDir's directories are
// private to root.
package testdir

import (
	"os"
	"path/filepath"
	"testing"
)

// Open returns a new temporary directory, removed at the end of the test,
// that every user may enter, read and write (as does its parent, the
// test's own temporary directory).
func Open(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o777); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
