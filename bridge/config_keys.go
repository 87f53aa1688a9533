package bridge

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrygw/ferry/cgi"
)

// Key is one key of ferry's configuration, declared once: the file loader,
// the flags of ferry serve, ferry check --print, the help text and the
// README's table all read it from [Keys]. The options of a mount's
// backend are declared by its kind instead ([Backends]).
type Key struct {
	Option
	// Table is the table the key belongs to in a configuration file: ""
	// (the top level), "log", or "defaults" for a setting, which a
	// [mount."PREFIX"] table takes too when its kind of back uses it
	// ([Backend].Settings).
	Table string
	// Flag is the ferry serve flag that sets it, or "" when only a file
	// can. Two keys share a flag when one value says both: a Bool key,
	// then a key of any other type, which takes the flag's values that are
	// not true or false and turns the Bool on (access_log and
	// access_log_file: --access-log=false, --access-log FILE).
	Flag string

	cfg func(*Config) any   // the field, for keys outside [defaults]
	st  func(*Settings) any // the field, for settings
}

// Keys returns every key of the configuration, in the order files are
// printed.
func Keys() []Key {
	cfgKey := func(table string, o Option, flag string, field func(*Config) any) Key {
		return Key{Option: o, Table: table, Flag: flag, cfg: field}
	}
	setting := func(o Option, flag string, field func(*Settings) any) Key {
		return Key{Option: o, Table: "defaults", Flag: flag, st: field}
	}
	return []Key{
		cfgKey("", Option{Name: "listen", Type: AddressList, Default: "http://127.0.0.1:8080 (or the sockets systemd, spawn-fcgi or a CGI web server hands over)",
			Doc: "front address to listen on"}, "listen", func(c *Config) any { return &c.Listen }),
		cfgKey("", Option{Name: "client_header_timeout", Type: Timeout, Default: "10s",
			Doc: "longest wait for a request head on every front: HTTP request line and headers (and an https:// front's TLS handshake), FastCGI PARAMS (408), an SCGI header block (0: none)"}, "client-header-timeout", func(c *Config) any { return &c.Fronts.HeaderTimeout }),
		cfgKey("", Option{Name: "client_body_timeout", Type: Timeout, Default: "60s",
			Doc: "longest wait for more of an HTTP request body, as nginx's (logged 408, connection closed; 0: none)"}, "client-body-timeout", func(c *Config) any { return &c.Fronts.BodyTimeout }),
		cfgKey("", Option{Name: "send_timeout", Type: Timeout, Default: "60s",
			Doc: "longest wait for an HTTP client to take more of a response, as nginx's (connection closed; 0: none)"}, "send-timeout", func(c *Config) any { return &c.Fronts.SendTimeout }),
		cfgKey("", Option{Name: "keepalive_timeout", Type: Timeout, Default: "120s",
			Doc: "how long an HTTP client's kept-alive connection may stay idle between requests, as nginx's (connection closed; 0: none)"}, "keepalive-timeout", func(c *Config) any { return &c.Fronts.KeepaliveTimeout }),
		cfgKey("", Option{Name: "max_conns", Type: Count, Default: "0: 10000 per HTTP front, 1024 per FastCGI or SCGI front, at most half the open-file limit",
			Doc: "connections open per front; past it the one waiting longest for a request is closed, or new ones wait"}, "max-conns", func(c *Config) any { return &c.Fronts.MaxConns }),
		cfgKey("", Option{Name: "root", Type: String, Default: "none",
			Doc: "document root: static files for paths no mount covers, and DOCUMENT_ROOT"}, "root", func(c *Config) any { return &c.Root }),
		cfgKey("", Option{Name: "root_symlinks", Type: String, Values: symlinkPolicies(), Default: "owner-match",
			Doc: "which symbolic links under root are followed, as a cgi: mount's symlinks (nginx's disable_symlinks): those that stay inside root or whose owner owns the target, all, or none (403)"}, "root-symlinks", func(c *Config) any { return &c.RootSymlinks }),
		cfgKey("", Option{Name: "admin", Type: AddressType, Default: "none: no admin listener",
			Doc: "admin listener (metrics, status, health): http://HOST:PORT or unix:///path/to.sock"}, "admin", func(c *Config) any { return &c.Admin }),
		cfgKey("", Option{Name: "pid_file", Type: String, Default: "none",
			Doc: "file to write the process ID to while serving, which ferry reload signals"}, "pid-file", func(c *Config) any { return &c.PIDFile }),
		cfgKey("", Option{Name: "cpus", Type: Count, Max: maxCPUs, Default: "0: every CPU the process may use (Go's default, or $GOMAXPROCS)",
			Doc: "CPUs that run ferry's own code at once (Go's GOMAXPROCS), as nginx's worker_processes: 1 where ferry shares a small machine with its backends"}, "cpus", func(c *Config) any { return &c.CPUs }),
		cfgKey("", Option{Name: "shutdown_timeout", Type: Duration, Default: "30s",
			Doc: "how long in-flight requests may take to finish on shutdown"}, "shutdown-timeout", func(c *Config) any { return &c.ShutdownTimeout }),
		cfgKey("log", Option{Name: "format", Type: String, Values: []string{"json", "console", "auto"}, Default: "auto",
			Doc: "log format: json, console, or auto (console on a terminal)"}, "log-format", func(c *Config) any { return &c.Log.Format }),
		cfgKey("log", Option{Name: "level", Type: String, Values: []string{"debug", "info", "warn", "error"}, Default: "info",
			Doc: "log level: debug, info, warn, error"}, "log-level", func(c *Config) any { return &c.Log.Level }),
		cfgKey("log", Option{Name: "access_log", Type: Bool, Default: "true",
			Doc: "log one line per request"}, "access-log", func(c *Config) any { return &c.AccessLog }),
		cfgKey("log", Option{Name: "access_log_file", Type: String, Default: "none: standard error",
			Doc: "the file the access log is appended to; SIGUSR1 reopens it (logrotate)"}, "access-log", func(c *Config) any { return &c.AccessLogFile }),
		cfgKey("log", Option{Name: "access_log_format", Type: String, Values: []string{"auto", "json", "console", "combined"}, Default: "auto",
			Doc: "access log format: json, console, combined (Apache's), or auto (the process log's lines; json in a file)"},
			"access-log-format", func(c *Config) any { return &c.AccessLogFormat }),
		cfgKey("log", Option{Name: "request_id_header", Type: HeaderName, Default: DefaultRequestIDHeader,
			Doc: "header a request's ID comes in (kept if printable and at most 128 bytes, else replaced), goes on to the application in, and is answered in"},
			"request-id-header", func(c *Config) any { return &c.RequestIDHeader }),

		setting(Option{Name: "env", Type: Env, Default: "none",
			Doc: "KEY=VALUE given to every script, worker and application"}, "env", func(s *Settings) any { return &s.Env }),
		setting(Option{Name: "pass_env", Type: List, Default: "PATH, LANG, LC_*, TZ, TMPDIR only",
			Doc: "NAME of a variable of ferry's environment passed to scripts and workers"}, "pass-env", func(s *Settings) any { return &s.PassEnv }),
		setting(Option{Name: "cgi_pass_auth", Type: Bool, Default: "false",
			Doc: "give scripts the Authorization header as HTTP_AUTHORIZATION (withheld by default, as Apache does)"}, "cgi-pass-auth", func(s *Settings) any { return &s.PassAuthorization }),
		setting(Option{Name: "cgi_timeout", Type: Timeout, Default: "60s",
			Doc: "wall-clock limit per script (0 or less: none)"}, "cgi-timeout", func(s *Settings) any { return &s.ScriptTimeout }),
		setting(Option{Name: "cgi_kill_grace", Type: Duration, Default: "3s",
			Doc: "time between SIGTERM and SIGKILL for a script or worker being stopped"}, "cgi-kill-grace", func(s *Settings) any { return &s.KillGrace }),
		setting(Option{Name: "cgi_user", Type: String, Default: "ferry's own user; as root, www-data (else nobody): root must be written out",
			Doc: "user scripts and spawned workers run as, a name or uid (wsgi and psgi workers: ferry's user unless set)"}, "cgi-user", func(s *Settings) any { return &s.User }),
		setting(Option{Name: "cgi_group", Type: String, Default: "the user's primary group",
			Doc: "group scripts and spawned workers run as, a name or gid"}, "cgi-group", func(s *Settings) any { return &s.Group }),
		setting(Option{Name: "cgi_keep_background", Type: Bool, Default: "false",
			Doc: "let processes a script leaves in the background outlive its request"}, "cgi-keep-background", func(s *Settings) any { return &s.KeepBackground }),
		setting(Option{Name: "cgi_rlimit_cpu", Type: Timeout, Default: "0: no limit",
			Doc: "CPU time per script process, whole seconds, as Apache's RLimitCPU"}, "cgi-rlimit-cpu", func(s *Settings) any { return &s.RLimitCPU }),
		setting(Option{Name: "cgi_rlimit_as", Type: Size, Default: "0: no limit",
			Doc: "address space per script process, such as 512M, as Apache's RLimitMEM"}, "cgi-rlimit-as", func(s *Settings) any { return &s.RLimitAS }),
		setting(Option{Name: "cgi_rlimit_nproc", Type: Count, Default: "0: no limit",
			Doc: "processes of the scripts' user, as Apache's RLimitNPROC (root is not bound)"}, "cgi-rlimit-nproc", func(s *Settings) any { return &s.RLimitNProc }),
		setting(Option{Name: "cgi_rlimit_nofile", Type: Count, Default: "0: ferry's own limit",
			Doc: "open files per script process"}, "cgi-rlimit-nofile", func(s *Settings) any { return &s.RLimitNoFile }),
		setting(Option{Name: "cgi_max_output", Type: Size, Default: "0: no limit",
			Doc: "largest response body a script may send; past it the response is cut, visibly"}, "cgi-max-output", func(s *Settings) any { return &s.MaxOutput }),
		setting(Option{Name: "cgi_max_concurrent", Type: Count, Default: "0: 4 per CPU",
			Doc: "scripts running at once per mount (0: 4 per CPU)"}, "cgi-max-concurrent", func(s *Settings) any { return &s.MaxConcurrent }),
		setting(Option{Name: "cgi_max_queue", Type: Count, Default: "1024",
			Doc: "requests waiting for a script slot before 503"}, "cgi-max-queue", func(s *Settings) any { return &s.MaxQueue }),
		setting(Option{Name: "cgi_queue_timeout", Type: Duration, Default: "30s",
			Doc: "longest wait for a script slot, a FastCGI or SCGI connection, or a group's backend, before 503"}, "cgi-queue-timeout", func(s *Settings) any { return &s.QueueTimeout }),
		setting(Option{Name: "max_request_body", Type: Size, Default: "1G",
			Doc: "largest request body, such as 10M or 1G (413 past it)"}, "max-request-body", func(s *Settings) any { return &s.MaxRequestBody }),
		setting(Option{Name: "max_header_line", Type: Size, Default: "16K",
			Doc: "longest header line a script or application may write, such as 16K"}, "max-header-line", func(s *Settings) any { return &s.MaxHeaderLine }),
		setting(Option{Name: "spool_memory", Type: Size, Default: "1M",
			Doc: "memory a chunked request body is spooled in before a temporary file"}, "", func(s *Settings) any { return &s.SpoolMemory }),
		setting(Option{Name: "temp_dir", Type: String, Default: "$TMPDIR or /tmp",
			Doc: "directory for spooled request bodies"}, "", func(s *Settings) any { return &s.TempDir }),
	}
}

