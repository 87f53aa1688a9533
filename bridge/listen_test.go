package bridge

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestUnixSocketOwner: a unix front's socket file gets the owner, group
// and mode its address asks for, as nginx's workers need (www-data, 0660:
// "13: Permission denied" otherwise). Giving a file away takes root.
func TestUnixSocketOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a socket away takes root")
	}
	u, err := user.Lookup("www-data")
	if err != nil {
		t.Skip("no www-data user")
	}
	g, err := user.LookupGroup("www-data")
	if err != nil {
		t.Skip("no www-data group")
	}
	for _, tt := range []struct{ owner, group string }{{"www-data", "www-data"}, {u.Uid, g.Gid}, {"", "www-data"}} {
		dir := t.TempDir() // the fronts run until the test ends: a path each
		sock := filepath.Join(dir, "ferry.sock")
		listen := "fastcgi+unix://" + sock + "?mode=0660"
		if tt.owner != "" {
			listen += "&owner=" + tt.owner
		}
		listen += "&group=" + tt.group
		runFerry(t, mustConfig(t, listen))
		fi, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		wantUID := u.Uid
		if tt.owner == "" {
			wantUID = "0"
		}
		if strconv.Itoa(int(st.Uid)) != wantUID || strconv.Itoa(int(st.Gid)) != g.Gid || fi.Mode().Perm() != 0o660 {
			t.Errorf("%s: socket %d:%d %v; want %s:%s -rw-rw----", listen, st.Uid, st.Gid, fi.Mode().Perm(), wantUID, g.Gid)
		}
		// The check says nothing against it either.
		for _, f := range Check(t.Context(), mustConfig(t, "scgi+unix://"+dir+"/other.sock?mode=0660&owner="+tt.group+"&group="+tt.group), CheckOptions{}) {
			if f.Severity == Problem {
				t.Errorf("check: %s", f.Msg)
			}
		}
	}
}

// TestUnixSocketDefaultMode: a unix front with no mode= gets what bind(2)
// gives, 0777 less the umask (0755 under the usual 022: only ferry's user
// may connect), as the README and the options' reference say. They said
// 0666.
func TestUnixSocketDefaultMode(t *testing.T) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status to read the umask from: %v", err)
	}
	umask := -1
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatalf("umask %q: %v", v, err)
			}
			umask = int(m)
		}
	}
	if umask < 0 {
		t.Skip("/proc/self/status has no Umask line (Linux before 4.7)")
	}
	sock := filepath.Join(t.TempDir(), "ferry.sock")
	runFerry(t, mustConfig(t, "fastcgi+unix://"+sock))
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if want := os.FileMode(0o777 &^ umask); fi.Mode().Perm() != want {
		t.Errorf("socket mode %v under umask %03o; want %v", fi.Mode().Perm(), umask, want)
	}
	for _, o := range unixSocketOptions {
		if o.Name == "mode" && o.Default != "0777 less the umask" {
			t.Errorf("the mode option's default says %q; want %q", o.Default, "0777 less the umask")
		}
	}
}

// TestUnixSocketOwnerUnknown: an owner or group the system does not know
// is a configuration error naming it.
func TestUnixSocketOwnerUnknown(t *testing.T) {
	for _, tt := range []struct{ listen, want string }{
		{"fastcgi+unix:///tmp/x.sock?owner=no-such-user-ferry", `owner="no-such-user-ferry": no such user`},
		{"scgi+unix:///tmp/x.sock?group=no-such-group-ferry", `group="no-such-group-ferry": no such group`},
		{"fastcgi+unix:///tmp/x.sock?ownr=root", `unknown option "ownr" (did you mean owner?); fastcgi+unix:// (as a front) takes mode, owner, group`},
		{"fastcgi://127.0.0.1:9000?owner=root", `unknown option "owner": fastcgi:// (as a front) takes no options`},
	} {
		a, err := ParseAddress(tt.listen)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := New(Config{Listen: []Address{a}}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(listen %s) = %v; want %q", tt.listen, err, tt.want)
		}
	}
}
