package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// TestScaleOutBehindHAProxy runs the README's "Scaling out ferry"
// deployment, dist/haproxy/haproxy.cfg and dist/haproxy/ferry.toml with
// their addresses moved to loopback: HAProxy in front of three ferry
// processes, each in front of the same three php-fpm pools. Under wrk's
// load, one ferry and then one php-fpm are killed (SIGKILL): no GET fails.
func TestScaleOutBehindHAProxy(t *testing.T) {
	peerstest.Need(t, "haproxy", "php-fpm", "wrk")
	haproxyCfg, err := os.ReadFile("../../dist/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	ferryCfg, err := os.ReadFile("../../dist/haproxy/ferry.toml")
	if err != nil {
		t.Fatal(err)
	}
	root := phpSite(t)
	var pools []*peers.PHPFPM
	for range 3 {
		f, err := peers.StartPHPFPM(t.Context(), t.TempDir(), peers.PHPFPMConfig{Listen: "127.0.0.1:0", Children: 8, PingPath: "/ping"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Stop() }) // the killed one reports its death: nothing to check
		pools = append(pools, f)
	}

	var ferries []*ferryProc
	var admins []string
	var servers []struct{ old, new string }
	for i := range 3 {
		listen, admin := freePort(t), freePort(t)
		text := replaceOnce(t, "dist/haproxy/ferry.toml", string(ferryCfg), []struct{ old, new string }{
			{`"http://0.0.0.0:8080"`, fmt.Sprintf(`"http://127.0.0.1:%d"`, listen)},
			{`"http://0.0.0.0:2020"`, fmt.Sprintf(`"http://127.0.0.1:%d"`, admin)},
			{`"/var/www/html"`, strconv.Quote(root)},
			{"fastcgi://10.0.0.21:9000", "fastcgi://" + pools[0].Address},
			{"fastcgi://10.0.0.22:9000", "fastcgi://" + pools[1].Address},
			{"fastcgi://10.0.0.23:9000", "fastcgi://" + pools[2].Address},
		})
		file := filepath.Join(t.TempDir(), "ferry.toml")
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		ferries = append(ferries, startFerryArgs(t, "--config", file))
		admins = append(admins, fmt.Sprintf("http://127.0.0.1:%d", admin))
		servers = append(servers, struct{ old, new string }{
			fmt.Sprintf("10.0.0.1%d:8080 check port 2020", i+1), fmt.Sprintf("127.0.0.1:%d check port %d", listen, admin)})
	}
	haproxy := peerstest.HAProxy(t, peers.HAProxyConfig{Config: func(bind string) string {
		return replaceOnce(t, "dist/haproxy/haproxy.cfg", string(haproxyCfg), append(servers, struct{ old, new string }{"bind :80", "bind " + bind}))
	}})

	load := peerstest.Wrk(t, peers.WrkConfig{URL: haproxy.URL + "/info.php", Duration: 6 * time.Second, Connections: 16})
	time.Sleep(1500 * time.Millisecond)
	served := ferryRequests(t, admins[1])
	if err := ferries[1].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := syscall.Kill(-pools[1].Process.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	res := load()
	others := ferryRequests(t, admins[0]) + ferryRequests(t, admins[2])
	t.Logf("wrk through HAProxy: %d requests, %d failed; the killed ferry had served %d before, the two others %d in all", res.Requests, res.Failed, served, others)
	if served == 0 {
		t.Errorf("the ferry killed had served no request")
	}
	if res.Requests == 0 || res.Failed != 0 {
		t.Errorf("%d of %d GETs failed; want 0 of some\n%s\nHAProxy's log:\n%s", res.Failed, res.Requests, res.Report, logsOf(haproxy))
	}
}

// replaceOnce replaces each old, which must occur once in text (the file
// name), with its new.
func replaceOnce(t *testing.T, name, text string, pairs []struct{ old, new string }) string {
	t.Helper()
	for _, r := range pairs {
		if strings.Count(text, r.old) != 1 {
			t.Fatalf("%s does not say %q once; update this test with it", name, r.old)
		}
		text = strings.Replace(text, r.old, r.new, 1)
	}
	return text
}

// freePort returns a free port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := peers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// ferryRequests returns the requests a ferry answered, from the
// /status of its admin listener.
func ferryRequests(t *testing.T, admin string) int {
	t.Helper()
	resp, err := http.Get(admin + "/status?json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st struct {
		Mounts []struct{ Accepted int }
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("/status?json: %v\n%s", err, b)
	}
	n := 0
	for _, m := range st.Mounts {
		n += m.Accepted
	}
	return n
}

// logsOf returns a server's logs, or why they cannot be read.
func logsOf(s *peers.Server) string {
	l, err := s.Logs()
	if err != nil {
		return err.Error()
	}
	return l
}

// TestScaleOutFilesInREADME: the README shows dist/haproxy's files and
// the Kubernetes manifests verbatim.
func TestScaleOutFilesInREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ path, lang string }{
		{"dist/haproxy/haproxy.cfg", "haproxy"},
		{"dist/haproxy/ferry.toml", "toml"},
		{"dist/kubernetes/ferry.yaml", "yaml"},
	} {
		text, err := os.ReadFile("../../" + f.path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), "```"+f.lang+"\n"+string(text)+"```\n") {
			t.Errorf("README.md does not show %s verbatim in a %s block", f.path, f.lang)
		}
	}
}

// TestKubernetesExample: the ferry.toml of dist/kubernetes/ferry.yaml's
// ConfigMap passes ferry check, re-resolves its php-fpm Service, and has
// its admin listener on the port the probes ask: /readyz for readiness,
// /healthz for liveness.
func TestKubernetesExample(t *testing.T) {
	manifest, err := os.ReadFile("../../dist/kubernetes/ferry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(manifest), "  ferry.toml: |\n")
	if !ok {
		t.Fatal("dist/kubernetes/ferry.yaml has no ferry.toml in a ConfigMap")
	}
	var toml strings.Builder
	for _, line := range strings.SplitAfter(block, "\n") {
		if line != "\n" && !strings.HasPrefix(line, "    ") {
			break // the end of the literal block
		}
		toml.WriteString(strings.TrimPrefix(line, "    "))
	}
	file := filepath.Join(t.TempDir(), "ferry.toml")
	if err := os.WriteFile(file, []byte(toml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if code := run([]string{"check", "--config", file}, &out, &errOut); code != 0 {
		t.Fatalf("ferry check of the ConfigMap's ferry.toml: exit %d\n%s%s\n%s", code, out.String(), errOut.String(), toml.String())
	}
	for _, want := range []string{`admin = "http://0.0.0.0:2020"`, `resolve = "5s"`, "fastcgi://php-fpm.default.svc.cluster.local:9000"} {
		if !strings.Contains(toml.String(), want) {
			t.Errorf("the ConfigMap's ferry.toml does not say %s", want)
		}
	}
	for _, want := range []string{
		"- name: admin\n              containerPort: 2020",
		"readinessProbe:\n            httpGet:\n              path: /readyz\n              port: admin",
		"livenessProbe:\n            httpGet:\n              path: /healthz\n              port: admin",
		"clusterIP: None",
	} {
		if !strings.Contains(string(manifest), want) {
			t.Errorf("dist/kubernetes/ferry.yaml does not say\n%s", want)
		}
	}
}
