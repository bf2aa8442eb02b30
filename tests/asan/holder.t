#!/usr/bin/env bash
# tests/holder.t against skiffd built with ASan+UBSan (build-asan/skiffd):
# any sanitizer report of the daemon fails it (tests/lib.sh).
SKIFF_SANITIZED=1 exec bash "$(dirname "$0")/../holder.t"
