#!/usr/bin/env bash
# skiff convert on hand-made layers (scripts/gen-test-layers.py): PAX and
# GNU headers, long names and links, xattrs, nanosecond and negative
# mtimes, base-256 ids, hard links within and across layers, devices,
# sparse files in every GNU format, whiteouts, an opaque directory,
# file/directory replacement, implicit parents; layers plain, gzip and
# zstd. The converted image, mounted by the host kernel, equals what
# umoci (a reference unpacker) makes of the same layers.
. "$(dirname "$0")/lib.sh"
need_erofs
command -v umoci >/dev/null || skip_all "umoci missing (scripts/setup.sh installs it)"
command -v jq >/dev/null || skip_all "jq missing (scripts/setup.sh installs it)"
PY=/usr/bin/python3
export TZ=UTC
[ -x $PY ] || skip_all "python3 missing (scripts/setup.sh installs it)"

G=$T/gen
t_ok "generate the test layers and layouts" $PY "$ROOT/scripts/gen-test-layers.py" "$G" || done_testing
t_ok "reference: umoci unpack of the gzip layout" umoci unpack --image "$G/ref:test" "$T/ref" || done_testing
REF=$T/ref/rootfs

OUT=$T/out
t_ok "skiff convert (plain, gzip, zstd layers)" "$SKIFF" convert "oci:$G/mix:test" "oci:$OUT:mix" || done_testing
t_grep "... with a one-line summary" "^converted oci:.* 6 layers .* 4 blobs" "$T/.out"
t_is "the layout holds 4 blobs, bootstrap, config, manifest: no unreferenced blob" \
	"$(ls "$OUT/blobs/sha256" | wc -l)" 7
t_ok "skiff check" "$SKIFF" check "$OUT:mix"
exp=$T/exp
ids=$("$SKIFF" export-cache "$OUT:mix" "$exp")
devs=()
for id in $ids; do devs+=("--device=$exp/$id"); done
t_is "one device per blob" "${#devs[@]}" 4
t_ok "fsck.erofs decodes every file across the blobs" \
	fsck.erofs "${devs[@]}" --extract="$T/fsck" "$exp/bootstrap"
t_ok "host kernel mounts it" mount_image "$OUT:mix" "$T/mnt" || done_testing
M=$T/mnt
t_ok "mounted tree equals umoci's unpack" "$TREECMP" "$REF" "$M"

for f in data/big sparse/f-p10 gnu/hl-lower; do
	t_ok "skiff cat $f (blob of its layer) matches" \
		bash -c '"$1" cat "$2" "/$3" | cmp - "$4/$3"' _ "$SKIFF" "$OUT:mix" "$f" "$REF"
done

# what the layers say, one by one
t_ok "whiteout files never appear" bash -c '! "$1" ls -R "$2" / | grep -F ".wh."' _ "$SKIFF" "$OUT:mix"
t_ok "a whiteout deletes a file (etc/passwd)" test ! -e "$M/etc/passwd" -a -e "$M/etc/hostname"
t_ok "... and a directory with its subtree (todel)" test ! -e "$M/todel"
t_ok "... but not its siblings (partial/b stays, partial/a goes)" test -e "$M/partial/b" -a ! -e "$M/partial/a"
t_is "a later layer replaces a file" "$(cat "$M/etc/hostname")" after
t_ok "opaque directory: lower entries hidden" test ! -e "$M/opq/old" -a ! -e "$M/opq/keep-not"
t_ok "... the same layer's entries kept, before and after the marker" \
	test -f "$M/opq/new-before" -a -f "$M/opq/new-after"
t_is "... and the directory's new mode applies" "$(stat -c %a "$M/opq")" 750
t_ok "a directory replaced by a file" test -f "$M/d2f"
t_ok "a file replaced by a directory" test -d "$M/f2d" -a -f "$M/f2d/inside"
t_is "a hard link to a lower layer's file shares its inode" \
	"$(stat -c '%i %h' "$M/gnu/hl-lower")" "$(stat -c '%i %h' "$M/data/big-copy")"
