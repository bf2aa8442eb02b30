#!/usr/bin/env bash
# run-guest.sh [OPTIONS] SCRIPT [ARGS...]
#
# Runs `bash SCRIPT ARGS...` as root inside a QEMU guest (TCG) booting the
# test kernel of scripts/build-test-kernel.sh (Linux 6.1 or 6.12, --kernel; with cachefiles
# on-demand and EROFS over fscache), and exits with the script's status.
#
# The guest sees this machine's root filesystem read-only over 9p, so
# binaries built here a moment ago (build/skiff, ...) run there unchanged,
# at the same paths. Writable in the guest: tmpfs on /tmp, /run, /var/tmp
# and /mnt (except the directories of SCRIPT, of this repository and the
# current directory, which stay visible when they lie below those), and a
# fresh ext4 disk on /var/cache/skiff (cachefiles needs a real
# filesystem for its cache directory). Nothing the guest does reaches the
# host's files.
#
# The script's stdout and stderr are relayed line by line (the guest's
# console); stdin is /dev/null; the environment is PATH, HOME=/root,
# TMPDIR=/var/tmp, LANG=C.UTF-8, plus --env settings; the working
# directory is the caller's.
#
# Options:
#   --timeout SECONDS   whole run, boot included (default 600); on expiry
#                       QEMU is killed and the exit status is 124
#   --mem MIB           guest memory (default 2048)
#   --smp N             guest CPUs (default 2)
#   --disk-size SIZE    the ext4 cache disk, sparse (default 1G)
#   --env NAME=VALUE    set in the script's environment (repeatable)
#   --keep DIR          keep DIR (of this machine) visible in the guest
#                       when it lies below one of the tmpfs mounts above,
#                       like the script's directory (repeatable)
#   --log FILE          also write the raw console (kernel messages too)
#   --kernel BZIMAGE    boot this kernel instead of the cached test kernel
#                       (also: $SKIFF_KERNEL)
# Exit status: the script's; 124 on timeout; 1 when the guest died
# before reporting one (kernel panic, setup failure; see its output).
set -euo pipefail

prog=run-guest
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

timeout_s=600 mem=2048 smp=2 disk_size=1G log='' kernel=${SKIFF_KERNEL:-}
envs=() keeps=()
while [ $# -gt 0 ]; do
	case $1 in
	--timeout) timeout_s=${2:?}; shift 2 ;;
	--mem) mem=${2:?}; shift 2 ;;
	--smp) smp=${2:?}; shift 2 ;;
	--disk-size) disk_size=${2:?}; shift 2 ;;
	--env)
		[[ ${2:-} =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants NAME=VALUE"
		envs+=("$2"); shift 2 ;;
	--keep)
		keeps+=("$(realpath -e -- "${2:?}")") || die "no such directory: $2"
		shift 2 ;;
	--log) log=${2:?}; shift 2 ;;
	--kernel) kernel=${2:?}; shift 2 ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
[[ $timeout_s =~ ^[0-9]+$ ]] || die "--timeout wants seconds"
script=$(realpath -e -- "$1") || die "no such script: $1"
shift

for tool in qemu-system-x86_64 cpio gzip mkfs.ext4 truncate timeout; do
	command -v "$tool" >/dev/null || die "missing $tool (Debian packages qemu-system-x86, cpio, gzip, e2fsprogs, coreutils)"
done
BUSYBOX=/bin/busybox
if [ ! -x $BUSYBOX ] || ldd $BUSYBOX >/dev/null 2>&1; then
	die "need a static $BUSYBOX (Debian package busybox-static)"
fi
if [ -z "$kernel" ]; then
	kernel=$("$ROOT/scripts/build-test-kernel.sh") || die "no test kernel"
fi
[ -r "$kernel" ] || die "cannot read kernel $kernel"
# the guest mounts its cache disk here; the 9p root is read-only, so the
# mount point must exist on this machine (the daemon's default cache path)
[ -d /var/cache/skiff ] || mkdir -p /var/cache/skiff ||
	die "cannot create /var/cache/skiff (the guest's mount point)"

