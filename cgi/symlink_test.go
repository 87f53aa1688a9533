package cgi

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/testdir"
)

// TestDirSymlinkPolicy: Debian's /usr/lib/cgi-bin/gitweb.cgi is a link
// into /usr/share/gitweb; Apache's SymLinksIfOwnerMatch runs it, and so must
// the default policy. A link whose owner does not own its target, and any
// link under "never", is refused with 403 and a logged reason.
func TestDirSymlinkPolicy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a link another owner")
	}
	bin, share := testdir.Open(t), testdir.Open(t)
	target := writeScript(t, share, "app.cgi", `printf 'Content-Type: text/plain\n\napp'`)
	inside := writeScript(t, bin, "real.cgi", `printf 'Content-Type: text/plain\n\nreal'`)
	for name, to := range map[string]string{"same-owner.cgi": target, "other-owner.cgi": target, "inside.cgi": inside} {
		if err := os.Symlink(to, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Lchown(filepath.Join(bin, "other-owner.cgi"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		policy                    SymlinkPolicy
		same, other, insideLinkOK int
	}{
		{SymlinksOwnerMatch, 200, 403, 200},
		{SymlinksFollow, 200, 200, 200},
		{SymlinksNever, 403, 403, 403},
	} {
		t.Run(tt.policy.String(), func(t *testing.T) {
			var logs syncBuffer
			h := &Handler{Resolver: &Dir{Path: bin, Prefix: "/cgi-bin/", Symlinks: tt.policy}, Settings: Settings{Logger: testLogger(&logs)}}
			for path, want := range map[string]int{"same-owner.cgi": tt.same, "other-owner.cgi": tt.other, "inside.cgi": tt.insideLinkOK, "real.cgi": 200} {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", "/cgi-bin/"+path, nil))
				if w.Code != want {
					t.Errorf("%s under %s: %d; want %d", path, tt.policy, w.Code, want)
				}
			}
			if tt.other == 403 && !strings.Contains(logs.String(), `"level":"info"`) || tt.other == 403 && !strings.Contains(logs.String(), "symbolic link") {
				t.Errorf("a refused link is not logged at info with its reason:\n%s", logs.String())
			}
		})
	}
	if p, err := ParseSymlinkPolicy("owner-match"); err != nil || p != SymlinksOwnerMatch {
		t.Errorf("ParseSymlinkPolicy(owner-match) = %v, %v", p, err)
	}
	if _, err := ParseSymlinkPolicy("sometimes"); err == nil {
		t.Error("ParseSymlinkPolicy(sometimes) succeeded")
	}
}

// TestDirNoExecLogged: a file without an execute bit is 403, logged at info
// with the reason.
func TestDirNoExecLogged(t *testing.T) {
	dir := testdir.Open(t)
	if err := os.WriteFile(filepath.Join(dir, "plain.cgi"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	h := &Handler{Resolver: &Dir{Path: dir, Prefix: "/cgi-bin/"}, Settings: Settings{Logger: testLogger(&logs)}}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/cgi-bin/plain.cgi", nil))
	if w.Code != 403 || !strings.Contains(logs.String(), "has no execute bit") || !strings.Contains(logs.String(), `"level":"info"`) {
		t.Errorf("no execute bit: %d; log:\n%s", w.Code, logs.String())
	}
}
