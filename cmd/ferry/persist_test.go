package main

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
)

// statePL keeps state in globals between requests; under CGI every
// request starts afresh, and so must it kept compiled.
const statePL = `#!/usr/bin/perl
use strict;
use warnings;
our $count;
our %seen;
our $first = $ENV{QUERY_STRING} unless defined $first;
$count++;
$seen{$ENV{QUERY_STRING}} = 1;
print "Content-Type: text/plain\r\n\r\n";
print "count=$count seen=", scalar(keys %seen), " first=$first\n";
`

// TestPersistentPerlConformance runs the CGI conformance suite, gitweb
// and cgit included, against "ferry serve --mount
// /cgi-bin/=cgi:DIR?persist=perl": gitweb and the Perl scripts run in
// ferry's Perl workers, the others as CGI processes; every check passes
// as it does per request. A script keeping global state answers as a CGI
// process does.
func TestPersistentPerlConformance(t *testing.T) {
	leakcheck.Check(t)
	peerstest.Need(t, "perl", "python3", "git", "gitweb", "cgit")
	cgiDir, git := conformanceDir(t)
	writeExec(t, filepath.Join(cgiDir, "state.pl"), statePL)
	args := []string{"--mount", "/cgi-bin/=cgi:" + cgiDir + "?persist=perl&workers=3", "--mount", "/plain/=cgi:" + cgiDir, "--cgi-kill-grace", "1s"}
	for _, kv := range git.Env {
		args = append(args, "--env", kv)
	}
	p := startFerry(t, args...)
	pids := loggedPool(t, p, "Perl CGI workers")
	runConformance(t, p, cgiDir, git)

	// gitweb ran in the workers (compiled on each run: it has named subs
	// using file-scope lexicals), never as a CGI process; shell scripts
	// ran as CGI processes.
	logs := p.logs.String()
	if !strings.Contains(logs, "gitweb.cgi is compiled on each run") {
		t.Errorf("no worker compiled gitweb.cgi")
	}
	for _, name := range []string{"gitweb.cgi", "env.pl", "big.pl"} {
		if len(p.logs.Lines(`"message":"cgi: script finished"`, name)) > 0 {
			t.Errorf("%s ran as a CGI process under persist=perl", name)
		}
	}
	if len(p.logs.Lines(`"message":"cgi: script finished"`, "env.sh")) == 0 {
		t.Errorf("env.sh did not run as a CGI process")
	}

	for i := range 6 {
		q := strconv.Itoa(i)
		_, kept := httpGet(t, p.URL+"/cgi-bin/state.pl?"+q)
		_, fresh := httpGet(t, p.URL+"/plain/state.pl?"+q)
		if want := "count=1 seen=1 first=" + q + "\n"; kept != want || fresh != want {
			t.Errorf("state.pl?%s: kept compiled %q, as a CGI process %q; want %q for both", q, kept, fresh, want)
		}
	}
	// Still the workers ferry started: none died on the way.
	if now := loggedPool(t, p, "Perl CGI workers"); !slices.Equal(now, pids) {
		t.Errorf("workers %v; started %v", now, pids)
	}
	stopAndCheckWorkers(t, p)
	if strings.Contains(p.logs.String(), "panic") {
		t.Errorf("ferry logged a panic:\n%s", p.logs)
	}
}

// phpScript is a CGI script for php-cgi that shows the worker it ran in.
const phpScript = `#!/usr/bin/php-cgi -dcgi.force_redirect=0
<?php
header('Content-Type: text/plain');
$n = ($GLOBALS['n'] ?? 0) + 1;
printf("n=%d q=%s script=%s pid=%d\n", $n, $_SERVER['QUERY_STRING'], $_SERVER['SCRIPT_NAME'], getmypid());
`

// TestPersistentPHP: cgi:DIR?persist=php runs the directory's .php files
// in php-cgi FastCGI workers ferry starts, with the answers a CGI process
// gives; other scripts still run as CGI processes.
func TestPersistentPHP(t *testing.T) {
	leakcheck.Check(t)
	peerstest.Need(t, "php-cgi")
	dir := testdir.Open(t) // the /plain/ scripts run as www-data under root
	writeExec(t, filepath.Join(dir, "hello.php"), phpScript)
	writeExec(t, filepath.Join(dir, "hello.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nsh pid=%s\\n' $$\n")
	p := startFerry(t, "--mount", "/cgi-bin/=cgi:"+dir+"?persist=php&workers=2&max_requests=50", "--mount", "/plain/=cgi:"+dir)
	loggedPool(t, p, "php-cgi workers")
	for i := range 5 {
		q := strconv.Itoa(i)
		_, kept := httpGet(t, p.URL+"/cgi-bin/hello.php?"+q)
		_, fresh := httpGet(t, p.URL+"/plain/hello.php?"+q)
		kf, ff := strings.Fields(kept), strings.Fields(fresh)
		if len(kf) != 4 || len(ff) != 4 || kf[0] != "n=1" || kf[1] != "q="+q || kf[2] != "script=/cgi-bin/hello.php" ||
			ff[0] != kf[0] || ff[1] != kf[1] || ff[2] != "script=/plain/hello.php" {
			t.Errorf("hello.php?%s: in the workers %q, as a CGI process %q", q, kept, fresh)
			continue
		}
		if pid, _ := strconv.Atoi(strings.TrimPrefix(kf[3], "pid=")); !slices.Contains(startedWorkers(p), pid) {
			t.Errorf("hello.php ran in pid %d, not in a worker (%v)", pid, startedWorkers(p))
		}
	}
	if _, body := httpGet(t, p.URL+"/cgi-bin/hello.sh"); !strings.HasPrefix(body, "sh pid=") {
		t.Errorf("hello.sh: %q", body)
	}
	if err := os.Remove(filepath.Join(dir, "hello.php")); err != nil {
		t.Fatal(err)
	}
	if code, _ := httpGet(t, p.URL+"/cgi-bin/hello.php"); code != http.StatusNotFound {
		t.Errorf("a removed script: %d; want 404", code)
	}
	stopAndCheckWorkers(t, p)
}
