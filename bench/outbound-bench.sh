#!/usr/bin/env bash
#
# outbound-bench.sh — outbound relay throughput (issue 5): messages per
# second that aftersmtpd relays to Postfix's smtp-sink, beside a private
# Postfix relaying the same smtp-source load to the same sink, in the same
# run.
#
#   - smtp-sink (one process for the whole run, 127.0.0.1:K, -c counters,
#     -d: one dump file per message) is the destination of bench.test for
#     both MTAs; neither does DNS or TLS (the sink offers no STARTTLS).
#   - Postfix: a private instance (bench/lib.sh) on 127.0.0.1:P1 relaying
#     for 127.0.0.0/8, transport_maps texthash: bench.test ->
#     smtp:[127.0.0.1]:K, smtp(8) maxproc = CONNS, destination
#     concurrency limit DEST, in_flow_delay = 0; everything else default
#     (connection cache on demand, concurrency slow start).  Postfix has no
#     DKIM signer: it relays unsigned.
#   - aftersmtpd: a real node relaying for smtp_relay_networks = 127.0.0.0/8
#     through its mail queue (SQLite, synchronous=FULL: the 250 follows the
#     commit), transport_maps bench.test -> smtp:[127.0.0.1]:K,
#     smtp_out_max_connections = CONNS, smtp_out_dest_concurrency = DEST,
#     dkim_keys for rsa.test (RSA-2048) and ed.test (Ed25519), made by
#     `amp dkim keygen`.  The From domain of the load picks the cell:
#     app@rsa.test is signed with RSA, app@ed.test with Ed25519,
#     app@plain.test (no key) is relayed unsigned.
#
# End-to-end cells: smtp-source injects M messages of 10 KB (its `-l`
# filler, one message per connection, S sessions) into one MTA; the rate
# is M / (time from the start of smtp-source to the moment the last
# message was complete at the sink: the newest dump file's mtime).  Each
# round runs Postfix (From app@rsa.test, unsigned), aftersmtpd RSA,
# aftersmtpd Ed25519 and aftersmtpd without DKIM, one after the other; the
# table gives medians over the rounds.
# Drain cells (unless --no-drain): the same M messages are injected while
# the sink is down, so they wait in the queue; then the sink is started
# and Postfix gets `postqueue -f` / aftersmtpd is restarted (a stopping
# node leaves its rows due; retries are 1 s here so the deferred ones
# are due too); rate = M / (time from the flush / the node's "outbound
# ready" line to the last message at the sink).
#
# Every run is verified: smtp-source exit 0; the sink counted exactly M
# more messages, its dump holds M files, all for that run's recipient,
# with M distinct Message-IDs and identical bodies of 10 KB; the cells
# that sign have exactly one DKIM-Signature per message, of the expected
# algorithm and d=, and every one verifies (python3-dkim, against the TXT
# record `amp dkim keygen` printed); the others have none; Postfix logged
# status=sent for exactly M messages of that recipient and its queue is
# empty; aftersmtpd logged M "message stored" (dkim=signed or no as
# expected) and exactly M "outbound: attempt ... delivered=1 deferred=0
# bounced=0", and its mail queue tables are empty.  A run that fails a
# check is reported as ERROR instead of a figure, and the script exits 1.
# CPU µs/msg: user + system time of the MTA per message (aftersmtpd: its
# process, all threads; Postfix: the master and every child it ran), from
# the start of the injection until its queue is empty; in the drain cells
# from the flush (Postfix) or the node's launch (aftersmtpd, so its
# start-up is included).  smtp-source and smtp-sink are not counted.
#
# Prints a Markdown section on stdout (bench/run.sh puts it in RESULTS.md);
# progress goes to stderr.
#
# Usage: bench/outbound-bench.sh [--quick] [--rounds N] [--messages M]
#                                [--sessions S] [--dest DEST] [--no-drain]
# (DEST: the destination concurrency of both MTAs, default 10; CONNS is 50)
# Environment: BUILD_DIR (default <repo>/build), KEEP=1 keeps the work
# directory (/var/tmp/amp-outbound-bench.*), ONLY="rsa ed25519" runs only
# those cells (postfix rsa ed25519 none drain-postfix drain-aftersmtpd).
# Needs root (Postfix's master runs as root) and the packages of
# scripts/bootstrap.sh: postfix (smtp-source, smtp-sink), Debian's
# python3-dkim and python3-nacl (used through /usr/bin/python3), ss.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD_DIR:-$root/build}
ampd=$build/src/daemon/aftersmtpd
amp=$build/src/cli/amp
PY=/usr/bin/python3

