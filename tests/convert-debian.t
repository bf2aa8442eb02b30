#!/usr/bin/env bash
# skiff convert on a real image: a Debian 12 minbase root filesystem
# (debootstrap, cached under /var/cache/skiff-test-rootfs) as a layered
# OCI image made with umoci: the system, then a layer that adds, changes
# and deletes files, then one with an opaque directory. The converted
# image equals umoci's unpack of the source (mounted by the kernel and
# lazily through skiffd), runs programs, and a rebuilt image converted
# with --chunk-dict stores only what changed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/debianlib.sh"
need_erofs
need_debian_rootfs

S=$T/src
debian_image "$S" || done_testing
REF=$T/ref/rootfs

D=$T/dst
t_ok "skiff convert oci:SRC:l3 oci:DST:deb" "$SKIFF" convert "oci:$S:l3" "oci:$D:deb" || done_testing
t_grep "... 3 layers into 3 blobs" "3 layers .* 3 blobs" "$T/.out"
t_ok "skiff check" "$SKIFF" check "$D:deb"
t_ok "host kernel mounts it" mount_image "$D:deb" "$T/mnt" || done_testing
M=$T/mnt
t_ok "mounted tree equals umoci's unpack (bytes and metadata)" "$TREECMP" -q "$REF" "$M"
t_ok "the opaque directory holds only its new file" \
	test "$(ls "$M/usr/share/man")" = README
t_ok "deleted files are gone" test ! -e "$M/etc/motd" -a ! -e "$M/usr/share/doc/apt" -a ! -e "$M/usr/share/locale"
t_is "a program from the image runs" "$(chroot "$M" /bin/sh -c 'echo hi')" hi
t_ok "... and dpkg too" chroot "$M" /usr/bin/dpkg --version
t_grep "... saying what it is" "Debian .dpkg. package management program" "$T/.out"

# the loader serves a multi-blob image
if start_skiffd --frontend fanotify >/dev/null 2>&1; then
	t_ok "skiff mount through skiffd (lazy)" skiff_mount "$D:deb" "$T/lazy" &&
		t_ok "... equals umoci's unpack" timeout 300 "$TREECMP" -q "$REF" "$T/lazy"
	t_is "... having filled the cache files of all 3 blobs" \
		"$("$SKIFF" status --json | jq '[.images[0].blobs[] | select(.ready_bytes > 0)] | length')" 3
	t_is "... without a verify or fetch error" \
		"$(metric skiff_verify_errors_total)/$(metric skiff_fetch_errors_total)" 0/0
	skiff_umount "$T/lazy"
	stop_skiffd
else
	t_skip "skiffd's fanotify frontend is not available here: $(tail -n1 "$T/skiffd.log" 2>/dev/null)"
fi

# a rebuilt image (one file changed) against the first as a chunk
# dictionary: only the changed file's chunk is stored again
S2=$T/src2
umoci init --layout "$S2" && umoci new --image "$S2:base" &&
	umoci unpack --image "$S2:base" "$T/b3" >/dev/null &&
	cp -a "$REF/." "$T/b3/rootfs/" &&
	echo "12.99-rebuilt" >"$T/b3/rootfs/etc/debian_version"
t_ok "rebuild: the same tree as one layer, one file changed" umoci repack --image "$S2:re" "$T/b3" || done_testing
rm -rf "$T/b3"
before=$(ls "$D/blobs/sha256" | wc -l)
t_ok "convert it with --chunk-dict DST:deb into the same layout" \
	"$SKIFF" convert --chunk-dict "$D:deb" "oci:$S2:re" "oci:$D:re"
json=$("$SKIFF" inspect --json "$D:re")
t_is "it references the 3 dictionary blobs and adds one" "$(jq '.blobs | length' <<<"$json")" 4
t_is "the new blob holds one chunk: the changed file" "$(jq '.blobs[3].chunks' <<<"$json")" 1
t_is "the layout gained 4 files (blob, bootstrap, config, manifest)" \
	"$(ls "$D/blobs/sha256" | wc -l)" "$((before + 4))"
t_ok "skiff check" "$SKIFF" check "$D:re"
t_ok "it mounts" mount_image "$D:re" "$T/mnt-re" &&
	t_is "... with the changed file" "$(cat "$T/mnt-re/etc/debian_version")" 12.99-rebuilt
t_ok "into another layout: dictionary blobs hard-linked, not copied" \
	"$SKIFF" convert -q --chunk-dict "$D:deb" "oci:$S2:re" "oci:$T/other:re"
b0=$(jq -r '.blobs[0].id' <<<"$json")
t_is "... same inode" "$(stat -c %i "$T/other/blobs/sha256/$b0")" "$(stat -c %i "$D/blobs/sha256/$b0")"
t_ok "... and that image checks" "$SKIFF" check "$T/other:re"
t_ok "without the dictionary" "$SKIFF" convert -q "oci:$S2:re" "oci:$T/nodict:re"
nd=$("$SKIFF" inspect --json "$T/nodict:re" | jq '.blobs[0].stored_size')
nw=$(jq '.blobs[3].stored_size' <<<"$json")
t_ok "... the layer's blob is $nd bytes, with it $nw" test "$((nw * 1000))" -lt "$nd"

done_testing
