# bench/lib.sh — helpers shared by the SMTP benchmarks (smtp-bench.sh,
# outbound-bench.sh).  Sourced, not run: it defines functions and sets
# nothing else.  The sourcing script defines die() (message, exit 1) and,
# for node_start, `ampd` (the daemon's path); Postfix's tools must be on
# PATH (/usr/sbin).
#
#   free_port                 a free TCP port on 127.0.0.1
#   wait_greeting PORT        until 127.0.0.1:PORT answers 220 (20 s)
#   pfx_init PD PORT          a private Postfix instance in PD: PD/etc
#                             (main.cf, master.cf), PD/spool, PD/data,
#                             log in PD/postfix.log; smtpd on
#                             127.0.0.1:PORT; no chroot; nothing that
#                             delivers: append the transport to
#                             PD/etc/main.cf and PD/etc/master.cf
#   pfx_start PD PORT         postfix start (with its checks), wait for the
#                             greeting;
#                             sets pfx_started=1 before starting
#   pfx_stop PD               postfix stop, wait until the master is gone
#   pfx_queue_files PD        files in the queue (maildrop, incoming,
#                             active, deferred, hold, corrupt)
#   pfx_wait_empty PD         until the queue is empty (at most 120 s)
#   pfx_cpu_ticks PD          CPU clock ticks (user + system) of the master,
#                             the children it reaped and its live children
#   proc_cpu_ticks PID        CPU clock ticks of one process, all threads
#   cpu_per_msg T0 T1 M       microseconds of CPU per message
#   node_start CONF LOG PORT  aftersmtpd CONF run, stderr appended to LOG;
#                             waits for a new "node ready" line and the
#                             SMTP greeting on PORT; sets node_pid
#   median, minmax            of the numbers on stdin (minmax prints
#                             " (lo-hi)" when there are several)
#   rate M SECONDS            messages per second, rounded
#   elapsed T0 T1             T1 - T0 seconds (EPOCHREALTIME values), %.3f
#   machine                   "N CPUs, CPU model"
#
# The Python snippets run with $PY when the sourcing script sets it
# (pyenv's python3 shim takes ~0.3 s to start), else python3.
# pfx_started and node_pid are set for the sourcing script; ampd is its.
# shellcheck shell=bash disable=SC2034,SC2154

free_port() {
	"${PY:-python3}" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_greeting() { # port: until a 220 greeting arrives
	"${PY:-python3}" - "$1" <<'EOF'
import socket, sys, time
for _ in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        ok = s.recv(512).startswith(b"220")
        s.sendall(b"QUIT\r\n"); s.close()
        if ok:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF
}

# ---------------------------------------------------------------- Postfix
pfx_init() { # pd port
	local pd=$1 port=$2
	mkdir -p "$pd/etc" "$pd/spool" "$pd/data"
	chown postfix "$pd/data"
	cat > "$pd/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pd/spool
data_directory = $pd/data
mail_owner = postfix
setgid_group = postdrop
myhostname = pfx.bench.test
mydomain = bench.test
myorigin = pfx.bench.test
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $pd/postfix.log
maillog_file_prefixes = /var
syslog_name = pfxbench
EOF
	# Debian's master.cf minus chroot (no /etc files copied into a jail)
	# and minus the services this configuration cannot use.
	cat > "$pd/etc/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

pfx_start() { # pd port
	local pd=$1 port=$2 out
	pfx_started=1
	# postfix(1) reports errors on a terminal only: give it one.  start
	# runs the checks of `postfix check` (postfix-script check-fatal and
	# check-warn) first: no separate check (it takes seconds).
	out=$(script -qec "postfix -c $pd/etc start" /dev/null 2>&1) ||
		die "postfix start failed: $out"
	wait_greeting "$port" ||
		die "Postfix does not answer on 127.0.0.1:$port: $(tail -5 "$pd/postfix.log")"
}

pfx_stop() { # pd
	local pd=$1 mp
	postfix -c "$pd/etc" stop >/dev/null 2>&1 || true
	# postfix stop signals the master; wait for it to be gone
	mp=$(tr -d ' ' < "$pd/spool/pid/master.pid" 2>/dev/null || true)
	for _ in $(seq 100); do
		if [ -z "$mp" ] || ! kill -0 "$mp" 2>/dev/null; then break; fi
		sleep 0.1
	done
}

pfx_queue_files() { # pd
	find "$1/spool/maildrop" "$1/spool/incoming" "$1/spool/active" \
		"$1/spool/deferred" "$1/spool/hold" "$1/spool/corrupt" \
		-type f 2>/dev/null | wc -l
}

pfx_wait_empty() { # pd: the queue of the previous run is gone (at most 120 s)
	for _ in $(seq 1200); do [ "$(pfx_queue_files "$1")" -eq 0 ] && return 0; sleep 0.1; done
	return 1
}

# CPU time (clock ticks, user + system).  Postfix is its master plus the
# children it has reaped (cutime/cstime) plus its live children, so the
# difference of two samples counts every process that ran in between
# exactly once.
pfx_cpu_ticks() { # pd
	"${PY:-python3}" - "$1/spool/pid/master.pid" <<'PY'
import os, sys
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()
master = open(sys.argv[1]).read().strip()
f = stat(master)
total = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            f = stat(p)
        except OSError:
            continue
        if f[1] == master:
            total += int(f[11]) + int(f[12])
print(total)
PY
}

proc_cpu_ticks() { # pid
	"${PY:-python3}" - "$1" <<'PY'
import sys
with open(f"/proc/{sys.argv[1]}/stat") as f:
    s = f.read().rsplit(")", 1)[1].split()
print(int(s[11]) + int(s[12]))
PY
}

cpu_per_msg() { # ticks0 ticks1 messages: microseconds per message
	awk -v a="$1" -v b="$2" -v m="$3" -v t="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.0f", (b - a) * 1e6 / t / m }'
}

# ------------------------------------------------------------- aftersmtpd
node_start() { # conf log smtp-port
	local conf=$1 log=$2 port=$3 n
	n=$(grep -c 'msg="node ready"' "$log" 2>/dev/null || true)
	"$ampd" -c "$conf" run 2>> "$log" &
	node_pid=$!
	for _ in $(seq 100); do
		[ "$(grep -c 'msg="node ready"' "$log")" -gt "${n:-0}" ] && break
		sleep 0.1
	done
	[ "$(grep -c 'msg="node ready"' "$log")" -gt "${n:-0}" ] ||
		die "node did not start: $(tail -5 "$log")"
	wait_greeting "$port" || die "aftersmtpd does not answer on 127.0.0.1:$port"
}

# ------------------------------------------------------------- statistics
# (one awk each: a fork costs ~20 ms on a loaded machine)
median() { awk '{ for (i = 1; i <= NF; i++) v[++n] = $i + 0 } END {
	if (n == 0) { print "-"; exit }
	for (i = 2; i <= n; i++) {
		x = v[i]
		for (j = i - 1; j > 0 && v[j] > x; j--) v[j + 1] = v[j]
		v[j + 1] = x
	}
	if (n % 2) printf "%.0f", v[(n + 1) / 2]; else printf "%.0f", (v[n / 2] + v[n / 2 + 1]) / 2 }'; }
minmax() { awk '{ for (i = 1; i <= NF; i++) { x = $i + 0
		if (++n == 1 || x < lo) lo = x
		if (n == 1 || x > hi) hi = x } }
	END { if (n > 1) printf " (%d-%d)", lo, hi }'; }
rate() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.0f", m / s }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
machine() {
	local cpu
	cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
	echo "$(nproc) CPUs, ${cpu:-unknown CPU}"
}
