package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
)

// dokuwikiDir is where Debian's dokuwiki package installs DokuWiki.
const dokuwikiDir = "/usr/share/dokuwiki"

// dokuwikiAppend runs after every script (auto_append_file): it shows that
// php_value reached PHP (the prepend file ran, the ini values took) and
// which file ran, which must be under the Alias's directory either way.
const dokuwikiAppend = `<?php
echo "\n<!-- migrate: ", $GLOBALS['migrate_prepended'] ?? 'no prepend',
	" memory_limit=", ini_get('memory_limit'), " html_errors=", ini_get('html_errors'),
	" script=", $_SERVER['SCRIPT_NAME'], " file=", $_SERVER['SCRIPT_FILENAME'], " -->\n";
`

// dokuwikiSite builds a DokuWiki site in a temporary directory from
// Debian's package, without writing into /usr/share/dokuwiki or /etc:
//
//   - the scripts a request names (doku.php, index.php, lib/exe/*.php) are
//     copies: ferry runs only scripts inside the directory it serves, and
//     DokuWiki takes DOKU_INC from the script's own path (PHP resolves
//     __FILE__ through symbolic links, so a linked doku.php would load
//     Debian's configuration);
//   - inc/ holds links to Debian's files but its own preload.php, which
//     points DOKU_CONF to conf/ here (and a copy of init.php, which reads
//     the preload.php beside its own real path): links to /etc/dokuwiki but for
//     local.php, which puts the savedir (pages, cache, index, sessions'
//     locks) in data/ here, and turns the ACL off;
//   - everything else (lib/images, lib/tpl, vendor, bin) is a symbolic
//     link, as lib/tpl already is in Debian's layout;
//   - .htaccess is Debian's, plus php_value lines: auto_prepend_file and
//     auto_append_file (the Wordfence pattern) and two ini values, which
//     the appended file prints.
//
// It returns the site's directory.
func dokuwikiSite(t *testing.T) string {
	t.Helper()
	dir := testdir.Open(t) // Apache's mod_php writes the cache as www-data
	site := filepath.Join(dir, "dokuwiki")
	link := func(from, to string) {
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(from, to); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, body string) {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		write(to, string(b))
	}
	entries := func(d string) []os.DirEntry {
		es, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	for _, e := range entries(dokuwikiDir) {
		from, to := filepath.Join(dokuwikiDir, e.Name()), filepath.Join(site, e.Name())
		switch {
		case e.Name() == ".htaccess":
		case e.Name() == "inc":
			for _, f := range entries(from) {
				switch f.Name() {
				case "preload.php":
				case "init.php": // includes the preload.php beside it
					copyFile(filepath.Join(from, f.Name()), filepath.Join(to, f.Name()))
				default:
					link(filepath.Join(from, f.Name()), filepath.Join(to, f.Name()))
				}
			}
		case e.Name() == "lib":
			for _, f := range entries(from) {
				if f.Name() != "exe" {
					link(filepath.Join(from, f.Name()), filepath.Join(to, f.Name()))
					continue
				}
				for _, x := range entries(filepath.Join(from, "exe")) {
					copyFile(filepath.Join(from, "exe", x.Name()), filepath.Join(to, "exe", x.Name()))
				}
			}
		case e.Type().IsRegular():
			copyFile(from, to)
		default:
			link(from, to)
		}
	}
	conf := filepath.Join(dir, "conf")
	for _, e := range entries("/etc/dokuwiki") {
		if e.Name() != "local.php" {
			link(filepath.Join("/etc/dokuwiki", e.Name()), filepath.Join(conf, e.Name()))
		}
	}
	data := filepath.Join(dir, "data")
	write(filepath.Join(site, "inc", "preload.php"), "<?php\ndefine('DOKU_CONF', '"+conf+"/');\n")
	write(filepath.Join(conf, "local.php"), "<?php\n$conf['title'] = 'Migration test';\n$conf['savedir'] = '"+data+"';\n"+
		"$conf['useacl'] = 0;\n$conf['send404'] = 1;\n")
	write(filepath.Join(data, "pages", "start.txt"), "====== Migration test ======\n\nThis wiki ran under mod_php; now php-fpm runs it behind ferry.\n\n  * [[nosuchpage]]\n  * {{wiki:dokuwiki-128.png}}\n")
	copyFile("/var/lib/dokuwiki/data/media/wiki/dokuwiki-128.png", filepath.Join(data, "media", "wiki", "dokuwiki-128.png"))
	for _, d := range []string{"pages", "attic", "meta", "media", "media/wiki", "media_attic", "media_meta", "cache", "index", "locks", "tmp", "log"} {
		p := filepath.Join(data, d)
		if err := os.MkdirAll(p, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o777); err != nil { // mkdir's mode is masked
			t.Fatal(err)
		}
	}
	if err := os.Chmod(data, 0o777); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(dir, "prepend.php"), "<?php\n$GLOBALS['migrate_prepended'] = 'prepended';\n")
	write(filepath.Join(dir, "append.php"), dokuwikiAppend)
	htaccess, err := os.ReadFile("/etc/dokuwiki/htaccess")
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(site, ".htaccess"), string(htaccess)+"\n## PHP settings a plugin's install notes asked for\n"+
		"php_value auto_prepend_file "+filepath.Join(dir, "prepend.php")+"\n"+
		"php_value auto_append_file "+filepath.Join(dir, "append.php")+"\n"+
		"php_value memory_limit 77M\nphp_flag html_errors off\n")
	if err := peers.MakeWorldReadable(dir); err != nil {
		t.Fatal(err)
	}
	// mod_php runs as www-data, php-fpm's test pool as root: the page
	// must be writable by both, or only one shows "Edit this page"
	page := filepath.Join(data, "pages", "start.txt")
	if err := os.Chmod(page, 0o666); err != nil {
		t.Fatal(err)
	}
	// The search shows the page's age ("6 years ago"): old enough that it
	// reads the same for the whole test.
	old := time.Now().Add(-time.Duration(5.5 * 365 * 24 * float64(time.Hour)))
	if err := os.Chtimes(page, old, old); err != nil {
		t.Fatal(err)
	}
	return site
}

