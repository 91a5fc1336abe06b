#!/usr/bin/perl
# A line client for the agent socket (docs/agent.md): connects, says
# agent.hello (unless --no-hello), sends each REQUEST argument as one line,
# and prints every line the agent sends back until every request has its
# answer, then (with --until REGEX) goes on printing notifications until
# one matches REGEX.  The hello answer is printed only with --show-hello.
#
#   rpc.pl --socket PATH [--timeout S] [--no-hello] [--protocol N]
#          [--expect N] [--until REGEX] [--show-hello]
#          [--file PATH] REQUEST...
#
# Every request is sent byte for byte, with a newline added when it does
# not end in one (so a request may hold invalid UTF-8, NUL bytes or
# newlines of its own).  --file PATH sends the bytes of a file as one more
# request (for lines too long for an argument).  --expect says how many
# answers to wait for (default: one per request).  Exit status: 0 when
# everything awaited came, 3 on timeout, 4 when the agent closed the
# connection first, 2 on usage or connection errors.  Only core Perl modules are used.
use strict;
use warnings;
use IO::Socket::UNIX;
use IO::Select;
use Time::HiRes qw(time);

my ($socket, $timeout, $hello, $protocol, $expect, $until, $show_hello) =
    (undef, 30, 1, 1, undef, undef, 0);
my @requests;
while (@ARGV) {
    my $a = shift @ARGV;
    if    ($a eq '--socket')     { $socket = shift @ARGV }
    elsif ($a eq '--timeout')    { $timeout = shift @ARGV }
    elsif ($a eq '--no-hello')   { $hello = 0 }
    elsif ($a eq '--protocol')   { $protocol = shift @ARGV }
    elsif ($a eq '--expect')     { $expect = shift @ARGV }
    elsif ($a eq '--until')      { $until = shift @ARGV }
    elsif ($a eq '--show-hello') { $show_hello = 1 }
    elsif ($a eq '--file') {
        my $path = shift @ARGV;
        open my $f, '<:raw', $path or die "rpc.pl: $path: $!\n";
        local $/;
        push @requests, scalar <$f>;
        close $f;
    }
    else                         { push @requests, $a }
}
defined $socket or die "rpc.pl: --socket is required\n";
$expect //= scalar @requests;

my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $socket);
unless ($s) {
    print STDERR "rpc.pl: cannot connect to $socket: $!\n";
    exit 2;
}
binmode $s;
$s->autoflush(1);
binmode STDOUT;
$| = 1;
# A write to a connection the agent closed is seen as the close itself.
$SIG{PIPE} = 'IGNORE';

my $deadline = time() + $timeout;
my $pending = '';
my $sel = IO::Select->new($s);

# The next line from the agent, or undef with $! set to the reason
# ('timeout' or 'closed').
sub next_line {
    while (1) {
        if ($pending =~ s/^([^\n]*)\n//) {
            return $1;
        }
        my $left = $deadline - time();
        if ($left <= 0) { $! = 0; return 'TIMEOUT' }
        next unless $sel->can_read($left);
        my $n = sysread($s, my $chunk, 65536);
        return 'CLOSED' if !defined $n || $n == 0;
        $pending .= $chunk;
    }
}

sub is_answer {
    my ($line) = @_;
    return $line !~ /"method"\s*:\s*"event"/;
}

if ($hello) {
    print $s qq({"jsonrpc":"2.0","id":"hello","method":"agent.hello","params":{"protocol":$protocol,"client":"rpc.pl/1"}}\n);
    while (1) {
        my $l = next_line();
        if ($l eq 'TIMEOUT') { print STDERR "rpc.pl: no answer to agent.hello\n"; exit 3 }
        if ($l eq 'CLOSED')  { print STDERR "rpc.pl: closed before agent.hello was answered\n"; exit 4 }
        print "$l\n" if $show_hello;
        last if is_answer($l);
    }
}

for my $r (@requests) {
    $r .= "\n" unless $r =~ /\n\z/;
    my $off = 0;
    while ($off < length $r) {
        my $n = syswrite($s, $r, length($r) - $off, $off);
        last unless defined $n && $n > 0;
        $off += $n;
    }
}

my $answers = 0;
while ($answers < $expect) {
    my $l = next_line();
    exit 3 if $l eq 'TIMEOUT';
    exit 4 if $l eq 'CLOSED';
    print "$l\n";
    $answers++ if is_answer($l);
    if (defined $until && $l =~ /$until/ && $answers >= $expect) { exit 0 }
}
if (defined $until) {
    while (1) {
        my $l = next_line();
        exit 3 if $l eq 'TIMEOUT';
        exit 4 if $l eq 'CLOSED';
        print "$l\n";
        exit 0 if $l =~ /$until/;
    }
}
exit 0;
