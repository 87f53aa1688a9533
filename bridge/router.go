package bridge

import (
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ferrygw/ferry/cgi"
)

// route is one mount.
type route struct {
	prefix  string
	handler http.Handler
	backend string
}

// router sends a request to the mount with the longest matching prefix, else
// to the static root, else answers 404.
type router struct {
	routes []route // longest prefix first
	static *staticFiles
}

func (rt *router) match(p string) *route {
	for i := range rt.routes {
		r := &rt.routes[i]
		pre := r.prefix
		if strings.HasSuffix(pre, "/") {
			if strings.HasPrefix(p, pre) || p+"/" == pre {
				return r
			}
		} else if p == pre || strings.HasPrefix(p, pre+"/") {
			return r
		}
	}
	return nil
}

// ServeHTTP routes r.
func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") {
		http.Error(w, "400 Bad Request", http.StatusBadRequest)
		return
	}
	if strings.Contains(p, "//") {
		r = mergeSlashes(r)
		p = r.URL.Path
	}
	if m := rt.match(p); m != nil {
		if info := infoFrom(r.Context()); info != nil {
			info.backend = m.backend
		}
		if p+"/" == m.prefix {
			// "/cgi-bin" for a mount at "/cgi-bin/": send the client to the
			// directory, as a web server does.
			u := *r.URL
			u.Path += "/"
			u.RawPath = ""
			http.Redirect(w, r, u.RequestURI(), http.StatusMovedPermanently)
			return
		}
		m.handler.ServeHTTP(w, r)
		return
	}
	if rt.static != nil {
		if info := infoFrom(r.Context()); info != nil {
			info.backend = "static"
		}
		rt.static.ServeHTTP(w, r)
		return
	}
	http.NotFound(w, r)
}

// mergeSlashes returns r with each run of slashes in its path made one,
// as nginx (merge_slashes on) and Apache (MergeSlashes On, the default
// since 2.4.39) route a request: "//cgi-bin//x.sh/a//b" runs x.sh with
// PATH_INFO "/a/b". Its RequestURI stays as the client sent it, which
// nginx passes on as REQUEST_URI. An encoded slash (%2F) is not merged,
// as Apache leaves it: a cgi: mount still answers it 404. r itself is not
// changed (net/http's request is not ours to change); a path without
// "//" never gets here.
func mergeSlashes(r *http.Request) *http.Request {
	u := *r.URL
	if u.RawPath != "" {
		// The path has escapes its default encoding would not give: merge
		// the slashes the client wrote, not those it encoded.
		if !strings.Contains(u.RawPath, "//") {
			return r
		}
		raw := mergeRuns(u.RawPath)
		p, err := url.PathUnescape(raw)
		if err != nil {
			return r // RawPath came from a path that unescaped once already
		}
		u.Path, u.RawPath = p, raw
	} else {
		u.Path = mergeRuns(u.Path)
	}
	r2 := r.WithContext(r.Context()) // a shallow copy
	r2.URL = &u
	return r2
}

// mergeRuns returns p with each run of slashes made one.
func mergeRuns(p string) string {
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

// localRedirects serves scripts' local redirects (RFC 3875 § 6.2.2)
// through the router. Behind a FastCGI or SCGI front, a path that no mount
// and no static root serves is the front web server's (a page nginx serves
// beside the cgi-bin): the client is sent there with 302, as nginx does with
// the same answer from fcgiwrap, where the router would answer 404.
type localRedirects struct{ rt *router }

func (l localRedirects) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if cgi.Origin(r.Context()) != nil && l.rt.static == nil && l.rt.match(r.URL.Path) == nil {
		cgi.FrontRedirect(w, r.RequestURI) // the script's Location, set by the redirect
		return
	}
	l.rt.ServeHTTP(w, r)
}

// staticFiles serves a document root the way a cautious web server does:
// index.html for directories, no listings, nothing whose name starts with a
// dot, a file only at its own path ("/file.txt/" is 404, as nginx), and
// symbolic links as its policy says (403 for those it refuses).
type staticFiles struct {
	root     string            // absolute, its own links resolved (newStaticFiles)
	symlinks cgi.SymlinkPolicy // as a cgi: mount's: owner-match, follow, never
	prefix   string            // the URL path root is served at (a PHP site's alias); "" is "/"
}

