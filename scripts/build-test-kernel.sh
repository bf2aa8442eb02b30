#!/usr/bin/env bash
# build-test-kernel.sh [--version 6.1|6.12] [--key]
#
# Builds (once) a Linux kernel that skiff's QEMU guest tests boot:
# Debian's linux-source-VERSION (6.1 by default; 6.12 comes from
# Debian 12's security archive and has the cachefiles `restore` command),
# `make tinyconfig`, plus the fragment kernel-tests/kernel.config
# (cachefiles on-demand, EROFS over fscache, 9p, virtio, ext4, loop) and
# kernel-tests/kernel-VERSION.config (what only that version has).
# SKIFF_KERNEL_VERSION sets the default version. Prints the path of the
# bzImage on stdout; progress goes to stderr.
#
# The kernel is cached under ${SKIFF_KERNEL_CACHE:-/var/cache/skiff-test-kernel}
# in a directory named by a key: the SHA-256 of the fragments, the
# linux-source-VERSION package version and this script. A cached kernel is
# reused at once; a change of any of the three builds a new one. Safe to
# run twice at the same time (the second waits for the first and reuses
# its kernel). `--key` prints the key only.
#
# Installs the Debian packages it needs when they are missing (root).
set -euo pipefail

prog=build-test-kernel
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FRAGMENT=$ROOT/kernel-tests/kernel.config
SELF=$ROOT/scripts/build-test-kernel.sh
CACHE=${SKIFF_KERNEL_CACHE:-/var/cache/skiff-test-kernel}
VERSION=${SKIFF_KERNEL_VERSION:-6.1}
want_key=0
while [ $# -gt 0 ]; do
	case $1 in
	--version) [ $# -ge 2 ] || { echo "$0: --version needs a value" >&2; exit 2; }
		VERSION=$2; shift 2 ;;
	--version=*) VERSION=${1#--version=}; shift ;;
	--key) want_key=1; shift ;;
	*) echo "usage: $0 [--version 6.1|6.12] [--key]" >&2; exit 2 ;;
	esac
done
case $VERSION in
6.1 | 6.12) ;;
*) echo "$0: unsupported kernel version '$VERSION' (6.1 or 6.12)" >&2; exit 2 ;;
esac
VFRAGMENT=$ROOT/kernel-tests/kernel-$VERSION.config
SRC_PKG=linux-source-$VERSION
SRC_TARBALL=/usr/src/$SRC_PKG.tar.xz
PACKAGES=("$SRC_PKG" build-essential bc flex bison libelf-dev libssl-dev
	xz-utils perl)

say() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { say "error: $*"; exit 1; }

install_missing() {
	local p missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]}; run as root to install"
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

compute_key() {
	local ver
	ver=$(dpkg-query -W -f='${Version}' "$SRC_PKG" 2>/dev/null) ||
		die "$SRC_PKG is not installed"
	{
		printf '%s %s\n' "$SRC_PKG" "$ver"
		printf -- '--- fragment\n'
		cat "$FRAGMENT" "$VFRAGMENT"
		printf -- '--- script\n'
		cat "$SELF"
	} | sha256sum | cut -c1-64
}

