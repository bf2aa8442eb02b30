#!/usr/bin/env bash
# Boots the Linux 6.1 test guest (QEMU, TCG) and runs guest-smoke.sh in it:
# cachefiles on-demand is there and binds, and Linux 6.1's EROFS reads
# skiff's images exactly. See tap-guest.sh for skips, plan and failures.
exec "$(dirname "$0")/tap-guest.sh" --kernel 6.1 guest-smoke.sh
