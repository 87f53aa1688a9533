package cgi

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// FilenameDir runs the script the front web server names in SCRIPT_FILENAME,
// as fcgiwrap does, so that an nginx or Apache configuration written for
// fcgiwrap works unchanged. Only scripts under Roots run: the path must be
// absolute and clean, resolve (symbolic links followed) inside a root, and
// name an executable regular file. SCRIPT_NAME and PATH_INFO are the web
// server's. When SCRIPT_FILENAME is absent, DOCUMENT_ROOT joined with
// SCRIPT_NAME is used, as fcgiwrap does.
//
// The request must come through a FastCGI or SCGI front, whose
// meta-variables [Origin] holds; otherwise FilenameDir answers 500.
type FilenameDir struct {
	// Roots are the directories scripts may be run from.
	Roots []string
	// Handler holds the settings every script runs with. If nil, defaults.
	Handler *Handler

	once  sync.Once
	h     *Handler
	roots []string // absolute, symbolic links resolved
}

func (d *FilenameDir) init() {
	d.once.Do(func() {
		d.h = d.Handler
		if d.h == nil {
			d.h = &Handler{}
		}
		d.h.init()
		for _, r := range d.Roots {
			if abs, err := filepath.Abs(r); err == nil {
				if real, err := filepath.EvalSymlinks(abs); err == nil {
					d.roots = append(d.roots, real)
				}
			}
		}
	})
}

// ServeHTTP runs the script named by SCRIPT_FILENAME.
func (d *FilenameDir) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.init()
	log := d.h.log(r)
	origin := Origin(r.Context())
	if origin == nil {
		log.Error().Msg("cgi: SCRIPT_FILENAME dispatch needs a FastCGI or SCGI front that sends it")
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	name := origin["SCRIPT_FILENAME"]
	if name == "" && origin["DOCUMENT_ROOT"] != "" {
		name = filepath.Join(origin["DOCUMENT_ROOT"], origin["SCRIPT_NAME"])
	}
	file, status := d.check(name)
	if status != http.StatusOK {
		log.Warn().Str("script_filename", name).Int("status", status).Msg("cgi: refusing SCRIPT_FILENAME")
		http.Error(w, http.StatusText(status), status)
		return
	}
	s := Script{Name: origin["SCRIPT_NAME"], PathInfo: origin["PATH_INFO"], Filename: file, Root: origin["DOCUMENT_ROOT"]}
	d.h.serve(w, r, s, d)
}

// check confines name to the roots and returns the status to answer with.
func (d *FilenameDir) check(name string) (string, int) {
	if name == "" || !filepath.IsAbs(name) || hasCTL(name) || filepath.Clean(name) != name {
		return "", http.StatusBadRequest
	}
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		return "", statusFor(err)
	}
	inside := false
	for _, root := range d.roots {
		if real == root || strings.HasPrefix(real, root+string(filepath.Separator)) {
			inside = true
			break
		}
	}
	if !inside {
		return "", http.StatusForbidden
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", statusFor(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", http.StatusForbidden
	}
	return name, http.StatusOK
}
