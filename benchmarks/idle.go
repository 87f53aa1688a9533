package benchmarks

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// idleRequest is the request each idle connection sends before it idles.
const idleRequest = "GET /hello.txt HTTP/1.1\r\nHost: ferry.test\r\nUser-Agent: ferry-bench-idle\r\n\r\n"

// openIdleConns opens n connections to addr, 8 at a time, each of which
// sends idleRequest, reads the whole answer and is left open and idle. It
// returns those it opened, with the first error met.
func openIdleConns(addr string, n int) ([]net.Conn, error) {
	const parallel = 8
	var (
		mu    sync.Mutex // guards conns and first
		conns = make([]net.Conn, 0, n)
		first error
		wg    sync.WaitGroup
	)
	next := make(chan struct{})
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, err := openIdleConn(addr)
				mu.Lock()
				if err != nil {
					first = cmp.Or(first, err)
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for range n {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return conns, first
}

// openIdleConn dials addr, asks for idleRequest and reads the answer,
// which must be a 200 with the hello body.
func openIdleConn(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := func() (*http.Response, error) {
		if _, err := io.WriteString(c, idleRequest); err != nil {
			return nil, err
		}
		return http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	}()
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || !bytes.Equal(body, []byte("Hello, world\n"))) {
			err = fmt.Errorf("GET /hello.txt: %s %q", resp.Status, body)
		}
		if err == nil && resp.Close {
			err = errors.New("GET /hello.txt: the front closes the connection")
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// leastSquaresSlope returns the slope of the least-squares line through
// the points (x[i], y[i]).
func leastSquaresSlope(x []int, y []float64) float64 {
	var sx, sy, sxx, sxy float64
	for i := range x {
		xf := float64(x[i])
		sx += xf
		sy += y[i]
		sxx += xf * xf
		sxy += xf * y[i]
	}
	n := float64(len(x))
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

// stillOpen reports whether the peer of c, an idle connection, has not
// closed it: a peek that does not wait finds nothing to read (EAGAIN)
// rather than the end of the stream or an error.
func stillOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = n < 0 && errors.Is(err, syscall.EAGAIN)
		return true // never wait for the poller
	})
	return open
}

// idleHold is a set of idle keep-alive connections held open to a front
// (holdIdle) while a load runs on others, and what they cost it.
type idleHold struct {
	front procTrees // the front's processes: its gateway is measured
	conns []net.Conn
	steps []int     // connections open at each step
	rss   []float64 // the front's VmRSS at each step, KiB
	slope float64   // KiB per idle connection
}

// idleSettle is how long the front is left after a step of connections
// before its RSS is read, so that the work of their requests is done.
const idleSettle = 500 * time.Millisecond

// holdIdle opens n idle keep-alive connections to addr, a front serving
// /hello.txt (idleRequest) whose processes are front's gateway, in steps
// of 0, n/10, n/2 and n, and reads the front's VmRSS (summed over its
// processes: nginx's master and worker) at each: the least-squares slope
// is what an idle connection costs it. Close them with close.
func holdIdle(addr string, front procTrees, n int) (*idleHold, error) {
	h := &idleHold{front: front, steps: []int{0, n / 10, n / 2, n}}
	for _, step := range h.steps {
		more, err := openIdleConns(addr, step-len(h.conns))
		h.conns = append(h.conns, more...)
		if err != nil {
			open := len(h.conns)
			h.close()
			return nil, fmt.Errorf("benchmarks: %d idle connections open: %w", open, err)
		}
		time.Sleep(idleSettle)
		rss, err := h.memory("VmRSS")
		if err != nil {
			h.close()
			return nil, err
		}
		h.rss = append(h.rss, float64(rss))
	}
	h.slope = leastSquaresSlope(h.steps, h.rss)
	return h, nil
}

// note says what the idle connections cost the front, and whether it
// still holds every one of them now (after a load).
func (h *idleHold) note() string {
	open := 0
	for _, c := range h.conns {
		if stillOpen(c) {
			open++
		}
	}
	steps := make([]string, len(h.steps))
	for i, n := range h.steps {
		steps[i] = strconv.Itoa(n)
	}
	s := fmt.Sprintf("%d idle keep-alive connections held through the load: %.1f KiB each (VmRSS at %s open), RSS %.1f MiB with them",
		len(h.conns), h.slope, strings.Join(steps, ", "), h.rss[len(h.rss)-1]/1024)
	if peak, err := h.memory("VmHWM"); err == nil {
		s += fmt.Sprintf(", peak %.1f MiB", float64(peak)/1024)
	}
	if open == len(h.conns) {
		return s + "; all still open after it"
	}
	return s + fmt.Sprintf("; only %d still open after it", open)
}

// memory returns the field name (VmRSS, VmHWM) of the front's processes
// summed, in KiB.
func (h *idleHold) memory(name string) (int64, error) {
	pids := h.front.gatewayPids()
	if len(pids) == 0 {
		return 0, errors.New("benchmarks: the front has no process left")
	}
	var sum int64
	for _, pid := range pids {
		kib, err := vmStatus(pid, name)
		if err != nil {
			return 0, err
		}
		sum += kib
	}
	return sum, nil
}

// close closes the idle connections.
func (h *idleHold) close() {
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// staticRoot writes the static site the idle-connection rows serve into
// a directory of dir: hello.txt, the hello app's 13 bytes.
func staticRoot(dir string) (string, error) {
	root := filepath.Join(dir, "static")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("benchmarks: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("Hello, world\n"), 0o644); err != nil {
		return "", fmt.Errorf("benchmarks: %w", err)
	}
	return root, nil
}
