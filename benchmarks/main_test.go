package benchmarks

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// TestMain runs the helper roles when the harness re-executes the test
// binary (see RunHelper), and removes the scripts directory the benchmarks
// and tests share.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == HelperArg {
		if err := RunHelper(context.Background(), os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if dir, err := scriptDir(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}
