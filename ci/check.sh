#!/usr/bin/env bash
# Everything CI checks: formatting and lints of both workspaces, the guest
# library's host-side unit tests, then the README's test command, `cargo test`.
# It ends with one line totalling every test: passed, failed and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# rust-toolchain.toml names these components, but rustup does not add them to
# a toolchain that is already installed.
rustup component add rustfmt clippy >/dev/null 2>&1 || true

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== formatting"
cargo fmt --check
(cd guest && cargo fmt --check)

echo "== clippy"
cargo clippy --all-targets -- -D warnings
(cd guest && cargo clippy --release -- -D warnings)

echo "== guest library unit tests (on the host)"
(cd guest && cargo test --lib -p kmemvisor-guest --target x86_64-unknown-linux-gnu) 2>&1 | tee -a "$log"

echo "== cargo test"
cargo test 2>&1 | tee -a "$log"

# The libFuzzer targets (fuzz/, docs/FUZZING.md) need cargo-fuzz, which CI
# machines may lack: they are built and run briefly only where it is installed.
if cargo fuzz --version >/dev/null 2>&1; then
    echo "== libFuzzer targets (fuzz/smoke.sh)"
    fuzz/smoke.sh
else
    echo "== libFuzzer targets: skipped (cargo-fuzz is not installed)"
fi

# Only cargo's `test result:` lines count; ignored tests (the KVM tests under
# KMEMVISOR_SKIP_KVM=1, see build.rs) are the skipped ones.
count() {
    grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'
}
echo "tests: $(count passed) passed, $(count failed) failed, $(count ignored) skipped"