func (s *staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	rel, ok := strings.CutPrefix(r.URL.Path, strings.TrimSuffix(s.prefix, "/"))
	if !ok || !strings.HasPrefix(rel, "/") {
		http.NotFound(w, r)
		return
	}
	clean := path.Clean(rel)
	for _, seg := range strings.Split(clean, "/") {
		if strings.HasPrefix(seg, ".") || strings.ContainsRune(seg, '\x00') {
			http.NotFound(w, r)
			return
		}
	}
	file := filepath.Join(s.root, filepath.FromSlash(clean))
	f, err := s.open(file)
	if errors.Is(err, errIsDir) {
		if !strings.HasSuffix(r.URL.Path, "/") {
			// To the directory's cleaned path, escaped, with the query, as
			// nginx redirects: r.URL.Path as it came may begin with "//"
			// ("//evil.example/../dir" would send the client to another
			// host) or hold a decoded "?" (%3F).
			u := url.URL{Path: strings.TrimSuffix(s.prefix, "/") + clean + "/", RawQuery: r.URL.RawQuery}
			http.Redirect(w, r, u.RequestURI(), http.StatusMovedPermanently)
			return
		}
		file = filepath.Join(file, "index.html")
		if f, err = s.open(file); err != nil && !errors.Is(err, errNotRegular) {
			http.Error(w, "403 Forbidden", http.StatusForbidden) // a directory without an index
			return
		}
	} else if err == nil && strings.HasSuffix(r.URL.Path, "/") {
		f.Close()
		err = fs.ErrNotExist // "/file.txt/" is not the file (nginx: 404)
	}
	switch {
	case err == nil:
	case errors.Is(err, errNotRegular), errors.Is(err, syscall.ENXIO),
		errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ENAMETOOLONG):
		// A FIFO, device or socket (whose open fails with ENXIO) is no
		// page: its reads could wait forever, or never end. nginx
		// declines them too, and answers 404 for the open's ENOENT,
		// ENOTDIR and ENAMETOOLONG, 403 for the others.
		http.NotFound(w, r)
		return
	default:
		http.Error(w, "403 Forbidden", http.StatusForbidden) // EACCES, ELOOP, a link the policy refuses
		return
	}
	defer f.Close()
	// The type by extension, else nginx's default_type: never sniffed from
	// the content, which would serve an uploaded "photo.dat" holding HTML
	// as text/html (a stored XSS on the site's own origin).
	ctype := mime.TypeByExtension(filepath.Ext(file))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ctype)
	// nginx's ETag, mtime and size in hex: If-None-Match and If-Range
	// work, and the validators clients hold from nginx stay good.
	var tag [2 + 2*16 + 1]byte // built in place: one string, not three
	etag := strconv.AppendInt(append(tag[:0], '"'), f.mtime.Unix(), 16)
	etag = strconv.AppendInt(append(etag, '-'), f.size, 16)
	w.Header()["Etag"] = []string{string(append(etag, '"'))}
	http.ServeContent(w, r, filepath.Base(file), f.mtime, f)
	if end, ok := sendEnd(w.Header(), r); ok {
		if at, short := f.truncatedBefore(end); short {
			// The client got less than the Content-Length it was given,
			// and its connection was closed; the access line counts what
			// it got. nginx logs it at alert: "sendfile() reported that
			// FILE was truncated at N".
			if info := infoFrom(r.Context()); info != nil {
				info.Logger().Error().Str("file", file).Int64("truncated_at", at).Int64("size", f.size).
					Msg("static: file truncated while being sent; response cut short")
			}
		}
	}
}

// sendEnd returns where in the file the response ServeContent wrote for
// r was to end: the end of its one range (Content-Range), or of the
// whole file, as its Content-Length says. It reports false for a
// response with no body from the file: HEAD, 304, an error, or several
// ranges (multipart, with no Content-Length).
func sendEnd(h http.Header, r *http.Request) (int64, bool) {
	cl := h["Content-Length"]
	if r.Method == http.MethodHead || len(cl) != 1 {
		return 0, false
	}
	n, err := strconv.ParseInt(cl[0], 10, 64)
	if err != nil {
		return 0, false
	}
	var start int64
	if cr := h["Content-Range"]; len(cr) == 1 {
		first, _, ok := strings.Cut(strings.TrimPrefix(cr[0], "bytes "), "-")
		if start, err = strconv.ParseInt(first, 10, 64); !ok || err != nil {
			return 0, false
		}
	}
	return start + n, true
}

// open opens file, a path under the root, if the symlink policy allows
// every link on its way; with SymlinksNever, one put in its place since
// the check is not followed either (O_NOFOLLOW).
func (s *staticFiles) open(file string) (*staticFile, error) {
	flags := 0
	switch s.symlinks {
	case cgi.SymlinksFollow:
	case cgi.SymlinksNever:
		flags = syscall.O_NOFOLLOW
		fallthrough
	default:
		if err := s.symlinks.CheckPath(s.root, file); err != nil {
			return nil, err
		}
	}
	return openStatic(file, flags)
}

// newStaticFiles serves root with the symbolic link policy named policy
// (empty: owner-match).
func newStaticFiles(root, policy string) (*staticFiles, error) {
	p, err := parseRootSymlinks(policy)
	if err != nil {
		return nil, err
	}
	real, err := filepath.Abs(root)
	if err == nil {
		real, err = filepath.EvalSymlinks(real)
	}
	var fi os.FileInfo
	if err == nil {
		fi, err = os.Stat(real)
	}
	if err == nil && !fi.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return nil, fmt.Errorf("bridge: document root %q is not a directory: %w", root, err)
	}
	return &staticFiles{root: real, symlinks: p}, nil
}

// parseRootSymlinks parses a value of Config.RootSymlinks.
func parseRootSymlinks(policy string) (cgi.SymlinkPolicy, error) {
	if policy == "" {
		return cgi.SymlinksOwnerMatch, nil
	}
	p, err := cgi.ParseSymlinkPolicy(policy)
	if err != nil {
		return 0, fmt.Errorf("bridge: root_symlinks: %w", err)
	}
	return p, nil
}

// symlinkPolicies names the symbolic link policies, for the options that
// take one (a cgi: mount's symlinks, root_symlinks).
func symlinkPolicies() []string {
	var names []string
	for p := cgi.SymlinksOwnerMatch; p <= cgi.SymlinksNever; p++ {
		names = append(names, p.String())
	}
	return names
}
