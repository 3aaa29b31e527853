#!/usr/bin/env bash
# Everything CI checks, in order of importance: the tests (the README's test
# command), then formatting and lints of both workspaces, then the guest
# library's host-side unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# rust-toolchain.toml names these components, but rustup does not add them to
# a toolchain that is already installed.
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo test"
cargo test

echo "== formatting"
cargo fmt --check
(cd guest && cargo fmt --check)

echo "== clippy"
cargo clippy --all-targets -- -D warnings
(cd guest && cargo clippy --release -- -D warnings)

echo "== guest library unit tests (on the host)"
(cd guest && cargo test -p kmemvisor-guest --target x86_64-unknown-linux-gnu)
