package bridge

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// startPool starts php-fpm on port (0: a free one) naming itself name,
// with ping.path /ping; the caller stops it.
func startPool(t *testing.T, name string, port int) *peers.PHPFPM {
	t.Helper()
	return startPoolEnv(t, port, map[string]string{"POOL": name})
}

// startPoolEnv starts php-fpm as startPool does, with env in its workers'
// environment: POOL, the name pool.php answers, and DELAY, the
// microseconds slow.php takes.
func startPoolEnv(t *testing.T, port int, env map[string]string) *peers.PHPFPM {
	t.Helper()
	peerstest.Need(t, "php-fpm")
	f, err := peers.StartPHPFPM(t.Context(), t.TempDir(), peers.PHPFPMConfig{
		Listen: fmt.Sprintf("127.0.0.1:%d", port), Children: 4, PingPath: "/ping", Env: env})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// poolSite writes the PHP scripts the group tests request: pool.php
// answers the pool's name, post.php counts its runs in a file and then
// waits, so that its pool can die under it.
func poolSite(t *testing.T) string {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	for name, text := range map[string]string{
		"pool.php": `<?php echo getenv("POOL");`,
		"slow.php": `<?php usleep((int)(getenv("DELAY") ?: 200000)); echo getenv("POOL");`,
		"post.php": `<?php file_put_contents(__DIR__."/runs", "x", FILE_APPEND); $b = file_get_contents("php://input"); sleep(5); echo strlen($b);`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// scrapeBackend returns metric for the group backend whose address ends
// in ":port".
func scrapeBackend(t *testing.T, admin string, metric string, port int) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, metric+"{") && strings.Contains(line, fmt.Sprintf(":%d\"", port)) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			return v
		}
	}
	return 0
}

