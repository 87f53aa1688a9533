package fastcgi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformedPairs is wrapped by errors for a name-value pair stream that
// does not parse: a length running past the data, or a truncated length.
var ErrMalformedPairs = errors.New("fastcgi: malformed name-value pairs")

// AppendPair appends one name-value pair (spec § 3.4): each length takes one
// byte below 128, else four with the top bit set. Lengths up to 2^31-1 are
// encoded exactly; nothing is cut.
func AppendPair(dst []byte, name, value string) []byte {
	dst = appendLen(dst, len(name))
	dst = appendLen(dst, len(value))
	dst = append(dst, name...)
	return append(dst, value...)
}

func appendLen(dst []byte, n int) []byte {
	if n < 128 {
		return append(dst, byte(n))
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n)|1<<31)
}

// ParsePairs parses a complete name-value pair stream, calling fn for each
// pair. name and value alias b.
func ParsePairs(b []byte, fn func(name, value []byte) error) error {
	for len(b) > 0 {
		nlen, n, err := readLen(b)
		if err != nil {
			return err
		}
		b = b[n:]
		vlen, n, err := readLen(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if nlen > len(b) || vlen > len(b)-nlen {
			return fmt.Errorf("%w: pair of %d+%d bytes runs past the %d left", ErrMalformedPairs, nlen, vlen, len(b))
		}
		if err := fn(b[:nlen], b[nlen:nlen+vlen]); err != nil {
			return err
		}
		b = b[nlen+vlen:]
	}
	return nil
}

func readLen(b []byte) (length, n int, err error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("%w: truncated length", ErrMalformedPairs)
	}
	if b[0] < 128 {
		return int(b[0]), 1, nil
	}
	if len(b) < 4 {
		return 0, 0, fmt.Errorf("%w: truncated four-byte length", ErrMalformedPairs)
	}
	return int(binary.BigEndian.Uint32(b) &^ (1 << 31)), 4, nil
}
