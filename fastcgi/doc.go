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
// response on the STDOUT stream the same way. [Serve] is a drop-in for
// net/http/fcgi.Serve, on a listener or the socket a web server passed as
// file descriptor 0.
//
// [Client] is the web-server side: it sends requests to a FastCGI
// application (php-fpm, php-cgi -b, Perl FCGI, uwsgi, ferry) over a pool of
// kept-alive connections, with request-ID multiplexing where the
// application allows it and few connections. It is a cgi.Transport; [NewHandler] puts it behind
// a cgi.Forwarder, an [http.Handler] that maps requests to meta-variables
// and the application's answer back, with a cgi.Resolver saying which
// script runs (cgi.PHPSite for an nginx + php-fpm site layout).
// [Client.Do] is the lower-level call, for the Authorizer and Filter roles,
// the application's stderr and its exit status.
//
// [Pool] starts and supervises worker processes that share one listening
// socket (FCGI_LISTENSOCK_FILENO), statically or on demand; worker pools
// are moving to a package of their own, spawn, shared by the framings.
package fastcgi
