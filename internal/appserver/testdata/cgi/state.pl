#!/usr/bin/perl
# Keeps state in globals: under CGI every request starts afresh.
use strict;
use warnings;
our $count;
our @pids;
our %seen;
our $set_once = 'initial' unless defined $set_once;
$count++;
push @pids, $$;
$seen{$ENV{QUERY_STRING} // ''} = 1;
no strict 'refs';
${"dynamic_$count"} = 1;
my @dynamic = grep { /^dynamic_/ } keys %{__PACKAGE__ . '::'};
open(KEPT, '<', $0) or die "$0: $!";
my $kept = defined fileno(KEPT) ? 'open' : 'closed';
print "Content-Type: text/plain\r\n\r\n";
my $leak = $ENV{FERRY_TEST_LEAK} // '';
my $path_leak = () = ($ENV{PATH} =~ /:\/leak/g);
print "count=$count pids=", scalar(@pids), " seen=", scalar(keys %seen), " dynamic=", scalar(@dynamic), " set_once=$set_once env=$leak$path_leak\n";
$set_once = 'changed';
$ENV{FERRY_TEST_LEAK} .= 'x';
$ENV{PATH} .= ':/leak';
