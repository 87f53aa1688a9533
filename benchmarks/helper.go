package benchmarks

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	stdcgi "net/http/cgi"
	stdfcgi "net/http/fcgi"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/scgi"
	"github.com/ferrygw/ferry/spawn"
	"github.com/rs/zerolog"
	"github.com/yookoala/gofast"
)

// HelperArg is the first argument of the helper roles the harness runs its
// own program in (see RunHelper): the command that embeds the harness passes
// its arguments from there on to RunHelper.
const HelperArg = "__ferry-bench-helper"

// RunHelper runs the helper role args name (the arguments after HelperArg):
//
//	app-cgi          the Go app as a CGI script (one request)
//	app-fastcgi      the Go app as a FastCGI worker on descriptor 0 (fastcgi.Serve)
//	app-stdfcgi      the same with Go's net/http/fcgi
//	app-scgi         the Go app as an SCGI worker on descriptor 0 (scgi.Serve)
//	front SPEC       an HTTP gateway on 127.0.0.1 described by the JSON SPEC; it
//	                 prints its address on stdout and serves until stdin closes
//
// Gateways run in a process of their own so that the OS accounts their CPU
// time apart from the load generator's.
func RunHelper(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("benchmarks: helper: no role")
	}
	switch args[0] {
	case "app-cgi":
		return cgi.Serve(goApp())
	case "app-fastcgi":
		return fastcgi.Serve(nil, goApp())
	case "app-stdfcgi":
		return stdfcgi.Serve(nil, goApp())
	case "app-scgi":
		return scgi.Serve(nil, goApp())
	case "front":
		if len(args) != 2 {
			return errors.New("benchmarks: helper front: want one JSON argument")
		}
		var spec frontSpec
		if err := json.Unmarshal([]byte(args[1]), &spec); err != nil {
			return fmt.Errorf("benchmarks: helper front: %w", err)
		}
		return runFront(ctx, spec, os.Stdin, os.Stdout)
	}
	return fmt.Errorf("benchmarks: helper: unknown role %q", args[0])
}

// frontSpec describes the gateway a front helper runs.
type frontSpec struct {
	// Kind is "mount" (ferry serve with Mount), "cgi" (ferry's
	// cgi.Handler), "stdcgi" (Go's net/http/cgi),
	// "fastcgi-pool" (a spawn.Pool of Workers processes of Path and
	// fastcgi.NewHandler), "scgi-pool" (a spawn.Pool and scgi.NewHandler),
	// "gofast" (gofast v0.8.0 to Network/Address), "app" (the Go app as a
	// plain HTTP handler) or "scgi-minimal" (minimalSCGI: the least an SCGI
	// server does, its own listener).
	Kind    string   `json:"kind"`
	Path    string   `json:"path,omitempty"`
	Args    []string `json:"args,omitempty"`
	Env     []string `json:"env,omitempty"`
	Workers int      `json:"workers,omitempty"`
	// Network and Address name the FastCGI application of "gofast".
	Network string `json:"network,omitempty"`
	Address string `json:"address,omitempty"`
	// Script is SCRIPT_FILENAME for FastCGI backs (PHP needs it); Root is
	// DOCUMENT_ROOT.
	Script string `json:"script,omitempty"`
	Root   string `json:"root,omitempty"`
	// MaxConcurrent bounds CGI scripts running at once; zero is ferry's
	// default.
	MaxConcurrent int `json:"max_concurrent,omitempty"`
	// Listen is the front's protocol: "" for HTTP, "fastcgi" or "scgi" for
	// ferry's FastCGI or SCGI server (a web server in front of ferry, as in
	// the README's fcgiwrap replacement, or of the Go app).
	Listen string `json:"listen,omitempty"`
	// Mount, for Kind "mount", is a --mount of ferry serve: the helper runs
	// ferry itself (bridge.Server.Run), the workers such a mount starts
	// included (wsgi:, psgi:, cgi:DIR?persist=...), with Root as its
	// --root if set. Empty, ferry serves Root's static files alone.
	Mount string `json:"mount,omitempty"`
	// CPUs, for Kind "mount", is ferry's cpus setting (0: Go's default).
	CPUs int `json:"cpus,omitempty"`
	// MaxConns, for Kind "mount", is ferry's max_conns (0: its default).
	MaxConns int `json:"max_conns,omitempty"`
}

