#!/usr/bin/perl
# maildkim.pl — a test tool (not installed): Mail::DKIM (libmail-dkim-perl),
# an independent DKIM implementation, as verifier and signer for
# tests/e2e/test_dkim_maildkim.py (TESTING.md D1, D2, D4, D7, D8).
#
#   maildkim.pl verify --dns HOST:PORT [FILE...] < message
#       verify every DKIM-Signature of the message (or of each FILE, each
#       FILE's lines then preceded by "message FILE") with
#       Mail::DKIM::Verifier;
#       key records are looked up with Net::DNS at HOST:PORT only (a loopback
#       test server; no system resolver, 2 s timeout, one retry).  Prints one
#       line per signature, top first, then the overall verdict:
#           sig d=DOMAIN s=SELECTOR a=ALGORITHM RESULT DETAIL
#           result RESULT DETAIL
#       RESULT is Mail::DKIM's: pass, fail, invalid, temperror or none.
#       DETAIL is its result_detail ("-" when empty), e.g.
#       "fail (body has been altered)", "invalid (unsupported algorithm
#       ed25519-sha256)"; DNS errors are "invalid (public key: DNS error: ...)".
#
#   maildkim.pl sign --key PEM --domain D --selector S
#                    [--method relaxed|simple|relaxed/simple|...]
#                    [--algorithm rsa-sha256] [--headers a:b:c]
#                    [--time UNIXTIME] < message
#       sign with Mail::DKIM::Signer and print the DKIM-Signature field
#       followed by the message.  PEM is an RSA private key, PKCS#1 or
#       PKCS#8 (read with Crypt::OpenSSL::RSA).  --headers replaces
#       Mail::DKIM's default list of header names to sign: every present
#       instance of each name is signed, and a name written "from+" is
#       over-signed (listed once more than present).  Without --headers
#       Mail::DKIM signs its default names, each instance once (no
#       over-signing).
#
# Both modes read at most 64 MiB and turn a bare LF into CRLF, the wire
# form Mail::DKIM expects (its "common verification problems" #1); a
# message already in CRLF form is passed through byte for byte.
# Exit 0 when a verdict or signature was printed, 1 on a refused input or
# a Mail::DKIM error, 2 on a usage error.
use strict;
use warnings;

use Crypt::OpenSSL::RSA;
use Getopt::Long qw(GetOptionsFromArray);
use Mail::DKIM::DNS;
use Mail::DKIM::PrivateKey;
use Mail::DKIM::Signer;
use Mail::DKIM::Verifier;
use Net::DNS::Resolver;

use constant IN_MAX => 64 * 1024 * 1024;

# Mail::DKIM::Signer's default list of names to sign (Signer.pm).
my @DEFAULT_NAMES = qw(from sender reply-to subject date message-id to cc
    mime-version content-type content-transfer-encoding content-id
    content-description resent-date resent-from resent-sender resent-to
    resent-cc resent-message-id in-reply-to references list-id list-help
    list-unsubscribe list-subscribe list-post list-owner list-archive);

sub usage {
	print STDERR "usage: maildkim.pl verify --dns HOST:PORT [FILE...] ",
	    "< message\n",
	    "       maildkim.pl sign --key PEM --domain D --selector S ",
	    "[--method M] [--algorithm A] [--headers a:b] [--time T] ",
	    "< message\n";
	exit 2;
}

sub read_message {
	my ($fh) = @_;
	$fh //= \*STDIN;
	binmode $fh;
	my ($msg, $n) = ('', 0);
	while (($n = read($fh, my $chunk, 65536)) > 0) {
		$msg .= $chunk;
		if (length($msg) > IN_MAX) {
			print STDERR "maildkim.pl: message over 64 MiB\n";
			exit 1;
		}
	}
	defined $n or die "maildkim.pl: read: $!\n";
	$msg =~ s/(?<!\r)\n/\r\n/g;
	return $msg;
}

sub flat {
	my ($s) = @_;
	return '-' if !defined $s || $s eq '';
	$s =~ s/[\r\n\t]+/ /g;
	return $s;
}

