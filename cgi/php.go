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
	"time"
)

// PHPSite resolves request paths to scripts under a document root by
// splitting them at an extension, the way an nginx + php-fpm site is
// configured (fastcgi_split_path_info
// ^(.+?\.php)(/.*)$, try_files $fastcgi_script_name =404, index index.php,
// try_files $uri $uri/ /index.php?$query_string), but with the checks done
// on decoded paths so that CVE-2019-11043-style PATH_INFO games cannot
// work:
//
//   - the script is the first path segment ending in the extension that
//     names a regular file under Root; the rest of the path is PATH_INFO;
//   - a path ending in "/" runs its directory's index.php;
//   - a path naming a file that is not a script is static: the handler
//     [PHPSite.Handler] returns serves it itself, never the application
//     (Resolve alone answers 404 for it);
//   - anything else falls back to FrontController (with the whole path as
//     PATH_INFO), if set, or is 404;
//   - NUL, CR, LF, "." and ".." segments are refused, and nothing outside
//     Root runs, symbolic links included (a static file may be reached
//     through a symbolic link out of Root: the static side decides).
//
// A script found is not looked for again for two seconds, as nginx's
// open_file_cache spares its checks: removed, it is still passed on for
// that long, and the application answers 404 itself.
//
// With a Prefix, the site is served under it, as Apache's Alias or
// nginx's alias serve a directory: /wiki/doku.php runs Root/doku.php with
// SCRIPT_NAME /wiki/doku.php.
//
// The layout is not tied to a protocol: PHPSite serves php-fpm through a
// FastCGI handler, and as well an SCGI application or php-cgi as a CGI
// script through a [Handler].
//
// A PHPSite must not be copied after first use.
type PHPSite struct {
	// Root is the document root: the directory the site's files are in.
	// It is DOCUMENT_ROOT too.
	Root string
	// Prefix is the URL path Root is served at, such as "/wiki/" for a
	// site under an Alias; paths outside it are 404. If empty, "/".
	Prefix string
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

	mu    sync.RWMutex
	found map[string]foundScript // scripts found lately, by URL path below Root
	now   func() time.Time       // the clock; time.Now if nil (tests set it)
}

// foundScript is a script regular found: its file, and when.
type foundScript struct {
	file string
	at   time.Time
}

// Scripts found are remembered for scriptCheckValid, up to maxFoundScripts
// of them: a request for one within that time costs no file system check,
// as nginx's open_file_cache spares its try_files. That is opcache's
// default revalidate_freq, for which php-fpm itself runs what it compiled
// without looking at the file again. Only what was found is remembered: a
// new script runs at once, and one removed is still passed on for up to
// that long (php-fpm then answers 404 itself). Nothing else changes: a
// file can become a symbolic link out of Root only through a write to the
// site, which could as well put a script there.
const (
	scriptCheckValid = 2 * time.Second
	maxFoundScripts  = 4096
)

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
var errStatic = statusError(http.StatusNotFound, errors.New("cgi: a static file"))

// Resolve maps r to its script, or returns a [*StatusError]: 404 for no
// script (a static file among them), 403 for a document root that cannot
// be read, 400 for a path no script may have.
func (p *PHPSite) Resolve(r *http.Request) (Script, error) {
	s, err := p.lookup(r.URL.Path)
	if err == errStatic {
		return Script{}, statusError(http.StatusNotFound, fmt.Errorf("cgi: %s is not a script", r.URL.Path))
	}
	return s, err
}

func (p *PHPSite) lookup(urlPath string) (Script, error) {
	if strings.ContainsAny(urlPath, "\x00\r\n\\") {
		return Script{}, fmt.Errorf("%w: path %q", ErrInvalidMetaVariable, urlPath)
	}
	if !strings.HasPrefix(urlPath, "/") {
		return Script{}, statusError(http.StatusNotFound, fmt.Errorf("cgi: no script for %q", urlPath))
	}
	base := strings.TrimSuffix(p.Prefix, "/")
	rel, ok := strings.CutPrefix(urlPath, base)
	if !ok || !strings.HasPrefix(rel, "/") {
		return Script{}, statusError(http.StatusNotFound, fmt.Errorf("cgi: %s is outside the site at %s", urlPath, p.Prefix))
	}
	// The path is walked segment by segment in place: rel[start:end] is
	// a segment, rel[:end] the path up to it.
	for start := 1; start <= len(rel); {
		end := segmentEnd(rel, start)
		if seg := rel[start:end]; seg == "." || seg == ".." {
			return Script{}, fmt.Errorf("%w: dot segment in %q", ErrInvalidMetaVariable, urlPath)
		}
		start = end + 1
	}
	p.once.Do(func() { p.root, p.rootErr = filepath.EvalSymlinks(p.Root) })
	if p.rootErr != nil {
		return Script{}, fsError(fmt.Errorf("cgi: document root: %w", p.rootErr))
	}
	scriptLike := false
	for start := 1; start <= len(rel); {
		end := segmentEnd(rel, start)
		if !strings.HasSuffix(rel[start:end], p.ext()) {
			start = end + 1
			continue
		}
		scriptLike = true
		name := rel[:end]
		if file, ok := p.script(name); ok {
			s := Script{Name: base + name, Filename: file, Root: p.Root}
			if end < len(rel) {
				s.PathInfo = rel[end:]
			}
			return s, nil
		}
		break // "/missing.php/x": not a script, and not passed on
	}
	if strings.HasSuffix(rel, "/") {
		name := rel + p.index()
		if file, ok := p.script(name); ok {
			return Script{Name: base + name, Filename: file, Root: p.Root}, nil
		}
	} else if fi, err := os.Stat(filepath.Join(p.root, filepath.FromSlash(rel))); err == nil &&
		(fi.IsDir() || fi.Mode().IsRegular() && !strings.HasSuffix(rel, p.ext())) {
		// A directory (the static side redirects to the slash) or a file
		// that is not a script: symbolic links are followed, as the static
		// side follows them (Debian's DokuWiki has its templates behind
		// one); only scripts must be inside Root.
		return Script{}, errStatic
	}
	// A path naming a missing script is refused, never handed to the front
	// controller.
	if fc := p.FrontController; fc != "" && !scriptLike {
		if file, ok := p.script(fc); ok {
			return Script{Name: base + fc, Filename: file, Root: p.Root}, nil
		}
	}
	return Script{}, statusError(http.StatusNotFound, fmt.Errorf("cgi: no script for %s", urlPath))
}

