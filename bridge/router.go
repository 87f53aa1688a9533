package bridge

import (
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
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

// staticFiles serves a document root the way a cautious web server does:
// index.html for directories, no listings, nothing whose name starts with a
// dot.
type staticFiles struct {
	root   string
	prefix string // the URL path root is served at (a PHP site's alias); "" is "/"
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
	fi, err := os.Stat(file)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if fi.IsDir() {
		if !strings.HasSuffix(r.URL.Path, "/") {
			http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
			return
		}
		file = filepath.Join(file, "index.html")
		if fi, err = os.Stat(file); err != nil || fi.IsDir() {
			http.Error(w, "403 Forbidden", http.StatusForbidden)
			return
		}
	}
	f, err := os.Open(file)
	if err != nil {
		http.Error(w, "403 Forbidden", http.StatusForbidden)
		return
	}
	defer f.Close()
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}
