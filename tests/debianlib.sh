# shellcheck shell=bash
# The Debian test image of the conversion tests: a Debian 12 minbase root
# filesystem (debootstrap, cached under /var/cache/skiff-test-rootfs by
# ../scripts/test-rootfs.sh) as a 3-layer OCI image made with umoci: the
# system, then a layer that adds, changes and deletes files, then one with
# an opaque directory. Source after lib.sh.

# need_debian_rootfs: the tools, or the whole test is skipped with the
# reason; sets ROOTFS (the cached tree) and PY
need_debian_rootfs() {
	local c
	for c in umoci debootstrap jq; do
		command -v $c >/dev/null || skip_all "$c missing (scripts/setup.sh installs it)"
	done
	PY=/usr/bin/python3
	[ -x $PY ] || skip_all "python3 missing (scripts/setup.sh installs it)"
	ROOTFS=$("$ROOT/scripts/test-rootfs.sh") ||
		skip_all "no Debian root filesystem: debootstrap failed (see /var/cache/skiff-test-rootfs)"
}

# debian_image LAYOUT: the image in the OCI layout LAYOUT, tagged l1, l2
# and l3 after each layer (l3 is the whole image); 4 test points; fails
# when a step does
debian_image() {
	local S=$1 R
	umoci init --layout "$S" && umoci new --image "$S:base" &&
		umoci unpack --image "$S:base" "$T/b1" >/dev/null &&
		cp -a "$ROOTFS/." "$T/b1/rootfs/"
	t_ok "layer 1: the Debian system (umoci repack)" umoci repack --image "$S:l1" "$T/b1" || return 1
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
		umoci repack --image "$S:l2" "$T/b2" || return 1
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
		umoci raw add-layer --image "$S:l2" "$T/opq.tar" --tag l3 || return 1
	t_ok "reference: umoci unpack" umoci unpack --image "$S:l3" "$T/ref"
}
