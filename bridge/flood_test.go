package bridge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
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
)

// Floods and slow peers on every front (issue 16, point 6): while each
// flood runs, a normal request is sent every 20 ms on a new connection
// and must be answered (within 1 s here; the figures measured are logged);
// memory stays within a bound; and once the flood's connections are gone,
// ferry's goroutines and descriptors come back to what they were.

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

// floodFerry runs one ferry with an HTTP, a FastCGI and an SCGI front over
// a static root holding /a ("A"), and returns their addresses and what
// the process holds once it serves, for settled.
func floodFerry(t *testing.T) ([3]string, leakcheck.Snapshot) {
	t.Helper()
	var cfg Config
	for _, l := range []string{"http://127.0.0.1:0", "fastcgi://127.0.0.1:0", "scgi://127.0.0.1:0"} {
		a, _ := ParseAddress(l)
		cfg.Listen = append(cfg.Listen, a)
	}
	cfg.Root = staticRoot(t, "a", "A")
	cfg.Fronts.HeaderTimeout = floodHeaderTimeout
	addrs, _ := startFerryFronts(t, cfg)
	time.Sleep(100 * time.Millisecond) // every front accepts
	return [3]string(addrs), leakcheck.Take()
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
	errs  []error
	stop  chan struct{}
	done  chan struct{}
	peak  atomic.Int64 // the largest RSS seen, in KiB
	start int64        // RSS when probing began, in KiB
}

func startProber(kind int, addr string) *prober {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{}), start: rssKiB()}
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
			if r := rssKiB(); r > p.peak.Load() {
				p.peak.Store(r)
			}
			p.mu.Lock()
			p.lat = append(p.lat, d)
			if err != nil {
				p.errs = append(p.errs, err)
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// probeBound is the slowest a probe may be: 1 s, 5 s under the race
// detector, which slows everything down several times.
func probeBound() time.Duration {
	if raceEnabled {
		return 5 * time.Second
	}
	return time.Second
}

// finish stops probing, fails t on an error or a probe slower than
// probeBound, and logs the figures.
func (p *prober) finish(t *testing.T, what string) {
	t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lat) == 0 {
		t.Fatalf("%s: no probe ran", what)
	}
	slices.Sort(p.lat)
	p50, p99, worst := p.lat[len(p.lat)/2], p.lat[len(p.lat)*99/100], p.lat[len(p.lat)-1]
	t.Logf("%s: %d probes, p50 %v, p99 %v, max %v, %d errors; RSS +%d MiB at the peak",
		what, len(p.lat), p50.Round(time.Microsecond), p99.Round(time.Microsecond), worst.Round(time.Microsecond),
		len(p.errs), (p.peak.Load()-p.start)>>10)
	if len(p.errs) > 0 {
		t.Errorf("%s: %d probes failed, first: %v", what, len(p.errs), p.errs[0])
	}
	if worst > probeBound() {
		t.Errorf("%s: a normal request took %v", what, worst)
	}
}