quick=0
dest=10     # aftersmtpd's default smtp_out_dest_concurrency, for both MTAs
rounds=3
m=2000
sessions=10
drain=1
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--rounds) rounds=$2; shift ;;
	--messages) m=$2; shift ;;
	--sessions) sessions=$2; shift ;;
	--dest) dest=$2; shift ;;
	--no-drain) drain=0 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "outbound-bench.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
if [ "$quick" = 1 ]; then
	m=60 rounds=1
fi
conns=50    # aftersmtpd's default smtp_out_max_connections, for both
kb=10

# shellcheck source=bench/lib.sh
. "$here/lib.sh"

start=$EPOCHREALTIME
# the checkout when the run starts (others may commit during it)
rev=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
say() { echo "outbound-bench: [$(elapsed "$start" "$EPOCHREALTIME")s] $*" >&2; }
die() { say "$*"; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
	echo "### outbound-bench (aftersmtpd vs Postfix relaying to smtp-sink)"
	echo
	echo "Not run: Postfix's master must be started as root."
	exit 0
fi
export PATH=$PATH:/usr/sbin
for t in postfix postconf postqueue smtp-source smtp-sink python3 script ss; do
	command -v "$t" >/dev/null || die "$t not found: run scripts/bootstrap.sh"
done
{ [ -x "$ampd" ] && [ -x "$amp" ]; } || die "no $ampd or $amp: build first (ninja -C $build)"
getent passwd postfix >/dev/null || die "no postfix user: run scripts/bootstrap.sh"
"$PY" -c 'import importlib.util as u, sys; sys.exit(not (u.find_spec("dkim") and u.find_spec("nacl")))' ||
	die "$PY has no dkim or nacl module: apt-get install python3-dkim python3-nacl"

dir=$(mktemp -d /var/tmp/amp-outbound-bench.XXXXXX)
chmod 755 "$dir"
pfx_started=0
node_pid=
sink_pid=
cleanup() {
	local rc=$?
	if [ "$pfx_started" = 1 ]; then
		pfx_stop "$dir/pfx"
	fi
	if [ -n "$node_pid" ]; then
		kill "$node_pid" 2>/dev/null || true
		wait "$node_pid" 2>/dev/null || true
	fi
	if [ -n "$sink_pid" ]; then
		kill "$sink_pid" 2>/dev/null || true
		wait "$sink_pid" 2>/dev/null || true
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

# ------------------------------------------------------------------ sink
# Each start writes its counters ("sess=A quit=B mesg=C", CR-separated) to
# a new file; the dump directory is moved away after each run.
kport=$(free_port)
mkdir -p "$dir/sink"
chown nobody "$dir/sink"
sink_n=0
sink_start() {
	sink_n=$((sink_n + 1))
	smtp-sink -c -h sink.bench.test -d "$dir/sink/dump/" -u nobody \
		"127.0.0.1:$kport" 256 > "$dir/sink/counters.$sink_n" 2>&1 &
	sink_pid=$!
	wait_greeting "$kport" || die "smtp-sink does not answer on 127.0.0.1:$kport"
}
sink_stop() {
	kill "$sink_pid" 2>/dev/null || true
	wait "$sink_pid" 2>/dev/null || true
	sink_pid=
}
sink_counter() { # sess|mesg: the current sink's counter
	tr '\r' '\n' < "$dir/sink/counters.$sink_n" |
		sed -n "s/.*$1=\([0-9]*\).*/\1/p" | tail -1 | grep . || echo 0
}
# Sessions the sink has accepted so far: those that ended plus those
# still open (Postfix keeps idle ones in its connection cache for a while).
sink_sessions() {
	echo $(($(sink_counter sess) + $(ss -Htn state established "( sport = :$kport )" | wc -l)))
}
sink_start

# --------------------------------------------------------------- Postfix
pport=$(free_port)
pfx_init "$dir/pfx" "$pport"
echo "bench.test  smtp:[127.0.0.1]:$kport" > "$dir/pfx/etc/transport"
cat >> "$dir/pfx/etc/main.cf" <<EOF
transport_maps = texthash:$dir/pfx/etc/transport
in_flow_delay = 0
default_destination_concurrency_limit = $dest
smtp_destination_concurrency_limit = $dest
EOF
echo "smtp      unix  -       -       n       -       $conns      smtp" >> "$dir/pfx/etc/master.cf"
# started while the node is set up (postfix check takes seconds); cleanup
# stops it whatever happens
pfx_started=1
pfx_start "$dir/pfx" "$pport" &
pfx_starter=$!

# ------------------------------------------------------------ aftersmtpd
nport=$(free_port)
sport=$(free_port)
mkdir -p "$dir/node"
"$amp" dkim keygen --domain rsa.test --selector s1 --alg rsa \
	--out "$dir/node/rsa.pem" > "$dir/node/rsa.txt"
"$amp" dkim keygen --domain ed.test --selector s1 --alg ed25519 \
	--out "$dir/node/ed25519.pem" > "$dir/node/ed25519.txt"
echo "bench.test  smtp:[127.0.0.1]:$kport" > "$dir/node/transport"
# dns_forwarder: a port nobody answers on, so that a lookup would show as
# a deferral instead of leaving the machine.
cat > "$dir/node/aftersmtpd.conf" <<EOF
domains = node.test
data_dir = $dir/node/data
port = $nport
pow_bits = 8
smtp_listen = 127.0.0.1
smtp_port = $sport
smtp_hostname = mx.node.test
smtp_max_connections_per_ip = 1000
smtp_relay_networks = 127.0.0.0/8
transport_maps = $dir/node/transport
dkim_keys = rsa.test:s1:$dir/node/rsa.pem ed.test:s1:$dir/node/ed25519.pem
dns_forwarder = 127.0.0.1@$(free_port)
smtp_out_max_connections = $conns
smtp_out_dest_concurrency = $dest
smtp_out_retry_min = 1s
smtp_out_retry_max = 1s
log_level = info
user = nobody
EOF
"$ampd" -c "$dir/node/aftersmtpd.conf" init >/dev/null
node_start "$dir/node/aftersmtpd.conf" "$dir/node/log" "$sport"
wait "$pfx_starter" || die "Postfix did not start"
pfx_version=$(postconf -c "$dir/pfx/etc" -h mail_version)
node_stop() {
	kill "$node_pid" 2>/dev/null || true
	wait "$node_pid" 2>/dev/null || true
	node_pid=
}
node_queue_rows() { # rows in the mail queue tables (read-only)
	"$PY" - "$dir/node/data/node.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
print(sum(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
          for t in ("mailq", "mailq_body")))
PY
}

# ----------------------------------------------------------------- runs
log_size() { stat -c %s "$1"; }
tail_from() { tail -c +$(($2 + 1)) "$1"; }   # file offset
cpu_ticks() { # server
	if [ "$1" = postfix ]; then pfx_cpu_ticks "$dir/pfx"; else proc_cpu_ticks "$node_pid"; fi
}

# Waits in the background until the sink's message counter reaches the
# target; leaves "reached TIME" or "timeout COUNT" in $dir/waiter.out.
waiter_start() { # target timeout-seconds
	rm -f "$dir/waiter.out"
	"$PY" - "$dir/sink/counters.$sink_n" "$1" "$2" "$dir/waiter.out" <<'PY' &
import os, re, sys, time
path, target, limit, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
end = time.time() + limit
n = 0
while True:
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 200))
        c = re.findall(rb"mesg=(\d+)", f.read())
    n = int(c[-1]) if c else 0
    if n >= target:
        open(out, "w").write(f"reached {time.time():.6f}\n")
        break
    if time.time() > end:
        open(out, "w").write(f"timeout {n}\n")
        break
    time.sleep(0.02)
PY
	waiter_pid=$!
}
waiter_wait() { # sets w to the waiter's result
	wait "$waiter_pid" || true
	w=$(cat "$dir/waiter.out" 2>/dev/null || echo "timeout ?")
}