# check_config FRAGMENT CONFIG: every `CONFIG_X=y` of the fragment is =y in
# CONFIG, every `# CONFIG_X is not set` is not =y/=m.
check_config() {
	local frag=$1 cfg=$2 sym bad=()
	while read -r sym; do
		grep -qx "CONFIG_$sym=y" "$cfg" || bad+=("CONFIG_$sym=y (got: $(grep -E "^(# )?CONFIG_${sym}[= ]" "$cfg" || echo absent))")
	done < <(sed -n 's/^CONFIG_\([A-Za-z0-9_]*\)=y$/\1/p' "$frag")
	while read -r sym; do
		grep -qE "^CONFIG_$sym=[ym]$" "$cfg" && bad+=("CONFIG_$sym must be unset (got: $(grep -E "^CONFIG_$sym=" "$cfg"))")
	done < <(sed -n 's/^# CONFIG_\([A-Za-z0-9_]*\) is not set$/\1/p' "$frag")
	if [ ${#bad[@]} -ne 0 ]; then
		say "the final .config does not have these fragment options (a dependency is off or the symbol does not exist in $VERSION):"
		printf '    %s\n' "${bad[@]}" >&2
		return 1
	fi
}

# run_logged LOG CMD...: runs CMD with its output in LOG, printing a
# progress line every 30 s so a CI log does not look stuck; returns CMD's
# status.
run_logged() {
	local log=$1 ticker st t0=$SECONDS
	shift
	(
		# (sleep's output is not the caller's pipe: it may outlive us)
		while sleep 30 >/dev/null 2>&1; do
			say "  ... $((SECONDS - t0)) s: $(tail -n 1 "$log" 2>/dev/null | cut -c1-100)"
		done
	) &
	ticker=$!
	st=0
	"$@" >>"$log" 2>&1 || st=$?
	kill "$ticker" 2>/dev/null
	wait "$ticker" 2>/dev/null || true
	return "$st"
}

[ -r "$FRAGMENT" ] || die "missing $FRAGMENT"
[ -r "$VFRAGMENT" ] || die "missing $VFRAGMENT"
if [ "$want_key" = 1 ]; then
	compute_key
	exit 0
fi

install_missing
KEY=$(compute_key)
OUT=$CACHE/$KEY
if [ -f "$OUT/bzImage" ]; then
	echo "$OUT/bzImage"
	exit 0
fi

mkdir -p "$CACHE" || die "cannot create $CACHE (set SKIFF_KERNEL_CACHE)"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
	say "another build holds $CACHE/.lock; waiting"
	flock 9
fi
# the holder of the lock may just have built it
if [ -f "$OUT/bzImage" ]; then
	echo "$OUT/bzImage"
	exit 0
fi

[ -r "$SRC_TARBALL" ] || die "missing $SRC_TARBALL (package $SRC_PKG)"
BUILD=$CACHE/build-$KEY
LOG=$CACHE/build-$KEY.log
rm -rf "$BUILD" "$CACHE/.tmp-$KEY"
: >"$LOG"
cleanup() {
	[ "${SKIFF_KERNEL_KEEP_BUILD:-0}" = 1 ] || rm -rf "$BUILD"
	rm -rf "$CACHE/.tmp-$KEY"
}
trap cleanup EXIT

t_start=$SECONDS
say "building test kernel $VERSION $KEY (log: $LOG)"
say "unpacking $SRC_TARBALL"
mkdir -p "$BUILD"
tar -xJf "$SRC_TARBALL" -C "$BUILD" --strip-components=1 ||
	die "cannot unpack $SRC_TARBALL"

cd "$BUILD"
say "configuring: tinyconfig + $(basename "$FRAGMENT") + $(basename "$VFRAGMENT")"
cat "$FRAGMENT" "$VFRAGMENT" >"$BUILD/skiff.config"
{
	make tinyconfig &&
		scripts/kconfig/merge_config.sh -m .config "$BUILD/skiff.config" &&
		make olddefconfig
} >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; die "configuration failed"; }
check_config "$BUILD/skiff.config" .config ||
	die "kernel configuration is incomplete: fix $FRAGMENT or $VFRAGMENT"

jobs=$(nproc)
say "make -j$jobs bzImage (a few minutes; a line every 30 s)"
if ! run_logged "$LOG" make -j"$jobs" bzImage; then
	tail -n 40 "$LOG" >&2
	die "kernel build failed (log: $LOG)"
fi
[ -f arch/x86/boot/bzImage ] || die "no arch/x86/boot/bzImage after the build"

TMP=$CACHE/.tmp-$KEY
mkdir -p "$TMP"
cp arch/x86/boot/bzImage "$TMP/bzImage"
cp .config "$TMP/config"
cp "$BUILD/skiff.config" "$TMP/kernel.config"
make -s kernelrelease >"$TMP/release" 2>/dev/null || true
sync "$TMP/bzImage" "$TMP/config"
mv -T "$TMP" "$OUT"
cd /
say "built $(cat "$OUT/release" 2>/dev/null) in $((SECONDS - t_start)) s"
echo "$OUT/bzImage"
