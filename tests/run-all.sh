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

# The guest kernels (6.1, 6.12) take 8-12 minutes each to build the first
# time: they build behind the unit and host tests, at low priority, and
# the kernel tests, which come last, wait for them on the cache's lock.
if [ "${SKIFF_SKIP_KERNEL_TESTS:-0}" != 1 ] && [ "$(id -u)" = 0 ]; then
	klog=${TMPDIR:-/tmp}/skiff-kernel-build.log
	echo "# building the guest kernels in the background (log: $klog)"
	(for v in 6.1 6.12; do
		nice -n 10 scripts/build-test-kernel.sh --version "$v" || true
	done) >"$klog" 2>&1 </dev/null &
fi

tests=()
for t in build/tests/test_* build-asan/tests/test_* tests/*.t tests/asan/*.t kernel-tests/*.t; do
	[ -x "$t" ] && tests+=("$t")
done
# shellcheck disable=SC2086
# --timer: each file's time, to keep the whole under CI's budget
prove --timer --exec '' ${PROVE_OPTS:-} "${tests[@]}"
