#!/usr/bin/perl
# A named sub using a file-scope lexical: not safe kept compiled.
use strict;
use warnings;
my $q = $ENV{QUERY_STRING};
sub show { print "q=$q pid=$$\n" }
print "Content-Type: text/plain\r\n\r\n";
show();