// lookupKey returns the key of table named name.
func lookupKey(table, name string) (Key, bool) {
	for _, k := range Keys() {
		if k.Table == table && k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// DefaultSettings returns the settings ferry serve starts from, every
// default spelt out.
func DefaultSettings() Settings {
	return Settings{
		ScriptTimeout:  cgi.DefaultTimeout,
		RLimitCPU:      -1, // none: a Timeout key keeps "0 or less" as -1
		KillGrace:      cgi.DefaultKillGrace,
		MaxQueue:       cgi.DefaultMaxQueue,
		QueueTimeout:   cgi.DefaultQueueTimeout,
		MaxRequestBody: cgi.DefaultMaxRequestBody,
		MaxHeaderLine:  cgi.DefaultMaxHeaderLine,
		SpoolMemory:    cgi.DefaultSpoolMemory,
	}
}

// DefaultConfig returns the configuration ferry serve starts from before
// its file and flags: no fronts or mounts yet, every default spelt out.
func DefaultConfig() Config {
	return Config{
		Settings:        DefaultSettings(),
		Fronts:          FrontLimits{HeaderTimeout: DefaultHeaderTimeout, BodyTimeout: DefaultBodyTimeout, SendTimeout: DefaultSendTimeout, KeepaliveTimeout: DefaultIdleTimeout},
		RootSymlinks:    "owner-match",
		ShutdownTimeout: DefaultShutdownTimeout,
		AccessLog:       true,
		AccessLogFormat: "auto",
		RequestIDHeader: DefaultRequestIDHeader,
		Log:             LogConfig{Format: "auto", Level: "info"},
	}
}

// field returns a pointer to the key's field in c.
func (k Key) field(c *Config) any {
	if k.st != nil {
		return k.st(&c.Settings)
	}
	return k.cfg(c)
}

// Set parses vals, the key's value spelt as its flag takes it (one value,
// or one per item of a List, AddressList or Env), and stores it in c. The
// error says what was expected.
func (k Key) Set(c *Config, vals ...string) error {
	return setValue(k.Option, k.field(c), vals)
}

// Get returns the key's value in c spelt as its flag takes it; an unset
// (zero) value is spelt as the default it stands for.
func (k Key) Get(c *Config) []string {
	v := k.field(c)
	if unset(k.Option, v) {
		d := DefaultConfig()
		v = k.field(&d)
	}
	return getValue(k.Option, v)
}

// Set sets one of the mount's own settings ([Mount.Own]) by key, such as
// Set("cgi_timeout", "10s"), checking that the mount's kind of back uses
// it. vals are spelt as the setting's flag takes them.
func (m *Mount) Set(key string, vals ...string) error {
	k, ok := lookupKey("defaults", key)
	if !ok {
		return fmt.Errorf("bridge: mount %s: unknown setting %q", m.Prefix, key)
	}
	kind, ok := backendFor(m.Backend.Scheme)
	if !ok || !slices.Contains(kind.Settings, key) {
		return fmt.Errorf("bridge: mount %s: %s is not used by %s mounts", m.Prefix, key, schemeNames(func(s *scheme) bool { return s.name == m.Backend.Scheme }))
	}
	if err := setValue(k.Option, k.st(&m.Settings), vals); err != nil {
		return fmt.Errorf("bridge: mount %s: %s: %w", m.Prefix, key, err)
	}
	if !slices.Contains(m.Own, key) {
		m.Own = append(m.Own, key)
		sortOwn(m.Own)
	}
	return nil
}

// sortOwn puts the names of a mount's own settings in the order of Keys.
func sortOwn(own []string) {
	keys := Keys()
	slices.SortFunc(own, func(a, b string) int {
		return slices.IndexFunc(keys, func(k Key) bool { return k.Name == a }) - slices.IndexFunc(keys, func(k Key) bool { return k.Name == b })
	})
}

// MountSettings returns the settings mount m runs with: c.Settings, with
// each setting m.Own names taken from m.Settings instead, except env,
// whose variables are added to the global ones (m's value wins for a name
// both give).
func (c *Config) MountSettings(m Mount) Settings {
	st := c.Settings
	for _, name := range m.Own {
		k, ok := lookupKey("defaults", name)
		if !ok {
			continue
		}
		if name == "env" {
			st.Env = mergeEnv(st.Env, m.Settings.Env)
			continue
		}
		dst, src := reflect.ValueOf(k.st(&st)).Elem(), reflect.ValueOf(k.st(&m.Settings)).Elem()
		dst.Set(src)
	}
	return st
}

// mergeEnv returns base with the variables of add, one entry per name
// (the last given wins), sorted by name.
func mergeEnv(base, add []string) []string {
	byName := map[string]string{}
	for _, kv := range slices.Concat(base, add) {
		name, _, _ := strings.Cut(kv, "=")
		byName[name] = kv
	}
	if len(byName) == 0 {
		return nil
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = byName[n]
	}
	return out
}

// unset reports whether v, a key's field, holds no value of its own: zero,
// or for counts, sizes and durations (but timeouts) zero or less, which
// stand for the default.
func unset(o Option, v any) bool {
	switch v := v.(type) {
	case *int:
		return *v <= 0
	case *int64:
		return *v <= 0
	case *time.Duration:
		return *v == 0 || (*v < 0 && o.Type != Timeout)
	case *string:
		return *v == "" && len(o.Values) > 0
	}
	return false
}

// aboveMax is the error of a number over its Option's Max.
type aboveMax int64

func (m aboveMax) Error() string { return fmt.Sprintf("want at most %d", int64(m)) }

// setValue parses vals for o and stores the result in p, a pointer to the
// field.
func setValue(o Option, p any, vals []string) error {
	var v string
	if o.Type != List && o.Type != Env && o.Type != AddressList {
		if len(vals) != 1 {
			return fmt.Errorf("want one value")
		}
		v = vals[0]
		if len(o.Values) > 0 && !slices.Contains(o.Values, v) {
			return fmt.Errorf("want %s", orList(o.Values))
		}
	}
	switch p := p.(type) {
	case *string:
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("want %s without NUL", o.Type)
		}
		if o.Type == HeaderName && !validHeaderName(v) {
			return fmt.Errorf("want %s", o.Type)
		}
		*p = v
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want %s", o.Type)
		}
		*p = b
	case *int:
		n, err := parseNumber(o.Type, v)
		if err != nil {
			return err
		}
		if n > math.MaxInt32 {
			return fmt.Errorf("want at most %s", FormatSize(math.MaxInt32))
		}
		if o.Max > 0 && n > o.Max {
			return aboveMax(o.Max)
		}
		*p = int(n)
	case *int64:
		n, err := parseNumber(o.Type, v)
		if err != nil {
			return err
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return err // time: invalid duration "abc"
		}
		switch {
		case o.Type == Timeout && d <= 0:
			d = -1 // none
		case o.Type != Timeout && d <= 0:
			return fmt.Errorf("want %s, above zero", o.Type)
		}
		*p = d
	case *[]string:
		out := make([]string, 0, len(vals))
		for _, v := range vals {
			name, _, ok := strings.Cut(v, "=")
			switch {
			case o.Type == Env && (!ok || name == "" || strings.ContainsRune(v, 0)):
				return itemError(vals, v, errors.New("want KEY=VALUE"))
			case o.Type == List && (v == "" || strings.ContainsAny(v, "=\x00")):
				return itemError(vals, v, errors.New("want a variable name"))
			}
			out = append(out, v)
		}
		if o.Type == Env {
			out = mergeEnv(nil, out)
		}
		if len(out) == 0 {
			out = nil
		}
		*p = out
	case *Address:
		a, err := parseAdmin(v)
		if err != nil {
			return err
		}
		*p = a
	case *[]Address:
		var out []Address
		for _, v := range vals {
			a, err := parseAddress(v)
			if err == nil {
				err = checkFront(a, len(vals))
			}
			if err != nil {
				return itemError(vals, v, err)
			}
			out = append(out, a)
		}
		*p = out
	default:
		panic(fmt.Sprintf("bridge: key %s has a field of type %T", o.Name, p))
	}
	return nil
}