t_is "... and counts its links" "$(stat -c %h "$M/data/big-copy")" 2
t_is "base-256 uid/gid (GNU)" "$(stat -c %u:%g "$M/gnu/$(printf 'L%.0s' $(seq 150))")" 3000000:2100000
t_is "PAX nanosecond mtime" "$(stat -c %y "$M/etc/xattrs")" "2020-09-13 12:26:40.000000001 +0000"
t_is "PAX binary xattr (security.capability)" \
	"$(getfattr --only-values -n security.capability "$M/etc/xattrs" 2>/dev/null | od -An -tx1 | tr -d ' \n')" \
	"0100000200200000000000000000000000000000"
t_is "a metadata-only layer changes a directory" "$(stat -c %a "$M/data")" 700
t_ok "... and deletes through a whiteout" test ! -e "$M/data/zeros" -a ! -e "$M/sparse/f-p00"

# one blob per layer with new data; deduplication across layers
json=$("$SKIFF" inspect --json "$OUT:mix")
t_is "6 layers, 4 blobs: none for the metadata-only layer, none for the layer all of whose files it deleted" \
	"$(jq '.blobs | length' <<<"$json")" 4
t_is "the layer repeating layer 1's file stored only its sparse file's 7 chunks" \
	"$(jq '.blobs[2].chunks' <<<"$json")" 7
t_ok "more chunks mapped than stored (dedupe)" test "$(jq '.dedup_ratio > 1.2' <<<"$json")" = true

# the compression of a layer does not matter: same tar, same image
t_ok "convert the all-gzip layout" "$SKIFF" convert -q "oci:$G/ref:test" "oci:$OUT:ref"
t_is "... gives the same bootstrap" \
	"$("$SKIFF" inspect --json "$OUT:ref" | jq -r .bootstrap)" "$(jq -r .bootstrap <<<"$json")"
t_ok "convert again with one thread" "$SKIFF" convert -q -j 1 "oci:$G/mix:test" "oci:$T/out1:mix"
t_is "... gives the same manifest digest" "$(manifest_of "$T/out1:mix")" "$(manifest_of "$OUT:mix")"

# a prefetch list lands in the bootstrap, and the listed files' chunks in
# one more blob (the last), in list order
# pf_layout IMAGE: "SLOT N" when every stored chunk of the listed files
# lies in device slot SLOT, each new one right after the one before from
# block 0 on (N of them, each once); else what is wrong
pf_layout() {
	local bs
	bs=$1; bs=${bs%%:*}/blobs/sha256/$("$SKIFF" inspect --json "$1" | jq -r .bootstrap)
	$PY "$ROOT/tests/chunkmap.py" "$bs" | awk '
		{ for (i = 2; i <= NF; i++) {
			if ($i == "-") continue
			split($i, a, ":")
			if (dev == "") dev = a[1]
			if (a[1] != dev) { print "chunk of", $1, "in slot", a[1], "not", dev; bad = 1; exit }
			if (a[2] in seen) continue
			if (a[2] + 0 < next_blk) { print "block", a[2], "of", $1, "out of order"; bad = 1; exit }
			seen[a[2]] = 1; next_blk = a[2] + 1; n++
		} }
		END { if (!bad) print dev, n }'
}
printf '/etc/hostname\n/data/big\n/gone\n' >"$T/plist"
t_ok "convert with --prefetch-list" "$SKIFF" convert -q --prefetch-list "$T/plist" "oci:$G/mix:test" "oci:$T/pf:x"
pfj=$("$SKIFF" inspect --json "$T/pf:x")
t_is "... the files it names that exist are listed, in order" \
	"$(jq -c .prefetch <<<"$pfj")" '["/etc/hostname","/data/big"]'
t_is "... one more blob than without the list, last in the manifest" \
	"$(jq -c '[.blobs | length, .[0:4] == $b]' --argjson b "$(jq .blobs <<<"$json")" <<<"$pfj")" '[5,true]'
