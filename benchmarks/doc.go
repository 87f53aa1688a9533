// Package benchmarks is the engine of ferry bench and the home of the
// cross-protocol benchmarks run with go test -bench.
//
// ferry bench (cmd/ferry) calls [RunScenarios] for the bundled scenarios: the
// same small application in sh, Perl, Python, PHP and Go, run as
// per-request CGI behind ferry, as long-lived FastCGI and SCGI workers, and
// behind the real peers users run (Apache mod_cgid, nginx with fcgiwrap and
// php-fpm, uwsgi), started on loopback with generated configurations. It
// calls [RunTarget] to load one address (http://, fastcgi://, scgi://,
// cgi:), and [ReadReport] and [WriteCompare] to compare two runs. A
// [Report] is written as a table, JSON, CSV or a self-contained HTML page
// with charts. Every gateway runs in a process of its own, ferry included:
// the command passes the arguments after [HelperArg] to [RunHelper].
//
// The load generator measures latency from the intended send time in open
// loop (no coordinated omission) into a log-linear histogram with three
// significant digits, and CPU per request from the operating system's
// accounting of the gateway's, the workers' and its own processes.
//
// The _test.go files hold the comparisons run with
//
//	go test -run '^$' -bench . ./benchmarks
//
// (ferry's CGI gateway against the peers', ferry's FastCGI and SCGI servers
// behind nginx, php-fpm behind ferry, nginx and gofast, uwsgi over SCGI, the
// cost of each hop against a direct handler), with wrk as the load generator
// when it is installed. README.md in this directory describes the method and
// the scenarios.
package benchmarks
