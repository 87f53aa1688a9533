// Package appserver runs applications in long-lived worker processes that
// ferry supervises, as Gunicorn and uWSGI do for Python, plackup and Starman
// for Perl, and ModPerl::Registry for Perl CGI scripts: the wsgi: and psgi:
// backs and the persistent cgi: mounts (persist=perl, persist=php).
//
// # Adapters
//
// A worker runs a small adapter that ferry ships inside its binary (Python
// and Perl, their standard libraries only; the Perl CGI one compiles
// scripts itself, as CGI::Compile does): it loads the application once, then accepts connections on the
// pool's listening socket (package spawn) and answers each request. The
// adapters speak SCGI to ferry (one connection per request, a netstring of
// CGI variables, then the body; the answer is a CGI response): SCGI is the
// framing a few dozen lines of an interpreted language parse fastest (one
// split of the header block, no records to frame around each write), the
// request and response bodies go through the socket untouched, so a
// streamed block leaves the worker in one write, and ferry's [scgi.Client]
// is the client. What SCGI lacks, a way to say that an answer was cut
// short, the scoreboard gives (below).
//
// The WSGI adapter implements PEP 3333, the PSGI one PSGI 1.1 (streaming
// and psgix.harakiri included), and the Perl CGI one runs scripts as
// ModPerl::Registry does, with their package variables put back after each
// run (see [PerlCGI] for what a script must not do).
//
// # Supervision
//
// [Workers] adds to a [spawn.Pool] what an application server needs:
//
//   - it waits at start until the first worker has loaded the application,
//     and fails if it exits before, so that a broken application stops
//     ferry serve at once rather than answering 502 to every request;
//   - a hard timeout per request (uWSGI's harakiri): past it, the worker
//     serving the request is killed (and replaced by the pool), the client
//     gets 504, and one log line names the request and the worker;
//   - recycling past a resident memory limit: a worker whose RSS exceeds
//     MaxRSS gets SIGTERM, finishes the request in hand and exits, and the
//     pool starts another;
//   - what the application starts (a subprocess, a multiprocessing child,
//     a fork) stays in its worker's process group, which the pool stops
//     with the worker, and which the worker's guard (package spawn) kills
//     if ferry dies without stopping the pool (SIGKILL, a crash): nothing
//     is left running but what left the group (setsid, a daemon);
//   - the request's ID: ferry's X-Request-Id reaches the application as the
//     request header X-Request-Id (HTTP_X_REQUEST_ID), and the adapters
//     mark every line of wsgi.errors, psgi.errors and a script's stderr
//     with it.
//
// # The scoreboard
//
// Workers accept connections themselves, so ferry does not know which
// worker serves which request. Each worker tells it: a 256-byte file named
// by its pid, in a directory ferry makes, holds the ID of the request it
// serves (a NUL byte when idle, "!" and the ID when it could not finish
// its answer). The Python adapter writes it through a
// shared memory map, the Perl one with one write; ferry reads the files
// only when it needs to: to find the worker of a request past its hard
// timeout, and at the end of a response of unknown length, where a worker
// that still names the request did not finish it (it died, or its
// application failed midway): ferry then cuts the client's connection
// rather than end the response as if whole.
package appserver
