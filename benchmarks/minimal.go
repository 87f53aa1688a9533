package benchmarks

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
)

// minimalSCGIResponse is what minimalSCGI answers to every request: the
// hello app's status, type and 13 bytes, as a CGI response.
const minimalSCGIResponse = "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nHello, world\n"

// minimalSCGI serves l, until it is closed, as the smallest SCGI server one
// would write by hand: a goroutine per connection reads the netstring
// header block with bufio, skips the body by CONTENT_LENGTH, writes
// minimalSCGIResponse and closes. It checks nothing else and has no limits,
// timeouts or http.Handler: the floor that scgi.Serve of the hello app is
// compared with, behind the same nginx.
func minimalSCGI(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return // the listener is closed
		}
		go minimalSCGIConn(c)
	}
}

// minimalSCGIConn serves minimalSCGI's connection c: one request.
func minimalSCGIConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	size, err := br.ReadString(':')
	if err != nil {
		return
	}
	n, err := strconv.Atoi(size[:len(size)-1])
	if err != nil || n < 0 {
		return
	}
	block := make([]byte, n+1) // the headers and the netstring's ','
	if _, err := io.ReadFull(br, block); err != nil || block[n] != ',' {
		return
	}
	// The SCGI protocol puts CONTENT_LENGTH first.
	name, rest, _ := bytes.Cut(block[:n], []byte{0})
	value, _, _ := bytes.Cut(rest, []byte{0})
	if string(name) != "CONTENT_LENGTH" {
		return
	}
	body, err := strconv.ParseInt(string(value), 10, 64)
	if err != nil {
		return
	}
	if _, err := io.CopyN(io.Discard, br, body); err != nil {
		return
	}
	// A failed write means the web server went away; the connection
	// closes anyway.
	io.WriteString(c, minimalSCGIResponse)
}
