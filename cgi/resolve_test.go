package cgi

import (
	"context"
	"errors"
	"fmt"
	"github.com/ferrygw/ferry/internal/testdir"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStatusOf(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"status error", &StatusError{Status: 503, Err: errors.New("busy")}, 503},
		{"wrapped status error", fmt.Errorf("x: %w", &StatusError{Status: 404}), 404},
		{"body too large", fmt.Errorf("%w: Content-Length 9", ErrBodyTooLarge), 413},
		{"invalid meta-variable", fmt.Errorf("%w: PATH_INFO", ErrInvalidMetaVariable), 400},
		{"deadline", fmt.Errorf("no answer: %w", context.DeadlineExceeded), 504},
		{"net timeout", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), 504},
		{"other", errors.New("connection refused"), 502},
		{"malformed", fmt.Errorf("%w: no header", ErrMalformedResponse), 502},
	} {
		if got := StatusOf(tt.err); got != tt.want {
			t.Errorf("StatusOf(%s: %v) = %d; want %d", tt.name, tt.err, got, tt.want)
		}
	}
	if got := (&StatusError{Status: 404}).Error(); got != "cgi: 404 Not Found" {
		t.Errorf("StatusError without a cause: %q", got)
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrBodyTooLarge), ErrBodyTooLarge) {
		t.Error("ErrBodyTooLarge is not found by errors.Is")
	}
}

func TestResolveStatus(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{os.ErrNotExist, 404},
		{fmt.Errorf("x: %w", os.ErrPermission), 403},
		{ErrInvalidMetaVariable, 400},
		{errors.New("anything"), 404},
		{&StatusError{Status: 500}, 500},
	} {
		if got := resolveStatus(tt.err); got != tt.want {
			t.Errorf("resolveStatus(%v) = %d; want %d", tt.err, got, tt.want)
		}
	}
}

// phpSite builds a document root for PHPSite's tests; outside holds what
// must never run.
func phpSite(t *testing.T) (root string) {
	t.Helper()
	root, outside := t.TempDir(), t.TempDir()
	for _, f := range []string{"index.php", "info.php", "sub/index.php", "style.css", "assets/logo.png", "uploads/evil.jpg"} {
		p := filepath.Join(root, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "evil.php"), []byte("evil"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "evil.php"), filepath.Join(root, "out.php")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "info.php"), filepath.Join(root, "in.php")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "theme.css"), []byte("theme"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "theme.css"), filepath.Join(root, "theme.css")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestPHPSiteResolve(t *testing.T) {
	root := phpSite(t)
	for _, front := range []string{"", "/index.php"} {
		site := &PHPSite{Root: root, FrontController: front}
		for _, tt := range []struct {
			path         string
			status       int // 0: a script
			name, info   string
			frontOnly    bool // the front controller answers only if set
			static       bool // PHPSite.Handler serves it as a static file
			filenameLeaf string
		}{
			{path: "/info.php", name: "/info.php", filenameLeaf: "info.php"},
			{path: "/info.php/a/b", name: "/info.php", info: "/a/b", filenameLeaf: "info.php"},
			{path: "/", name: "/index.php", filenameLeaf: "index.php"},
			{path: "/sub/", name: "/sub/index.php", filenameLeaf: "sub/index.php"},
			{path: "/in.php", name: "/in.php", filenameLeaf: "in.php"},
			{path: "/style.css", status: 404, static: true},
			{path: "/assets", status: 404, static: true},
			{path: "/missing.php", status: 404},
			{path: "/missing.php/x", status: 404},
			{path: "/uploads/evil.jpg/x.php", status: 404},  // CVE-2019-11043 style
			{path: "/out.php", status: 404},                 // a symbolic link out of Root
			{path: "/theme.css", status: 404, static: true}, // a static file may be one
			{path: "/pretty/url", status: 404, name: "/index.php", frontOnly: true, filenameLeaf: "index.php"},
			{path: "/a\x00.php", status: 400},
			{path: "/x\\info.php", status: 400},
			{path: "/sub/../info.php", status: 400},
			{path: "/./info.php", status: 400},
		} {
			t.Run(fmt.Sprintf("front=%q%s", front, tt.path), func(t *testing.T) {
				r := httptest.NewRequest("GET", "/", nil)
				r.URL.Path = tt.path
				s, err := site.Resolve(r)
				want := tt.status
				if tt.frontOnly && front != "" {
					want = 0
				}
				if want != 0 {
					if err == nil || StatusOf(err) != want {
						t.Fatalf("Resolve(%q) = %+v, %v; want status %d", tt.path, s, err, want)
					}
					return
				}
				if err != nil {
					t.Fatalf("Resolve(%q): %v", tt.path, err)
				}
				wantFile := filepath.Join(root, filepath.FromSlash(tt.filenameLeaf))
				if s.Name != tt.name || s.PathInfo != tt.info || s.Filename != wantFile || s.Root != root {
					t.Errorf("Resolve(%q) = %+v; want Name %q PathInfo %q Filename %q Root %q", tt.path, s, tt.name, tt.info, wantFile, root)
				}
			})
		}
	}
}