# The dump of one run: M files for rcpt, distinct Message-IDs, one body,
# DKIM as the cell says.  Prints "ok LAST_MTIME detail" or "ERROR reason".
check_dump() { # dumpdir rcpt messages dkim(none|rsa|ed25519)
	"$PY" - "$@" "$dir/node" <<'PY'
import os, re, sys
ddir, rcpt, m, mode, keys = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
if mode != "none":
    # the key comes from dnsfunc: keep dkim from loading dnspython (a
    # second of imports, and no lookup can leave the machine)
    sys.modules["dns"] = None
    import dkim
files = [os.path.join(ddir, n) for n in os.listdir(ddir)] if os.path.isdir(ddir) else []
if len(files) != m:
    sys.exit(print(f"ERROR the sink holds {len(files)} messages, not {m}"))
txt = None
if mode != "none":
    txt = "".join(re.findall(r'"([^"]*)"', open(os.path.join(keys, mode + ".txt")).read())).encode()
alg = {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}.get(mode)
dom = {"rsa": b"rsa.test", "ed25519": b"ed.test"}.get(mode)
ids, bodies, last, verified = set(), set(), 0, 0
for p in files:
    raw = open(p, "rb").read()
    last = max(last, os.stat(p).st_mtime_ns)
    # smtp-sink's own lines end with its three-line Received: field
    i = raw.find(b"\nReceived: ")
    j = raw.find(b"\n", raw.find(b"\n", raw.find(b"\n", i + 1) + 1) + 1) + 1
    if i < 0 or j <= 0:
        sys.exit(print(f"ERROR {p}: no smtp-sink header"))
    # the address, without parameters (Postfix sends ORCPT=)
    rcpts = re.findall(rb"^X-Rcpt-Args: (\S*)", raw[:j], re.M)
    if rcpts != [b"<" + rcpt.encode() + b">"]:
        sys.exit(print(f"ERROR {p}: recipients {rcpts!r}, expected <{rcpt}>"))
    msg = raw[j:]
    head, sep, body = msg.partition(b"\n\n")
    if not sep:
        sys.exit(print(f"ERROR {p}: no end of header"))
    mid = re.findall(rb"^Message-Id:\s*(\S+)", head, re.M | re.I)
    if len(mid) != 1:
        sys.exit(print(f"ERROR {p}: {len(mid)} Message-ID fields"))
    ids.add(mid[0])
    bodies.add(body)
    sigs = re.findall(rb"^DKIM-Signature:(.*(?:\n[ \t].*)*)", head, re.M | re.I)
    if mode == "none":
        if sigs:
            sys.exit(print(f"ERROR {p}: signed, but no key should apply"))
        continue
    if len(sigs) != 1:
        sys.exit(print(f"ERROR {p}: {len(sigs)} DKIM-Signature fields"))
    tags = re.sub(rb"\s+", b"", sigs[0])
    if b"a=" + alg + b";" not in tags or b"d=" + dom + b";" not in tags:
        sys.exit(print(f"ERROR {p}: signature not a={alg.decode()} d={dom.decode()}"))
    if not dkim.verify(msg, dnsfunc=lambda name, timeout=5: txt):
        sys.exit(print(f"ERROR {p}: the DKIM signature does not verify"))
    verified += 1
if len(ids) != m:
    sys.exit(print(f"ERROR {len(ids)} distinct Message-IDs among {m} messages (duplicates)"))
if len(bodies) != 1 or not 10000 <= len(next(iter(bodies))) <= 10700:
    sys.exit(print(f"ERROR {len(bodies)} distinct bodies, {sorted(len(b) for b in bodies)[:3]} bytes"))
print(f"ok {last / 1e9:.6f} distinct_ids={len(ids)} dkim_verified={verified}")
PY
}

