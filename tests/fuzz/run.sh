#!/usr/bin/env bash
# tests/fuzz/run.sh — replay each libFuzzer target's committed corpus, then
# fuzz it for a while.
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS
#
# BUILD_DIR was configured with -Dfuzz=true and clang (tests/fuzz/meson.build
# says how) and has been built.  For every target: replay
# tests/fuzz/corpus/<target> (-runs=0), then fuzz for SECONDS seconds on a
# temporary copy of that corpus, so what the fuzzer finds is never written
# into the tree; to keep an input, copy it into corpus/<target>/ by hand
# (name reproducers regress-<what>).  Crash, leak and timeout artifacts go
# to a temporary directory that is kept, and printed, when a target fails.
#
# Environment: FUZZ_TARGETS="did pow" runs only those targets.
# Exit status: 0 when every target passed, 1 when one failed, 2 on usage.
# The last line is "fuzz: N passed, M failed".
set -u

usage() {
	echo "usage: $0 BUILD_DIR SECONDS" >&2
	exit 2
}

[ $# -eq 2 ] || usage
build=$1
secs=$2
case $secs in
'' | *[!0-9]*) usage ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/tests/fuzz
targets=${FUZZ_TARGETS:-envelope did diddoc armor pow keystore config frame request response routes invite smtp-addr smtp-data smtp-session smtp-reply dotstuff smtp-client maps mail-header mime-decode egress admin dns-rdata dsn mtasts logleaf logproof logfile dkim-tags dkim-verify arc didsig spf dmarc authres imap-parse imap-session imap-msg}

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

# Longest input worth trying: DIDs stop at 332 bytes, stamps at 64,
# invites at 127; a map line at 1023; a MAIL/RCPT argument is a 256-octet
# path and at most 16 parameters; an admin request line 8192 bytes (the
# longest input tries two lines past it); what fuzz-mime-decode reads is
# one header value or date, so 4096 bytes; DNS rdata is bounded by its
# 64 KiB answer, but names and TLSA stop at 1027 bytes: 2048; an MTA-STS
# policy stops at 64 KiB, but longer inputs only repeat lines: 16384;
# a log leaf stops at 512 bytes: 600; a proof input is 81 bytes and at
# most 80 hashes: 2700; a monitor state stops at 8 KiB, and a receipt
# file, though allowed 64 KiB, is under 8 KiB as amp writes it: 8200;
# a DKIM tag list is at most 64 tags of 8 KiB, but longer inputs only
# repeat tags: 16384; a message with a few signatures and a key: 32768.
max_len() {
	case $1 in
	did) echo 400 ;;
	pow) echo 80 ;;
	invite) echo 256 ;;
	routes) echo 8192 ;;
	maps) echo 8192 ;;
	admin) echo 20000 ;;
	smtp-addr) echo 8192 ;;
	smtp-data) echo 16384 ;;
	smtp-client) echo 16384 ;;
	mime-decode) echo 4096 ;;
	dns-rdata) echo 2048 ;;
	mtasts) echo 16384 ;;
	# an SPF zone: 64 records, the SPF ones up to 4096 octets
	spf) echo 16384 ;;
	logleaf) echo 600 ;;
	logproof) echo 2700 ;;
	logfile) echo 8200 ;;
	# a DMARC record stops at 2048 bytes, each domain at 253: 8192;
	# an Authentication-Results value is read to its authserv-id, our
	# own field's material is cut to 12 pieces of 399 bytes: 8192
	dmarc) echo 8192 ;;
	authres) echo 8192 ;;
	dkim-tags) echo 16384 ;;
	dkim-verify) echo 32768 ;;
	# a message with a few ARC sets and a key record
	arc) echo 32768 ;;
	# a message with a few AMP-DID-Signature fields (4 KiB at most each)
	didsig) echo 32768 ;;
	# a few IMAP commands; the small limits stop lines at 191 bytes
	imap-parse) echo 16384 ;;
	# a short IMAP conversation (literals are capped at 16 KiB there)
	imap-session) echo 16384 ;;
	# a message: a few parts and addresses are enough, longer inputs
	# only repeat them (the unit tests cover huge and deep messages)
	imap-msg) echo 65536 ;;
	*) echo 65536 ;;
	esac
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/amp-fuzz.XXXXXX") || exit 1
passed=0
failed=0
failures=""

# fail TARGET PHASE LOG ARTIFACT_DIR
fail() {
	failed=$((failed + 1))
	failures="$failures $1"
	echo "FAIL fuzz-$1 ($2); log: $3"
	tail -n 40 "$3" | sed 's/^/    /'
	found=0
	for f in "$4"/*; do
		[ -f "$f" ] || continue
		echo "    crash file: $f"
		found=1
	done
	[ $found -eq 1 ] || echo "    (no artifact written; see the log)"
}

# stat NAME LOG: a value from libFuzzer's -print_final_stats lines.
stat() {
	sed -n "s/^stat::$1: *//p" "$2" | tail -n 1
}

for t in $targets; do
	exe=$bin/fuzz-$t
	corpus=$here/corpus/$t
	if [ ! -x "$exe" ] || [ ! -d "$corpus" ]; then
		echo "FAIL fuzz-$t: no $exe or no $corpus (built with -Dfuzz=true?)"
		failed=$((failed + 1))
		failures="$failures $t"
		continue
	fi
	art=$tmp/$t/artifacts
	work=$tmp/$t/corpus
	mkdir -p "$art" "$work"
	cp -R "$corpus/." "$work/"
	dict=()
	[ -f "$here/dict/$t.dict" ] && dict=("-dict=$here/dict/$t.dict")

	log=$tmp/$t/replay.log
	n=$(find "$corpus" -type f | wc -l)
	if ! "$exe" -runs=0 -timeout=60 -artifact_prefix="$art/" \
		"$corpus" >"$log" 2>&1; then
		fail "$t" "replay of $n seeds" "$log" "$art"
		continue
	fi

	log=$tmp/$t/fuzz.log
	if ! "$exe" -max_total_time="$secs" -max_len="$(max_len "$t")" \
		-timeout=30 -rss_limit_mb=2560 -print_final_stats=1 \
		-artifact_prefix="$art/" "${dict[@]}" "$work" >"$log" 2>&1; then
		fail "$t" "fuzzing" "$log" "$art"
		continue
	fi
	runs=$(stat number_of_executed_units "$log")
	eps=$(stat average_exec_per_sec "$log")
	cov=$(sed -n 's/.*DONE *cov: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
	grown=$(find "$work" -type f | wc -l)
	echo "ok   fuzz-$t: $n seeds replayed; ${runs:-?} runs in ${secs}s," \
		"${eps:-?} exec/s, cov ${cov:-?}, corpus $n -> $grown"
	passed=$((passed + 1))
done

if [ $failed -eq 0 ]; then
	rm -rf "$tmp"
else
	echo "failed:$failures; logs and crash files kept in $tmp"
fi
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
