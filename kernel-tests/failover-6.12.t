#!/usr/bin/env bash
# Boots the Linux 6.12 test guest and runs guest-failover.sh in it: the
# cachefiles frontend under a crash loop (the holder keeps /dev/cachefiles
# and every open object across SIGKILLs of the serving process), live
# upgrades, a holder that dies while the server runs, and holder deaths
# under the test supervisor that plays systemd's fd store.
exec "$(dirname "$0")/tap-guest.sh" --kernel 6.12 guest-failover.sh
