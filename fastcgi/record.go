package fastcgi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Version1 is the only FastCGI protocol version (FCGI_VERSION_1).
const Version1 = 1

// HeaderLen is the length of a record header (FCGI_HEADER_LEN).
const HeaderLen = 8

// MaxContent is the largest content a record can carry.
const MaxContent = 65535

// RecordType is the type of a record (spec § 8).
type RecordType uint8

// The record types of FastCGI 1.0.
const (
	TypeBeginRequest    RecordType = 1
	TypeAbortRequest    RecordType = 2
	TypeEndRequest      RecordType = 3
	TypeParams          RecordType = 4
	TypeStdin           RecordType = 5
	TypeStdout          RecordType = 6
	TypeStderr          RecordType = 7
	TypeData            RecordType = 8
	TypeGetValues       RecordType = 9
	TypeGetValuesResult RecordType = 10
	TypeUnknownType     RecordType = 11
)

var typeNames = [...]string{
	TypeBeginRequest: "BEGIN_REQUEST", TypeAbortRequest: "ABORT_REQUEST", TypeEndRequest: "END_REQUEST",
	TypeParams: "PARAMS", TypeStdin: "STDIN", TypeStdout: "STDOUT", TypeStderr: "STDERR", TypeData: "DATA",
	TypeGetValues: "GET_VALUES", TypeGetValuesResult: "GET_VALUES_RESULT", TypeUnknownType: "UNKNOWN_TYPE",
}

// String returns the spec's name for t, such as "BEGIN_REQUEST".
func (t RecordType) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "RecordType(" + strconv.Itoa(int(t)) + ")"
}

// Role is the role of a request (spec § 6).
type Role uint16

// The roles of FastCGI 1.0.
const (
	RoleResponder  Role = 1
	RoleAuthorizer Role = 2
	RoleFilter     Role = 3
)

var roleNames = [...]string{RoleResponder: "RESPONDER", RoleAuthorizer: "AUTHORIZER", RoleFilter: "FILTER"}

