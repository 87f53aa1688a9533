#!/usr/bin/perl
# Reads its body from STDIN, and lets a program it runs count the rest of
# descriptor 0, as a CGI script may.
use strict;
use warnings;
$| = 1;
my $len = $ENV{CONTENT_LENGTH} || 0;
read(STDIN, my $head, 5);
print "Content-Type: text/plain\r\n\r\n";
print "head=$head len=$len rest=";
system('sh', '-c', 'wc -c | tr -d " "');
