package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GitFixture is a bare git repository with gitweb and cgit configuration, for
// the gitweb-cgit check. Build one with [NewGitFixture], install the apps with
// [InstallGitApps], run gitweb.cgi and cgit.cgi with Env, and set [Target.Git].
type GitFixture struct {
	// Dir holds everything: projects/<Project>, gitweb.conf, cgitrc, gitconfig.
	Dir string

	// Project is the repository's path under gitweb's project root.
	Project string

	// Repo is the repository's URL name in cgit.
	Repo string

	// Description is the repository description both apps list.
	Description string

	// Commits are the repository's commits on its main branch, oldest first.
	Commits []GitCommit

	// Env holds the variables, as "NAME=value", that the gateway must give
	// gitweb.cgi and cgit.cgi: GITWEB_CONFIG and CGIT_CONFIG. Giving them to
	// every script does no harm.
	Env []string
}

// GitCommit is one commit of a [GitFixture].
type GitCommit struct {
	ID      string // full hex object name
	Subject string // first line of the message
}

// NewGitFixture creates the fixture in dir (created if needed), using the git
// command. Everything it creates is world-readable, because Apache runs the apps
// as www-data; dir's parents must be searchable by that user too. The apps are
// told safe.directory=* through gitconfig, so a repository owned by another
// user is not refused. If git is not installed the error wraps [ErrUnavailable].
func NewGitFixture(ctx context.Context, dir string) (*GitFixture, error) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("conformance: git fixture: %w: %w", ErrUnavailable, err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("conformance: git fixture: %w", err)
	}
	fx := &GitFixture{
		Dir:         dir,
		Project:     "conformance.git",
		Repo:        "conformance",
		Description: "ferry conformance fixture repository",
	}
	repo := filepath.Join(dir, "projects", fx.Project)
	if err := os.MkdirAll(filepath.Dir(repo), 0o755); err != nil {
		return nil, fmt.Errorf("conformance: git fixture: %w", err)
	}

	const date = "2020-01-02T03:04:05Z" // fixed dates give fixed commit IDs
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_DIR=" + repo,
		"GIT_AUTHOR_NAME=Ferry Conformance", "GIT_AUTHOR_EMAIL=conformance@example.invalid", "GIT_AUTHOR_DATE=" + date,
		"GIT_COMMITTER_NAME=Ferry Conformance", "GIT_COMMITTER_EMAIL=conformance@example.invalid", "GIT_COMMITTER_DATE=" + date,
	}
	git := func(stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, gitPath, args...)
		cmd.Env = env
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("conformance: git fixture: git %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := git("", "init", "--quiet", "--bare", repo); err != nil {
		return nil, err
	}
	if _, err := git("", "symbolic-ref", "HEAD", "refs/heads/main"); err != nil {
		return nil, err
	}
	// Plumbing builds the commits without a work tree: two trees, the second
	// one adding a file, each committed on top of the previous commit.
	files := ""
	parent := ""
	for i, c := range []struct{ name, content, subject string }{
		{"README", "ferry conformance fixture\n", "conformance fixture: first commit"},
		{"second.txt", "second file\n", "conformance fixture: second commit"},
	} {
		blob, err := git(c.content, "hash-object", "-w", "--stdin")
		if err != nil {
			return nil, err
		}
		files += fmt.Sprintf("100644 blob %s\t%s\n", blob, c.name)
		tree, err := git(files, "mktree")
		if err != nil {
			return nil, err
		}
		args := []string{"commit-tree", tree, "-m", c.subject}
		if i > 0 {
			args = append(args, "-p", parent)
		}
		if parent, err = git("", args...); err != nil {
			return nil, err
		}
		fx.Commits = append(fx.Commits, GitCommit{ID: parent, Subject: c.subject})
	}
	if _, err := git("", "update-ref", "refs/heads/main", parent); err != nil {
		return nil, err
	}

	gitconfig := filepath.Join(dir, "gitconfig")
	gitwebConf := filepath.Join(dir, "gitweb.conf")
	cgitrc := filepath.Join(dir, "cgitrc")
	for name, content := range map[string]string{
		filepath.Join(repo, "description"): fx.Description + "\n",
		gitconfig:                          "# Written by the ferry conformance suite.\n[safe]\n\tdirectory = *\n",
		gitwebConf: "# gitweb configuration written by the ferry conformance suite.\n" +
			"our $projectroot = " + perlQuote(filepath.Join(dir, "projects")) + ";\n" +
			"our $projects_list = $projectroot;\n" +
			"our $site_name = 'ferry conformance';\n" +
			"# For the git commands gitweb runs: accept a repository owned by another user.\n" +
			"$ENV{'GIT_CONFIG_GLOBAL'} = " + perlQuote(gitconfig) + ";\n",
		// cgit takes virtual-root from SCRIPT_NAME and the page from PATH_INFO,
		// so nothing here depends on the URL prefix. Global settings must come
		// before the repo.* lines.
		cgitrc: "# cgit configuration written by the ferry conformance suite.\n" +
			"cache-size=0\n" +
			"root-title=ferry conformance\n" +
			"repo.url=" + fx.Repo + "\n" +
			"repo.path=" + repo + "\n" +
			"repo.desc=" + fx.Description + "\n",
	} {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("conformance: git fixture: %w", err)
		}
	}
	if err := makeWorldReadable(dir); err != nil {
		return nil, fmt.Errorf("conformance: git fixture: %w", err)
	}
	fx.Env = []string{"GITWEB_CONFIG=" + gitwebConf, "CGIT_CONFIG=" + cgitrc}
	return fx, nil
}

