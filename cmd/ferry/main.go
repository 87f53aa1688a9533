// Command ferry is a gateway between web servers, clients and applications
// over CGI, FastCGI, SCGI and HTTP.
//
//	ferry serve [flags]     serve (with no flags: the bundled example site)
//	ferry check [flags]     check a configuration without serving it
//	ferry explain [flags] URL  say what serves URL, and with which meta-variables
//	ferry reload [flags]    make the running ferry apply its configuration file again
//	ferry migrate apache|nginx FILE... --out DIR  translate a web server's configuration
//	ferry probe URL [flags] send one request to a backend and time it
//	ferry version           print the version
//
// Run "ferry serve --help" for the flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrygw/ferry"
	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/cgi"
	"github.com/rs/zerolog"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise
// the module version from the build info is used.
var version = ""

func main() {
	// Every duration ferry logs is a field named *_ms, in milliseconds
	// with a fraction: zerolog's default, said here once for all of them.
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = false
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `ferry: one gateway between web servers, clients and applications over
CGI, FastCGI, SCGI and HTTP.

Usage:
  ferry serve [flags]    serve requests (with no flags: the bundled example site
                         on http://127.0.0.1:8080; --config FILE reads ferry.toml)
  ferry check [flags]    check a configuration without serving it (--print writes
                         it out as a file, --connect tries every backend)
  ferry explain [flags] URL
                         say which mount URL reaches and the meta-variables its
                         script or application would get (or why 404/403)
  ferry reload [flags]   make the running ferry (its --pid-file) read its
                         configuration again (SIGHUP), or --upgrade to a new
                         binary (SIGUSR2)
  ferry migrate apache|nginx FILE... --out DIR
                         translate an Apache or nginx configuration's CGI,
                         FastCGI and PHP parts to ferry.toml, with a report
  ferry probe URL [--path P] [--method M] [--data FILE] [--param K=V]...
                         send one request to a backend (fastcgi://, scgi://,
                         cgi:, http://) and print the answer and its timings;
                         exit 0 (2xx, 3xx), 1 (other status), 2 (unreachable)
  ferry bench [TARGET]   benchmark the bundled scenarios, or load one target
                         ("ferry bench --help" for the flags)
  ferry version          print the version
  ferry help [command]   show help

Run "ferry serve --help" for the flags of serve, which check and explain take too.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "explain":
		return explain(args[1:], stdout, stderr)
	case "reload":
		return reload(args[1:], stdout, stderr)
	case "probe":
		return probe(args[1:], stdout, stderr)
	case "bench":
		return bench(args[1:], stdout, stderr)
	case "migrate":
		return migrateCmd(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionLine())
		return 0
	case "help", "--help", "-h":
		if len(args) > 1 {
			switch args[1] {
			case "serve", "check", "explain", "reload", "probe", "bench", "migrate":
				return run([]string{args[1], "--help"}, stdout, stderr)
			}
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "ferry: unknown command %q\n\n%s", args[0], usage)
	return 2
}

const serveUsage = `Usage: ferry serve [flags]

Serve requests on every --listen address, routing them by URL prefix to the
backends given with --mount. With no --mount and no --root, serve the bundled
example site (static pages and a cgi-bin of sh, Perl, Python and PHP scripts).

Addresses:
  listen:   http://HOST:PORT
            https://HOST:PORT?cert=FILE&key=FILE (TLS 1.2+, HTTP/2; the files are read
            again when they change)
            fastcgi://HOST:PORT, fastcgi+unix:///run/ferry.sock?mode=0660&group=www-data
            (ferry as the FastCGI application behind nginx fastcgi_pass or Apache
            mod_proxy_fcgi: with a cgi: mount, an fcgiwrap replacement; owner= and
            group= give the socket to the web server's user)
            scgi://HOST:PORT, scgi+unix:///run/ferry.sock (ferry as the SCGI application
            behind nginx scgi_pass, Apache mod_proxy_scgi, lighttpd mod_scgi)
            fastcgi+fd://N, scgi+fd://N, http+fd://N (a listening socket handed over on
            descriptor N; with no --listen, systemd socket activation's are used (FastCGI,
            or HTTP or SCGI for FileDescriptorName=http or scgi), else one on descriptor 0,
            as spawn-fcgi and mod_fcgid pass it)
            cgi: (ferry is the CGI program a web server runs, and serves that one request,
            as cgi-fcgi does on hosts that allow only CGI; the default when
            GATEWAY_INTERFACE is set)
  backends: cgi:/usr/lib/cgi-bin (a directory, ScriptAlias semantics: the first
            path segment that is an executable file is the script, the rest is
            PATH_INFO), cgi:/path/to/script (one script at the prefix),
            cgi:/usr/lib/cgi-bin?from=script-filename (the script the front web
            server names in SCRIPT_FILENAME, confined to the directory: fcgiwrap's way)
            cgi:/usr/lib/cgi-bin?persist=perl (its Perl scripts kept compiled in
            workers ferry runs, as ModPerl::Registry does; persist=php: its .php
            files in php-cgi workers; &workers=4&max_requests=N&max_rss=512M)
            fastcgi://HOST:PORT, fastcgi+unix:///run/php/php-fpm.sock (a FastCGI
            application such as php-fpm; ?max_conns=N, its worker count, keeps N
            connections and queues the rest in ferry; with --root, a PHP site:
            split at .php, index.php, /index.php as front controller, static files
            served by ferry)
            fastcgi+exec:/usr/bin/php-cgi?workers=4&max_requests=500 (FastCGI workers
            ferry starts, restarts and stops itself, as mod_fcgid does; &min_workers=1
            &idle_timeout=10s scales them on demand, as php-fpm's pm = ondemand)
            scgi://HOST:PORT, scgi+unix:///run/app.sock (an SCGI application such as
            uwsgi --scgi-socket; ?max_conns=N bounds the requests in progress)
            wsgi:/srv/app/app.py?callable=app, wsgi:mysite.wsgi:application?chdir=DIR
            (a Python WSGI application in workers ferry starts and supervises, as
            Gunicorn does; &python=/srv/venv/bin/python3&workers=4&timeout=60s
            &max_requests=N&max_rss=512M), psgi:/srv/app/app.psgi (the same for Perl)
            http://HOST:PORT[/base] (a reverse proxy to an HTTP application, with
            X-Forwarded-For/-Proto/-Host/-Port/-Prefix; ?max_conns=N)
