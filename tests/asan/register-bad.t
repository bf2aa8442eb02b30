#!/usr/bin/env bash
# tests/register-bad.t against skiffd built with ASan+UBSan
# (build-asan/skiffd): any sanitizer report of the daemon fails it.
SKIFF_SANITIZED=1 exec bash "$(dirname "$0")/../register-bad.t"
