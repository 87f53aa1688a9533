# ferry bench app, Perl, as a PSGI application (ferry's psgi: workers,
# plackup): the same render() as bench.pl, which require compiles into
# this file's package (plackup loads it in a package of its own).
use strict;
use warnings;
use File::Basename qw(dirname);
require(dirname(__FILE__) . '/bench.pl');

sub {
	my $env = shift;
	my ($head, $body) = split /\r\n\r\n/, render($env->{QUERY_STRING}), 2;
	my ($ctype) = $head =~ /^Content-Type: (.*)$/m;
	return [200, ['Content-Type' => $ctype, 'Content-Length' => length $body], [$body]];
};
