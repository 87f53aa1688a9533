package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/internal/serving"
	"golang.org/x/sys/unix"
)

// The environment variables of the upgrade handshake ([Server.Upgrade],
// [TakeHandover]).
const (
	// InheritEnv lists the listening sockets handed over, as
	// "ADDRESS=FD,ADDRESS=FD", each address spelled as the front it was
	// opened for: FERRY_INHERIT=http://127.0.0.1:8080=3,fastcgi+unix:///run/ferry.sock=4.
	InheritEnv = "FERRY_INHERIT"
	// InheritAdminEnv names the admin listener's socket handed over, as
	// "ADDRESS=FD": FERRY_INHERIT_ADMIN=http://127.0.0.1:9090=5.
	InheritAdminEnv = "FERRY_INHERIT_ADMIN"
	// ReadyFDEnv names the descriptor of the pipe on which the new process
	// writes "ready\n", once it listens, and which it then closes.
	ReadyFDEnv = "FERRY_READY_FD"
)

// Upgrade replaces this ferry with cmd, normally a new build of its binary
// run with the same arguments, without refusing a connection, as nginx
// does on SIGUSR2. cmd gets every listening socket, as extra descriptors
// named by the environment variables FERRY_INHERIT (the fronts) and
// FERRY_INHERIT_ADMIN (the admin listener), and a pipe named by
// FERRY_READY_FD, on which it says when it listens ([TakeHandover] and
// [Server.TakeOver] are its side). While it starts, this ferry goes on
// serving; once cmd listens (both accept on the same sockets a moment),
// Upgrade returns nil and Run drains and returns: its fronts stop
// accepting, in-flight requests finish, its workers stop, and the socket
// files of unix fronts and the pid file are left to the new process.
//
// If cmd cannot start, exits, or does not say it listens before ctx ends,
// Upgrade returns why, stops cmd (SIGTERM, then SIGKILL), and this ferry
// keeps serving. cmd's ExtraFiles are kept (the sockets come after them);
// a nil Env means this process's environment.
func (s *Server) Upgrade(ctx context.Context, cmd *exec.Cmd) error {
	r := s.run.Load()
	if r == nil {
		return errors.New("bridge: upgrade: the server is not running")
	}
	return r.upgrade(ctx, cmd)
}

func (r *runner) upgrade(ctx context.Context, cmd *exec.Cmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return errors.New("bridge: upgrade: the server is shutting down")
	}
	var files []*os.File
	closeFiles := func() {
		for _, f := range files {
			f.Close()
		}
		files = nil
	}
	defer closeFiles()
	fd := 3 + len(cmd.ExtraFiles)
	var spec, adminSpec []string
	for _, fs := range append(slices.Clip(r.fronts), r.admin) {
		if fs == nil {
			continue // no admin listener
		}
		f, err := listenerFile(fs.l)
		if err != nil {
			return fmt.Errorf("bridge: upgrade: %s: %w", fs.addr, err)
		}
		files = append(files, f)
		if fs == r.admin {
			adminSpec = append(adminSpec, fs.addr.String()+"="+strconv.Itoa(fd))
		} else {
			spec = append(spec, fs.addr.String()+"="+strconv.Itoa(fd))
		}
		fd++
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("bridge: upgrade: %w", err)
	}
	defer pr.Close()
	files = append(files, pw)
	cmd.ExtraFiles = append(cmd.ExtraFiles, files...)
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, InheritEnv+"=") || strings.HasPrefix(kv, InheritAdminEnv+"=") || strings.HasPrefix(kv, ReadyFDEnv+"=")
	})
	env = append(env, InheritEnv+"="+strings.Join(spec, ","), ReadyFDEnv+"="+strconv.Itoa(fd))
	if adminSpec != nil {
		env = append(env, InheritAdminEnv+"="+adminSpec[0])
	}
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("bridge: upgrade: starting %s: %w", cmd.Path, err)
	}
	closeFiles() // the new process has them; the pipe must see EOF if it exits
	pid := cmd.Process.Pid
	r.log.Info().Int("pid", pid).Strs("fronts", spec).Strs("admin", adminSpec).Msg("ferry: upgrade: started the new process; waiting until it listens")

	said := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(pr, 64)) // an error is EOF's early: not ready
		said <- string(b)
	}()
	var why error
	select {
	case msg := <-said:
		if msg == "ready\n" {
			// cmd.Process is left as it is: the new process outlives
			// this one, which never waits for it.
			r.handed = true
			close(r.handedOver)
			r.log.Info().Int("pid", pid).Msg("ferry: upgrade: the new process listens; draining and exiting")
			return nil
		}
		why = errors.New("it closed the ready pipe without saying it listens")
	case <-ctx.Done():
		pr.Close() // ends the read
		why = fmt.Errorf("it did not listen in time: %w", ctx.Err())
	}
	return fmt.Errorf("bridge: upgrade: new process %d: %w", pid, r.abandon(cmd, why))
}

// abandon stops and reaps cmd, a new process that failed to take over,
// and returns why, with its exit status if it has exited already. If it
// is still running, it gets SIGTERM (it stops its workers), then SIGKILL
// after 10 s, in the background.
func (r *runner) abandon(cmd *exec.Cmd, why error) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			err = errors.New("exit status 0")
		}
		return fmt.Errorf("%w (%v)", why, err)
	case <-time.After(2 * time.Second):
	}
	_ = cmd.Process.Signal(syscall.SIGTERM) // it may have exited meanwhile: Wait tells
	r.draining.Add(1)
	go func() {
		defer r.draining.Done()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	return why
}