t_is "... the layout holds it too, no unreferenced blob" "$(ls "$T/pf/blobs/sha256" | wc -l)" 8
t_is "... the listed files' 4 chunks are that blob's, first and in list order" \
	"$(pf_layout "$T/pf:x")" "4 4"
t_is "... and all of it" "$(jq '.blobs[4].chunks' <<<"$pfj")" 4
t_ok "... skiff check verifies it" "$SKIFF" check "$T/pf:x"
for f in etc/hostname data/big data/hl; do
	t_ok "... skiff cat $f matches" \
		bash -c '"$1" cat "$2" "/$3" | cmp - "$4/$3"' _ "$SKIFF" "$T/pf:x" "$f" "$REF"
done
t_ok "... the kernel mounts it" mount_image "$T/pf:x" "$T/mnt-pf" &&
	t_ok "... and the tree equals umoci's unpack" "$TREECMP" "$REF" "$T/mnt-pf"
t_ok "... the same again with one thread" \
	"$SKIFF" convert -q -j 1 --prefetch-list "$T/plist" "oci:$G/mix:test" "oci:$T/pf1:x"
t_is "... gives the same manifest digest" "$(manifest_of "$T/pf1:x")" "$(manifest_of "$T/pf:x")"
t_ok "... with the image without the list as chunk dictionary" \
	"$SKIFF" convert -q --chunk-dict "$OUT:mix" --prefetch-list "$T/plist" "oci:$G/mix:test" "oci:$T/pfd:x"
t_is "... the prefetch blob, copied from the dictionary's blobs, is the same" \
	"$("$SKIFF" inspect --json "$T/pfd:x" | jq -r '.blobs[-1].id')" "$(jq -r '.blobs[-1].id' <<<"$pfj")"
t_ok "... skiff check verifies it" "$SKIFF" check "$T/pfd:x"

# hard links and shared chunks: /data/hl is /data/big (listed once, as
# its first name), /gnu/hl-lower is /data/big-copy, whose chunks are
# /data/big's (stored once); inner holes share one zero chunk; the two
# sparse layers' files are all listed, so their blobs drop out
printf '/sparse/f-p10\n/data/hl\n/gnu/hl-lower\n/data/big\n/data/inner-zeros\n/sparse/f-p01\n/sparse/big-again\n' >"$T/plist2"
t_ok "convert with hard links and shared chunks in the list" \
	"$SKIFF" convert -q --prefetch-list "$T/plist2" "oci:$G/mix:test" "oci:$T/pf2:x"
pfj=$("$SKIFF" inspect --json "$T/pf2:x")
t_is "... each inode listed once" "$(jq -c .prefetch <<<"$pfj")" \
	'["/sparse/f-p10","/data/big","/data/big-copy","/data/inner-zeros","/sparse/f-p01","/sparse/big-again"]'
bs2=$T/pf2/blobs/sha256/$(jq -r .bootstrap <<<"$pfj")
t_is "... a hard link's file and a file of the same bytes map the same chunks" \
	"$($PY "$ROOT/tests/chunkmap.py" "$bs2" | sed -n '2p;3p' | cut -d' ' -f2- | uniq | wc -l)" 1
t_is "... holes stay holes" "$($PY "$ROOT/tests/chunkmap.py" "$bs2" | head -1 | tr ' ' '\n' | grep -c '^-$')" 2
t_is "... in the prefetch blob (slot 2), each chunk once, in list order" \
	"$(pf_layout "$T/pf2:x")" "2 $(jq '.blobs[2].chunks' <<<"$pfj")"
t_is "... the sparse layers' blobs are gone: 3 blobs" "$(jq '.blobs | length' <<<"$pfj")" 3
t_ok "... skiff check verifies it" "$SKIFF" check "$T/pf2:x"
t_ok "... the kernel mounts it" mount_image "$T/pf2:x" "$T/mnt-pf2" &&
	t_ok "... and the tree equals umoci's unpack" "$TREECMP" "$REF" "$T/mnt-pf2"

