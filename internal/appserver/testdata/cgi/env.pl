#!/usr/bin/perl
use strict;
use warnings;
use Cwd ();
print "Content-Type: text/plain\r\n\r\n";
print "$_=$ENV{$_}\n" for sort keys %ENV;
print "pid=$$\nzero=$0\ncwd=", Cwd::getcwd(), "\n";
