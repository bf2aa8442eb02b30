#!/bin/bash
# gen-edge-tree.sh DIR
#
# Builds a directory tree holding every kind of object a container root
# filesystem can contain (odd file sizes, sparse files, huge directories,
# long/non-UTF-8 names, device nodes, sockets, xattrs, ACLs, capabilities,
# big uids, special mode bits, nanosecond mtimes, hard links), so an image
# builder can be checked against it with tests/treecmp.
#
# Must run as root (mknod, chown, trusted.* and security.* xattrs).
# The tree is reproducible: all data comes from seeded generators and every
# mtime is set explicitly, so two runs produce trees treecmp considers equal
# (apart from inode numbers, which it does not compare).
set -euo pipefail

prog=gen-edge-tree
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }

need() {
	command -v "$1" >/dev/null 2>&1 ||
		die "required tool '$1' not found (install Debian package '$2')"
}

[[ $# -eq 1 ]] || die "usage: $0 DIR"
DIR=$1
[[ -e $DIR || -L $DIR ]] && die "$DIR already exists; refusing to touch it"
[[ $EUID -eq 0 ]] || die "must run as root (mknod, chown, trusted.* xattrs)"

need truncate coreutils
need dd coreutils
need head coreutils
need od coreutils
need tr coreutils
need mknod coreutils
need mkfifo coreutils
need touch coreutils
need find findutils
need setfattr attr
need setfacl acl
need setcap libcap2-bin
need perl perl-base
need openssl openssl

# Fixed umask and timezone so modes and `touch -d` results do not depend on
# the caller's environment.
umask 022
export TZ=UTC LC_ALL=C

# Deterministic pseudo-random bytes: AES-CTR keystream over zeros. The key
# acts as the seed; different keys give unrelated streams.
gen_bytes() { # LEN KEY(32 hex digits)
	head -c "$1" /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K "$2" -iv 00000000000000000000000000000000
}

# Overwrite LEN bytes at byte offset OFF without truncating, so holes
# around the write survive.
put_at() { # FILE OFF LEN KEY
	gen_bytes "$3" "$4" |
		dd of="$1" bs="$3" count=1 seek="$2" oflag=seek_bytes \
			iflag=fullblock conv=notrunc status=none
}

hexof() { od -An -tx1 -v | tr -d ' \n'; }

K1=000102030405060708090a0b0c0d0e0f
K2=101112131415161718191a1b1c1d1e1f
K3=202122232425262728292a2b2c2d2e2f
K4=303132333435363738393a3b3c3d3e3f
K5=404142434445464748494a4b4c4d4e4f

mkdir -- "$DIR"
# set -e alone exits silently; say where, and that DIR is incomplete.
trap 'die "failed at line $LINENO; incomplete tree left in $DIR"' ERR
cd -- "$DIR"

# ---------------------------------------------------------------- files
mkdir files
: >files/empty
printf 'x' >files/one-byte
printf 'hello' >files/small5
gen_bytes 4095 "$K1" >files/size4095
gen_bytes 4096 "$K1" >files/size4096
gen_bytes 4097 "$K1" >files/size4097
gen_bytes 65537 "$K1" >files/size65537
# Multi-chunk, incompressible, tail not block aligned.
gen_bytes $((3584 * 1024 + 123)) "$K2" >files/random-3.5M
perl -e 'print "The quick brown fox jumps over the lazy dog. 0123456789\n" x 20000' \
	>files/compressible.txt
# Real zero blocks on disk: an image builder must not confuse these with
# holes in a way that changes content (turning them into holes is fine).
head -c $((1024 * 1024)) /dev/zero >files/written-zeros-1M
# Identical content in two places so dedup paths get exercised.
mkdir files/dup
gen_bytes $((256 * 1024)) "$K3" >files/dup/copy-a
gen_bytes $((256 * 1024)) "$K3" >files/dup-copy-b

# --------------------------------------------------------------- sparse
mkdir sparse
# > 4 GiB so 32-bit size/offset truncation bugs show up. Data is placed at
# the start, unaligned in the middle, straddling the 4 GiB boundary, just
# past it, and ending exactly at EOF.
truncate -s 5G sparse/big-5G
put_at sparse/big-5G 0 4096 "$K4"
put_at sparse/big-5G $((2 * 1024 * 1024 * 1024 + 12345)) 4096 "$K4"
put_at sparse/big-5G $((4 * 1024 * 1024 * 1024 - 2048)) 4096 "$K5"
put_at sparse/big-5G $((4 * 1024 * 1024 * 1024 + 65536)) 8192 "$K5"
put_at sparse/big-5G $((5 * 1024 * 1024 * 1024 - 3000)) 3000 "$K1"
# 3 MiB: 512 KiB data, 2 MiB hole, 512 KiB data.
truncate -s 3M sparse/hole-middle-3M
put_at sparse/hole-middle-3M 0 $((512 * 1024)) "$K2"
put_at sparse/hole-middle-3M $((2560 * 1024)) $((512 * 1024)) "$K3"
# Data followed by a trailing hole (size > last data byte).
put_at sparse/hole-tail 0 $((64 * 1024 + 17)) "$K4"
truncate -s 3M sparse/hole-tail
# Nothing but a hole.
truncate -s 1M sparse/all-hole

# ----------------------------------------------------------- directories
mkdir -p deep/a/b/c/d/e/f/g/h/i/j
printf 'level a\n' >deep/a/file
printf 'level e\n' >deep/a/b/c/d/e/file
printf 'leaf\n' >deep/a/b/c/d/e/f/g/h/i/j/leaf
mkdir emptydir

# 3000 entries with a mix of short and long (up to ~254 byte) names so the
# directory spans many 4 KiB blocks.
mkdir bigdir
pad=$(printf '%*s' 260 '')
pad=${pad// /x}
for ((i = 0; i < 3000; i++)); do
	case $((i % 4)) in
	0) n=$i ;;
	1) n=f_$i ;;
	2) n=medium_length_entry_name_$i ;;
	3) n=${pad:0:$((200 + i % 50))}_$i ;;
	esac
	: >"bigdir/$n"
