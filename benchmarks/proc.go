package benchmarks

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/internal/procfs"
)

// cpuUsage is CPU time from getrusage: this process's own, and that of its
// children that have exited and been reaped (per-request CGI scripts run by
// an in-process gateway).
type cpuUsage struct {
	Self     time.Duration
	Children time.Duration
}

// Sub returns u - o.
func (u cpuUsage) Sub(o cpuUsage) cpuUsage {
	return cpuUsage{Self: u.Self - o.Self, Children: u.Children - o.Children}
}

// selfUsage returns the CPU time (user + system) used so far by this process
// and by its reaped children. It returns zero where getrusage fails.
func selfUsage() cpuUsage {
	var self, kids syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) != nil || syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids) != nil {
		return cpuUsage{}
	}
	return cpuUsage{Self: rusageCPU(&self), Children: rusageCPU(&kids)}
}

func rusageCPU(r *syscall.Rusage) time.Duration {
	return time.Duration(syscall.TimevalToNsec(r.Utime) + syscall.TimevalToNsec(r.Stime))
}

// procStat is what /proc/PID/stat and /proc/PID/status say about a process.
type procStat struct {
	pid, ppid int
	comm      string
	cpu       time.Duration // utime + stime
	childCPU  time.Duration // cutime + cstime: reaped children
	hwmKiB    int64         // VmHWM: peak resident set size
}

// clockTick is the unit of the times in /proc/PID/stat (USER_HZ), 100 on
// every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// readProcStat reads /proc/PID/stat and VmHWM from /proc/PID/status.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, fmt.Errorf("benchmarks: reading process %d: %w", pid, err)
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("benchmarks: process %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15, cutime 16, cstime 17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("benchmarks: process %d: short stat", pid)
	}
	num := func(i int) int64 { n, _ := strconv.ParseInt(f[i-3], 10, 64); return n }
	s := procStat{
		pid:      pid,
		ppid:     int(num(4)),
		comm:     string(b[open+1 : end]),
		cpu:      time.Duration(num(14)+num(15)) * clockTick,
		childCPU: time.Duration(num(16)+num(17)) * clockTick,
	}
	s.hwmKiB, _, _ = procfs.StatusKiB(pid, "VmHWM") // none for a zombie
	return s, nil
}

// vmStatus returns the field name (VmRSS, VmHWM) of /proc/PID/status, in
// KiB.
func vmStatus(pid int, name string) (int64, error) {
	kib, ok, err := procfs.StatusKiB(pid, name)
	switch {
	case err != nil:
		return 0, fmt.Errorf("benchmarks: %w", err)
	case !ok:
		return 0, fmt.Errorf("benchmarks: process %d has no %s", pid, name)
	}
	return kib, nil
}

// allProcs returns every process readable in /proc.
func allProcs() []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readProcStat(pid); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// treeUsage is the CPU time and memory of a set of process trees.
type treeUsage struct {
	// Gateway is the CPU time of the processes named as the gateway
	// (the front: ferry, nginx, Apache).
	Gateway time.Duration
	// Workers is the CPU time of every other process of the trees, plus
	// that of the children the trees' processes have reaped (CGI scripts,
	// exited workers).
	Workers time.Duration
	// Procs is the number of live worker processes.
	Procs int
	// PeakRSSKiB is the largest peak resident set size (VmHWM) of a live
	// worker process; TotalRSSKiB is their sum.
	PeakRSSKiB, TotalRSSKiB int64
}

// Sub returns the CPU time used between o and u; memory and process counts
// are u's. A process that exited between the two, unreaped by a measured
// parent, takes its CPU time with it; a difference that would be negative
// for that reason is 0.
func (u treeUsage) Sub(o treeUsage) treeUsage {
	u.Gateway = max(u.Gateway-o.Gateway, 0)
	u.Workers = max(u.Workers-o.Workers, 0)
	return u
}

// procTrees selects the processes measured for a scenario: the trees rooted at
// Roots, and at every process whose command line holds one of Marks (the
// configuration directory of a peer).
type procTrees struct {
	Roots []int
	Marks []string
	// Gateway reports whether a process is part of the gateway rather than
	// a worker. If nil, the roots are the gateway.
	Gateway func(pid int, comm string) bool
}

// Measure reads the CPU time and memory of the selected processes from /proc.
func (t procTrees) Measure() treeUsage {
	procs := allProcs()
	in := t.members(procs)
	var u treeUsage
	for _, p := range procs {
		if !in[p.pid] {
			continue
		}
		u.Workers += p.childCPU
		if t.isGateway(p) || procfs.IsWorkerGuard(p.pid) {
			// A spawned worker's guard is the gateway's (spawn's guard.go),
			// not a worker: it waits on a pipe, and its CPU time is nil.
			u.Gateway += p.cpu
			continue
		}
		u.Workers += p.cpu
		u.Procs++
		u.PeakRSSKiB = max(u.PeakRSSKiB, p.hwmKiB)
		u.TotalRSSKiB += p.hwmKiB
	}
	return u
}

// gatewayPids returns the live processes of the gateway: ferry's helper,
// or nginx's master and workers.
func (t procTrees) gatewayPids() []int {
	procs := allProcs()
	in := t.members(procs)
	var out []int
	for _, p := range procs {
		if in[p.pid] && t.isGateway(p) {
			out = append(out, p.pid)
		}
	}
	return out
}

// isGateway reports whether p, one of t's processes, is the gateway: as
// t.Gateway says, or else one of the roots.
func (t procTrees) isGateway(p procStat) bool {
	if t.Gateway != nil {
		return t.Gateway(p.pid, p.comm)
	}
	return slices.Contains(t.Roots, p.pid)
}

// members returns the processes of procs that t selects.
func (t procTrees) members(procs []procStat) map[int]bool {
	in := make(map[int]bool)
	for _, r := range t.Roots {
		in[r] = true
	}
	if len(t.Marks) > 0 {
		for _, p := range procs {
			cmd, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid), "cmdline"))
			if err != nil {
				continue
			}
			for _, m := range t.Marks {
				if m != "" && bytes.Contains(cmd, []byte(m)) {
					in[p.pid] = true
				}
			}
		}
	}
	// Add descendants until nothing changes (the pids are not in tree order).
	for changed := true; changed; {
		changed = false
		for _, p := range procs {
			if !in[p.pid] && in[p.ppid] {
				in[p.pid] = true
				changed = true
			}
		}
	}
	return in
}
