#!/usr/bin/env bash
# The demo behind `make demo`: turn a real directory of this machine into
# a skiff image, look inside it, verify it, and mount it with the kernel's
# EROFS. Leaves nothing behind.
#
# Until skiffd lands, the mount uses the image's exported cache files
# (`skiff export-cache`) on loop devices, that is, the whole image is
# decompressed first; with skiffd the same image mounts lazily.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SKIFF=$ROOT/build/skiff
SRC=${1:-/usr/share/doc}
W=$(mktemp -d /var/tmp/skiff-demo.XXXXXX)
MNT=$W/mnt
loops=()

cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	rm -rf "$W"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "build an image of $SRC"
"$SKIFF" build "$SRC" "$W/store:demo"

step "what is inside"
"$SKIFF" inspect "$W/store:demo"
"$SKIFF" ls "$W/store:demo" / | head -n 8 || true

step "verify every digest and the structure"
"$SKIFF" check "$W/store:demo"

if [ "$(id -u)" -ne 0 ] || ! { modprobe erofs 2>/dev/null; grep -qw erofs /proc/filesystems; }; then
	echo "(not root or no EROFS in this kernel: skipping the kernel mount)"
	exit 0
fi

step "mount it with the kernel's EROFS"
opts=ro
for id in $("$SKIFF" export-cache "$W/store:demo" "$W/cache"); do
	l=$(losetup -f --show -r "$W/cache/$id")
	loops+=("$l")
	opts="$opts,device=$l"
done
mkdir -p "$MNT"
mount -t erofs -o "$opts" "$W/cache/bootstrap" "$MNT"
findmnt -no SOURCE,FSTYPE,OPTIONS "$MNT"
n=$(find "$MNT" -type f | wc -l)
echo "$n files visible"
f=$(cd "$MNT" && find . -type f -name copyright -print -quit)
if [ -n "$f" ]; then
	echo "first lines of $f:"
	head -n 3 "$MNT/$f"
	cmp "$MNT/$f" "$SRC/$f" && echo "(identical to $SRC/$f)"
fi
step "done: unmounting and cleaning up"