// scheme is the scheme of the front's address: its Listen, or http.
func (s frontSpec) scheme() string { return cmp.Or(s.Listen, "http") }

// handler builds the gateway, and a function that stops what it started.
func (s frontSpec) handler(ctx context.Context) (http.Handler, func(), error) {
	nop := zerolog.Nop()
	fcgiScript := cgi.ResolverFunc(func(*http.Request) (cgi.Script, error) {
		return cgi.Script{Name: "/", Filename: s.Script, Root: s.Root}, nil
	})
	settings := cgi.Settings{Logger: &nop}
	switch s.Kind {
	case "app":
		return goApp(), func() {}, nil
	case "cgi":
		return &cgi.Handler{Path: s.Path, Args: s.Args, Settings: cgi.Settings{Env: s.Env, Logger: &nop}, InheritEnv: []string{"PATH"},
			MaxConcurrent: s.MaxConcurrent}, func() {}, nil
	case "stdcgi":
		return &stdcgi.Handler{Path: s.Path, Args: s.Args, Env: s.Env, Logger: log.New(io.Discard, "", 0)}, func() {}, nil
	case "fastcgi-pool":
		p, stop, err := s.startPool(ctx)
		if err != nil {
			return nil, nil, err
		}
		c := &fastcgi.Client{Network: p.Network(), Address: p.Address(), MaxConns: p.Size(), Logger: &nop}
		return fastcgi.NewHandler(c, fcgiScript, settings), func() { c.CloseIdle(); stop() }, nil
	case "scgi-pool":
		p, stop, err := s.startPool(ctx)
		if err != nil {
			return nil, nil, err
		}
		// As many requests at once as workers, as the FastCGI pool's
		// client has connections.
		c := &scgi.Client{Network: p.Network(), Address: p.Address(), MaxConns: p.Size(), Logger: &nop}
		return scgi.NewHandler(c, nil, settings), stop, nil
	case "gofast":
		factory := gofast.SimpleClientFactory(gofast.SimpleConnFactory(s.Network, s.Address))
		sess := func(client gofast.Client, req *gofast.Request) (*gofast.ResponsePipe, error) {
			req.Params["SCRIPT_FILENAME"] = s.Script
			req.Params["DOCUMENT_ROOT"] = s.Root
			return client.Do(req)
		}
		return gofast.NewHandler(gofast.BasicParamsMap(gofast.MapHeader(sess)), factory), func() {}, nil
	}
	return nil, nil, fmt.Errorf("benchmarks: unknown front kind %q", s.Kind)
}

// startPool starts Workers processes of Path sharing one socket on
// descriptor 0, where FastCGI and SCGI workers alike accept (php-cgi,
// Perl's FCGI and SCGI modules, fastcgi.Serve and scgi.Serve), and returns
// the pool and a function that stops it. Their exits, restarts and stderr
// go to the helper's stderr, which the harness shows when a front fails.
func (s frontSpec) startPool(ctx context.Context) (*spawn.Pool, func(), error) {
	lg := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	p := &spawn.Pool{Path: s.Path, Args: s.Args, Env: s.Env, Workers: s.Workers, Dir: filepath.Dir(s.Path), Logger: &lg}
	if err := p.Start(ctx); err != nil {
		return nil, nil, fmt.Errorf("benchmarks: starting workers %s: %w", s.Path, err)
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Stop(sctx) // the helper exits next; nothing to report to
	}
	return p, stop, nil
}