// script is regular under p.root for lookup: a name found within
// scriptCheckValid is not checked again.
func (p *PHPSite) script(name string) (string, bool) {
	now := time.Now
	if p.now != nil {
		now = p.now
	}
	t := now()
	p.mu.RLock()
	f, ok := p.found[name]
	p.mu.RUnlock()
	if age := t.Sub(f.at); ok && age >= 0 && age < scriptCheckValid {
		return f.file, true
	}
	file, ok := p.regular(p.root, name)
	if !ok {
		return "", false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.found == nil {
		p.found = make(map[string]foundScript)
	}
	if len(p.found) >= maxFoundScripts {
		for k, f := range p.found {
			if t.Sub(f.at) >= scriptCheckValid {
				delete(p.found, k)
			}
		}
		if len(p.found) >= maxFoundScripts {
			clear(p.found) // all recent: start again rather than grow
		}
	}
	// A copy: name is part of the request's path, which may be long.
	p.found[strings.Clone(name)] = foundScript{file: file, at: t}
	return file, true
}

// regular reports whether name (a URL path) is a regular file inside root,
// symbolic links resolved, and returns its path.
//
// Each component below root is checked with one Lstat; only a symbolic link
// costs a full resolution.
func (p *PHPSite) regular(root, name string) (string, bool) {
	trimmed := strings.Trim(name, "/")
	for start := 0; start <= len(trimmed); {
		end := segmentEnd(trimmed, start)
		switch seg := trimmed[start:end]; {
		case seg == "":
			return "", false
		case seg == "." || seg == ".." || strings.ContainsRune(seg, filepath.Separator):
			// Not one component of a clean path (only the site's own
			// settings name such files): a join at each step.
			return p.regularSteps(root, name)
		}
		start = end + 1
	}
	// Every component is plain: the path of each is a prefix of the
	// whole, which costs one join.
	full := filepath.Join(root, trimmed)
	first := len(root) + 1 // where the first component starts in full
	if strings.HasSuffix(root, string(filepath.Separator)) {
		first = len(root)
	}
	if !strings.HasPrefix(full, root) || first > len(full) || full[first-1] != filepath.Separator {
		return p.regularSteps(root, name) // root "." is no prefix of its joins
	}
	var fi os.FileInfo
	for i := first; i <= len(full); i++ {
		if i < len(full) && full[i] != filepath.Separator {
			continue
		}
		var ok bool
		if fi, ok = p.component(root, full[:i]); !ok {
			return "", false
		}
	}
	if fi == nil || !fi.Mode().IsRegular() {
		return "", false
	}
	if p.Root == root {
		return full, true
	}
	return filepath.Join(p.Root, filepath.FromSlash(name)), true
}

// regularSteps is regular for a name whose components need the join at
// each step.
func (p *PHPSite) regularSteps(root, name string) (string, bool) {
	cur := root
	var fi os.FileInfo
	for _, seg := range strings.Split(strings.Trim(name, "/"), "/") {
		if seg == "" {
			return "", false
		}
		cur = filepath.Join(cur, seg)
		var ok bool
		if fi, ok = p.component(root, cur); !ok {
			return "", false
		}
	}
	if fi == nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return filepath.Join(p.Root, filepath.FromSlash(name)), true
}

// component returns what path, one component below root or deeper, is,
// with one Lstat; a symbolic link costs a full resolution, and must end
// inside root.
func (p *PHPSite) component(root, path string) (os.FileInfo, bool) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, false
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		real, err := filepath.EvalSymlinks(path)
		if err != nil || (real != root && !strings.HasPrefix(real, root+string(filepath.Separator))) {
			return nil, false
		}
		if fi, err = os.Stat(real); err != nil {
			return nil, false
		}
	}
	return fi, true
}

// segmentEnd returns where the "/"-separated segment of p starting at
// start ends: at the next "/", or at the end of p.
func segmentEnd(p string, start int) int {
	if i := strings.IndexByte(p[start:], '/'); i >= 0 {
		return start + i
	}
	return len(p)
}

// Handler returns a handler serving the site: scripts through app (a
// [Forwarder] or a [Handler]; its own Resolver is not asked), static files
// from Root by static (which must refuse what it should not show). Each
// path is resolved once.
func (p *PHPSite) Handler(app ScriptHandler, static http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := p.lookup(r.URL.Path)
		if err == errStatic {
			static.ServeHTTP(w, r)
			return
		}
		app.ServeScript(w, r, s, err)
	})
}