// TestGroupKillPHPFPM: three php-fpm pools behind one mount; one is killed
// (SIGKILL, master and workers) under load: no GET fails, the dead pool
// gets no request once its checks fail, and once started again it is back
// after its checks pass.
func TestGroupKillPHPFPM(t *testing.T) {
	if testing.Short() {
		t.Skip("real peers")
	}
	root := poolSite(t)
	names := []string{"a", "b", "c"}
	pools := make([]*peers.PHPFPM, 3)
	ports := make([]int, 3)
	for i, n := range names {
		pools[i] = startPool(t, n, 0)
		_, p, _ := net.SplitHostPort(pools[i].Address)
		fmt.Sscan(p, &ports[i])
	}
	t.Cleanup(func() {
		for _, p := range pools {
			p.Stop() // the killed one reports its death: nothing to check
		}
	})
	m, err := ParseMount(fmt.Sprintf("/=fastcgi://127.0.0.1:%d,fastcgi://127.0.0.1:%d,fastcgi://127.0.0.1:%d?max_fails=1&fail_timeout=10s&health=/ping&health_body=pong&health_interval=300ms&health_fails=1&health_passes=2", ports[0], ports[1], ports[2]))
	if err != nil {
		t.Fatal(err)
	}
	adminAddr, _ := ParseAdminAddress("http://127.0.0.1:0")
	s, addr, _ := runFerry(t, Config{Listen: []Address{mustAddr(t, "http://127.0.0.1:0")}, Mounts: []Mount{m}, Root: root, Admin: adminAddr})
	admin := s.AdminAddr().String()

	var mu sync.Mutex
	counts := map[string]int{}
	var failed, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://" + addr + "/pool.php")
				total.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Logf("GET: %d %s", resp.StatusCode, b)
					continue
				}
				mu.Lock()
				counts[string(b)]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	if err := syscall.Kill(-pools[1].Process.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-pools[1].Process.Done()
	time.Sleep(time.Second) // the checks notice
	before := scrapeBackend(t, admin, "ferry_backend_requests_total", ports[1])
	time.Sleep(2 * time.Second)
	after := scrapeBackend(t, admin, "ferry_backend_requests_total", ports[1])
	if after != before {
		t.Errorf("the dead pool got %v requests within fail_timeout, once its check failed; want 0", after-before)
	}
	mu.Lock()
	bBefore := counts["b"]
	mu.Unlock()
	pools[1] = startPool(t, "b", ports[1])
	deadline := time.Now().Add(10 * time.Second)
	back := false
	for time.Now().Before(deadline) && !back {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		back = counts["b"] > bBefore
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
	t.Logf("requests: %d, failed: %d, by pool: %v", total.Load(), failed.Load(), counts)
	if failed.Load() != 0 {
		t.Errorf("%d of %d GETs failed; want 0", failed.Load(), total.Load())
	}
	if !back {
		t.Errorf("the restarted pool got no request within 10 s")
	}
}

func mustAddr(t *testing.T, s string) Address {
	a, err := ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestGroupPostNotReplayed: a POST in flight on a pool that dies gets a
// 502 and runs once: it is not sent to another pool.
func TestGroupPostNotReplayed(t *testing.T) {
	if testing.Short() {
		t.Skip("real peers")
	}
	root := poolSite(t)
	a, b := startPool(t, "a", 0), startPool(t, "b", 0)
	t.Cleanup(func() { a.Stop(); b.Stop() })
	m, err := ParseMount(fmt.Sprintf("/=fastcgi://%s,fastcgi://%s?policy=round_robin", a.Address, b.Address))
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ := runFerry(t, Config{Listen: []Address{mustAddr(t, "http://127.0.0.1:0")}, Mounts: []Mount{m}, Root: root})
	done := make(chan int, 1)
	go func() {
		resp, err := http.Post("http://"+addr+"/post.php", "text/plain", strings.NewReader("hello"))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	// Wait for the run to start (the file says so), then kill the pool
	// running it: the one holding a connection from ferry.
	runs := filepath.Join(root, "runs")
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(runs); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	victim := a
	if scrapeBusy(t, b) {
		victim = b
	}
	syscall.Kill(-victim.Process.Pid(), syscall.SIGKILL)
	select {
	case code := <-done:
		if code != http.StatusBadGateway {
			t.Errorf("POST whose pool died: status %d; want 502", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("POST did not end")
	}
	time.Sleep(6 * time.Second) // a replay would have run by now
	got, _ := os.ReadFile(runs)
	if len(got) != 1 {
		t.Errorf("the POST ran %d times; want once", len(got))
	}
}

// scrapeBusy reports whether a pool has a connection from ferry now.
func scrapeBusy(t *testing.T, f *peers.PHPFPM) bool {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	_, p, _ := net.SplitHostPort(f.Address)
	var port int
	fmt.Sscan(p, &port)
	local := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 3 && fields[1] == local && fields[3] == "01" { // ESTABLISHED
			return true
		}
	}
	return false
}

// TestGroupConfigFile: a group in the configuration file, as on the
// command line, and its errors with file:line.
func TestGroupConfigFile(t *testing.T) {
	f, err := ParseConfig("f.toml", []byte("[mount.\"/\"]\nbackend = \"fastcgi://127.0.0.1:9000,fastcgi://127.0.0.1:9001\"\npolicy = \"round_robin\"\nweights = \"3,1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := f.Config.Mounts[0]
	if len(m.More) != 1 || m.Backend.Query.Get("policy") != "round_robin" || m.memberWeight(0) != 3 || m.memberWeight(1) != 1 {
		t.Errorf("group = %+v", m)
	}
	_, err = ParseConfig("f.toml", []byte("[mount.\"/\"]\nbackend = \"fastcgi://127.0.0.1:9000,scgi://127.0.0.1:9001\"\n"))
	if err == nil || !strings.Contains(err.Error(), "f.toml:2:") || !strings.Contains(err.Error(), "not of the group's kind") {
		t.Errorf("mixed kinds: %v", err)
	}
	if _, err := ParseMount("/=fastcgi://127.0.0.1:1,fastcgi://127.0.0.1:2?weights=1"); err == nil || !strings.Contains(err.Error(), "1 weights for 2 backends") {
		t.Errorf("weights that do not match: %v", err)
	}
	if _, err := ParseMount("/=fastcgi://127.0.0.1:1,fastcgi://127.0.0.1:2?sticky=session"); err == nil || !strings.Contains(err.Error(), "want addr or cookie:NAME") {
		t.Errorf("a bad sticky: %v", err)
	}
}

// TestGroupConfigTables: a group as [[mount."/".backend]] tables, each
// backend with its own weight and max_conns, read, written by WriteConfig
// and read back the same; mistakes name the table.
func TestGroupConfigTables(t *testing.T) {
	const text = `[mount."/"]
policy = "round_robin"
max_conns = 8

[[mount."/".backend]]
address = "fastcgi://127.0.0.1:9000"
weight = 3
max_conns = 16

[[mount."/".backend]]
address = "fastcgi://127.0.0.1:9001"
`
	f, err := ParseConfig("f.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, m Mount) {
		t.Helper()
		if len(m.More) != 1 || m.Backend.Query.Get("policy") != "round_robin" {
			t.Fatalf("%s: group = %+v", what, m)
		}
		if w0, w1 := m.memberWeight(0), m.memberWeight(1); w0 != 3 || w1 != 1 {
			t.Errorf("%s: weights %d, %d; want 3, 1", what, w0, w1)
		}
		if c0, c1 := m.memberQuery(0).Get("max_conns"), m.memberQuery(1).Get("max_conns"); c0 != "16" || c1 != "8" {
			t.Errorf("%s: max_conns %s, %s; want 16 (its own), 8 (the mount's)", what, c0, c1)
		}
	}
	check("read", f.Config.Mounts[0])
	var out strings.Builder
	if err := WriteConfig(&out, f.Config); err != nil {
		t.Fatal(err)
	}
	g, err := ParseConfig("printed.toml", []byte(out.String()))
	if err != nil {
		t.Fatalf("WriteConfig's output does not read back: %v\n%s", err, out.String())
	}
	check("written and read back", g.Config.Mounts[0])

	for _, tt := range []struct{ name, text, want string }{
		{"unknown key", "[mount.\"/\"]\n[[mount.\"/\".backend]]\naddress = \"fastcgi://127.0.0.1:1\"\n[[mount.\"/\".backend]]\naddress = \"fastcgi://127.0.0.1:2\"\nwieght = 2\n",
			`f.toml:6: mount."/".backend[2].wieght: unknown key (did you mean weight?)`},
		{"no address", "[mount.\"/\"]\n[[mount.\"/\".backend]]\nweight = 2\n", `f.toml:2: mount."/".backend[1]: want address = "ADDRESS"`},
		{"options in the address", "[mount.\"/\"]\n[[mount.\"/\".backend]]\naddress = \"fastcgi://127.0.0.1:1?max_conns=2\"\n",
			`f.toml:3: mount."/".backend[1].address: one address without options`},
		{"mixed kinds", "[mount.\"/\"]\n[[mount.\"/\".backend]]\naddress = \"fastcgi://127.0.0.1:1\"\n[[mount.\"/\".backend]]\naddress = \"scgi://127.0.0.1:2\"\n",
			"not of the group's kind"},
		{"a zero weight", "[mount.\"/\"]\n[[mount.\"/\".backend]]\naddress = \"fastcgi://127.0.0.1:1\"\nweight = 0\n",
			`f.toml:4: mount."/".backend[1].weight: want a positive number, not the number 0`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("f.toml", []byte(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseConfig = %v; want %q", err, tt.want)
			}
		})
	}
}

// getAll sends n GETs of url at once and returns their statuses and
// bodies, in no order.
func getAll(t *testing.T, url string, n int) (codes []int, bodies []string) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := 0, ""
			if resp, err := http.Get(url); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				code, body = resp.StatusCode, string(b)
			} else {
				body = err.Error()
			}
			mu.Lock()
			codes, bodies = append(codes, code), append(bodies, body)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return codes, bodies
}

// TestGroupQueue: with every backend at its max_conns, requests wait in
// the group's queue and each goes to the first backend to free a slot:
// of six at once on two backends of one slot each, where pool a takes
// 1.5 s and pool b 0.1 s, a serves one and b the five others (behind a
// backend's own queue, about three would wait for a). Past
// cgi_queue_timeout, a request still waiting gets 503.
func TestGroupQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("real peers")
	}
	root := poolSite(t)
	a := startPoolEnv(t, 0, map[string]string{"POOL": "a", "DELAY": "1500000"})
	b := startPoolEnv(t, 0, map[string]string{"POOL": "b", "DELAY": "100000"})
	t.Cleanup(func() { a.Stop(); b.Stop() })
	m, err := ParseMount(fmt.Sprintf("/=fastcgi://%s,fastcgi://%s?max_conns=1", a.Address, b.Address))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Listen: []Address{mustAddr(t, "http://127.0.0.1:0")}, Mounts: []Mount{m}, Root: root}
	_, addr, _ := runFerry(t, cfg)
	start := time.Now()
	codes, bodies := getAll(t, "http://"+addr+"/slow.php", 6)
	took := time.Since(start)
	byPool := map[string]int{}
	for i, body := range bodies {
		if codes[i] != 200 {
			t.Errorf("GET: %d %s", codes[i], body)
		}
		byPool[body]++
	}
	t.Logf("6 requests in %v: %v", took, byPool)
	if byPool["a"] != 1 || byPool["b"] != 5 {
		t.Errorf("by pool: %v; want a:1 b:5", byPool)
	}

	cfg.Settings.QueueTimeout = 300 * time.Millisecond
	c := startPoolEnv(t, 0, map[string]string{"POOL": "c", "DELAY": "1000000"})
	t.Cleanup(func() { c.Stop() })
	cfg.Mounts[0], err = ParseMount(fmt.Sprintf("/=fastcgi://%s?max_conns=1&policy=least_busy", c.Address))
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ = runFerry(t, cfg)
	codes, bodies = getAll(t, "http://"+addr+"/slow.php", 2)
	slices.Sort(codes)
	if !slices.Equal(codes, []int{200, 503}) {
		t.Errorf("two requests for one slot, queue timeout 300ms: %v %q; want 200 and 503", codes, bodies)
	}
}
