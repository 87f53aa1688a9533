package benchmarks

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// frontIdleConns is the number of idle keep-alive connections issue 11
// asks ferry's HTTP front to hold (10,000 with load on top, under 300 MiB;
// each at most 16 KiB).
const frontIdleConns = 10000

// frontSettle is how long the front is left after a step of connections
// before its RSS is read, so that the last requests' work is done.
const frontSettle = time.Second

// BenchmarkFrontConnections measures what client connections cost ferry's
// HTTP front: a `ferry serve` process (built from this checkout) serving a
// static root, with max_conns above the connections opened and no access
// log. Rows, each with a ferry of its own:
//
//	load-only   wrk -t2 -c16 on /hello.txt, nothing else
//	idle-N      N idle keep-alive connections (each sent one GET, read the
//	            answer and stays open), opened in steps of 0, N/10, N/2 and N;
//	            ferry's VmRSS at each step gives KiB/idle-conn (the
//	            least-squares slope) and rss-MiB-10k (N in thousands); then
//	            the same wrk on top of them: req/s, p99-ms, peak-rss-MiB
//	            (VmHWM) and x-load-only
//
// N is 10,000 (issue 11: at most 16 KiB per idle connection, 10,000 held
// with load on the rest under 300 MiB), fewer when the open-file hard limit
// is under 20,000: as its default max_conns does, ferry then keeps half its
// limit for what requests open (a log line says so). gw-cpu-us/req is ferry's CPU time per request under wrk. net/http
// closes a connection idle for 120 s (bridge.DefaultIdleTimeout, not
// configurable): the row checks that ferry still holds every connection
// after the load.
func BenchmarkFrontConnections(b *testing.B) {
	peerstest.Need(b, "wrk")
	limit := raiseOpenFiles(b)
	n := frontIdleConns
	if limit < 2*frontIdleConns {
		n = int(limit/2) - 100
		b.Logf("open-file hard limit %d is under %d: holding %d idle connections, not %d", limit, 2*frontIdleConns, n, frontIdleConns)
	}
	bin := buildFerry(b)
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("Hello, world\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	var base loadResult
	var haveBase bool
	b.Run("load-only", func(b *testing.B) {
		f := startFerryServe(b, bin, root, n)
		base, haveBase = f.load(b), true
		b.ReportMetric(float64(f.status(b, "VmHWM"))/1024, "peak-rss-MiB")
	})
	b.Run(fmt.Sprintf("idle-%d", n), func(b *testing.B) {
		f := startFerryServe(b, bin, root, n)
		b.Logf("open-file limit: %d here, %d in ferry", limit, f.openFiles)
		steps := []int{0, n / 10, n / 2, n}
		rss := make([]float64, len(steps))
		var conns []net.Conn
		b.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		start := time.Now()
		for i, step := range steps {
			more, err := openIdleConns(f.addr, step-len(conns))
			conns = append(conns, more...)
			if err != nil {
				b.Fatalf("%d idle connections open: %v", len(conns), err)
			}
			time.Sleep(frontSettle)
			rss[i] = float64(f.status(b, "VmRSS"))
			b.Logf("%6d idle connections: ferry VmRSS %.1f MiB", step, rss[i]/1024)
		}
		if el := time.Since(start); el > bridge.DefaultIdleTimeout/2 {
			b.Fatalf("opening the idle connections took %v: the first would be closed as idle (%v) before the load ends", el, bridge.DefaultIdleTimeout)
		}
		b.Logf("ferry VmHWM before the load: %.1f MiB", float64(f.status(b, "VmHWM"))/1024)
		slope := leastSquaresSlope(steps, rss)
		m := f.load(b) // loadWrk resets the timer, which drops the metrics reported before
		b.ReportMetric(slope, "KiB/idle-conn")
		b.ReportMetric(rss[len(rss)-1]/1024, fmt.Sprintf("rss-MiB-%dk", n/1000))
		if haveBase && base.RPS > 0 {
			b.ReportMetric(m.RPS/base.RPS, "x-load-only")
		}
		peak := float64(f.status(b, "VmHWM")) / 1024
		b.ReportMetric(peak, "peak-rss-MiB")
		if held := f.sockets(b); held < n {
			b.Errorf("ferry holds %d sockets after the load, %.0fs after the first idle connection; want at least %d", held, time.Since(start).Seconds(), n)
		}
		b.Logf("%.1f KiB per idle connection (goal ≤ 16), %.1f MiB with %d idle, peak %.1f MiB under wrk -c16 on top (goal < 300)",
			slope, rss[len(rss)-1]/1024, n, peak)
	})
}

// raiseOpenFiles raises this process's open-file soft limit to its hard
// limit (Go does so at start since 1.19; this makes it explicit) and
// returns the limit. ferry's own runtime raises ferry's likewise.
func raiseOpenFiles(tb testing.TB) uint64 {
	tb.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		tb.Fatal(err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			tb.Fatal(err)
		}
	}
	return rl.Cur
}

