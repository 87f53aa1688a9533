// Package httpsyntax holds what both readers of HTTP heads in ferry share,
// the CGI response and request readers (package cgi) and the HTTP/1.1
// server (internal/h1): the byte classes of HTTP's grammar (RFC 9110), and
// Fields, which gathers a head's fields and builds its http.Header in a
// few allocations.
package httpsyntax
