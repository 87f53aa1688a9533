//go:build !unix

package peers

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func platformSupported() error {
	return fmt.Errorf("peers: process groups: %w", errors.ErrUnsupported)
}

func newGroupAttr() *syscall.SysProcAttr { return nil }

func signalGroup(int, syscall.Signal) error { return errors.ErrUnsupported }

func groupState(int) (running, zombies bool) { return false, false }

type groupMember struct {
	pid   int
	state byte
}

func groupMembers(int) ([]groupMember, error) { return nil, errors.ErrUnsupported }

func readStat(int) (state byte, pgrp int, ok bool) { return 0, 0, false }

func fileOwner(os.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }
