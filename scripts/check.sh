#!/bin/bash
# check.sh — every test of the project, as CI runs it (`make check`):
#   1. source checks (banned functions)
#   2. -Wall -Wextra -Werror build; cmocka unit tests; pytest end-to-end
#      and interop tests against the real `amp` binary
#   3. the same unit and end-to-end tests under AddressSanitizer +
#      UndefinedBehaviorSanitizer (any finding fails)
#   4. libFuzzer targets: corpus replay, then FUZZ_SECONDS (default 20) of
#      fuzzing each
#   5. a benchmark smoke run (it must work; figures are not asserted here)
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
step() { echo; echo "=== check: $* ==="; }
ok() { passed=$((passed + 1)); }

step "bootstrap"
scripts/bootstrap.sh

step "source checks"
scripts/checksrc.sh && ok

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
meson test -C build --suite unit --print-errorlogs && ok

step "end-to-end, interop and install tests (pytest)"
AMP_BIN=$ROOT/build/src/cli/amp $PY -m pytest -q tests/e2e tests/interop tests/install && ok

step "ASan + UBSan build, unit and end-to-end tests"
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
meson compile -C build-asan
meson test -C build-asan --suite unit --print-errorlogs && ok
AMP_BIN=$ROOT/build-asan/src/cli/amp $PY -m pytest -q tests/e2e && ok

step "fuzz targets (clang, libFuzzer, ${FUZZ_SECONDS}s each)"
CC=clang setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-fuzz
tests/fuzz/run.sh build-fuzz "$FUZZ_SECONDS" && ok

step "benchmark smoke run"
build/bench/amp-bench-seal --quick >/dev/null && ok

echo
echo "check: $passed passed, $failed failed"
