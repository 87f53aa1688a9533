package cgi

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Dir resolves requests to the CGI scripts of a directory with Apache's
// ScriptAlias semantics: the first segment of the request path (after
// Prefix) that names an executable regular file is the script, and the rest
// of the path is PATH_INFO. So with Prefix "/cgi-bin/",
// "/cgi-bin/wiki.pl/Main/Page" runs Path/wiki.pl with PATH_INFO
// "/Main/Page". Serve it with a [Handler]:
//
//	h := &cgi.Handler{Resolver: &cgi.Dir{Path: "/usr/lib/cgi-bin", Prefix: "/cgi-bin/"}}
//
// Nothing outside Path runs: "." and ".." segments, encoded slashes, NUL, CR
// and LF are refused, and a symbolic link must resolve inside Path. A file
// without an execute bit is neither run nor shown (403); a directory is not
// listed (403); a missing script is 404.
//
// A Dir must not be copied after first use.
type Dir struct {
	// Path is the directory holding the scripts.
	Path string
	// Prefix is the URL path the directory is mounted at, such as
	// "/cgi-bin/". If empty, "/" is used.
	Prefix string
	// Root is DOCUMENT_ROOT, and the base of PATH_TRANSLATED. If empty,
	// the script's directory.
	Root string

	once    sync.Once
	root    string // Path, absolute and with symbolic links resolved
	rootErr error
}

func (d *Dir) init() {
	d.once.Do(func() {
		abs, err := filepath.Abs(d.Path)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		d.root, d.rootErr = abs, err
	})
}

func (d *Dir) prefix() string {
	p := d.Prefix
	if p == "" {
		return "/"
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// Resolve finds the script r names.
func (d *Dir) Resolve(r *http.Request) (Script, error) {
	d.init()
	if d.rootErr != nil {
		return Script{}, statusError(http.StatusInternalServerError, fmt.Errorf("cgi: script directory %s unusable: %w", d.Path, d.rootErr))
	}
	return d.lookup(r)
}

// lookup maps r's path to a script, or says which status to answer with.
func (d *Dir) lookup(r *http.Request) (Script, error) {
	prefix := d.prefix()
	p := r.URL.Path
	if p+"/" == prefix {
		return Script{}, statusError(http.StatusForbidden, nil)
	}
	rel, ok := strings.CutPrefix(p, prefix)
	if !ok {
		return Script{}, statusError(http.StatusNotFound, nil)
	}
	if rel == "" {
		return Script{}, statusError(http.StatusForbidden, nil) // the directory itself: no listing
	}
	// An encoded slash would let a segment name a path (Apache's
	// AllowEncodedSlashes Off answers 404 too).
	if ep := r.URL.EscapedPath(); strings.Contains(ep, "%2f") || strings.Contains(ep, "%2F") ||
		strings.Contains(ep, "%5c") || strings.Contains(ep, "%5C") {
		return Script{}, statusError(http.StatusNotFound, nil)
	}
	if hasCTL(p) || strings.ContainsRune(p, '\\') {
		return Script{}, statusError(http.StatusBadRequest, nil)
	}
	segs := strings.Split(rel, "/")
	for _, seg := range segs {
		if seg == "." || seg == ".." {
			return Script{}, statusError(http.StatusBadRequest, nil)
		}
	}
	file := d.root
	for i, seg := range segs {
		if seg == "" {
			if i == len(segs)-1 {
				return Script{}, statusError(http.StatusForbidden, nil) // "sub/": a directory
			}
			return Script{}, statusError(http.StatusNotFound, nil) // "//"
		}
		file = filepath.Join(file, seg)
		fi, err := os.Lstat(file)
		if err != nil {
			return Script{}, fsError(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(file)
			if err != nil {
				return Script{}, fsError(err)
			}
			if real != d.root && !strings.HasPrefix(real, d.root+string(filepath.Separator)) {
				return Script{}, statusError(http.StatusForbidden, nil)
			}
			if fi, err = os.Stat(real); err != nil {
				return Script{}, fsError(err)
			}
		}
		switch {
		case fi.IsDir():
			continue
		case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
			return Script{}, statusError(http.StatusForbidden, nil)
		}
		s := Script{
			Name:     prefix + strings.Join(segs[:i+1], "/"),
			Filename: file,
			Root:     d.Root,
		}
		if i+1 < len(segs) {
			s.PathInfo = "/" + strings.Join(segs[i+1:], "/")
		}
		return s, nil
	}
	return Script{}, statusError(http.StatusForbidden, nil) // a directory
}

// fsError is a failure to look a script up, with its status.
func fsError(err error) error { return statusError(statusFor(err), err) }

func statusFor(err error) int {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return http.StatusNotFound
	case errors.Is(err, fs.ErrPermission):
		return http.StatusForbidden
	}
	return http.StatusNotFound
}
