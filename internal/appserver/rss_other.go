//go:build !linux

package appserver

import "errors"

// residentBytes is unknown without Linux's /proc: MaxRSS has no effect.
func residentBytes(int) (int64, error) {
	return 0, errors.New("appserver: resident memory is read from /proc (Linux)")
}
