package ownertemp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/procfs"
)

// TestMain runs the test binary as an owner when OWNERTEMP_TEST_HOLD is
// set (see holdMain).
func TestMain(m *testing.M) {
	if dir := os.Getenv("OWNERTEMP_TEST_HOLD"); dir != "" {
		holdMain(dir)
		return
	}
	os.Exit(m.Run())
}

// holdMain is a process owning a directory: it creates one in dir with
// prefix "ferry-x-" (named for the pid OWNERTEMP_TEST_AS with start time
// 1, if set), starts "sleep 300" if OWNERTEMP_TEST_CHILD is set, prints
// the directory's path and the child's pid, and holds the directory until
// its stdin closes or it is killed.
func holdMain(dir string) {
	var d *Dir
	var err error
	if as := os.Getenv("OWNERTEMP_TEST_AS"); as != "" {
		pid, _ := strconv.Atoi(as)
		d, err = create(dir, "ferry-x-", pid, 1)
	} else {
		d, err = Create(dir, "ferry-x-")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	child := 0
	if os.Getenv("OWNERTEMP_TEST_CHILD") != "" {
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		child = cmd.Process.Pid
	}
	fmt.Printf("%s %d\n", d.Path(), child)
	io.Copy(io.Discard, os.Stdin)
	d.Remove()
}

// holder is a process started by startHolder.
type holder struct {
	cmd   *exec.Cmd
	path  string // the directory it holds
	child int    // the pid of its "sleep", or 0
}

// startHolder starts name with args, a command that runs this test
// binary as holdMain with env, and waits for the directory it holds. ok
// is false, with what the command said, if it ended first.
func startHolder(t *testing.T, env []string, name string, args ...string) (h *holder, ok bool, said string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h = &holder{cmd: cmd}
	t.Cleanup(func() {
		stdin.Close()
		if h.child > 0 {
			syscall.Kill(h.child, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		werr := cmd.Wait()
		return nil, false, fmt.Sprintf("%v, %v: %s", err, werr, stderr.String())
	}
	if _, err := fmt.Sscanf(line, "%s %d", &h.path, &h.child); err != nil {
		t.Fatalf("the holder said %q: %v", line, err)
	}
	return h, true, ""
}

// sweep runs RemoveStale on dir for "ferry-x-" and fails on its error.
func sweep(t *testing.T, dir string) []string {
	t.Helper()
	removed, err := RemoveStale(dir, "ferry-x-")
	if err != nil {
		t.Fatal(err)
	}
	return removed
}

// TestRemoveStaleLockHeld: a directory made by Create is kept while its
// owner runs, though its name names a process that does not (as a ferry
// in another PID namespace looks from this one), and removed once the
// owner is killed with SIGKILL, though a program it started runs on: the
// lock is the owner's alone (close-on-exec). Before, the name alone
// decided, and the live directory was removed.
func TestRemoveStaleLockHeld(t *testing.T) {
	if _, ok := procfs.Stat(os.Getpid()); !ok {
		t.Skip("no /proc here")
	}
	leakcheck.Check(t)
	dir := t.TempDir()
	mine, err := Create(dir, "ferry-x-")
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Remove()
	if _, err := os.Stat(filepath.Join(mine.Path(), lockName)); err != nil {
		t.Errorf("Create made %s without its lock file: %v", mine.Path(), err)
	}
	gone := exec.Command("true") // a process that ran and was reaped: its pid is free
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	h, ok, said := startHolder(t, []string{"OWNERTEMP_TEST_HOLD=" + dir, "OWNERTEMP_TEST_AS=" + strconv.Itoa(gone.Process.Pid), "OWNERTEMP_TEST_CHILD=1"}, os.Args[0])
	if !ok {
		t.Fatalf("the holder ended: %s", said)
	}
	if want := "ferry-x-" + strconv.Itoa(gone.Process.Pid) + "-1-"; !strings.HasPrefix(filepath.Base(h.path), want) {
		t.Fatalf("the holder made %s; want a name beginning %s", h.path, want)
	}
	if removed := sweep(t, dir); len(removed) != 0 {
		t.Errorf("RemoveStale removed %q while their owners run", removed)
	}
	for _, p := range []string{mine.Path(), h.path} {
		if _, err := os.Stat(filepath.Join(p, lockName)); err != nil {
			t.Errorf("%s: %v; want it kept", p, err)
		}
	}
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
	if removed := sweep(t, dir); !slices.Equal(removed, []string{h.path}) {
		t.Errorf("after its owner's SIGKILL, RemoveStale removed %q; want %q", removed, h.path)
	}
	if !leakcheck.Alive(h.child) {
		t.Errorf("the owner's child %d is gone: the test proves nothing of the lock's inheritance", h.child)
	}
	if err := mine.Remove(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left in %s: %v; want nothing (no %s directory either)", dir, ents, newSuffix)
	}
}

// TestRemoveStaleOtherPIDNamespace: a ferry in another PID namespace,
// sharing the temporary directory (a container with the host's /tmp), is
// pid 1 there: its directory's name names the host's init, with another
// start time, and RemoveStale removed the live directory. Now its lock
// keeps it, and once the owner is killed with SIGKILL it goes. The owner
// is this test binary, run by unshare(1) in a new PID namespace with its
// own /proc.
func TestRemoveStaleOtherPIDNamespace(t *testing.T) {
	unshare := peerstest.Need(t, "unshare")["unshare"]
	if _, ok := procfs.Stat(os.Getpid()); !ok {
		t.Skip("no /proc here")
	}
	dir := t.TempDir()
	args := []string{"--pid", "--fork", "--mount-proc", "--kill-child"}
	if os.Geteuid() != 0 {
		args = append([]string{"--user", "--map-root-user"}, args...)
	}
	h, ok, said := startHolder(t, []string{"OWNERTEMP_TEST_HOLD=" + dir}, unshare, append(args, os.Args[0])...)
	if !ok {
		t.Skipf("unshare cannot make a PID namespace here: %s", said)
	}
	if !strings.HasPrefix(filepath.Base(h.path), "ferry-x-1-") {
		t.Fatalf("the owner in its PID namespace made %s; want ferry-x-1-...: pid 1 there", h.path)
	}
	if removed := sweep(t, dir); len(removed) != 0 {
		t.Errorf("RemoveStale removed %q, the directory of a ferry running in another PID namespace", removed)
	}
	if _, err := os.Stat(h.path); err != nil {
		t.Fatalf("%v; want it kept", err)
	}
	// The owner is unshare's child: kill it, as the kernel would kill a
	// container's processes.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", h.cmd.Process.Pid, h.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("unshare's children: %q", b)
	}
	if err := syscall.Kill(owner, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait() // unshare exits once it has reaped its child
	if removed := sweep(t, dir); !slices.Equal(removed, []string{h.path}) {
		t.Errorf("after its owner's SIGKILL, RemoveStale removed %q; want %q", removed, h.path)
	}
}

// TestRemoveStale: of what a temporary directory holds, RemoveStale
// removes only the directories mkdirNoLock named for a process no longer
// running, one that was reaped or one whose pid another process now has
// (another start time); the directories of this process and of another
// running one stay, and so does anything else.
func TestRemoveStale(t *testing.T) {
	self, ok := procfs.Stat(os.Getpid())
	if !ok {
		t.Skip("no /proc here")
	}
	dir := t.TempDir()
	mine, err := mkdirNoLock(dir, "ferry-x-")
	if err != nil {
		t.Fatal(err)
	}
	if want := "ferry-x-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(self.Start, 10) + "-"; filepath.Dir(mine) != dir || len(filepath.Base(mine)) <= len(want) || filepath.Base(mine)[:len(want)] != want {
		t.Fatalf("mkdirNoLock made %s; want %s/%s and a random part", mine, dir, want)
	}
	// A process that ran and was reaped: its pid is free.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skip(err)
	}
	parent, ok := procfs.Stat(os.Getppid())
	if !ok {
		t.Fatal("no /proc entry for the parent")
	}
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "worker.sock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pid := strconv.Itoa(os.Getpid())
	deadDir := mk("ferry-x-" + strconv.Itoa(gone.Process.Pid) + "-1-123")
	reusedDir := mk("ferry-x-" + pid + "-" + strconv.FormatUint(self.Start+1, 10) + "-456")
	parentDir := mk("ferry-x-" + strconv.Itoa(os.Getppid()) + "-" + strconv.FormatUint(parent.Start, 10) + "-789")
	others := []string{
		mk("ferry-y-" + strconv.Itoa(gone.Process.Pid) + "-1-123"), // another prefix
		mk("ferry-x-123456789"), // no owner in the name
		mk("ferry-x-" + strconv.Itoa(gone.Process.Pid) + "-1-12a"),
	}
	file := filepath.Join(dir, "ferry-x-"+strconv.Itoa(gone.Process.Pid)+"-1-1")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveStale(dir, "ferry-x-")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	want := []string{deadDir, reusedDir}
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("RemoveStale removed %q; want %q", removed, want)
	}
	for _, p := range append([]string{mine, parentDir, file}, others...) {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v; want it kept", p, err)
		}
	}
	for _, p := range want {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s: %v; want it removed", p, err)
		}
	}
}

// mkdirNoLock makes a directory as ferry did before Create: named for
// this process, with no lock file, judged by its name alone.
func mkdirNoLock(dir, prefix string) (string, error) {
	return os.MkdirTemp(dir, prefix+strconv.Itoa(os.Getpid())+"-"+strconv.FormatUint(startOf(os.Getpid()), 10)+"-")
}
