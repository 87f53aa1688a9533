package bridge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/scgi"
	"github.com/rs/zerolog"
)

// Floods and slow peers on every front (issue 16, point 6): while each
// flood runs, a normal request is sent every 20 ms on a new connection
// and must be answered (see probeBound and p99Bound; the figures
// measured are logged); memory stays within a bound; and once the
// flood's connections are gone, ferry's goroutines and descriptors come
// back to what they were. Three processes take part: ferry (floodFerry),
// so that what it holds is counted apart from the rest; the flooder
// (startFlooder), which opens, holds and closes the connections of the
// floods of many connections at the lowest CPU priority, as a flood from
// other machines costs ferry's machine nothing but the packets; and the
// test, which sends the normal requests (prober) and, at normal priority,
// the hostile exchanges of TestFloodHostilePeers, whose answers it checks.

// floodHeaderTimeout stands for the 10 s of client_header_timeout: the
// issue's slowloris sends a byte every 10 s, here every half of this.
const floodHeaderTimeout = 2 * time.Second

// front kinds of the flood tests.
const (
	frontHTTP = iota
	frontFastCGI
	frontSCGI
)

var frontNames = [...]string{"http", "fastcgi", "scgi"}

// floodFerryEnv, set to a document root, makes this test binary the ferry
// of the flood tests (TestMain, floodFerryMain).
const floodFerryEnv = "FERRY_TEST_FLOOD_FERRY"

// floodProc is the ferry of the flood tests, running as this test binary
// in a process of its own.
type floodProc struct {
	pid int
	in  io.Writer     // a line asks for a floodSnapshot
	out *bufio.Reader // the answers
}

// floodSnapshot is what the ferry process holds.
type floodSnapshot struct {
	Goroutines, FDs int
	RSS             int64 // KiB
}

// floodFerry starts a ferry process with an HTTP, a FastCGI and an SCGI
// front over a static root holding /a ("A"), and returns their addresses,
// the process, and what it holds once it serves, for settled. The
// process stops at cleanup; its log is shown if t failed.
func floodFerry(t *testing.T) ([3]string, *floodProc, floodSnapshot) {
	t.Helper()
	root := staticRoot(t, "a", "A")
	f := &floodProc{}
	f.pid, f.in, f.out = reexec(t, "ferry", floodFerryEnv+"="+root)
	line, err := f.out.ReadString('\n')
	addrs := strings.Fields(line)
	if err != nil || len(addrs) != 3 {
		t.Fatalf("the ferry process said %q, %v; want three addresses", line, err)
	}
	time.Sleep(100 * time.Millisecond) // every front accepts
	return [3]string(addrs), f, f.snapshot(t)
}

// reexec starts this test binary in a process of its own with env added
// to its environment (which TestMain dispatches on), and returns its pid,
// its stdin and its stdout. The end of its stdin must stop it: at
// cleanup, stdin is closed and the process waited for, 15 s at most; its
// stderr goes to a file, whose end is shown if t failed.
func reexec(t *testing.T, what, env string) (int, io.Writer, *bufio.Reader) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), what+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = logFile
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close() // the end of stdin stops it
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the %s process: %v", what, err)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("the %s process did not stop within 15 s of its stdin closing", what)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("the %s's log (the last 8 KiB):\n%s", what, b[max(0, len(b)-8<<10):])
		}
	})
	return cmd.Process.Pid, in, bufio.NewReader(out)
}

// snapshot asks the ferry process what it holds.
func (f *floodProc) snapshot(t *testing.T) floodSnapshot {
	t.Helper()
	var s floodSnapshot
	if _, err := io.WriteString(f.in, "\n"); err != nil {
		t.Fatalf("asking the ferry process: %v", err)
	}
	line, err := f.out.ReadString('\n')
	if err == nil {
		_, err = fmt.Sscan(line, &s.Goroutines, &s.FDs, &s.RSS)
	}
	if err != nil {
		t.Fatalf("the ferry process answered %q: %v", line, err)
	}
	return s
}

