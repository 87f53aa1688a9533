// Package scgi implements SCGI, as specified in "SCGI: A Simple Common
// Gateway Interface alternative" (Neil Schemenauer, 2008-06-23; the
// protocol.txt of the python scgi package), for ferry.
//
// An SCGI request is a header block encoded as a netstring (D. J.
// Bernstein's "<length>:<bytes>,") holding NUL-terminated name-value pairs,
// CONTENT_LENGTH first and SCGI=1 among them (protocol.txt § 3), followed by
// exactly CONTENT_LENGTH bytes of body. The response is not specified by
// the protocol; in practice it is a CGI response (RFC 3875 § 6: a Status
// field, header fields, a blank line, the body), or, from some servers such
// as uwsgi, an HTTP status line and header. The connection carries one
// request and ends with the response (§ 2).
//
// The codec ([ReadHeader], [AppendRequest], [Limits]) works on plain byte
// streams and imports nothing of net or net/http.
//
// [Server] is the application side: it serves an [http.Handler] to a web
// server that speaks SCGI (nginx scgi_pass, Apache mod_proxy_scgi, lighttpd
// mod_scgi); [Serve] is the one-call form. [Client] is the web-server side:
// it sends requests to an SCGI application (uwsgi --scgi-socket, python
// scgi, ferry), a connection per request, and is a cgi.Transport;
// [NewHandler] puts it behind a cgi.Forwarder, an [http.Handler] with a
// cgi.Resolver saying which script runs. Both sides share the CGI
// translations of package cgi with ferry's FastCGI and CGI code: the header
// block is the set of CGI meta-variables.
//
// Worker pools that start the application's processes are moving to a
// package of their own, spawn, shared with the FastCGI framing.
package scgi
