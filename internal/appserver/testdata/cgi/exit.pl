#!/usr/bin/perl
use strict;
use warnings;
print "Content-Type: text/plain\r\n\r\nbefore exit\n";
print STDERR "exit.pl says goodbye\n";
exit 0;
print "after exit\n";
