#!/usr/bin/env bash
#
# smtp-bench.sh — SMTP messages accepted per second (to the fsync'd 250 at
# the end of DATA), aftersmtpd's inbound bridge side by side with Postfix,
# both driven by the same Postfix `smtp-source` commands in the same run.
#
#   - Postfix: a private instance (own config_directory and queue_directory
#     under a temporary directory, master.cf without chroot) on 127.0.0.1:P1
#     that relays bench.test to the discard transport: its 250 follows
#     cleanup's fsync of the queue file, then qmgr hands the message to
#     discard(8) and removes the file.  in_flow_delay = 0, so the acceptance
#     rate is never throttled down to the delivery rate; the queue is
#     drained before every run and the drain time is reported.
#   - aftersmtpd: a real node (bench.test, smtp_listen 127.0.0.1:P2); each
#     run goes to its own registered user, so the node seals every message
#     for that user (zstd + XChaCha20-Poly1305 + Ed25519) and commits it to
#     SQLite (synchronous=FULL) before the 250.
#
# Cells: size 1, 10, 100 KB x 1 and 20 concurrent sessions x two payloads
# (smtp-source's own `-l` filler, and real mail from the shared corpus sent
# with `-F`), one message per connection (smtp-source without -d, as MTAs
# deliver); plus 10 KB with -d (many messages per connection).  Each cell
# runs ROUNDS times, Postfix then aftersmtpd, and reports the medians of
# msgs/s and of the servers' CPU time per message (less sensitive to other
# load on the machine than msgs/s).  A node that dies is restarted and the
# run reported as an ERROR.
# Every run is verified: smtp-source exits 0 (it aborts on any reply that
# is not the expected 2xx/3xx), Postfix logged status=sent for exactly the
# messages sent to that run's recipient and its queue is empty again, the
# node logged exactly that many "message stored" and `amp inbox` of that
# run's user lists exactly that many distinct envelopes.  A run that fails
# a check is reported as ERROR instead of a figure, and the script exits 1.
#
# Prints a Markdown section on stdout (bench/run.sh puts it in RESULTS.md);
# progress goes to stderr.
#
# Usage: bench/smtp-bench.sh [--quick] [--rounds N]
# Environment: BUILD_DIR (default <repo>/build), KEEP=1 keeps the work
# directory (/var/tmp/amp-smtp-bench.*) for inspection, ONLY="real:10:20:0
# l:1:1:0" runs only those cells (payload:KB:sessions:reuse), e.g. under a
# profiler.
# Needs root (Postfix's master runs as root) and the packages of
# scripts/bootstrap.sh (postfix for postfix(1) and smtp-source(1)).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD_DIR:-$root/build}
ampd=$build/src/daemon/aftersmtpd
amp=$build/src/cli/amp
corpus=${CORPUS:-$root/../shared/corpus/ham}

quick=0
rounds=3
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--rounds) rounds=$2; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "smtp-bench.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
# messages per run: 1 session / 20 sessions (about 3 s of Postfix each in
# the full run, so a cell with 3 rounds is about 10-15 s)
m1=600 m20=1500
if [ "$quick" = 1 ]; then
	m1=20 m20=100 rounds=1
fi

# shellcheck source=bench/lib.sh
. "$here/lib.sh"