// buildFerry builds cmd/ferry from this checkout into a temporary
// directory and returns the binary's path.
func buildFerry(tb testing.TB) string {
	tb.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		tb.Skipf("go not in PATH: cannot build ferry: %v", err)
	}
	bin := filepath.Join(tb.TempDir(), "ferry")
	if out, err := exec.Command(goBin, "build", "-o", bin, "github.com/ferrygw/ferry/cmd/ferry").CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/ferry: %v\n%s", err, out)
	}
	return bin
}

// ferryServe is a `ferry serve` process started by startFerryServe.
type ferryServe struct {
	cmd       *exec.Cmd
	addr      string // host:port of its HTTP front
	url       string
	openFiles uint64 // its soft open-file limit
}

// startFerryServe runs bin as `ferry serve` with a generated configuration:
// an HTTP front on a loopback listener this process opens and hands over
// as descriptor 3 (http+fd://3), root as the static root, max_conns above
// conns plus the load's, and no access log. It stops ferry (SIGTERM, then
// SIGKILL after 10 s) when the test ends.
func startFerryServe(tb testing.TB, bin, root string, conns int) *ferryServe {
	tb.Helper()
	l := listenLoopback(tb)
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // lf is a descriptor of its own for the same socket
	defer lf.Close()
	dir := tb.TempDir()
	conf := filepath.Join(dir, "ferry.toml")
	text := fmt.Sprintf("listen = [\"http+fd://3\"]\nroot = %q\nmax_conns = %d\n\n[log]\naccess_log = false\n", root, conns+1000)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", conf)
	cmd.ExtraFiles = []*os.File{lf}
	errs := &tailBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = errs, errs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	f := &ferryServe{cmd: cmd, addr: addr, url: "http://" + addr}
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(15 * time.Second); ; {
		err := fetch(client, f.url+"/hello.txt", "Hello, world\n")
		if err == nil {
			break
		}
		select {
		case werr := <-done:
			done <- werr
			tb.Fatalf("ferry serve exited: %v\n%s", werr, errs.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("ferry serve does not answer: %v\n%s", err, errs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	client.CloseIdleConnections()
	// ferry does not set its own limit: Go's runtime raises the soft limit
	// to the hard one at start.
	f.openFiles = openFilesLimit(tb, cmd.Process.Pid)
	if f.openFiles < uint64(conns+64) {
		tb.Fatalf("ferry's open-file limit is %d, under the %d connections asked for", f.openFiles, conns)
	}
	return f
}

// load runs wrk -t2 -c16 on the front's /hello.txt (loadWrk) and reports
// ferry's CPU time per request (gw-cpu-us/req).
func (f *ferryServe) load(b *testing.B) loadResult {
	tree := procTrees{Roots: []int{f.cmd.Process.Pid}}
	u0 := tree.Measure()
	res := loadWrk(b, f.url+"/hello.txt", "Hello, world\n")
	u := tree.Measure().Sub(u0)
	if res.Requests > 0 {
		b.ReportMetric(float64(u.Gateway)/1e3/float64(res.Requests), "gw-cpu-us/req")
	}
	return res
}

// status returns the field name of ferry's /proc/PID/status in KiB
// (VmRSS, VmHWM).
func (f *ferryServe) status(tb testing.TB, name string) int64 {
	tb.Helper()
	kib, err := vmStatus(f.cmd.Process.Pid, name)
	if err != nil {
		tb.Fatal(err)
	}
	return kib
}

// sockets returns the number of sockets ferry has open.
func (f *ferryServe) sockets(tb testing.TB) int {
	tb.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", f.cmd.Process.Pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, "socket:") {
			n++
		}
	}
	return n
}

// openFilesLimit returns the soft open-file limit of process pid.
func openFilesLimit(tb testing.TB, pid int) uint64 {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if v, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return v
				}
			}
		}
	}
	tb.Fatalf("no open-file limit in /proc/%d/limits", pid)
	return 0
}
