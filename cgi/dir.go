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
	"syscall"
)

// Dir resolves requests to the CGI scripts of a directory with Apache's
// ScriptAlias semantics: the first segment of the request path (after
// Prefix) that names an executable regular file is the script, and the rest
// of the path is PATH_INFO. So with Prefix "/cgi-bin/",
// "/cgi-bin/wiki.pl/Main/Page" runs Path/wiki.pl with PATH_INFO
// "/Main/Page". Serve it with a [Handler]:
//
//	h := &cgi.Handler{Resolver: &cgi.Dir{Path: "/usr/lib/cgi-bin", Prefix: "/cgi-bin/"}}
//
// Nothing outside Path runs but what a symbolic link leads to, as Symlinks
// allows: "." and ".." segments, encoded slashes, NUL, CR and LF are
// refused. A file without an execute bit is neither run nor shown (403); a
// directory is not listed (403); a missing script is 404. Each 403 carries
// its reason (a symbolic link refused, no execute bit, a directory), which
// the [Handler] logs at info level.
//
// A Dir must not be copied after first use.
type Dir struct {
	// Path is the directory holding the scripts.
	Path string
	// Prefix is the URL path the directory is mounted at, such as
	// "/cgi-bin/". If empty, "/" is used.
	Prefix string
	// Root is DOCUMENT_ROOT, and the base of PATH_TRANSLATED. If empty,
	// the DOCUMENT_ROOT the front web server sent, when a FastCGI or SCGI
	// front sent one ([Origin]), as fcgiwrap passes nginx's on; else the
	// script's directory.
	Root string
	// Symlinks says which symbolic links on a script's path are followed.
	// The zero value, SymlinksOwnerMatch, is Apache's SymLinksIfOwnerMatch,
	// as Debian's cgi-bin has it (/usr/lib/cgi-bin/gitweb.cgi is a link
	// into /usr/share/gitweb).
	Symlinks SymlinkPolicy

	once    sync.Once
	root    string // Path, absolute and with symbolic links resolved
	rootErr error
}

// SymlinkPolicy says which symbolic links a [Dir] follows on the way to a
// script.
type SymlinkPolicy uint8

// Symbolic link policies.
const (
	// SymlinksOwnerMatch follows a link that resolves inside the
	// directory, or whose owner owns what it leads to (Apache's
	// SymLinksIfOwnerMatch).
	SymlinksOwnerMatch SymlinkPolicy = iota
	// SymlinksFollow follows every link (Apache's FollowSymLinks).
	SymlinksFollow
	// SymlinksNever follows none.
	SymlinksNever
)

var symlinkPolicyNames = [...]string{SymlinksOwnerMatch: "owner-match", SymlinksFollow: "follow", SymlinksNever: "never"}

// String returns the policy's name: "owner-match", "follow" or "never".
func (p SymlinkPolicy) String() string {
	if int(p) < len(symlinkPolicyNames) {
		return symlinkPolicyNames[p]
	}
	return fmt.Sprintf("SymlinkPolicy(%d)", p)
}

// ParseSymlinkPolicy returns the policy named s.
func ParseSymlinkPolicy(s string) (SymlinkPolicy, error) {
	for i, n := range symlinkPolicyNames {
		if n == s {
			return SymlinkPolicy(i), nil
		}
	}
	return 0, fmt.Errorf("cgi: symbolic link policy %q: want owner-match, follow or never", s)
}

// follow reports whether p follows the link at file (link is its Lstat),
// which resolves to real, under root (absolute, its own links resolved),
// and if not, why.
func (p SymlinkPolicy) follow(root, file, real string, link fs.FileInfo) error {
	switch p {
	case SymlinksFollow:
		return nil
	case SymlinksNever:
		return fmt.Errorf("cgi: %s is a symbolic link, and the policy is never to follow one", file)
	}
	if real == root || strings.HasPrefix(real, root+string(filepath.Separator)) {
		return nil
	}
	target, err := os.Stat(real)
	if err != nil {
		return err
	}
	lst, ok1 := link.Sys().(*syscall.Stat_t)
	tst, ok2 := target.Sys().(*syscall.Stat_t)
	if ok1 && ok2 && lst.Uid == tst.Uid {
		return nil
	}
	return fmt.Errorf("cgi: %s is a symbolic link to %s, outside %s, and the link's owner does not own its target (policy owner-match)", file, real, root)
}

