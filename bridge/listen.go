package bridge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/ferrygw/ferry/internal/serving"
	"github.com/rs/zerolog"
)

// front is one listener and the address it was opened for.
type front struct {
	addr Address
	l    net.Listener
}

// String names the front in logs, with the port actually bound.
func (f front) String() string {
	switch f.addr.Network() {
	case "tcp":
		return f.addr.Scheme + "://" + f.l.Addr().String()
	}
	return f.addr.String()
}

// cleanup removes the socket file of a unix front.
func (f front) cleanup() {
	if f.addr.Network() == "unix" {
		os.Remove(f.addr.Path)
	}
}

// listen opens the listener for a front address. A unix socket replaces a
// stale socket file (never any other kind of file) and takes the mode,
// owner and group given as ?mode=0660&owner=www-data&group=www-data
// (default: 0777 as the process umask allows, what bind(2) gives, and
// ferry's user and group). An
// https:// front serves TLS with the certificate of its cert and key
// options, read again when they change; log, if not nil, says so.
func listen(a Address, log *zerolog.Logger) (net.Listener, error) {
	switch a.Network() {
	case "fd":
		n, _ := strconv.Atoi(a.Host)
		l, err := serving.ListenerFromFD(n)
		if err != nil {
			return nil, fmt.Errorf("bridge: listen %s: %w", a, err)
		}
		return l, nil
	case "unix":
		if fi, err := os.Lstat(a.Path); err == nil {
			if fi.Mode()&fs.ModeSocket == 0 {
				return nil, fmt.Errorf("bridge: listen %s: %s exists and is not a socket", a, a.Path)
			}
			if c, err := net.Dial("unix", a.Path); err == nil {
				c.Close()
				return nil, fmt.Errorf("bridge: listen %s: another process is serving on %s", a, a.Path)
			}
			os.Remove(a.Path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("bridge: listen %s: %w", a, err)
		}
		l, err := net.Listen("unix", a.Path)
		if err != nil {
			return nil, fmt.Errorf("bridge: listen %s: %w", a, err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false) // cleanup removes it once serving ends
		if err := socketPerms(a.Path, a.Query); err != nil {
			l.Close()
			os.Remove(a.Path)
			return nil, fmt.Errorf("bridge: listen %s: %w", a, err)
		}
		return l, nil
	}
	// Read before listening: a missing or bad certificate is a start
	// error naming its file, not a failure of every handshake.
	certs, err := frontCerts(a, log)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	if a.Protocol() != "http" {
		// A web server's connections to its FastCGI or SCGI application
		// are short (SCGI: one per request) or watched by both ends'
		// idle timeouts: TCP keep-alive probes would only cost three
		// setsockopt calls per accepted connection.
		lc.KeepAlive = -1
	}
	l, err := lc.Listen(context.Background(), "tcp", a.Host)
	if err != nil {
		return nil, fmt.Errorf("bridge: listen %s: %w", a, err)
	}
	return withTLS(l, certs), nil
}

// checkFrontOptions checks the options of a, an address ferry listens on
// (what names its use, for messages): declared, of their type, the required ones
// given, and a unix socket's owner and group known to the system.
func checkFrontOptions(a Address, sc *scheme, what string) error {
	if _, err := checkOptions(a.Query, frontOptions(sc), schemeNames(func(s *scheme) bool { return s == sc })+what); err != nil {
		return err
	}
	for _, name := range sc.required {
		if a.Query.Get(name) == "" {
			return fmt.Errorf("%s needs %s", schemeNames(func(s *scheme) bool { return s == sc }), strings.Join(sc.required, "=FILE and ")+"=FILE")
		}
	}
	_, _, err := socketOwner(a.Query)
	return err
}

// socketPerms gives the socket file at path the mode, owner and group q
// asks for.
func socketPerms(path string, q url.Values) error {
	uid, gid, err := socketOwner(q)
	if err != nil {
		return err
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("owner %q group %q: %w", q.Get("owner"), q.Get("group"), err)
		}
	}
	if m := q.Get("mode"); m != "" {
		mode, err := strconv.ParseUint(m, 8, 32)
		if err == nil {
			err = os.Chmod(path, os.FileMode(mode))
		}
		if err != nil {
			return fmt.Errorf("mode %q: %w", m, err)
		}
	}
	return nil
}

// socketOwner returns the uid and gid named by q's owner and group
// options (names or numbers), -1 for those not given.
func socketOwner(q url.Values) (uid, gid int, err error) {
	if uid, err = accountID("owner", q.Get("owner")); err == nil {
		gid, err = accountID("group", q.Get("group"))
	}
	if err != nil {
		return -1, -1, err
	}
	return uid, gid, nil
}

// accountID returns the id that v, the value of the option owner (a user)
// or group, names as a number or a name, or -1 when v is empty.
func accountID(option, v string) (int, error) {
	if v == "" {
		return -1, nil
	}
	if id, err := strconv.Atoi(v); err == nil && id >= 0 {
		return id, nil
	}
	var id, what string
	if option == "owner" {
		what = "user"
		if u, err := user.Lookup(v); err == nil {
			id = u.Uid
		}
	} else {
		what = "group"
		if g, err := user.LookupGroup(v); err == nil {
			id = g.Gid
		}
	}
	if id == "" {
		return -1, fmt.Errorf("%s=%q: no such %s", option, v, what)
	}
	return strconv.Atoi(id)
}
