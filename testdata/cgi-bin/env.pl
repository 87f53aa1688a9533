#!/usr/bin/perl
# env.pl: dumps the CGI environment as NAME=value lines sorted by name.
use strict;
use warnings;
binmode STDOUT;
print "Content-Type: text/plain\nX-Conformance-Script: env.pl\n\n";
print "$_=$ENV{$_}\n" for sort keys %ENV;
