package bridge

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// certFiles is the certificate of an https:// front, read from its cert
// and key files and read again when either changes on disk (modification
// time or size), so that a renewed certificate (certbot, acme.sh) serves
// the next handshake without a restart. A pair that fails to load (a
// half-written renewal, a key that does not match) leaves the one in
// service, with one log line per change.
type certFiles struct {
	cert, key string
	log       *zerolog.Logger

	mu     sync.Mutex // guards the fields below
	pair   *tls.Certificate
	stamp  [2]fileStamp // the files' stamps when pair was read
	failed [2]fileStamp // the stamps the last failed read saw: logged once
}

// fileStamp is what tells a file changed.
type fileStamp struct {
	mtime int64 // nanoseconds since 1970
	size  int64
}

// stampOf returns the stamp of file name.
func stampOf(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime().UnixNano(), fi.Size()}, nil
}

// loadCertFiles reads the pair; the error names the files.
func loadCertFiles(cert, key string, log *zerolog.Logger) (*certFiles, error) {
	c := &certFiles{cert: cert, key: key, log: log}
	stamp, pair, err := c.read()
	if err != nil {
		return nil, err
	}
	c.pair, c.stamp = pair, stamp
	return c, nil
}

// read reads the pair and the stamps it was read at.
func (c *certFiles) read() ([2]fileStamp, *tls.Certificate, error) {
	var stamp [2]fileStamp
	var pem [2][]byte
	for i, name := range [2]string{c.cert, c.key} {
		var err error
		if stamp[i], err = stampOf(name); err == nil {
			pem[i], err = os.ReadFile(name)
		}
		if err != nil {
			return stamp, nil, fmt.Errorf("%s=%s: %s", [2]string{"cert", "key"}[i], name, fileError(err))
		}
	}
	pair, err := tls.X509KeyPair(pem[0], pem[1])
	if err != nil {
		return stamp, nil, fmt.Errorf("cert=%s key=%s: %w", c.cert, c.key, err)
	}
	return stamp, &pair, nil
}

// getCertificate is the front's tls.Config.GetCertificate: the pair, read
// again first if a file changed. Two stat calls per handshake are little
// beside the handshake's own work.
func (c *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var now [2]fileStamp
	for i, name := range [2]string{c.cert, c.key} {
		now[i], _ = stampOf(name) // a file gone for a moment (a rename in progress) reads as changed, and fails below
	}
	if now == c.stamp || now == c.failed {
		return c.pair, nil
	}
	stamp, pair, err := c.read()
	if err != nil {
		c.failed = now
		if c.log != nil {
			c.log.Warn().Err(err).Msg("ferry: TLS certificate changed but cannot be loaded; serving the previous one")
		}
		return c.pair, nil
	}
	c.pair, c.stamp, c.failed = pair, stamp, [2]fileStamp{}
	if c.log != nil {
		c.log.Info().Str("cert", c.cert).Str("key", c.key).Msg("ferry: TLS certificate reloaded")
	}
	return pair, nil
}

// tlsListener is the listener of an https:// front: it accepts on the TCP
// socket it wraps, which a reload keeps and an upgrade hands over, and
// serves TLS with the certificate of certs, which a reload replaces: TLS
// 1.2 and up with Go's default cipher suites, HTTP/2 offered by ALPN
// (net/http serves it on the connections that pick it). The HTTP front
// puts TLS between its own two layers with the socket and config (see
// [httpFront.serve]).
type tlsListener struct {
	net.Listener
	certs  atomic.Pointer[certFiles]
	config *tls.Config
}

func newTLSListener(l net.Listener, c *certFiles) *tlsListener {
	tl := &tlsListener{Listener: l}
	tl.certs.Store(c)
	tl.config = &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return tl.certs.Load().getCertificate(hello)
		},
	}
	return tl
}

// Accept returns the next connection as the server side of TLS; its
// handshake runs on its first read or write.
func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, l.config), nil
}

// frontCerts reads the certificate of a, an https:// front, or returns nil
// for another front; the error names the files.
func frontCerts(a Address, log *zerolog.Logger) (*certFiles, error) {
	if a.Scheme != "https" {
		return nil, nil
	}
	c, err := loadCertFiles(a.Query.Get("cert"), a.Query.Get("key"), log)
	if err != nil {
		return nil, fmt.Errorf("bridge: listen https://%s: %w", a.Host, err) // the error names the files
	}
	return c, nil
}

// withTLS returns l serving TLS with certs, or l itself when certs is nil.
func withTLS(l net.Listener, certs *certFiles) net.Listener {
	if certs == nil {
		return l
	}
	return newTLSListener(l, certs)
}

// socketOf returns the listener that holds l's socket: l itself, or the
// TCP listener under an https:// front's TLS.
func socketOf(l net.Listener) net.Listener {
	if tl, ok := l.(*tlsListener); ok {
		return tl.Listener
	}
	return l
}
