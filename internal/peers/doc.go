// Package peers starts real peer web servers on the loopback interface, so
// that tests and benchmarks can compare ferry with the programs users
// actually run, and run ferry behind or in front of them:
//
//   - CGI: Apache httpd with mod_cgid ([StartApacheCGI]) and nginx in front
//     of fcgiwrap ([StartNginxFcgiwrap]);
//   - fronts for a FastCGI application the caller runs, such as ferry's
//     FastCGI listener or Go's net/http/fcgi: nginx ([StartNginxFastCGI])
//     and Apache httpd with mod_proxy_fcgi ([StartApacheProxyFCGI]);
//   - a FastCGI application: php-fpm ([StartPHPFPM]);
//   - fronts for an SCGI application the caller runs, such as ferry's
//     scgi.Server: nginx scgi_pass ([StartNginxSCGI]), Apache httpd with
//     mod_proxy_scgi ([StartApacheProxySCGI]) and lighttpd with mod_scgi
//     ([StartLighttpdSCGI]);
//   - SCGI applications: uwsgi serving a WSGI application ([StartUWSGI]) and
//     rtorrent's XML-RPC port ([StartRTorrent]);
//   - any other program through [Start].
//
// Every peer gets a self-contained configuration generated into a directory
// chosen by the caller; nothing under /etc is read or changed and the
// service manager is never involved. Servers listen on 127.0.0.1 ports
// picked at run time ([FreePort]) or on unix sockets inside that directory.
//
// Each program runs in its own process group. [Process.Stop] sends SIGTERM
// to the whole group, SIGKILL after a grace period, and reaps the leader, so
// forked workers and CGI children do not outlive the peer.
//
// The Start functions take a [context.Context], return an error, and leave
// stopping to the caller, so that they work outside go test: ferry bench
// uses them. This package does not import testing. Tests use package
// peerstest, whose functions wrap the Start functions for a [testing.TB]:
// they skip a test when a peer is not installed, or fail it when the CI
// environment variable is true, where .ci/run installs the peers.
package peers
