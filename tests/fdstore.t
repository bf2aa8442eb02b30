#!/usr/bin/env bash
# skiffd under systemd survives the death of its holder (the process
# that owns the fanotify group): the holder keeps the group and its
# journal of unanswered events in systemd's fd store, and a skiffd that
# systemd restarts adopts both (skiffd(8), RESTART AND UPGRADE, SYSTEMD).
# fdsup plays systemd: the notify socket, the fd store and its size,
# Restart=on-failure and KillMode=control-group. A read in flight at the
# holder's death gets the right bytes, with systemd 254+ (which says the
# store's size: the server exits) and before it (the server becomes the
# holder until systemd's stop timeout ends it). 8 readers go through two
# images while the holder is SIGKILLed SKIFF_HOLDER_KILLS times (default
# 10): no read hangs or returns a wrong byte, and none fails but those
# the log counts as read by a dead holder and not yet journaled (a window
# of microseconds, answered with EIO by design). A stop is refused while
# a lazy mount is up; a store too small is said at start.
. "$(dirname "$0")/lib.sh"
need_root
command -v curl >/dev/null || skip_all "curl missing (scripts/setup.sh installs it)"
[ -x "$READCHECK" ] && [ -x "$FDSUP" ] || skip_all "build readcheck and fdsup first (make)"
need_fanotify_skiffd
KILLS=${SKIFF_HOLDER_KILLS:-10}

# the unit skiff ships is the one fdsup plays
UNIT=$ROOT/systemd/skiffd.service.in
for kv in Type=notify NotifyAccess=main Restart=on-failure KillMode=control-group \
	StartLimitIntervalSec=0 RefuseManualStop=yes TimeoutStartSec=infinity; do
	t_ok "skiffd.service: $kv" grep -qx "$kv" "$UNIT"
done
t_ok "skiffd.service: an fd store" grep -qE "^FileDescriptorStoreMax=[1-9]" "$UNIT"
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$T/unit"
	sed "s|@BINDIR@|$ROOT/build|" "$UNIT" >"$T/unit/skiffd.service"
	t_is "systemd-analyze verify finds nothing to say of it" \
		"$(systemd-analyze verify --man=no "$T/unit/skiffd.service" 2>&1)" ""
else
	t_skip "systemd-analyze missing: the unit is not verified"
fi

random_images "$T/src" 4 || done_testing

# 1. one read in flight (the store answers after 2 s) when the holder dies
export SKIFF_TEST_FETCH_DELAY_MS=2000
SKIFFD_WRAP="$FDSUP -m 8 -t 10 -s $T/notify.sock --"
t_ok "skiffd starts under the test supervisor" \
	start_skiffd --frontend fanotify --readahead 0 --ahead 0 || done_testing
unset SKIFF_TEST_FETCH_DELAY_MS
t_ok "systemd hears READY=1 from the holder" logged "fdsup: ready: main process" 60
t_ok "... after it stored the group" \
	logged_before "fdsup: stored fanotify in the fd store" "fdsup: ready: main process" 1
t_ok "... and its journal" \
	logged_before "fdsup: stored journal in the fd store" "fdsup: ready: main process" 1
t_no_grep "no other process of skiffd's speaks to systemd" "fdsup: ignored a message" \
	"$T/skiffd.log"
t_ok "mount image a" skiff_mount "$T/store:a" "$T/mnt/a"
holder=$(holder_pid)
t_ok "the holder ($holder) is fdsup's main process" test "$(ps -o ppid= -p "$holder" | tr -d ' ')" = "$SKIFFD_PID"
dd if="$T/mnt/a/f1" of="$T/inflight.out" bs=4096 count=1 2>"$T/inflight.err" &
reader=$!
t_ok "the reader waits on a fetch in flight" metric_above skiff_reads_total 0
kill -KILL "$holder"
t_ok "systemd restarts skiffd with the two stored fds" \
	logged "main process $holder died \\(signal 9\\): restarting with 2 stored fds" 10
t_ok "... once the server, which knows the fds are kept, exited by itself" \
	logged "the holder is gone: exiting; systemd restarts skiffd" 10
t_ok "... (no SIGKILL needed)" logged "fdsup: process group [0-9]+ gone after SIGTERM" 10
st=0
reaped "$reader" 60 || st=$?
t_is "the reader finished without error" "$st" 0
t_ok "... with the right bytes (not zeros)" cmp "$T/inflight.out" <(head -c 4096 "$T/src/a/f1")
t_ok "the new holder adopted the group from the fd store" \
	grep -q "adopted the fanotify fd of a dead holder from systemd's fd store" "$T/skiffd.log"
t_ok "... and the unanswered event from the journal" \
	grep -qE "adopted [1-9][0-9]* unanswered events from the journal" "$T/skiffd.log"
t_ok "... which its server served" test "$(metric skiff_events_adopted_total)" -ge 1
t_ok "a new holder serves" test "$(holder_pid)" != "$holder"
t_ok "the image is registered again, and reads right" \
	"$READCHECK" -r 1 "$T/mnt" "$T/src" a/f2
# a stop (systemd's SIGTERM) with the lazy mount up is refused
holder=$(holder_pid)
kill -TERM "$SKIFFD_PID"
t_ok "a stop with a lazy mount up is refused, naming it" \
	logged "signal 15: not stopping: 1 lazy mount is up.*$T/mnt/a \\(" 10
