#!/usr/bin/env bash
# The edge-case tree (every kind of inode a container root filesystem has)
# built with several options: fsck.erofs accepts each image, the host
# kernel mounts it, and every byte and attribute equals the source tree.
. "$(dirname "$0")/lib.sh"
need_erofs

SRC=$T/src
t_ok "generate the edge-case tree" "$GEN_TREE" "$SRC" || done_testing

check_variant() {
	local name=$1 img=$T/img-$1 exp mnt=$T/mnt-$1 ids id devs=()
	shift
	t_ok "$name: skiff build $*" "$SKIFF" build -q "$@" "$SRC" "$img" || return
	t_ok "$name: skiff check" "$SKIFF" check "$img"
	exp=$T/exp-$name
	ids=$("$SKIFF" export-cache "$img" "$exp")
	for id in $ids; do devs+=("--device=$exp/$id"); done
	t_ok "$name: fsck.erofs accepts the image" fsck.erofs "${devs[@]}" "$exp/bootstrap"
	t_ok "$name: fsck.erofs decodes every file" \
		fsck.erofs "${devs[@]}" --extract="$T/fsck-$name" "$exp/bootstrap"
	rm -rf "$T/fsck-$name"
	t_ok "$name: host kernel mounts it" mount_image "$img" "$mnt" || return
	t_ok "$name: mounted tree equals the source" "$TREECMP" "$SRC" "$mnt"
	umount_image "$mnt"
	rm -rf "$exp" "$MOUNT_EXPORT"
}

check_variant default
check_variant 4k-none --chunk-size 4K --compress none
check_variant 64m-l19 --chunk-size 64M -l 19

# The comparison must be able to fail: damage one cache-file byte of a
# file's data and expect a difference.
img=$T/img-default
exp=$T/exp-bad
ids=$("$SKIFF" export-cache "$img" "$exp")
id=${ids%%$'\n'*}
off=$(( $(stat -c %s "$exp/$id") / 2 ))
printf '\x5a' | dd of="$exp/$id" bs=1 seek="$off" conv=notrunc status=none
loop=$(losetup -f --show -r "$exp/$id"); _t_loops+=("$loop")
mkdir -p "$T/mnt-bad"
mount -t erofs -o "ro,device=$loop" "$exp/bootstrap" "$T/mnt-bad" && _t_mounts+=("$T/mnt-bad")
t_fails "treecmp notices one changed byte in the mounted data" "$TREECMP" -q "$SRC" "$T/mnt-bad"
t_grep "... and reports the difference" "differences" "$T/.out"
umount_image "$T/mnt-bad"

# skiff's own reader agrees with the kernel
for f in files/random-3.5M sparse/hole-middle-3M files/small5; do
	t_ok "skiff cat $f matches the source" \
		bash -c '"$1" cat "$2" "/$3" | cmp - "$4/$3"' _ "$SKIFF" "$img" "$f" "$SRC"
done
n_src=$(find "$SRC" -mindepth 1 -printf x | wc -c)
n_img=$("$SKIFF" ls -R "$img" / | wc -l)
t_is "skiff ls -R lists every entry (plus the root)" "$n_img" "$((n_src + 1))"

# Reproducible: same tree and options give the same digests, whatever
# the thread count.
m1=$(manifest_of "$img")
"$SKIFF" build -q -j 1 "$SRC" "$T/img-j1"
"$SKIFF" build -q -j 2 "$SRC" "$T/img-j2"
t_is "rebuild with 1 thread gives the same manifest digest" "$(manifest_of "$T/img-j1")" "$m1"
t_is "rebuild with 2 threads gives the same manifest digest" "$(manifest_of "$T/img-j2")" "$m1"
t_ok "blob and bootstrap files are byte-identical" diff -r "$img/blobs" "$T/img-j1/blobs"

# A tree without file data has no blob and no device table at all.
mkdir -p "$T/nodata/d"
: >"$T/nodata/d/empty"
"$SKIFF" build -q "$T/nodata" "$T/img-nodata"
t_ok "an image without blobs mounts" mount_image "$T/img-nodata" "$T/mnt-nodata" &&
	t_ok "... and equals its source" "$TREECMP" "$T/nodata" "$T/mnt-nodata"

done_testing