// floodFerryMain is the ferry process of floodFerry: it serves root on an
// HTTP, a FastCGI and an SCGI front, prints their addresses on one line,
// answers each line it reads with the goroutines, descriptors and RSS
// (KiB) it holds, and stops at the end of its input.
func floodFerryMain(root string) int {
	cfg := Config{Root: root, AccessLog: true, ShutdownTimeout: 5 * time.Second}
	for _, l := range []string{"http://127.0.0.1:0", "fastcgi://127.0.0.1:0", "scgi://127.0.0.1:0"} {
		a, err := ParseAddress(l)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cfg.Listen = append(cfg.Listen, a)
	}
	cfg.Fronts.HeaderTimeout = floodHeaderTimeout
	log := zerolog.New(os.Stderr)
	cfg.Logger = &log
	s, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	go func() {
		defer cancel()
		<-ready
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Printf("%d %d %d\n", runtime.NumGoroutine(), leakcheck.Take().FDs, rssKiB(os.Getpid()))
		}
	}()
	err = s.Run(ctx, func(ls []net.Listener) {
		as := make([]string, len(ls))
		for i, l := range ls {
			as[i] = l.Addr().String()
		}
		fmt.Println(strings.Join(as, " "))
		close(ready)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// flooderEnv, set to 1, makes this test binary the flooder of the flood
// tests (TestMain, flooderMain).
const flooderEnv = "FERRY_TEST_FLOODER"

// flooder opens, holds and closes the connections of a flood, in a
// process of its own running at the lowest CPU priority there is
// (lowestPriority): a real flood comes from other machines and costs
// ferry's machine nothing but the packets, and on the test's machine
// ferry and the prober run first, the flooder on the CPU time they leave.
// It serves one flood at a time.
type flooder struct {
	in  io.Writer     // a command a line
	out *bufio.Reader // an answer a line
}

// startFlooder starts a flooder process, which stops at cleanup, and logs
// the priority it runs at.
func startFlooder(t *testing.T) *flooder {
	t.Helper()
	f := &flooder{}
	_, f.in, f.out = reexec(t, "flooder", flooderEnv+"=1")
	prio, err := f.out.ReadString('\n')
	if err != nil {
		t.Fatalf("the flooder: %v", err)
	}
	t.Logf("the flooder runs at %s", strings.TrimSpace(prio))
	return f
}

// ask sends the flooder a command and returns its answer, a number.
func (f *flooder) ask(t *testing.T, cmd ...string) int {
	t.Helper()
	if _, err := io.WriteString(f.in, strings.Join(cmd, " ")+"\n"); err != nil {
		t.Fatalf("the flooder: %v", err)
	}
	line, err := f.out.ReadString('\n')
	n, convErr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || convErr != nil {
		t.Fatalf("the flooder answered %s with %q, %v", cmd[0], line, err)
	}
	return n
}

// dial has the flooder open n connections to addr, each sending first if
// not empty, and returns how many it opened.
func (f *flooder) dial(t *testing.T, addr string, n int, first []byte) int {
	t.Helper()
	return f.ask(t, "dial", addr, strconv.Itoa(n), flooderBytes(first))
}

// send has the flooder write b on each of its connections (10 ms at most
// on each).
func (f *flooder) send(t *testing.T, b []byte) {
	t.Helper()
	f.ask(t, "send", flooderBytes(b))
}

// closedByServer returns how many of the flooder's connections the server
// has closed (closedByServer).
func (f *flooder) closedByServer(t *testing.T) int {
	t.Helper()
	return f.ask(t, "closed")
}

// closeAll has the flooder close its connections.
func (f *flooder) closeAll(t *testing.T) {
	t.Helper()
	f.ask(t, "close")
}

// flooderBytes is b as a word of a flooder command: hex, "-" if empty.
func flooderBytes(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return hex.EncodeToString(b)
}

// flooderUnbytes is the bytes of a word flooderBytes made.
func flooderUnbytes(w string) []byte {
	b, _ := hex.DecodeString(strings.TrimPrefix(w, "-"))
	return b
}

// flooderMain is the flooder process of startFlooder: it takes the lowest
// CPU priority, says which on a line, then answers each command it reads
// with a number on a line, and closes its connections and stops at the
// end of its input. The commands: "dial ADDR N HEX" opens N connections
// to ADDR, each sending HEX ("-": nothing), and answers how many it
// opened; "send HEX" writes HEX on each connection, 10 ms at most on
// each, and answers 0; "closed" answers how many the server has closed;
// "close" closes them all and answers 0.
func flooderMain() int {
	fmt.Println(lowestPriority())
	var conns []net.Conn
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		n := 0
		switch {
		case len(f) == 4 && f[0] == "dial":
			want, _ := strconv.Atoi(f[2])
			opened := dialMany(f[1], want, flooderUnbytes(f[3]))
			conns = append(conns, opened...)
			n = len(opened)
		case len(f) == 2 && f[0] == "send":
			b := flooderUnbytes(f[1])
			for _, c := range conns {
				c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
				c.Write(b)
			}
		case len(f) == 1 && f[0] == "closed":
			n = closedByServer(conns)
		case len(f) == 1 && f[0] == "close":
			closeAll(conns)
			conns = nil
		default:
			fmt.Fprintf(os.Stderr, "flooder: %q: not a command\n", sc.Text())
			return 1
		}
		fmt.Println(n)
	}
	closeAll(conns)
	return 0
}

// probe sends one normal request for /a to a front, on a new connection,
// and checks the answer.
func probe(kind int, addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	switch kind {
	case frontHTTP:
		io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		b, err := io.ReadAll(c)
		if err != nil || !bytes.HasPrefix(b, []byte("HTTP/1.1 200 OK\r\n")) || !bytes.HasSuffix(b, []byte("\r\n\r\nA")) {
			return fmt.Errorf("http: %q, %v", b, err)
		}
	case frontFastCGI:
		var b []byte
		b = fastcgi.AppendBeginRequest(b, 1, fastcgi.RoleResponder, 0)
		var params []byte
		for _, kv := range probeVars {
			k, v, _ := strings.Cut(kv, "=")
			params = fastcgi.AppendPair(params, k, v)
		}
		b = fastcgi.AppendRecord(b, fastcgi.TypeParams, 1, params)
		b = fastcgi.AppendRecord(b, fastcgi.TypeParams, 1, nil)
		b = fastcgi.AppendRecord(b, fastcgi.TypeStdin, 1, nil)
		c.Write(b)
		rd := fastcgi.NewReader(bufio.NewReader(c))
		var out []byte
		for {
			r, err := rd.Next()
			if err != nil {
				return fmt.Errorf("fastcgi: %q, %v", out, err)
			}
			if r.Type == fastcgi.TypeStdout {
				out = append(out, r.Content...)
			}
			if r.Type == fastcgi.TypeEndRequest {
				break
			}
		}
		if !bytes.HasPrefix(out, []byte("Status: 200 OK\r\n")) || !bytes.HasSuffix(out, []byte("\r\n\r\nA")) {
			return fmt.Errorf("fastcgi: %q", out)
		}
	case frontSCGI:
		req, _ := scgi.AppendRequest(nil, append([]string{"CONTENT_LENGTH=0", "SCGI=1"}, probeVars...))
		c.Write(req)
		b, err := io.ReadAll(c)
		if err != nil || !bytes.HasPrefix(b, []byte("Status: 200 OK\r\n")) || !bytes.HasSuffix(b, []byte("\r\n\r\nA")) {
			return fmt.Errorf("scgi: %q, %v", b, err)
		}
	}
	return nil
}

// probeVars are the meta-variables of a probe through a web server.
var probeVars = []string{"REQUEST_METHOD=GET", "REQUEST_URI=/a", "SCRIPT_NAME=", "PATH_INFO=/a", "QUERY_STRING=",
	"SERVER_PROTOCOL=HTTP/1.1", "SERVER_NAME=x", "SERVER_PORT=80", "REMOTE_ADDR=127.0.0.1", "HTTP_HOST=x"}

// prober sends probes to a front until stopped, and keeps their latencies.
type prober struct {
	mu    sync.Mutex
	lat   []time.Duration
	at    []time.Duration // when each probe began, from t0
	t0    time.Time
	held  time.Duration // from t0, when the flood's connections were all open; 0: not marked
	errs  []error
	stop  chan struct{}
	done  chan struct{}
	ended chan struct{} // a token after each probe, for waitHeld
	pid   int           // ferry's process
	peak  atomic.Int64  // the largest RSS of ferry seen, in KiB
	start int64         // ferry's RSS when probing began, in KiB
}

// startProber starts probing the front of kind at addr, served by the
// ferry process f.
func startProber(f *floodProc, kind int, addr string) *prober {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{}), ended: make(chan struct{}, 1), pid: f.pid, start: rssKiB(f.pid), t0: time.Now()}
	p.peak.Store(p.start)
	go func() {
		defer close(p.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			t0 := time.Now()
			err := probe(kind, addr)
			d := time.Since(t0)
			if r := rssKiB(p.pid); r > p.peak.Load() {
				p.peak.Store(r)
			}
			p.mu.Lock()
			p.lat = append(p.lat, d)
			p.at = append(p.at, t0.Sub(p.t0))
			if err != nil {
				p.errs = append(p.errs, err)
			}
			p.mu.Unlock()
			select {
			case p.ended <- struct{}{}:
			default: // a token is there already
			}
		}
	}()
	return p
}

