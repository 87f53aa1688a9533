//go:build !linux

package benchmarks

import (
	"os/exec"
	"strings"
)

// kernelName returns the kernel's name and release, from uname -sr.
func kernelName() string {
	out, err := exec.Command("uname", "-sr").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
