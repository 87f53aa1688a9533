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
// A SCRIPT_FILENAME that is refused (outside Roots, missing, not an
// executable regular file, relative or not clean) is answered 403, as
// fcgiwrap answers every script it cannot run, and the refusal is logged at
// warn level with its reason: it is the front's configuration, or a request
// probing it.
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

// refusedFilename is a SCRIPT_FILENAME a [FilenameDir] refused, and why.
type refusedFilename struct {
	name, why string
	err       error // the cause, if any
}

func (e *refusedFilename) Error() string {
	msg := fmt.Sprintf("cgi: refusing SCRIPT_FILENAME %q: %s", e.name, e.why)
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *refusedFilename) Unwrap() error { return e.err }

// check confines name to the roots, or says why it is refused: 403, as
// fcgiwrap answers for each of these.
func (d *FilenameDir) check(name string) error {
	refuse := func(why string, err error) error {
		return statusError(http.StatusForbidden, &refusedFilename{name: name, why: why, err: err})
	}
	switch {
	case name == "":
		return refuse("no SCRIPT_FILENAME, nor DOCUMENT_ROOT and SCRIPT_NAME", nil)
	case hasCTL(name):
		return refuse("NUL, CR or LF in it", nil)
	case !filepath.IsAbs(name):
		return refuse("not an absolute path", nil)
	case filepath.Clean(name) != name:
		return refuse("not a clean path (\".\", \"..\" or \"//\" in it)", nil)
	}
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		return refuse("cannot resolve it", err)
	}
	inside := false
	for _, root := range d.roots {
		if real == root || strings.HasPrefix(real, root+string(filepath.Separator)) {
			inside = true
			break
		}
	}
	if !inside {
		if real != name {
			return refuse(fmt.Sprintf("it resolves to %s, not under %s", real, strings.Join(d.roots, ", ")), nil)
		}
		return refuse("not under "+strings.Join(d.roots, ", "), nil)
	}
	fi, err := os.Stat(real)
	switch {
	case err != nil:
		return refuse("cannot stat it", err)
	case fi.IsDir():
		return refuse("a directory", nil)
	case !fi.Mode().IsRegular():
		return refuse("not a regular file", nil)
	case fi.Mode().Perm()&0o111 == 0:
		return refuse("no execute bit", nil)
	}
	return nil
}
