#!/usr/bin/perl
# ferry bench app, Perl, as a long-lived FastCGI worker (libfcgi-perl's FCGI
# module), accepting on the socket it is given as file descriptor 0.
use strict;
use warnings;
use FCGI;
use File::Basename qw(dirname);
require(dirname(__FILE__) . '/bench.pl');

my $req = FCGI::Request();
while ($req->Accept() >= 0) {
	print render($ENV{QUERY_STRING});
}
