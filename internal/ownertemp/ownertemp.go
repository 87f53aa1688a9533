// Package ownertemp makes temporary directories whose names say which
// process owns them, and removes those whose owner is gone: what a ferry
// killed with SIGKILL, or crashed, could not remove itself. A directory is
// named prefix, then its owner's pid and start time (in clock ticks after
// boot, from /proc), then os.MkdirTemp's random part:
// "ferry-spawn-1234-56789-2718281828".
//
// A directory made by [Create] holds a lock file whose flock(2) lock its
// owner holds for as long as the directory is its own; the kernel releases
// it when the owner exits, however it ends (SIGKILL too). A process that
// can take the lock knows the owner is gone, even one in another PID
// namespace sharing the temporary directory, where the pid and start time
// in the name mean another process or none: a container's ferry sharing
// the host's /tmp. The lock is opened close-on-exec, so the programs the
// owner starts do not hold it after it ends.
//
// A directory without a lock file (made by an older ferry, or where the
// file system cannot lock)
// is judged by the pid and start time in its name alone: together they
// name one process, since a pid taken again by another process has another
// start time, but only within one PID namespace.
//
// On NFS, Linux emulates flock with POSIX locks, which work across clients
// where the lock manager runs; where a lock cannot be taken at all (ENOLCK),
// Create makes the directory without a lock file, and the sweeper keeps a
// directory whose lock it cannot test.
package ownertemp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ferrygw/ferry/internal/procfs"
)

// lockName is the lock file in a directory made by Create.
const lockName = ".owner.lock"

// newSuffix ends the name of a directory Create is still making: no
// sweeper takes it for one of its form (the random part is digits only)
// until its lock is held and it is renamed without the suffix.
const newSuffix = ".new"

// Dir is a directory made by [Create], held by this process. Keep it for
// as long as the directory is in use: the lock goes with its file, which
// the garbage collector closes once Dir is unreachable.
type Dir struct {
	path string
	lock *os.File // holds LOCK_EX on path/lockName; nil where flock is not supported
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// Remove releases the directory's lock and removes the directory and
// everything in it. Calling it again does nothing.
//
// The lock goes first: NFS keeps a file that is open when it is deleted
// (as .nfsXXXX), which would keep the directory. A sweeper that takes the
// free lock meanwhile removes the directory too, which does no harm.
func (d *Dir) Remove() error {
	if d.path == "" {
		return nil
	}
	if d.lock != nil {
		d.lock.Close() // the lock goes with the descriptor
	}
	err := os.RemoveAll(d.path)
	d.path, d.lock = "", nil
	if err != nil {
		return fmt.Errorf("ownertemp: %w", err)
	}
	return nil
}

// Create creates a new directory, mode 0700, in dir (os.TempDir() if
// empty), named prefix and this process's pid and start time, holding the
// lock that tells [RemoveStale] its owner runs. The directory appears
// under that name only once the lock is held.
func Create(dir, prefix string) (*Dir, error) {
	return create(dir, prefix, os.Getpid(), startOf(os.Getpid()))
}

// create is Create for the owner named pid, started at start.
func create(dir, prefix string, pid int, start uint64) (*Dir, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	pattern := prefix + strconv.Itoa(pid) + "-" + strconv.FormatUint(start, 10) + "-*" + newSuffix
	for attempt := 0; ; attempt++ {
		tmp, err := os.MkdirTemp(dir, pattern)
		if err != nil {
			return nil, fmt.Errorf("ownertemp: %w", err)
		}
		lock, err := lockNew(filepath.Join(tmp, lockName))
		if err != nil {
			os.RemoveAll(tmp) // the error above says what went wrong; a sweeper never takes a .new directory
			return nil, err
		}
		path := strings.TrimSuffix(tmp, newSuffix)
		err = renameNoReplace(tmp, path)
		if err == nil {
			return &Dir{path: path, lock: lock}, nil
		}
		if lock != nil {
			lock.Close()
		}
		os.RemoveAll(tmp) // as above
		if !errors.Is(err, fs.ErrExist) || attempt == 100 {
			return nil, fmt.Errorf("ownertemp: %w", err)
		}
		// The name without the suffix is taken (one chance in billions):
		// another random part.
	}
}

// lockNew creates the lock file name and takes its lock. Where the file
// system cannot lock (ENOLCK: NFS without its lock manager; EOPNOTSUPP,
// ENOSYS), it removes the file and returns nil: the directory is judged by
// its name alone.
func lockNew(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ownertemp: %w", err)
	}
	err = flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
		f.Close()
		if err := os.Remove(name); err != nil {
			return nil, fmt.Errorf("ownertemp: %w", err)
		}
		return nil, nil
	}
	f.Close()
	return nil, fmt.Errorf("ownertemp: locking %s: %w", name, err)
}