say() { echo "smtp-bench: $*" >&2; }
die() { say "$*"; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
	echo "### smtp-bench (aftersmtpd vs Postfix over SMTP)"
	echo
	echo "Not run: Postfix's master must be started as root."
	exit 0
fi
for t in postfix postconf smtp-source python3 script; do
	command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin command -v "$t" >/dev/null ||
		die "$t not found: run scripts/bootstrap.sh"
done
export PATH=$PATH:/usr/sbin
{ [ -x "$ampd" ] && [ -x "$amp" ]; } || die "no $ampd or $amp: build first (ninja -C $build)"
getent passwd postfix >/dev/null || die "no postfix user: run scripts/bootstrap.sh"

dir=$(mktemp -d /var/tmp/amp-smtp-bench.XXXXXX)
chmod 755 "$dir"
pfx_started=0
node_pid=
cleanup() {
	local rc=$?
	if [ "$pfx_started" = 1 ]; then
		pfx_stop "$dir/pfx"
	fi
	if [ -n "$node_pid" ]; then
		kill "$node_pid" 2>/dev/null || true
		wait "$node_pid" 2>/dev/null || true
	fi
	if [ "${KEEP:-0}" = 1 ]; then
		say "kept $dir"
	else
		rm -rf "$dir"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------- Postfix
pport=$(free_port)
pfx_init "$dir/pfx" "$pport"
# relay bench.test to discard(8)
cat >> "$dir/pfx/etc/main.cf" <<EOF
relay_domains = bench.test
relay_transport = discard:bench
default_transport = discard:bench
in_flow_delay = 0
EOF
pfx_start "$dir/pfx" "$pport"
pfx_version=$(postconf -c "$dir/pfx/etc" -h mail_version)

# ------------------------------------------------------------ aftersmtpd
nport=$(free_port)
sport=$(free_port)
mkdir -p "$dir/node"
# The Postfix baseline runs no SPF, DKIM or DMARC checks, so the node
# does not either (they would ask DNS about every message).
cat > "$dir/node/aftersmtpd.conf" <<EOF
spf_verify = no
dkim_verify = no
dmarc_verify = no
domains = bench.test
data_dir = $dir/node/data
port = $nport
pow_bits = 8
rate_per_ip = 10000000
rate_per_identity = 10000000
max_connections_per_ip = 100000
smtp_listen = 127.0.0.1
smtp_port = $sport
smtp_max_connections_per_ip = 1000
log_level = info
user = nobody
EOF
"$ampd" -c "$dir/node/aftersmtpd.conf" init >/dev/null
node_starts=0
start_node() {
	node_start "$dir/node/aftersmtpd.conf" "$dir/node/log" "$sport"
	node_starts=$((node_starts + 1))
}
start_node

export AMP_PASSPHRASE="smtp-bench"
register() { # name: a user of bench.test with its own AMP_HOME
	AMP_HOME=$dir/users/$1 "$amp" keygen --did "did:aftersmtp:bench.test:$1" \
		--kdf min >/dev/null 2>&1 &&
		AMP_HOME=$dir/users/$1 "$amp" register --node "127.0.0.1:$nport" \
			--transport tls >/dev/null 2>&1
}

# ------------------------------------------------------------- payloads
# Real mail for -F: the corpus's .eml files concatenated in name order (as
# amp-bench-seal does), CRs and NULs removed (smtp-source appends CRLF to
# every line), lines folded at 900 characters; a short header, then a
# prefix of that text cut at a line end so that the body is just under the
# size.  smtp-source's own -l payload is "1XXX...X" lines: ~20:1 under zstd.
python3 - "$corpus" "$dir/real" <<'EOF'
import os, sys, textwrap
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
names = sorted(n for n in os.listdir(src) if n.endswith(".eml")) if os.path.isdir(src) else []
if not names:
    sys.exit("smtp-bench: no .eml files in " + src)
text, total = [], 0
for n in names:
    for line in open(os.path.join(src, n), "rb").read().replace(b"\r", b"").replace(b"\0", b"").split(b"\n"):
        while len(line) > 900:
            text.append(line[:900]); total += 901; line = line[900:]
        text.append(line); total += len(line) + 1
    if total > 110 * 1024:
        break
body = b"\n".join(text) + b"\n"
for kb in (1, 10, 100):
    n = kb * 1024
    cut = body[:n]
    cut = cut[:cut.rfind(b"\n") + 1]
    hdr = (b"From: <bench@client.test>\nTo: <user@bench.test>\n"
           b"Subject: smtp-bench real mail %d KB\nMessage-ID: <smtp-bench-%d@client.test>\n"
           b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n" % (kb, kb))
    open(os.path.join(out, "%dk.eml" % kb), "wb").write(hdr + cut)
EOF

# ----------------------------------------------------------------- runs
# One run: the same smtp-source command against one server; prints
# "rate seconds detail" or "ERROR reason".
log_size() { stat -c %s "$1"; }
# CPU time (clock ticks, user + system) of a server: aftersmtpd is one
# process; Postfix is its master and all its children (lib.sh).
cpu_ticks() { # server
	if [ "$1" = aftersmtpd ]; then proc_cpu_ticks "$node_pid"; else pfx_cpu_ticks "$dir/pfx"; fi
}

one_run() { # server msgs sessions payload(l|real) kb reuse(0|1) user
	local server=$1 m=$2 s=$3 payload=$4 kb=$5 reuse=$6 user=$7
	local port opts=(-m "$m" -s "$s" -M client.test -f bench@client.test
		-t "$user@bench.test")
	[ "$payload" = l ] && opts+=(-l $((kb * 1024))) || opts+=(-F "$dir/real/${kb}k.eml")
	[ "$reuse" = 1 ] && opts+=(-d)
	local logf off0 t0 t1 src_rc=0
	if [ "$server" = postfix ]; then
		port=$pport logf=$dir/pfx/postfix.log
		pfx_wait_empty "$dir/pfx" || { echo "ERROR Postfix queue not empty before the run"; return; }
	else
		port=$sport logf=$dir/node/log
		register "$user" || { echo "ERROR cannot register $user"; return; }
	fi
	off0=$(log_size "$logf")
	local cpu0 cpu1
	cpu0=$(cpu_ticks "$server")
	echo "smtp-source ${opts[*]} 127.0.0.1:$port" >> "$dir/commands"
	t0=$EPOCHREALTIME
	(cd "$dir" && smtp-source "${opts[@]}" "127.0.0.1:$port") \
		>> "$dir/smtp-source.out" 2>&1 || src_rc=$?
	t1=$EPOCHREALTIME
	if [ "$server" = aftersmtpd ]; then cpu1=$(cpu_ticks aftersmtpd); fi
	local secs
	secs=$(elapsed "$t0" "$t1")
	if [ "$src_rc" -ne 0 ]; then
		echo "ERROR smtp-source exited $src_rc: $(tail -1 "$dir/smtp-source.out")"
		return
	fi
	if [ "$server" = postfix ]; then
		# every accepted message reaches discard and leaves the queue
		local sent=0 t2 drained=0
		for _ in $(seq 1200); do
			sent=$(tail -c +$((off0 + 1)) "$logf" |
				grep -c "to=<$user@bench.test>, relay=none, .*status=sent" || true)
			if [ "$sent" -ge "$m" ] && [ "$(pfx_queue_files "$dir/pfx")" -eq 0 ]; then
				drained=1
				break
			fi
			sleep 0.1
		done
		t2=$EPOCHREALTIME
		if [ "$drained" != 1 ] || [ "$sent" -ne "$m" ]; then
			echo "ERROR Postfix: $m sent, $sent delivered to discard, $(pfx_queue_files "$dir/pfx") queue files left"
			return
		fi
		cpu1=$(cpu_ticks postfix)
		echo "$(rate "$m" "$secs") $secs cpu_us_per_msg=$(cpu_per_msg "$cpu0" "$cpu1" "$m") verified=$sent drain_s=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", b - a }')"
	else
		local stored listed distinct
		stored=$(tail -c +$((off0 + 1)) "$logf" | grep -c 'msg="smtp: message stored"' || true)
		listed=$(AMP_HOME=$dir/users/$user "$amp" inbox 2>/dev/null | tee "$dir/inbox.out" | wc -l)
		distinct=$(awk '{ print $5 }' "$dir/inbox.out" | sort -u | wc -l)
		if [ "$stored" -ne "$m" ] || [ "$listed" -ne "$m" ] || [ "$distinct" -ne "$m" ]; then
			echo "ERROR aftersmtpd: $m sent, $stored logged stored, $listed in $user's inbox ($distinct distinct)"
			return
		fi
		echo "$(rate "$m" "$secs") $secs cpu_us_per_msg=$(cpu_per_msg "$cpu0" "$cpu1" "$m") verified=$listed"
	fi
}

run_n=0
errors=0
crashes=0
rows=()
raw=()
verdicts=()
cell() { # payload kb sessions reuse
	local payload=$1 kb=$2 s=$3 reuse=$4 m
	case " ${ONLY:-$payload:$kb:$s:$reuse} " in
	*" $payload:$kb:$s:$reuse "*) ;;
	*) return 0 ;;
	esac
	[ "$s" = 1 ] && m=$m1 || m=$m20
	local pr=() ar=() pc=() ac=() r out err=
	for r in $(seq "$rounds"); do
		for server in postfix aftersmtpd; do
			run_n=$((run_n + 1))
			say "$payload ${kb}KB sessions=$s reuse=$reuse round $r: $server ($m messages to r$run_n)"
			out=$(one_run "$server" "$m" "$s" "$payload" "$kb" "$reuse" "r$run_n")
			if [ "$server" = aftersmtpd ] && ! kill -0 "$node_pid" 2>/dev/null; then
				# a crash is a result, not noise: report it, then go on
				# with a restarted node (same data) for the next runs
				local st=0
				wait "$node_pid" 2>/dev/null || st=$?
				out="ERROR aftersmtpd died during the run (wait status $st$([ "$st" -gt 128 ] && echo ": signal $((st - 128))")); restarted"
				say "$out"
				crashes=$((crashes + 1))
				start_node
			fi
			raw+=("server=$server payload=$payload size_kb=$kb sessions=$s reuse=$reuse round=$r rcpt=r$run_n messages=$m $out")
			case "$out" in
			ERROR*) err="$err${err:+; }$server round $r: ${out#ERROR }" ;;
			*)
				local c=${out#*cpu_us_per_msg=}
				c=${c%% *}
				if [ "$server" = postfix ]; then
					pr+=("${out%% *}") pc+=("$c")
				else
					ar+=("${out%% *}") ac+=("$c")
				fi ;;
			esac
		done
	done
	local pname kname
	[ "$payload" = l ] && pname="\`-l\` filler" || pname="real mail \`-F\`"
	[ "$reuse" = 1 ] && kname="$s (\`-d\`)" || kname=$s
	if [ -n "$err" ]; then
		errors=$((errors + 1))
		rows+=("| $pname | $kb KB | $kname | $m x $rounds | ERROR | ERROR | - | - | $err |")
		if [ "$reuse" = 0 ]; then verdicts+=("$payload:ERROR"); fi
		return 0
	fi
	local pm am ratio need verdict
	pm=$(echo "${pr[*]}" | median)
	am=$(echo "${ar[*]}" | median)
	ratio=$(awk -v a="$am" -v p="$pm" 'BEGIN { printf "%.2f", a / p }')
	[ "$s" = 1 ] && need=1 || need=2
	if [ "$reuse" = 1 ]; then
		verdict="(not a target cell)"
	elif awk -v r="$ratio" -v n="$need" 'BEGIN { exit !(r >= n) }'; then
		verdict="PASS (>= ${need}x)"
		verdicts+=("$payload:PASS")
	else
		verdict="**MISS** (>= ${need}x)"
		verdicts+=("$payload:MISS")
	fi
	rows+=("| $pname | $kb KB | $kname | $m x $rounds | $pm$(echo "${pr[*]}" | minmax) | $am$(echo "${ar[*]}" | minmax) | ${ratio}x | $(echo "${pc[*]}" | median) / $(echo "${ac[*]}" | median) | $verdict |")
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for payload in l real; do
	for kb in 1 10 100; do
		for s in 1 20; do
			cell "$payload" "$kb" "$s" 0
		done
	done
done
for s in 1 20; do
	cell real 10 "$s" 1
done

overall() { # payload
	local v seen=0 bad=0
	for v in "${verdicts[@]}"; do
		case "$v" in
		"$1":PASS) seen=1 ;;
		"$1":*) seen=1 bad=1 ;;
		esac
	done
	if [ "$seen" = 0 ]; then
		echo "not measured"
	elif [ "$bad" = 0 ]; then
		echo PASS
	else
		echo MISS
	fi
}

