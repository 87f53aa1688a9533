package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
)

// TestREADMEInstallAndCGIWrapper follows the README as a new user does: it
// installs ferry from the checkout with the README's command, then runs
// the README's cgi: front wrapper as a web server runs a CGI program, with
// no PATH (lighttpd's way, where "exec ferry" fails with "ferry: not
// found"), in front of a FastCGI application.
func TestREADMEInstallAndCGIWrapper(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to install with")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const install = "go install ./cmd/ferry"
	if !strings.Contains(string(readme), "\n"+install+" ") {
		t.Fatalf("the README does not say %q", install)
	}
	bin := t.TempDir()
	cmd := exec.Command(goBin, strings.Fields(install)[1:]...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", install, err, out)
	}
	ferryBin := filepath.Join(bin, "ferry")

	// The wrapper, as the README gives it.
	m := regexp.MustCompile("(?m)^  #!/bin/sh\n  exec (\\S+) serve --mount (\\S+)=fastcgi://127.0.0.1:9000\n").FindSubmatch(readme)
	if m == nil {
		t.Fatal("no cgi: front wrapper (#!/bin/sh, exec FERRY serve --mount PREFIX=fastcgi://127.0.0.1:9000) in the README")
	}
	if !filepath.IsAbs(string(m[1])) {
		t.Fatalf("the README's wrapper runs %q: a web server runs CGI programs with no PATH, so it must be an absolute path", m[1])
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &fastcgi.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := cgi.Origin(r.Context())
		fmt.Fprintf(w, "script_name=%s path_info=%s", v["SCRIPT_NAME"], v["PATH_INFO"])
	})}
	go app.Serve(l)
	defer app.Close()
	wrapper := filepath.Join(bin, "app.cgi")
	script := strings.ReplaceAll(strings.TrimPrefix(string(m[0]), "  "), "\n  ", "\n")
	script = strings.Replace(script, string(m[1]), ferryBin, 1)
	script = strings.Replace(script, "127.0.0.1:9000", l.Addr().String(), 1)
	writeExec(t, wrapper, script)

	run := exec.Command(wrapper)
	run.Env = []string{"GATEWAY_INTERFACE=CGI/1.1", "SERVER_PROTOCOL=HTTP/1.1", "SERVER_SOFTWARE=lighttpd",
		"SERVER_NAME=localhost", "SERVER_PORT=80", "REMOTE_ADDR=127.0.0.1", "REQUEST_METHOD=GET",
		"SCRIPT_NAME=/cgi-bin/app.cgi", "PATH_INFO=/x", "QUERY_STRING=", "REQUEST_URI=/cgi-bin/app.cgi/x"}
	out, err := run.Output()
	if err != nil {
		t.Fatalf("the wrapper: %v\n%s", err, out)
	}
	if want := "script_name=/cgi-bin/app.cgi path_info=/x"; !strings.HasSuffix(string(out), "\r\n\r\n"+want) {
		t.Errorf("the wrapper answered:\n%s\nwant the application's %q", out, want)
	}
}
