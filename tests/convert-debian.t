#!/usr/bin/env bash
# skiff convert on a real image: a Debian 12 minbase root filesystem
# (debootstrap, cached under /var/cache/skiff-test-rootfs) as a layered
# OCI image made with umoci: the system, then a layer that adds, changes
# and deletes files, then one with an opaque directory. The converted
# image equals umoci's unpack of the source (mounted by the kernel and
# lazily through skiffd), runs programs, and a rebuilt image converted
# with --chunk-dict stores only what changed.
. "$(dirname "$0")/lib.sh"
need_erofs
for c in umoci debootstrap jq; do
	command -v $c >/dev/null || skip_all "$c missing (scripts/setup.sh installs it)"
done
PY=/usr/bin/python3
[ -x $PY ] || skip_all "python3 missing (scripts/setup.sh installs it)"
ROOTFS=$("$ROOT/scripts/test-rootfs.sh") ||
	skip_all "no Debian root filesystem: debootstrap failed (see /var/cache/skiff-test-rootfs)"

S=$T/src
umoci init --layout "$S" && umoci new --image "$S:base" &&
	umoci unpack --image "$S:base" "$T/b1" >/dev/null &&
	cp -a "$ROOTFS/." "$T/b1/rootfs/"
t_ok "layer 1: the Debian system (umoci repack)" umoci repack --image "$S:l1" "$T/b1" || done_testing
rm -rf "$T/b1"

umoci unpack --image "$S:l1" "$T/b2" >/dev/null
R=$T/b2/rootfs
head -c 3000000 /dev/urandom >"$R/opt/data.bin"
ln "$R/opt/data.bin" "$R/opt/data.link"
echo "skiff test" >"$R/etc/skiff-test"
setfattr -n user.skiff -v yes "$R/etc/skiff-test"
echo "# changed by the test" >>"$R/etc/bash.bashrc"
chmod 0600 "$R/etc/hostname"
rm -rf "$R/usr/share/doc/apt" "$R/etc/motd" "$R/usr/share/locale"
t_ok "layer 2: adds, changes, deletes (umoci makes the whiteouts)" \
	umoci repack --image "$S:l2" "$T/b2" || done_testing
rm -rf "$T/b2"

$PY - "$T/opq.tar" <<'EOF'
import io, sys, tarfile
t = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT)
def add(name, type=tarfile.REGTYPE, data=b"", mode=0o644):
    ti = tarfile.TarInfo(name); ti.type = type; ti.mode = mode; ti.mtime = 1700000000
    ti.size = len(data) if type == tarfile.REGTYPE else 0
    t.addfile(ti, io.BytesIO(data) if data else None)
add("usr/", tarfile.DIRTYPE, mode=0o755)
add("usr/share/", tarfile.DIRTYPE, mode=0o755)
add("usr/share/man/", tarfile.DIRTYPE, mode=0o755)
add("usr/share/man/.wh..wh..opq")
add("usr/share/man/README", data=b"the manual pages were here\n")
t.close()
EOF
t_ok "layer 3: an opaque directory (umoci raw add-layer)" \
	umoci raw add-layer --image "$S:l2" "$T/opq.tar" --tag l3 || done_testing
t_ok "reference: umoci unpack" umoci unpack --image "$S:l3" "$T/ref" || done_testing
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
