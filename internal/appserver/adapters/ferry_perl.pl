#!/usr/bin/perl
# ferry's Perl adapter: one worker of a pool ferry supervises.
#
# ferry runs this file with perl and hands it a listening unix socket
# (descriptor 0 unless FERRY_LISTEN_FD says another). The worker accepts one
# SCGI connection at a time (protocol.txt: a netstring of NUL-separated
# headers, CONTENT_LENGTH first, then the body) and answers it with a CGI
# response, closing the connection at its end. It serves either
#
#   FERRY_PSGI_FILE   a PSGI application (a .psgi file returning a code
#                     reference), loaded once, called per PSGI 1.1; or
#   FERRY_PERL_CGI=1  Perl CGI scripts kept compiled, as ModPerl::Registry
#                     and CGI::Compile do: the script is SCRIPT_FILENAME,
#                     compiled once into a sub of its own package (again when
#                     it changes on disk) and run with the CGI environment in
#                     %ENV, the body on STDIN (descriptor 0, a file) and
#                     STDOUT (descriptor 1) the connection itself, as a CGI
#                     process runs. exit ends the script, not the worker. Its
#                     package variables are put back as compiled after each
#                     run, so that a script keeping state in globals behaves
#                     as under CGI. A script whose named subs use file-scope
#                     lexicals (Perl warns "Variable ... is not available" or
#                     "will not stay shared"), which kept in a sub would see
#                     them undefined, is compiled on each run instead, as
#                     ModPerl::PerlRun does. A script that does not compile,
#                     and an nph- script, is answered with X-Ferry-Fallback:
#                     cgi before its body is read: ferry runs it as a CGI
#                     process.
#
# Also from the environment, removed before anything runs:
#
#   FERRY_MAX_REQUESTS  exit after this many requests (recycling)
#   FERRY_SCOREBOARD    a directory where the worker says which request it
#                       serves: a 256-byte file named by its pid holding the
#                       request ID (NUL: idle; "!" and the ID: its answer
#                       was cut short), read by ferry.
#   FERRY_LISTEN_FD     the listening socket's descriptor (default 0)
#
# psgi.errors and the scripts' stderr go to ferry's log, each line marked
# with the request's ID. SIGTERM stops the worker once the request in hand
# is answered. Only Perl's core modules are used.
use strict;
use warnings;
use Fcntl qw(SEEK_SET O_RDWR O_CREAT O_TRUNC);
use Symbol ();
use Time::HiRes ();

my %cfg = map { $_ => delete $ENV{$_} }
	qw(FERRY_PSGI_FILE FERRY_PERL_CGI FERRY_MAX_REQUESTS FERRY_SCOREBOARD FERRY_LISTEN_FD);
my $max_requests = $cfg{FERRY_MAX_REQUESTS} || 0;
my $listen_fd = $cfg{FERRY_LISTEN_FD} || 0;
use constant { RECV => 65536, MAX_HEADER => 16 << 20, BOARD_SIZE => 256, MAX_STDERR => 64 << 10 };
use constant LINGER => 5;    # the longest wait, in seconds, for the rest of a body the application left

# The listening socket leaves its descriptor (a copy above 2 is
# close-on-exec), so that programs the application runs do not inherit it.
open(my $listen, '+<&', $listen_fd) or die "ferry perl: listening socket on descriptor $listen_fd: $!\n";
if ($listen_fd == 0) {
	open(STDIN, '<', '/dev/null') or die "ferry perl: /dev/null: $!\n";
}
# print to STDOUT outside a request reaches ferry's log, not /dev/null.
open(my $log, '>&', \*STDERR) or die "ferry perl: stderr: $!\n";
$log->autoflush(1);
STDERR->autoflush(1);

my ($idle, $stopping) = (1, 0);
$SIG{TERM} = sub { $stopping = 1; exit 0 if $idle };
$SIG{PIPE} = 'IGNORE';

my $serve = $cfg{FERRY_PERL_CGI} ? Ferry::CGI::setup() : Ferry::PSGI::setup($cfg{FERRY_PSGI_FILE});

