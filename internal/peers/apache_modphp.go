package peers

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// ApacheModPHPConfig configures [StartApacheModPHP].
type ApacheModPHPConfig struct {
	// Root is the directory served at /php/, whose .php files mod_php runs
	// inside Apache's processes. It is required. When started as root,
	// Apache runs as www-data, which must be able to read Root.
	Root string
	// Workers is the number of Apache processes (prefork's
	// MaxRequestWorkers, all started at once), and so of PHP requests in
	// progress. If zero or negative, 4 is used.
	Workers int
	// Prefix is the URL path Root is served at (Alias Prefix Root/), such
	// as "/dokuwiki" as Debian's dokuwiki package has it. If empty, "/php/".
	Prefix string
	// Options are the Options of Root's <Directory>, such as
	// "+FollowSymLinks". If empty, None.
	Options string
	// AllowOverride says which directives Apache reads from .htaccess
	// files under Root (php_value needs Options; Debian's dokuwiki has
	// All). If empty, None: .htaccess files are not read.
	AllowOverride string
	// DirectoryIndex, if set, is the file a directory path serves, such as
	// "index.php" (Debian's dir.conf lists it). If empty, Apache's default:
	// index.html.
	DirectoryIndex string
}

// StartApacheModPHP starts Apache httpd with mod_php (Debian's
// libapache2-mod-php) on a free 127.0.0.1 port, serving cfg.Root at
// cfg.Prefix (/php/ by default):
// the mod_* setup sites migrate from. mod_php is not thread-safe, so the
// MPM is prefork, with cfg.Workers processes. httpd.conf, the pid file and
// the logs go into dir as in [StartApacheCGI]; PHP's errors go to
// dir/error.log.
//
// ctx bounds only the start; call [Server.Stop] when done.
func StartApacheModPHP(ctx context.Context, dir string, cfg ApacheModPHPConfig) (*Server, error) {
	bin, err := Lookup("apache2")
	if err != nil {
		return nil, err
	}
	modules := []string{"mpm_prefork", "unixd", "authz_core", "mime", "alias", "env", "dir", "log_config"}
	moduleDir, err := findApacheModuleDir("mpm_prefork")
	if err != nil {
		return nil, err
	}
	php, err := findModPHP(moduleDir)
	if err != nil {
		return nil, err
	}
	root, err := cgiDirPath(cfg.Root)
	if err != nil {
		return nil, err
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = 4
	}
	prefix, options, override := cmp.Or(cfg.Prefix, "/php/"), cmp.Or(cfg.Options, "None"), cmp.Or(cfg.AllowOverride, "None")
	for _, f := range [][2]string{{"Prefix", prefix}, {"Options", options}, {"AllowOverride", override}, {"DirectoryIndex", cfg.DirectoryIndex}} {
		if err := checkConfigString(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	if !strings.HasPrefix(prefix, "/") || prefix == apacheReadyPath {
		return nil, fmt.Errorf("peers: Prefix %q does not start with '/' or is reserved", prefix)
	}
	return startApacheSite(ctx, bin, dir, apacheParams{moduleDir: moduleDir, modules: modules}, func(int) string {
		var b strings.Builder
		w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
		w("LoadModule php_module %s", quote(php))
		w("StartServers %d", workers)
		w("MinSpareServers %d", workers)
		w("MaxSpareServers %d", workers)
		w("ServerLimit %d", workers)
		w("MaxRequestWorkers %d", workers)
		w("MaxConnectionsPerChild 0")
		if cfg.DirectoryIndex != "" {
			w("DirectoryIndex %s", cfg.DirectoryIndex)
		}
		w("Alias %s %s", quote(prefix), quote(root+"/"))
		w("<Directory %s>", quote(root))
		w("  AllowOverride %s", override)
		w("  Options %s", options)
		w("  Require all granted")
		w("  <FilesMatch \"\\.php$\">")
		w("    SetHandler application/x-httpd-php")
		w("  </FilesMatch>")
		w("</Directory>")
		return b.String()
	})
}

// findModPHP returns the path of mod_php in moduleDir: libphp8.2.so on
// Debian, libphp.so or mod_php*.so elsewhere.
func findModPHP(moduleDir string) (string, error) {
	for _, pattern := range []string{"libphp*.so", "mod_php*.so"} {
		if m, _ := filepath.Glob(filepath.Join(moduleDir, pattern)); len(m) > 0 {
			return m[len(m)-1], nil
		}
	}
	return "", fmt.Errorf("peers: mod_php not found in %s (Debian package libapache2-mod-php): %w", moduleDir, ErrNotInstalled)
}
