# A PSGI application that shows what ferry's adapter gives it, one
# behaviour per path, for appserver's tests.
use strict;
use warnings;

my $state = $ENV{TEST_STATE} // '';

sub text { return [200, ['Content-Type' => 'text/plain'], [join '', @_]] }

my $app = sub {
	my $env = shift;
	my $p = $env->{PATH_INFO};
	if ($p eq '/env') {
		my @keys = grep { !ref $env->{$_} } sort keys %$env;
		my $out = join '', map { "$_=$env->{$_}\n" } @keys;
		$out .= "version=@{$env->{'psgi.version'}}\ninput=" . ref($env->{'psgi.input'}) . "\npid=$$\n";
		return text($out);
	}
	if ($p eq '/echo') {
		my ($body, $buf) = ('', '');
		while ($env->{'psgi.input'}->read($buf, 8192)) { $body .= $buf }
		my $more = $env->{'psgi.input'}->read($buf, 10);
		return text(length($body) . " $more " . $body);
	}
	if ($p eq '/read-offset') {
		my $buf = 'ab';
		my $n = $env->{'psgi.input'}->read($buf, 3, 4);     # past the end: padded with NULs
		my $m = $env->{'psgi.input'}->read($buf, 2, -1);    # from the end
		return text(join ',', $n, $m, map { ord } split //, $buf);
	}
	if ($p eq '/errors') {
		$env->{'psgi.errors'}->print("psgi error line\n");
		return text("logged");
	}
	if ($p eq '/stream') {
		return sub {
			my $respond = shift;
			my $w = $respond->([200, ['Content-Type' => 'text/plain']]);
			$w->write("first\n");
			my $deadline = time + 10;
			select(undef, undef, undef, 0.01) until -e "$state/go" || time > $deadline;
			$w->write("second\n");
			$w->close;
		};
	}
	if ($p eq '/ignore-body') {
		return sub {
			my $w = shift->([200, ['Content-Type' => 'text/plain']]);
			$w->write("first ");
			$w->write("second");
			$w->close;
		};
	}
	if ($p eq '/delayed') {
		return sub { my $respond = shift; $respond->(text("delayed")) };
	}
	if ($p eq '/file') {
		open my $fh, '<', $env->{QUERY_STRING} or die "$!";
		return [200, ['Content-Type' => 'application/octet-stream'], $fh];
	}
	if ($p eq '/die') {
		die "psgi died here\n";
	}
	if ($p eq '/status') {
		return [404, ['Content-Type' => 'text/plain', 'Set-Cookie' => 'a=1', 'Set-Cookie' => 'b=2'], ['nope']];
	}
	if ($p eq '/sleep') {
		open my $fh, '>', "$state/sleeping" or die "$!";
		print $fh $$;
		close $fh;
		sleep 300;
		return text("woke");
	}
	if ($p eq '/harakiri') {
		$env->{'psgix.harakiri.commit'} = 1;
		return text($$);
	}
	if ($p eq '/fork') {
		my $child = fork // die "fork: $!";
		if (!$child) {
			sleep 30;
			require POSIX;
			POSIX::_exit(0);
		}
		open my $fh, '>', "$state/forked" or die "$!";
		print $fh $child;
		close $fh;
		return text("forked");
	}
	return text($$) if $p eq '/pid';
	return [404, ['Content-Type' => 'text/plain'], ["not found: $p"]];
};
$app;
