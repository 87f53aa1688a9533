#!/usr/bin/perl
# ferry bench app, Perl, as a long-lived SCGI worker (libscgi-perl's SCGI
# module), accepting on the listening socket it is given as file
# descriptor 0, as lighttpd's mod_scgi spawns its applications.
use strict;
use warnings;
use IO::Socket::UNIX;
use SCGI;
use File::Basename qw(dirname);
require(dirname(__FILE__) . '/bench.pl');

my $listener = IO::Socket::UNIX->new_from_fd(0, 'r') or die "bench-scgi.pl: descriptor 0: $!\n";
my $scgi = SCGI->new($listener, blocking => 1);
while (my $req = $scgi->accept) {
	$req->read_env;
	my $len = $req->env->{CONTENT_LENGTH} || 0;
	read($req->connection, my $body, $len) if $len > 0;
	print { $req->connection } render($req->env->{QUERY_STRING});
	$req->close;
}
