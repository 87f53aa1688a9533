package migrate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/bridge"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/migrate from what migrate writes now")

// corpus is the directory of the hand-written configurations; a case is
// SERVER/NAME.conf (or .txt, for apache2ctl -t -D DUMP_INCLUDES and nginx -T
// output), its expected output SERVER/NAME.golden/{ferry.toml,front.conf,
// report.txt}. Absolute paths in the cases are looked for under root/
// first (Options.Chroot). A line "# also: FILE" in a case names another
// input given after it, such as a php-fpm pool file.
const corpus = "../../testdata/migrate"

type corpusCase struct {
	server, name string
	inputs       []string // relative to corpus
}

func corpusCases(t *testing.T) []corpusCase {
	t.Helper()
	var cases []corpusCase
	for _, server := range []string{"apache", "nginx"} {
		var files []string
		for _, ext := range []string{"*.conf", "*.txt"} {
			m, err := filepath.Glob(filepath.Join(corpus, server, ext))
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, m...)
		}
		slices.Sort(files)
		for _, f := range files {
			rel, _ := filepath.Rel(corpus, f)
			c := corpusCase{server: server, name: strings.TrimSuffix(rel, filepath.Ext(rel)), inputs: []string{filepath.ToSlash(rel)}}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(data), "\n") {
				if also, ok := strings.CutPrefix(line, "# also: "); ok {
					c.inputs = append(c.inputs, strings.TrimSpace(also))
				}
			}
			cases = append(cases, c)
		}
	}
	if len(cases) < 20 {
		t.Fatalf("%d corpus cases in %s; the corpus has more", len(cases), corpus)
	}
	return cases
}

// runCase migrates one case from inside the corpus directory, so the
// report names files as the golden files do.
func runCase(t *testing.T, c corpusCase) *Result {
	t.Helper()
	opts := Options{Chroot: "root"}
	var res *Result
	var err error
	if c.server == "apache" {
		res, err = Apache(c.inputs, opts)
	} else {
		res, err = Nginx(c.inputs, opts)
	}
	if err != nil {
		t.Fatalf("%s %v: %v", c.server, c.inputs, err)
	}
	return res
}

// compactConfig is ferry.toml as the golden files hold it: without the
// comments, and without the keys outside mounts that keep their default
// value, so a new key or doc line in bridge does not touch every case.
func compactConfig(t *testing.T, c bridge.Config) string {
	t.Helper()
	var full, def bytes.Buffer
	if err := bridge.WriteConfig(&full, c); err != nil {
		t.Fatal(err)
	}
	if err := bridge.WriteConfig(&def, bridge.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	defaults := map[string]bool{}
	table := ""
	for _, line := range strings.Split(def.String(), "\n") {
		if strings.HasPrefix(line, "[") {
			table = line
		}
		defaults[table+"\x00"+line] = true
	}
	var b strings.Builder
	table = ""
	for _, line := range strings.Split(full.String(), "\n") {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			table = line
			b.WriteString("\n" + line + "\n")
			continue
		}
		if !strings.HasPrefix(table, "[mount.") && defaults[table+"\x00"+line] {
			continue
		}
		b.WriteString(line + "\n")
	}
	return strings.TrimLeft(b.String(), "\n")
}

// TestGolden migrates every corpus case and compares ferry.toml (compact),
// front.conf and report.txt with the golden files; go test -update
// rewrites them. The full ferry.toml must load back to the same
// configuration.
func TestGolden(t *testing.T) {
	cases := corpusCases(t)
	t.Chdir(corpus)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := runCase(t, c)
			var txt, toml bytes.Buffer
			if err := res.Report.WriteText(&txt); err != nil {
				t.Fatal(err)
			}
			if err := bridge.WriteConfig(&toml, res.Config); err != nil {
				t.Fatal(err)
			}
			f, err := bridge.ParseConfig("ferry.toml", toml.Bytes())
			if err != nil {
				t.Fatalf("ferry.toml does not load: %v\n%s", err, toml.String())
			}
			if !reflect.DeepEqual(compactConfig(t, f.Config), compactConfig(t, res.Config)) {
				t.Errorf("ferry.toml loads to another configuration:\n%s\nwant\n%s", compactConfig(t, f.Config), compactConfig(t, res.Config))
			}
			got := map[string]string{"ferry.toml": compactConfig(t, res.Config), "front.conf": res.Front, "report.txt": txt.String()}
			dir := c.name + ".golden"
			for _, name := range []string{"ferry.toml", "front.conf", "report.txt"} {
				p := filepath.Join(dir, name)
				if *update {
					if err := os.MkdirAll(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(got[name]), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(p)
				if err != nil {
					t.Fatalf("%v (go test ./internal/migrate -update writes it)", err)
				}
				if got[name] != string(want) {
					t.Errorf("%s/%s differs (go test ./internal/migrate -update rewrites it):\n%s", c.name, name, lineDiff(string(want), got[name]))
				}
			}
		})
	}
}

// lineDiff shows the lines of got that want lacks and the reverse.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return "(same lines, another order)\n--- got:\n" + got
	}
	return b.String()
}
