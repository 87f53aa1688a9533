// Package conformance is a CGI (Common Gateway Interface, RFC 3875) conformance
// suite that runs over HTTP against any gateway: ferry serving CGI directly,
// ferry behind nginx or Apache over FastCGI or SCGI, or a peer such as Apache
// mod_cgid or Go's net/http/cgi.
//
// A [Target] names the gateway by its base URL plus a few optional hooks. [Run]
// runs every [Check] as a subtest; [Score] tallies them for gateways that are not
// expected to pass them all. The gateway must serve the scripts of testdata/cgi-bin
// ([Scripts], [CopyScripts]) under [Target.Prefix] (default "/cgi-bin/") and, for
// the gitweb-cgit check, gitweb.cgi and cgit.cgi ([InstallGitApps]) with the
// environment of a [GitFixture] ([GitFixture.Env]).
//
// # What a gateway must do
//
// The checks, in the order [Checks] returns them:
//
//   - env: GET {prefix}env.{sh,pl,py}/extra/path%20x?a=1&b=%2F with the headers
//     X-Custom-Header: v1 and Proxy: evil gives 200 and REQUEST_METHOD=GET,
//     PATH_INFO="/extra/path x" (decoded), QUERY_STRING="a=1&b=%2F" (raw),
//     SCRIPT_NAME={prefix}env.sh (.pl, .py), GATEWAY_INTERFACE=CGI/1.1,
//     SERVER_PROTOCOL=HTTP/1.1, SERVER_PORT and HTTP_HOST of the base URL,
//     REMOTE_ADDR the client's address, HTTP_X_CUSTOM_HEADER=v1, SERVER_NAME and
//     SERVER_SOFTWARE non-empty, CONTENT_LENGTH unset or empty, and no
//     HTTP_PROXY (httpoxy). The script's own header X-Conformance-Script passes.
//   - post-1mib: a 1 MiB POST with Content-Length reaches echo.py whole, with
//     CONTENT_LENGTH=1048576 and CONTENT_TYPE.
//   - post-chunked: a 300 KiB chunked POST reaches echo.py whole with
//     CONTENT_LENGTH=307200: the gateway removes the transfer coding
//     (RFC 3875 § 4.2); 411 or 400 fails.
//   - status: "Status: 418 I'm a teapot" gives status 418 and the body.
//   - cookies: two Set-Cookie fields reach the client, in order.
//   - redirect: a local redirect (RFC 3875 § 6.2.2) is served inside the gateway
//     as a GET of {prefix}env.sh/from-redirect?x=1 (status 200, no Location);
//     a client redirect (§ 6.2.3) gives 302 with the script's Location.
//   - output-20mib: 20 MiB of output arrive whole (length and SHA-256).
//   - streaming: the first line of stream.sh reaches the client while the
//     script is still running (it waits for a file the suite creates after
//     reading that line). Buffering gateways fail after 5 s.
//   - stderr: a script writing to stderr still answers 200; with
//     [Target.Log], the marker it wrote shows up in the gateway's log.
//   - crash: a script killed by SIGSEGV before any output gives 500 or 502,
//     and the next request succeeds.
//   - nph: nph-hello.sh's own status line (202), header X-NPH: yes and body
//     reach the client unchanged (RFC 3875 § 5).
//   - noexec: a script without the exec bit gives 403 or 404; it must neither
//     run nor have its source shown; 500 fails.
//   - traversal: dot-dot segments (raw, %2e, %2f, double-encoded) and a NUL byte
//     never leak file content, never run a script, never give 5xx: the status
//     is 400, 403, 404, or a 301/302/307/308 that the suite does not follow.
//     With [Target.ScriptDir], symlinks from the script directory to /etc/passwd
//     and to /etc must not leak either; through them a 5xx is tolerated, since
//     following symlinks is policy and a non-executable target is the noexec
//     check's business.
//   - missing: a script that does not exist gives 404, with or without a path
//     after it.
//   - head: HEAD {prefix}env.sh gives 200 with the script's headers and no body
//     bytes on the wire; the connection stays usable for the next request.
//   - disconnect: when the client closes the connection while sleep.sh sleeps
//     (after it has written its headers and its PID), the gateway kills the
//     script and reaps it within 10 s; a zombie fails. The suite reads the
//     script's PID from a file, so the gateway must run scripts on the same host
//     (same PID namespace).
//   - parallel: 64 concurrent requests (GET env.sh and 4 KiB POSTs to echo.py)
//     all succeed with their own answers.
//   - gitweb-cgit: gitweb.cgi lists the fixture project and shows its commit;
//     cgit.cgi shows the repository index, summary, log and a commit.
//
// Every check works under a deadline (20 s in [Run] and [Score], less where a
// check waits for something), so a hanging gateway fails a check instead of
// hanging the test; a gateway that does not answer at all fails every check
// after 10 s. A check that cannot run because something outside the
// gateway is missing (git, gitweb, cgit, an http:// base URL) returns an error
// wrapping [ErrUnavailable]; [Run] skips it unless the environment variable CI is
// "true".
//
// # Scripts and state
//
// The scripts never write into their own directory: those that need state (pid
// files, release files) use the directory named by the X-Conformance-State
// request header, which the suite sets to [Target.StateDir]. Per-request tokens
// travel as the query string. The scripts use only /bin/sh, /usr/bin/perl and
// /usr/bin/python3 with their standard libraries, so they also run as Apache's
// www-data user.
package conformance