# the source config travels
mdig=$(manifest_of "$OUT:mix")
cfg=$(jq -r '.config.digest' "$OUT/blobs/sha256/$mdig" | cut -d: -f2)
t_is "entrypoint kept" "$(jq -c .config.Entrypoint "$OUT/blobs/sha256/$cfg")" '["/bin/sh","-c"]'
t_is "env, workdir, user, labels kept" \
	"$(jq -c '[.config.Env, .config.WorkingDir, .config.User, .config.Labels]' "$OUT/blobs/sha256/$cfg")" \
	'[["PATH=/usr/bin:/bin","SKIFF_TEST=1"],"/data","70000:70001",{"org.example.test":"convert"}]'
t_is "rootfs names our 5 layers (4 blobs + bootstrap), history dropped" \
	"$(jq -c '[(.rootfs.diff_ids | length), has("history")]' "$OUT/blobs/sha256/$cfg")" '[5,false]'
t_ok "skopeo reads the converted layout" skopeo inspect --raw "oci:$OUT:mix"

# what common unpackers do not take
t_ok "convert (Docker manifest) layers with implicit parents, LIBARCHIVE xattrs, an old GNU sparse file" \
	"$SKIFF" convert -q "oci:$G/extra:test" "oci:$OUT:extra"
t_ok "... mounts" mount_image "$OUT:extra" "$T/mnt-x" || done_testing
X=$T/mnt-x
t_is "implicit parents: 0755 root:root, mtime 0" \
	"$(stat -c '%a %u:%g %Y' "$X/implicit" "$X/implicit/a/b" | sort -u)" "755 0:0 0"
t_is "LIBARCHIVE.xattr with an escaped name" \
	"$(getfattr --only-values -n 'user.lib=name' "$X/lib-xattr" 2>/dev/null)" lib-value
t_is "negative PAX mtime" "$(stat -c %y "$X/neg-time")" "1969-12-31 23:59:58.750000000 +0000"
t_ok "old GNU sparse ('S', extension blocks) reads as its source" \
	cmp "$X/sparse/f-gnu" "$G/sparse-src/gnu/sparse/f-gnu"

# more device slots than fit beside the superblock
t_ok "convert 30 layers" "$SKIFF" convert -q "oci:$G/many:test" "oci:$T/many:m"
t_is "... 30 blobs" "$("$SKIFF" inspect --json "$T/many:m" | jq '.blobs | length')" 30
t_ok "... skiff check verifies them" "$SKIFF" check "$T/many:m"
t_ok "... the kernel mounts the 30 devices" mount_image "$T/many:m" "$T/mnt-many" &&
	t_is "... and reads a file from each" \
		"$(cat "$T/mnt-many"/layer-* | wc -c)" "$(( (5000 * 30) + (29 * 30 / 2) ))"

# an index of two platforms (a Docker manifest list)
t_ok "convert a manifest list: linux/amd64 by default" \
	"$SKIFF" convert -q "oci:$G/multi:multi" "oci:$T/multi:amd"
t_is "... the amd64 image" "$("$SKIFF" inspect --json "$T/multi:amd" | jq -r .bootstrap)" \
	"$(jq -r .bootstrap <<<"$json")"
t_ok "--platform linux/arm64" "$SKIFF" convert -q --platform linux/arm64 "oci:$G/multi:multi" "oci:$T/multi:arm"
t_is "... the arm64 image" "$("$SKIFF" inspect --json "$T/multi:arm" | jq -r .bootstrap)" \
	"$("$SKIFF" inspect --json "$OUT:extra" | jq -r .bootstrap)"
t_fails "--platform linux/s390x: none" "$SKIFF" convert -q --platform linux/s390x "oci:$G/multi:multi" "oci:$T/multi:x"
t_grep "... saying so" "no image for platform linux/s390x" "$T/.out"
t_fails "--platform linux/arm64 on a single amd64 manifest" \
	"$SKIFF" convert -q --platform linux/arm64 "oci:$G/mix:test" "oci:$T/multi:x"
t_grep "... saying so" "the image is for linux/amd64, not linux/arm64" "$T/.out"

