package spawn

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/ferrygw/ferry/internal/procfs"
)

// guardShell runs a worker's guard.
const guardShell = "/bin/sh"

// guardScript is what a worker's guard runs: it ignores the signals the
// worker's process group gets when the pool stops it or a terminal
// sends them, waits for end of file on its standard input, the read end
// of a pipe whose write end only ferry holds, and then kills its process
// group (kill -s KILL 0), itself included. End of file comes when ferry
// closes the pipe or exits, however it ends: the kernel closes a dead
// process's descriptors, SIGKILL included.
const guardScript = `trap '' HUP INT QUIT TERM ALRM USR1 USR2 PIPE; read -r _; kill -s KILL 0`

// guardName is the guard's $0, what ps shows of it after "/bin/sh -c"
// and the script; procfs.IsWorkerGuard knows guards by it.
const guardName = procfs.WorkerGuardName

// openGuardPipe creates the pipe the workers' guards wait on: ferry keeps
// the write end (close-on-exec, as every descriptor Go opens: no program
// ferry runs inherits it) and never writes to it.
func (p *Pool) openGuardPipe() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("spawn: creating the guards' pipe: %w", err)
	}
	p.mu.Lock()
	p.guardR, p.guardW = r, w
	p.mu.Unlock()
	return nil
}

// startGuard starts the guard of worker pid, in its process group: when
// ferry ends without stopping the pool (SIGKILL, a crash), the worker
// itself dies of its parent-death signal (Linux), but what it started
// (an application's subprocesses, its multiprocessing children) would
// run on under PID 1; the guard kills the group, those processes with
// it. While ferry runs, the pool kills the group once it has reaped the
// worker, the guard with it, and until then the guard keeps the group,
// and so its number, from being taken by another. A process that leaves
// the group (setsid, setpgid: a daemon) is out of its reach. Called
// under p.mu, before the worker can be reaped: its group exists.
func (p *Pool) startGuard(pid int) error {
	if p.guardR == nil {
		return nil
	}
	g := &exec.Cmd{
		Path:  guardShell,
		Args:  []string{guardShell, "-c", guardScript, guardName},
		Env:   []string{}, // none of ferry's
		Stdin: p.guardR,   // Stdout and Stderr: /dev/null
		// Not killed with ferry, unlike the worker: it must outlive
		// ferry to act. It runs as the worker does.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pgid: pid, Credential: p.Credential},
	}
	if err := g.Start(); err != nil {
		return fmt.Errorf("spawn: starting the guard of worker %d: %w", pid, err)
	}
	p.guards.Add(1)
	go func() {
		defer p.guards.Done()
		_ = g.Wait() // once the pool kills the group; its status tells nothing
	}()
	return nil
}

// closeGuards closes the guards' pipe, and waits until every guard is
// reaped; called once no worker runs (their groups were killed, their
// guards with them; any guard left kills itself on the pipe's end).
func (p *Pool) closeGuards() {
	p.mu.Lock()
	r, w := p.guardR, p.guardW
	p.guardR, p.guardW = nil, nil
	p.mu.Unlock()
	if r != nil {
		r.Close()
		w.Close()
	}
	p.guards.Wait()
}
