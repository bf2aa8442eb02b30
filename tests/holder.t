#!/usr/bin/env bash
# The fanotify holder never lets the kernel read holes as zeros: while the
# serving process keeps dying at start, the holder keeps the group open,
# answers the reads that reach it with EIO itself and tries again after a
# growing pause; once a server runs again, the same files read right (no
# zeros were handed out, so none stay in the page cache). A stop with a
# lazy mount up (SIGTERM, skiff stop) is refused, naming the mount;
# skiff stop --force stops anyway, and once nothing is lazy a stop works.
# A read that makes every serving process fault is answered with EIO
# after three of them crashed on it.
. "$(dirname "$0")/lib.sh"
need_root
command -v curl >/dev/null || skip_all "curl missing (scripts/setup.sh installs it)"
need_fanotify_skiffd

SRC=$T/src
mkdir -p "$SRC"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$SRC/data"
echo "a small file" >"$SRC/small"
IMG=$T/store
t_ok "build an image with 64K chunks" "$SKIFF" build -q --chunk-size 64K "$SRC" "$IMG:a" ||
	done_testing

# the serving process dies at start while $T/crash exists (a test hook
# of skiffd, read at each start of a serving process)
export SKIFF_TEST_SERVER_CRASH_FILE=$T/crash
t_ok "skiffd starts (fanotify, holder)" start_skiffd --frontend fanotify --readahead 0 --ahead 0 ||
	done_testing
MNT=$T/mnt
t_ok "skiff mount" skiff_mount "$IMG:a" "$MNT" || done_testing
t_ok "the small file reads right" cmp "$MNT/small" "$SRC/small"
server=$("$SKIFF" status --json | jq .pid)
t_ok "a holder ($SKIFFD_PID) runs a server ($server)" \
	test "$server" -gt 0 -a "$server" != "$SKIFFD_PID"
t_is "... the holder's first (generation 1)" "$("$SKIFF" status --json | jq .generation)" 1
t_is "... handed no reads at its start" "$("$SKIFF" status --json | jq .handed_over)" 0
t_is "... its holder is named" "$("$SKIFF" status --json | jq .holder_pid)" "$SKIFFD_PID"

touch "$T/crash"
kill -KILL "$server"
logged "keeps dying" 30
t_grep "the holder sees the server keep dying" \
	"the serving process keeps dying: reads of what is not cached get EIO" "$T/skiffd.log"
t_grep "... each one the test hook" "the serving process dies at start" "$T/skiffd.log"
t_ok "the holder is still up" kill -0 "$SKIFFD_PID"
t_fails_msg "a read of data not cached gets EIO, not zeros" "Input/output error" \
	timeout 30 dd if="$MNT/data" of="$T/denied.out" bs=64k count=1
size=$(stat -c %s "$T/denied.out" 2>/dev/null || echo 0)
t_ok "... what it gave ($size bytes) is the source's, not zeros" \
	cmp -n "$size" "$T/denied.out" "$SRC/data"
t_ok "the small file still reads right (from the page cache)" cmp "$MNT/small" "$SRC/small"

rm -f "$T/crash"
up=
for _ in $(seq 1 600); do
	new=$("$SKIFF" status --json 2>/dev/null | jq -r '.pid // empty' 2>/dev/null)
	if [ -n "$new" ] && [ "$new" != "$server" ]; then
		up=$new
		break
	fi
	sleep 0.1
done
t_ok "the holder tries again and a server ($up) runs" test -n "$up"
gen=$("$SKIFF" status --json | jq .generation)
t_ok "... a later generation ($gen) than the first" test "$gen" -gt 6
t_grep "skiff status says which" "serving process $up \\(generation $gen under holder $SKIFFD_PID\\)" \
	<("$SKIFF" status)
t_grep "... after a pause" "trying a serving process again" "$T/skiffd.log"
t_ok "the file denied before reads right now" timeout 60 cmp "$MNT/data" "$SRC/data"
t_ok "the holder still holds the group (same holder)" kill -0 "$SKIFFD_PID"
t_ok "skiff umount" skiff_umount "$MNT"
t_ok "skiffd stops cleanly" stop_skiffd
unset SKIFF_TEST_SERVER_CRASH_FILE

