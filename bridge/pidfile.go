package bridge

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// writePIDFile writes this process's ID to path (through a temporary file
// renamed into place, so a reader never sees it half written), and returns
// the function that removes it again, unless another process has written
// its own ID there since.
func writePIDFile(path string) (remove func(), err error) {
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err == nil {
		_, err = tmp.Write(pid)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), 0o644)
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bridge: pid file: %w", err)
	}
	return func() {
		if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, pid) {
			os.Remove(path)
		}
	}, nil
}