// taskrunnerTime is the time DokuWiki puts in the URL of its indexer
// image, which differs from one request to the next.
var taskrunnerTime = regexp.MustCompile(`(taskrunner\.php\?id=[^"&]*&amp;)[0-9]+`)

// dokuwikiResponse is what the migration must keep of a DokuWiki page:
// the status and the body. Only what must differ is normalised: the
// server's host:port, which DokuWiki writes into absolute links, and the
// indexer image's time stamp. The body of an error the web server makes
// itself (not DokuWiki: errorPage false) is dropped, since it names the
// server. No session cookie is kept between requests, and no page shown
// carries a CSRF token (the ACL is off: no login form).
func dokuwikiResponse(t *testing.T, base, path string, errorPage bool) string {
	t.Helper()
	status, code, body := fetch(t, base, path)
	if code >= 400 && !errorPage {
		body = nil
	}
	return status + "\n" + string(taskrunnerTime.ReplaceAll(body, []byte("${1}TIME")))
}

// TestMigrateDokuWiki is the mod_php migration end to end: a DokuWiki site
// under Apache with mod_php, Debian's way (an Alias, AllowOverride All,
// php_value in .htaccess), answers a set of requests; ferry migrate reads
// the httpd.conf Apache ran and the php-fpm pool file; php-fpm and ferry
// start with what it wrote, and must answer the same, alone and behind
// Apache running the front.conf migrate wrote.
func TestMigrateDokuWiki(t *testing.T) {
	peerstest.Need(t, "apache2", "php-fpm")
	if _, err := os.Stat(filepath.Join(dokuwikiDir, "doku.php")); err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("dokuwiki is not installed: %v", err)
		}
		t.Skipf("dokuwiki is not installed (.ci/run installs it): %v", err)
	}
	site := dokuwikiSite(t)
	old := peerstest.ApacheModPHP(t, peers.ApacheModPHPConfig{Root: site, Prefix: "/dokuwiki",
		Options: "+FollowSymLinks", AllowOverride: "All", DirectoryIndex: "index.php"})
	// Paths both ferry and its front must answer as mod_php did, and
	// whether the error page is DokuWiki's own.
	paths := []struct {
		path      string
		errorPage bool
	}{
		{"/dokuwiki/", false}, // index.php redirects to the start page
		{"/dokuwiki/doku.php", false},
		{"/dokuwiki/doku.php?id=nosuchpage", true}, // DokuWiki's 404 (send404)
		{"/dokuwiki/doku.php?do=search&id=start&q=migration", false},
		{"/dokuwiki/lib/exe/fetch.php?media=wiki:dokuwiki-128.png", false},
		{"/dokuwiki/lib/images/email.png", false},
		{"/dokuwiki/lib/tpl/dokuwiki/images/logo.png", false}, // static, through Debian's link to /var/lib
		{"/dokuwiki/missing.php", false},
		{"/dokuwiki/missing.txt", false},
	}
	// Paths Apache refuses by <Directory> sections and .htaccess files:
	// only the front keeps refusing them (front.conf's <Location>
	// sections); ferry serving alone does not check access, as the
	// report says for each rule.
	refused := []string{
		"/dokuwiki/inc/init.php",
		"/dokuwiki/vendor/autoload.php",
		"/dokuwiki/bin/indexer.php",
		"/dokuwiki/VERSION",
	}
	// The indexer, as a browser's request for its image runs it, so the
	// search finds the start page.
	if resp, err := http.Get(old.URL + "/dokuwiki/lib/exe/taskrunner.php?id=start"); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body) // its answer (an image) is not what is checked
		resp.Body.Close()
	}
	want := map[string]string{}
	for _, p := range paths {
		want[p.path] = dokuwikiResponse(t, old.URL, p.path, p.errorPage)
	}
	for _, p := range refused {
		want[p] = dokuwikiResponse(t, old.URL, p, false)
		if !strings.HasPrefix(want[p], "403") {
			t.Fatalf("GET %s from Apache = %s; the test's premise (a refused path) changed", p, want[p])
		}
	}
	if w := want["/dokuwiki/doku.php?do=search&id=start&q=migration"]; !strings.Contains(w, `class="search_results"`) || strings.Contains(w, "Nothing was found") {
		t.Fatalf("the search finds nothing: the indexer did not run\n%s", w)
	}
	if w := want["/dokuwiki/doku.php"]; !strings.Contains(w, "Migration test") || !strings.Contains(w, "<!-- migrate: prepended memory_limit=77M html_errors=0 script=/dokuwiki/doku.php file="+site+"/doku.php -->") {
		t.Fatalf("mod_php did not run the site with its php_value settings:\n%s", w)
	}

	fpm := peerstest.RunPHPFPM(t, peers.PHPFPMConfig{SystemINI: true})
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	conf, pool := filepath.Join(old.Dir, "httpd.conf"), filepath.Join(fpm.Dir, "php-fpm.conf")
	if code := run([]string{"migrate", "apache", conf, pool, "--out", out}, &stdout, &stderr); code == 2 {
		t.Fatalf("ferry migrate apache %s %s: exit 2\n%s%s", conf, pool, stdout.String(), stderr.String())
	}
	toml, err := os.ReadFile(filepath.Join(out, "ferry.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`[mount."/dokuwiki/"]`, `alias = "` + site + `"`, "auto_prepend_file=", "memory_limit=77M", "html_errors=0", fpm.Address} {
		if !strings.Contains(string(toml), s) {
			t.Fatalf("ferry.toml lacks %s:\n%s\n%s", s, toml, stdout.String())
		}
	}

	fastcgi := freeAddr(t)
	p := startFerryArgs(t, "--config", filepath.Join(out, "ferry.toml"), "--listen", "http://127.0.0.1:0", "--listen", "fastcgi://"+fastcgi)
	for _, pt := range paths {
		if got := dokuwikiResponse(t, p.URL, pt.path, pt.errorPage); got != want[pt.path] {
			t.Errorf("GET %s through ferry differs from Apache mod_php:\n%s", pt.path, firstDiff(want[pt.path], got))
		}
	}

	front, err := os.ReadFile(filepath.Join(out, "front.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// the one adaptation: ferry's FastCGI listener is on the port the
	// test picked, not 9090
	f := peerstest.ApacheFront(t, peers.ApacheFrontConfig{Conf: strings.ReplaceAll(string(front), "127.0.0.1:9090", fastcgi)})
	for _, pt := range paths {
		if got := dokuwikiResponse(t, f.URL, pt.path, pt.errorPage); got != want[pt.path] {
			t.Errorf("GET %s through Apache's front.conf and ferry differs from Apache mod_php:\n%s", pt.path, firstDiff(want[pt.path], got))
		}
	}
	for _, path := range refused {
		if got := dokuwikiResponse(t, f.URL, path, false); got != want[path] {
			t.Errorf("GET %s through Apache's front.conf and ferry differs from Apache mod_php:\n%s", path, firstDiff(want[path], got))
		}
	}
	if t.Failed() {
		logs, _ := f.Logs()
		t.Logf("front.conf:\n%s\nfront's logs:\n%s\nferry's logs:\n%s", front, logs, p.logs)
	}
}

// firstDiff shows where got first differs from want, with a few lines
// around it.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	lo := max(i-3, 0)
	return fmt.Sprintf("line %d (of %d; got %d):\n--- want\n%s\n--- got\n%s", i+1, len(w), len(g),
		strings.Join(w[lo:min(i+4, len(w))], "\n"), strings.Join(g[lo:min(i+4, len(g))], "\n"))
}