# a stop with a lazy mount up: the group would close, and the kernel
# would read the holes as zeros
rm -rf "$T/cache" "$T/work"
t_ok "skiffd starts on an empty cache" start_skiffd --frontend fanotify --readahead 0 --ahead 0 ||
	done_testing
t_ok "skiff mount" skiff_mount "$IMG:a" "$MNT"
t_ok "the small file reads right (the rest is not cached)" cmp "$MNT/small" "$SRC/small"
kill -TERM "$SKIFFD_PID"
logged "not stopping" 10
t_grep "SIGTERM is refused, naming the lazy mount" \
	"signal 15: not stopping: 1 lazy mount is up.*$MNT \\(" "$T/skiffd.log"
t_ok "skiffd still runs" kill -0 "$SKIFFD_PID"
t_ok "... and serves: the first 64K of the big file read right" \
	timeout 30 cmp -n 65536 "$MNT/data" "$SRC/data"
t_fails_msg "skiff stop is refused, naming the mount" "lazy mount is up, .*: $MNT \\(" "$SKIFF" stop
t_ok "skiffd still runs" kill -0 "$SKIFFD_PID"
t_ok "skiff stop --force stops it" "$SKIFF" stop --force
st=0
ends "$SKIFFD_PID" 30 || st=$?
t_is "... the holder with it, status 0" "$st" 0
t_grep "... after answering what it had" "signal 15: stopping" "$T/skiffd.log"
SKIFFD_PID=
umount "$MNT"

# nothing lazy: a whole read makes the blob complete, and a stop works
t_ok "skiffd starts again" start_skiffd --frontend fanotify --readahead 0 --ahead 0 ||
	done_testing
t_ok "mount" skiff_mount "$IMG:a" "$MNT"
t_ok "the whole image reads right" cmp "$MNT/data" "$SRC/data"
t_is "its blob is complete, no longer watched" \
	"$("$SKIFF" status --json | jq '.images[0].blobs[0].watched')" false
t_ok "skiff stop stops it with the mount up" "$SKIFF" stop
st=0
ends "$SKIFFD_PID" 30 || st=$?
t_is "... the holder with it, status 0" "$st" 0
SKIFFD_PID=
t_ok "the mount still reads right without skiffd" cmp "$MNT/data" "$SRC/data"
umount "$MNT"

# a read that makes every serving process fault (a test hook: reading
# that cache-file offset aborts the server) is handed to three servers in
# a row, then answered with EIO by the holder; other reads go on
rm -rf "$T/cache" "$T/work"
ulimit -c 0
export SKIFF_TEST_POISON_OFFSET=$((2 * 1024 * 1024))
t_ok "skiffd starts (a poisoned offset)" start_skiffd --frontend fanotify --readahead 0 --ahead 0 ||
	done_testing
unset SKIFF_TEST_POISON_OFFSET
t_ok "mount" skiff_mount "$IMG:a" "$MNT"
t_ok "the first 64K read right" cmp -n 65536 "$MNT/data" "$SRC/data"
t_fails_msg "a read of the poisoned range fails with EIO, not a hang" "Input/output error" \
	timeout 120 dd if="$MNT/data" of=/dev/null bs=64K skip=32 count=1
faults=$(grep -c "test: a read of offset .*: the serving process faults" "$T/skiffd.log")
t_ok "three serving processes in a row faulted on each request for it ($faults)" \
	test "$faults" -ge 3 -a $((faults % 3)) = 0
t_is "... then the holder answered each with an error" \
	"$(grep -c "answered 1 requests with errors: 3 serving processes in a row crashed" \
		"$T/skiffd.log")" $((faults / 3))
t_ok "the holder still runs" kill -0 "$SKIFFD_PID"
t_ok "the first 2 MiB read right" cmp -n $((2 * 1024 * 1024)) "$MNT/data" "$SRC/data"
t_ok "... and what follows the poisoned 128K" \
	cmp <(tail -c +$((2 * 1024 * 1024 + 131072 + 1)) "$MNT/data") \
	<(tail -c +$((2 * 1024 * 1024 + 131072 + 1)) "$SRC/data")
t_ok "skiff umount" skiff_umount "$MNT"
t_ok "skiffd stops" stop_skiffd
done_testing
