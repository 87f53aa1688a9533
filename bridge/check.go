package bridge

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
)

// Severity says how much a [Finding] matters.
type Severity int

// Severities, from the gravest.
const (
	// Problem: serving would fail, or do what the configuration does not
	// mean.
	Problem Severity = iota
	// Warning: a risky setting; serving would work.
	Warning
	// Note: what a check found, for the record (a backend's answer).
	Note
)

var severityNames = [...]string{Problem: "error", Warning: "warning", Note: "ok"}

// String names the severity as ferry check prints it.
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "Severity(" + strconv.Itoa(int(s)) + ")"
}

// Finding is one thing [Check] found.
type Finding struct {
	// Severity says whether it is a problem, a risk or a note.
	Severity Severity
	// Path is the configuration key it is about, such as ["mount",
	// "/cgi-bin/", "backend"] ([ConfigFile.Line] finds its line).
	Path []string
	// Msg says what was found.
	Msg string
}

// Key spells the finding's key as TOML does: mount."/cgi-bin/".backend.
func (f Finding) Key() string { return keyPath(f.Path) }

// CheckOptions says what [Check] may do beyond looking at files.
type CheckOptions struct {
	// Connect, if true, connects to every backend ferry does not start
	// itself: a TCP or unix connect, and for FastCGI a GET_VALUES
	// exchange.
	Connect bool
	// Timeout bounds each connection. If zero, 3s.
	Timeout time.Duration
}

// Check checks what can be checked of cfg without serving it: directories,
// scripts and workers exist (and are executable, and cgi-bins not
// world-writable), unix sockets can be created where asked, the pid file's
// directory is writable, backends answer (with opts.Connect); and it warns
// of risky settings (a cgi-bin inside the document root, Authorization
// passed to scripts, no script timeout, more CPUs than the machine has).
// Findings come in the configuration's order. Problems New reports are
// findings too.
func Check(ctx context.Context, cfg Config, opts CheckOptions) []Finding {
	c := &checker{ctx: ctx, cfg: cfg, opts: opts}
	c.fronts()
	if cfg.Root != "" {
		if fi, err := os.Stat(cfg.Root); err != nil || !fi.IsDir() {
			c.add(Problem, []string{"root"}, "%s is not a directory%s", cfg.Root, because(err))
		}
	}
	if cfg.PIDFile != "" {
		c.writableDir([]string{"pid_file"}, filepath.Dir(cfg.PIDFile))
	}
	if n := runtime.NumCPU(); cfg.CPUs > n {
		c.add(Warning, []string{"cpus"}, "%d is more than the %d CPUs ferry may use here: the threads past %d only take turns on them", cfg.CPUs, n, n)
	}
	if len(cfg.Mounts) == 0 && cfg.Root == "" {
		c.add(Warning, []string{"mount"}, "no mount and no root: every request would get 404")
	}
	seen := map[string]bool{}
	for _, m := range cfg.Mounts {
		if seen[m.Prefix] {
			c.add(Problem, []string{"mount", m.Prefix}, "mounted twice")
		}
		seen[m.Prefix] = true
		c.mount(m)
	}
	if !slices.ContainsFunc(c.found, func(f Finding) bool { return f.Severity == Problem }) {
		if _, err := New(cfg); err != nil {
			c.add(Problem, nil, "%s", strings.TrimPrefix(err.Error(), "bridge: "))
		}
	}
	return c.found
}

// checker collects the findings of one Check.
type checker struct {
	ctx   context.Context
	cfg   Config
	opts  CheckOptions
	found []Finding
}

