#!/usr/bin/perl
print "Content-Type: text/plain\r\n\r\nversion 1 pid=$$\n";
