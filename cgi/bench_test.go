package cgi

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func benchRequest() *http.Request {
	r := httptest.NewRequest("GET", "http://example.com/cgi-bin/app.pl/a/b?x=1&y=2", nil)
	r.RemoteAddr = "192.0.2.7:51234"
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	r.Header.Set("Accept-Language", "en-GB,en;q=0.9")
	r.Header.Set("Accept-Encoding", "gzip, deflate, br")
	r.Header.Set("Cookie", "session=abcdef0123456789; theme=dark")
	r.Header.Set("Referer", "http://example.com/")
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
}

func BenchmarkAppendEnv(b *testing.B) {
	r := benchRequest()
	s := Script{Name: "/cgi-bin/app.pl", PathInfo: "/a/b", Filename: "/srv/cgi-bin/app.pl", Root: "/srv/www"}
	buf := make([]string, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendEnv(buf[:0], r, s, "ferry"); err != nil {
			b.Fatal(err)
		}
	}
}

const benchResponse = "Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n" +
	"Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\nCache-Control: no-cache\r\n" +
	"X-Powered-By: Perl\r\n\r\n<html>hello</html>"

func BenchmarkReadResponse(b *testing.B) {
	sr := strings.NewReader(benchResponse)
	br := bufio.NewReaderSize(sr, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchResponse)))
	for b.Loop() {
		sr.Reset(benchResponse)
		br.Reset(sr)
		if _, err := ReadResponse(br, false, HeaderLimits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResponseWriter(b *testing.B) {
	bw := bufio.NewWriterSize(io.Discard, 8192)
	body := []byte("<html>hello</html>")
	b.ReportAllocs()
	for b.Loop() {
		rw := NewResponseWriter(bw, nil)
		rw.Header().Set("Content-Type", "text/html")
		rw.Header().Add("Set-Cookie", "a=1")
		rw.Write(body)
		if err := rw.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
