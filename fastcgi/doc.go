// Package fastcgi implements FastCGI 1.0, as specified in the FastCGI
// Specification (Open Market, 1996), for ferry.
//
// The record codec ([Header], [Reader], [AppendRecord], [AppendPair],
// [ParsePairs]) works on plain byte streams and imports nothing of net/http.
//
// [Server] is the application side: it serves an [http.Handler] to a web
// server that speaks FastCGI (nginx fastcgi_pass, Apache mod_proxy_fcgi,
// lighttpd, mod_fcgid). Requests are multiplexed, each in its own goroutine;
// every size has a limit. The CGI meta-variables a web server sends become
// the request through package cgi, and the handler's output becomes a CGI
// response on the STDOUT stream the same way.
package fastcgi
