// Package httpsyntax holds the byte classes of HTTP's grammar (RFC 9110)
// that both readers of HTTP heads in ferry check: the CGI response and
// request readers (package cgi) and the HTTP/1.1 server (internal/h1).
package httpsyntax
