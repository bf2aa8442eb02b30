#!/usr/bin/env bash
# tap-guest.sh --kernel VERSION [--host SCRIPT] GUEST_SCRIPT [ARGS...]:
# the host half of a guest test.
#
# A `kernel-tests/NAME-VERSION.t` is one line, `exec "$(dirname "$0")/tap-guest.sh"
# --kernel VERSION guest-NAME.sh`, one per guest kernel (6.1, 6.12): this skips with a printed reason when the guest cannot
# run here (not root, no QEMU or busybox-static, skiff not built), gets the
# test kernel of that version (scripts/build-test-kernel.sh: built once,
# then cached),
# runs GUEST_SCRIPT (relative to kernel-tests/) in the QEMU guest and
# relays its TAP as its own. The plan is printed here, at the end, from
# the results seen, so a guest that dies half way (panic, hang, timeout)
# gives a correct plan and a `not ok` with the tail of its console.
#
# Host variables passed to the guest: SKIFF, SKIFFD, TREECMP and every
# SKIFF_* one (but SKIFF_KERNEL* and SKIFF_GUEST*). SKIFF_GUEST_TIMEOUT
# bounds the guest (seconds, default 900); SKIFF_SKIP_KERNEL_TESTS=1
# skips.
#
# --host SCRIPT (relative to kernel-tests/): what the guest needs made on
# this machine first (the guest cannot run the host's servers' setup, and
# is several times slower). `SCRIPT DIR` runs after the skips, before the
# boot, with SKIFF and TREECMP set; DIR is a fresh directory the guest
# sees at the same path (read-only, over 9p), named to the guest script
# by SKIFF_HOST_DIR, and removed afterwards. A failing SCRIPT is the
# test's one `not ok`, with the tail of its output.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SKIFF=${SKIFF:-$ROOT/build/skiff}
TREECMP=${TREECMP:-$ROOT/build/treecmp}

skip_all() { echo "1..0 # SKIP $*"; exit 0; }

kver=6.1
if [ "${1:-}" = --kernel ]; then
	kver=${2:?--kernel wants a version}
	shift 2
fi
host=''
if [ "${1:-}" = --host ]; then
	host=${2:?--host wants a script}
	shift 2
	[[ $host == /* ]] || host=$HERE/$host
fi
[ $# -ge 1 ] || { echo "usage: $0 --kernel VERSION [--host SCRIPT] GUEST_SCRIPT [ARGS...]" >&2; exit 2; }
guest=$1
shift
[[ $guest == /* ]] || guest=$HERE/$guest
[ -r "$guest" ] || { echo "1..1"; echo "not ok 1 - no guest script $guest"; exit 1; }
[ -z "$host" ] || [ -x "$host" ] || { echo "1..1"; echo "not ok 1 - no host script $host"; exit 1; }

[ "${SKIFF_SKIP_KERNEL_TESTS:-0}" = 1 ] && skip_all "SKIFF_SKIP_KERNEL_TESTS=1"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (QEMU guest, kernel cache in /var/cache)"
for tool in qemu-system-x86_64 cpio gzip mkfs.ext4; do
	command -v "$tool" >/dev/null ||
		skip_all "$tool missing (Debian packages qemu-system-x86 cpio gzip e2fsprogs)"
done
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
	skip_all "no static /bin/busybox (Debian package busybox-static)"
fi
if [ ! -x "$SKIFF" ] || [ ! -x "$TREECMP" ]; then
	skip_all "build skiff and treecmp first (make)"
fi

W=$(mktemp -d "${TMPDIR:-/var/tmp}/skiff-tap-guest.XXXXXX")
trap 'rm -rf "$W"' EXIT

# The kernel: built once (5-10 minutes), then cached. Its progress lines
# go to stderr as they come, so a CI log shows it is not stuck.
if ! kernel=$("$ROOT/scripts/build-test-kernel.sh" --version "$kver" \
	2> >(tee "$W/kernel.log" >&2)); then
	echo "1..1"
	echo "not ok 1 - build the $kver test kernel"
	sleep 1 # let tee finish the log
	tail -n 30 "$W/kernel.log" | sed 's/^/#   /'
	exit 1
fi
echo "# kernel: $kernel"

envs=(--env "SKIFF=$SKIFF" --env "TREECMP=$TREECMP" --env "SKIFF_GUEST_KERNEL=$kver")
while IFS='=' read -r name _; do
	case $name in
	SKIFF_KERNEL* | SKIFF_GUEST* | SKIFF | TREECMP) ;;
	SKIFFD | SKIFF_*) envs+=(--env "$name=${!name}") ;;
	esac
done < <(env)

# the host half: its directory under $W, which the guest would see
# covered by its tmpfs on /var/tmp (or /tmp) without --keep
keep=()
if [ -n "$host" ]; then
	mkdir "$W/host"
	t0=$SECONDS
	if ! SKIFF=$SKIFF TREECMP=$TREECMP "$host" "$W/host" >"$W/host.log" 2>&1; then
		echo "1..1"
		echo "not ok 1 - host half $(basename "$host")"
		tail -n 30 "$W/host.log" | sed 's/^/#   /'
		exit 1
	fi
	echo "# host half $(basename "$host"): $((SECONDS - t0)) s"
	hdir=$(realpath "$W/host")
	keep=(--keep "$hdir")
	envs+=(--env "SKIFF_HOST_DIR=$hdir")
fi

t0=$SECONDS
n=0 plan='' failed=0
while IFS= read -r line; do
	printf '%s\n' "$line" >>"$W/guest.log"
	case $line in
	"1..0 # SKIP"*) [ "$n" -eq 0 ] && { echo "$line"; exit 0; } ;;
	"1.."*) plan=${line#1..}; plan=${plan%% *} ;;
	"ok "* | "not ok "*)
		n=$((n + 1))
		[[ $line == "not ok "* ]] && failed=$((failed + 1))
		echo "$line" ;;
	"#"*) echo "$line" ;;
	"run-guest exit "*) ;;
	*) echo "# guest: $line" ;;
	esac
done < <(
	"$HERE/run-guest.sh" --timeout "${SKIFF_GUEST_TIMEOUT:-900}" --kernel "$kernel" \
		"${envs[@]}" ${keep[@]+"${keep[@]}"} "$guest" "$@" 2>&1
	echo "run-guest exit $?"
)
echo "# guest run (boot included): $((SECONDS - t0)) s"

st=$(sed -n 's/^run-guest exit \([0-9]*\)$/\1/p' "$W/guest.log" | tail -n 1)
st=${st:-1}
complete=1
[ -n "$plan" ] && [ "$plan" -eq "$n" ] || complete=0
[ "$st" -ne 0 ] && [ "$failed" -eq 0 ] && complete=0
if [ "$complete" -eq 0 ]; then
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - the guest ran $(basename "$guest") to its end (run-guest exit $st, plan ${plan:-none})"
	tail -n 40 "$W/guest.log" | sed 's/^/#   /'
fi
echo "1..$n"
[ "$failed" -eq 0 ]