// scriptRecorder is a ScriptHandler that writes what it was given.
type scriptRecorder struct{}

func (scriptRecorder) ServeScript(w http.ResponseWriter, r *http.Request, s Script, err error) {
	if err != nil {
		http.Error(w, "error", StatusOf(err))
		return
	}
	fmt.Fprintf(w, "script %s %s", s.Name, s.PathInfo)
}

func TestPHPSiteHandler(t *testing.T) {
	root := phpSite(t)
	static := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "static "+r.URL.Path) })
	h := (&PHPSite{Root: root}).Handler(scriptRecorder{}, static)
	for _, tt := range []struct {
		path   string
		status int
		body   string
	}{
		{"/info.php/x", 200, "script /info.php /x"},
		{"/style.css", 200, "static /style.css"},
		{"/assets", 200, "static /assets"},
		{"/missing.php", 404, "error\n"},
		{"/uploads/evil.jpg/x.php", 404, "error\n"},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
		if w.Code != tt.status || w.Body.String() != tt.body {
			t.Errorf("GET %s: %d %q; want %d %q", tt.path, w.Code, w.Body, tt.status, tt.body)
		}
	}
}

// TestPHPSitePrefix: a site under a prefix (Apache's Alias) runs the
// files of Root with the prefix in SCRIPT_NAME, and nothing outside it.
func TestPHPSitePrefix(t *testing.T) {
	root := phpSite(t)
	static := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "static "+r.URL.Path) })
	for _, prefix := range []string{"/wiki/", "/wiki"} {
		site := &PHPSite{Root: root, Prefix: prefix}
		h := site.Handler(scriptRecorder{}, static)
		for _, tt := range []struct {
			path   string
			status int
			body   string
		}{
			{"/wiki/info.php/x", 200, "script /wiki/info.php /x"},
			{"/wiki/", 200, "script /wiki/index.php "},
			{"/wiki/sub/", 200, "script /wiki/sub/index.php "},
			{"/wiki/style.css", 200, "static /wiki/style.css"},
			{"/wiki/theme.css", 200, "static /wiki/theme.css"},
			{"/wiki/missing.php", 404, "error\n"},
			{"/info.php", 404, "error\n"},
			{"/wikiinfo.php", 404, "error\n"},
			{"/wiki/out.php", 404, "error\n"},
		} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
			if w.Code != tt.status || w.Body.String() != tt.body {
				t.Errorf("prefix %s: GET %s: %d %q; want %d %q", prefix, tt.path, w.Code, w.Body, tt.status, tt.body)
			}
		}
		r := httptest.NewRequest("GET", "/wiki/info.php", nil)
		s, err := site.Resolve(r)
		if err != nil || s.Filename != filepath.Join(root, "info.php") || s.Root != root {
			t.Errorf("prefix %s: Resolve(/wiki/info.php) = %+v, %v; want %s", prefix, s, err, filepath.Join(root, "info.php"))
		}
	}
}

