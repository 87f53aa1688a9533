package bridge

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"

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

// tlsConfig is the TLS configuration of an https:// front: TLS 1.2 and up
// with Go's default cipher suites, HTTP/2 offered by ALPN (net/http serves
// it on the connections that pick it), and the certificate from c.
func (c *certFiles) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: c.getCertificate,
	}
}