rev=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
real_sizes=$(stat -c %s "$dir/real/1k.eml" "$dir/real/10k.eml" "$dir/real/100k.eml" | paste -sd/)
echo "### smtp-bench (SMTP: aftersmtpd vs Postfix, same smtp-source load)"
echo
echo "- command: \`bench/smtp-bench.sh$([ "$quick" = 1 ] && echo " --quick")$([ "$quick" = 0 ] && [ "$rounds" != 3 ] && echo " --rounds $rounds")\`; machine: $(machine); load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- aftersmtpd: ${ampd#"$root"/} (source $rev), SMTP on 127.0.0.1, domain bench.test, SQLite synchronous=FULL on $(df -T "$dir" | awk 'NR==2{print $2}'): each message sealed (zstd, XChaCha20-Poly1305, Ed25519 by the node key) for its recipient's DID and committed before the 250"
echo "- Postfix $pfx_version: private instance on 127.0.0.1, same file system, bench.test relayed to discard(8); the 250 follows cleanup's fsync of the queue file; in_flow_delay = 0; every run waits until Postfix has discarded the previous run's messages and its queue is empty (drain_s below: time from the last 250 to an empty queue)"
echo "- load: \`smtp-source -m M -s S -M client.test -f bench@client.test -t rN@bench.test [-l BYTES | -F FILE] [-d]\`, the same command against both servers, client on the same CPUs; one message per connection (smtp-source without \`-d\`: connect, EHLO, MAIL, RCPT, DATA, QUIT, as MTAs deliver) unless the sessions column says \`-d\` (all of a session's messages over one connection)"
echo "- payloads: \`-l\` = smtp-source's own body (\"1XXX…X\" lines, KB of body after ~150 bytes of header; zstd shrinks 10 KB to ~0.5 KB); real mail = \`-F\` with a prefix of the shared ham corpus (files of $real_sizes bytes, ~3:1 under zstd)"
echo "- msgs/s = messages / wall time of smtp-source; median of $rounds round(s) (range in brackets), Postfix and aftersmtpd alternating in each round; ratio = aftersmtpd / Postfix"
echo "- CPU µs/msg: user + system time of the server per message, median over the rounds (aftersmtpd: its process, all threads, during the run; Postfix: the master and every child it ran, smtpd, cleanup, trivial-rewrite, qmgr, discard, postlogd..., from the start of the run until its queue is empty again). Less sensitive than msgs/s to other load on the machine"
echo "- verified per run: smtp-source exit 0 (it aborts on any unexpected reply); Postfix logged status=sent for exactly M messages to that run's recipient and its queue is empty; aftersmtpd logged M \"message stored\" and \`amp inbox\` of that run's user lists M distinct envelopes"
echo "- target (issue): aftersmtpd >= 2x Postfix with 20 sessions, >= 1x with 1 session"
[ "$quick" = 1 ] && echo "- **--quick: a smoke run (few messages, one round): these figures and verdicts mean nothing**"
echo
echo "| payload | size | sessions | messages x rounds | Postfix msgs/s | aftersmtpd msgs/s | ratio | CPU µs/msg Postfix / aftersmtpd | target |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
echo
echo "**Target with smtp-source's \`-l\` payload: $(overall l); with real mail (\`-F\`): $(overall real)**"
echo
echo "Every run:"
echo
echo '```'
printf '%s\n' "${raw[@]}"
echo '```'
if [ "$errors" -ne 0 ]; then
	echo
	echo "**$errors cell(s) failed verification: see ERROR above.**"
	[ "$crashes" -eq 0 ] || echo "**aftersmtpd crashed $crashes time(s) and was restarted for the runs after the crash.**"
	exit 1
fi