// perlQuote returns s as a single-quoted Perl string.
func perlQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// makeWorldReadable adds read permission for everyone to every file under dir,
// and search permission to every directory, dir included.
func makeWorldReadable(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		add := fs.FileMode(0o444)
		if d.IsDir() {
			add = 0o555
		}
		if info.Mode().Perm()&add == add {
			return nil
		}
		return os.Chmod(path, info.Mode().Perm()|add)
	})
}

// gitApps lists where Debian installs the apps, by the name they get in the
// script directory.
func gitApps() map[string][]string {
	return map[string][]string{
		"gitweb.cgi": {"/usr/share/gitweb/gitweb.cgi", "/usr/lib/cgi-bin/gitweb.cgi"},
		"cgit.cgi":   {"/usr/lib/cgit/cgit.cgi", "/usr/lib/cgi-bin/cgit.cgi"},
	}
}

// InstallGitApps copies Debian's gitweb.cgi (package gitweb) and cgit.cgi
// (package cgit) into cgiDir, mode 0755. They are copied rather than linked so
// that a gateway refusing symlinks out of its directory still runs them; neither
// needs files next to it. If one is not installed, the other is still copied and
// the error wraps [ErrUnavailable].
func InstallGitApps(cgiDir string) error {
	var errs []error
	for name, candidates := range gitApps() {
		src := ""
		for _, c := range candidates {
			if _, err := os.Stat(c); err == nil {
				src = c
				break
			}
		}
		if src == "" {
			errs = append(errs, fmt.Errorf("conformance: %s not found in %q: %w", name, candidates, ErrUnavailable))
			continue
		}
		if err := copyFile(filepath.Join(cgiDir, name), src, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("conformance: installing %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// checkGit checks that gitweb and cgit work through the gateway: gitweb's project
// list and commit page, cgit's index, summary, log and commit pages.
func checkGit(ctx context.Context, s *session) error {
	fx := s.tg.Git
	if fx == nil {
		return fmt.Errorf("Target.Git is nil: no git fixture (see NewGitFixture and InstallGitApps): %w", ErrUnavailable)
	}
	if len(fx.Commits) < 2 {
		return fmt.Errorf("conformance: GitFixture has %d commits; want at least 2", len(fx.Commits))
	}
	first, last := fx.Commits[0], fx.Commits[len(fx.Commits)-1]
	p := url.QueryEscape(fx.Project)
	pages := []struct {
		app, rest string
		want      []string
	}{
		{"gitweb.cgi", "", []string{fx.Project, fx.Description}},
		{"gitweb.cgi", "?p=" + p + "&a=commit&h=" + last.ID, []string{last.Subject, last.ID}},
		{"gitweb.cgi", "?p=" + p + "&a=shortlog", []string{first.Subject, last.Subject}},
		{"cgit.cgi", "/", []string{fx.Repo + "/", fx.Description}},
		{"cgit.cgi", "/" + fx.Repo + "/", []string{last.Subject}},
		{"cgit.cgi", "/" + fx.Repo + "/log/", []string{first.Subject, last.Subject}},
		{"cgit.cgi", "/" + fx.Repo + "/commit/?id=" + first.ID, []string{first.Subject, first.ID}},
	}
	var errs []error
	for _, pg := range pages {
		rawPath := s.script(pg.app + pg.rest)
		res, err := s.get(ctx, rawPath)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := wantStatus("GET", rawPath, res, http.StatusOK); err != nil {
			if res.status == http.StatusNotFound {
				err = fmt.Errorf("%w; is %s in the script directory (see InstallGitApps)?", err, pg.app)
			}
			errs = append(errs, err)
			continue
		}
		for _, w := range pg.want {
			if !bytes.Contains(res.body, []byte(w)) {
				errs = append(errs, fmt.Errorf("GET %s: page does not show %q (is %s run with %q?)", rawPath, w, pg.app, fx.Env))
			}
		}
	}
	return errors.Join(errs...)
}
