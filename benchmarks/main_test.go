package benchmarks

import (
	"os"
	"testing"
)

// TestMain removes the scripts directory the benchmarks and tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := scriptDir(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}
