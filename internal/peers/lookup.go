package peers

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNotInstalled is returned, wrapped, by [Lookup] when a program cannot be found.
var ErrNotInstalled = errors.New("peers: not installed")

// sbinDirs are searched after PATH: the service binaries live there and
// PATH often leaves them out for unprivileged users.
func sbinDirs() []string {
	return []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}
}

// knownLocations lists where a program lives when it is not in a bin
// directory, and the names it goes by on other distributions.
func knownLocations(name string) []string {
	switch name {
	case "apache2":
		return []string{"httpd"} // Fedora, Arch, Alpine
	case "cgit":
		return []string{"/usr/lib/cgit/cgit.cgi", "/usr/share/webapps/cgit/cgit", "/var/www/htdocs/cgit/cgit.cgi"}
	case "gitweb":
		return []string{"/usr/share/gitweb/gitweb.cgi", "/var/www/git/gitweb.cgi"}
	}
	return nil
}

// Lookup returns the absolute path of the named program. It searches PATH,
// then /usr/sbin, /sbin and /usr/local/sbin, then fixed locations of known
// programs that are not installed as commands ("cgit" is
// /usr/lib/cgit/cgit.cgi and "gitweb" is /usr/share/gitweb/gitweb.cgi on
// Debian). "apache2" also finds "httpd". "php-fpm" also finds the
// versioned names distributions install, such as php-fpm8.2 (Debian) or
// php-fpm82 (Alpine), the highest version first. When nothing is found the
// error wraps [ErrNotInstalled].
func Lookup(name string) (string, error) {
	if name == "" {
		return "", errors.New("peers: empty program name")
	}
	candidates := []string{name}
	candidates = append(candidates, knownLocations(name)...)
	for _, c := range candidates {
		if filepath.IsAbs(c) {
			if isExecutable(c) {
				return c, nil
			}
			continue
		}
		if strings.ContainsRune(c, filepath.Separator) {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return filepath.Abs(p)
		}
		for _, d := range sbinDirs() {
			if p := filepath.Join(d, c); isExecutable(p) {
				return p, nil
			}
		}
	}
	if versioned(name) {
		if p := lookupVersioned(name); p != "" {
			return p, nil
		}
	}
	return "", fmt.Errorf("peers: %s not found in PATH, %s or known locations: %w",
		name, strings.Join(sbinDirs(), ", "), ErrNotInstalled)
}

// versioned reports whether name is installed with a version suffix on
// some distributions.
func versioned(name string) bool { return name == "php-fpm" }

// lookupVersioned returns the executable named name followed by a version
// (php-fpm8.2, php-fpm82) with the highest version in PATH or the sbin
// directories, or "" if there is none.
func lookupVersioned(name string) string {
	dirs := append(filepath.SplitList(os.Getenv("PATH")), sbinDirs()...)
	var found []string
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(d, name+"[0-9]*")) // the pattern is valid
		for _, m := range matches {
			if isExecutable(m) {
				found = append(found, m)
			}
		}
	}
	if len(found) == 0 {
		return ""
	}
	// Stable, so that for equal versions the earlier directory wins.
	slices.SortStableFunc(found, func(a, b string) int {
		return compareVersions(strings.TrimPrefix(filepath.Base(b), name), strings.TrimPrefix(filepath.Base(a), name))
	})
	return found[0]
}

// compareVersions compares version strings such as "8.2" and "8.10" by
// their runs of digits, numerically, then by length.
func compareVersions(a, b string) int {
	fields := func(s string) []int {
		var ns []int
		for f := range strings.FieldsFuncSeq(s, func(r rune) bool { return r < '0' || r > '9' }) {
			n, _ := strconv.Atoi(f) // digits only; overflow compares as 0
			ns = append(ns, n)
		}
		return ns
	}
	if c := slices.Compare(fields(a), fields(b)); c != 0 {
		return c
	}
	return len(a) - len(b)
}

// isExecutable reports whether path is a regular file with an exec bit.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
