// Package procfs reads the process table from Linux's /proc: for ferry to
// find what a script left running, and for tests to check that nothing is.
// Without /proc (other systems) it finds no process.
package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Process is a process as its /proc/PID/stat file shows it.
type Process struct {
	PID   int
	State byte // 'R', 'S', 'D', 'T', 'Z' (a zombie: exited, not yet reaped)...
	PPID  int
	PGID  int
	Start uint64 // when it started, in clock ticks after boot
}

// Each calls fn for every process in /proc.
func Each(fn func(Process)) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := Stat(pid); ok {
			fn(p)
		}
	}
}

// Stat reads process pid's stat file; ok is false if there is no such
// process.
func Stat(pid int) (p Process, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Process{}, false
	}
	// "pid (comm) state ppid pgrp ...": comm may hold spaces and
	// parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Process{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return Process{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	start, err3 := strconv.ParseUint(f[19], 10, 64) // proc(5): field 22, starttime
	if err1 != nil || err2 != nil || err3 != nil {
		return Process{}, false
	}
	return Process{PID: pid, State: f[0][0], PPID: ppid, PGID: pgid, Start: start}, true
}

// GroupMembers returns the pids of the live (not zombie) processes in
// process group pgid.
func GroupMembers(pgid int) []int {
	var pids []int
	Each(func(p Process) {
		if p.PGID == pgid && p.State != 'Z' {
			pids = append(pids, p.PID)
		}
	})
	return pids
}

// StatusKiB returns the field name of process pid's /proc/PID/status, a
// size such as VmRSS or VmHWM ("VmRSS:  1234 kB"), in KiB. ok is false,
// with no error, when the process has no such field: a zombie has no
// memory fields. err is set when the file cannot be read (no such
// process) or the field is malformed.
func StatusKiB(pid int, name string) (kib int64, ok bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false, err
	}
	for line := range strings.Lines(string(b)) {
		v, found := strings.CutPrefix(line, name+":")
		if !found {
			continue
		}
		num, unit := strings.CutSuffix(strings.TrimSpace(v), " kB")
		kib, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if !unit || err != nil {
			return 0, false, fmt.Errorf("procfs: process %d: malformed %s line %q", pid, name, strings.TrimSpace(line))
		}
		return kib, true, nil
	}
	return 0, false, nil
}

// WorkerGuardName is the $0 of a spawn.Pool worker's guard, the /bin/sh
// that kills its worker's process group once ferry is gone: the last word
// of its command line.
const WorkerGuardName = "ferry-worker-guard"

// IsWorkerGuard reports whether process pid is a spawn.Pool worker's
// guard: neither a worker nor a leak, and not work a benchmark measures.
func IsWorkerGuard(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.HasSuffix(string(b), "\x00"+WorkerGuardName+"\x00")
}
