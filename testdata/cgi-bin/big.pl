#!/usr/bin/perl
# big.pl: 20 MiB of output: 327680 lines of a 63-digit zero-padded counter.
use strict;
use warnings;
binmode STDOUT;
print "Content-Type: application/octet-stream\n\n";
printf "%063d\n", $_ for 0 .. 327679;
