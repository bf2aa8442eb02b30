#!/usr/bin/env bash
# tests/upgrade.t (8 upgrades) against skiffd built with ASan+UBSan
# (build-asan/skiffd): the holder's exec into each new binary and the
# state it hands over run sanitized; any report fails it (tests/lib.sh).
SKIFF_SANITIZED=1 SKIFF_UPGRADES=${SKIFF_UPGRADES:-8} exec bash "$(dirname "$0")/../upgrade.t"