W=$(mktemp -d "${TMPDIR:-/var/tmp}/skiff-guest.XXXXXX")
# markers with a nonce, so no output of the script can pass for them
nonce=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
START=SKIFF-GUEST-START-$nonce
MARKER=SKIFF-GUEST-EXIT-$nonce
qpid=
cleanup() {
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the initramfs: static busybox, /init, and what to run
R=$W/initramfs
mkdir -p "$R/bin" "$R/dev" "$R/proc" "$R/sys" "$R/host" "$R/keep" "$R/guest"
cp $BUSYBOX "$R/bin/busybox"

# The wrapper that runs in the chroot, generated with bash quoting for
# bash: the script path and its arguments pass through untouched.
{
	echo '#!/bin/bash'
	printf 'exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
	printf ' HOME=/root TMPDIR=/var/tmp LANG=C.UTF-8 TERM=dumb SKIFF_GUEST=1'
	for e in "${envs[@]}"; do printf ' %q' "$e"; done
	printf ' /bin/bash -c %q' 'cd -- "$1" 2>/dev/null || cd /; shift; exec /bin/bash "$@"'
	printf ' run-guest %q %q' "$PWD" "$script"
	for a in "$@"; do printf ' %q' "$a"; done
	echo
} >"$R/guest/run.sh"
# directories that must stay visible when a tmpfs covers their parent
printf '%s\n' "$(dirname "$script")" "$ROOT" "$PWD" ${keeps[@]+"${keeps[@]}"} >"$R/guest/keep"

cat >"$R/init" <<'EOF'
#!/bin/busybox sh
# skiff test guest init (generated by kernel-tests/run-guest.sh)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

fail() {
	echo "run-guest: guest setup failed: $*"
	dmesg | tail -n 20
	sync
	reboot -f
}

mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose host /host ||
	fail "cannot mount the host root over 9p"

# tmpfs over the writable places, keeping the listed directories visible
n=0
for d in tmp run var/tmp mnt; do
	whole=
	kept=
	while IFS= read -r k; do
		case $k in
		"/$d") whole=1 ;;
		"/$d"/*)
			n=$((n + 1))
			mkdir -p /keep/$n
			mount -o bind "/host$k" /keep/$n || fail "bind $k"
			kept="$kept $n"
			echo "$k" >/keep/$n.path
			;;
		esac
	done </guest/keep
	[ -n "$whole" ] && continue
	mount -t tmpfs -o mode=1777 tmpfs "/host/$d" || fail "tmpfs on /$d"
	for i in $kept; do
		k=$(cat /keep/$i.path)
		mkdir -p "/host$k" && mount -o move /keep/$i "/host$k" || fail "keep $k"
	done
done

mount -t ext4 /dev/vda /host/var/cache/skiff || fail "cannot mount the cache disk"
mount -t proc proc /host/proc || fail "proc"
mount -t sysfs sysfs /host/sys || fail "sysfs"
mount -t devtmpfs devtmpfs /host/dev || fail "devtmpfs"
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
ln -sf /proc/self/fd /host/dev/fd
ln -sf /proc/self/fd/0 /host/dev/stdin
ln -sf /proc/self/fd/1 /host/dev/stdout
ln -sf /proc/self/fd/2 /host/dev/stderr
mkdir -p /host/run/lock
cp /guest/run.sh /host/run/skiff-guest-run.sh

echo
echo "SKIFF-GUEST-START-@NONCE@"
chroot /host /bin/bash /run/skiff-guest-run.sh </dev/null
st=$?
echo
echo "SKIFF-GUEST-EXIT-@NONCE@ $st"
sync
# let the serial line drain before the reset
sleep 1
reboot -f
EOF
sed -i "s/@NONCE@/$nonce/" "$R/init"
chmod 755 "$R/init" "$R/guest/run.sh"
(cd "$R" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$W/initrd.gz"

# --- the cache disk: sparse ext4, initialised here (not lazily in the guest)
truncate -s "$disk_size" "$W/cache.img"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$W/cache.img" ||
	die "mkfs.ext4 failed"

# --- boot; relay the console; find the exit marker
cmdline="console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off tsc=reliable"
# -cpu max without ERMS/FSRM: TCG runs the kernel's `rep movsb/stosb`
# copies about 5 times slower than its unrolled ones (measured here), and
# every read(2) of file data is such a copy.
# shellcheck disable=SC2054 # commas inside QEMU options
qemu=(qemu-system-x86_64 -accel tcg,thread=multi -cpu max,erms=off,fsrm=off
	-m "$mem" -smp "$smp"
	-nographic -nodefaults -serial stdio -no-reboot -net none
	-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap
	-drive "file=$W/cache.img,if=virtio,format=raw,cache=unsafe"
	-kernel "$kernel" -initrd "$W/initrd.gz" -append "$cmdline")

mkfifo "$W/console"
timeout --kill-after=10 "$timeout_s" "${qemu[@]}" </dev/null >"$W/console" 2>&1 &
qpid=$!

# Only the script's output, between the two markers, is relayed; the
# firmware's and kernel's lines before it go to the log, and are shown
# when the guest never got as far as the script's end.
status='' started='' ever_started='' blank=0
exec 8>>"${log:-/dev/null}"
while IFS= read -r line || [ -n "$line" ]; do
	line=${line//$'\r'/}
	printf '%s\n' "$line" >>"$W/console.log"
	printf '%s\n' "$line" >&8
	if [ -z "$started" ]; then
		# (the firmware's screen codes may precede it on its line)
		[[ $line == *"$START" ]] && started=1 ever_started=1
		continue
	fi
	if [[ $line =~ $MARKER\ ([0-9]+)$ ]]; then
		status=${BASH_REMATCH[1]}
		started=
		continue
	fi
	[ -n "$status" ] && continue # reboot noise after the marker
	# hold empty lines back: /init writes one before the exit marker
	if [ -z "$line" ]; then
		blank=$((blank + 1))
		continue
	fi
	for ((; blank > 0; blank--)); do echo; done
	printf '%s\n' "$line"
done <"$W/console"

qst=0
wait "$qpid" || qst=$?
qpid=
if [ "$qst" -eq 124 ] || [ "$qst" -eq 137 ]; then
	echo "$prog: guest timed out after $timeout_s s" >&2
	[ -n "$ever_started" ] || tail -n 60 "$W/console.log" | sed 's/^/  | /' >&2
	exit 124
fi
if [ -z "$status" ]; then
	echo "$prog: the guest ended without reporting an exit status (qemu exit $qst)" >&2
	[ -n "$ever_started" ] || tail -n 60 "$W/console.log" | sed 's/^/  | /' >&2
	exit 1
fi
exit "$status"