// TestFilenameDirResolve checks which SCRIPT_FILENAME runs. Every refusal
// is 403, as fcgiwrap answers for each (nginx 1.22 + fcgiwrap 1.1:
// missing, no execute bit, a directory, relative, empty); a missing script
// was 404 and a relative or unclean path 400.
func TestFilenameDirResolve(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	ok := writeScript(t, root, "ok.sh", "true")
	writeScript(t, outside, "evil.sh", "true")
	if err := os.WriteFile(filepath.Join(root, "noexec.sh"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "evil.sh"), filepath.Join(root, "out.sh")); err != nil {
		t.Fatal(err)
	}
	d := &FilenameDir{Roots: []string{root}}
	for _, tt := range []struct {
		name   string
		origin map[string]string // nil: no FastCGI or SCGI front
		status int               // 0: runs ok.sh
	}{
		{"script", map[string]string{"SCRIPT_FILENAME": ok, "SCRIPT_NAME": "/cgi-bin/ok.sh", "PATH_INFO": "/x", "DOCUMENT_ROOT": root}, 0},
		{"from document root", map[string]string{"SCRIPT_NAME": "/ok.sh", "PATH_INFO": "/x", "DOCUMENT_ROOT": root}, 0},
		{"no origin", nil, 500},
		{"no filename", map[string]string{"SCRIPT_NAME": "/ok.sh"}, 403},
		{"relative", map[string]string{"SCRIPT_FILENAME": "ok.sh"}, 403},
		{"NUL", map[string]string{"SCRIPT_FILENAME": ok + "\x00"}, 403},
		{"unclean", map[string]string{"SCRIPT_FILENAME": root + "/../" + filepath.Base(root) + "/ok.sh"}, 403},
		{"missing", map[string]string{"SCRIPT_FILENAME": filepath.Join(root, "missing.sh")}, 403},
		{"directory", map[string]string{"SCRIPT_FILENAME": root}, 403},
		{"path info", map[string]string{"SCRIPT_FILENAME": ok + "/x"}, 403},
		{"not executable", map[string]string{"SCRIPT_FILENAME": filepath.Join(root, "noexec.sh")}, 403},
		{"outside", map[string]string{"SCRIPT_FILENAME": filepath.Join(outside, "evil.sh")}, 403},
		{"link outside", map[string]string{"SCRIPT_FILENAME": filepath.Join(root, "out.sh")}, 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/cgi-bin/ok.sh/x", nil)
			if tt.origin != nil {
				r = r.WithContext(WithOrigin(r.Context(), tt.origin))
			}
			s, err := d.Resolve(r)
			if tt.status != 0 {
				if err == nil || StatusOf(err) != tt.status {
					t.Fatalf("Resolve = %+v, %v; want status %d", s, err, tt.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Filename != ok || s.PathInfo != "/x" || s.Root != root || !strings.HasSuffix(s.Name, "ok.sh") {
				t.Errorf("Resolve = %+v; want %s with PATH_INFO /x", s, ok)
			}
		})
	}
}

// TestDirFrontDocumentRoot checks the DOCUMENT_ROOT of a Dir's scripts:
// the one a FastCGI or SCGI front sent, as fcgiwrap passes nginx's on
// (the script's directory was given instead); Dir.Root when set; else
// none, which the Handler makes the script's directory.
func TestDirFrontDocumentRoot(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "env.sh", "true")
	for _, tt := range []struct {
		name   string
		root   string
		origin map[string]string
		want   string
	}{
		{"front", "", map[string]string{"DOCUMENT_ROOT": "/srv/www"}, "/srv/www"},
		{"front without one", "", map[string]string{"SCRIPT_NAME": "/cgi-bin/env.sh"}, ""},
		{"front with NUL", "", map[string]string{"DOCUMENT_ROOT": "/srv/\x00www"}, ""},
		{"Root set", "/var/www", map[string]string{"DOCUMENT_ROOT": "/srv/www"}, "/var/www"},
		{"HTTP front", "", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/cgi-bin/env.sh/x", nil)
			if tt.origin != nil {
				r = r.WithContext(WithOrigin(r.Context(), tt.origin))
			}
			s, err := (&Dir{Path: dir, Prefix: "/cgi-bin/", Root: tt.root}).Resolve(r)
			if err != nil || s.Root != tt.want {
				t.Errorf("Resolve = %+v, %v; want Root %q", s, err, tt.want)
			}
		})
	}
}

// TestForwarderBusy checks the Busy hook brackets each forwarded request,
// and is not called for a request that finds no script.
func TestForwarderBusy(t *testing.T) {
	busy, done := 0, 0
	x := transportFunc(func(ctx context.Context, req *AppRequest) (*AppResponse, error) {
		if busy != done+1 {
			t.Errorf("request sent with %d busy, %d done", busy, done)
		}
		return &AppResponse{Body: io.NopCloser(strings.NewReader("Content-Type: text/plain\r\n\r\nok"))}, nil
	})
	f := &Forwarder{Transport: x, Busy: func() func() { busy++; return func() { done++ } }}
	w := httptest.NewRecorder()
	f.ServeHTTP(w, httptest.NewRequest("GET", "/a/b", nil))
	if w.Code != 200 || w.Body.String() != "ok" || busy != 1 || done != 1 {
		t.Errorf("got %d %q, busy %d done %d; want 200 \"ok\", 1 and 1", w.Code, w.Body, busy, done)
	}
	f.Resolver = Mount{Prefix: "/app/"}
	w = httptest.NewRecorder()
	f.ServeHTTP(w, httptest.NewRequest("GET", "/other", nil))
	if w.Code != 404 || busy != 1 {
		t.Errorf("outside the mount: %d, busy %d; want 404 and no Busy call", w.Code, busy)
	}
}

