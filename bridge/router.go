package bridge

import (
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
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
// dot, a file only at its own path ("/file.txt/" is 404, as nginx), and
// symlinks as symlinks says.
type staticFiles struct {
	root     string
	symlinks string // "off" or "" (followed), "if_not_owner", "on": see checkSymlinks
}

func (s *staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	clean := path.Clean("/" + r.URL.Path)
	for _, seg := range strings.Split(clean, "/") {
		if strings.HasPrefix(seg, ".") || strings.ContainsRune(seg, '\x00') {
			http.NotFound(w, r)
			return
		}
	}
	file := filepath.Join(s.root, filepath.FromSlash(clean))
	fi, err := os.Stat(file)
	if err != nil || (!fi.IsDir() && strings.HasSuffix(r.URL.Path, "/")) {
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
	if !s.checkSymlinks(file) {
		http.Error(w, "403 Forbidden", http.StatusForbidden)
		return
	}
	f, err := s.open(file)
	if err != nil {
		http.Error(w, "403 Forbidden", http.StatusForbidden)
		return
	}
	defer f.Close()
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// checkSymlinks applies the symlink policy to file, a path under the root,
// as nginx's disable_symlinks does from the document root on: with "on",
// no component of the path below the root may be a symlink; with
// "if_not_owner", a symlink's target must have the link's owner. The root
// itself may be a symlink whatever the policy.
func (s *staticFiles) checkSymlinks(file string) bool {
	if s.symlinks == "" || s.symlinks == "off" {
		return true
	}
	rel, err := filepath.Rel(s.root, file)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return false
	}
	p := s.root
	for _, seg := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, seg)
		li, err := os.Lstat(p)
		if err != nil {
			return false
		}
		if li.Mode()&os.ModeSymlink == 0 {
			continue
		}
		if s.symlinks == "on" {
			return false
		}
		ti, err := os.Stat(p)
		if err != nil || !sameOwner(li, ti) {
			return false
		}
	}
	return true
}

// open opens file; when no symlink is followed, one put in its place
// since checkSymlinks looked is not either (O_NOFOLLOW).
func (s *staticFiles) open(file string) (*os.File, error) {
	if s.symlinks != "on" {
		return os.Open(file)
	}
	return os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}

// checkSymlinkPolicy checks a value of Config.RootSymlinks.
func checkSymlinkPolicy(p string) error {
	switch p {
	case "", "off", "if_not_owner", "on":
		return nil
	}
	return fmt.Errorf("bridge: root_symlinks %q: want off, if_not_owner or on", p)
}

// sameOwner reports whether a and b belong to the same user.
func sameOwner(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Uid == sb.Uid
}