// itemError is err about the item v of vals, naming v when there are
// several.
func itemError(vals []string, v string, err error) error {
	if len(vals) > 1 {
		return fmt.Errorf("%q: %w", v, err)
	}
	return err
}

// parseNumber parses a Count or a Size.
func parseNumber(t OptionType, v string) (int64, error) {
	if t == Size {
		return ParseSize(v)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want %s", t)
	}
	return n, nil
}

// getValue spells the field p points to as its flag takes it.
func getValue(o Option, p any) []string {
	switch p := p.(type) {
	case *string:
		return []string{*p}
	case *bool:
		return []string{strconv.FormatBool(*p)}
	case *int:
		if o.Type == Size {
			return []string{FormatSize(int64(*p))}
		}
		return []string{strconv.Itoa(*p)}
	case *int64:
		return []string{FormatSize(*p)}
	case *time.Duration:
		if *p < 0 {
			return []string{"0"}
		}
		return []string{FormatDuration(*p)}
	case *[]string:
		if o.Type == Env {
			return mergeEnv(nil, *p)
		}
		return slices.Clone(*p)
	case *Address:
		if p.Scheme == "" {
			return []string{""}
		}
		return []string{p.String()}
	case *[]Address:
		out := make([]string, len(*p))
		for i, a := range *p {
			out[i] = a.String()
		}
		return out
	}
	panic(fmt.Sprintf("bridge: key %s has a field of type %T", o.Name, p))
}

