package fastcgi

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ferrygw/ferry/cgi"
)

// PHPSite maps request paths to PHP scripts under a document root the way
// an nginx + php-fpm site is configured (fastcgi_split_path_info
// ^(.+?\.php)(/.*)$, try_files $fastcgi_script_name =404, index index.php,
// try_files $uri $uri/ /index.php?$query_string), but with the checks done
// on decoded paths so that CVE-2019-11043-style PATH_INFO games cannot
// work:
//
//   - the script is the first path segment ending in the extension that
//     names a regular file under Root; the rest of the path is PATH_INFO;
//   - a path ending in "/" runs its directory's index.php;
//   - a path naming a file that is not a script is static: ServeHTTP in
//     [PHPSite.Handler] serves it itself, never the application;
//   - anything else falls back to FrontController (with the whole path as
//     PATH_INFO), if set, or is 404;
//   - NUL, CR, LF, "." and ".." segments are refused, and nothing outside
//     Root runs, symbolic links included.
type PHPSite struct {
	// Root is the document root.
	Root string
	// Ext is the script extension. If empty, ".php".
	Ext string
	// Index is the script for directory paths. If empty, "index.php".
	Index string
	// FrontController is the script for paths that name nothing, such as
	// "/index.php" for pretty URLs. If empty, such paths are 404.
	FrontController string

	once    sync.Once
	root    string // Root, symbolic links resolved
	rootErr error
}

func (p *PHPSite) ext() string {
	if p.Ext == "" {
		return ".php"
	}
	return p.Ext
}

func (p *PHPSite) index() string {
	if p.Index == "" {
		return "index.php"
	}
	return p.Index
}

// errStatic says a path names a static file.
var errStatic = fmt.Errorf("fastcgi: a static file")

// Script maps r to its script, or returns an error wrapping fs.ErrNotExist
// (404), fs.ErrPermission (403) or cgi.ErrInvalidMetaVariable (400).
func (p *PHPSite) Script(r *http.Request) (cgi.Script, error) {
	s, err := p.lookup(r.URL.Path)
	if err == errStatic {
		return cgi.Script{}, fmt.Errorf("fastcgi: %s is not a script: %w", r.URL.Path, fs.ErrNotExist)
	}
	return s, err
}

func (p *PHPSite) lookup(urlPath string) (cgi.Script, error) {
	if strings.ContainsAny(urlPath, "\x00\r\n\\") {
		return cgi.Script{}, fmt.Errorf("%w: path %q", cgi.ErrInvalidMetaVariable, urlPath)
	}
	if !strings.HasPrefix(urlPath, "/") {
		return cgi.Script{}, fs.ErrNotExist
	}
	segs := strings.Split(urlPath[1:], "/")
	for _, seg := range segs {
		if seg == "." || seg == ".." {
			return cgi.Script{}, fmt.Errorf("%w: dot segment in %q", cgi.ErrInvalidMetaVariable, urlPath)
		}
	}
	p.once.Do(func() { p.root, p.rootErr = filepath.EvalSymlinks(p.Root) })
	if p.rootErr != nil {
		return cgi.Script{}, fmt.Errorf("fastcgi: document root: %w", p.rootErr)
	}
	root := p.root
	scriptLike := false
	for i, seg := range segs {
		if !strings.HasSuffix(seg, p.ext()) {
			continue
		}
		scriptLike = true
		name := "/" + strings.Join(segs[:i+1], "/")
		if file, ok := p.regular(root, name); ok {
			s := cgi.Script{Name: name, Filename: file, Root: p.Root}
			if i+1 < len(segs) {
				s.PathInfo = "/" + strings.Join(segs[i+1:], "/")
			}
			return s, nil
		}
		break // "/missing.php/x": not a script, and not passed on
	}
	if strings.HasSuffix(urlPath, "/") {
		name := urlPath + p.index()
		if file, ok := p.regular(root, name); ok {
			return cgi.Script{Name: name, Filename: file, Root: p.Root}, nil
		}
	} else if _, ok := p.regular(root, urlPath); ok && !strings.HasSuffix(urlPath, p.ext()) {
		return cgi.Script{}, errStatic
	} else if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(urlPath))); err == nil && fi.IsDir() {
		return cgi.Script{}, errStatic // the static side redirects to the slash
	}
	// A path naming a missing script is refused, never handed to the front
	// controller.
	if fc := p.FrontController; fc != "" && !scriptLike {
		if file, ok := p.regular(root, fc); ok {
			return cgi.Script{Name: fc, Filename: file, Root: p.Root}, nil
		}
	}
	return cgi.Script{}, fmt.Errorf("fastcgi: no script for %s: %w", urlPath, fs.ErrNotExist)
}

// regular reports whether name (a URL path) is a regular file inside root,
// symbolic links resolved, and returns its path.
//
// Each component below root is checked with one Lstat; only a symbolic link
// costs a full resolution.
func (p *PHPSite) regular(root, name string) (string, bool) {
	cur := root
	var fi os.FileInfo
	for _, seg := range strings.Split(strings.Trim(name, "/"), "/") {
		if seg == "" {
			return "", false
		}
		cur = filepath.Join(cur, seg)
		var err error
		if fi, err = os.Lstat(cur); err != nil {
			return "", false
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(cur)
			if err != nil || (real != root && !strings.HasPrefix(real, root+string(filepath.Separator))) {
				return "", false
			}
			if fi, err = os.Stat(real); err != nil {
				return "", false
			}
		}
	}
	if fi == nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return filepath.Join(p.Root, filepath.FromSlash(name)), true
}

// Handler returns a handler serving the site: scripts through app, static
// files from Root by static (which must refuse what it should not show).
func (p *PHPSite) Handler(app *Handler, static http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := p.lookup(r.URL.Path)
		if err == errStatic {
			static.ServeHTTP(w, r)
			return
		}
		app.serve(w, r, s, err)
	})
}
