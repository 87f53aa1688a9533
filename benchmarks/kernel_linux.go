package benchmarks

import (
	"strings"
	"syscall"
)

// kernelName returns the kernel's name and release, as uname -sr prints
// them.
func kernelName() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return ""
	}
	return utsString(u.Sysname[:]) + " " + utsString(u.Release[:])
}

// utsString returns a NUL-terminated uname field as a string.
func utsString[T int8 | uint8](b []T) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}