// TestHandlerMount checks the single-script Handler (no Resolver): paths
// outside ScriptName are 404, and a Resolver that names no file is 500.
func TestHandlerMount(t *testing.T) {
	dir := testdir.Open(t)
	script := writeScript(t, dir, "s.sh", `printf 'Content-Type: text/plain\n\n%s|%s' "$SCRIPT_NAME" "$PATH_INFO"`)
	var logs syncBuffer
	h := &Handler{Path: script, ScriptName: "/app", Settings: Settings{Logger: testLogger(&logs)}}
	for _, tt := range []struct {
		path   string
		status int
		body   string
	}{
		{"/app/x", 200, "/app|/x"},
		{"/app", 200, "/app|"},
		{"/apple", 404, "404 Not Found\n"},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
		if w.Code != tt.status || w.Body.String() != tt.body {
			t.Errorf("GET %s: %d %q; want %d %q", tt.path, w.Code, w.Body, tt.status, tt.body)
		}
	}
	noFile := &Handler{Resolver: Mount{Prefix: "/"}, Settings: Settings{Logger: testLogger(&logs)}}
	w := httptest.NewRecorder()
	noFile.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 500 {
		t.Errorf("a resolver without SCRIPT_FILENAME: %d; want 500", w.Code)
	}
}

// TestPHPSiteRegularSteps: regular, which joins once and checks each
// prefix of the path, answers as the join at each step does, for the
// roots it takes that shortcut for and those it does not ("."), and
// for names whose components are not plain.
func TestPHPSiteRegularSteps(t *testing.T) {
	root := phpSite(t)
	if err := os.Symlink("sub", filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	names := []string{
		"/info.php", "/sub/index.php", "/in.php", "/out.php", "/alias/index.php", "/missing.php",
		"/sub", "/style.css", "/assets/logo.png", "/uploads/evil.jpg", "/uploads/evil.jpg/x.php",
		"/", "//info.php", "/sub//index.php", "/sub/", "/./info.php", "/sub/../info.php",
		"/../" + filepath.Base(root) + "/info.php", "info.php", "/sub/index.php/",
	}
	t.Chdir(root)
	for _, dir := range []string{root, root + "/", ".", filepath.Dir(root) + "/" + filepath.Base(root) + "/sub/.."} {
		site := &PHPSite{Root: dir}
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			file, ok := site.regular(real, name)
			wantFile, wantOK := site.regularSteps(real, name)
			if file != wantFile || ok != wantOK {
				t.Errorf("root %q: regular(%q) = %q, %v; a join at each step: %q, %v", dir, name, file, ok, wantFile, wantOK)
			}
		}
	}
}

// TestPHPSitePathInfoSplit: SCRIPT_NAME and PATH_INFO split the path
// exactly where the script's segment ends, empty segments and a final
// slash kept.
func TestPHPSitePathInfoSplit(t *testing.T) {
	site := &PHPSite{Root: phpSite(t), Prefix: "/w/"}
	for _, tt := range []struct{ path, name, info string }{
		{"/w/info.php", "/w/info.php", ""},
		{"/w/info.php/", "/w/info.php", "/"},
		{"/w/info.php//a//", "/w/info.php", "//a//"},
		{"/w/sub/index.php/x.php/y", "/w/sub/index.php", "/x.php/y"},
		{"/w//info.php/a", "/w//info.php", "/a"}, // the file is Root/info.php
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = tt.path
		s, err := site.Resolve(r)
		if err != nil || s.Name != tt.name || s.PathInfo != tt.info {
			t.Errorf("Resolve(%q) = %q, %q, %v; want %q, %q", tt.path, s.Name, s.PathInfo, err, tt.name, tt.info)
		}
	}
}

