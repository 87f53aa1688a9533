package cgi

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testdir"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("changing the scripts' user needs root")
	}
}

func needPerl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("perl not installed")
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func uidOf(t *testing.T, name string) string {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no user %s here: %v", name, err)
	}
	return u.Uid
}

// TestScriptUser checks the user and groups a script sees (issue 16 point
// 2: never run scripts as root unless asked).
func TestScriptUser(t *testing.T) {
	needRoot(t)
	dir := testdir.Open(t)
	writeScript(t, dir, "id.sh", `printf 'Content-Type: text/plain\n\n%s %s %s' "$(id -u)" "$(id -g)" "$(id -G)"`)
	defUID := uidOf(t, DefaultUser())
	def, _ := user.Lookup(DefaultUser())
	defGroups, _ := def.GroupIds()
	nogroup, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Skipf("no group nogroup here: %v", err)
	}
	tests := []struct {
		user, group string
		status      int
		want        string
	}{
		{"", "", 200, defUID + " " + def.Gid + " " + strings.Join(defGroups, " ")},
		{"root", "", 200, "0 0 0"},
		{"0", "", 200, "0 0 0"},
		{"nobody", "", 200, uidOf(t, "nobody") + " " + nogroup.Gid + " " + nogroup.Gid},
		{"nobody", "0", 200, uidOf(t, "nobody") + " 0 0 " + nogroup.Gid}, // id -G lists the gid first
		{"54321", "54321", 200, "54321 54321 54321"},
		{"54321", "", 500, ""},             // no entry, no group: refused
		{"no-such-user-here", "", 500, ""}, // unknown
		{"nobody", "no-such-group", 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.user+":"+tt.group, func(t *testing.T) {
			srv, logs := serveDir(t, dir, &Handler{User: tt.user, Group: tt.group})
			resp, body, err := getWithin(t, srv.URL+"/cgi-bin/id.sh", 5*time.Second)
			if err != nil || resp.StatusCode != tt.status {
				t.Fatalf("User %q Group %q: %d %q, %v; want %d\n%s", tt.user, tt.group, resp.StatusCode, body, err, tt.status, logs)
			}
			if tt.want != "" && body != tt.want {
				t.Errorf("User %q Group %q: script saw uid gid groups %q; want %q", tt.user, tt.group, body, tt.want)
			}
		})
	}
}