# After the MTA's side is done: the sink counted exactly `target` and its
# dump (moved to dump.RCPT) passes check_dump.  Prints "ok ..." or "ERROR".
sink_verify() { # rcpt target messages dkim
	local got
	got=$(sink_counter mesg)
	if [ "$got" -ne "$2" ]; then
		echo "ERROR the sink counted $got messages, expected $2"
		return
	fi
	if [ -d "$dir/sink/dump" ]; then mv "$dir/sink/dump" "$dir/sink/dump.$1"; fi
	check_dump "$dir/sink/dump.$1" "$1@bench.test" "$3" "$4"
	[ "${KEEP:-0}" = 1 ] || rm -rf "$dir/sink/dump.$1"
}

# The MTA's own account: Postfix logged status=sent M times for rcpt and
# its queue is empty; aftersmtpd logged M clean delivered attempts (and no
# other) and its queue tables are empty.  Waits up to 120 s; prints
# nothing when done, else the reason.
mta_done() { # server logoffset rcpt messages
	local server=$1 off=$2 rcpt=$3 n=$4 sent=0 other=0 rows=0
	for _ in $(seq 1200); do
		if [ "$server" = postfix ]; then
			sent=$(tail_from "$dir/pfx/postfix.log" "$off" |
				grep -c "to=<$rcpt@bench.test>, relay=127.0.0.1\[127.0.0.1\]:$kport, .*status=sent" || true)
			rows=$(pfx_queue_files "$dir/pfx")
		else
			sent=$(tail_from "$dir/node/log" "$off" |
				grep -c 'msg="outbound: attempt" .* delivered=1 deferred=0 bounced=0 ' || true)
			rows=$(node_queue_rows)
		fi
		[ "$sent" -ge "$n" ] && [ "$rows" -eq 0 ] && break
		sleep 0.1
	done
	if [ "$server" = postfix ]; then
		other=$(tail_from "$dir/pfx/postfix.log" "$off" |
			grep -c "to=<$rcpt@bench.test>, .*status=\(deferred\|bounced\)" || true)
	else
		other=$(tail_from "$dir/node/log" "$off" |
			grep 'msg="outbound: attempt"' | grep -vc ' delivered=1 deferred=0 bounced=0 ' || true)
	fi
	if [ "$sent" -ne "$n" ] || [ "$rows" -ne 0 ] || [ "$other" -ne 0 ]; then
		echo "$server: $sent of $n logged delivered, $other other attempts, $rows queue entries left"
	fi
}

