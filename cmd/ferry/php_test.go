package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

const phpInfo = `<?php
header("Content-Type: text/plain");
echo "script=", $_SERVER["SCRIPT_NAME"], "\n";
echo "path_info=", $_SERVER["PATH_INFO"] ?? "", "\n";
echo "filename=", $_SERVER["SCRIPT_FILENAME"], "\n";
echo "uri=", $_SERVER["REQUEST_URI"], "\n";
echo "method=", $_SERVER["REQUEST_METHOD"], "\n";
echo "body=", strlen(file_get_contents("php://input")), "\n";
echo "port=", $_SERVER["SERVER_PORT"], "\n";
`

// phpSite writes the test site into a world-readable directory.
func phpSite(t *testing.T) string {
	t.Helper()
	root, err := os.MkdirTemp("", "ferry-php-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	files := map[string]string{
		"info.php":      phpInfo,
		"index.php":     phpInfo,
		"sub/index.php": phpInfo,
		"style.css":     "body{}",
		"notes.txt":     "plain notes",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := peers.MakeWorldReadable(root); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestPHPSiteThroughSpawnedPHPCGI has ferry start and supervise php-cgi
// FastCGI workers itself (fastcgi+exec:), as mod_fcgid does, and stop them
// all on shutdown.
func TestPHPSiteThroughSpawnedPHPCGI(t *testing.T) {
	peerstest.Need(t, "php-cgi")
	php, _ := peers.Lookup("php-cgi")
	root := phpSite(t)
	p := testPHPSite(t, root, nil, "/=fastcgi+exec:"+php+"?workers=2&max_requests=7", "--cgi-kill-grace", "500ms")
	if !strings.Contains(p.logs.String(), "FastCGI workers started") {
		t.Errorf("no worker start logged:\n%s", p.logs)
	}
	// A worker recycled by max_requests may be between exit and restart.
	var workers []int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if workers = leakcheck.Children(p.cmd.Process.Pid); len(workers) == 2 {
			break
		}
	}
	if len(workers) != 2 {
		t.Errorf("ferry has children %v; want the 2 php-cgi workers", workers)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v", err)
	}
	for _, pid := range workers {
		if leakcheck.Alive(pid) {
			t.Errorf("worker %d outlived ferry", pid)
		}
	}
}

// TestPHPSiteThroughPHPFPM serves a PHP site through real php-fpm as nginx
// + php-fpm does: scripts split at .php, index.php, a front controller,
// static files served by ferry, CVE-2019-11043-style paths refused.
func TestPHPSiteThroughPHPFPM(t *testing.T) {
	peerstest.Need(t, "php-fpm")
	root := phpSite(t)
	fpm := peerstest.RunPHPFPM(t, peers.PHPFPMConfig{Listen: "127.0.0.1:0", Children: 2})
	for _, mount := range []string{
		"/=fastcgi://" + fpm.Address,                  // php-fpm does not say its size: a connection per request
		"/=fastcgi://" + fpm.Address + "?max_conns=2", // kept connections, two: requests queue in ferry
	} {
		t.Run(mount, func(t *testing.T) { testPHPSite(t, root, fpm, mount) })
	}
}

// testPHPSite runs ferry with --root root --mount mount and checks the site;
// fpm, if not nil, is the php-fpm whose log must not show static files.
func testPHPSite(t *testing.T, root string, fpm *peers.PHPFPM, mount string, args ...string) *ferryProc {
	t.Helper()
	p := startFerry(t, append([]string{"--root", root, "--mount", mount}, args...)...)

	get := func(method, path string, body io.Reader) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, p.URL+path, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tt := range []struct {
		path   string
		status int
		want   []string
	}{
		{"/info.php/a/b?x=1", 200, []string{"script=/info.php\n", "path_info=/a/b\n", "filename=" + filepath.Join(root, "info.php") + "\n", "uri=/info.php/a/b?x=1\n"}},
		{"/", 200, []string{"script=/index.php\n"}},
		{"/sub/", 200, []string{"script=/sub/index.php\n"}},
		{"/pretty/url?page=2", 200, []string{"script=/index.php\n", "uri=/pretty/url?page=2\n"}},
		{"/style.css", 200, []string{"body{}"}},
		{"/notes.txt", 200, []string{"plain notes"}},
		{"/missing.php", 404, nil},
		{"/missing.php/x", 404, nil},
		{"/notes.txt/x.php", 404, nil},
		{"/info.php%0a.php", 400, nil},
		{"/info.php/%0a", 400, nil},
		{"/info.php%00.txt", 400, nil},
		{"/../etc/passwd", 400, nil},
	} {
		code, body := get("GET", tt.path, nil)
		if code != tt.status {
			t.Errorf("GET %s = %d %q; want %d", tt.path, code, body, tt.status)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: body %q lacks %q", tt.path, body, w)
			}
		}
	}
	if code, body := get("POST", "/info.php", bytes.NewReader(make([]byte, 100000))); code != 200 || !strings.Contains(body, "body=100000\n") {
		t.Errorf("POST 100000 bytes = %d %q", code, body)
	}
	if code, body := get("POST", "/info.php", io.MultiReader(bytes.NewReader(make([]byte, 300000)))); code != 200 || !strings.Contains(body, "body=300000\n") {
		t.Errorf("chunked POST 300000 bytes = %d %q", code, body)
	}
	// Twenty at once on a pool of php-fpm's two children: they queue in
	// ferry, and all succeed.
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(p.URL + "/info.php")
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), "script=/info.php") {
				errs <- resp.Status + " " + string(b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("parallel request: %s", e)
	}
	if t.Failed() {
		t.Logf("ferry log:\n%s", p.logs)
	}
	if fpm != nil {
		logs, _ := fpm.Logs()
		if strings.Contains(logs, "style.css") || strings.Contains(logs, "notes.txt") {
			t.Errorf("php-fpm saw a static file:\n%s", logs)
		}
	}
	return p
}

// TestPHPCGIWorkersOnDemand: with min_workers and idle_timeout, spawned
// php-cgi workers scale as php-fpm's pm = ondemand does: one when idle, up
// to workers under load, back down once idle.
func TestPHPCGIWorkersOnDemand(t *testing.T) {
	peerstest.Need(t, "php-cgi")
	php, _ := peers.Lookup("php-cgi")
	root := phpSite(t)
	if err := os.WriteFile(filepath.Join(root, "slow.php"), []byte("<?php usleep(300000); echo 'slow ok';\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startFerry(t, "--root", root, "--mount", "/=fastcgi+exec:"+php+"?workers=3&min_workers=1&idle_timeout=500ms", "--cgi-kill-grace", "500ms")
	children := func() int { return len(leakcheck.Children(p.cmd.Process.Pid)) }
	if n := children(); n != 1 {
		t.Errorf("idle: %d workers; want min_workers, 1", n)
	}
	var wg sync.WaitGroup
	peak := 0
	for range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(p.URL + "/slow.php")
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "slow ok" {
				t.Errorf("under load: %d %q", resp.StatusCode, b)
			}
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && peak < 3; time.Sleep(10 * time.Millisecond) {
		peak = max(peak, children())
	}
	wg.Wait()
	if peak != 3 {
		t.Errorf("under load: at most %d workers; want 3", peak)
	}
	n := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n = children(); n == 1 {
			break
		}
	}
	if n != 1 {
		t.Errorf("idle again: %d workers; want 1", n)
	}
	if !strings.Contains(p.logs.String(), "idle worker stopped") {
		t.Errorf("no idle worker stop logged:\n%s", p.logs)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v", err)
	}
}