func (c *checker) add(sev Severity, path []string, format string, args ...any) {
	c.found = append(c.found, Finding{Severity: sev, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// because spells an error as a clause, or nothing.
func because(err error) string {
	if err == nil {
		return ""
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return ": " + err.Error()
}

// fronts checks the listen addresses and the admin listener's.
func (c *checker) fronts() {
	seen := map[string]bool{}
	for _, a := range c.cfg.Listen {
		if seen[a.String()] {
			c.add(Problem, []string{"listen"}, "%s is listed twice", a)
		}
		seen[a.String()] = true
		switch a.Network() {
		case "unix":
			c.socket([]string{"listen"}, a)
		case "tcp":
			c.port([]string{"listen"}, a)
		}
		if a.Scheme == "https" {
			c.certificate([]string{"listen"}, a)
		}
	}
	if f := c.cfg.AccessLogFile; f != "" {
		c.writableDir([]string{"log", "access_log_file"}, filepath.Dir(f))
	}
	if a := c.cfg.Admin; a.Scheme != "" {
		if seen[a.String()] || slices.ContainsFunc(c.cfg.Listen, func(l Address) bool { return l.Network() == a.Network() && l.Host == a.Host && l.Path == a.Path }) {
			c.add(Problem, []string{"admin"}, "%s is also a front", a)
		}
		switch a.Network() {
		case "unix":
			c.socket([]string{"admin"}, a)
		case "tcp":
			c.port([]string{"admin"}, a)
		}
	}
}

// port checks that ferry can listen on a's host and port, as nginx -t
// does: the host is an address of this machine (or resolves to one), and
// the port is one this user may take. A port another process listens on
// now is a warning: it is the running ferry when the file is checked
// before a reload.
func (c *checker) port(path []string, a Address) {
	if a.Host == "" || a.Protocol() == "cgi" {
		return
	}
	l, err := net.Listen("tcp", a.Host)
	if err == nil {
		l.Close()
		return
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		c.add(Warning, path, "a process is listening on %s now: ferry serve will not start while it does", a.Host)
		return
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	c.add(Problem, path, "cannot listen on %s: %v", a.Host, err)
}

// socket checks that a unix socket can be made at a's path with the mode
// it asks for: the directory exists and takes a socket, and the path is
// free or a stale socket.
func (c *checker) socket(path []string, a Address) {
	if fi, err := os.Lstat(a.Path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			c.add(Problem, path, "%s exists and is not a socket", a.Path)
			return
		}
		if conn, err := net.DialTimeout("unix", a.Path, time.Second); err == nil {
			conn.Close()
			c.add(Warning, path, "a process is serving on %s now: ferry serve will not start while it does", a.Path)
			return
		}
	}
	dir := filepath.Dir(a.Path)
	probe := filepath.Join(dir, ".ferry-check-"+strconv.Itoa(os.Getpid())+".sock")
	l, err := net.Listen("unix", probe)
	if err != nil {
		c.add(Problem, path, "cannot create a socket in %s%s", dir, because(errors.Unwrap(err)))
		return
	}
	defer l.Close()
	defer os.Remove(probe)
	if m := a.Query.Get("mode"); m != "" {
		mode, _ := strconv.ParseUint(m, 8, 32) // checked by the address's options
		if err := os.Chmod(probe, os.FileMode(mode)); err != nil {
			c.add(Problem, path, "cannot give a socket in %s mode %s%s", dir, m, because(err))
		}
	}
	if uid, gid, err := socketOwner(a.Query); err == nil && (uid >= 0 || gid >= 0) {
		if err := os.Lchown(probe, uid, gid); err != nil {
			c.add(Problem, path, "cannot give a socket in %s owner %q group %q%s", dir, a.Query.Get("owner"), a.Query.Get("group"), because(err))
		}
	}
}

// certificate checks that an https:// front's certificate and key load
// and that the certificate is valid now.
func (c *checker) certificate(path []string, a Address) {
	certs, err := loadCertFiles(a.Query.Get("cert"), a.Query.Get("key"), nil)
	if err != nil {
		c.add(Problem, path, "%s: %v", a.Scheme+"://"+a.Host, err)
		return
	}
	leaf, err := x509.ParseCertificate(certs.pair.Certificate[0])
	if err != nil {
		c.add(Problem, path, "%s: cert=%s: %v", a.Scheme+"://"+a.Host, certs.cert, err)
		return
	}
	if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		c.add(Warning, path, "%s: the certificate in %s is valid from %s to %s only", a.Scheme+"://"+a.Host, certs.cert,
			leaf.NotBefore.Format(time.DateOnly), leaf.NotAfter.Format(time.DateOnly))
	}
}

// writableDir checks that dir exists and this process can create files in
// it.
func (c *checker) writableDir(path []string, dir string) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		c.add(Problem, path, "directory %s does not exist%s", dir, because(err))
		return
	}
	if err := syscall.Access(dir, 0x2|0x1); err != nil { // W_OK|X_OK
		c.add(Problem, path, "cannot write in %s: %v", dir, err)
	}
}

// mount checks one mount: what its backend names, and its risky settings.
func (c *checker) mount(m Mount) {
	kind, _, err := checkBackend(m.Backend)
	if err == nil {
		err = checkNeeded(kind, m.Backend.Query)
	}
	if err == nil {
		err = checkOwn(kind, m)
	}
	bpath := []string{"mount", m.Prefix, "backend"}
	if err != nil {
		c.add(Problem, bpath, "%s", err)
		return
	}
	st := c.cfg.MountSettings(m)
	settingPath := func(name string) []string {
		if slices.Contains(m.Own, name) {
			return []string{"mount", m.Prefix, name}
		}
		return []string{"defaults", name}
	}
	a := m.Backend
	switch a.Scheme {
	case "cgi":
		c.cgiBin(bpath, m)
		if st.PassAuthorization {
			c.add(Warning, settingPath("cgi_pass_auth"), "scripts under %s see the client's credentials (HTTP_AUTHORIZATION)", m.Prefix)
		}
		if st.ScriptTimeout < 0 {
			c.add(Warning, settingPath("cgi_timeout"), "no timeout: a script under %s that hangs holds its slot until the client goes away", m.Prefix)
		}
	case "fastcgi+exec":
		c.executable(bpath, a.Path, "worker")
	case "wsgi", "psgi":
		c.checkApp(bpath, a)
	case "fastcgi+unix", "scgi+unix":
		if fi, err := os.Stat(a.Path); err != nil {
			if !c.opts.Connect {
				c.add(Warning, bpath, "no socket at %s yet%s (is the application running?)", a.Path, because(err))
			}
		} else if fi.Mode()&fs.ModeSocket == 0 {
			c.add(Problem, bpath, "%s is not a socket", a.Path)
			return
		}
	}
	if c.opts.Connect && !slices.Contains([]string{"cgi", "fastcgi+exec", "wsgi", "psgi"}, a.Scheme) {
		c.connect(bpath, a)
	}
}

// cgiBin checks a cgi: back: the directory or script exists, is not
// world-writable, and is not inside the document root.
func (c *checker) cgiBin(path []string, m Mount) {
	p := m.Backend.Path
	fi, err := os.Stat(p)
	if err != nil {
		c.add(Problem, path, "%s does not exist%s", p, because(err))
		return
	}
	if !fi.IsDir() {
		if m.Backend.Query.Get("from") != "" {
			c.add(Problem, path, "from=script-filename needs a directory; %s is a file", p)
		}
		c.executable(path, p, "script")
		return
	}
	if !strings.HasSuffix(m.Prefix, "/") && m.Backend.Query.Get("from") == "" {
		c.add(Problem, []string{"mount", m.Prefix}, "a directory must be mounted at a prefix ending in /")
	}
	if fi.Mode().Perm()&0o002 != 0 {
		c.add(Problem, path, "%s is world-writable: anyone on this host could add a script", p)
	}
	if c.cfg.Root == "" {
		return
	}
	root, err1 := filepath.EvalSymlinks(c.cfg.Root)
	dir, err2 := filepath.EvalSymlinks(p)
	if err1 == nil && err2 == nil && (dir == root || strings.HasPrefix(dir, root+string(filepath.Separator))) {
		c.add(Warning, path, "%s is inside the document root %s: a path no mount covers would serve its scripts' source as static files", p, c.cfg.Root)
	}
}

// executable checks that p is a regular file this process may run.
func (c *checker) executable(path []string, p, what string) {
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		c.add(Problem, path, "%s %s does not exist%s", what, p, because(err))
	case !fi.Mode().IsRegular():
		c.add(Problem, path, "%s %s is not a regular file", what, p)
	case fi.Mode().Perm()&0o111 == 0 || syscall.Access(p, 0x1) != nil: // X_OK
		c.add(Problem, path, "%s %s is not executable", what, p)
	case fi.Mode().Perm()&0o002 != 0:
		c.add(Problem, path, "%s %s is world-writable: anyone on this host could change what runs", what, p)
	}
}

