#!/usr/bin/env bash
# The fanotify frontend under a crash loop: 8 readers go through two
# lazily mounted images, every byte checked against the source, while the
# serving process is SIGKILLed 50 times at random moments (each time the
# holder starts another, which takes the group, the registered images
# and the unanswered reads). No read fails, hangs or returns a wrong byte,
# and the servers go on fetching. SKIFF_CRASH_KILLS sets the number of
# kills (bench/ runs the long version).
. "$(dirname "$0")/lib.sh"
need_root
command -v curl >/dev/null || skip_all "curl missing (scripts/setup.sh installs it)"
[ -x "$READCHECK" ] || skip_all "build readcheck first (make)"
need_fanotify_skiffd
KILLS=${SKIFF_CRASH_KILLS:-50}

# two images of many 64K chunks, so that cold reads go on through the
# kills: 8 files of 4 MiB each
random_images "$T/src" 4 || done_testing

# the store behind a 400 kB/s link: the 32 MiB take over a minute, so
# reads are in flight whenever a kill comes
export SKIFF_TEST_FETCH_BPS=400000
t_ok "skiffd starts (fanotify, holder)" start_skiffd --frontend fanotify --readahead 0 --ahead 0 ||
	done_testing
unset SKIFF_TEST_FETCH_BPS
mount_random_images || done_testing

t0=$SECONDS
t_ok "$KILLS kills of the serving process under 8 readers: every byte right, no read failed or hung" \
	under_readers "$T/mnt" "$T/src" kill_servers "$KILLS"
diag "crash loop: $((SECONDS - t0)) s; readcheck: $(cat "$T/readers.out")"
t_is "every kill was followed by a new server" "$("$SKIFF" status --json | jq .generation)" \
	"$((KILLS + 1))"
t_ok "the holder is the one that started" kill -0 "$SKIFFD_PID"
t_ok "reads waiting at a kill were handed to the next server" \
	grep -q "handed [0-9]* unanswered requests" "$T/skiffd.log"
t_ok "the last server fetched too (counters go on)" \
	test "$(metric skiff_fetched_chunks_total)" -gt 0
t_ok "both trees read whole and right after the loop" \
	"$READCHECK" -r 2 "$T/mnt" "$T/src" "${READ_FILES[@]}"
t_no_grep "no server ever saw an event for a file it did not know" \
	"event for a cache file no image uses" "$T/skiffd.log"
for img in a b; do
	t_ok "skiff umount $img" skiff_umount "$T/mnt/$img"
done
t_ok "skiffd stops" stop_skiffd
done_testing
