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
//
// # Scripts that misbehave
//
// Each script runs in its own process group, as [Handler.User] (never as
// root unless asked), with the [Handler] RLimit limits set before its first
// instruction, and dies with ferry (SIGKILL as the parent-death signal).
// What a client gets from a script that misbehaves, and when (Timeout and
// KillGrace are the [Handler] settings; "aborted" means the client sees a
// broken response: a reset connection, or a chunked body with no last
// chunk, never one that looks whole):
//
//	script                               client gets                                  when
//	never answers                        504                                          at Timeout
//	ignores SIGTERM                      504; SIGKILL KillGrace later                 at Timeout
//	headers, then silence                the status and headers, then aborted         at Timeout
//	some output, then silence            that output, then aborted                    at Timeout
//	killed before it answered            503 (server shutting down, client gone)      when the request ends
//	killed after it answered             what was sent, then aborted                  when the request ends
//	100 MB of stderr                     its response; stderr logged up to            as it writes
//	                                     MaxStderrBytes, the rest read and dropped
//	closes stdout early, works on        its response, whole; it runs on until it     at stdout's end
//	                                     exits or Timeout (logged)
//	background child holding stdout      its response, whole; the holders are named   100 ms after the
//	                                     in a warning and stopped (group SIGTERM,     script exits
//	                                     SIGKILL after KillGrace)
//	background child not holding stdout  its response; the child is stopped with the  when the script exits
//	                                     group unless KeepBackground
//	exits non-zero before any output     502                                          at its exit
//	exits non-zero after its output      its response as written; the exit logged     at its exit
//	Status out of range (not 200-599)    502                                          at the header
//	header line past HeaderLimits        502                                          at the header
//	binary garbage, no blank line        502                                          at its output's end
//	body past MaxOutput                  MaxOutput bytes, then aborted; stopped       at the limit
//	body past its Content-Length         the Content-Length bytes, whole; the rest    at its output's end
//	                                     read, dropped and logged
//	body short of its Content-Length     what it sent, then aborted; logged           at its output's end
//	body on a 204 or 304                 the status and headers; the body dropped     at its output's end
//	fork bomb                            as any script: 504 at Timeout, the whole     at Timeout
//	                                     group killed; RLimitNProc bounds it, and
//	                                     ferry serves other requests meanwhile
//
// A script is stopped with SIGTERM to its whole process group, then SIGKILL
// once its own process has exited or after KillGrace. The request ends, and
// the script slot is freed, by the time the client has its answer (a
// script that closed stdout early keeps its slot until it exits, and one
// that ignores its timeout's SIGTERM until its SIGKILL).
package cgi
