package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/httpsyntax"
)

// FuzzReadHead holds the head parser to net/http's: where both accept a
// head they read the same request, and where net/http's server would
// serve one that readHead refuses, the refusal is one of this package's
// framing refusals (RFC 9112 § 6.1, § 5.2).
func FuzzReadHead(f *testing.F) {
	for _, tc := range diffCases {
		f.Add([]byte(tc.req))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h := &headReader{br: bufio.NewReaderSize(bytes.NewReader(data), readBufSize), budget: DefaultMaxHeaderBytes + 4096}
		ours := &request{}
		err := readHead(h, ours)
		std, stdErr := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(data), readBufSize))
		hosts, haveHost := rawHosts(data)
		stdOK := stdErr == nil && serverTakes(std, hosts, haveHost)
		switch {
		case err != nil && stdOK:
			he, ok := isHeadError(err)
			if !ok || (he.refuse == "" && he.status != http.StatusNotImplemented && he != errFragment) {
				t.Fatalf("%q: refused (%v), net/http serves it", data, err)
			}
		case err == nil && !stdOK:
			t.Fatalf("%q: read, net/http refuses it (%v)", data, stdErr)
		case err == nil:
			r := &ours.req
			delete(std.Header, "Host")
			delete(std.Header, "Transfer-Encoding")
			if r.Method != std.Method || r.RequestURI != std.RequestURI || r.Proto != std.Proto ||
				r.Host != std.Host || r.ContentLength != std.ContentLength || r.Close != std.Close ||
				!reflect.DeepEqual(r.TransferEncoding, std.TransferEncoding) || r.URL.String() != std.URL.String() ||
				!reflect.DeepEqual(map[string][]string(r.Header), map[string][]string(std.Header)) {
				t.Fatalf("%q:\n read %s %s %s host %q cl %d close %v te %q url %s %q\nnet/http %s %s %s host %q cl %d close %v te %q url %s %q",
					data, r.Method, r.RequestURI, r.Proto, r.Host, r.ContentLength, r.Close, r.TransferEncoding, r.URL, r.Header,
					std.Method, std.RequestURI, std.Proto, std.Host, std.ContentLength, std.Close, std.TransferEncoding, std.URL, std.Header)
			}
		}
	})
}

// rawHosts returns the Host fields of a head, which http.ReadRequest
// drops from the header.
func rawHosts(data []byte) ([]string, bool) {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
	if _, err := tp.ReadLine(); err != nil {
		return nil, false
	}
	h, _ := tp.ReadMIMEHeader()
	hosts, ok := h["Host"]
	return hosts, ok
}

// serverTakes reports whether net/http's server goes on to serve a
// request http.ReadRequest read: the checks its conn.readRequest adds.
func serverTakes(r *http.Request, hosts []string, haveHost bool) bool {
	if r.ProtoMajor != 1 {
		return false
	}
	if r.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && r.Method != "CONNECT" {
		return false
	}
	if len(hosts) == 1 && !validHost(hosts[0]) {
		return false
	}
	for k, vv := range r.Header {
		if !httpsyntax.IsToken(k) {
			return false
		}
		for _, v := range vv {
			if httpsyntax.HasCTL(v) {
				return false
			}
		}
	}
	if len(r.TransferEncoding) > 0 && !strings.EqualFold(r.TransferEncoding[0], "chunked") {
		return false
	}
	return true
}