// holding marks the moment the flood's connections are all open, and
// ferry has taken them (drained): the probes that begin after it measure
// ferry holding the flood, those before it ferry taking the flood on (the
// ramp). Marking it says the flood came from the flooder: finish then
// asserts the 99th percentile of all the probes, and of the held phase's.
func (p *prober) holding() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = time.Since(p.t0)
}

// heldProbes is how many probes TestFloodIdle's held phase takes (waitHeld):
// what 2.5 s gave on a quiet machine, a probe each 20 ms. Over 125, a
// 99th percentile is the second slowest; over minHeldProbes, 100, it is
// the slowest.
const heldProbes = 125

// heldProbesLimit is how long waitHeld waits at most.
const heldProbesLimit = time.Minute

// waitHeld waits until heldProbes probes that began after holding have
// ended, or heldProbesLimit passes (finish then reports too few). The
// held phase is as many probes, not a time: on a loaded machine a probe
// waits for the CPU, and fewer fit in a given time (under the race
// detector at a load average of 10 to 15, 99 and 70 in 2.5 s, where
// finish wants minHeldProbes).
func (p *prober) waitHeld() {
	deadline := time.NewTimer(heldProbesLimit)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		n := 0
		for _, at := range p.at {
			if p.held > 0 && at >= p.held {
				n++
			}
		}
		p.mu.Unlock()
		if n >= heldProbes {
			return
		}
		select {
		case <-p.ended:
		case <-deadline.C:
			return
		}
	}
}

