package cgi

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// DefaultUser returns the user scripts run as when ferry runs as root and
// [Handler.User] is empty: "www-data" if the system has that user (Debian's
// web server user), else "nobody".
func DefaultUser() string {
	if _, err := user.Lookup("www-data"); err == nil {
		return "www-data"
	}
	return "nobody"
}

// Credential returns the user, group and supplementary groups scripts run
// with, from User and Group: nil when they run as ferry's own user. It
// fails when User or Group names no user or group; every request then gets
// 500.
func (h *Handler) Credential() (*syscall.Credential, error) {
	h.init()
	return h.cred, h.credErr
}

// scriptCredential resolves the identity scripts run with for the User and
// Group settings name and group, when ferry's effective uid is euid.
func scriptCredential(name, group string, euid int) (*syscall.Credential, error) {
	if name == "" && group == "" && euid != 0 {
		return nil, nil // ferry's own user: nothing to change
	}
	if name == "" {
		if euid == 0 {
			name = DefaultUser()
		} else {
			name = strconv.Itoa(euid)
		}
	}
	cred := &syscall.Credential{}
	u, err := lookupUser(name)
	switch {
	case err == nil:
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("cgi: user %q: %w", name, err)
		}
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
		ids, err := u.GroupIds()
		if err != nil {
			return nil, fmt.Errorf("cgi: groups of user %q: %w", name, err)
		}
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	case isNumeric(name):
		// A uid with no entry in the user database: no supplementary
		// groups, and the group must be given.
		uid, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("cgi: user %q: %w", name, err)
		}
		if group == "" {
			return nil, fmt.Errorf("cgi: user %s has no entry in the user database: give a group too", name)
		}
		cred.Uid = uint32(uid)
	default:
		return nil, fmt.Errorf("cgi: user %q: %w", name, err)
	}
	if group != "" {
		gid, err := lookupGroup(group)
		if err != nil {
			return nil, err
		}
		cred.Gid = gid
	}
	if euid != 0 && int(cred.Uid) == euid && int(cred.Gid) == os.Getegid() {
		return nil, nil // as ferry already is
	}
	return cred, nil
}

func isNumeric(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// lookupUser finds a user by name, or by uid when name is numeric.
func lookupUser(name string) (*user.User, error) {
	if isNumeric(name) {
		return user.LookupId(name)
	}
	return user.Lookup(name)
}

// lookupGroup returns the gid of a group given by name or number.
func lookupGroup(group string) (uint32, error) {
	if isNumeric(group) {
		gid, _ := strconv.ParseUint(group, 10, 32) // isNumeric checked it
		return uint32(gid), nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, fmt.Errorf("cgi: group %q: %w", group, err)
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("cgi: group %q: %w", group, err)
	}
	return uint32(gid), nil
}