# broken sources fail with a message, and leave no image
bad=$T/bad
cp -a "$G/mix" "$bad"
cfgsrc=$(jq -r '.manifests[0].digest' "$bad/index.json" | cut -d: -f2)
cfgsrc=$(jq -r '.config.digest' "$bad/blobs/sha256/$cfgsrc" | cut -d: -f2)
lay=$(jq -r '.manifests[0].digest' "$bad/index.json" | cut -d: -f2)
lay=$(jq -r '.layers[1].digest' "$bad/blobs/sha256/$lay" | cut -d: -f2)
printf '\x00' | dd of="$bad/blobs/sha256/$lay" bs=1 seek=40 conv=notrunc status=none
t_fails "a damaged gzip layer fails" "$SKIFF" convert -q "oci:$bad:test" "oci:$T/o-bad:x"
t_grep "... saying which layer" "layer 2" "$T/.out"
t_fails "... and tags nothing" "$SKIFF" inspect "$T/o-bad:x"
t_ok "... and leaves no layout behind" test ! -e "$T/o-bad"
t_fails "a missing tag fails" "$SKIFF" convert -q "oci:$G/mix:nope" "oci:$T/o-bad:x"
t_grep "... saying so" "no image tagged nope" "$T/.out"
t_fails "a skiff image is no source" "$SKIFF" convert -q "oci:$OUT:mix" "oci:$T/o-bad:x"
t_grep "... saying so" "not a tar layer .already a skiff image" "$T/.out"
t_fails "docker:// is not yet a source" "$SKIFF" convert -q "docker://127.0.0.1:1/x:y" "oci:$T/o-bad:x"

# sizes no honest layer has: refused, and nothing left behind, not even
# the directories made for the target
t_fails "a PAX sparse file of 2^64 - 7 bytes fails" \
	"$SKIFF" convert -q "oci:$G/huge:test" "oci:$T/o-huge/a/b:x"
t_grep "... saying why" "layer 1 .*: claim: file size 18446744073709551609 is too large" "$T/.out"
t_ok "... and leaves no directory behind" test ! -e "$T/o-huge"
t_fails "10 KiB of tar claiming a 1 TiB sparse file fails" \
	"$SKIFF" convert -q "oci:$G/claim:test" "oci:$T/o-claim:x"
t_grep "... saying what it claims and stores" \
	"claim: the layer's files claim 1\.0 TiB \(1099511627776 bytes\) of file size for 11\.5 KiB stored: over the limit of 16 times what is stored, at least 16\.0 GiB" "$T/.out"
t_grep "... and which option raises the limit" "\(--max-expansion RATIO\[,SIZE\] raises the limit" "$T/.out"
t_ok "... leaving no layout behind" test ! -e "$T/o-claim"
mkdir "$T/o-empty"
t_fails "... into an empty directory" "$SKIFF" convert -q "oci:$G/claim:test" "oci:$T/o-empty:x"
t_is "... which stays, empty" "$(ls -A "$T/o-empty" | wc -l)" 0
nb=$(ls "$OUT/blobs/sha256" | wc -l)
t_fails "... into a layout that holds images" "$SKIFF" convert -q "oci:$G/claim:test" "oci:$OUT:claim"
t_is "... which keeps every blob" "$(ls "$OUT/blobs/sha256" | wc -l)" "$nb"
t_ok "... and its images" "$SKIFF" check "$OUT:mix"
t_ok "with --max-expansion 16,2048G it converts" \
	"$SKIFF" convert -q --max-expansion 16,2048G "oci:$G/claim:test" "oci:$T/o-claim:x"
"$SKIFF" ls "$T/o-claim:x" / >"$T/ls.out"
t_grep "... to a 1 TiB file" " 1099511627776 .* claim$" "$T/ls.out"
t_ok "... that skiff check verifies" "$SKIFF" check "$T/o-claim:x"
t_fails "--max-expansion 0 is no ratio" "$SKIFF" convert -q --max-expansion 0 "oci:$G/claim:test" "oci:$T/o-x:x"
t_grep "... saying what is" "need RATIO\[,SIZE\]" "$T/.out"

done_testing