// drained waits (up to 10 s) until the listen backlog of the front at
// addr, a 127.0.0.1 address, is empty: ferry has accepted every
// connection the flood opened, and closed those past its max_conns.
func drained(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if listenQueue(addr) <= 0 { // -1: not Linux, the held phase starts when the flooder is done
			return
		}
	}
	t.Errorf("%s: connections still wait in ferry's listen backlog after 10 s", addr)
}

// listenQueue returns the length of the listen backlog of the front at
// addr, a 127.0.0.1 address: the rx_queue of the listening socket in
// /proc/net/tcp; -1 if it is not found. The listening sockets come first
// there, and it reads no further: the rest holds each connection of the
// flood twice, 20,000 lines whose making would take the CPU from ferry.
func listenQueue(addr string) int {
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	local := fmt.Sprintf("0100007F:%04X", n)
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 4 && f[1] == local && f[3] == "0A" { // TCP_LISTEN
			_, rx, _ := strings.Cut(f[4], ":")
			q, _ := strconv.ParseInt(rx, 16, 64)
			return int(q)
		}
	}
	return -1
}

// probeBound is the slowest any probe may be: 1 s, 5 s under the race
// detector, which slows everything down several times. It is a bound for
// single outliers on a shared machine (the CI's has 2 cores, and other
// jobs run on it), and the one bound of the hostile exchanges of
// TestFloodHostilePeers, which the test process sends at ferry's priority
// and too few probes run beside for a percentile.
func probeBound() time.Duration {
	if raceEnabled {
		return 5 * time.Second
	}
	return time.Second
}

