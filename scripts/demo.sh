#!/usr/bin/env bash
# The demo behind `make demo`: turn a real directory of this machine into
# a skiff image, start skiffd, mount the image lazily, use it, and show
# what had to be fetched. Leaves nothing behind.
#
# skiffd serves lazily through fanotify pre-content events (Linux 6.14+)
# or cachefiles on-demand mode. On a kernel with neither, the demo runs
# itself inside the kernel-test guest (Linux 6.1 with cachefiles, QEMU);
# SKIFF_DEMO_GUEST=1 asks for that directly. Without QEMU it mounts the
# exported cache files instead (everything decompressed first) and says so.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SKIFF=$ROOT/build/skiff
SKIFFD=$ROOT/build/skiffd
SRC=${1:-/usr/share/doc}
# in the guest, the cache must be on its ext4 disk (cachefiles refuses tmpfs)
base=/var/tmp
[ -n "${SKIFF_GUEST:-}" ] && base=/var/cache/skiff
W=$(mktemp -d "$base/skiff-demo.XXXXXX")
MNT=$W/mnt
export SKIFF_SOCKET=$W/skiffd.sock
loops=()
pid=

cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && { "$SKIFF" umount "$MNT" >/dev/null 2>&1 || umount "$MNT"; }
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	rm -rf "$W"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
metric() {
	curl -s --unix-socket "$SKIFF_SOCKET" http://skiffd/metrics | awk -v n="$1" '$1 == n { print $2 }'
}

in_guest() {
	[ -z "${SKIFF_GUEST:-}" ] && [ -x "$ROOT/kernel-tests/run-guest.sh" ] &&
		command -v qemu-system-x86_64 >/dev/null || return 1
	step "no lazy frontend here: running the demo in the kernel-test guest (Linux 6.1, cachefiles)"
	cleanup
	trap - EXIT
	"$ROOT/scripts/build-test-kernel.sh" >/dev/null
	exec "$ROOT/kernel-tests/run-guest.sh" --timeout 900 "$ROOT/scripts/demo.sh" "$SRC"
}
[ "${SKIFF_DEMO_GUEST:-0}" = 1 ] && in_guest

step "build an image of $SRC"
"$SKIFF" build "$SRC" "$W/store:demo"
"$SKIFF" check "$W/store:demo"
stored=$("$SKIFF" inspect --json "$W/store:demo" | jq '[.blobs[].stored_size] | add // 0')

if [ "$(id -u)" -ne 0 ]; then
	echo "(not root: cannot mount; run 'sudo make demo')"
	exit 0
fi

step "start skiffd"
mkfifo "$W/ready"
"$SKIFFD" --cache-dir "$W/cache" --work-dir "$W/work" --socket "$SKIFF_SOCKET" --ready-fd 3 \
	3>"$W/ready" 2>"$W/skiffd.log" &
pid=$!
read -r -t 30 line <"$W/ready" || true
if [ "${line:-}" != READY ]; then
	sed 's/^/  skiffd: /' "$W/skiffd.log"
	wait "$pid" 2>/dev/null || true
	pid=
	in_guest || true
	echo "skiffd cannot serve lazily on this kernel: mounting the exported cache files instead"
	opts=ro
	for id in $("$SKIFF" export-cache "$W/store:demo" "$W/export"); do
		l=$(losetup -f --show -r "$W/export/$id")
		loops+=("$l")
		opts="$opts,device=$l"
	done
	mkdir -p "$MNT"
	mount -t erofs -o "$opts" "$W/export/bootstrap" "$MNT"
	find "$MNT" -type f | wc -l
	exit 0
fi
head -n 1 "$W/skiffd.log"

step "mount it lazily"
mkdir -p "$MNT"
t0=$(date +%s.%N)
"$SKIFF" mount "$W/store:demo" "$MNT"
t1=$(date +%s.%N)
printf 'mounted in %.3f s; fetched so far: %s bytes\n' "$(echo "$t1 - $t0" | bc)" "$(metric skiff_fetched_bytes_total)"

step "use it: list everything, read a few files"
n=$(find "$MNT" | wc -l)
echo "$n entries listed (metadata only: nothing fetched: $(metric skiff_fetched_bytes_total) bytes)"
read_files=0
while IFS= read -r f; do
	cat "$f" >/dev/null
	read_files=$((read_files + 1))
done < <(find "$MNT" -type f -name 'copyright' | head -n 20)
f=$(find "$MNT" -type f -name copyright -print -quit)
echo "read $read_files copyright files, e.g. ${f#"$MNT"/}:"
head -n 3 "$f" | sed 's/^/    /'
cmp "$f" "$SRC/${f#"$MNT"/}" && echo "    (identical to the original)"
t2=$(date +%s.%N)

step "what skiffd fetched"
fetched=$(metric skiff_fetched_bytes_total)
printf '%-34s %s\n' "files read" "$read_files" \
	"read events from the kernel" "$(metric skiff_events_total)" \
	"chunks fetched from the store" "$(metric skiff_fetched_chunks_total)" \
	"bytes fetched" "$fetched" \
	"image size (stored blobs)" "$stored" \
	"fraction of the image fetched" "$(awk -v a="$fetched" -v b="$stored" 'BEGIN { printf "%.2f%%", b ? 100 * a / b : 0 }')" \
	"time from mount to done" "$(printf '%.2f s' "$(echo "$t2 - $t0" | bc)")"
"$SKIFF" status

step "done: unmounting, stopping skiffd, cleaning up"
"$SKIFF" umount "$MNT"
