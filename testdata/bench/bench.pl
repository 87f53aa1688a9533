#!/usr/bin/perl
# ferry bench app, Perl: per-request CGI when run as a script; bench-fcgi.pl
# serves the same render() as a long-lived FastCGI worker.
# GET /            -> "Hello, world"
# GET /?rows=N&name=S -> an HTML page of N rows (the "realistic" variant)
use strict;
use warnings;

sub esc {
	my $s = shift;
	$s =~ s/&/&amp;/g; $s =~ s/</&lt;/g; $s =~ s/>/&gt;/g; $s =~ s/"/&quot;/g;
	return $s;
}

sub render {
	my ($query) = @_;
	my %q;
	for my $kv (split /&/, $query // '') {
		my ($k, $v) = split /=/, $kv, 2;
		next unless defined $k;
		$v //= '';
		$v =~ tr/+/ /;
		$v =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/eg;
		$q{$k} = $v;
	}
	my $rows = $q{rows} // '';
	return "Content-Type: text/plain\r\n\r\nHello, world\n" unless $rows =~ /^\d+$/;
	my $name = esc($q{name} // 'world');
	my @out = ("Content-Type: text/html; charset=utf-8\r\n\r\n",
		"<!DOCTYPE html>\n<html><head><title>Report for $name</title></head><body>\n<h1>Report for $name</h1>\n<table>\n<tr><th>#</th><th>item</th><th>value</th><th>code</th></tr>\n");
	for my $i (1 .. $rows) {
		push @out, sprintf("<tr><td>%d</td><td>%s item %d</td><td>%d</td><td>%x</td></tr>\n",
			$i, $name, $i, ($i * $i) % 997, ($i * 2654435761) % 4294967296);
	}
	push @out, "</table>\n<p>$rows rows</p>\n</body></html>\n";
	return join('', @out);
}

# Run as the script (a CGI process, or kept compiled by ferry's persist=perl,
# where caller is true), not when bench-fcgi.pl requires it.
print render($ENV{QUERY_STRING}) if $0 eq __FILE__;
1;