// p99Bound is the 99th percentile the probes may reach during a flood
// from the flooder, all of them and those while ferry holds the flood's
// connections (issue 16: "answers a normal request within 100 ms
// throughout"); 500 ms under the race detector.
func p99Bound() time.Duration {
	if raceEnabled {
		return 500 * time.Millisecond
	}
	return 100 * time.Millisecond
}

// minHeldProbes is how many probes the held phase needs. A 99th
// percentile is asserted only over at least this many: over fewer it is
// the slowest probe, which probeBound bounds (a single outlier under the
// race detector, a ramp probe of 586 ms, failed CI so).
const minHeldProbes = 100

// latencies returns the 50th and 99th percentiles and the maximum of lat,
// which it sorts.
func latencies(lat []time.Duration) (p50, p99, worst time.Duration) {
	if len(lat) == 0 {
		return 0, 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
}

// finish stops probing, fails t on an error, a probe slower than
// probeBound, or, if the held phase was marked (the flood came from the
// flooder), fewer than minHeldProbes held, or a 99th percentile over
// p99Bound, of all the probes (once they are minHeldProbes) or of the
// held phase's; and logs the figures: of the ramp and of the held phase if
// it was marked, else of all the probes.
func (p *prober) finish(t *testing.T, what string) {
	t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lat) == 0 {
		t.Fatalf("%s: no probe ran", what)
	}
	slowest := 0
	var ramp, held []time.Duration
	for i, d := range p.lat {
		if d > p.lat[slowest] {
			slowest = i
		}
		if p.held > 0 && p.at[i] >= p.held {
			held = append(held, d)
		} else {
			ramp = append(ramp, d)
		}
	}
	slowAt := p.at[slowest]
	p50, p99, worst := latencies(slices.Clone(p.lat))
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	msg := fmt.Sprintf("%s: %d probes, p50 %v, p99 %v, max %v (at +%v), %d errors; ferry's RSS +%d MiB at the peak",
		what, len(p.lat), r(p50), r(p99), r(worst), slowAt.Round(time.Millisecond), len(p.errs), (p.peak.Load()-p.start)>>10)
	if p.held > 0 {
		r50, r99, rmax := latencies(ramp)
		h50, h99, hmax := latencies(held)
		msg += fmt.Sprintf("; the ramp, to +%v: %d probes, p50 %v, p99 %v, max %v; the flood held: %d probes, p50 %v, p99 %v, max %v",
			p.held.Round(time.Millisecond), len(ramp), r(r50), r(r99), r(rmax), len(held), r(h50), r(h99), r(hmax))
		if len(p.lat) >= minHeldProbes && p99 > p99Bound() {
			t.Errorf("%s: 99th percentile %v over all the probes; want at most %v", what, p99, p99Bound())
		}
		if len(held) < minHeldProbes {
			t.Errorf("%s: %d probes while the flood was held; want at least %d", what, len(held), minHeldProbes)
		} else if h99 > p99Bound() {
			t.Errorf("%s: 99th percentile %v while the flood was held; want at most %v", what, h99, p99Bound())
		}
	}
	t.Log(msg)
	if len(p.errs) > 0 {
		t.Errorf("%s: %d probes failed, first: %v", what, len(p.errs), p.errs[0])
	}
	if worst > probeBound() {
		t.Errorf("%s: a normal request took %v", what, worst)
	}
}