# The board's line appears once the application has loaded: ferry waits
# for it to know the first worker is ready.
my ($board, $board_path);
if (my $dir = $cfg{FERRY_SCOREBOARD}) {
	$board_path = "$dir/$$";
	sysopen($board, $board_path, O_RDWR | O_CREAT | O_TRUNC, 0600) or die "ferry perl: $board_path: $!\n";
	syswrite($board, "\0" x BOARD_SIZE);
}
END { unlink $board_path if defined $board_path && $$ == ($Ferry::pid // 0) }
$Ferry::pid = $$;

sub board {
	return unless $board;
	sysseek($board, 0, SEEK_SET);
	syswrite($board, substr($_[0] . ("\0" x BOARD_SIZE), 0, BOARD_SIZE));
}

sub log_lines {
	my ($rid, $text) = @_;
	return unless length $text;
	$text .= "\n" unless $text =~ /\n\z/;
	$rid = '-' unless defined $rid && length $rid;
	$text =~ s/^/req_id=$rid /mg;
	print $log $text;
}

# read_header reads the SCGI netstring; it returns the headers as a hash
# and the bytes read past it, or nothing for a closed or malformed one.
sub read_header {
	my ($conn) = @_;
	my $data = '';
	my $colon;
	while (1) {
		my $n = sysread($conn, $data, RECV, length $data);
		return unless $n;
		$colon = index($data, ':');
		last if $colon >= 0;
		return if length $data > 10;
	}
	my $size = substr($data, 0, $colon);
	return unless $size =~ /\A[0-9]+\z/ && $size <= MAX_HEADER;
	my $end = $colon + 1 + $size;
	while (length $data <= $end) {
		my $n = sysread($conn, $data, RECV, length $data);
		return unless $n;
	}
	return unless substr($data, $end, 1) eq ',';
	my $block = substr($data, $colon + 1, $size);
	chop $block if substr($block, -1) eq "\0";    # the last header's end
	my %env = split /\0/, $block, -1;
	return (\%env, substr($data, $end + 1));
}

# linger ends the answer (shutdown), then reads and drops the $left bytes
# of the request body the application did not read, until ferry closes,
# for at most LINGER seconds: a unix socket closed with unread data resets
# its peer, and ferry, its read of the answer's end failing, would cut an
# answer that went out whole. A PSGI answer ends with the shutdown even
# when a process the application forked during the request holds a copy
# of the connection: a close alone would leave ferry waiting for that
# process to exit, the client's connection held, up to the read timeout.
# A CGI script's answer ends as under CGI, when every copy of its standard
# output is closed: what it left running in the background may still
# write to it.
sub linger {
	my ($conn, $left) = @_;
	shutdown($conn, 1) if $left > 0 || !$cfg{FERRY_PERL_CGI};
	return unless $left > 0;
	my $deadline = Time::HiRes::time() + LINGER;
	my $rin = '';
	vec($rin, fileno($conn), 1) = 1;
	while ($left > 0) {
		my $wait = $deadline - Time::HiRes::time();
		last if $wait <= 0;
		my $ready = select(my $rout = $rin, undef, undef, $wait);
		next if $ready < 0;    # a signal
		last unless $ready;
		my $n = sysread($conn, my $buf, $left < RECV ? $left : RECV);
		last unless $n;        # ferry closed, or an error: nothing more to do
		$left -= $n;
	}
}

sub send_all {
	my ($conn, $data) = @_;
	my $off = 0;
	while ($off < length $data) {
		my $n = syswrite($conn, $data, length($data) - $off, $off);
		die "ferry perl: client gone: $!\n" unless defined $n;
		$off += $n;
	}
}

my $served = 0;
while (!$stopping) {
	$idle = 1;
	my $conn = Symbol::gensym();
	next unless accept($conn, $listen);
	$idle = 0;
	my ($env, $rest) = read_header($conn);
	if ($env) {
		my $rid = $env->{HTTP_X_FERRY_REQUEST_ID} // $env->{HTTP_X_REQUEST_ID} // '';
		board($rid);
		my $unread = ($env->{CONTENT_LENGTH} || 0) - length $rest;    # if no Ferry::Input reads it
		$Ferry::input = undef;
		my $whole = eval { $serve->($conn, $env, $rest, $rid) };
		if (!defined $whole) {
			log_lines($rid, "ferry perl: $@") if $@ && $@ !~ /^ferry perl: client gone/;
			$whole = 0;
		}
		# Before the close: once ferry sees the end of the connection, the
		# board must say whether the answer went out whole.
		board($whole ? '' : "!$rid");
		linger($conn, $Ferry::input ? $Ferry::input->{left} : $unread);
		close $conn;
	} else {
		close $conn;
	}
	$served++;
	last if $max_requests && $served >= $max_requests;
	last if $Ferry::harakiri;
}
exit 0;

package Ferry::Input;
# psgi.input: exactly CONTENT_LENGTH bytes of the connection.

sub new {
	my ($class, $conn, $buf, $len) = @_;
	$buf = substr($buf, 0, $len) if length $buf > $len;
	# The request's input: the main loop drops what is left of it.
	return $Ferry::input = bless { conn => $conn, buf => $buf, left => $len - length $buf }, $class;
}

sub read {
	my $self = shift;
	my $len = $_[1];
	my $off = $_[2] // 0;
	while (length $self->{buf} < $len && $self->{left} > 0) {
		my $want = $self->{left} < 65536 ? $self->{left} : 65536;
		my $n = sysread($self->{conn}, $self->{buf}, $want, length $self->{buf});
		die "ferry perl: connection closed inside the request body\n" unless $n;
		$self->{left} -= $n;
	}
	my $chunk = substr($self->{buf}, 0, $len, '');
	$_[0] = '' unless defined $_[0];
	# As Perl's read: a negative offset counts from the end, one past the
	# end pads with NULs.
	$off += length $_[0] if $off < 0;
	die "ferry perl: psgi.input read: offset outside the buffer\n" if $off < 0;
	$_[0] .= "\0" x ($off - length $_[0]) if $off > length $_[0];
	substr($_[0], $off) = $chunk;
	return length $chunk;
}

sub seek { return 0 }
sub close { return 1 }

package Ferry::Errors;
# psgi.errors: lines to ferry's log, marked with the request's ID.

sub new { my ($class, $rid) = @_; return bless { rid => $rid, part => '' }, $class }

sub print {
	my $self = shift;
	my $text = $self->{part} . join('', @_);
	my $i = rindex($text, "\n");
	if ($i < 0) {
		$self->{part} = $text;
		return 1;
	}
	$self->{part} = substr($text, $i + 1);
	main::log_lines($self->{rid}, substr($text, 0, $i + 1));
	return 1;
}

sub printf { my $self = shift; my $fmt = shift; return $self->print(sprintf($fmt, @_)) }
sub flush { my $self = shift; main::log_lines($self->{rid}, delete $self->{part}); $self->{part} = ''; return 1 }

package Ferry::Writer;
# The writer a streaming PSGI response gets.

sub new { my ($class, $conn) = @_; return bless { conn => $conn }, $class }

sub write {
	my ($self, $data) = @_;
	main::send_all($self->{conn}, $data) if defined $data && length $data;
	return 1;
}

sub close { $_[0]{closed} = 1; return 1 }
sub poll_cb { my ($self, $cb) = @_; $cb->($self) until $self->{closed} }

package Ferry::PSGI;

sub setup {
	my ($file) = @_;
	die "ferry perl: no FERRY_PSGI_FILE\n" unless $file;
	my $app = Ferry::PSGI::Sandbox::load($file);
	die "ferry perl: $file does not return a code reference (a PSGI application)\n" unless ref $app eq 'CODE';
	return sub { serve($app, @_) };
}

sub head {
	my ($status, $headers, $length) = @_;
	die "ferry perl: bad status $status\n" unless $status =~ /\A[2-5][0-9][0-9]\z/;
	my $out = "Status: $status\r\n";
	my $has_length = 0;
	for (my $i = 0; $i < @$headers; $i += 2) {
		my ($k, $v) = ($headers->[$i], $headers->[$i + 1]);
		die "ferry perl: bad header name\n" unless defined $k && $k =~ /\A[!#\$%&'*+\-.^_`|~0-9A-Za-z]+\z/;
		$v = '' unless defined $v;
		die "ferry perl: header $k holds CR, LF or NUL\n" if $v =~ /[\r\n\0]/;
		$has_length = 1 if lc $k eq 'content-length';
		$out .= "$k: $v\r\n";
	}
	$out .= "Content-Length: $length\r\n" if defined $length && !$has_length;
	return $out . "\r\n";
}

sub serve {
	my ($app, $conn, $req, $rest, $rid) = @_;
	my $len = $req->{CONTENT_LENGTH} || 0;
	my $errors = Ferry::Errors->new($rid);
	my $scheme = $req->{REQUEST_SCHEME} // ((($req->{HTTPS} // 'off') =~ /^(?:on|1)$/i) ? 'https' : 'http');
	my %env = (%$req,
		SCRIPT_NAME => $req->{SCRIPT_NAME} // '',
		PATH_INFO => $req->{PATH_INFO} // '',
		'psgi.version' => [1, 1],
		'psgi.url_scheme' => $scheme,
		'psgi.input' => Ferry::Input->new($conn, $rest, $len),
		'psgi.errors' => $errors,
		'psgi.multithread' => 0,
		'psgi.multiprocess' => 1,
		'psgi.run_once' => 0,
		'psgi.nonblocking' => 0,
		'psgi.streaming' => 1,
		'psgix.harakiri' => 1,
	);
	my $sent = 0;
	my $res = eval { $app->(\%env) };
	my $failed = $@;
	my $whole = eval {
		die $failed if $failed;
		my $respond = sub {
			my ($r) = @_;
			die "ferry perl: the application's response is not an array reference\n" unless ref $r eq 'ARRAY';
			my ($status, $headers, $body) = @$r;
			$headers ||= [];
			if (!defined $body) {
				main::send_all($conn, head($status, $headers));
				$sent = 1;
				return Ferry::Writer->new($conn);
			}
			if (ref $body eq 'ARRAY') {
				my $data = join '', @$body;
				main::send_all($conn, head($status, $headers, length $data) . $data);
				$sent = 1;
				return;
			}
			main::send_all($conn, head($status, $headers));
			$sent = 1;
			local $/ = \65536;
			while (defined(my $chunk = $body->getline)) {
				main::send_all($conn, $chunk) if length $chunk;
			}
			$body->close;
			return;
		};
		if (ref $res eq 'CODE') {
			$res->($respond);
		} else {
			$respond->($res);
		}
		1;
	};
	$errors->flush;
	$Ferry::harakiri = 1 if $env{'psgix.harakiri.commit'};
	return 1 if $whole;
	my $err = $@;
	die $err if $err =~ /^ferry perl: client gone/;
	main::log_lines($rid, "ferry perl: the application failed: $err");
	return 0 if $sent;
	main::send_all($conn, "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n\r\n500 Internal Server Error\n");
	return 1;
}

package Ferry::CGI;
# Perl CGI scripts run in the worker (see the top of the file).

my (%scripts, %base_env, $body_fh, $err_fh, $null_out);
our $running = 0;    # a script runs (or compiles): exit ends only it

sub setup {
	require POSIX;
	binmode STDOUT;
	%base_env = %ENV;
	open($body_fh, '+>', undef) or die "ferry perl: a temporary file for request bodies: $!\n";
	open($err_fh, '+>', undef) or die "ferry perl: a temporary file for stderr: $!\n";
	open($null_out, '>&', \*STDOUT) or die "ferry perl: stdout: $!\n";
	# The scripts' stderr, compiling included, goes to a file, logged
	# after each request marked with its ID.
	open(STDERR, '>&', $err_fh) or die "ferry perl: stderr: $!\n";
	# exit in a script ends the script, not the worker. It applies to the
	# code compiled from now on: the scripts.
	no warnings qw(redefine once);
	*CORE::GLOBAL::exit = sub (;$) {
		die Ferry::CGI::Exit->new(@_ ? $_[0] : 0) if $running;
		CORE::exit(@_ ? $_[0] : 0);
	};
	return \&serve;
}

sub fallback {
	my ($conn, $why) = @_;
	my $body = "ferry: this script runs as a CGI process: $why\n";
	main::send_all($conn, "Status: 503 Service Unavailable\r\nX-Ferry-Fallback: cgi\r\nContent-Type: text/plain\r\n"
		. "Content-Length: " . length($body) . "\r\n\r\n" . $body);
	return 1;
}

# package_of names the package a script is compiled into, from its path.
sub package_of {
	my ($path) = @_;
	(my $name = $path) =~ s/([^A-Za-z0-9])/sprintf('_%02x', ord $1)/eg;
	return "Ferry::CGI::Script::_$name";
}

# stderr_so_far returns what was written to stderr since the request began.
sub stderr_so_far {
	STDERR->flush;
	my $size = -s $err_fh or return '';
	my $text = '';
	sysseek($err_fh, 0, 0);
	sysread($err_fh, $text, $size);
	sysseek($err_fh, 0, 2);
	return $text;
}

# script returns how to run the script at path: kept compiled (sub), or
# compiled on each run (code), or not in the worker (why). It compiles a
# new or changed script, its warnings going to the request's stderr.
sub script {
	my ($path) = @_;
	my @st = Time::HiRes::stat($path) or return (undef, "cannot stat $path: $!");
	my $key = join ':', @st[0, 1, 7, 9, 10];    # device, inode, size, mtime, ctime
	my $s = $scripts{$path};
	return ($s, $s->{why}) if $s && $s->{key} eq $key;
	Symbol::delete_package($s->{package}) if $s && $s->{package};
	my $package = package_of($path);
	$s = $scripts{$path} = { key => $key, package => $package };
	open(my $fh, '<', $path) or return ($s, $s->{why} = "cannot read it: $!");
	my $src = do { local $/; <$fh> };
	close $fh;
	$s->{w} = $src =~ /\A#!.*\s-w\b/ ? 1 : 0;
	$src =~ s/^__END__\r?\n.*//ms;
	$s->{data} = $src =~ s/^__DATA__\r?\n(.*)//ms ? $1 : '';
	(my $file = $path) =~ s/"/\\"/g;
	my $before = length stderr_so_far();
	my $sub = do {
		local $running = 1;
		local $^W = 1;    # closure warnings for scripts without "use warnings"
		Ferry::CGI::Fresh::run("package $package; sub {\n#line 1 \"$file\"\n$src\n;}");
	};
	my $err = $@;
	my $warnings = substr(stderr_so_far(), $before);
	if (ref $sub ne 'CODE') {
		$err = 'exit during compilation' if ref $err eq 'Ferry::CGI::Exit';
		$err =~ s/\s+\z//;
		$s->{why} = "it does not compile: $err";
		Symbol::delete_package($package);
		print STDERR "ferry perl: $path runs as a CGI process: $s->{why}\n";
		return ($s, $s->{why});
	}
	my @shared = $warnings =~ /(Variable "[^"]+" (?:is not available|will not stay shared))/g;
	if (!@shared) {
		$s->{sub} = $sub;
		$s->{snapshot} = snapshot($package);
		return ($s);
	}
	# A named sub uses a file-scope lexical: kept compiled (inside a sub),
	# it would see that variable undefined. Compiled on each run at the
	# top level of an eval instead, as ModPerl::PerlRun does, it sees the
	# run's own.
	Symbol::delete_package($package);
	my %seen;
	my $vars = join ', ', grep { !$seen{$_}++ } map { /"([^"]+)"/ } @shared;
	print STDERR "ferry perl: $path is compiled on each run: a named sub uses the file-scope lexical $vars\n";
	$s->{code} = "package $package;\n#line 1 \"$file\"\n$src\n;1;\n";
	return ($s);
}

# run runs a script as a CGI process would: its directory the working
# directory, $0 its path, no arguments, DATA its __DATA__ section, its
# signal handlers put back after. It returns the exit status; it dies as
# the script died.
sub run {
	my ($s, $path) = @_;
	(my $dir = $path) =~ s{/[^/]*\z}{};
	chdir $dir or die "ferry perl: chdir $dir: $!\n";
	$0 = $path if $0 ne $path;
	CGI::initialize_globals() if defined &CGI::initialize_globals;    # CGI.pm's state of the last request
	my %sig = %SIG;
	my $umask = umask;
	my ($ok, $err);
	{
		no strict 'refs';
		local $running = 1;
		local @ARGV = ();
		local $^W = $s->{w};
		local ($/, $\, $,, $") = ("\n", undef, undef, ' ');
		local $| = 0;
		if ($s->{sub}) {
			open(*{"$s->{package}::DATA"}, '<', \$s->{data});
			$ok = eval { $s->{sub}->(); 1 };
		} else {
			Symbol::delete_package($s->{package});
			open(*{"$s->{package}::DATA"}, '<', \$s->{data});
			$ok = Ferry::CGI::Fresh::run($s->{code});
		}
		$err = $@;
	}
	alarm 0;
	umask $umask;
	for my $name (keys %sig) {
		no warnings 'uninitialized';
		$SIG{$name} = $sig{$name} if $SIG{$name} ne $sig{$name};
	}
	return 0 if $ok;
	return $err->{code} if ref $err eq 'Ferry::CGI::Exit';
	die $err;
}

# snapshot records the package's variables as compiled: each glob's
# containers and their values.
sub snapshot {
	my ($package) = @_;
	no strict 'refs';
	my $stash = \%{"${package}::"};
	my %snap;
	for my $name (keys %$stash) {
		next if $name =~ /::\z/;
		my $glob = \$stash->{$name};
		next unless ref $glob eq 'GLOB';
		my %g = (sref => *{$glob}{SCALAR});
		$g{sval} = ${ $g{sref} };
		if (my $a = *{$glob}{ARRAY}) { $g{aref} = $a; $g{aval} = [@$a] }
		if (my $h = *{$glob}{HASH}) { $g{href} = $h; $g{hval} = {%$h} }
		$g{io} = *{$glob}{IO};
		$snap{$name} = \%g;
	}
	return \%snap;
}

# restore puts the package's variables back as the snapshot has them, and
# clears those made since; file handles opened since are closed.
sub restore {
	my ($package, $snap) = @_;
	no strict 'refs';
	no warnings;
	my $stash = \%{"${package}::"};
	for my $name (keys %$stash) {
		next if $name =~ /::\z/;
		my $glob = \$stash->{$name};
		next unless ref $glob eq 'GLOB';
		my $g = $snap->{$name};
		if (!$g) {
			my $io = *{$glob}{IO};
			close $io if $io && defined fileno $io;
			delete $stash->{$name};
			next;
		}
		*{$glob} = $g->{sref} if *{$glob}{SCALAR} != $g->{sref};
		${ $g->{sref} } = $g->{sval};
		if ($g->{aref}) {
			*{$glob} = $g->{aref} if (*{$glob}{ARRAY} // 0) != $g->{aref};
			@{ $g->{aref} } = @{ $g->{aval} };
		} elsif (my $a = *{$glob}{ARRAY}) {
			@$a = ();
		}
		if ($g->{href}) {
			*{$glob} = $g->{href} if (*{$glob}{HASH} // 0) != $g->{href};
			%{ $g->{href} } = %{ $g->{hval} };
		} elsif (my $h = *{$glob}{HASH}) {
			%$h = ();
		}
		my $io = *{$glob}{IO};
		close $io if $io && !$g->{io} && defined fileno $io;
	}
}

sub serve {
	my ($conn, $req, $rest, $rid) = @_;
	truncate($err_fh, 0);
	sysseek($err_fh, 0, 0);
	seek(STDERR, 0, 0);
	my $path = $req->{SCRIPT_FILENAME};
	return fallback($conn, "no SCRIPT_FILENAME") unless defined $path && length $path;
	my $base = $path =~ s{.*/}{}r;
	return fallback($conn, "an NPH script") if $base =~ /\Anph-/;
	my ($s, $why) = eval { script($path) };
	$why = "ferry perl: compiling $path: $@" if !$s && $@;
	if ($why) {
		flush_stderr($rid);
		return fallback($conn, $why);
	}

	# The body goes to a file first: the script, and any program it runs,
	# read it from descriptor 0 to its end, as under CGI.
	my $len = $req->{CONTENT_LENGTH} || 0;
	if ($len > 0) {
		truncate($body_fh, 0);
		seek($body_fh, 0, 0);
		my $input = Ferry::Input->new($conn, $rest, $len);
		my $buf;
		while ((my $n = $input->read($buf, 65536)) > 0) {
			print $body_fh $buf or die "ferry perl: spooling the request body: $!\n";
		}
		$body_fh->flush;
		sysseek($body_fh, 0, 0);
		open(STDIN, '<&', $body_fh) or die "ferry perl: stdin: $!\n";
	}
	{
		# The request's variables over the worker's environment (what
		# ferry passes on to scripts), put back after.
		delete @$req{qw(SCGI HTTP_X_FERRY_REQUEST_ID)};
		delete $req->{CONTENT_LENGTH} if delete $req->{HTTP_X_FERRY_NO_CONTENT_LENGTH};
		local @ENV{keys %$req} = values %$req;
		# Descriptor 1 becomes the connection under the STDOUT handle
		# (one dup2, not a reopen), and /dev/null again after.
		STDOUT->flush;
		POSIX::dup2(fileno($conn), 1) or die "ferry perl: stdout: $!\n";
		my $exit = eval { run($s, $path) };
		my $err = $@;
		if (defined fileno(STDOUT)) {
			STDOUT->flush;
			binmode STDOUT;    # layers the script pushed go
			POSIX::dup2(fileno($null_out), 1);
		} else {
			open(STDOUT, '>&', $null_out);    # the script closed it
		}
		restore($s->{package}, $s->{snapshot}) if $s->{sub};
		# What the script did to %ENV beyond its request's variables,
		# undone (those are put back on leaving this block).
		for my $k (keys %ENV) {
			next if exists $req->{$k};
			if (!exists $base_env{$k}) {
				delete $ENV{$k};
			} elsif ($ENV{$k} ne $base_env{$k}) {
				$ENV{$k} = $base_env{$k};
			}
		}
		exists $ENV{$_} or $ENV{$_} = $base_env{$_} for keys %base_env;
		# As under CGI: what the script wrote stands; how it ended is
		# logged.
		if (!defined $exit) {
			$err =~ s/\s+\z//;
			print STDERR "ferry perl: $path died: $err\n";
		} elsif ($exit) {
			print STDERR "ferry perl: $path exited with status $exit\n";
		}
	}
	open(STDIN, '<', '/dev/null') if $len > 0;
	flush_stderr($rid);
	return 1;
}

# flush_stderr logs what the request's stderr holds, marked with the
# request's ID.
sub flush_stderr {
	my ($rid) = @_;
	STDERR->flush;
	my $size = -s $err_fh or return;
	my $text = '';
	sysseek($err_fh, 0, 0);
	sysread($err_fh, $text, $size > main::MAX_STDERR() ? main::MAX_STDERR() : $size);
	$text .= "\n[stderr cut at " . main::MAX_STDERR() . " bytes]" if $size > main::MAX_STDERR();
	main::log_lines($rid, $text);
}

package Ferry::CGI::Exit;
# What exit in a script dies with.

sub new { my ($class, $code) = @_; return bless { code => $code // 0 }, $class }

package Ferry::CGI::Fresh;

# run compiles and runs code at the top level of an eval, in a scope with
# no lexicals of its own for the code to see.
sub run { return eval $_[0] }

package Ferry::PSGI::Sandbox;

sub load {
	my ($file) = @_;
	my $app = do $file;
	die "ferry perl: loading $file: $@" if $@;
	die "ferry perl: reading $file: $!\n" if !defined $app && $!;
	return $app;
}
