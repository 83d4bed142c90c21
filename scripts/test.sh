#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit and root-only integration tests).
set -euo pipefail
cd "$(dirname "$(realpath "$0")")/.."
source scripts/install-deps.sh
swift build --build-tests 2>&1 | grep -E "error|warning:|Compiling|Build" | grep -v "^\[" | tail -20
# Integration tests share the kernel; run them one at a time so timings and limits hold.
# A hung test must fail the run, not eat CI's 90 minutes.
timeout --kill-after=30 45m swift test --skip-build --no-parallel "$@"
