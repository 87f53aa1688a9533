//go:build unix

package peers

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

func platformSupported() error { return nil }

// signalGroup sends sig to every process in the group pgid. A group that no
// longer exists is not an error.
func signalGroup(pgid int, sig syscall.Signal) error {
	err := syscall.Kill(-pgid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// groupState reports whether any process of the group pgid is still
// running, and whether any has exited but is not reaped yet (a zombie).
// Members other than the leader are not our children: when the leader dies
// first they are reparented to init (or a subreaper), which reaps them.
func groupState(pgid int) (running, zombies bool) {
	members, err := groupMembers(pgid)
	if err != nil {
		// No /proc (not Linux): signal 0 tells whether the group exists,
		// zombies included.
		return syscall.Kill(-pgid, 0) == nil, false
	}
	for _, m := range members {
		if m.state == 'Z' {
			zombies = true
		} else {
			running = true
		}
	}
	return running, zombies
}

// groupMember is a process found in /proc.
type groupMember struct {
	pid   int
	state byte // as in /proc/PID/stat: R, S, D, Z, ...
}

// groupMembers lists the processes whose process group is pgid, zombies
// included. It needs Linux's /proc.
func groupMembers(pgid int) ([]groupMember, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var members []groupMember
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, pg, ok := readStat(pid)
		if ok && pg == pgid {
			members = append(members, groupMember{pid: pid, state: state})
		}
	}
	return members, nil
}

// readStat returns the state and process group of pid from /proc/PID/stat.
func readStat(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pg, true
}

// fileOwner returns the owner and group of the file fi describes.
func fileOwner(fi os.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