// TestPHPSiteRemembersScripts checks the memory of scripts found: a
// script removed is still found within scriptCheckValid and not after; a
// missing one is never remembered; and the memory stays within
// maxFoundScripts, dropping the expired first.
func TestPHPSiteRemembersScripts(t *testing.T) {
	root := t.TempDir()
	write := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte("<?php"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clock := time.Unix(1e9, 0)
	site := &PHPSite{Root: root, now: func() time.Time { return clock }}
	resolve := func(path string) error {
		t.Helper()
		r := httptest.NewRequest("GET", path, nil)
		_, err := site.Resolve(r)
		return err
	}
	write("a.php")
	if err := resolve("/a.php"); err != nil {
		t.Fatalf("/a.php: %v", err)
	}
	if err := os.Remove(filepath.Join(root, "a.php")); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(scriptCheckValid - time.Millisecond)
	if err := resolve("/a.php"); err != nil {
		t.Errorf("/a.php removed %v after it was found: %v; want it still found", scriptCheckValid-time.Millisecond, err)
	}
	clock = clock.Add(time.Millisecond)
	if err := resolve("/a.php"); StatusOf(err) != 404 {
		t.Errorf("/a.php removed %v after it was found: %v; want 404", scriptCheckValid, err)
	}

	if err := resolve("/b.php"); StatusOf(err) != 404 {
		t.Fatalf("/b.php before it exists: %v; want 404", err)
	}
	write("b.php")
	if err := resolve("/b.php"); err != nil {
		t.Errorf("/b.php once written: %v; a missing script must not be remembered", err)
	}

	// Full of scripts found at once, the memory starts again; full of
	// expired ones, it drops them.
	site.mu.Lock()
	clear(site.found)
	for i := range maxFoundScripts {
		site.found[fmt.Sprintf("/s%d.php", i)] = foundScript{file: "x", at: clock}
	}
	site.mu.Unlock()
	if err := resolve("/b.php"); err != nil {
		t.Fatal(err)
	}
	if n := len(site.found); n != 1 {
		t.Errorf("after a script found in a memory full of recent ones: %d remembered; want 1", n)
	}
	site.mu.Lock()
	for i := range maxFoundScripts - 2 {
		site.found[fmt.Sprintf("/s%d.php", i)] = foundScript{file: "x", at: clock.Add(-scriptCheckValid)}
	}
	site.found["/recent.php"] = foundScript{file: "x", at: clock}
	site.mu.Unlock()
	write("c.php")
	if err := resolve("/c.php"); err != nil {
		t.Fatal(err)
	}
	_, recent := site.found["/recent.php"]
	if n := len(site.found); n != 3 || !recent {
		t.Errorf("after a script found in a memory full of expired ones: %d remembered (recent kept: %v); want 3: b, recent and c", n, recent)
	}
}

// TestFilenameDirLocalRedirect checks that a local redirect (RFC 3875
// § 6.2.2) from a script found by SCRIPT_FILENAME goes back to the front
// web server as 302, as fcgiwrap's does behind nginx: the front maps URLs
// to scripts, and served here the redirect's SCRIPT_FILENAME still named
// the same script, which ran 10 times before a 500.
func TestFilenameDirLocalRedirect(t *testing.T) {
	dir := testdir.Open(t)
	runs := filepath.Join(dir, "runs")
	script := writeScript(t, dir, "loc.sh", "echo run >> "+runs+"\nprintf 'Location: /cgi-bin/env.sh?x=1\\n\\n'\n")
	var logs syncBuffer
	h := &Handler{Resolver: &FilenameDir{Roots: []string{dir}}, Settings: Settings{Logger: testLogger(&logs)}}
	r := httptest.NewRequest("POST", "/cgi-bin/loc.sh", strings.NewReader("a=1"))
	r = r.WithContext(WithOrigin(r.Context(), map[string]string{"SCRIPT_FILENAME": script, "SCRIPT_NAME": "/cgi-bin/loc.sh", "DOCUMENT_ROOT": dir}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusFound || w.Header().Get("Location") != "/cgi-bin/env.sh?x=1" {
		t.Errorf("local redirect: %d, Location %q; want 302 to /cgi-bin/env.sh?x=1\n%s", w.Code, w.Header().Get("Location"), logs.String())
	}
	if b, err := os.ReadFile(runs); err != nil || string(b) != "run\n" {
		t.Errorf("the script ran %d times; want once", strings.Count(string(b), "run"))
	}
}
