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
// On top of them it runs scripts: [Handler] runs one script per request with a
// timeout, a concurrency limit and process-group cleanup, and [Dir] gives a
// directory ScriptAlias semantics. [Serve] lets a Go program be a CGI script.
package cgi