done
mkdir bigdir/subdir-1 bigdir/subdir-2

# --------------------------------------------------------------- symlinks
mkdir links
ln -s ../files/small5 links/short
ln -s /etc/os-release links/absolute
ln -s does/not/exist links/dangling
ln -s ../deep links/to-dir
ln -s self-loop links/self-loop
ln -s . links/dot
# Target of exactly 4095 bytes (PATH_MAX - 1), many components.
t=
for ((i = 0; ${#t} < 4200; i++)); do t+="component$i/"; done
t=${t:0:4095}
t=${t:0:4094}x
ln -s -- "$t" links/long-4095
[[ $(readlink links/long-4095 | wc -c) -eq 4096 ]] || die "long symlink target has wrong length"
ln -s $'lat\xe9/\xff' links/non-utf8-target

# ------------------------------------------------------------- hard links
mkdir -p hardlinks/sub
printf 'three names, one inode\n' >hardlinks/orig
ln hardlinks/orig hardlinks/sub/second
ln hardlinks/orig files/third-name
# Hard-linked empty files: builders that dedup empty files must still keep
# distinct inodes distinct and shared ones shared.
: >hardlinks/empty-1
ln hardlinks/empty-1 hardlinks/empty-2
: >hardlinks/empty-unrelated

# ------------------------------------------------------- special files
mkdir dev
mknod dev/null-like c 1 3
mknod dev/big-majmin c 300 70000
mknod dev/sda1-like b 8 1
# overlayfs whiteout, present in every container layer that deletes files.
mknod dev/whiteout c 0 0
mkfifo dev/fifo
perl -MIO::Socket::UNIX -e \
	'IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $ARGV[0], Listen => 1) or die "socket: $!\n"' \
	dev/socket
[[ -S dev/socket ]] || die "failed to create unix socket"

# ------------------------------------------------------------ ownership
mkdir owners
for f in big-ids max-id nobody u1000 root; do printf '%s\n' "$f" >"owners/$f"; done
ln -s big-ids owners/symlink-owned
mkdir owners/dir-owned
chown 100000:200000 owners/big-ids
# 4294967294 is the largest valid id; (uid_t)-1 means "don't change".
chown 4294967294:4294967294 owners/max-id
chown 65534:65534 owners/nobody
chown 1000:1000 owners/u1000
chown -h 100001:200001 owners/symlink-owned
chown 1234:5678 owners/dir-owned
chown 0:42 dev/socket
chown 7:7 dev/fifo

# ----------------------------------------------------------------- modes
# chown clears setuid/setgid and file capabilities, so all chown calls
# above come before these chmods and before setcap below.
mkdir modes
for f in setuid setgid setuid-setgid m0000 m0777 m0400 m7777; do : >"modes/$f"; done
printf '#!/bin/sh\n' >modes/setuid
chmod 4755 modes/setuid
chmod 2755 modes/setgid
chmod 6750 modes/setuid-setgid
chmod 0000 modes/m0000
chmod 0777 modes/m0777
chmod 0400 modes/m0400
chmod 7777 modes/m7777
mkdir modes/sticky-dir modes/setgid-dir modes/dir0700 modes/dir0000
chmod 1777 modes/sticky-dir
chmod 2775 modes/setgid-dir
chmod 0700 modes/dir0700
chmod 0000 modes/dir0000
chown 100000:200000 modes/setgid-dir
chmod 2775 modes/setgid-dir
chmod 0600 dev/fifo

# ---------------------------------------------------------------- xattrs
mkdir xattr
printf 'user xattrs\n' >xattr/user
setfattr -n user.empty xattr/user
setfattr -n user.text -v 'plain value' xattr/user
# ~3 KiB binary: large, but fits in the single 4 KiB xattr block ext4 has
# without the ea_inode feature.
setfattr -n user.binary -v "0x$(gen_bytes 3000 "$K5" | hexof)" xattr/user
setfattr -n user.nul-bytes -v 0x00ff0001 xattr/user

printf 'trusted\n' >xattr/trusted
setfattr -n trusted.foo -v bar xattr/trusted
setfattr -n trusted.overlay.origin -v 0x00fb1a000102 xattr/trusted

printf 'capability\n' >xattr/capability
setcap cap_net_raw+ep xattr/capability

printf 'selinux label\n' >xattr/selinux
setfattr -n security.selinux -v 'system_u:object_r:bin_t:s0' xattr/selinux

printf 'acl\n' >xattr/acl-file
setfacl -m u:1234:rx,g:2345:r xattr/acl-file
mkdir xattr/acl-dir
setfacl -m u:1234:rwx xattr/acl-dir
setfacl -d -m u:1234:rwx,g:2345:rx,o::- xattr/acl-dir

mkdir xattr/dir-with-xattrs
setfattr -n user.on-dir -v dirvalue xattr/dir-with-xattrs
setfattr -n trusted.overlay.opaque -v y xattr/dir-with-xattrs

# user.* is refused on symlinks and special files (EPERM); trusted.* is not.
ln -s ../files/small5 xattr/symlink-with-xattr
setfattr -h -n trusted.symlink-attr -v on-a-link xattr/symlink-with-xattr
mkfifo xattr/fifo-with-xattr
setfattr -h -n trusted.fifo-attr -v on-a-fifo xattr/fifo-with-xattr
mknod xattr/chardev-with-xattr c 1 5
setfattr -h -n trusted.overlay.whiteout -v y xattr/chardev-with-xattr

# The same name/value on many inodes, so shared-xattr tables get used.
for i in 1 2 3 4 5; do
	printf 'shared %s\n' "$i" >"xattr/shared-$i"
	setfattr -n user.shared -v 'same value everywhere' "xattr/shared-$i"
	setfattr -n trusted.shared -v "$i" "xattr/shared-$i"
done
# A hard link carrying xattrs: all names must show the same set.
setfattr -n user.on-hardlink -v yes hardlinks/orig

# ----------------------------------------------------------------- names
mkdir names
l255=$(printf '%*s' 255 '')
: >"names/${l255// /L}"
j=
for ((i = 0; i < 85; i++)); do j+=$'\xe6\x97\xa5'; done # 85 x U+65E5 = 255 bytes
: >"names/$j"
: >$'names/\xff\xfe'
: >$'names/lat\xe9'
: >'names/with space'
: >'names/ leading and trailing space '
: >$'names/new\nline'
: >$'names/tab\there'
: >'names/-leading-dash'
: >'names/--'
: >$'names/\xc3\xbcnic\xc3\xb8de-\xe6\x97\xa5\xe6\x9c\xac'
: >'names/back\slash'
: >'names/.hidden'
: >'names/...'
: >'names/quote"s'"'"
mkdir $'names/dir-\xff'
: >$'names/dir-\xff/child'

# ----------------------------------------------------------------- times
mkdir times
for f in pre-epoch y2038 y2100 zero-nsec max-nsec; do : >"times/$f"; done
ln -s pre-epoch times/symlink
mkdir times/dir

# ---------------------------------------------------------------- mtimes
# Every mtime is set only now: creating entries changes the parent's mtime,
# while touching an entry does not. One pass with -depth gives everything a
# fixed baseline; then individual entries get distinct values, directories
# last and deepest first.
T0='2021-03-04 05:06:07.123456789'
find . -depth -exec touch -h -d "$T0" -- {} +

touch -h -d '1969-12-31 23:59:58.500000001' times/pre-epoch
touch -h -d '2038-01-19 03:14:08.000000001' times/y2038
touch -h -d '2100-01-01 00:00:00.999999999' times/y2100
touch -h -d '2020-01-01 00:00:00' times/zero-nsec
touch -h -d '2020-01-01 00:00:00.999999999' times/max-nsec
touch -h -d '2022-02-02 02:02:02.000000002' times/symlink
touch -h -d '2019-09-09 09:09:09.090909090' links/long-4095 links/dangling
touch -h -d '2023-05-06 07:08:09.987654321' files/random-3.5M sparse/big-5G
touch -h -d '1980-01-01 00:00:00.000000001' dev/null-like dev/socket dev/fifo
touch -h -d '2024-12-31 23:59:59.999999999' hardlinks/orig

touch -h -d '2011-11-11 11:11:11.111111111' deep/a/b/c/d/e/f/g/h/i/j
touch -h -d '2012-12-12 12:12:12.121212121' deep/a/b/c/d/e
touch -h -d '2013-01-13 13:13:13.131313131' deep/a
touch -h -d '2001-02-03 04:05:06.000000007' times/dir
touch -h -d '2014-04-14 14:14:14.141414141' bigdir emptydir times
touch -h -d '2015-05-15 15:15:15.151515151' .

n=$(find . -printf x | wc -c)
printf '%s: created %s (%s entries)\n' "$prog" "$DIR" "$n" >&2
