// Package ferry holds what the ferry command bundles: the example site that
// "ferry serve" with no flags serves, and the apps "ferry bench" runs. The gateway itself lives in packages
// cgi, fastcgi, scgi and bridge; the command in cmd/ferry.
package ferry

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

//go:embed all:examplesite
var site embed.FS

//go:embed testdata/bench
var benchApps embed.FS

// WriteBenchApps writes the apps "ferry bench" runs (the same small app in
// sh, Perl, Python, PHP) into dir, which must exist, executable.
func WriteBenchApps(dir string) error {
	sub, err := fs.Sub(benchApps, "testdata/bench")
	if err != nil {
		return fmt.Errorf("ferry: bench apps: %w", err)
	}
	return fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(sub, p)
		if err != nil {
			return fmt.Errorf("ferry: reading bench apps: %w", err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("ferry: writing bench apps: %w", err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			return fmt.Errorf("ferry: writing bench apps: %w", err)
		}
		return os.Chmod(dst, 0o755) // WriteFile's mode is masked by the umask
	})
}

// ExampleSite returns the bundled example site: index.html at its root and
// scripts in cgi-bin/.
func ExampleSite() fs.FS {
	sub, err := fs.Sub(site, "examplesite")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// WriteExampleSite writes the example site into dir, which must exist: files
// under cgi-bin/ are made executable (embedding loses file modes), the rest
// world-readable.
func WriteExampleSite(dir string) error {
	return fs.WalkDir(ExampleSite(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fmt.Errorf("ferry: writing example site: %w", err)
			}
			return nil
		}
		data, err := fs.ReadFile(ExampleSite(), p)
		if err != nil {
			return fmt.Errorf("ferry: reading example site: %w", err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(p, "cgi-bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			return fmt.Errorf("ferry: writing example site: %w", err)
		}
		return os.Chmod(dst, mode) // WriteFile's mode is masked by the umask
	})
}
