// Package ownertemp makes temporary directories whose names say which
// process owns them, and removes those whose owner is gone: what a ferry
// killed with SIGKILL, or crashed, could not remove itself. A directory is
// named prefix, then its owner's pid and start time (in clock ticks after
// boot, from /proc), then os.MkdirTemp's random part:
// "ferry-spawn-1234-56789-2718281828". The pid and start time together name
// one process: a pid taken again by another process has another start
// time, so the directory of a running process is never taken for a stale
// one.
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

// Mkdir creates a new directory, mode 0700, in dir (os.TempDir() if
// empty), named prefix and this process's pid and start time, and returns
// its path.
func Mkdir(dir, prefix string) (string, error) {
	return os.MkdirTemp(dir, prefix+strconv.Itoa(os.Getpid())+"-"+strconv.FormatUint(startOf(os.Getpid()), 10)+"-")
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
// Mkdir made with prefix for a process that no longer runs, and returns
// their paths. A directory whose owner runs, or may run (this system has
// no /proc, and a process with its pid runs), is kept, and so is
// everything else in dir: names of another form, files, symbolic links.
// The error tells of directories that could not be read or removed (such
// as another user's); the others are removed all the same.
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
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("ownertemp: removing %s, left by process %d: %w", path, pid, err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}

// owner parses name, made by Mkdir with prefix: the pid and start time of
// its owner. ok is false for any other name.
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
// at start, still runs. Without /proc, or for a directory made without it
// (start 0), a live process with that pid counts as the owner.
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
