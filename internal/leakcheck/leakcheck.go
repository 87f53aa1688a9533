// Package leakcheck checks that a test leaves no goroutines, file
// descriptors or child processes behind.
package leakcheck

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/procfs"
)

// Snapshot is a count of what a process holds.
type Snapshot struct {
	Goroutines int
	FDs        int
	Children   []int // pids whose parent is this process
}

// startPoller makes the runtime open its network poller now: it opens
// two descriptors (an epoll instance and an eventfd) at the process's
// first network use and keeps them, which a test that is the first to use
// the network would otherwise count as its leak. (go test's own harness
// has opened them before the first test; a test binary run by hand has
// not.)
func startPoller() {
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
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
	startPoller()
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
	var out []string
	procfs.Each(func(p procfs.Process) {
		if p.PID == os.Getpid() {
			return
		}
		dir := "/proc/" + strconv.Itoa(p.PID)
		fds, _ := os.ReadDir(dir + "/fd")
		for _, fd := range fds {
			if t, _ := os.Readlink(dir + "/fd/" + fd.Name()); t == target {
				comm, _ := os.ReadFile(dir + "/comm")
				out = append(out, strconv.Itoa(p.PID)+" "+strings.TrimSpace(string(comm)))
				return
			}
		}
	})
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
// is ppid, from /proc, but for the guards of a spawn.Pool's workers: a
// guard lives and dies with its worker's process group, and its pool's
// Stop returns once every guard is reaped.
func Children(ppid int) []int {
	var pids []int
	procfs.Each(func(p procfs.Process) {
		if p.PPID == ppid && !procfs.IsWorkerGuard(p.PID) {
			pids = append(pids, p.PID)
		}
	})
	return pids
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	p, ok := procfs.Stat(pid)
	return ok && p.State != 'Z'
}