// String returns the spec's name for r, such as "RESPONDER".
func (r Role) String() string {
	if int(r) < len(roleNames) && roleNames[r] != "" {
		return roleNames[r]
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// FlagKeepConn in a BEGIN_REQUEST asks the application to keep the
// connection open after the request (FCGI_KEEP_CONN).
const FlagKeepConn = 1

// ProtocolStatus is the protocol-level outcome in an END_REQUEST (spec § 5.5).
type ProtocolStatus uint8

// The protocol statuses of FastCGI 1.0.
const (
	RequestComplete ProtocolStatus = 0
	CantMpxConn     ProtocolStatus = 1
	Overloaded      ProtocolStatus = 2
	UnknownRole     ProtocolStatus = 3
)

var statusNames = [...]string{RequestComplete: "REQUEST_COMPLETE", CantMpxConn: "CANT_MPX_CONN", Overloaded: "OVERLOADED", UnknownRole: "UNKNOWN_ROLE"}

// String returns the spec's name for s, such as "REQUEST_COMPLETE".
func (s ProtocolStatus) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "ProtocolStatus(" + strconv.Itoa(int(s)) + ")"
}

// Header is a record header (FCGI_Header).
type Header struct {
	Version       uint8
	Type          RecordType
	RequestID     uint16
	ContentLength uint16
	PaddingLength uint8
}

// ErrBadVersion is returned for a record whose version is not 1.
var ErrBadVersion = errors.New("fastcgi: record version is not 1")

// decodeHeader reads a header from its 8 bytes.
func decodeHeader(b []byte) Header {
	return Header{
		Version:       b[0],
		Type:          RecordType(b[1]),
		RequestID:     binary.BigEndian.Uint16(b[2:4]),
		ContentLength: binary.BigEndian.Uint16(b[4:6]),
		PaddingLength: b[6],
	}
}

// AppendRecord appends one record of type t for request id with content c
// (at most MaxContent bytes), padded to a multiple of 8 bytes as the spec
// recommends.
func AppendRecord(dst []byte, t RecordType, id uint16, c []byte) []byte {
	if len(c) > MaxContent {
		panic("fastcgi: record content longer than 65535 bytes")
	}
	pad := -len(c) & 7
	dst = append(dst, Version1, byte(t), byte(id>>8), byte(id), byte(len(c)>>8), byte(len(c)), byte(pad), 0)
	dst = append(dst, c...)
	return append(dst, zeros[:pad]...)
}

var zeros [256]byte

// AppendStream appends p as records of type t for request id, split at
// MaxContent bytes. An empty p appends nothing: the empty record that ends a
// stream is AppendRecord(dst, t, id, nil).
func AppendStream(dst []byte, t RecordType, id uint16, p []byte) []byte {
	for len(p) > 0 {
		n := min(len(p), MaxContent)
		dst = AppendRecord(dst, t, id, p[:n])
		p = p[n:]
	}
	return dst
}

// AppendBeginRequest appends a BEGIN_REQUEST record.
func AppendBeginRequest(dst []byte, id uint16, role Role, flags uint8) []byte {
	body := [8]byte{byte(role >> 8), byte(role), flags}
	return AppendRecord(dst, TypeBeginRequest, id, body[:])
}

// AppendEndRequest appends an END_REQUEST record.
func AppendEndRequest(dst []byte, id uint16, appStatus uint32, ps ProtocolStatus) []byte {
	var body [8]byte
	binary.BigEndian.PutUint32(body[:4], appStatus)
	body[4] = byte(ps)
	return AppendRecord(dst, TypeEndRequest, id, body[:])
}

// Record is a record read by a [Reader]. Content is valid until the next
// call to [Reader.Next].
type Record struct {
	Header
	Content []byte
}

// Reader reads records from a byte stream into a reused buffer.
type Reader struct {
	r   io.Reader
	buf [HeaderLen + MaxContent + 255]byte
}

// NewReader returns a Reader reading from r. r should be buffered.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Next reads the next record. It returns io.EOF at a clean end of stream
// between records, io.ErrUnexpectedEOF inside one, and [ErrBadVersion] for
// a record that is not version 1.
func (rd *Reader) Next() (Record, error) {
	if _, err := io.ReadFull(rd.r, rd.buf[:HeaderLen]); err != nil {
		return Record{}, err
	}
	h := decodeHeader(rd.buf[:HeaderLen])
	if h.Version != Version1 {
		return Record{}, fmt.Errorf("%w: %d", ErrBadVersion, h.Version)
	}
	n := int(h.ContentLength) + int(h.PaddingLength)
	if _, err := io.ReadFull(rd.r, rd.buf[HeaderLen:HeaderLen+n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Record{}, fmt.Errorf("fastcgi: reading %s record content: %w", h.Type, err)
	}
	return Record{Header: h, Content: rd.buf[HeaderLen : HeaderLen+int(h.ContentLength)]}, nil
}

// BeginRequest is the body of a BEGIN_REQUEST record.
type BeginRequest struct {
	Role  Role
	Flags uint8
}

// ErrMalformedRecord is wrapped by errors for a record whose content does not
// fit its type.
var ErrMalformedRecord = errors.New("fastcgi: malformed record")

// ParseBeginRequest parses the content of a BEGIN_REQUEST record.
func ParseBeginRequest(c []byte) (BeginRequest, error) {
	if len(c) != 8 {
		return BeginRequest{}, fmt.Errorf("%w: BEGIN_REQUEST body is %d bytes, want 8", ErrMalformedRecord, len(c))
	}
	return BeginRequest{Role: Role(binary.BigEndian.Uint16(c)), Flags: c[2]}, nil
}

// EndRequest is the body of an END_REQUEST record.
type EndRequest struct {
	AppStatus      uint32
	ProtocolStatus ProtocolStatus
}

// ParseEndRequest parses the content of an END_REQUEST record.
func ParseEndRequest(c []byte) (EndRequest, error) {
	if len(c) != 8 {
		return EndRequest{}, fmt.Errorf("%w: END_REQUEST body is %d bytes, want 8", ErrMalformedRecord, len(c))
	}
	return EndRequest{AppStatus: binary.BigEndian.Uint32(c), ProtocolStatus: ProtocolStatus(c[4])}, nil
}
