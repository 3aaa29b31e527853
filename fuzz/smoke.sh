#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for a few seconds from an empty
# corpus. hypercalls must find nothing: any crash fails the script.
# guest_iteration's buggy modes are findings by design, so it runs under
# -fork with -ignore_crashes, and the script checks that it found them;
# without /dev/kvm it is skipped. ci/check.sh runs this when cargo-fuzz is
# installed. docs/FUZZING.md describes the targets.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${SMOKE_SECONDS:-10}
cargo fuzz build -s none 2>&1 | tail -n 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/hypercalls" "$work/guest_iteration"

echo "== hypercalls: ${seconds}s"
cargo fuzz run -s none hypercalls "$work/hypercalls" -- \
    -max_total_time="$seconds" -timeout=10 -seed=1 -artifact_prefix="$work/" 2>&1 | tail -n 2

if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    echo "== guest_iteration: ${seconds}s"
    mkdir "$work/found"
    # -fork exits 77 when a child crashed: findings are expected here.
    cargo fuzz run -s none guest_iteration "$work/guest_iteration" -- \
        -fork=1 -ignore_crashes=1 -max_total_time="$seconds" -timeout=10 -seed=1 \
        -artifact_prefix="$work/found/" >"$work/guest_iteration.log" 2>&1 || true
    grep '^#' "$work/guest_iteration.log" | tail -n 1
    found=$(find "$work/found" -name 'crash-*' | wc -l)
    echo "guest_iteration: $found findings"
    [ "$found" -gt 0 ] || { echo "guest_iteration found nothing: its buggy modes are findings by design" >&2; exit 1; }
else
    echo "== guest_iteration: skipped (no usable /dev/kvm)"
fi