// rssKiB is this process's resident set, in KiB.
func rssKiB() int64 {
	b, _ := os.ReadFile("/proc/self/status")
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
func dialMany(t *testing.T, addr string, n int, first []byte) []net.Conn {
	t.Helper()
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
	var n atomic.Int32
	var wg sync.WaitGroup
	for _, c := range conns {
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
				if !isTimeout(err) {
					n.Add(1)
				}
				return
			}
		}()
	}
	wg.Wait()
	return int(n.Load())
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// settled waits for goroutines and descriptors to come back to base.
func settled(t *testing.T, base leakcheck.Snapshot, what string) {
	t.Helper()
	var now leakcheck.Snapshot
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if now = leakcheck.Take(); now.Goroutines <= base.Goroutines+2 && now.FDs <= base.FDs {
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
	addrs, base := floodFerry(t)
	for kind, addr := range addrs {
		what := "slowloris on " + frontNames[kind]
		p := startProber(kind, addr)
		head := slowHead(kind)
		conns := dialMany(t, addr, 1000, head[:1])
		if len(conns) < 1000 {
			t.Errorf("%s: %d of 1000 connections opened", what, len(conns))
		}
		start := time.Now()
		for i := 1; time.Since(start) < floodHeaderTimeout+time.Second; i++ {
			time.Sleep(time.Second / 2)
			for _, c := range conns {
				if i < len(head) {
					c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
					c.Write(head[i : i+1])
				}
			}
		}
		p.finish(t, what)
		if n := closedByServer(conns); n != len(conns) {
			t.Errorf("%s: %d of %d connections closed by ferry after %v; want all (client_header_timeout %v)", what, n, len(conns), time.Since(start), floodHeaderTimeout)
		}
		closeAll(conns)
		settled(t, base, what)
	}
}

// TestFloodIdle: 10,000 connections per front that send nothing (2,000
// under the race detector, which allows 8128 goroutines), then go away.
func TestFloodIdle(t *testing.T) {
	if testing.Short() {
		t.Skip("floods take a while")
	}
	leakcheck.Check(t)
	n := 10000
	if raceEnabled {
		n = 2000
	}
	if lim := raiseFDLimit(uint64(2*n + 1000)); lim < uint64(2*n+1000) {
		n = int(lim-1000) / 2
		t.Logf("open-file limit %d: %d connections", lim, n)
	}
	addrs, base := floodFerry(t)
	for kind, addr := range addrs {
		what := fmt.Sprintf("%d idle connections on %s", n, frontNames[kind])
		before := rssKiB()
		p := startProber(kind, addr)
		conns := dialMany(t, addr, n, nil)
		time.Sleep(500 * time.Millisecond)
		peak := rssKiB()
		p.finish(t, what)
		t.Logf("%s: %d connected; RSS %d -> %d MiB (%.1f KiB a connection, both ends in this process)",
			what, len(conns), before>>10, peak>>10, float64(peak-before)/float64(max(len(conns), 1)))
		if grew := (peak - before) << 10; !raceEnabled && grew > int64(len(conns))*64<<10 {
			t.Errorf("%s: RSS grew %d MiB, over 64 KiB a connection", what, grew>>20)
		}
		closeAll(conns)
		settled(t, base, what)
	}
}

// TestFloodHostilePeers: request smuggling attempts on the HTTP front;
// 10,000 request IDs on one FastCGI connection, GET_VALUES with 10,000
// names, half records that stall; SCGI lengths of 20 digits. Normal
// requests are answered throughout, and the hostile ones are refused.
func TestFloodHostilePeers(t *testing.T) {
	if testing.Short() {
		t.Skip("floods take a while")
	}
	leakcheck.Check(t)
	raiseFDLimit(8192)
	addrs, base := floodFerry(t)

	t.Run("http smuggling", func(t *testing.T) {
		p := startProber(frontHTTP, addrs[frontHTTP])
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
		p := startProber(frontFastCGI, addrs[frontFastCGI])
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
		p := startProber(frontFastCGI, addrs[frontFastCGI])
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
		p := startProber(frontFastCGI, addrs[frontFastCGI])
		conns := dialMany(t, addrs[frontFastCGI], 500, []byte("\x01\x01\x00\x01"))
		time.Sleep(floodHeaderTimeout + 500*time.Millisecond)
		p.finish(t, "500 FastCGI half records that stall")
		if n := closedByServer(conns); n != len(conns) {
			t.Errorf("%d of %d stalled connections closed", n, len(conns))
		}
		closeAll(conns)
	})

	t.Run("scgi 20-digit lengths", func(t *testing.T) {
		p := startProber(frontSCGI, addrs[frontSCGI])
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
	settled(t, base, "hostile peers")
}

// pairsEnd reports whether b is whole name-value pairs.
func pairsEnd(b []byte) bool {
	return fastcgi.ParsePairs(b, func(_, _ []byte) error { return nil }) == nil
}
