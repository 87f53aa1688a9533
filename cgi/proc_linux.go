package cgi

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/ferrygw/ferry/internal/procfs"
)

// sysProcAttr returns how a script starts: in its own process group, with
// the handler's user and groups, and killed (SIGKILL) if ferry dies first.
//
// The parent-death signal follows the OS thread that started the script,
// not the process (go.dev/issue/27505); Go ends a thread only when a
// goroutine locked to it returns without unlocking, which ferry never
// does, so in practice it fires when ferry ends. It reaches the script's
// own process; descendants are stopped through the process group while
// ferry lives.
func (h *Handler) sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: h.cred}
}

// startScript starts cmd with limits in place before the script runs its
// first instruction.
//
// os/exec cannot set resource limits between fork and exec, and setting
// them with prlimit(2) once Start has returned leaves the script running
// unbounded for a moment, long enough for a fork bomb's first children to
// escape RLIMIT_NPROC. So the child is started traced (PTRACE_TRACEME, set
// by os/exec just before execve): the kernel stops it at its first
// instruction after exec, ferry sets the limits with prlimit(2) and
// detaches, and only then does the script run. This needs ptrace, which
// some sandboxes forbid (then starting the script fails, and is logged),
// and ferry itself must not be traced (under strace or a debugger).
//
// prlimit(2) on another user's process needs CAP_SYS_RESOURCE, which root
// often lacks in a container (Docker's default set has it not). Without it
// the kernel lets a caller whose real uid and gid are the target's, so
// when the script runs as another user, the thread doing the work takes
// the script's ids as its real ids for the calls, keeping root as its
// effective and saved ids (and so its capabilities), then takes its own
// back. Credentials are per thread on Linux, and the thread is locked.
func startScript(cmd *exec.Cmd, limits []rlimit) error {
	if len(limits) == 0 {
		return cmd.Start()
	}
	// Every ptrace request must come from the thread that started the
	// child: its tracer.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr.Ptrace = true
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := setLimitsAtExec(cmd.Process.Pid, limits, cmd.SysProcAttr.Credential); err != nil {
		_ = cmd.Process.Kill() // an error: it is gone already
		_ = cmd.Wait()         // reaps it; its status does not matter
		return err
	}
	return nil
}

// setLimitsAtExec waits for the traced child pid, running as cred (nil:
// as ferry), to stop after its exec, sets its limits and lets it run.
func setLimitsAtExec(pid int, limits []rlimit, cred *syscall.Credential) error {
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cgi: waiting for the script to start: %w", err)
		}
		if !ws.Stopped() {
			return errors.New("cgi: script ended before its resource limits were set")
		}
		if ws.StopSignal() == syscall.SIGTRAP {
			break // stopped by its exec
		}
		// A signal came before the exec: pass it on and wait again.
		if err := syscall.PtraceCont(pid, int(ws.StopSignal())); err != nil {
			return fmt.Errorf("cgi: resuming the script: %w", err)
		}
	}
	if err := setLimitsAs(pid, limits, cred); err != nil {
		return err
	}
	if err := syscall.PtraceDetach(pid); err != nil {
		return fmt.Errorf("cgi: letting the script run: %w", err)
	}
	return nil
}

// setLimitsAs sets limits on process pid, running as cred, from this
// (locked) thread: with the script's ids as its real ids when ferry is root
// and the script runs as another user (see startScript).
func setLimitsAs(pid int, limits []rlimit, cred *syscall.Credential) (err error) {
	if cred != nil && syscall.Geteuid() == 0 {
		ruid, rgid := uint32(syscall.Getuid()), uint32(syscall.Getgid())
		// Raw system calls change this thread only; syscall.Setresuid
		// would change every thread of ferry.
		if err := setresid(syscall.SYS_SETRESGID, cred.Gid); err != nil {
			return fmt.Errorf("cgi: taking the script's gid: %w", err)
		}
		defer restoreID(syscall.SYS_SETRESGID, rgid, &err)
		if err := setresid(syscall.SYS_SETRESUID, cred.Uid); err != nil {
			return fmt.Errorf("cgi: taking the script's uid: %w", err)
		}
		defer restoreID(syscall.SYS_SETRESUID, ruid, &err)
	}
	for _, l := range limits {
		if err := prlimit(pid, l); err != nil {
			return fmt.Errorf("cgi: setting %s on the script: %w", l.name, err)
		}
	}
	return nil
}

// setresid sets this thread's real uid or gid (SYS_SETRESUID or
// SYS_SETRESGID), leaving its effective and saved ids.
func setresid(trap uintptr, id uint32) error {
	const unchanged = ^uintptr(0) // -1
	if _, _, e := syscall.RawSyscall(trap, uintptr(id), unchanged, unchanged); e != 0 {
		return e
	}
	return nil
}

// restoreID gives this thread its own real id back. That cannot fail while
// its effective uid is root, which it stays throughout; if it did, the
// thread stays locked to the calling goroutine, and Go ends it with the
// goroutine instead of running anything else on it.
func restoreID(trap uintptr, id uint32, errp *error) {
	if err := setresid(trap, id); err != nil {
		runtime.LockOSThread() // never unlocked
		*errp = errors.Join(*errp, fmt.Errorf("cgi: restoring the thread's ids: %w", err))
	}
}

// prlimit sets limit l on process pid, never above the hard limit it has
// (which only a privileged process could raise).
func prlimit(pid int, l rlimit) error {
	var old syscall.Rlimit
	if _, _, e := syscall.Syscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(l.resource), 0, uintptr(unsafe.Pointer(&old)), 0, 0); e != 0 {
		return e
	}
	lim := syscall.Rlimit{Cur: min(l.cur, old.Max), Max: min(l.max, old.Max)}
	if _, _, e := syscall.Syscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(l.resource), uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// groupMembers returns the pids of the live processes in process group
// pgid.
func groupMembers(pgid int) []int { return procfs.GroupMembers(pgid) }

// pipeHolders returns the pids of the processes other than ferry that have
// the pipe f open for writing, from /proc. Those with only its read end
// (ferry's own end, copied into a child ferry forked for another worker or
// script and not yet closed by its exec) hold nothing open: they are not
// the script's.
func pipeHolders(f *os.File) []int {
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	want := "pipe:[" + strconv.FormatUint(st.Ino, 10) + "]"
	self := os.Getpid()
	var pids []int
	procfs.Each(func(p procfs.Process) {
		if p.PID == self || p.State == 'Z' {
			return
		}
		dir := filepath.Join("/proc", strconv.Itoa(p.PID), "fd")
		ents, err := os.ReadDir(dir)
		if err != nil {
			return // gone, or not ours to look at
		}
		for _, e := range ents {
			if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == want && writable(p.PID, e.Name()) {
				pids = append(pids, p.PID)
				return
			}
		}
	})
	return pids
}

// writable reports whether descriptor fd of process pid is open for
// writing, from the flags in /proc/PID/fdinfo/FD (octal, "flags:\t0100001").
// A descriptor closed since it was listed (its fdinfo is gone) is not.
func writable(pid int, fd string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/fdinfo/" + fd)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, "flags:")
		if !ok {
			continue
		}
		flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
		if err != nil {
			return true
		}
		return flags&syscall.O_ACCMODE != syscall.O_RDONLY
	}
	return true
}
