#!/usr/bin/env bash
# The helpers of lib.sh judge what the other tests assert, so they are
# tested too: t_fails passes on an error status and fails on success and
# on a death by signal (a crash is never the failure a test expects) and
# on a hang that timeout(1) ended;
# t_fails_msg also wants the error message; t_no_grep fails on a match
# and on a file it cannot read; logged_before fails when the first line
# came after the second or never. Each helper runs in a
# subshell whose TAP line is captured, not counted.
. "$(dirname "$0")/lib.sh"

# verdict HELPER ARGS...: "ok" or "not ok", what the helper printed
verdict() {
	("$@") 2>/dev/null | sed -n 's/^\(not ok\|ok\) [0-9]* - .*/\1/p'
}

t_is "t_fails: an error status passes" "$(verdict t_fails x false)" "ok"
t_is "t_fails: exit status 128 passes" "$(verdict t_fails x bash -c 'exit 128')" "ok"
t_is "t_fails: success fails" "$(verdict t_fails x true)" "not ok"
t_is "t_fails: a death by SIGSEGV fails" \
	"$(verdict t_fails x bash -c 'kill -SEGV $$')" "not ok"
t_is "t_fails: a death by SIGKILL fails" \
	"$(verdict t_fails x bash -c 'kill -KILL $$')" "not ok"
t_grep "... saying which signal" "died by signal 9" <(t_fails x bash -c 'kill -KILL $$' 2>&1)
t_is "t_fails: a hang ended by timeout fails" "$(verdict t_fails x timeout 0.2 sleep 5)" "not ok"
t_grep "... saying so" "did not end in time" <(t_fails x timeout 0.2 sleep 5 2>&1)
t_is "t_fails: an error under timeout passes" "$(verdict t_fails x timeout 5 false)" "ok"
t_is "t_fails: the output is kept in \$T/.out" \
	"$(t_fails x bash -c 'echo the reason; exit 3' >/dev/null; cat "$T/.out")" "the reason"

t_is "t_fails_msg: an error with the message passes" \
	"$(verdict t_fails_msg x 'no such image' bash -c 'echo "skiff: no such image" >&2; exit 1')" "ok"
t_is "t_fails_msg: an error with another message fails" \
	"$(verdict t_fails_msg x 'no such image' bash -c 'echo "skiff: bad" >&2; exit 1')" "not ok"
t_is "t_fails_msg: success with the message fails" \
	"$(verdict t_fails_msg x 'no such image' echo 'no such image')" "not ok"
t_is "t_fails_msg: a death by signal with the message fails" \
	"$(verdict t_fails_msg x 'no such image' bash -c 'echo "no such image"; kill -ABRT $$')" "not ok"

printf 'one\ntwo\n' >"$T/lines"
t_is "t_no_grep: no matching line passes" "$(verdict t_no_grep x three "$T/lines")" "ok"
t_is "t_no_grep: a matching line fails" "$(verdict t_no_grep x tw "$T/lines")" "not ok"
t_is "t_no_grep: a file that is not there fails" "$(verdict t_no_grep x three "$T/none")" "not ok"

printf 'a: stored\nb: ready\nc: stored again\n' >"$T/skiffd.log"
t_is "logged_before: in order passes" "$(verdict t_ok x logged_before stored ready 1)" "ok"
t_is "logged_before: out of order fails" "$(verdict t_ok x logged_before 'again' ready 1)" "not ok"
t_is "logged_before: never fails" "$(verdict t_ok x logged_before nothing ready 1)" "not ok"
t_is "logged_before: the second never logged fails" \
	"$(verdict t_ok x logged_before stored nothing 1)" "not ok"
rm -f "$T/skiffd.log"
done_testing