t_ok "... and skiffd goes on serving" "$READCHECK" -r 1 "$T/mnt" "$T/src" a/f3
t_is "... under the same holder" "$(holder_pid)" "$holder"
t_ok "skiff umount" skiff_umount "$T/mnt/a"
t_ok "skiffd stops (exit 0) once nothing is mounted" stop_skiffd
t_ok "... and gives the fds back to systemd" grep -q "fdsup: removed fanotify from the fd store" \
	"$T/skiffd.log"

# 1b. systemd before 254 says nothing of its store's size: the server
#     whose holder dies starts a new holder itself, which serves until
#     systemd, whose stop timeout it outlives (a lazy mount is up), kills
#     it; the restarted skiffd adopts the same group and journal
rm -rf "$T/cache" "$T/work"
: >"$T/skiffd.log"
export SKIFF_TEST_FETCH_DELAY_MS=2000
SKIFFD_WRAP="$FDSUP -m 8 -n -t 5 -s $T/notify.sock --"
t_ok "skiffd starts under a supervisor that does not say the store's size" \
	start_skiffd --frontend fanotify --readahead 0 --ahead 0 || done_testing
unset SKIFF_TEST_FETCH_DELAY_MS
t_ok "the holder says it cannot know the store keeps the fds" \
	logged "its size is not known: FileDescriptorStoreMax must be 2 or more" 5
t_ok "mount image a" skiff_mount "$T/store:a" "$T/mnt/a"
holder=$(holder_pid)
dd if="$T/mnt/a/f2" of="$T/inflight.out" bs=4096 count=1 2>"$T/inflight.err" &
reader=$!
t_ok "the reader waits on a fetch in flight" metric_above skiff_reads_total 0
kill -KILL "$holder"
t_ok "the server starts a new holder" logged "the new holder took the group over: exiting" 10
t_ok "systemd kills it after its stop timeout" logged "still there after 5 s: SIGKILL" 20
t_ok "... and restarts skiffd with the stored fds" \
	logged "adopted the fanotify fd of a dead holder from systemd's fd store" 20
st=0
reaped "$reader" 60 || st=$?
t_is "the reader finished without error" "$st" 0
t_ok "... with the right bytes (not zeros)" cmp "$T/inflight.out" <(head -c 4096 "$T/src/a/f2")
t_ok "skiff umount" skiff_umount "$T/mnt/a"
t_ok "skiffd stops" stop_skiffd

# 1c. a store too small to keep the fds (FileDescriptorStoreMax=1): said
rm -rf "$T/cache" "$T/work"
SKIFFD_WRAP="$FDSUP -m 1 -s $T/notify.sock --"
t_ok "skiffd starts under a supervisor with a store of one fd" \
	start_skiffd --frontend fanotify || done_testing
t_ok "the holder says the store is too small" \
	logged "fd store holds 1 fds \\(FileDescriptorStoreMax\\): too few" 5
t_ok "skiffd stops" stop_skiffd
SKIFFD_WRAP="$FDSUP -m 8 -t 10 -s $T/notify.sock --"

# 2. holder kills under load, from a cold cache behind a 400 kB/s link
rm -rf "$T/cache" "$T/work"
: >"$T/skiffd.log"
export SKIFF_TEST_FETCH_BPS=400000
t_ok "skiffd starts under the test supervisor (slow store)" \
	start_skiffd --frontend fanotify --readahead 0 --ahead 0 || done_testing
unset SKIFF_TEST_FETCH_BPS
mount_random_images || done_testing
t0=$SECONDS
READCHECK_FLAGS=-e
t_ok "$KILLS holder kills under 8 readers: every byte right, no read hung" \
	under_readers "$T/mnt" "$T/src" kill_holders "$KILLS"
unset READCHECK_FLAGS
diag "holder kills: $((SECONDS - t0)) s; readcheck: $(cat "$T/readers.out")"
eio=$(awk '{ for (i = 1; i < NF; i++) if ($i == "eio") print $(i + 1) }' "$T/readers.out")
lost=$(grep -oE "[0-9]+ events the dead holder had read but not recorded, and [0-9]+" \
	"$T/skiffd.log" | awk '{ s += $1 + $NF } END { print s + 0 }')
t_ok "reads failed with EIO ($eio) only for events the log says were lost ($lost)" \
	test "${eio:-x}" -le "$lost"
t_is "systemd restarted skiffd after each" "$(grep -c "fdsup: main process .* died" "$T/skiffd.log")" \
	"$KILLS"
t_is "each restart adopted the group from the fd store" \
	"$(grep -c "adopted the fanotify fd of a dead holder from systemd's fd store" "$T/skiffd.log")" \
	"$KILLS"
t_no_grep "no server ever saw an event for a file it did not know" \
	"event for a cache file no image uses" "$T/skiffd.log"
t_ok "the last server fetched too (counters go on)" \
	test "$(metric skiff_fetched_chunks_total)" -gt 0
t_ok "both trees read whole and right after the kills" \
	"$READCHECK" -r 2 "$T/mnt" "$T/src" "${READ_FILES[@]}"

for img in a b; do
	t_ok "skiff umount $img" skiff_umount "$T/mnt/$img"
done
t_ok "skiffd stops once nothing is mounted" stop_skiffd
done_testing
