//go:build !darwin && !freebsd && !netbsd && !windows && !plan9 && !js && !wasip1

package bridge

import (
	"syscall"
	"time"
)

// mtimeOf returns a file's modification time from its fstat.
func mtimeOf(st *syscall.Stat_t) time.Time { return time.Unix(st.Mtim.Unix()) }