// CheckPath applies the policy to every symbolic link on the way from
// root down to file, a path below it, as a [Dir] does on the way to a
// script: it returns nil if each may be followed, else an error saying
// which may not. root must be absolute, with its own links resolved
// (filepath.EvalSymlinks); root itself may be reached through links
// whatever the policy. Web servers serving static files apply the same
// rule to their document root (nginx's disable_symlinks).
func (p SymlinkPolicy) CheckPath(root, file string) error {
	rel, err := filepath.Rel(root, file)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("cgi: %s is not below %s", file, root)
	}
	if rel == "." {
		return nil
	}
	cur := root
	for _, seg := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, seg)
		fi, err := os.Lstat(cur)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		real, err := filepath.EvalSymlinks(cur)
		if err != nil {
			return err
		}
		if err := p.follow(root, cur, real, fi); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dir) init() {
	d.once.Do(func() {
		abs, err := filepath.Abs(d.Path)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		d.root, d.rootErr = abs, err
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

// Resolve finds the script r names.
func (d *Dir) Resolve(r *http.Request) (Script, error) {
	d.init()
	if d.rootErr != nil {
		return Script{}, statusError(http.StatusInternalServerError, fmt.Errorf("cgi: script directory %s unusable: %w", d.Path, d.rootErr))
	}
	return d.lookup(r)
}

// lookup maps r's path to a script, or says which status to answer with.
func (d *Dir) lookup(r *http.Request) (Script, error) {
	prefix := d.prefix()
	p := r.URL.Path
	if p+"/" == prefix {
		return Script{}, statusError(http.StatusForbidden, nil)
	}
	rel, ok := strings.CutPrefix(p, prefix)
	if !ok {
		return Script{}, statusError(http.StatusNotFound, nil)
	}
	if rel == "" {
		return Script{}, statusError(http.StatusForbidden, nil) // the directory itself: no listing
	}
	// An encoded slash would let a segment name a path (Apache's
	// AllowEncodedSlashes Off answers 404 too).
	if ep := r.URL.EscapedPath(); strings.Contains(ep, "%2f") || strings.Contains(ep, "%2F") ||
		strings.Contains(ep, "%5c") || strings.Contains(ep, "%5C") {
		return Script{}, statusError(http.StatusNotFound, nil)
	}
	if hasCTL(p) || strings.ContainsRune(p, '\\') {
		return Script{}, statusError(http.StatusBadRequest, nil)
	}
	segs := strings.Split(rel, "/")
	for _, seg := range segs {
		if seg == "." || seg == ".." {
			return Script{}, statusError(http.StatusBadRequest, nil)
		}
	}
	file := d.root
	for i, seg := range segs {
		if seg == "" {
			if i == len(segs)-1 {
				return Script{}, statusError(http.StatusForbidden, nil) // "sub/": a directory
			}
			return Script{}, statusError(http.StatusNotFound, nil) // "//"
		}
		file = filepath.Join(file, seg)
		fi, err := os.Lstat(file)
		if err != nil {
			return Script{}, fsError(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(file)
			if err != nil {
				return Script{}, fsError(err)
			}
			if err := d.Symlinks.follow(d.root, file, real, fi); err != nil {
				return Script{}, statusError(http.StatusForbidden, err)
			}
			if fi, err = os.Stat(real); err != nil {
				return Script{}, fsError(err)
			}
		}
		switch {
		case fi.IsDir():
			continue
		case !fi.Mode().IsRegular():
			return Script{}, statusError(http.StatusForbidden, fmt.Errorf("cgi: %s is not a regular file", file))
		case fi.Mode().Perm()&0o111 == 0:
			return Script{}, statusError(http.StatusForbidden, fmt.Errorf("cgi: %s has no execute bit", file))
		}
		s := Script{
			Name:     prefix + strings.Join(segs[:i+1], "/"),
			Filename: file,
			Root:     d.Root,
		}
		if s.Root == "" {
			s.Root = frontRoot(r)
		}
		if i+1 < len(segs) {
			s.PathInfo = "/" + strings.Join(segs[i+1:], "/")
		}
		return s, nil
	}
	return Script{}, statusError(http.StatusForbidden, nil) // a directory
}

// fsError is a failure to look a script up, with its status.
func fsError(err error) error { return statusError(statusFor(err), err) }

func statusFor(err error) int {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return http.StatusNotFound
	case errors.Is(err, fs.ErrPermission):
		return http.StatusForbidden
	}
	return http.StatusNotFound
}