// rssKiB is the resident set of process pid, in KiB.
func rssKiB(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// raiseFDLimit raises this process's open-file limit to n if it can, and
// returns the limit it has.
func raiseFDLimit(n uint64) uint64 {
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	if rl.Cur >= n {
		return rl.Cur
	}
	want := syscall.Rlimit{Cur: n, Max: max(n, rl.Max)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		want = syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
	}
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	return rl.Cur
}

// dialMany opens n connections to addr (fewer if connecting fails), each
// sending first if not empty.
func dialMany(addr string, n int, first []byte) []net.Conn {
	conns := make([]net.Conn, 0, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return
			}
			if len(first) > 0 {
				c.Write(first)
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return conns
}

// closedByServer counts the connections the server has closed: a read
// returns EOF or a reset, not a timeout.
func closedByServer(conns []net.Conn) int {
	// A read whose deadline passes before it runs reports a timeout even
	// with the server's close waiting in the socket: in a starved process
	// (the flooder runs at SCHED_IDLE), so look again at the connections
	// still open, until a look finds no new close.
	open := conns
	closed := 0
	for range 20 {
		var mu sync.Mutex
		var still []net.Conn
		var wg sync.WaitGroup
		for _, c := range open {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				buf := make([]byte, 4096)
				for {
					_, err := c.Read(buf)
					if err == nil {
						continue
					}
					if isTimeout(err) {
						mu.Lock()
						still = append(still, c)
						mu.Unlock()
					}
					return
				}
			}()
		}
		wg.Wait()
		n := len(open) - len(still)
		closed += n
		open = still
		if n == 0 || len(open) == 0 {
			break
		}
	}
	return closed
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// settled waits for the goroutines and descriptors of the ferry process
// f to come back to base.
func settled(t *testing.T, f *floodProc, base floodSnapshot, what string) {
	t.Helper()
	var now floodSnapshot
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if now = f.snapshot(t); now.Goroutines <= base.Goroutines+2 && now.FDs <= base.FDs {
			return
		}
	}
	t.Errorf("%s: goroutines %d -> %d, descriptors %d -> %d: not back after the flood", what, base.Goroutines, now.Goroutines, base.FDs, now.FDs)
}

// slowHead is what a slowloris sends of its request head on each front,
// a byte at a time.
func slowHead(kind int) []byte {
	switch kind {
	case frontHTTP:
		return []byte("GET /a HTTP/1.1\r\nHost: x\r\nX-Slow: 1234567890\r\n")
	case frontFastCGI:
		return fastcgi.AppendBeginRequest(nil, 1, fastcgi.RoleResponder, fastcgi.FlagKeepConn)
	default:
		req, _ := scgi.AppendRequest(nil, append([]string{"CONTENT_LENGTH=0", "SCGI=1"}, probeVars...))
		return req
	}
}

// TestFloodSlowloris: 1000 connections per front send their request head
// a byte every second; each is closed at client_header_timeout (here
// 2 s), and normal requests go on being answered.
func TestFloodSlowloris(t *testing.T) {
	if testing.Short() {
		t.Skip("floods take a while")
	}
	leakcheck.Check(t)
	raiseFDLimit(8192)
	addrs, ferry, base := floodFerry(t)
	fl := startFlooder(t)
	for kind, addr := range addrs {
		what := "slowloris on " + frontNames[kind]
		p := startProber(ferry, kind, addr)
		head := slowHead(kind)
		opened := fl.dial(t, addr, 1000, head[:1])
		drained(t, addr)
		p.holding()
		if opened < 1000 {
			t.Errorf("%s: %d of 1000 connections opened", what, opened)
		}
		start := time.Now()
		for i := 1; time.Since(start) < floodHeaderTimeout+time.Second; i++ {
			time.Sleep(time.Second / 2)
			if i < len(head) {
				fl.send(t, head[i:i+1])
			}
		}
		p.finish(t, what)
		if n := fl.closedByServer(t); n != opened {
			t.Errorf("%s: %d of %d connections closed by ferry after %v; want all (client_header_timeout %v)", what, n, opened, time.Since(start), floodHeaderTimeout)
		}
		fl.closeAll(t)
		settled(t, ferry, base, what)
	}
}

// TestFloodIdle: 10,000 connections per front that send nothing (2,000
// under the race detector, which allows 8128 goroutines), then go away.
// Ferry holds up to its max_conns of them (HTTP 10,000, FastCGI and SCGI
// 1,024) and closes the one waiting longest for each new one past that;
// its RSS grows by at most floodConnKiB a connection it holds.
func TestFloodIdle(t *testing.T) {
	if testing.Short() {
		t.Skip("floods take a while")
	}
	leakcheck.Check(t)
	n := 10000
	if raceEnabled {
		n = 2000
	}
	// Ferry and the flooder, each in its own process, have as many
	// descriptors as the test: ferry's HTTP front holds up to half of them
	// (serving.FDBound).
	lim := raiseFDLimit(uint64(2*n + 1000))
	if n > int(lim)-1000 {
		n = int(lim) - 1000
		t.Logf("open-file limit %d: %d connections", lim, n)
	}
	held := [...]int{min(n, DefaultHTTPMaxConns, int(lim/2)), min(n, 1024, int(lim/2)), min(n, 1024, int(lim/2))}
	addrs, ferry, base := floodFerry(t)
	fl := startFlooder(t)
	for kind, addr := range addrs {
		what := fmt.Sprintf("%d idle connections on %s", n, frontNames[kind])
		before := rssKiB(ferry.pid)
		p := startProber(ferry, kind, addr)
		dialStart := time.Now()
		opened := fl.dial(t, addr, n, nil)
		dialed := time.Since(dialStart)
		drained(t, addr)
		p.holding()
		p.waitHeld() // held: probes go on, heldProbes of them
		peak := rssKiB(ferry.pid)
		p.finish(t, what)
		perConn := float64(peak-before) / float64(held[kind])
		t.Logf("%s: %d connected in %v, ferry holds up to %d; ferry's RSS %d -> %d MiB (%.1f KiB a connection held)",
			what, opened, dialed.Round(time.Millisecond), held[kind], before>>10, peak>>10, perConn)
		if !raceEnabled && perConn > floodConnKiB {
			t.Errorf("%s: ferry's RSS grew %d MiB, over %d KiB a connection held", what, (peak-before)>>10, floodConnKiB)
		}
		fl.closeAll(t)
		settled(t, ferry, base, what)
	}
}

// floodConnKiB bounds what an idle connection costs ferry in RSS, the
// bound the README's limits table states.
const floodConnKiB = 64

// TestFloodHostilePeers: request smuggling attempts on the HTTP front;
// 10,000 request IDs on one FastCGI connection, GET_VALUES with 10,000
// names, half records that stall (from the flooder); SCGI lengths of 20
// digits. Normal requests are answered throughout, and the hostile ones
// are refused.
func TestFloodHostilePeers(t *testing.T) {
	if testing.Short() {
		t.Skip("floods take a while")
	}
	leakcheck.Check(t)
	raiseFDLimit(8192)
	addrs, ferry, base := floodFerry(t)

	t.Run("http smuggling", func(t *testing.T) {
		p := startProber(ferry, frontHTTP, addrs[frontHTTP])
		var refused atomic.Int32
		var wg sync.WaitGroup
		for range 1000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, _ := rawExchange(t, addrs[frontHTTP], "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
				if strings.HasPrefix(out, "HTTP/1.1 400 ") && strings.Count(out, "HTTP/1.1") == 1 {
					refused.Add(1)
				}
			}()
		}
		wg.Wait()
		p.finish(t, "1000 smuggling attempts")
		if refused.Load() != 1000 {
			t.Errorf("%d of 1000 smuggling attempts refused alone", refused.Load())
		}
	})

	t.Run("fastcgi 10k request IDs", func(t *testing.T) {
		p := startProber(ferry, frontFastCGI, addrs[frontFastCGI])
		c, err := net.Dial("tcp", addrs[frontFastCGI])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var params []byte
		for _, kv := range probeVars {
			k, v, _ := strings.Cut(kv, "=")
			params = fastcgi.AppendPair(params, k, v)
		}
		go func() {
			var b []byte
			for id := 1; id <= 10000; id++ {
				b = fastcgi.AppendBeginRequest(b[:0], uint16(id), fastcgi.RoleResponder, fastcgi.FlagKeepConn)
				b = fastcgi.AppendRecord(b, fastcgi.TypeParams, uint16(id), params)
				b = fastcgi.AppendRecord(b, fastcgi.TypeParams, uint16(id), nil)
				b = fastcgi.AppendRecord(b, fastcgi.TypeStdin, uint16(id), nil)
				if _, err := c.Write(b); err != nil {
					return
				}
			}
		}()
		ends := 0
		rd := fastcgi.NewReader(bufio.NewReader(c))
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		for ends < 10000 {
			r, err := rd.Next()
			if err != nil {
				t.Fatalf("after %d END_REQUESTs: %v", ends, err)
			}
			if r.Type == fastcgi.TypeEndRequest {
				ends++
			}
		}
		p.finish(t, "10,000 request IDs on one FastCGI connection")
	})

	t.Run("fastcgi GET_VALUES 10k names", func(t *testing.T) {
		p := startProber(ferry, frontFastCGI, addrs[frontFastCGI])
		// 10,000 names over as many GET_VALUES records as they need.
		var q, b []byte
		for i := range 10000 {
			q = fastcgi.AppendPair(q, "FCGI_MAX_CONNS"+strconv.Itoa(i%3), "")
		}
		records := 0
		for len(q) > 0 {
			n := min(len(q), fastcgi.MaxContent)
			for n < len(q) && n > 0 && !pairsEnd(q[:n]) {
				n-- // a record holds whole pairs
			}
			b = fastcgi.AppendRecord(b, fastcgi.TypeGetValues, 0, q[:n])
			q = q[n:]
			records++
		}
		for range 50 {
			c, err := net.Dial("tcp", addrs[frontFastCGI])
			if err != nil {
				t.Fatal(err)
			}
			c.Write(b)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			rd := fastcgi.NewReader(bufio.NewReader(c))
			for got := 0; got < records; got++ {
				if r, err := rd.Next(); err != nil || r.Type != fastcgi.TypeGetValuesResult {
					t.Fatalf("GET_VALUES %d of %d: %v, %v", got+1, records, r.Type, err)
				}
			}
			c.Close()
		}
		p.finish(t, "GET_VALUES with 10,000 names, 50 times")
	})

	t.Run("fastcgi half records", func(t *testing.T) {
		fl := startFlooder(t)
		p := startProber(ferry, frontFastCGI, addrs[frontFastCGI])
		opened := fl.dial(t, addrs[frontFastCGI], 500, []byte("\x01\x01\x00\x01"))
		drained(t, addrs[frontFastCGI])
		p.holding()
		time.Sleep(floodHeaderTimeout + 500*time.Millisecond)
		p.finish(t, "500 FastCGI half records that stall")
		if n := fl.closedByServer(t); n != opened {
			t.Errorf("%d of %d stalled connections closed", n, opened)
		}
		fl.closeAll(t)
	})

	t.Run("scgi 20-digit lengths", func(t *testing.T) {
		p := startProber(ferry, frontSCGI, addrs[frontSCGI])
		var bad atomic.Int32
		var wg sync.WaitGroup
		for range 500 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", addrs[frontSCGI])
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, "99999999999999999999:CONTENT_LENGTH\x000\x00")
				b, _ := io.ReadAll(c)
				if bytes.HasPrefix(b, []byte("Status: 4")) {
					bad.Add(1)
				}
			}()
		}
		wg.Wait()
		p.finish(t, "500 SCGI lengths of 20 digits")
		if bad.Load() != 500 {
			t.Errorf("%d of 500 answered 4xx", bad.Load())
		}
	})
	settled(t, ferry, base, "hostile peers")
}

// pairsEnd reports whether b is whole name-value pairs.
func pairsEnd(b []byte) bool {
	return fastcgi.ParsePairs(b, func(_, _ []byte) error { return nil }) == nil
}
