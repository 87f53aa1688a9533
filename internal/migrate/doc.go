// Package migrate reads Apache httpd and nginx configurations and writes
// the ferry configuration that does their dynamic part (CGI, FastCGI,
// SCGI, mod_php, mod_fcgid, mod_wsgi), the reduced web-server snippet that hands
// those paths to ferry, and a report: every directive with what became of
// it (file:line -> ferry key, or why not), and security findings of the
// old setup. It is what ferry migrate runs.
//
// Nothing is dropped silently: a directive migrate does not translate is
// in the report, as kept in the web server, translated but to review, or
// untranslated with the reason.
package migrate