func TestScriptCredentialNotRoot(t *testing.T) {
	// Not root, nothing asked: scripts run as ferry does.
	if cred, err := scriptCredential("", "", 1000); cred != nil || err != nil {
		t.Errorf("scriptCredential(\"\", \"\", 1000) = %v, %v; want nil, nil", cred, err)
	}
	// Root, nothing asked: the default user, never root.
	cred, err := scriptCredential("", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if cred == nil || cred.Uid == 0 {
		t.Errorf("scriptCredential(\"\", \"\", 0) = %+v; want %s", cred, DefaultUser())
	}
}

// TestRLimits runs a real script against each resource limit, and the same
// script without the limit to show that the limit made the difference.
func TestRLimits(t *testing.T) {
	needPerl(t)
	leakcheck.Check(t)
	dir := testdir.Open(t)
	writeScript(t, dir, "cpu.sh", `while :; do :; done`)
	writeScript(t, dir, "mem.sh", `printf 'Content-Type: text/plain\n\n'
if perl -e '$x = "a" x 100_000_000' 2>/dev/null; then echo allocated; else echo refused; fi`)
	writeFile(t, dir+"/files.pl", ("#!/usr/bin/perl\n" + `print "Content-Type: text/plain\n\n";
for (1..100) { open(my $f, "<", "/dev/null") or do { print "failed"; exit }; push @f, $f }
print "opened 100";`))
	writeFile(t, dir+"/fork.pl", ("#!/usr/bin/perl\n" + `$| = 1; print "Content-Type: text/plain\n\n";
my $n = 0;
for (1..20) { my $p = fork; last unless defined $p; if ($p == 0) { sleep 3; exit } $n++ }
print $n == 20 ? "forked 20" : "fork failed";`))

	nprocUser := "nobody" // a user of its own: RLIMIT_NPROC counts all of a user's processes
	if os.Geteuid() != 0 {
		nprocUser = ""
	}
	tests := []struct {
		name   string
		script string
		h      *Handler
		status int
		body   string // "" for any
		log    string
	}{
		{"cpu-unbounded", "cpu.sh", &Handler{Timeout: 2 * time.Second}, 504, "", "timed out"},
		{"cpu", "cpu.sh", &Handler{Timeout: 10 * time.Second, RLimitCPU: time.Second}, 502, "", "CPU time limit exceeded"},
		{"as-unbounded", "mem.sh", &Handler{}, 200, "allocated\n", ""},
		{"as", "mem.sh", &Handler{RLimitAS: 64 << 20}, 200, "refused\n", ""},
		{"nofile-unbounded", "files.pl", &Handler{}, 200, "opened 100", ""},
		{"nofile", "files.pl", &Handler{RLimitNoFile: 16}, 200, "failed", ""},
		{"nproc-unbounded", "fork.pl", &Handler{User: nprocUser}, 200, "forked 20", ""},
		{"nproc", "fork.pl", &Handler{User: nprocUser, RLimitNProc: 8}, 200, "fork failed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "nproc" && os.Geteuid() == 0 && nprocUser == "" {
				t.Skip("RLIMIT_NPROC does not bind root")
			}
			tt.h.KillGrace = 100 * time.Millisecond
			srv, logs := serveDir(t, dir, tt.h)
			start := time.Now()
			resp, body, err := getWithin(t, srv.URL+"/cgi-bin/"+tt.script, 15*time.Second)
			if err != nil || resp.StatusCode != tt.status || (tt.body != "" && body != tt.body) {
				t.Errorf("%s: %d %q, %v; want %d %q\n%s", tt.script, resp.StatusCode, body, err, tt.status, tt.body, logs)
			}
			if tt.log != "" && !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, logs)
			}
			// The limit, not the 10 s timeout, ended it (on a loaded
			// machine, 1 s of CPU takes several seconds of wall time).
			if tt.name == "cpu" && time.Since(start) >= tt.h.Timeout {
				t.Errorf("a script bounded to 1 s of CPU ran %v, to its timeout", time.Since(start))
			}
		})
	}
}

// TestMaxOutput checks that a response past MaxOutput is cut visibly and
// logged, and that one within it is whole.
func TestMaxOutput(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	writeScript(t, dir, "big.sh", `printf 'Content-Type: text/plain\n\n'; head -c "$QUERY_STRING" /dev/zero`)
	writeScript(t, dir, "nph-big.sh", `printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n'; head -c "$QUERY_STRING" /dev/zero`)
	srv, logs := serveDir(t, dir, &Handler{MaxOutput: 64 << 10, KillGrace: 100 * time.Millisecond})
	for _, script := range []string{"big.sh", "nph-big.sh"} {
		for _, size := range []int{64 << 10, 1 << 20} {
			resp, err := http.Get(srv.URL + "/cgi-bin/" + script + "?" + strconv.Itoa(size))
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if size <= 64<<10 {
				if err != nil || len(b) != size {
					t.Errorf("%s, %d bytes within MaxOutput: read %d, %v; want all", script, size, len(b), err)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s, %d bytes past MaxOutput: read %d bytes without error; the cut must show", script, size, len(b))
			}
			if len(b) > 64<<10 {
				t.Errorf("%s: %d body bytes passed a MaxOutput of %d", script, len(b), 64<<10)
			}
		}
	}
	if !strings.Contains(logs.String(), "MaxOutput") {
		t.Errorf("the cut was not logged:\n%s", logs)
	}
}
