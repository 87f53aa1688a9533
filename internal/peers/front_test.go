package peers_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

// TestFronts: Apache and nginx start with a site given as text, serve it,
// and refuse an empty one.
func TestFronts(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "page.txt"), []byte("a page"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := peers.MakeWorldReadable(dir); err != nil {
		t.Fatal(err)
	}
	a := peerstest.ApacheFront(t, peers.ApacheFrontConfig{Conf: "Alias /x/ " + dir + "/\n<Directory " + dir + ">\n  Require all granted\n</Directory>\n" +
		"<Location /x/denied>\n  Require all denied\n</Location>\nRequestHeader unset Proxy early\n"})
	n := peerstest.NginxFront(t, peers.NginxFrontConfig{Root: dir, Server: "location /x/ { alias " + dir + "/; }\nlocation /params { include fastcgi_params; return 403; }\n"})
	for _, s := range []*peers.Server{a, n} {
		if resp, body := get(t, s.URL+"/x/page.txt"); resp.StatusCode != 200 || body != "a page" {
			t.Errorf("%s/x/page.txt = %d %q; want the page", s.URL, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, a.URL+"/x/denied"); resp.StatusCode != 403 {
		t.Errorf("Apache: /x/denied = %d; want 403 from the site's <Location>", resp.StatusCode)
	}
	if _, err := peers.StartApacheFront(t.Context(), t.TempDir(), peers.ApacheFrontConfig{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("StartApacheFront with no site: %v; want an error", err)
	}
	if _, err := peers.StartNginxFront(t.Context(), t.TempDir(), peers.NginxFrontConfig{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("StartNginxFront with no site: %v; want an error", err)
	}
}
