#!/usr/bin/env bash
# Boots the Linux 6.12 test guest and runs guest-cachefiles.sh in it:
# skiffd's cachefiles frontend serves mounts by fsid that equal their
# source, fetch only what is read, reopen warm with zero READs, share blobs
# in a domain, and fail bad or missing data with EIO without hanging;
# serves an image from nginx on the guest's loopback, the OCI layout of
# which host-cachefiles.sh builds here first; and lives through an image
# unregistered while mounted and read.
exec "$(dirname "$0")/tap-guest.sh" --kernel 6.12 --host host-cachefiles.sh guest-cachefiles.sh
