//go:build darwin || freebsd || netbsd

package bridge

import (
	"syscall"
	"time"
)

// mtimeOf returns a file's modification time from its fstat: the BSDs
// and macOS name the field Mtimespec.
func mtimeOf(st *syscall.Stat_t) time.Time { return time.Unix(st.Mtimespec.Unix()) }
