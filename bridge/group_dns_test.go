package bridge

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// dnsServer answers A and SRV questions over UDP from tables the test
// changes as it goes: an independent DNS server for the resolver of
// package net, so that re-resolution is tested through real lookups.
type dnsServer struct {
	pc  net.PacketConn
	mu  sync.Mutex           // guards a and srv
	a   map[string][]string  // name with its final dot -> IPv4 addresses
	srv map[string][]net.SRV // name with its final dot -> records
}

// startDNS starts a dnsServer on loopback; it stops at cleanup.
func startDNS(t *testing.T) *dnsServer {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{pc: pc, a: map[string][]string{}, srv: map[string][]net.SRV{}}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := d.answer(buf[:n]); resp != nil {
				pc.WriteTo(resp, from) // a lost answer is retried by the resolver
			}
		}
	}()
	return d
}

// set replaces the answers for name.
func (d *dnsServer) set(name string, a []string, srv []net.SRV) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.a[name], d.srv[name] = a, srv
}

// resolver is a resolver that asks d only.
func (d *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp", d.pc.LocalAddr().String())
	}}
}

// answer builds the response to query q (RFC 1035 § 4.1): the question,
// then its A or SRV records, or NXDOMAIN for a name d does not hold.
func (d *dnsServer) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	i, name := 12, ""
	for i < len(q) && q[i] != 0 {
		n := int(q[i])
		if n > 63 || i+1+n > len(q) {
			return nil
		}
		name += strings.ToLower(string(q[i+1:i+1+n])) + "."
		i += 1 + n
	}
	i++ // the root label
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	var rdata [][]byte
	d.mu.Lock()
	ips, hasA := d.a[name]
	srvs, hasSRV := d.srv[name]
	d.mu.Unlock()
	rcode := byte(0)
	switch {
	case !hasA && !hasSRV:
		rcode = 3 // NXDOMAIN
	case qtype == 1: // A
		for _, ip := range ips {
			rdata = append(rdata, net.ParseIP(ip).To4())
		}
	case qtype == 33: // SRV (RFC 2782)
		for _, s := range srvs {
			r := binary.BigEndian.AppendUint16(nil, s.Priority)
			r = binary.BigEndian.AppendUint16(r, s.Weight)
			r = binary.BigEndian.AppendUint16(r, s.Port)
			for _, label := range strings.Split(strings.TrimSuffix(s.Target, "."), ".") {
				r = append(append(r, byte(len(label))), label...)
			}
			rdata = append(rdata, append(r, 0))
		}
	}
	// ID, QR+RD, RA+RCODE, one question, the answers, no others.
	resp := append([]byte{q[0], q[1], 0x81, 0x80 | rcode, 0, 1}, byte(len(rdata)>>8), byte(len(rdata)), 0, 0, 0, 0)
	resp = append(resp, q[12:i+4]...)
	for _, r := range rdata {
		resp = append(resp, 0xc0, 12) // the question's name
		resp = binary.BigEndian.AppendUint16(resp, qtype)
		resp = append(resp, 0, 1, 0, 0, 0, 0) // class IN, TTL 0
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(r)))
		resp = append(resp, r...)
	}
	return resp
}

// poolsOnOnePort starts php-fpm pool a on 127.0.0.2 and pool b on
// 127.0.0.3, on one port, which it returns: two hosts of one service.
func poolsOnOnePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on loopback: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	for _, p := range []struct{ name, ip string }{{"a", "127.0.0.2"}, {"b", "127.0.0.3"}} {
		f, err := startPHPFPMOn(t, fmt.Sprintf("%s:%d", p.ip, port), p.name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Stop() })
	}
	return port
}

// answers sends n GETs to url and returns the pools that answered, each
// once, in the order first seen.
func answers(t *testing.T, url string, n int) string {
	t.Helper()
	seen := ""
	for range n {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
		}
		if !strings.Contains(seen, string(b)) {
			seen += string(b)
		}
	}
	return seen
}

// waitAnswers asks url until 20 requests in a row are answered by the
// pools want, for up to 3 s.
func waitAnswers(t *testing.T, url, want, what string) {
	t.Helper()
	got := ""
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = answers(t, url, 20); got == want || (len(want) == 2 && got == want[1:]+want[:1]) {
			return
		}
	}
	t.Errorf("%s: answered by pools %q; want %q", what, got, want)
}

// TestGroupResolve: a group follows DNS. A name re-resolved every 200 ms
// gains a backend when an address is added and drains the one whose
// address went; an SRV record's group uses the targets of its lowest
// priority (the others are backups) and follows changes of its targets.
func TestGroupResolve(t *testing.T) {
	if testing.Short() {
		t.Skip("real peers")
	}
	root := poolSite(t)
	port := poolsOnOnePort(t)
	dns := startDNS(t)
	serve := func(backend string) string {
		m, err := ParseMount("/=" + backend)
		if err != nil {
			t.Fatal(err)
		}
		_, addr, _ := runFerry(t, Config{Listen: []Address{mustAddr(t, "http://127.0.0.1:0")}, Mounts: []Mount{m}, Root: root, Resolver: dns.resolver()})
		return "http://" + addr + "/pool.php"
	}

	dns.set("fpm.test.", []string{"127.0.0.2"}, nil)
	url := serve(fmt.Sprintf("fastcgi://fpm.test:%d?resolve=200ms", port))
	if got := answers(t, url, 10); got != "a" {
		t.Fatalf("fpm.test is 127.0.0.2: answered by %q; want a", got)
	}
	dns.set("fpm.test.", []string{"127.0.0.2", "127.0.0.3"}, nil)
	waitAnswers(t, url, "ab", "fpm.test is 127.0.0.2 and 127.0.0.3")
	dns.set("fpm.test.", []string{"127.0.0.3"}, nil)
	waitAnswers(t, url, "b", "fpm.test is 127.0.0.3")

	dns.set("a.fpm.test.", []string{"127.0.0.2"}, nil)
	dns.set("b.fpm.test.", []string{"127.0.0.3"}, nil)
	dns.set("_fcgi._tcp.fpm.test.", nil, []net.SRV{{Target: "a.fpm.test.", Port: uint16(port), Priority: 10, Weight: 1}, {Target: "b.fpm.test.", Port: uint16(port), Priority: 20, Weight: 1}})
	url = serve("fastcgi://_fcgi._tcp.fpm.test?resolve=200ms")
	if got := answers(t, url, 10); got != "a" {
		t.Fatalf("SRV a (priority 10), b (20): answered by %q; want a", got)
	}
	dns.set("_fcgi._tcp.fpm.test.", nil, []net.SRV{{Target: "b.fpm.test.", Port: uint16(port), Priority: 10, Weight: 1}})
	waitAnswers(t, url, "b", "SRV b (priority 10)")
}
