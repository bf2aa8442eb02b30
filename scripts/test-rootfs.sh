#!/usr/bin/env bash
# Prints the path of a Debian 12 minbase root filesystem for tests and
# benchmarks, making it on first use with debootstrap from Debian's
# archive. The result is cached outside the repository under
# /var/cache/skiff-test-rootfs/<key>, the key being a hash of the
# debootstrap command, so a repeated run (and every test after the first)
# skips it; a half-made tree is never left under that name.
set -euo pipefail

SUITE=${SKIFF_ROOTFS_SUITE:-bookworm}
MIRROR=${SKIFF_ROOTFS_MIRROR:-http://deb.debian.org/debian}
CACHE=${SKIFF_ROOTFS_CACHE:-/var/cache/skiff-test-rootfs}
# extra packages, comma-separated (e.g. python3 for the prefetch bench)
INCLUDE=${SKIFF_ROOTFS_INCLUDE:-}

cmd=(debootstrap --variant=minbase ${INCLUDE:+--include=$INCLUDE} "$SUITE" ROOT "$MIRROR")
key=$(printf '%s\n' "${cmd[*]}" | sha256sum | cut -c1-16)
dir=$CACHE/$key

if [ -f "$dir/.done" ]; then
	echo "$dir/root"
	exit 0
fi
command -v debootstrap >/dev/null || { echo "test-rootfs.sh: debootstrap is not installed" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "test-rootfs.sh: debootstrap needs root" >&2; exit 1; }
mkdir -p "$CACHE"
# one maker at a time; a second caller waits and then finds it done
exec 9>"$CACHE/.lock"
flock 9
if [ ! -f "$dir/.done" ]; then
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "test-rootfs.sh: ${cmd[*]/ROOT/$dir/root} (once, about a minute)" >&2
	"${cmd[@]/ROOT/$dir/root}" >"$dir/debootstrap.log" 2>&1 ||
		{ echo "test-rootfs.sh: debootstrap failed, see $dir/debootstrap.log" >&2; exit 1; }
	printf '%s\n' "${cmd[*]}" >"$dir/command"
	touch "$dir/.done"
fi
echo "$dir/root"