from_of() { case "$1" in rsa | postfix) echo app@rsa.test ;; ed25519) echo app@ed.test ;; *) echo app@plain.test ;; esac; }

# One end-to-end run; prints "rate seconds detail" or "ERROR reason".
e2e_run() { # cell(postfix|rsa|ed25519|none) rcpt
	local cell=$1 rcpt=$2 server=aftersmtpd port=$sport logf=$dir/node/log
	if [ "$cell" = postfix ]; then
		server=postfix port=$pport logf=$dir/pfx/postfix.log
		pfx_wait_empty "$dir/pfx" || { echo "ERROR Postfix queue not empty before the run"; return; }
	fi
	local base sess0 off0 cpu0 cpu1 t0 t1 src_rc=0 why
	base=$(sink_counter mesg) sess0=$(sink_sessions)
	off0=$(log_size "$logf")
	local opts=(-m "$m" -s "$sessions" -l $((kb * 1024)) -M client.test
		-f "$(from_of "$cell")" -t "$rcpt@bench.test")
	echo "smtp-source ${opts[*]} 127.0.0.1:$port" >> "$dir/commands"
	waiter_start $((base + m)) 300
	cpu0=$(cpu_ticks "$server")
	t0=$EPOCHREALTIME
	(cd "$dir" && smtp-source "${opts[@]}" "127.0.0.1:$port") \
		>> "$dir/smtp-source.out" 2>&1 || src_rc=$?
	t1=$EPOCHREALTIME
	[ "$src_rc" -eq 0 ] || kill "$waiter_pid" 2>/dev/null || true
	waiter_wait
	if [ "$src_rc" -ne 0 ]; then
		echo "ERROR smtp-source exited $src_rc: $(tail -1 "$dir/smtp-source.out")"
		return
	fi
	case "$w" in reached*) ;; *) echo "ERROR the sink did not get $m messages in 300 s (${w#timeout } counted)"; return ;; esac
	why=$(mta_done "$server" "$off0" "$rcpt" "$m")
	cpu1=$(cpu_ticks "$server")
	[ -z "$why" ] || { echo "ERROR $why"; return; }
	if [ "$server" = aftersmtpd ]; then
		local stored want=no
		[ "$cell" = none ] || want=signed
		stored=$(tail_from "$logf" "$off0" |
			grep -c "msg=\"smtp: message stored\" .* queued=1 dkim=$want " || true)
		[ "$stored" -eq "$m" ] || { echo "ERROR aftersmtpd logged $stored of $m \"message stored\" queued=1 dkim=$want"; return; }
	fi
	local v sess1 last
	sess1=$(sink_sessions)
	v=$(sink_verify "$rcpt" $((base + m)) "$m" "$([ "$cell" = postfix ] && echo none || echo "$cell")")
	case "$v" in ok*) ;; *) echo "$v"; return ;; esac
	last=$(echo "$v" | cut -d' ' -f2)
	local secs
	secs=$(elapsed "$t0" "$last")
	echo "$(rate "$m" "$secs") $secs accept_per_s=$(rate "$m" "$(elapsed "$t0" "$t1")") lag_s=$(elapsed "$t1" "$last") cpu_us_per_msg=$(cpu_per_msg "$cpu0" "$cpu1" "$m") sink_sessions=$((sess1 - sess0)) $(echo "$v" | cut -d' ' -f3-)"
}

