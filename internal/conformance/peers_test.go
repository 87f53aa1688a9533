package conformance_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ferrygw/ferry/internal/conformance"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// peerDir makes a world-readable directory under /tmp holding the scripts and
// the git apps, since Apache runs scripts as www-data and t.TempDir's parent
// is private.
func peerDir(t *testing.T) (cgiDir string, fx *conformance.GitFixture) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ferry-conformance-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cgiDir = filepath.Join(dir, "cgi-bin")
	if err := conformance.CopyScripts(cgiDir); err != nil {
		t.Fatal(err)
	}
	fx, err = conformance.NewGitFixture(t.Context(), filepath.Join(dir, "git"))
	if err != nil {
		t.Fatal(err)
	}
	if err := conformance.InstallGitApps(cgiDir); err != nil {
		t.Fatal(err)
	}
	if err := peers.MakeWorldReadable(dir); err != nil {
		t.Fatal(err)
	}
	return cgiDir, fx
}

func envMap(kvs []string) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				m[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	return m
}

// TestPeerScores runs the suite against the peers ferry must beat and pins
// what each fails, so that the comparison in the README and PEERS.md stays
// reproducible: ferry passes all 18 checks (cmd/ferry TestServeConformance).
func TestPeerScores(t *testing.T) {
	peerstest.Need(t, "apache2", "nginx", "fcgiwrap", "perl", "python3", "git", "gitweb", "cgit")
	for _, tc := range []struct {
		name       string
		start      func(t *testing.T, cgiDir string, env map[string]string) *peers.Server
		wantFailed []string
	}{
		{
			name: "apache-mod_cgid",
			start: func(t *testing.T, cgiDir string, env map[string]string) *peers.Server {
				return peerstest.ApacheCGI(t, peers.ApacheCGIConfig{CGIDir: cgiDir, Env: env})
			},
			wantFailed: []string{
				"post-chunked", // the body streams without CONTENT_LENGTH, then the connection resets
				"noexec",       // a file without exec bit gives 500
				"disconnect",   // the script runs on after the client is gone
			},
		},
		{
			name: "nginx-fcgiwrap",
			start: func(t *testing.T, cgiDir string, env map[string]string) *peers.Server {
				return peerstest.NginxFcgiwrap(t, peers.NginxFcgiwrapConfig{CGIDir: cgiDir, Env: env})
			},
			wantFailed: []string{
				"env",        // stock fastcgi_params pass the Proxy header as HTTP_PROXY (httpoxy)
				"redirect",   // a local Location goes to the client as a 302
				"streaming",  // output is held until the script ends
				"nph",        // the status line is not passed through
				"missing",    // fcgiwrap answers 403 for a script that does not exist
				"disconnect", // the script runs on after the client is gone
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cgiDir, fx := peerDir(t)
			srv := tc.start(t, cgiDir, envMap(fx.Env))
			passed, failed, errs := conformance.Score(t.Context(), conformance.Target{BaseURL: srv.URL, ScriptDir: cgiDir, Git: fx})
			for _, name := range failed {
				t.Logf("%s fails %v", tc.name, errs[name])
			}
			t.Logf("%s passes %d of %d checks", tc.name, len(passed), len(passed)+len(failed))
			if !slices.Equal(failed, tc.wantFailed) {
				t.Errorf("%s failed %q; want %q", tc.name, failed, tc.wantFailed)
			}
		})
	}
}
