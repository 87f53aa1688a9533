package cgi

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// FilenameDir resolves a request to the script the front web server names
// in SCRIPT_FILENAME, as fcgiwrap does, so that an nginx or Apache
// configuration written for fcgiwrap works unchanged. Only scripts under
// Roots run: the path must be absolute and clean, resolve (symbolic links
// followed) inside a root, and name an executable regular file. SCRIPT_NAME,
// PATH_INFO and DOCUMENT_ROOT are the web server's. When SCRIPT_FILENAME is
// absent, DOCUMENT_ROOT joined with SCRIPT_NAME is used, as fcgiwrap does.
//
// The request must come through a FastCGI or SCGI front, whose
// meta-variables [Origin] holds; otherwise the answer is 500. A script's
// local redirect (RFC 3875 § 6.2.2) goes back to the front as 302 with its
// Location ([FrontRedirect]): only the front knows which script a URL names.
//
// A FilenameDir must not be copied after first use.
type FilenameDir struct {
	// Roots are the directories scripts may be run from.
	Roots []string

	once  sync.Once
	roots []string // absolute, symbolic links resolved
}

func (d *FilenameDir) init() {
	d.once.Do(func() {
		for _, r := range d.Roots {
			if abs, err := filepath.Abs(r); err == nil {
				if real, err := filepath.EvalSymlinks(abs); err == nil {
					d.roots = append(d.roots, real)
				}
			}
		}
	})
}

var errNoOrigin = statusError(http.StatusInternalServerError, errors.New("cgi: SCRIPT_FILENAME dispatch needs a FastCGI or SCGI front that sends it"))

// Resolve returns the script named by SCRIPT_FILENAME.
func (d *FilenameDir) Resolve(r *http.Request) (Script, error) {
	d.init()
	origin := Origin(r.Context())
	if origin == nil {
		return Script{}, errNoOrigin
	}
	name := origin["SCRIPT_FILENAME"]
	if name == "" && origin["DOCUMENT_ROOT"] != "" {
		name = filepath.Join(origin["DOCUMENT_ROOT"], origin["SCRIPT_NAME"])
	}
	if err := d.check(name); err != nil {
		return Script{}, err
	}
	return Script{Name: origin["SCRIPT_NAME"], PathInfo: origin["PATH_INFO"], Filename: name, Root: origin["DOCUMENT_ROOT"]}, nil
}

// check confines name to the roots, or says which status to answer with.
func (d *FilenameDir) check(name string) error {
	refuse := func(status int, err error) error {
		if err != nil {
			return statusError(status, fmt.Errorf("cgi: refusing SCRIPT_FILENAME %q: %w", name, err))
		}
		return statusError(status, fmt.Errorf("cgi: refusing SCRIPT_FILENAME %q", name))
	}
	if name == "" || !filepath.IsAbs(name) || hasCTL(name) || filepath.Clean(name) != name {
		return refuse(http.StatusBadRequest, nil)
	}
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		return refuse(statusFor(err), err)
	}
	inside := false
	for _, root := range d.roots {
		if real == root || strings.HasPrefix(real, root+string(filepath.Separator)) {
			inside = true
			break
		}
	}
	if !inside {
		return refuse(http.StatusForbidden, nil)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return refuse(statusFor(err), err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return refuse(http.StatusForbidden, nil)
	}
	return nil
}
