// Package leakcheck checks that a test leaves no goroutines, file
// descriptors or child processes behind.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Snapshot is a count of what a process holds.
type Snapshot struct {
	Goroutines int
	FDs        int
	Children   []int // pids whose parent is this process
}

// Take counts goroutines, open file descriptors and child processes now.
func Take() Snapshot {
	return Snapshot{Goroutines: runtime.NumGoroutine(), FDs: countFDs(), Children: Children(os.Getpid())}
}

// Check takes a snapshot, and at cleanup fails tb if goroutines, descriptors
// or child processes grew and did not settle back within a few seconds.
// Call it at the top of a test, before starting what it checks.
func Check(tb testing.TB) {
	tb.Helper()
	before := Take()
	tb.Cleanup(func() {
		if tb.Failed() {
			return
		}
		var now Snapshot
		deadline := time.Now().Add(5 * time.Second)
		for {
			now = Take()
			if now.Goroutines <= before.Goroutines && now.FDs <= before.FDs && len(now.Children) <= len(before.Children) {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		msg := fmt.Sprintf("leak: goroutines %d -> %d, fds %d -> %d, children %v -> %v",
			before.Goroutines, now.Goroutines, before.FDs, now.FDs, before.Children, now.Children)
		if now.FDs > before.FDs {
			msg += "\nopen descriptors now: " + strings.Join(fdTargets(), ", ")
		}
		if now.Goroutines > before.Goroutines {
			buf := make([]byte, 1<<20)
			msg += "\n" + string(buf[:runtime.Stack(buf, true)])
		}
		tb.Error(msg)
	})
}

// fdTargets names this process's open descriptors: "3 socket:[1234]",
// and for a pipe or socket the other processes that hold it too.
func fdTargets() []string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if strings.HasPrefix(target, "pipe:") || strings.HasPrefix(target, "socket:") {
			if holders := holdersOf(target); len(holders) > 0 {
				target += " (also held by " + strings.Join(holders, ", ") + ")"
			}
		}
		out = append(out, e.Name()+" "+target)
	}
	return out
}

// holdersOf names the other processes with a descriptor on target, such
// as "pipe:[1234]": "4242 sleep".
func holdersOf(target string) []string {
	self := strconv.Itoa(os.Getpid())
	procs, _ := os.ReadDir("/proc")
	var out []string
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil || p.Name() == self {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + p.Name() + "/fd")
		for _, fd := range fds {
			if t, _ := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); t == target {
				comm, _ := os.ReadFile("/proc/" + p.Name() + "/comm")
				out = append(out, p.Name()+" "+strings.TrimSpace(string(comm)))
				break
			}
		}
	}
	return out
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// Children returns the pids of the live (or zombie) processes whose parent
// is ppid, from /proc.
func Children(ppid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := parent(pid); ok && p == ppid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// parent returns the parent pid of pid from /proc/PID/stat.
func parent(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	p, err := strconv.Atoi(f[1])
	return p, err == nil
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z'
}
