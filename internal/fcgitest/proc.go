package fcgitest

// Process inspection through Linux's /proc, for the abort check (is the
// script gone?), lying-lengths (is the server alive?) and params-10mb (how
// much memory does the server hold?).

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/ferrygw/ferry/internal/procfs"
)

// procStat is what the suite reads from /proc/PID/stat.
type procStat struct {
	state byte   // R, S, D, Z, ...
	ppid  int    // parent
	start uint64 // start time in clock ticks since boot: tells a reused PID apart
}

// errNoProcess is returned, wrapped, by readStat for a PID that does not exist.
var errNoProcess = errors.New("no such process")

// readStat reads /proc/PID/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return procStat{}, fmt.Errorf("pid %d: %w", pid, errNoProcess)
	}
	if err != nil {
		return procStat{}, err
	}
	// "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice threads
	// itrealvalue starttime ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("pid %d: malformed /proc stat %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("pid %d: malformed /proc stat %q", pid, b)
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, fmt.Errorf("pid %d: malformed /proc stat %q", pid, b)
	}
	return procStat{state: f[0][0], ppid: ppid, start: start}, nil
}

// procState describes the process pid that started at start: "gone" (no such
// process, or the PID now belongs to another one), "zombie" (exited, not
// reaped by its parent) or "running".
func procState(pid int, start uint64) (string, error) {
	st, err := readStat(pid)
	switch {
	case errors.Is(err, errNoProcess):
		return "gone", nil
	case err != nil:
		return "", err
	case st.start != start:
		return "gone", nil
	case st.state == 'Z':
		return "zombie", nil
	}
	return "running", nil
}

// treeRSS returns the resident memory, in bytes, of pid and all its
// descendants: the workers of a preforking server count, and so do the
// scripts they run.
func treeRSS(pid int) (int64, error) {
	children := map[int][]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(p); err == nil {
			children[st.ppid] = append(children[st.ppid], p)
		}
	}
	total, err := vmRSS(pid)
	if err != nil {
		return 0, err
	}
	seen := map[int]bool{pid: true}
	queue := children[pid]
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		// A process that exited since the listing has no memory left.
		if n, err := vmRSS(p); err == nil {
			total += n
		}
		queue = append(queue, children[p]...)
	}
	return total, nil
}

// vmRSS returns VmRSS of /proc/PID/status in bytes. A zombie has none.
func vmRSS(pid int) (int64, error) {
	kib, _, err := procfs.StatusKiB(pid, "VmRSS")
	return kib << 10, err
}

// kill sends SIGKILL to pid if it is still the process that started at
// start. The suite uses it to stop a script the server failed to stop, so
// that a failing check does not leave a 60 s sleeper behind.
func kill(pid int, start uint64) {
	if s, err := procState(pid, start); err != nil || s != "running" {
		return
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	// Best effort: the script may run as another user, or exit meanwhile.
	_ = p.Kill()
	_ = p.Release()
}

// mib formats a byte count in MiB.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
