package peers

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// backend is the address of a FastCGI application, parsed from nginx's
// fastcgi_pass syntax: "HOST:PORT" or "unix:/path/app.sock".
type backend struct {
	network string // "tcp" or "unix", for net.Dial
	address string // "HOST:PORT" or the socket's absolute path
}

// parseBackend parses s in fastcgi_pass syntax; what names the field in
// errors. Port 0 is accepted only if anyPort is set.
func parseBackend(what, s string, anyPort bool) (backend, error) {
	if s == "" {
		return backend{}, fmt.Errorf("peers: %s is empty", what)
	}
	if err := checkConfigString(what, s); err != nil {
		return backend{}, err
	}
	// '|' separates the socket from the URL in Apache's "unix:...|fcgi://"
	// form; whitespace would split the nginx and Apache directives.
	if strings.ContainsAny(s, "| \t") {
		return backend{}, fmt.Errorf("peers: %s %q contains '|' or a space", what, s)
	}
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return backend{}, fmt.Errorf("peers: %s %q: the socket path must be absolute", what, s)
		}
		if len(path) > maxUnixPath {
			return backend{}, fmt.Errorf("peers: %s: socket path %s is longer than %d bytes", what, path, maxUnixPath)
		}
		return backend{network: "unix", address: filepath.Clean(path)}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return backend{}, fmt.Errorf("peers: %s %q is neither HOST:PORT nor unix:/path: %w", what, s, err)
	}
	if n, err := strconv.Atoi(port); host == "" || err != nil || n < 0 || n == 0 && !anyPort || n > 65535 {
		return backend{}, fmt.Errorf("peers: %s %q is neither HOST:PORT nor unix:/path", what, s)
	}
	return backend{network: "tcp", address: s}, nil
}

// String returns b in nginx's fastcgi_pass syntax.
func (b backend) String() string {
	if b.network == "unix" {
		return "unix:" + b.address
	}
	return b.address
}

// setReady makes spec wait until b accepts connections.
func (b backend) setReady(spec *Spec) {
	if b.network == "unix" {
		spec.ReadyUnix = b.address
	} else {
		spec.ReadyTCP = b.address
	}
}

// listenAddress parses the Listen field of an application's config: an
// address in fastcgi_pass syntax, where port 0 picks a free port, or if
// listen is empty the unix socket named socket in dir.
func listenAddress(listen, dir, socket string) (backend, error) {
	if listen == "" {
		listen = "unix:" + filepath.Join(dir, socket)
	}
	return parseBackend("Listen", listen, true)
}

// proxyURL returns the ProxyPass target for b with the given scheme
// ("fcgi", "scgi") and path: "SCHEME://HOST:PORT/path" or
// "unix:/sock|SCHEME://localhost/path".
func (b backend) proxyURL(scheme, path string) string {
	if b.network == "unix" {
		return "unix:" + b.address + "|" + scheme + "://localhost" + path
	}
	return scheme + "://" + b.address + path
}

// checkCanConnect checks that the account u could connect to the unix
// socket at path: it needs write permission on the socket and search
// permission on every parent directory. A socket that does not exist yet
// is not an error. Supplementary groups are not considered.
func checkCanConnect(u *user.User, path string) error {
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("peers: account %s: %w", u.Username, err)
	}
	allowed := func(fi os.FileInfo, bit os.FileMode) bool {
		perm := fi.Mode().Perm()
		fuid, fgid, ok := fileOwner(fi)
		switch {
		case !ok:
			return true // cannot tell
		case fuid == uid:
			return perm&(bit<<6) != 0
		case fgid == gid:
			return perm&(bit<<3) != 0
		}
		return perm&bit != 0
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("peers: %w", err)
	}
	if !allowed(fi, 0o2) {
		return fmt.Errorf("peers: %s cannot connect to %s (mode %v)", u.Username, path, fi.Mode().Perm())
	}
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("peers: %w", err)
		}
		if !allowed(fi, 0o1) {
			return fmt.Errorf("peers: %s cannot reach %s: %s has mode %v (see MakeWorldReadable)", u.Username, path, d, fi.Mode().Perm())
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}
