#!/usr/bin/perl
# Reads a name from the query string or a POSTed form.
use strict;
use warnings;

my $data = $ENV{QUERY_STRING} // '';
if (($ENV{REQUEST_METHOD} // '') eq 'POST' && ($ENV{CONTENT_LENGTH} // 0) > 0) {
    read(STDIN, $data, $ENV{CONTENT_LENGTH});
}
my %form;
for my $pair (split /[&;]/, $data) {
    my ($k, $v) = split /=/, $pair, 2;
    next unless defined $k;
    for ($k, $v) { next unless defined; tr/+/ /; s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge; }
    $form{$k} = $v;
}
my $name = $form{name} // 'world';
$name =~ s/([<>&"])/sprintf('&#%d;', ord($1))/ge;
my $info = $ENV{PATH_INFO} // '(none)';
$info =~ s/([<>&"])/sprintf('&#%d;', ord($1))/ge;
print "Content-Type: text/html; charset=utf-8\r\n\r\n";
print "<!doctype html><title>hello.pl</title><h1>Hello, $name, from Perl $^V</h1>\n";
print "<p>PATH_INFO: <code>$info</code></p><p><a href=\"/\">back</a></p>\n";
