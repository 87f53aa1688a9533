package bridge

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/ferrygw/ferry/cgi"
)

// cgiBackend runs scripts, one process per request (RFC 3875): a directory
// with ScriptAlias semantics, one script, or, with from=script-filename,
// the script the front web server names (fcgiwrap's way).
func cgiBackend() Backend {
	return Backend{
		Schemes: []string{"cgi"},
		Summary: "CGI scripts, a process per request: a directory (ScriptAlias semantics) or one script",
		Options: []Option{
			{Name: "symlinks", Type: String, Values: []string{"owner-match", "follow", "never"}, Default: "owner-match",
				Doc: "which symbolic links on a script's path are followed: those whose owner owns the target or that stay inside the directory (Apache's SymLinksIfOwnerMatch), all, or none"},
			{Name: "from", Type: String, Values: []string{"script-filename"}, Default: "the URL path",
				Doc: "take the script from the SCRIPT_FILENAME the front web server sends, confined to the directory (fcgiwrap's way)"},
		},
		Settings: []string{"env", "pass_env", "cgi_pass_auth", "cgi_timeout", "cgi_kill_grace", "cgi_user", "cgi_group",
			"cgi_keep_background", "cgi_rlimit_cpu", "cgi_rlimit_as", "cgi_rlimit_nproc", "cgi_rlimit_nofile", "cgi_max_output", "cgi_max_concurrent",
			"cgi_max_queue", "cgi_queue_timeout", "max_request_body", "max_header_line", "spool_memory", "temp_dir"},
		build: buildCGI,
	}
}

func buildCGI(b *builder, m Mount, o options) (http.Handler, error) {
	if m.Backend.Path == "" {
		return nil, fmt.Errorf("cgi: needs a directory or script path")
	}
	fi, err := os.Stat(m.Backend.Path)
	if err != nil {
		return nil, err
	}
	h := b.scriptHandler()
	b.onRouter = append(b.onRouter, func(rt http.Handler) { h.RedirectHandler = rt })
	switch {
	case o.str("from") == "script-filename":
		if !fi.IsDir() {
			return nil, fmt.Errorf("from=script-filename needs a directory")
		}
		h.Resolver = &cgi.FilenameDir{Roots: []string{m.Backend.Path}}
		return h, nil
	case fi.IsDir():
		if !strings.HasSuffix(m.Prefix, "/") {
			return nil, fmt.Errorf("a directory must be mounted at a prefix ending in /")
		}
		dir := &cgi.Dir{Path: m.Backend.Path, Prefix: m.Prefix, Root: h.DocumentRoot}
		if o.has("symlinks") {
			p, err := cgi.ParseSymlinkPolicy(o.str("symlinks"))
			if err != nil {
				return nil, err
			}
			dir.Symlinks = p
		}
		h.Resolver = dir
		return h, nil
	case fi.Mode().Perm()&0o111 == 0:
		return nil, fmt.Errorf("%s is not executable", m.Backend.Path)
	}
	h.Path = m.Backend.Path
	h.ScriptName = strings.TrimSuffix(m.Prefix, "/")
	return h, nil
}
