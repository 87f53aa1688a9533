package migrate

import (
	"io/fs"
	"os/user"
	"strconv"
	"syscall"
)

// writableByWebUser reports whether www-data owns fi with write permission,
// or is its group with group write permission.
func writableByWebUser(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	perm := fi.Mode().Perm()
	if u, err := user.Lookup("www-data"); err == nil && u.Uid == strconv.Itoa(int(st.Uid)) && perm&0o200 != 0 {
		return true
	}
	if gr, err := user.LookupGroup("www-data"); err == nil && gr.Gid == strconv.Itoa(int(st.Gid)) && perm&0o020 != 0 {
		return true
	}
	return false
}
