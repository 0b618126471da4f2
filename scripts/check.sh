#!/bin/bash
# check.sh — every test of the project, as CI runs it (`make check`):
#   1. source checks (banned functions)
#   2. -Wall -Wextra -Werror build; cmocka unit tests; pytest end-to-end
#      and interop tests against the real `amp` binary
#   3. the same unit and end-to-end tests under AddressSanitizer +
#      UndefinedBehaviorSanitizer (any finding fails)
#   4. libFuzzer targets: corpus replay, then FUZZ_SECONDS (default 20) of
#      fuzzing each
#   5. a benchmark smoke run (it must work; figures are not asserted here):
#      sealing, the node over TLS/QUIC, SMTP next to a private Postfix,
#      outbound relaying to smtp-sink next to Postfix
# Environment: FUZZ_SECONDS, JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
PY=/usr/bin/python3
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

passed=0
failed=0
failures=""
step() { echo; echo "=== check: $* ==="; }
# Run a test command and count it; `set -e` does not stop at a command
# whose status is tested, so every test goes through here.
t() {
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures="$failures
  $*"
	fi
}

step "bootstrap"
scripts/bootstrap.sh

step "source checks"
t scripts/checksrc.sh

setup() { # dir, args...
	local dir=$1; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@"
	else
		meson setup --reconfigure "$dir" "$@" >/dev/null
	fi
}

step "build (-Werror) and unit tests"
setup build
meson compile -C build
t meson test -C build --suite unit --print-errorlogs

step "end-to-end, interop and install tests (pytest)"
t env AMP_BIN="$ROOT/build/src/cli/amp" $PY -m pytest -q tests/e2e tests/interop tests/install

step "ASan + UBSan build, unit and end-to-end tests"
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
meson compile -C build-asan
t meson test -C build-asan --suite unit --print-errorlogs
t env AMP_BIN="$ROOT/build-asan/src/cli/amp" $PY -m pytest -q tests/e2e

step "fuzz targets (clang, libFuzzer, ${FUZZ_SECONDS}s each)"
CC=clang setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-fuzz
t tests/fuzz/run.sh build-fuzz "$FUZZ_SECONDS"

step "benchmark smoke run"
t build/bench/amp-bench-seal --quick
t build/bench/amp-bench-log --quick
t bench/run-node.sh --quick
t bench/smtp-bench.sh --quick
t bench/outbound-bench.sh --quick
t bench/imap-bench.py --quick

echo
if [ "$failed" -ne 0 ]; then
	echo "check: failed steps:$failures"
fi
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
