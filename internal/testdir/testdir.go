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

// Executable returns the running test binary at a path every user may run
// it from: when ferry runs as root, the scripts and workers it starts run
// as www-data, and go test builds the binary in a directory private to
// root. It is a hard link (or, across file systems, a copy) in a new
// directory of Open's, removed at the end of the test.
func Executable(tb testing.TB) string {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	dst := filepath.Join(Open(tb), filepath.Base(self))
	if os.Link(self, dst) != nil {
		b, err := os.ReadFile(self)
		if err == nil {
			err = os.WriteFile(dst, b, 0o755)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}
