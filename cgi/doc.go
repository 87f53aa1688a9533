// Package cgi implements CGI (Common Gateway Interface) as specified in RFC 3875,
// and the translations every other ferry protocol shares.
//
// CGI/1.1 meta-variables are the common model of ferry: FastCGI PARAMS and SCGI
// headers are meta-variables, and a FastCGI STDOUT stream or an SCGI response is a
// CGI response. This package holds the four translations once:
//
//   - [AppendEnv]: an [*http.Request] becomes meta-variables (RFC 3875 § 4.1), outbound;
//   - [RequestFromEnv]: meta-variables become an [*http.Request], inbound;
//   - [ReadResponse] and [CopyResponse]: a script's response (RFC 3875 § 6) is
//     parsed and written to an [http.ResponseWriter], outbound;
//   - [ResponseWriter]: an [http.Handler]'s output becomes a CGI response stream,
//     inbound.
//
// On top of them sits the one gateway core every back uses:
//
//   - a [Resolver] says which script a request runs, as a [Script] (SCRIPT_NAME,
//     PATH_INFO, SCRIPT_FILENAME, DOCUMENT_ROOT): [Mount] (an application mounted
//     at a prefix), [Dir] (Apache's ScriptAlias), [FilenameDir] (the
//     SCRIPT_FILENAME of a front web server, as fcgiwrap) and [PHPSite] (split at
//     an extension, as nginx + php-fpm);
//   - [Handler] runs the script, one process per request, with a timeout, a
//     concurrency limit and process-group cleanup;
//   - [Forwarder] passes the request to a long-lived application through a
//     [Transport] (package fastcgi's and package scgi's Client);
//   - [Settings] are what both share (extra meta-variables, SERVER_SOFTWARE,
//     body and header limits, logger), and [StatusError] with [StatusOf] is the
//     one mapping of failures to the status a client is answered with.
//
// [Serve] lets a Go program be a CGI script.
package cgi
