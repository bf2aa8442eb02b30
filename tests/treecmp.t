#!/usr/bin/env bash
# treecmp's link counts: a non-directory must have in B as many links as
# its inode has names inside tree A. Links from outside tree A (a cache
# elsewhere hard-linking the same files) cannot be in an image of A and
# are not a difference; any other count, and any other hard-link
# grouping, is.
. "$(dirname "$0")/lib.sh"

# copy_tree SRC DST: same bytes and metadata; hard links only within DST.
copy_tree() { cp -a "$1" "$2"; }

# unlink_pair DIR REF: makes DIR/y a copy of DIR/x instead of a second
# link, then gives DIR back REF's times (the rename changed its mtime).
unlink_pair() {
	cp -p "$1/x" "$1/y.new" && mv -f "$1/y.new" "$1/y" && touch -r "$2" "$1"
}

mkdir -p "$T/out"

# Tree a: f has a second link outside the tree, g has none.
mkdir -p "$T/a"
echo "linked from outside" >"$T/a/f"
echo "plain" >"$T/a/g"
ln "$T/a/f" "$T/out/f"
copy_tree "$T/a" "$T/b"
t_is "a/f has 2 links, its copy 1" "$(stat -c %h "$T/a/f") $(stat -c %h "$T/b/f")" "2 1"
t_ok "a link outside tree A is no difference" "$TREECMP" "$T/a" "$T/b"

ln "$T/b/f" "$T/out/bf"
t_fails "B with a link outside it that A has not in the tree differs" "$TREECMP" "$T/a" "$T/b"
t_grep "... reported as f's link count" '^treecmp: f: nlink differs \(A=2, 1 of them in the tree; B=2\)$' "$T/.out"

# Tree p: x and y are one inode, which has a third link outside the tree.
mkdir -p "$T/p"
echo "pair" >"$T/p/x"
ln "$T/p/x" "$T/p/y"
ln "$T/p/x" "$T/out/x"
copy_tree "$T/p" "$T/q"
t_is "p/x has 3 links, its copy 2" "$(stat -c %h "$T/p/x") $(stat -c %h "$T/q/x")" "3 2"
t_ok "a pair linked in both trees, one more link outside A: equal" "$TREECMP" "$T/p" "$T/q"

copy_tree "$T/p" "$T/sep"
unlink_pair "$T/sep" "$T/p"
t_fails "linked in A, separate copies in B: different" "$TREECMP" "$T/p" "$T/sep"
t_grep "... reports the grouping" '^treecmp: y: hard link differs \(A: same inode as x, B: not\)$' "$T/.out"
t_grep "... and x's link count" '^treecmp: x: nlink differs \(A=3, 2 of them in the tree; B=1\)$' "$T/.out"

# The other way round: separate in A, linked in B.
copy_tree "$T/sep" "$T/sep2"
copy_tree "$T/p" "$T/q2"
t_fails "separate copies in A, linked in B: different" "$TREECMP" "$T/sep2" "$T/q2"
t_grep "... reports the grouping" '^treecmp: y: hard link differs \(B: same inode as x, A: not\)$' "$T/.out"
t_grep "... and the link count" '^treecmp: x: nlink differs \(A=1 B=2\)$' "$T/.out"

# A name of the pair missing from B still counts as one of A's names.
copy_tree "$T/q" "$T/half"
rm "$T/half/y"
touch -r "$T/q" "$T/half"
t_fails "one name of a linked pair missing from B: different" "$TREECMP" "$T/q" "$T/half"
t_grep "... reports the missing name" '^treecmp: y: only in A \(regular file\)$' "$T/.out"
t_grep "... and x's link count" '^treecmp: x: nlink differs \(A=2 B=1\)$' "$T/.out"

# A built image of a tree with links outside it: the kernel's view of
# the image equals the tree.
erofs_reason=
if [ "$(id -u)" -ne 0 ]; then
	erofs_reason="needs root (mount, loop devices)"
else
	modprobe erofs 2>/dev/null
	grep -qw erofs /proc/filesystems || erofs_reason="kernel has no EROFS"
	command -v losetup >/dev/null || erofs_reason="losetup missing"
fi
if [ -n "$erofs_reason" ]; then
	t_skip "image of a tree with links outside it: $erofs_reason"
else
	mkdir -p "$T/src/sub"
	cp -p "$T/a/f" "$T/a/g" "$T/src/"
	ln "$T/src/f" "$T/out/src-f"
	echo "pair in the tree, and one outside" >"$T/src/sub/x"
	ln "$T/src/sub/x" "$T/src/y"
	ln "$T/src/sub/x" "$T/out/src-x"
	t_ok "skiff build of the tree" "$SKIFF" build -q "$T/src" "$T/img" &&
		t_ok "host kernel mounts it" mount_image "$T/img" "$T/mnt" &&
		t_is "link counts in the image: f 1, x 2" \
			"$(stat -c %h "$T/mnt/f") $(stat -c %h "$T/mnt/sub/x")" "1 2" &&
		t_ok "mounted image equals the tree" "$TREECMP" "$T/src" "$T/mnt"
fi

done_testing
