// Package fcgitest is a conformance suite for FastCGI application servers
// (the responder side: ferry's fastcgi listener, fcgiwrap, php-fpm, Go's
// net/http/fcgi), as specified by FastCGI 1.0 (Open Market, 1996; "the spec"
// below, sections as "§ 5.4"). It speaks raw records over a socket with its
// own small codec (record.go) and shares no code with ferry's fastcgi
// package, so it can judge it.
//
// A [Target] names the server's address and the two endpoints the
// application behind it must serve (testdata/echo.sh and testdata/sleep.sh
// as CGI scripts; see [Scripts]). [Run] runs every [Check] as a subtest;
// [Score] tallies them for servers that are not expected to pass them all.
//
// # What an application server must do
//
// Every read is bounded by a deadline, so a hanging server fails a check
// rather than hanging the test. Every check ends with a plain echo request
// on a new connection, which must be answered correctly: the server keeps
// serving. The checks, in the order [Checks] returns them:
//
//   - responder: BEGIN_REQUEST (RESPONDER, no KEEP_CONN), PARAMS, an empty
//     PARAMS and an empty STDIN get STDOUT holding a CGI response (Status
//     absent or 200, Content-Type text/plain, the echo body), an empty
//     STDOUT record, exactly one END_REQUEST with REQUEST_COMPLETE, and then
//     the server closes the connection within 5 s (§ 5.1); any record after
//     END_REQUEST fails.
//   - get-values: GET_VALUES on request ID 0 asking for FCGI_MAX_CONNS,
//     FCGI_MAX_REQS and FCGI_MPXS_CONNS (empty values) gets, within 10 s, one
//     GET_VALUES_RESULT record on ID 0 whose content parses exactly as
//     name-value pairs, holds at least one and only asked-for names, each
//     once, with decimal values (FCGI_MPXS_CONNS 0 or 1), and then nothing
//     more for 500 ms (§ 4.1). Closing the connection afterwards is allowed.
//   - unknown-type: a management record of type 100 with an 8-byte body
//     gets UNKNOWN_TYPE on ID 0 whose 8-byte body names type 100 (§ 4.2);
//     then a request on the same connection is answered, so the server
//     skipped the unknown record's body.
//   - stdin-300k: a POST of 307200 bytes over STDIN records of 65535, 1,
//     32768, 65535, 8191 and 12345 bytes (repeated) reaches the echo
//     endpoint whole: it reports CONTENT_LENGTH=307200 and the body's SHA-256.
//   - padding-255: a POST whose every record, BEGIN_REQUEST and the empty
//     ones included, carries 255 bytes of padding (§ 3.3) is answered
//     correctly.
//   - interleaved: two requests (IDs 1 and 2, KEEP_CONN) on one connection,
//     their BEGIN_REQUEST, PARAMS and STDIN records alternating, are both
//     answered correctly, each with its own END_REQUEST. A server that
//     refuses the second with END_REQUEST CANT_MPX_CONN fails with an error
//     wrapping [ErrNoMultiplex].
//   - keep-conn: three requests in a row on one connection, all with
//     KEEP_CONN and request ID 1, are answered, and the connection is still
//     open 500 ms after the third END_REQUEST (§ 5.1).
//   - abort: a request for the sleep endpoint (KEEP_CONN) is aborted with
//     ABORT_REQUEST once the script has written its pid file (§ 5.4).
//     STDOUT and STDERR may still come, then exactly one END_REQUEST for it
//     within 10 s and nothing more for it in the next second; the script's
//     process is gone (killed and reaped: a zombie fails) within 10 s of the
//     abort. If the server kept the connection open, a new request on it is
//     answered; if it closed it, that is accepted. The suite reads the PID
//     through /proc, so the server must run scripts on the same Linux host;
//     a script the server left running is killed by the suite.
//   - lying-lengths: three connections, each of which the server must give
//     up on within 5 s, by answering (any status) or closing, while its
//     process (Target.PID, if set) stays alive: a PARAMS header announcing
//     65535 bytes followed by 100 and the client's write shutdown; a params
//     stream ending in a pair whose value claims 2^31-1 bytes but has 16;
//     a params stream cut in the middle of a 4-byte length.
//   - params-10mb: a request whose params stream is 10 MiB (one HTTP_X_BIG
//     value in PARAMS records of 65535 bytes) is answered (any status) or the
//     connection closed, within 20 s; the client's writes failing once the
//     server has given up are fine. With Target.PID, the resident memory of
//     that process and its descendants (or, with Target.Memory, what that
//     function measures) grows by less than Target.MaxRSSGrowth (20 MiB by
//     default) from before the request to after a plain request that
//     follows it: the server caps the params it buffers.
//
// # Request parameters
//
// The suite sends REQUEST_METHOD (GET, or POST with a body), REQUEST_URI,
// SCRIPT_NAME (the endpoint path), PATH_INFO (empty), QUERY_STRING,
// CONTENT_LENGTH (empty without a body) and CONTENT_TYPE, SERVER_PROTOCOL,
// SERVER_NAME, SERVER_PORT, SERVER_SOFTWARE, REMOTE_ADDR, GATEWAY_INTERFACE
// and HTTP_HOST, then whatever [Target.Params] adds, such as the
// SCRIPT_FILENAME fcgiwrap needs.
package fcgitest
