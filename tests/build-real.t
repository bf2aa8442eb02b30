#!/usr/bin/env bash
# Real trees from this machine, built with several chunk sizes, with and
# without compression: mounted by the host kernel, equal to the source.
. "$(dirname "$0")/lib.sh"
need_erofs

variant() {
	local name=$1 src=$2 img=$T/img-$1 mnt=$T/mnt-$1
	shift 2
	if [ ! -d "$src" ]; then
		t_skip "$name: $src is not on this machine"
		return
	fi
	t_ok "$name: skiff build $* $src" "$SKIFF" build -q "$@" "$src" "$img" || return
	t_ok "$name: skiff check" "$SKIFF" check "$img"
	t_ok "$name: host kernel mounts it" mount_image "$img" "$mnt" || return
	t_ok "$name: mounted tree equals $src" "$TREECMP" "$src" "$mnt"
	umount_image "$mnt"
	rm -rf "$img" "$MOUNT_EXPORT"
}

variant share-1m /usr/share
variant include-4k-none /usr/include --chunk-size 4K --compress none
py=$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | head -n1)
variant python-64k "${py:-/usr/lib/python3}" --chunk-size 64K -l 6
variant bin-16m-none /usr/bin --chunk-size 16M --compress none

done_testing
