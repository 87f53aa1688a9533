package main

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestNoTestCodeInBinary checks that the ferry binary links no test code:
// not package testing nor its subpackages, no package that imports testing,
// and no package of this module made for tests (peerstest, fcgitest,
// testlog: a path element starting or ending with "test"). Test helpers
// belong in _test.go files and in packages only those import. (gofast links
// net/http/httptest, whose ResponseRecorder its handler uses; that package
// does not import testing.)
func TestNoTestCodeInBinary(t *testing.T) {
	t.Parallel()
	// go test puts the go command that runs it first in PATH.
	goCmd, err := exec.LookPath("go")
	if err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("no go command to list the binary's packages: %v", err)
		}
		t.Skipf("no go command to list the binary's packages: %v", err)
	}
	cmd := exec.Command(goCmd, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.Bytes())
	}
	const module = "github.com/ferrygw/ferry"
	var pkgs []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		pkg := f[0]
		pkgs = append(pkgs, pkg)
		if pkg == "testing" || strings.HasPrefix(pkg, "testing/") {
			t.Errorf("the binary links %s", pkg)
		}
		if slices.Contains(f[1:], "testing") {
			t.Errorf("the binary links %s, which imports testing", pkg)
		}
		if rest, ok := strings.CutPrefix(pkg, module+"/"); ok {
			for elem := range strings.SplitSeq(rest, "/") {
				if strings.HasPrefix(elem, "test") || strings.HasSuffix(elem, "test") {
					t.Errorf("the binary links %s, a package for tests", pkg)
				}
			}
		}
	}
	// The list must be the binary's, or the checks above prove nothing.
	for _, want := range []string{module + "/cmd/ferry", "net/http"} {
		if !slices.Contains(pkgs, want) {
			t.Errorf("go list -deps lacks %s; got %d packages", want, len(pkgs))
		}
	}
}
