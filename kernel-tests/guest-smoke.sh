#!/usr/bin/env bash
# guest-smoke.sh: runs INSIDE the QEMU test guest (kernel-tests/run-guest.sh)
# and prints TAP. Checks that the guest is what the fscache tests need
# (Linux 6.1 or 6.12, /dev/cachefiles accepting `bind ondemand` on ext4, EROFS),
# then that its EROFS reads skiff's images: the edge-case tree,
# built with several options and loop-mounted from the exported cache
# files, equals its source. The host kernel is much newer, so this is the
# only place where compatibility with the oldest kernel skiffd serves
# through fscache is shown.
. "$(dirname "$0")/../tests/lib.sh"

[ "${SKIFF_GUEST:-}" = 1 ] ||
	skip_all "runs inside the test guest: kernel-tests/run-guest.sh $0"
need_root

# The cachefiles cache directory has to be on ext4: run-guest.sh mounts a
# fresh ext4 disk here.
CACHE_FS=/var/cache/skiff

elapsed() { diag "$1: $(($(date +%s) - $2)) s"; }

# ---------------------------------------------------------------- the guest
KVER=${SKIFF_GUEST_KERNEL:-6.1}
t_ok "the guest runs Linux $KVER ($(uname -r))" bash -c "[[ \$(uname -r) == $KVER.* ]]"
t_ok "/dev/cachefiles is a character device" test -c /dev/cachefiles
t_grep "EROFS is a registered filesystem" '[[:space:]]erofs$' /proc/filesystems
t_is "$CACHE_FS is ext4" "$(stat -f -c %T "$CACHE_FS")" ext2/ext3

# ------------------------------------------------- cachefiles control device
# Each control command must reach the kernel as ONE write(2): bash's printf
# builtin writes a short string with a single write. A refused command
# makes printf fail with the kernel's errno text.
bind_cache() { # DIR TAG MODE
	local st=0
	exec 3<>/dev/cachefiles || return 1
	printf 'dir %s' "$1" >&3 || st=1
	[ $st -eq 0 ] && { printf 'tag %s' "$2" >&3 || st=1; }
	[ $st -eq 0 ] && { printf 'bind %s' "$3" >&3 || st=1; }
	exec 3>&-
	return $st
}

mkdir -p "$CACHE_FS/fscache"
t_ok "cachefiles accepts dir, tag and 'bind ondemand' on ext4" \
	bind_cache "$CACHE_FS/fscache" smoke ondemand
t_ok "... and binds again after the device was closed" \
	bind_cache "$CACHE_FS/fscache" smoke ondemand

second_open() {
	exec 3<>/dev/cachefiles || return 1
	if (exec 4<>/dev/cachefiles); then
		exec 3>&-
		echo "second open succeeded"
		return 1
	fi
	exec 3>&-
}
t_ok "a second open of /dev/cachefiles is refused while one is held" second_open
t_grep "... with EBUSY" "Device or resource busy" "$T/.out"

mkdir -p /var/tmp/fscache-on-tmpfs
t_fails "binding a cache directory on tmpfs is refused" \
	bind_cache /var/tmp/fscache-on-tmpfs smoke ondemand
t_grep "... with EOPNOTSUPP" "Operation not supported" "$T/.out"

bad_verb() {
	exec 3<>/dev/cachefiles || return 1
	printf 'frobnicate 1' >&3
	local st=$?
	exec 3>&-
	return $st
}
t_fails "an unknown command is refused" bad_verb
t_grep "... with EOPNOTSUPP" "Operation not supported" "$T/.out"

# ------------------------------- format compatibility with the guest's EROFS
# tmpfs has no user.* xattrs before Linux 6.6: the tree lives on ext4.
SRC=$CACHE_FS/src
rm -rf "$SRC"
t0=$(date +%s)
t_ok "generate the edge-case tree on ext4" "$GEN_TREE" "$SRC"
elapsed "tree generation" "$t0"

check_variant() {
	local name=$1 img=$T/img-$1 mnt=$T/mnt-$1 t0
	shift
	t0=$(date +%s)
	t_ok "$name: skiff build $*" "$SKIFF" build -q "$@" "$SRC" "$img" || return
	elapsed "$name: build" "$t0"
	t0=$(date +%s)
	t_ok "$name: Linux $KVER mounts the exported cache files" mount_image "$img" "$mnt" ||
		return
	t_ok "$name: the mounted tree equals the source" "$TREECMP" "$SRC" "$mnt"
	elapsed "$name: mount and compare" "$t0"
	umount_image "$mnt"
	rm -rf "$img" "$MOUNT_EXPORT"
}

if [ -d "$SRC" ]; then
	check_variant default
	check_variant 4k-none --chunk-size 4K --compress none
	check_variant 64m --chunk-size 64M
fi

# A tree without file data: no blob, no device table.
mkdir -p "$T/nodata/d"
: >"$T/nodata/d/empty"
"$SKIFF" build -q "$T/nodata" "$T/img-nodata"
t_ok "an image without blobs mounts" mount_image "$T/img-nodata" "$T/mnt-nodata" &&
	t_ok "... and equals its source" "$TREECMP" "$T/nodata" "$T/mnt-nodata"

# Evidence for any failure: what the kernel said.
if [ "$_t_failed" -ne 0 ]; then
	diag "kernel log (dmesg):"
	dmesg 2>&1 | tail -n 80 | sed 's/^/#   /'
fi
done_testing
