#!/usr/bin/env bash
#
# run-node.sh — the node benchmark: start two real nodes (alpha.test and
# beta.test, 127.0.0.1 only, data on this machine's disk so acks wait for
# real fsyncs), then run amp-bench-node for each transport with 1 and 32
# clients, locally delivered and relayed, and measure memory per idle
# connection (node RSS before and after N idle connections).  Prints a
# Markdown section on stdout (bench/run.sh puts it into RESULTS.md).
#
# Usage: bench/run-node.sh [--quick]
# Environment: BUILD_DIR (default <repo>/build), TRANSPORTS ("tls quic").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD_DIR:-$root/build}
ampd=$build/src/daemon/aftersmtpd
bench=$build/bench/amp-bench-node
transports=${TRANSPORTS:-tls quic}
messages=10000
idle=1000
if [ "${1:-}" = "--quick" ]; then
	messages=300
	idle=50
fi

dir=$(mktemp -d /var/tmp/amp-bench-node.XXXXXX)
chmod 755 "$dir"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); break
    except OSError: pass
    finally: u.close(); t.close()
print(p)'
}

start_node() { # name port
	local name=$1 port=$2
	mkdir -p "$dir/$name"
	cat > "$dir/$name/aftersmtpd.conf" <<EOF
domains = $name.test
data_dir = $dir/$name/data
port = $port
pow_bits = 8
rate_per_ip = 10000000
rate_per_identity = 10000000
max_connections_per_ip = 100000
max_connections = 100000
transport_map = $dir/$name/map
relay_retry_min = 1s
log_level = notice
EOF
	[ "$(id -u)" -eq 0 ] && echo "user = nobody" >> "$dir/$name/aftersmtpd.conf"
	: > "$dir/$name/map"
	"$ampd" -c "$dir/$name/aftersmtpd.conf" init >/dev/null
}

pa=$(free_port); pb=$(free_port)
start_node alpha "$pa"
start_node beta "$pb"
key() { "$ampd" -c "$dir/$1/aftersmtpd.conf" show-node | sed -n 's/.*p=\([^;]*\);.*/\1/p'; }
echo "beta.test 127.0.0.1:$pb tls key=$(key beta)" > "$dir/alpha/map"
echo "alpha.test 127.0.0.1:$pa tls key=$(key alpha)" > "$dir/beta/map"
for n in alpha beta; do
	"$ampd" -c "$dir/$n/aftersmtpd.conf" run 2> "$dir/$n/log" &
	pids+=($!)
done
for n in alpha beta; do
	for _ in $(seq 100); do grep -q 'node ready' "$dir/$n/log" && break; sleep 0.1; done
done
alpha_pid=${pids[0]}

rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

echo "### amp-bench-node"
echo
echo "- nodes: alpha.test and beta.test on this machine, SQLite on $(df -T "$dir" | awk 'NR==2{print $2}') ($dir), synchronous=FULL: every accepted delivery is fsync'd before its answer; the benchmark client runs on the same $(nproc) CPUs"
echo "- messages: $messages distinct 10 KB envelopes per run, sealed before the clock starts; p50/p99: latency of one DeliverMessage round trip"
echo "- relayed: accepted by alpha (durably queued), then relayed to beta; the end-to-end line is until beta holds every message"
echo "- crypto limit: what one core does per delivery with bare libsodium (BLAKE2b of the body, one Ed25519 verify, one XChaCha20-Poly1305 seal at rest)"
echo
echo '```'
for t in $transports; do
	for c in 1 32; do
		"$bench" --node "127.0.0.1:$pa" --domain alpha.test --transport "$t" \
			--clients "$c" --messages "$messages" | grep -v crypto-limit
		"$bench" --node "127.0.0.1:$pa" --domain alpha.test --transport "$t" \
			--rcpt-node "127.0.0.1:$pb" --rcpt-domain beta.test \
			--clients "$c" --messages "$messages" | grep -v crypto-limit
	done
done
"$bench" --node "127.0.0.1:$pa" --domain alpha.test --clients 1 --messages 200 |
	grep crypto-limit
for t in $transports; do
	before=$(rss_kb "$alpha_pid")
	"$bench" --node "127.0.0.1:$pa" --transport "$t" --idle "$idle" --hold 3 > "$dir/idle.out" &
	bp=$!
	for _ in $(seq 600); do grep -q idle_connections "$dir/idle.out" && break; sleep 0.1; done
	sleep 1
	during=$(rss_kb "$alpha_pid")
	wait "$bp"
	cat "$dir/idle.out"
	echo "idle transport=$t connections=$idle node_rss_before_kb=$before node_rss_with_idle_kb=$during per_connection_bytes=$(( (during - before) * 1024 / idle ))"
done
echo '```'
