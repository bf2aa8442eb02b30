#!/usr/bin/env bash
# Live upgrade with lazy mounts up (fanotify): skiff daemon upgrade, 20
# times under 8 readers that check every byte, alternating between two
# copies of skiffd. Each time the serving process answers what it holds
# and ends, the holder (same pid throughout) becomes the new binary,
# keeping the group and the unanswered reads, and starts a server of it.
# No read fails, hangs or returns a wrong byte. A binary that is no
# skiffd of this holder ABI, a path that is not there, and a skiffd
# without its holder are refused with the reason, and so is an upgrade
# asked for while another one is checked.
. "$(dirname "$0")/lib.sh"
need_root
command -v curl >/dev/null || skip_all "curl missing (scripts/setup.sh installs it)"
[ -x "$READCHECK" ] || skip_all "build readcheck first (make)"
need_fanotify_skiffd
UPGRADES=${SKIFF_UPGRADES:-20}

random_images "$T/src" 2 || done_testing
cp "$SKIFFD" "$T/skiffd-a"
cp "$SKIFFD" "$T/skiffd-b"

# the store behind a 400 kB/s link: the 16 MiB take 40 s, so reads are
# in flight at each upgrade
export SKIFF_TEST_FETCH_BPS=400000
t_ok "skiffd starts (fanotify, holder)" start_skiffd --frontend fanotify --readahead 0 --ahead 0 ||
	done_testing
unset SKIFF_TEST_FETCH_BPS
mount_random_images || done_testing

t0=$SECONDS
t_ok "$UPGRADES upgrades under 8 readers: every byte right, no read failed or hung" \
	under_readers "$T/mnt" "$T/src" upgrade_servers "$UPGRADES" "$T/skiffd-a" "$T/skiffd-b"
diag "upgrades: $((SECONDS - t0)) s; readcheck: $(cat "$T/readers.out")"
diag "skiff daemon upgrade: $(grep -o '[0-9.]* s after' "$T/upgrades.log" | sort -n | tail -n 1) at most"
t_is "every upgrade started a new server" "$("$SKIFF" status --json | jq .generation)" \
	"$((UPGRADES + 1))"
t_is "... under the same holder" "$("$SKIFF" status --json | jq .holder_pid)" "$SKIFFD_PID"
last=$([ $((UPGRADES % 2)) = 1 ] && echo a || echo b)
t_is "... which runs the last binary" "$("$SKIFF" status --json | jq -r .binary)" "$T/skiffd-$last"
t_is "the holder became each binary in turn" "$(grep -c "took over as the holder" "$T/skiffd.log")" \
	"$UPGRADES"
t_ok "at least one upgrade came with reads waiting (handed to the new server)" \
	grep -q "took over as the holder ([1-9][0-9]* unanswered" "$T/skiffd.log"
t_ok "both trees read whole and right after the upgrades" \
	"$READCHECK" -r 2 "$T/mnt" "$T/src" "${READ_FILES[@]}"

gen=$("$SKIFF" status --json | jq .generation)
t_fails_msg "a binary that is no skiffd is refused, naming the ABI" "speaks holder ABI" \
	"$SKIFF" daemon upgrade --binary /bin/true
t_fails_msg "a binary that is not there is refused" "No such file" \
	"$SKIFF" daemon upgrade --binary "$T/nothing"
t_is "... by skiffd too (the API)" "$(curl -s -o /dev/null -w '%{http_code}' \
	--unix-socket "$SKIFF_SOCKET" -X POST -d '{"binary": "/nonexistent/skiffd"}' \
	http://skiffd/v1/upgrade)" 400
t_is "... and neither replaced the server" "$("$SKIFF" status --json | jq .generation)" "$gen"
t_ok "without --binary, skiffd upgrades to what it runs from" "$SKIFF" daemon upgrade
t_is "... the same path" "$("$SKIFF" status --json | jq -r .binary)" "$T/skiffd-$last"
t_ok "the trees still read right" "$READCHECK" -r 2 "$T/mnt" "$T/src" "${READ_FILES[@]}"

# two upgrades at once: while the first one's binary is checked (this one
# takes a second to answer --holder-abi), a second is refused
printf '#!/bin/sh\nsleep 1\nexec %s "$@"\n' "$T/skiffd-a" >"$T/skiffd-slow"
chmod +x "$T/skiffd-slow"
gen=$("$SKIFF" status --json | jq .generation)
upgrade_code() {
	curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SKIFF_SOCKET" -X POST \
		-d "{\"binary\": \"$1\"}" http://skiffd/v1/upgrade
}
upgrade_code "$T/skiffd-slow" >"$T/first.code" &
first=$!
sleep 0.3
t_is "a second upgrade while the first is checked is refused" "$(upgrade_code "$T/skiffd-a")" 409
wait "$first"
t_is "... and the first goes on" "$(cat "$T/first.code")" 200
for _ in $(seq 1 300); do
	[ "$("$SKIFF" status --json 2>/dev/null | jq .generation)" = $((gen + 1)) ] && break
	sleep 0.1
done
t_is "... to one new server" "$("$SKIFF" status --json | jq .generation)" $((gen + 1))
t_is "... of the binary it named (through the script)" "$("$SKIFF" status --json | jq -r .binary)" \
	"$T/skiffd-a"
t_ok "the trees still read right after it" "$READCHECK" -r 1 "$T/mnt" "$T/src" "${READ_FILES[@]}"
for img in a b; do
	t_ok "skiff umount $img" skiff_umount "$T/mnt/$img"
done
t_ok "skiffd stops" stop_skiffd

t_ok "skiffd starts without its holder" start_skiffd --frontend fanotify --no-holder || done_testing
t_fails_msg "an upgrade is refused: nothing would keep the group" "without its holder" \
	"$SKIFF" daemon upgrade
t_ok "skiffd stops" stop_skiffd
done_testing
