package fcgitest

// This file is the suite's own FastCGI wire format (FastCGI 1.0 § 3, § 8),
// written independently of ferry's fastcgi package so the suite can judge it.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// recType is a record type (FastCGI § 8).
type recType uint8

const (
	typeBeginRequest    recType = 1
	typeAbortRequest    recType = 2
	typeEndRequest      recType = 3
	typeParams          recType = 4
	typeStdin           recType = 5
	typeStdout          recType = 6
	typeStderr          recType = 7
	typeData            recType = 8
	typeGetValues       recType = 9
	typeGetValuesResult recType = 10
	typeUnknownType     recType = 11
)

var typeNames = [...]string{
	typeBeginRequest:    "BEGIN_REQUEST",
	typeAbortRequest:    "ABORT_REQUEST",
	typeEndRequest:      "END_REQUEST",
	typeParams:          "PARAMS",
	typeStdin:           "STDIN",
	typeStdout:          "STDOUT",
	typeStderr:          "STDERR",
	typeData:            "DATA",
	typeGetValues:       "GET_VALUES",
	typeGetValuesResult: "GET_VALUES_RESULT",
	typeUnknownType:     "UNKNOWN_TYPE",
}

func (t recType) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// protocolStatus is the protocolStatus of an END_REQUEST body (§ 5.5).
type protocolStatus uint8

const (
	statusRequestComplete protocolStatus = 0
	statusCantMpxConn     protocolStatus = 1
	statusOverloaded      protocolStatus = 2
	statusUnknownRole     protocolStatus = 3
)

var statusNames = [...]string{
	statusRequestComplete: "REQUEST_COMPLETE",
	statusCantMpxConn:     "CANT_MPX_CONN",
	statusOverloaded:      "OVERLOADED",
	statusUnknownRole:     "UNKNOWN_ROLE",
}

func (s protocolStatus) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("protocolStatus %d", uint8(s))
}

const (
	headerLen     = 8
	version1      = 1
	roleResponder = 1
	flagKeepConn  = 1
	// maxContent is the largest content length a record header can hold.
	maxContent = 65535
	// maxPadding is the largest padding length a record header can hold.
	maxPadding = 255
	// nullID is the request ID of management records (§ 3.3).
	nullID = 0
)

// header is a decoded record header (§ 3.3).
type header struct {
	Version       uint8
	Type          recType
	ID            uint16
	ContentLength uint16
	PaddingLength uint8
}

// record is a record read from the server.
type record struct {
	header
	Content []byte
}

func (r record) String() string {
	return fmt.Sprintf("%v id=%d len=%d", r.Type, r.ID, len(r.Content))
}

// appendHeader appends a record header with version 1 to dst.
func appendHeader(dst []byte, t recType, id uint16, contentLen, padLen int) []byte {
	return append(dst, version1, byte(t), byte(id>>8), byte(id), byte(contentLen>>8), byte(contentLen), byte(padLen), 0)
}

// appendRecord appends a whole record to dst: header, content and padLen zero
// bytes of padding. content must not exceed maxContent bytes, nor padLen
// maxPadding.
func appendRecord(dst []byte, t recType, id uint16, content []byte, padLen int) []byte {
	if len(content) > maxContent || padLen < 0 || padLen > maxPadding {
		panic(fmt.Sprintf("fcgitest: record of %d content and %d padding bytes", len(content), padLen))
	}
	dst = appendHeader(dst, t, id, len(content), padLen)
	dst = append(dst, content...)
	for range padLen {
		dst = append(dst, 0)
	}
	return dst
}

// beginBody returns the body of a BEGIN_REQUEST record (§ 5.1).
func beginBody(role uint16, keepConn bool) []byte {
	var flags byte
	if keepConn {
		flags = flagKeepConn
	}
	return []byte{byte(role >> 8), byte(role), flags, 0, 0, 0, 0, 0}
}

// errBadVersion is returned by readRecord for a header whose version is not 1.
var errBadVersion = errors.New("fcgitest: record version is not 1")

// readRecord reads one record from r. The content is freshly allocated; the
// padding is read and dropped.
func readRecord(r io.Reader) (record, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return record{}, err
	}
	rec := record{header: header{
		Version:       h[0],
		Type:          recType(h[1]),
		ID:            binary.BigEndian.Uint16(h[2:4]),
		ContentLength: binary.BigEndian.Uint16(h[4:6]),
		PaddingLength: h[6],
	}}
	if rec.Version != version1 {
		return rec, fmt.Errorf("%w: header % x", errBadVersion, h[:])
	}
	buf := make([]byte, int(rec.ContentLength)+int(rec.PaddingLength))
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return rec, fmt.Errorf("fcgitest: reading %v: %w", rec, err)
	}
	rec.Content = buf[:rec.ContentLength]
	return rec, nil
}

// endRequest is a decoded END_REQUEST body (§ 5.5).
type endRequest struct {
	AppStatus      uint32
	ProtocolStatus protocolStatus
}

func parseEndRequest(content []byte) (endRequest, error) {
	if len(content) != 8 {
		return endRequest{}, fmt.Errorf("END_REQUEST body is %d bytes; want 8", len(content))
	}
	return endRequest{
		AppStatus:      binary.BigEndian.Uint32(content),
		ProtocolStatus: protocolStatus(content[4]),
	}, nil
}

// appendSize appends a name-value pair length (§ 3.4): one byte below 128,
// else four bytes big-endian with the top bit set. n must be below 1<<31.
func appendSize(dst []byte, n uint32) []byte {
	if n < 128 {
		return append(dst, byte(n))
	}
	return binary.BigEndian.AppendUint32(dst, n|1<<31)
}

// appendPair appends one name-value pair (§ 3.4).
func appendPair(dst []byte, name, value string) []byte {
	dst = appendSize(dst, uint32(len(name)))
	dst = appendSize(dst, uint32(len(value)))
	dst = append(dst, name...)
	return append(dst, value...)
}

// pair is a decoded name-value pair.
type pair struct{ Name, Value string }

// parsePairs decodes a complete sequence of name-value pairs. Unlike a lenient
// server it rejects anything left over: a truncated length or a length that
// runs past the end of b.
func parsePairs(b []byte) ([]pair, error) {
	var out []pair
	for len(b) > 0 {
		nameLen, n, err := readSize(b)
		if err != nil {
			return out, err
		}
		b = b[n:]
		valueLen, n, err := readSize(b)
		if err != nil {
			return out, err
		}
		b = b[n:]
		if uint64(nameLen)+uint64(valueLen) > uint64(len(b)) {
			return out, fmt.Errorf("fcgitest: pair of %d+%d bytes with %d bytes left", nameLen, valueLen, len(b))
		}
		out = append(out, pair{string(b[:nameLen]), string(b[nameLen : nameLen+valueLen])})
		b = b[nameLen+valueLen:]
	}
	return out, nil
}

// readSize decodes one name-value pair length and returns it with the number
// of bytes it took.
func readSize(b []byte) (uint32, int, error) {
	if len(b) == 0 {
		return 0, 0, errors.New("fcgitest: pair length missing")
	}
	if b[0]&0x80 == 0 {
		return uint32(b[0]), 1, nil
	}
	if len(b) < 4 {
		return 0, 0, fmt.Errorf("fcgitest: 4-byte pair length cut after %d bytes", len(b))
	}
	return binary.BigEndian.Uint32(b) &^ (1 << 31), 4, nil
}
