package cgi

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Dir serves a directory of CGI scripts with Apache's ScriptAlias semantics:
// the first segment of the request path (after Prefix) that names an
// executable regular file is the script, and the rest of the path is
// PATH_INFO. So with Prefix "/cgi-bin/", "/cgi-bin/wiki.pl/Main/Page" runs
// Path/wiki.pl with PATH_INFO "/Main/Page".
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
	// Handler holds the settings every script runs with, and the concurrency
	// limit they share. Its Path and ScriptName are ignored. Its
	// LocalRedirect, if nil, is the Dir itself. If nil, defaults are used.
	Handler *Handler

	once    sync.Once
	h       *Handler
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
		d.h = d.Handler
		if d.h == nil {
			d.h = &Handler{}
		}
		d.h.init()
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

// ServeHTTP finds the script r names and runs it.
func (d *Dir) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.init()
	log := d.h.log(r)
	if d.rootErr != nil {
		log.Error().Err(d.rootErr).Str("dir", d.Path).Msg("cgi: script directory unusable")
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	script, status := d.lookup(r)
	if status != http.StatusOK {
		log.Debug().Str("path", r.URL.Path).Int("status", status).Msg("cgi: no script for path")
		http.Error(w, http.StatusText(status), status)
		return
	}
	d.h.serve(w, r, script, d)
}

// lookup maps r's path to a script. It returns 200 with the script, or the
// status to answer with.
func (d *Dir) lookup(r *http.Request) (Script, int) {
	prefix := d.prefix()
	p := r.URL.Path
	if p+"/" == prefix {
		return Script{}, http.StatusForbidden
	}
	rel, ok := strings.CutPrefix(p, prefix)
	if !ok {
		return Script{}, http.StatusNotFound
	}
	if rel == "" {
		return Script{}, http.StatusForbidden // the directory itself: no listing
	}
	// An encoded slash would let a segment name a path (Apache's
	// AllowEncodedSlashes Off answers 404 too).
	if ep := r.URL.EscapedPath(); strings.Contains(ep, "%2f") || strings.Contains(ep, "%2F") ||
		strings.Contains(ep, "%5c") || strings.Contains(ep, "%5C") {
		return Script{}, http.StatusNotFound
	}
	if hasCTL(p) || strings.ContainsRune(p, '\\') {
		return Script{}, http.StatusBadRequest
	}
	segs := strings.Split(rel, "/")
	for _, seg := range segs {
		if seg == "." || seg == ".." {
			return Script{}, http.StatusBadRequest
		}
	}
	file := d.root
	for i, seg := range segs {
		if seg == "" {
			if i == len(segs)-1 {
				return Script{}, http.StatusForbidden // "sub/": a directory
			}
			return Script{}, http.StatusNotFound // "//"
		}
		file = filepath.Join(file, seg)
		fi, err := os.Lstat(file)
		if err != nil {
			return Script{}, statusFor(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(file)
			if err != nil {
				return Script{}, statusFor(err)
			}
			if real != d.root && !strings.HasPrefix(real, d.root+string(filepath.Separator)) {
				return Script{}, http.StatusForbidden
			}
			if fi, err = os.Stat(real); err != nil {
				return Script{}, statusFor(err)
			}
		}
		switch {
		case fi.IsDir():
			continue
		case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
			return Script{}, http.StatusForbidden
		}
		s := Script{
			Name:     prefix + strings.Join(segs[:i+1], "/"),
			Filename: file,
			Root:     d.h.DocumentRoot,
		}
		if i+1 < len(segs) {
			s.PathInfo = "/" + strings.Join(segs[i+1:], "/")
		}
		return s, http.StatusOK
	}
	return Script{}, http.StatusForbidden // a directory
}

func statusFor(err error) int {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return http.StatusNotFound
	case errors.Is(err, fs.ErrPermission):
		return http.StatusForbidden
	}
	return http.StatusNotFound
}