A mount prefix reaches a long-lived application (FastCGI, SCGI, WSGI, PSGI) as SCRIPT_NAME,
with the rest of the path as PATH_INFO.

Examples:
  ferry serve --listen http://127.0.0.1:8080 --mount /cgi-bin/=cgi:/usr/lib/cgi-bin
  ferry serve --root /var/www --mount /cgi-bin/=cgi:/var/www/cgi-bin --env GITWEB_CONFIG=/etc/gitweb.conf
  ferry serve --listen fastcgi+unix:///run/ferry.sock --mount /cgi-bin/=cgi:/usr/lib/cgi-bin
  ferry serve --root /var/www/html --mount '/=fastcgi+unix:///run/php/php8.2-fpm.sock?max_conns=5'

Scripts get the CGI/1.1 meta-variables, the variables of ferry's environment
named by --pass-env (and PATH, LANG, LC_*, TZ, TMPDIR), and --env values. Each
runs in its own process group, in its own directory, and is stopped (SIGTERM,
then SIGKILL) at --cgi-timeout or when the client goes away. SIGTERM or SIGINT
drains in-flight requests for up to --shutdown-timeout, then stops scripts; a
second one stops at once. SIGUSR1 reopens the --access-log file (logrotate).
SIGHUP (ferry reload) reads the --config file again and applies it without
refusing a connection; SIGUSR2 (ferry reload --upgrade) starts the binary
again, hands it the listening sockets, and drains. Under systemd, ferry speaks
Type=notify (READY, RELOADING, STOPPING, WATCHDOG).
`

func serve(args []string, stdout, stderr io.Writer) int {
	// From the start, SIGHUP reloads and SIGUSR2 upgrades (once ferry
	// listens): neither may kill ferry and leave its scripts and workers
	// behind.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	f := newServeFlags()
	cfg, file, code, ok := f.parse("serve", serveUsage, nil, "", args, stdout, stderr)
	if !ok {
		return code
	}
	// One output for the whole process, whose format and level a reload
	// switches: every line ferry writes takes them.
	logs, cfgLog, err := newLogSwitch(stderr, cfg.Log)
	if err != nil {
		fmt.Fprintf(stderr, "ferry serve: %v\n", err)
		return 2
	}
	logger := logs.Logger()
	handover, err := bridge.TakeHandover()
	if err != nil {
		logger.Error().Err(err).Msg("ferry: upgrade")
		return 1
	}
	var d serveDefaults
	if len(cfg.Listen) == 0 {
		if d.listen, err = defaultFronts(handover); err != nil {
			fmt.Fprintf(stderr, "ferry serve: %v\n", err)
			return 2
		}
	}
	if len(cfg.Mounts) == 0 && cfg.Root == "" && *f.config == "" {
		dir, err := os.MkdirTemp("", "ferry-site-*")
		if err == nil {
			defer os.RemoveAll(dir)
			err = os.Chmod(dir, 0o755)
		}
		if err == nil {
			err = ferry.WriteExampleSite(dir)
		}
		if err != nil {
			logger.Error().Err(err).Msg("ferry: cannot set up the example site")
			return 1
		}
		d.site = dir
		logger.Info().Str("root", dir).Msg("ferry: no --mount or --root given; serving the bundled example site")
	}
	d.apply(&cfg)
	cfg.Logger = &cfgLog
	cfg.LogSwitch = logs
	cfg.Stderr = stderr
	cfg.Version = getVersion()

	if err := checkScriptUser(&cgi.Handler{User: cfg.Settings.User, Group: cfg.Settings.Group}, logger); err != nil {
		fmt.Fprintf(stderr, "ferry serve: %v\n", err)
		return 2
	}
	srv, err := bridge.New(cfg)
	if err != nil {
		logErrors(logger, f.locate(file, cfg, err), "ferry: bad configuration")
		return 2
	}
	srv.TakeOver(handover)
	ctx, stop := stopOnSignals(srv, logger)
	defer stop()
	c := newController(srv, logger, handover != nil, func() (bridge.Config, error) {
		next, nextFile, err := f.load()
		if err != nil {
			return next, err
		}
		file = nextFile
		d.apply(&next)
		l, err := configLogger(logs, next.Log)
		if err != nil {
			return next, err
		}
		next.Logger = &l
		next.LogSwitch = logs
		next.Stderr = cfg.Stderr
		next.Version = cfg.Version
		// The scripts' user is checked again, and said again if it changed.
		said := logger
		if next.Settings.User == cfg.Settings.User && next.Settings.Group == cfg.Settings.Group {
			said = zerolog.Nop()
		}
		return next, checkScriptUser(&cgi.Handler{User: next.Settings.User, Group: next.Settings.Group}, said)
	})
	// A reload that fails says where its mistakes are, as a start does;
	// c.reload calls this after load, on the same goroutine.
	c.locate = func(next bridge.Config, err error) error { return f.locate(file, next, err) }
	go c.run(ctx, sigs, *f.config)
	defer reopenOnSIGUSR1(srv, &logger)()
	err = srv.Run(ctx, c.ready)
	c.stopped()
	if err != nil {
		if !c.listened() {
			err = f.locate(file, cfg, err) // a front that did not open
		}
		logErrors(logger, err, "ferry: stopped with an error")
		return 1
	}
	return 0
}

// logErrors logs err, a line per error it joins, with msg.
func logErrors(logger zerolog.Logger, err error, msg string) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		logger.Error().Err(e).Msg(msg)
	}
}

// serveDefaults are what serve adds to a configuration that lacks them,
// decided once at start, so that a reload adds the same.
type serveDefaults struct {
	listen []bridge.Address // for a configuration with no front
	site   string           // the bundled example site, for one with no mount and no root
}

func (d serveDefaults) apply(cfg *bridge.Config) {
	if len(cfg.Listen) == 0 {
		cfg.Listen = d.listen
	}
	if d.site != "" && len(cfg.Mounts) == 0 && cfg.Root == "" {
		cfg.Root = d.site
		m, _ := bridge.ParseMount("/cgi-bin/=cgi:" + d.site + "/cgi-bin")
		cfg.Mounts = []bridge.Mount{m}
	}
}

// defaultFronts returns the fronts of a configuration that names none:
// those the ferry this one replaces handed over, else those systemd socket
// activation passed, else the listening socket on descriptor 0, else the
// CGI request of this process; nil means http://127.0.0.1:8080.
func defaultFronts(h *bridge.Handover) ([]bridge.Address, error) {
	if addrs := h.Addresses(); len(addrs) > 0 {
		return addrs, nil
	}
	var fronts []string
	if fds := systemdListeners(); len(fds) > 0 {
		// Socket activation: systemd passed the listening sockets.
		fronts = fds
	} else if stdinIsListener() {
		// Spawned by spawn-fcgi, mod_fcgid or lighttpd: the FastCGI
		// listening socket is descriptor 0 (FCGI_LISTENSOCK_FILENO).
		fronts = []string{"fastcgi+fd://0"}
	} else if strings.HasPrefix(os.Getenv("GATEWAY_INTERFACE"), "CGI/") {
		// Run by a web server as a CGI program: serve its request.
		fronts = []string{"cgi:"}
	}
	var addrs []bridge.Address
	for _, l := range fronts {
		a, err := bridge.ParseAddress(l)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// stopOnSignals returns a context that ends on the first SIGTERM or
// SIGINT, which starts the drain; a second one ends the drain at once
// (srv.StopNow), as an operator who does not want to wait asks. The
// returned function stops listening for them.
func stopOnSignals(srv *bridge.Server, logger zerolog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			logger.Info().Str("signal", sig.String()).Msg("ferry: signal received; draining (send it again to stop at once)")
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			logger.Warn().Str("signal", sig.String()).Msg("ferry: second signal")
			srv.StopNow()
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// checkScriptUser checks the user and group scripts run as, and says once
// which that is when ferry runs as root.
func checkScriptUser(h *cgi.Handler, logger zerolog.Logger) error {
	cred, err := h.Credential()
	if err != nil {
		return fmt.Errorf("--cgi-user %q --cgi-group %q: %w", h.User, h.Group, err)
	}
	if os.Geteuid() != 0 {
		return nil
	}
	switch {
	case cred == nil || cred.Uid == 0:
		logger.Warn().Msg("ferry: CGI scripts run as root (--cgi-user root)")
	case h.User == "":
		logger.Info().Str("user", cgi.DefaultUser()).Uint32("uid", cred.Uid).Uint32("gid", cred.Gid).
			Msg("ferry: running as root; CGI scripts run as " + cgi.DefaultUser() + " (--cgi-user to choose, --cgi-user root to keep root)")
	default:
		logger.Info().Str("user", h.User).Uint32("uid", cred.Uid).Uint32("gid", cred.Gid).Msg("ferry: CGI scripts run as " + h.User)
	}
	return nil
}

// systemdListeners returns the fronts systemd socket activation passed
// (LISTEN_PID, LISTEN_FDS, descriptors 3 and up): FastCGI, as fcgiwrap.socket
// units use them, unless the socket unit names the descriptor "http" or
// "scgi" (FileDescriptorName=, in LISTEN_FDNAMES). It returns nil when the
// variables are not for this process.
func systemdListeners() []string {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	var fronts []string
	for i := 0; i < n; i++ {
		scheme := "fastcgi+fd"
		if i < len(names) && (names[i] == "http" || names[i] == "scgi") {
			scheme = names[i] + "+fd"
		}
		fronts = append(fronts, scheme+"://"+strconv.Itoa(3+i))
	}
	// The scripts and workers ferry starts must not take these as theirs.
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	return fronts
}

// stdinIsListener reports whether descriptor 0 is a listening socket.
func stdinIsListener() bool {
	v, err := syscall.GetsockoptInt(0, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	return err == nil && v == 1
}

// newLogSwitch builds the process log's output on w: JSON lines, or a
// console format for people when format is "console", or "auto" and w is
// a terminal; and the logger of the configuration whose [log] is c.
func newLogSwitch(w io.Writer, c bridge.LogConfig) (*bridge.LogSwitch, zerolog.Logger, error) {
	if err := checkLog(c); err != nil {
		return nil, zerolog.Logger{}, err
	}
	sw, err := bridge.NewLogSwitch(w, c)
	if err != nil {
		return nil, zerolog.Logger{}, err
	}
	l, err := sw.ConfigLogger(c)
	return sw, l, err
}

// configLogger returns the logger of the configuration whose [log] is c,
// on the process log's output sw.
func configLogger(sw *bridge.LogSwitch, c bridge.LogConfig) (zerolog.Logger, error) {
	if err := checkLog(c); err != nil {
		return zerolog.Logger{}, err
	}
	return sw.ConfigLogger(c)
}

// checkLog checks the logging flags' values.
func checkLog(c bridge.LogConfig) error {
	if _, err := zerolog.ParseLevel(c.Level); err != nil || c.Level == "" {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.Level)
	}
	switch c.Format {
	case "auto", "console", "json":
	default:
		return fmt.Errorf("--log-format %q: want json, console or auto", c.Format)
	}
	return nil
}

// reopenOnSIGUSR1 reopens the access log file on each SIGUSR1, as
// logrotate's postrotate asks (kill -USR1, as for nginx), until the
// function it returns is called.
func reopenOnSIGUSR1(srv *bridge.Server, log *zerolog.Logger) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sigs:
				file := srv.AccessLogFile()
				switch err := srv.ReopenLogs(); {
				case err != nil:
					log.Error().Err(err).Msg("ferry: reopening the access log")
				case file == "":
					log.Info().Msg("ferry: no access log file to reopen (SIGUSR1); access lines, if on, go to standard error")
				default:
					log.Info().Str("file", file).Msg("ferry: access log reopened")
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}