// runFront serves spec on a loopback port, writes "http://ADDR\n" (or
// "fastcgi://ADDR\n", "scgi://ADDR\n" for a FastCGI or SCGI front) to out
// and serves until in reaches EOF or ctx ends.
func runFront(ctx context.Context, spec frontSpec, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, in) // until the harness closes our stdin or dies
		cancel()
	}()
	if spec.Kind == "mount" {
		return runMount(ctx, spec, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("benchmarks: front: %w", err)
	}
	if spec.Kind == "scgi-minimal" {
		go func() {
			<-ctx.Done()
			l.Close()
		}()
		if _, err := fmt.Fprintf(out, "scgi://%s\n", l.Addr()); err != nil {
			return fmt.Errorf("benchmarks: front: %w", err)
		}
		minimalSCGI(l)
		return nil
	}
	h, stop, err := spec.handler(ctx)
	if err != nil {
		l.Close()
		return err
	}
	defer stop()
	nop := zerolog.Nop()
	var srv interface {
		Serve(net.Listener) error
		Close() error
	}
	switch spec.Listen {
	case "fastcgi":
		srv = &fastcgi.Server{Handler: h, Logger: &nop}
	case "scgi":
		srv = &scgi.Server{Handler: h, Logger: &nop}
	default:
		srv = &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if _, err := fmt.Fprintf(out, "%s://%s\n", spec.scheme(), l.Addr()); err != nil {
		return fmt.Errorf("benchmarks: front: %w", err)
	}
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
		return fmt.Errorf("benchmarks: front: %w", err)
	}
	return nil
}

// runMount runs ferry serve with spec's one mount (or none), root, cpus
// and max_conns on a loopback port (its workers started, and stopped when
// ctx ends), and writes "http://ADDR\n" to out once it listens; for
// spec.Listen "fastcgi" or "scgi", ferry is the application behind a web
// server, and the line is "fastcgi://ADDR\n" or "scgi://ADDR\n".
func runMount(ctx context.Context, spec frontSpec, out io.Writer) error {
	var mounts []bridge.Mount
	if spec.Mount != "" {
		m, err := bridge.ParseMount(spec.Mount)
		if err != nil {
			return err
		}
		mounts = append(mounts, m)
	}
	scheme := spec.scheme()
	listen, err := bridge.ParseAddress(scheme + "://127.0.0.1:0")
	if err != nil {
		return err
	}
	lg := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	srv, err := bridge.New(bridge.Config{Listen: []bridge.Address{listen}, Mounts: mounts, Root: spec.Root, CPUs: spec.CPUs,
		Fronts: bridge.FrontLimits{MaxConns: spec.MaxConns}, Logger: &lg})
	if err != nil {
		return err
	}
	var werr error
	err = srv.Run(ctx, func(ls []net.Listener) {
		_, werr = fmt.Fprintf(out, "%s://%s\n", scheme, ls[0].Addr())
	})
	if werr != nil {
		return fmt.Errorf("benchmarks: front: %w", werr)
	}
	return err
}

// front is a running front helper process.
type front struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	URL   string
	done  chan error
}

// startFront runs self (the harness's own program, with the arguments that
// reach RunHelper after HelperArg) as a front helper for spec.
func startFront(ctx context.Context, self []string, spec frontSpec) (*front, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("benchmarks: %w", err)
	}
	args := append(append(append([]string(nil), self[1:]...), HelperArg, "front"), string(js))
	cmd := exec.Command(self[0], args...)
	errs := &tailBuffer{max: 4 << 10}
	cmd.Stderr = errs // gofast logs every stderr line of the application
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("benchmarks: front: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("benchmarks: front: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("benchmarks: starting front %s: %w", spec.Kind, err)
	}
	f := &front{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
		io.Copy(io.Discard, stdout)
		f.done <- cmd.Wait()
	}()
	select {
	case f.URL = <-line:
	case <-ctx.Done():
	case <-time.After(15 * time.Second):
	}
	if scheme, _, ok := strings.Cut(f.URL, "://"); !ok || !slices.Contains([]string{"http", "fastcgi", "scgi"}, scheme) {
		f.Stop()
		return nil, fmt.Errorf("benchmarks: front %s did not start: %s", spec.Kind, strings.TrimSpace(errs.String()))
	}
	return f, nil
}

// Pid returns the helper's process ID.
func (f *front) Pid() int { return f.cmd.Process.Pid }

// Stop closes the helper's stdin, which makes it stop its workers and exit,
// and kills it if it has not within 10 seconds.
func (f *front) Stop() {
	f.stdin.Close()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		f.cmd.Process.Kill()
		<-f.done
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // guards b
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