// connect reaches the application at a: a FastCGI GET_VALUES exchange,
// else a connect.
func (c *checker) connect(path []string, a Address) {
	timeout := c.opts.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	addr := a.Host
	if a.Network() == "unix" {
		addr = a.Path
	}
	if a.Protocol() == "fastcgi" {
		cl := &fastcgi.Client{Network: a.Network(), Address: addr, DialTimeout: timeout}
		vals, err := cl.GetValues(ctx, "FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS")
		if errors.Is(err, fastcgi.ErrNoGetValues) {
			// A valid answer (FastCGI 1.0 § 4.2): the application is up,
			// and says nothing of its limits.
			c.add(Note, path, "%s answers FCGI_GET_VALUES with FCGI_UNKNOWN_TYPE: it gives no limits, so ferry opens a connection per request in progress", a)
			return
		}
		if err != nil {
			c.add(Problem, path, "%s does not answer FCGI_GET_VALUES: %v", a, err)
			return
		}
		var got []string
		for _, k := range []string{"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"} {
			if v, ok := vals[k]; ok {
				got = append(got, k+"="+v)
			}
		}
		if len(got) == 0 {
			got = []string{"none of FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS"}
		}
		c.add(Note, path, "%s answers FCGI_GET_VALUES: %s", a, strings.Join(got, " "))
		return
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, a.Network(), addr)
	if err != nil {
		c.add(Problem, path, "cannot connect to %s%s", a, because(errors.Unwrap(err)))
		return
	}
	conn.Close()
	c.add(Note, path, "%s accepts connections", a)
}