# One drain run: inject with the sink down, then start the sink and
# release the queue; prints "rate seconds detail" or "ERROR reason".
drain_run() { # server(postfix|aftersmtpd) rcpt
	local server=$1 rcpt=$2 port=$sport logf=$dir/node/log cell=rsa
	[ "$server" = postfix ] && port=$pport logf=$dir/pfx/postfix.log
	if [ "$server" = postfix ]; then
		pfx_wait_empty "$dir/pfx" || { echo "ERROR Postfix queue not empty before the run"; return; }
	fi
	sink_stop
	local off0 src_rc=0
	off0=$(log_size "$logf")
	local opts=(-m "$m" -s "$sessions" -l $((kb * 1024)) -M client.test
		-f "$(from_of "$cell")" -t "$rcpt@bench.test")
	echo "smtp-source ${opts[*]} 127.0.0.1:$port  (sink down)" >> "$dir/commands"
	(cd "$dir" && smtp-source "${opts[@]}" "127.0.0.1:$port") \
		>> "$dir/smtp-source.out" 2>&1 || src_rc=$?
	if [ "$src_rc" -ne 0 ]; then
		sink_start
		echo "ERROR smtp-source exited $src_rc: $(tail -1 "$dir/smtp-source.out")"
		return
	fi
	local t0 cpu0 off1 why sess0
	if [ "$server" = postfix ]; then
		# all of them deferred (the dead destination defers the rest)
		local q=0
		for _ in $(seq 600); do
			q=$(find "$dir/pfx/spool/deferred" -type f | wc -l)
			[ "$q" -eq "$m" ] && [ "$(pfx_queue_files "$dir/pfx")" -eq "$m" ] && break
			sleep 0.1
		done
		[ "$q" -eq "$m" ] || { sink_start; echo "ERROR Postfix deferred $q of $m with the sink down"; return; }
		sink_start
		sess0=$(sink_sessions)
		off1=$(log_size "$logf")
		waiter_start "$m" 300
		cpu0=$(cpu_ticks postfix)
		t0=$EPOCHREALTIME
		postqueue -c "$dir/pfx/etc" -f
	else
		local stored
		stored=$(tail_from "$logf" "$off0" | grep -c 'msg="smtp: message stored" .* queued=1 dkim=signed ' || true)
		[ "$stored" -eq "$m" ] || { sink_start; echo "ERROR aftersmtpd logged $stored of $m stored"; return; }
		node_stop
		sleep 1.3   # smtp_out_retry_max 1 s + 25% jitter: every row is due
		sink_start
		sess0=$(sink_sessions)
		off1=$(log_size "$logf")
		waiter_start "$m" 300
		cpu0=0
		node_start "$dir/node/aftersmtpd.conf" "$logf" "$sport" > /dev/null
		local ts
		ts=$(tail_from "$logf" "$off1" | awk '/msg="outbound ready"/ && !n++ { print $1 }')
		t0=$(date -d "$ts" +%s.%N)
	fi
	waiter_wait
	case "$w" in reached*) ;; *) echo "ERROR the sink did not get $m messages in 300 s (${w#timeout } counted)"; return ;; esac
	why=$(mta_done "$server" "$off1" "$rcpt" "$m")
	local cpu1
	cpu1=$(cpu_ticks "$server")
	[ -z "$why" ] || { echo "ERROR $why"; return; }
	local v last secs
	v=$(sink_verify "$rcpt" "$m" "$m" "$([ "$server" = postfix ] && echo none || echo "$cell")")
	case "$v" in ok*) ;; *) echo "$v"; return ;; esac
	last=$(echo "$v" | cut -d' ' -f2)
	secs=$(elapsed "$t0" "$last")
	echo "$(rate "$m" "$secs") $secs cpu_us_per_msg=$(cpu_per_msg "$cpu0" "$cpu1" "$m") sink_sessions=$(($(sink_sessions) - sess0)) $(echo "$v" | cut -d' ' -f3-)"
}

