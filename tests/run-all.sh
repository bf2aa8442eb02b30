#!/usr/bin/env bash
# Runs every test of `make check` under one TAP harness (prove): C unit
# tests, the same built with ASan+UBSan, host integration tests (the
# daemon's suites also against skiffd built with ASan+UBSan), the
# bounded fuzzing runs, and the kernel tests in the QEMU guest.
# PROVE_OPTS=-v shows every line of every test.
set -euo pipefail
cd "$(dirname "$0")/.."

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

tests=()
for t in build/tests/test_* build-asan/tests/test_* tests/*.t tests/asan/*.t kernel-tests/*.t; do
	[ -x "$t" ] && tests+=("$t")
done
# shellcheck disable=SC2086
exec prove --exec '' ${PROVE_OPTS:-} "${tests[@]}"
