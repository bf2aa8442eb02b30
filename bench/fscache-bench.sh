#!/usr/bin/env bash
# skiff fscache read benchmark: boots the Linux 6.1 QEMU/TCG test guest
# (kernel-tests/run-guest.sh) and runs kernel-tests/guest-bench-fscache.sh
# in it, which reads one image cold and warm through skiffd's cachefiles
# frontend and through loop-mounted exported cache files (the kernel's own
# speed), and prints a table plus the goals (warm fscache >= 0.9 of loop,
# cold fscache >= 0.5 of loop with the local store).
#
# The image is built here (faster than in the guest) from a tree of real
# files, into a directory the guest sees through its read-only view of
# this machine's root; the guest copies it to its ext4 disk.
#
# It reports; it does not assert: exit 0 whether or not the goals are met,
# non-zero only when something fails (no kernel, a failed build, mount or
# read, a guest that dies or times out).
#
# Environment:
#   SKIFF_BENCH_TREE     tree to build the image from (default /usr/share/doc,
#                        ~120 MB in ~5000 files)
#   SKIFF_BENCH_RUNS     runs per mode, median taken (default 3)
#   SKIFF_BENCH_TRACE    0: skip the untimed strace pass (READ sizes)
#   SKIFF_BENCH_PERF     0: skip the untimed perf pass (CPU profile)
#   SKIFF_BENCH_LOOP_DIO 0: skip the loop-dio row (losetup --direct-io=on)
#   SKIFF_BENCH_MERGE_LIMITS  e.g. "1M 16M": one extra cold run per skiffd
#                        --merge-limit (default none)
#   SKIFF_BENCH_WORK     host scratch directory, visible in the guest: not
#                        under /tmp, /run, /var/tmp, /mnt or /var/cache/skiff
#                        (default /var/cache/skiff-bench-fscache); emptied
#                        at exit
#   SKIFF_GUEST_TIMEOUT  seconds for the whole guest run (default 1800)
#   SKIFF, SKIFFD        binaries (default build/skiff, build/skiffd)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

SKIFF=${SKIFF:-$repo/build/skiff}
SKIFFD=${SKIFFD:-$repo/build/skiffd}
TREE=${SKIFF_BENCH_TREE:-/usr/share/doc}
RUNS=${SKIFF_BENCH_RUNS:-3}
WORKBASE=${SKIFF_BENCH_WORK:-/var/cache/skiff-bench-fscache}
TIMEOUT=${SKIFF_GUEST_TIMEOUT:-1800}

die() { echo "fscache-bench: $*" >&2; exit 1; }
note() { echo "fscache-bench: $*" >&2; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "SKIFF_BENCH_RUNS must be a positive integer"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "SKIFF_GUEST_TIMEOUT must be seconds"
[ -x "$SKIFF" ] && [ -x "$SKIFFD" ] || die "no $SKIFF or $SKIFFD: run 'make' first"
[ -d "$TREE" ] || die "no tree $TREE (set SKIFF_BENCH_TREE)"
case $(realpath -m "$WORKBASE")/ in
/tmp/* | /run/* | /var/tmp/* | /mnt/* | /var/cache/skiff/*)
	die "SKIFF_BENCH_WORK=$WORKBASE is hidden in the guest (tmpfs or its ext4 disk)" ;;
esac
for t in qemu-system-x86_64 cpio gzip mkfs.ext4; do
	command -v "$t" >/dev/null ||
		die "$t missing (Debian packages qemu-system-x86 cpio gzip e2fsprogs)"
done

# the kernel: built once (several minutes), then cached
note "test kernel: scripts/build-test-kernel.sh"
kernel=$("$repo/scripts/build-test-kernel.sh") || die "no test kernel"

mkdir -p "$WORKBASE"
WORK=$(mktemp -d "$WORKBASE/run.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# snapshots: a rebuild during the run changes nothing
cp "$SKIFF" "$WORK/skiff"
cp "$SKIFFD" "$WORK/skiffd"
SKIFF_ID="$(sha256sum "$SKIFF" | cut -c1-12), built $(date -u -r "$SKIFF" +'%F %TZ')"
SKIFFD_ID="$(sha256sum "$SKIFFD" | cut -c1-12), built $(date -u -r "$SKIFFD" +'%F %TZ')"

note "building the image from $TREE (default options: 1 MiB chunks, zstd)"
t0=$SECONDS
"$WORK/skiff" build -q "$TREE" "$WORK/store:bench" || die "skiff build $TREE failed"
note "  built in $((SECONDS - t0)) s"
sync

echo "skiff fscache benchmark"
echo "  host: $(nproc) CPUs, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
echo "  guest kernel: $kernel"
echo "  skiff: $SKIFF ($SKIFF_ID); skiffd: $SKIFFD ($SKIFFD_ID)"
echo "  tree: $TREE"

envs=(--env "SKIFF=$WORK/skiff" --env "SKIFFD=$WORK/skiffd"
	--env "SKIFF_BENCH_STORE=$WORK/store:bench" --env "SKIFF_BENCH_RUNS=$RUNS"
	--env "SKIFF_BENCH_TREE=$TREE")
for v in SKIFF_BENCH_TRACE SKIFF_BENCH_PERF SKIFF_BENCH_LOOP_DIO SKIFF_BENCH_MERGE_LIMITS; do
	[ -n "${!v:-}" ] && envs+=(--env "$v=${!v}")
done

# host CPU seconds: all CPUs busy, and this shell's waited-for children
# (QEMU and its helpers): the difference is other load on the machine
HZ=$(getconf CLK_TCK)
busy_cpu() { awk -v hz="$HZ" '$1 == "cpu" { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit }' /proc/stat; }
child_cpu() { awk -v hz="$HZ" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($14 + $15) / hz }' /proc/$$/stat; }

note "booting the guest (timeout $TIMEOUT s); progress lines follow"
t0=$SECONDS
b0=$(busy_cpu) c0=$(child_cpu)
st=0
# the cache disk holds the store, the exported cache files and one
# cachefiles cache at a time: about 3 times the tree; sparse anyway
"$repo/kernel-tests/run-guest.sh" --timeout "$TIMEOUT" --disk-size 4G \
	--kernel "$kernel" "${envs[@]}" "$repo/kernel-tests/guest-bench-fscache.sh" || st=$?
b1=$(busy_cpu) c1=$(child_cpu)
note "guest run, boot included: $((SECONDS - t0)) s"
awk -v b="$(awk -v a="$b0" -v z="$b1" 'BEGIN { print z - a }')" \
    -v c="$(awk -v a="$c0" -v z="$c1" 'BEGIN { print z - a }')" \
    -v w="$((SECONDS - t0))" -v n="$(nproc)" 'BEGIN {
	if (w <= 0) w = 1
	x = (b - c) / (w * n); if (x < 0) x = 0
	busy = ""
	if (x > 0.10) busy = "; the guest competed with it: its times are noisy"
	printf("host: other load during the guest run %.0f%% of %d CPUs (QEMU itself %.0f%%)%s\n",
		100 * x, n, 100 * c / (w * n), busy)
}'
[ "$st" -eq 0 ] || die "the guest benchmark failed (exit $st)"
exit 0