// ParseAdminAddress parses the admin listener's address: http://HOST:PORT,
// or unix:///path/to.sock (with ?mode=0660 for the socket's permissions).
func ParseAdminAddress(s string) (Address, error) {
	a, err := parseAdmin(s)
	if err != nil {
		return Address{}, fmt.Errorf("bridge: admin address %q: %w", s, err)
	}
	return a, nil
}

// parseAdmin is ParseAdminAddress with errors that do not repeat the
// address; "" is no admin listener.
func parseAdmin(s string) (Address, error) {
	if s == "" {
		return Address{}, nil
	}
	a, err := parseAddress(s)
	if err != nil {
		return Address{}, err
	}
	sc := a.scheme()
	if !sc.admin {
		return Address{}, fmt.Errorf("the admin listener takes %s", schemeNames(func(s *scheme) bool { return s.admin }))
	}
	if a.Path != "" && sc.form == formHostPort {
		return Address{}, fmt.Errorf("the admin listener takes no path; its paths are /metrics, /status, /healthz, /readyz")
	}
	if err := checkFrontOptions(a, sc, " (as the admin listener)"); err != nil {
		return Address{}, err
	}
	return a, nil
}

// ParseSize parses a byte count: "1048576", "512K", "10M", "1G" (powers of
// 1024, as nginx's sizes), or "1KiB", "1MiB", "1GiB", and "1KB", "1MB",
// "1GB" (powers of 1000).
func ParseSize(v string) (int64, error) {
	num := strings.TrimRightFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToUpper(strings.TrimSpace(v[len(num):]))
	mult := map[string]int64{"": 1, "B": 1, "K": 1 << 10, "KIB": 1 << 10, "KB": 1e3,
		"M": 1 << 20, "MIB": 1 << 20, "MB": 1e6, "G": 1 << 30, "GIB": 1 << 30, "GB": 1e9}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mult == 0 || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("want %s", Size)
	}
	return n * mult, nil
}

// FormatSize spells a byte count in the largest unit of 1024 that divides
// it: "1G", "16K", "1000".
func FormatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// FormatDuration spells d in the largest unit that divides it: "30s",
// "2m", "1h", else as time.Duration does ("1m30s", "250ms").
func FormatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// orList spells values as "a, b or c".
func orList(values []string) string {
	if len(values) < 2 {
		return strings.Join(values, "")
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

// checkOwn checks that m sets itself only settings its kind k uses.
func checkOwn(k Backend, m Mount) error {
	for _, name := range m.Own {
		if !slices.Contains(k.Settings, name) {
			return fmt.Errorf("%s is not used by %s mounts", name, schemeNames(func(s *scheme) bool { return s.name == m.Backend.Scheme }))
		}
	}
	return nil
}
