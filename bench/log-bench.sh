#!/usr/bin/env bash
#
# log-bench.sh — build amp-bench-log, run it with --markdown and put its
# tables, under a header (date, machine, load, source revision, build,
# command), into bench/RESULTS.md as the section "## Transparency log
# (issue 8)": an existing section of that name is replaced (up to the next
# "## " heading), else the section is appended.  The file is changed only
# when the run succeeds.  With --quick the output goes to stdout only.
#
# Usage: bench/log-bench.sh [amp-bench-log options]   e.g. --quick, --rounds 7
# Environment:
#   BUILD_DIR  Meson build directory (default: <repo>/build)
#   RESULTS    output file (default: <repo>/bench/RESULTS.md)
#
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD_DIR:-$root/build}
results=${RESULTS:-$here/RESULTS.md}
bin=$build/bench/amp-bench-log
title="## Transparency log (issue 8)"
PY=${PY:-/usr/bin/python3}

quick=0
for a in "$@"; do [ "$a" = "--quick" ] && quick=1; done

# The revision when the run starts (others may commit during it).
rev=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
meson compile -C "$build" bench/amp-bench-log >/dev/null

cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- |
	sed 's/^ *//')
buildtype=$("$PY" - "$build" 2>/dev/null <<'EOF' || echo unknown
import json, sys
opts = json.load(open(sys.argv[1] + '/meson-info/intro-buildoptions.json'))
v = {o['name']: o['value'] for o in opts}
print(f"{v['buildtype']} (optimization {v['optimization']}, debug {v['debug']})")
EOF
)
fs=$(findmnt -n -o FSTYPE -T /var/tmp 2>/dev/null || echo '?')

section=$(mktemp)
trap 'rm -f "$section" "$section.new"' EXIT
load0=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
t0=$(date +%s)
"$bin" --markdown "$@" >"$section.new"
t1=$(date +%s)
{
	echo "$title"
	echo
	echo "Written by \`bench/log-bench.sh\`; see bench/README.md, \"Transparency"
	echo "log\", for what is measured and why these baselines."
	echo
	echo "- date: $start ($((t1 - t0)) s)"
	echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}; $(uname -srm);" \
		"database on $fs (/var/tmp), SQLite $(pkg-config --modversion sqlite3 2>/dev/null || echo '?')" \
		"WAL synchronous=FULL"
	echo "- load average at start: $load0; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- build: $build, buildtype $buildtype; source $rev"
	echo "- command: \`bench/log-bench.sh${*:+ $*}\`, which ran" \
		"\`${bin#"$root"/} --markdown${*:+ $*}\`"
	echo
	cat "$section.new"
} >"$section"

cat "$section"
if [ "$quick" = 1 ]; then
	exit 0
fi
# Replace the section (title to the next "## " heading) or append it.
"$PY" - "$results" "$section" "$title" <<'EOF'
import sys
path, sec, title = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read() if __import__('os').path.exists(path) else ""
new = open(sec).read().rstrip("\n") + "\n"
lines = text.split("\n")
try:
    start = lines.index(title)
except ValueError:
    start = None
if start is None:
    out = text.rstrip("\n") + "\n\n" + new
else:
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith("## ")), len(lines))
    rest = "\n".join(lines[end:])
    out = "\n".join(lines[:start]) + "\n" + new + ("\n" + rest if rest else "")
tmp = path + ".tmp"
open(tmp, "w").write(out)
__import__('os').replace(tmp, path)
EOF
echo "log-bench: section written to $results"