sub verify_one {
	my ($msg) = @_;
	my $v = Mail::DKIM::Verifier->new();
	my $ok = eval {
		$v->PRINT($msg);
		$v->CLOSE;
		1;
	};
	if (!$ok) {
		print STDERR "maildkim.pl: Mail::DKIM: $@";
		exit 1;
	}
	foreach my $s ($v->signatures) {
		printf "sig d=%s s=%s a=%s %s %s\n", flat($s->domain),
		    flat($s->selector), flat($s->algorithm),
		    flat($s->result), flat($s->result_detail);
	}
	printf "result %s %s\n", flat($v->result), flat($v->result_detail);
}

sub cmd_verify {
	my @args = @_;
	my $dns;
	GetOptionsFromArray(\@args, 'dns=s' => \$dns) or usage();
	usage() if !defined $dns;
	my ($host, $port) = $dns =~ /^\[?([0-9A-Fa-f.:]+?)\]?:(\d+)$/
	    or usage();
	my $res = Net::DNS::Resolver->new(
		nameservers => [$host], port => $port, recurse => 1,
		udp_timeout => 2, tcp_timeout => 2, retry => 1,
		searchlist => [], defnames => 0, dnsrch => 0);
	Mail::DKIM::DNS::resolver($res);

	if (!@args) {
		verify_one(read_message());
		return 0;
	}
	foreach my $file (@args) {
		open my $fh, '<', $file or die "maildkim.pl: $file: $!\n";
		print "message $file\n";
		verify_one(read_message($fh));
		close $fh;
	}
	return 0;
}

# --headers "from+:to:subject" as Mail::DKIM's extended_headers: each
# name listed signs every present instance ('*'), a name ending in '+'
# one more than present ('+', over-signing); the names Mail::DKIM signs by
# default and not listed get 0 (not signed).
sub header_counts {
	my ($list) = @_;
	my %want = map { lc($_) => 0 } @DEFAULT_NAMES;
	foreach my $h (split /:/, $list) {
		if ($h =~ /^([!-9;-~]+?)(\+?)$/) {
			$want{lc $1} = $2 eq '+' ? '+' : '*';
		} else {
			usage();
		}
	}
	return \%want;
}

sub cmd_sign {
	my @args = @_;
	my ($keyfile, $domain, $selector, $headers, $time);
	my $method = 'relaxed';
	my $alg = 'rsa-sha256';
	GetOptionsFromArray(\@args, 'key=s' => \$keyfile,
	    'domain=s' => \$domain, 'selector=s' => \$selector,
	    'method=s' => \$method, 'algorithm=s' => \$alg,
	    'headers=s' => \$headers, 'time=i' => \$time) or usage();
	usage() if @args || !defined $keyfile || !defined $domain ||
	    !defined $selector;

	open my $fh, '<', $keyfile or die "maildkim.pl: $keyfile: $!\n";
	my $pem = do { local $/; <$fh> };
	close $fh;
	my $rsa = eval { Crypt::OpenSSL::RSA->new_private_key($pem) };
	if (!$rsa) {
		print STDERR "maildkim.pl: $keyfile: not an RSA private key\n";
		exit 1;
	}
	my $key = Mail::DKIM::PrivateKey->load(Cork => $rsa);

	my $msg = read_message();
	my $sig;
	my $ok = eval {
		my $s = Mail::DKIM::Signer->new(
			Algorithm => $alg, Method => $method,
			Domain => $domain, Selector => $selector, Key => $key,
			(defined $time ? (Timestamp => $time) : ()));
		$s->extended_headers(header_counts($headers))
		    if defined $headers;
		$s->PRINT($msg);
		$s->CLOSE;
		$sig = $s->signature or die "no signature made\n";
		1;
	};
	if (!$ok) {
		print STDERR "maildkim.pl: Mail::DKIM: $@";
		exit 1;
	}
	binmode STDOUT;
	print $sig->as_string, "\r\n", $msg;
	return 0;
}

usage() if !@ARGV;
my $cmd = shift @ARGV;
exit cmd_verify(@ARGV) if $cmd eq 'verify';
exit cmd_sign(@ARGV) if $cmd eq 'sign';
usage();