run_n=0
errors=0
crashes=0
raw=()
: > "$dir/results"   # "cell msgs/s accept/s cpu_us msgs/session" or "cell ERROR"
cells=(postfix rsa ed25519 none)
[ "$drain" = 1 ] && cells+=(drain-postfix drain-aftersmtpd)
wanted() { case " ${ONLY:-$1} " in *" $1 "*) return 0 ;; esac; return 1; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$rounds"); do
	for cell in "${cells[@]}"; do
		wanted "$cell" || continue
		run_n=$((run_n + 1))
		say "round $r: $cell ($m messages to r$run_n)"
		# not in $(...): a run may restart the node or the sink, and
		# they must stay children of this shell
		case "$cell" in
		drain-*) drain_run "${cell#drain-}" "r$run_n" > "$dir/run.out" ;;
		*) e2e_run "$cell" "r$run_n" > "$dir/run.out" ;;
		esac
		out=$(cat "$dir/run.out")
		if [ "$cell" != postfix ] && [ "$cell" != drain-postfix ] &&
			{ [ -z "$node_pid" ] || ! kill -0 "$node_pid" 2>/dev/null; }; then
			# a crash is a result: report it, restart for the next runs
			st=0
			[ -z "$node_pid" ] || wait "$node_pid" 2>/dev/null || st=$?
			out="ERROR aftersmtpd died during the run (wait status $st); restarted"
			crashes=$((crashes + 1))
			node_start "$dir/node/aftersmtpd.conf" "$dir/node/log" "$sport"
		fi
		[ -n "$sink_pid" ] || sink_start
		[ -n "$node_pid" ] || node_start "$dir/node/aftersmtpd.conf" "$dir/node/log" "$sport"
		say "  $out"
		raw+=("cell=$cell round=$r rcpt=r$run_n messages=$m sessions=$sessions $out")
		case "$out" in
		ERROR*) errors=$((errors + 1)); echo "$cell ERROR" >> "$dir/results" ;;
		*)
			a=- c=${out#*cpu_us_per_msg=} k=${out#*sink_sessions=}
			case "$out" in *accept_per_s=*) a=${out#*accept_per_s=}; a=${a%% *} ;; esac
			echo "$cell ${out%% *} $a ${c%% *} ${k%% *}" >> "$dir/results" ;;
		esac
	done
done

# ------------------------------------------------------------- report
# The table rows and the verdict line from $dir/results, in one awk (a
# pipeline per figure costs seconds on a loaded machine).  Ratios: each
# cell's median over Postfix's (drain: over Postfix's drain).
report_rows() {
	awk -v m="$m" -v rounds="$rounds" -v only=" ${ONLY:-} " '
	function med(s,   v, n, i, j, x) {
		n = split(s, v, " ")
		if (n == 0) return "-"
		for (i = 2; i <= n; i++) {
			x = v[i] + 0
			for (j = i - 1; j > 0 && v[j] + 0 > x; j--) v[j + 1] = v[j]
			v[j + 1] = x
		}
		return n % 2 ? v[(n + 1) / 2] + 0 : (v[n / 2] + v[n / 2 + 1]) / 2
	}
	function range(s,   v, n, i, lo, hi) {
		n = split(s, v, " ")
		if (n < 2) return ""
		lo = hi = v[1] + 0
		for (i = 2; i <= n; i++) { if (v[i] + 0 < lo) lo = v[i] + 0; if (v[i] + 0 > hi) hi = v[i] + 0 }
		return sprintf(" (%d-%d)", lo, hi)
	}
	function ratio(c, b) {
		if (err[c] || err[b] || rate[c] == "" || rate[b] == "") return "-"
		return sprintf("%.2fx", med(rate[c]) / med(rate[b]))
	}
	function row(c, label, dkim, b,   r) {
		if (only != "  " && index(only, " " c " ") == 0) return
		r = c == b ? "1.00x" : ratio(c, b)
		printf "| %s | %s | %s x %s | %s | %s | %s | %s | %s |\n", label, dkim, m, rounds,
			err[c] ? "ERROR" : rate[c] == "" ? "-" : sprintf("%.0f%s", med(rate[c]), range(rate[c])),
			r, acc[c] == "" ? "-" : sprintf("%.0f", med(acc[c])),
			cpu[c] == "" ? "-" : sprintf("%.0f", med(cpu[c])),
			mps[c] == "" ? "-" : sprintf("%.0f", med(mps[c]))
	}
	function verdict(c,   r) {
		r = ratio(c, "postfix")
		if (r == "-") return "not measured"
		return (r + 0 >= 1 ? "PASS" : "**MISS**") " (" r ")"
	}
	$2 == "ERROR" { err[$1] = 1; next }
	{
		rate[$1] = rate[$1] " " $2
		if ($3 != "-") acc[$1] = acc[$1] " " $3
		cpu[$1] = cpu[$1] " " $4
		if ($5 > 0) mps[$1] = mps[$1] " " m / $5
	}
	END {
		row("postfix", "Postfix", "none (no signer)", "postfix")
		row("rsa", "aftersmtpd", "RSA-2048", "postfix")
		row("ed25519", "aftersmtpd", "Ed25519", "postfix")
		row("none", "aftersmtpd", "none", "postfix")
		row("drain-postfix", "Postfix, drain", "none (no signer)", "drain-postfix")
		row("drain-aftersmtpd", "aftersmtpd, drain", "RSA-2048 (signed at acceptance)", "drain-postfix")
		printf "\n**Target (aftersmtpd with DKIM >= Postfix without): RSA-2048 %s, Ed25519 %s**\n", verdict("rsa"), verdict("ed25519")
	}' "$dir/results"
}

args=""
[ "$quick" = 1 ] && args+=" --quick"
[ "$quick" = 0 ] && [ "$rounds" != 3 ] && args+=" --rounds $rounds"
[ "$quick" = 0 ] && [ "$m" != 2000 ] && args+=" --messages $m"
[ "$sessions" != 10 ] && args+=" --sessions $sessions"
[ "$dest" != 10 ] && args+=" --dest $dest"
[ "$drain" = 0 ] && args+=" --no-drain"
echo "### outbound-bench (relaying to smtp-sink: aftersmtpd vs Postfix, same smtp-source load)"
echo
echo "- command: \`bench/outbound-bench.sh$args\`; machine: $(machine); load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- destination: Postfix's smtp-sink on 127.0.0.1 (one process for the run, \`-c\` counters, \`-d\` one dump file per message; no STARTTLS, so neither MTA uses TLS), reached through transport_maps \`bench.test smtp:[127.0.0.1]:PORT\` by both MTAs, no DNS"
echo "- aftersmtpd: ${ampd#"$root"/} (checkout $rev at the start; the binary as built in ${build#"$root"/}), relays for smtp_relay_networks 127.0.0.0/8 through its mail queue (SQLite synchronous=FULL on $(df -T "$dir" | awk 'NR==2{print $2}'), the 250 after the commit; the queue body sealed with the storage key), one connection per message; DKIM keys from \`amp dkim keygen\` for rsa.test (RSA-2048) and ed.test (Ed25519): the From domain of the load decides; smtp_out_max_connections $conns, smtp_out_dest_concurrency $dest"
echo "- Postfix $pfx_version: private instance on 127.0.0.1, same file system, relaying for mynetworks 127.0.0.0/8; smtp(8) maxproc $conns, smtp_destination_concurrency_limit $dest, in_flow_delay 0, otherwise defaults (it caches and reuses connections to a destination with a backlog: see msgs/session). **Postfix has no DKIM signer**: its figure is without DKIM"
echo "- load: \`smtp-source -m $m -s $sessions -l $((kb * 1024)) -M client.test -f FROM -t rN@bench.test\` (one message per connection, 10 KB of smtp-source's filler body, a unique Message-Id each); FROM = app@rsa.test for Postfix and the RSA cell, app@ed.test for Ed25519, app@plain.test (no key: unsigned) for \"none\""
echo "- end-to-end msgs/s = messages / (last message complete at the sink − start of smtp-source); accept msgs/s = messages / smtp-source's wall time; median of $rounds round(s) (range in brackets), the cells one after the other in each round; ratio = cell / Postfix"
[ "$drain" = 1 ] && echo "- drain: the same load injected with the sink down, then the sink started and Postfix flushed (\`postqueue -f\`) / aftersmtpd restarted; msgs/s = messages / (last message at the sink − the flush / the node's \"outbound ready\" log line); ratio = aftersmtpd / Postfix"
echo "- CPU µs/msg: user + system time of the MTA per message (aftersmtpd: its process, all threads; Postfix: the master and every child it ran: smtpd, cleanup, qmgr, smtp, trivial-rewrite, postlogd...), from the start of the injection until its queue was empty (drain: from the flush, or for aftersmtpd from its launch, start-up included); smtp-source and smtp-sink not counted"
echo "- msgs/session: messages per SMTP session at the sink (1 = a connection per message)"
echo "- verified per run: smtp-source exit 0; the sink counted exactly M more messages and its dump holds M messages for that run's recipient, with M distinct Message-IDs and one identical 10 KB body; signed cells: one DKIM-Signature per message with the cell's a= and d=, each verified by python3-dkim against the published key; other cells: unsigned; Postfix logged status=sent M times and its queue is empty; aftersmtpd logged M \"message stored\" (dkim=signed / no) and exactly M attempts delivered=1 deferred=0 bounced=0, and its mail queue tables are empty"
echo "- target (issue 5): aftersmtpd including DKIM signing >= Postfix's rate"
[ "$quick" = 1 ] && echo "- **--quick: a smoke run (few messages, one round): these figures and verdicts mean nothing**"
echo
echo "| MTA | DKIM | messages x rounds | end-to-end msgs/s | ratio | accept msgs/s | CPU µs/msg | msgs/session |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
report_rows
echo
echo "Every run:"
echo
echo '```'
printf '%s\n' "${raw[@]}"
echo '```'
if [ "$errors" -ne 0 ]; then
	echo
	echo "**$errors run(s) failed verification: see ERROR above.**"
	[ "$crashes" -eq 0 ] || echo "**aftersmtpd crashed $crashes time(s) and was restarted for the runs after the crash.**"
	exit 1
fi
