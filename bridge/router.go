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
	if strings.Contains(p, "//") || strings.Contains(p, "/.") {
		var ok bool
		if r, ok = cleanRequestPath(r); !ok {
			// As nginx and Apache answer a ".." above the root.
			http.Error(w, "400 Bad Request", http.StatusBadRequest)
			return
		}
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

// cleanRequestPath returns r with its path as nginx and Apache route a
// request: each run of slashes made one (nginx's merge_slashes on,
// Apache's MergeSlashes On, the default since 2.4.39), and its "." and
// ".." segments resolved ("/cgi-bin/../cgi-bin/./x.sh" runs x.sh; "%2e"
// counts as "."). "//cgi-bin//x.sh/a//b" runs x.sh with PATH_INFO "/a/b".
// Its RequestURI stays as the client sent it, which nginx passes on as
// REQUEST_URI. An encoded slash (%2F) is neither merged nor a segment's
// end, as Apache leaves it: a cgi: mount still answers it 404. It reports
// false for a ".." above the root, which both answer 400. r itself is not
// changed (net/http's request is not ours to change); a path without "//"
// or "/." never gets here.
func cleanRequestPath(r *http.Request) (*http.Request, bool) {
	u := *r.URL
	if u.RawPath != "" {
		// The path has escapes its default encoding would not give: clean
		// the path the client wrote, not what it encoded.
		raw, ok := cleanPath(u.RawPath, true)
		if !ok {
			return nil, false
		}
		if raw == u.RawPath {
			return r, true
		}
		p, err := url.PathUnescape(raw)
		if err != nil {
			return r, true // RawPath came from a path that unescaped once already
		}
		u.Path, u.RawPath = p, raw
	} else {
		p, ok := cleanPath(u.Path, false)
		if !ok {
			return nil, false
		}
		if p == u.Path {
			return r, true // "/.well-known/x": nothing to clean
		}
		u.Path = p
	}
	r2 := r.WithContext(r.Context()) // a shallow copy
	r2.URL = &u
	return r2, true
}

// cleanPath returns p, a path starting with "/", with each run of slashes
// made one and its "." and ".." segments resolved; a path ending in one
// keeps the slash after the directory it leaves ("/a/b/.." is "/a/"), as
// nginx has it. escaped says that p is a path as sent, its segments
// percent-encoded ("%2e%2e" is ".."). It reports false for a ".." above
// the root.
func cleanPath(p string, escaped bool) (string, bool) {
	segs := make([]string, 0, strings.Count(p, "/"))
	dir := false // the path ends with a slash
	for seg := range strings.SplitSeq(p[1:], "/") {
		switch dotSegment(seg, escaped) {
		case 1:
			dir = true
		case 2:
			if len(segs) == 0 {
				return "", false
			}
			segs, dir = segs[:len(segs)-1], true
		default:
			if dir = seg == ""; !dir {
				segs = append(segs, seg)
			}
		}
	}
	clean := "/" + strings.Join(segs, "/")
	if dir && len(segs) > 0 {
		clean += "/"
	}
	return clean, true
}

// dotSegment returns 1 for a "." segment, 2 for "..", else 0; escaped
// segments count in their decoded form ("%2E" is ".").
func dotSegment(seg string, escaped bool) int {
	if escaped && strings.Contains(seg, "%") && len(seg) <= 6 {
		if d, err := url.PathUnescape(seg); err == nil {
			seg = d
		}
	}
	switch seg {
	case ".":
		return 1
	case "..":
		return 2
	}
	return 0
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
	if end, ok := shortOf(w, r); ok {
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

// bodyCounter is a ResponseWriter that counts the body bytes it wrote:
// the access log's, which the static handler's writer always is.
type bodyCounter interface{ BodyBytes() int64 }

// shortOf returns where in the file the response ServeContent wrote to w
// for r was to end (the end of its one range, Content-Range, or of the
// whole file, as its Content-Length says) when w did not send it all.
// It reports false for a response sent whole, the common case, which
// costs a map lookup and a number's parse, and for one with no body from
// the file: HEAD, 304, an error, several ranges (multipart, with no
// Content-Length).
func shortOf(w http.ResponseWriter, r *http.Request) (int64, bool) {
	h := w.Header()
	cl := h["Content-Length"]
	if r.Method == http.MethodHead || len(cl) != 1 {
		return 0, false
	}
	n, err := strconv.ParseInt(cl[0], 10, 64)
	if err != nil {
		return 0, false
	}
	if bc, ok := w.(bodyCounter); ok && bc.BodyBytes() >= n {
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