// listenerFile returns a copy of l's socket descriptor, close-on-exec and
// still non-blocking: given as an exec.Cmd's ExtraFiles, it reaches the
// child, while l's own descriptor stays as it is. (net.TCPListener.File
// would not do: exec asks a File from it for its descriptor with Fd,
// which puts the socket, shared with l, in blocking mode, and l's accept
// would then block a thread and ignore Close.)
func listenerFile(l net.Listener) (*os.File, error) {
	l = socketOf(l) // an https:// front hands over its TCP socket
	sc, ok := l.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no descriptor to hand over", l)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup: %w", derr)
	}
	return os.NewFile(uintptr(nfd), l.Addr().String()), nil
}

// dupListener returns another listener on l's socket, which lives on once
// l is closed.
func dupListener(l net.Listener) (net.Listener, error) {
	f, err := listenerFile(l)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	nl, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	if ul, ok := nl.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // the front's cleanup removes the file
	}
	return nl, nil
}

// Handover is what a ferry being replaced by an upgrade hands over to the
// new process ([Server.Upgrade]): its listening sockets, by the address
// of the front (or admin listener) each was opened for, and the pipe on
// which the new process says it listens. Give it to the new Server with
// [Server.TakeOver].
type Handover struct {
	addrs []Address               // the fronts'
	admin []Address               // the admin listener's, if any
	ls    map[string]net.Listener // by endpoint, until Run takes them
	done  *os.File                // the ready pipe
}

// TakeHandover takes what the ferry this process replaces handed over,
// from the environment variables FERRY_INHERIT, FERRY_INHERIT_ADMIN and
// FERRY_READY_FD, which it unsets: each descriptor becomes a listener at
// once (close-on-exec), so that no program this process starts inherits
// it. It returns nil, and no error, when this process is not an upgrade.
func TakeHandover() (*Handover, error) {
	spec, adminSpec, readyFD := os.Getenv(InheritEnv), os.Getenv(InheritAdminEnv), os.Getenv(ReadyFDEnv)
	if spec == "" && readyFD == "" {
		return nil, nil
	}
	os.Unsetenv(InheritEnv)
	os.Unsetenv(InheritAdminEnv)
	os.Unsetenv(ReadyFDEnv)
	h := &Handover{ls: map[string]net.Listener{}}
	fail := func(err error) (*Handover, error) {
		for _, l := range h.ls {
			l.Close()
		}
		if h.done != nil {
			h.done.Close()
		}
		return nil, fmt.Errorf("bridge: taking over from the replaced ferry: %w", err)
	}
	n, err := strconv.Atoi(readyFD)
	if err != nil || n < 3 {
		return fail(fmt.Errorf("%s=%q: want a descriptor number from 3", ReadyFDEnv, readyFD))
	}
	syscall.CloseOnExec(n)
	h.done = os.NewFile(uintptr(n), "ready")
	for _, v := range []struct {
		name, spec string
		addrs      *[]Address
	}{{InheritEnv, spec, &h.addrs}, {InheritAdminEnv, adminSpec, &h.admin}} {
		for _, item := range strings.Split(v.spec, ",") {
			if item == "" {
				continue
			}
			a, l, err := takeSocket(v.name, item)
			if err != nil {
				return fail(err)
			}
			*v.addrs = append(*v.addrs, a)
			h.ls[endpoint(a)] = l
		}
	}
	return h, nil
}

// takeSocket makes a listener of the socket that item of the variable
// name hands over: "ADDRESS=FD".
func takeSocket(name, item string) (Address, net.Listener, error) {
	i := strings.LastIndexByte(item, '=')
	if i < 0 {
		return Address{}, nil, fmt.Errorf("%s: %q: want ADDRESS=FD", name, item)
	}
	a, err := ParseAddress(item[:i])
	if err != nil {
		return Address{}, nil, err
	}
	fd, err := strconv.Atoi(item[i+1:])
	if err != nil || fd < 3 {
		return Address{}, nil, fmt.Errorf("%s: %q: want ADDRESS=FD with FD from 3", name, item)
	}
	l, err := serving.ListenerFromFD(fd)
	if err != nil {
		return Address{}, nil, fmt.Errorf("%s: %w", a, err)
	}
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // the front's cleanup removes the file
	}
	return a, l, nil
}

// Addresses returns the addresses of the fronts handed over: a
// configuration that names no front listens on these, as it listens on
// the sockets of systemd socket activation.
func (h *Handover) Addresses() []Address {
	if h == nil {
		return nil
	}
	return slices.Clone(h.addrs)
}

// TakeOver makes Run take the sockets h holds for the fronts on the same
// endpoints (host and port, or socket path) instead of opening new ones,
// and tell the replaced ferry once it listens, so that it drains and
// exits. Call it before Run.
func (s *Server) TakeOver(h *Handover) { s.handover = h }

// take returns the socket handed over for a's endpoint, once, or nil.
func (h *Handover) take(a Address) net.Listener {
	if h == nil {
		return nil
	}
	l := h.ls[endpoint(a)]
	delete(h.ls, endpoint(a))
	return l
}

// ready tells the replaced ferry that this one listens, and closes the
// sockets handed over that no front or admin listener took (removing
// their socket files: no configuration names them any more).
func (h *Handover) ready() error {
	if h == nil || h.done == nil {
		return nil
	}
	for _, a := range append(slices.Clip(h.addrs), h.admin...) {
		if l := h.take(a); l != nil {
			l.Close()
			front{addr: a}.cleanup()
		}
	}
	_, err := io.WriteString(h.done, "ready\n")
	if cerr := h.done.Close(); err == nil {
		err = cerr
	}
	h.done = nil
	return err
}
