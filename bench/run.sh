#!/usr/bin/env bash
#
# run.sh — build AfterSMTP, run amp-bench-seal with --markdown, the node
# benchmark (run-node.sh: amp-bench-node against two real nodes), the
# SMTP benchmark (smtp-bench.sh: aftersmtpd next to Postfix) and the
# outbound one (outbound-bench.sh: both relaying to smtp-sink), and write
# bench/RESULTS.md: date, machine (nproc, CPU model), library versions, the
# exact command, and the benchmark's own Markdown (table, target verdict,
# fixed costs).  The file is replaced only when the run succeeds.
#
# Usage: bench/run.sh [amp-bench-seal options]     e.g. --time 1, --reps 7
# Environment:
#   BUILD_DIR  Meson build directory (default: <repo>/build)
#   RESULTS    output file (default: <repo>/bench/RESULTS.md); point it
#              elsewhere for --quick smoke runs so that real figures stay.
#
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD_DIR:-$root/build}
results=${RESULTS:-$here/RESULTS.md}
bin=$build/bench/amp-bench-seal

cd "$root"
meson compile -C "$build"

cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- |
	sed 's/^ *//')
buildtype=$(python3 - "$build" 2>/dev/null <<'EOF' || echo unknown
import json, sys
opts = json.load(open(sys.argv[1] + '/meson-info/intro-buildoptions.json'))
v = {o['name']: o['value'] for o in opts}
print(f"{v['buildtype']} (optimization {v['optimization']}, debug {v['debug']})")
EOF
)
rev=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)

tmp=$(mktemp "$results.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
	echo "# amp-bench-seal results"
	echo
	echo "Written by \`bench/run.sh\`; see \`bench/README.md\` for what the"
	echo "columns mean.  Re-run \`bench/run.sh\` to update this file."
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}; $(uname -srm)"
	echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- libsodium $(pkg-config --modversion libsodium 2>/dev/null ||
		echo '?'), zstd $(pkg-config --modversion libzstd 2>/dev/null ||
		echo '?') (pkg-config, build time)"
	echo "- build: $build, buildtype $buildtype; source $rev"
	echo "- command: \`bench/run.sh${*:+ $*}\`, which ran"
	echo "  \`${bin#"$root"/} --markdown${*:+ $*}\`"
	echo
} >"$tmp"

"$bin" --markdown "$@" | tee -a "$tmp"
echo | tee -a "$tmp"
# The node: deliveries per second over TLS and QUIC, local and relayed.
node_args=()
for a in "$@"; do [ "$a" = "--quick" ] && node_args=(--quick); done
"$here/run-node.sh" "${node_args[@]}" | tee -a "$tmp"
echo | tee -a "$tmp"
# SMTP: the inbound bridge next to Postfix under the same smtp-source load.
"$here/smtp-bench.sh" "${node_args[@]}" | tee -a "$tmp"
echo | tee -a "$tmp"
# Outbound: relaying to smtp-sink next to Postfix relaying the same load.
"$here/outbound-bench.sh" "${node_args[@]}" | tee -a "$tmp"
echo | tee -a "$tmp"
# IMAP: the local bridge's initial sync and FETCH next to Dovecot.
"$here/imap-bench.py" "${node_args[@]}" | tee -a "$tmp"
echo | tee -a "$tmp"
# log-bench.sh also files its section into a results file: a scratch one
RESULTS="$tmp.log" "$here/log-bench.sh" "${node_args[@]}" | tee -a "$tmp"
rm -f "$tmp.log"
{
	echo
	echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" \
		"(on $(nproc) CPUs; other work on the machine inflates the" \
		"spread and, through system-call costs, the ratios)."
} | tee -a "$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$results"
trap - EXIT
echo
echo "run.sh: wrote $results"