// flock applies flock(2) operation how to f, retrying when a signal
// interrupts it.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if ferr = syscall.Flock(int(fd), how); ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// renameChecked renames directory from to to after checking that to does
// not exist, where rename(2) cannot refuse to replace it: rename(2) alone
// replaces an empty directory.
func renameChecked(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
	}
	return os.Rename(from, to)
}

// startOf returns the start time of process pid, or 0 where there is no
// /proc to read it from (then only the pid tells the owner).
func startOf(pid int) uint64 {
	p, ok := procfs.Stat(pid)
	if !ok {
		return 0
	}
	return p.Start
}

// RemoveStale removes the directories in dir (os.TempDir() if empty) that
// Create (or an older ferry) made with prefix for a process that no longer runs, and
// returns their paths. A directory is kept when its owner runs, or may
// run: its name names a running process of this PID namespace (or, without
// /proc, a running pid), or its lock is held, by an owner in any PID
// namespace; everything else in dir is kept too: names of another form,
// directories Create is still making, files, symbolic links. A lock taken
// is released before the directory is removed, as in [Dir.Remove]: no
// owner comes back for a name once its own is gone, since Create never
// takes a name that exists. The error tells of directories that could not
// be tested or removed (such as another user's); the others are removed
// all the same.
func RemoveStale(dir, prefix string) ([]string, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ownertemp: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		pid, start, ok := owner(e.Name(), prefix)
		if !ok || e.Type() != fs.ModeDir || running(pid, start) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		held, err := lockHeld(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("ownertemp: %s, left by process %d: %w", path, pid, err))
			continue
		}
		if held {
			continue // its owner runs, in another PID namespace
		}
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("ownertemp: removing %s, left by process %d: %w", path, pid, err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}

// lockHeld reports whether a process holds the lock of directory path,
// made by Create, by taking it and releasing it. A directory without a
// lock file (an older ferry's) reports false.
func lockHeld(path string) (bool, error) {
	f, err := os.OpenFile(filepath.Join(path, lockName), os.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	switch err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); {
	case err == nil:
		return false, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return true, nil
	default:
		return false, fmt.Errorf("testing its lock: %w", err)
	}
}

// owner parses name, made by Create (or an older ferry) with prefix: the pid and
// start time of its owner. ok is false for any other name.
func owner(name, prefix string) (pid int, start uint64, ok bool) {
	rest, found := strings.CutPrefix(name, prefix)
	if !found {
		return 0, 0, false
	}
	f := strings.Split(rest, "-")
	if len(f) != 3 || f[2] == "" || strings.Trim(f[2], "0123456789") != "" {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return 0, 0, false
	}
	return pid, start, true
}

// running reports whether the process that made a directory, pid started
// at start, still runs in this PID namespace. Without /proc, or for a
// directory made without it (start 0), a live process with that pid
// counts as the owner.
func running(pid int, start uint64) bool {
	if p, ok := procfs.Stat(pid); ok {
		return p.State != 'Z' && (start == 0 || p.Start == start)
	}
	if _, ok := procfs.Stat(os.Getpid()); ok {
		return false // /proc works, and has no such process
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
