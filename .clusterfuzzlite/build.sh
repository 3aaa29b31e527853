#!/bin/bash -eu
# Builds kmemvisor's libFuzzer targets for ClusterFuzzLite / OSS-Fuzz into $OUT.
#
# The project pins a stable toolchain (rust-toolchain.toml); AddressSanitizer is
# an unstable rustc flag, which RUSTC_BOOTSTRAP=1 allows on it. build.rs removes
# RUSTC_BOOTSTRAP and the Rust flags from the nested build of the guests (they
# are built for x86_64-unknown-none, uninstrumented), and builds the C SDK with
# its own flags, not the builder's CFLAGS.
cd "$SRC/kmemvisor"
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O --debug-assertions hypercalls
cp fuzz/target/x86_64-unknown-linux-gnu/release/hypercalls "$OUT/"
# Calls that never return are hangs: libFuzzer's per-input timeout finds them.
printf '[libfuzzer]\ntimeout = 10\n' > "$OUT/hypercalls.options"
# guest_iteration runs guests under KVM, and the ClusterFuzzLite runner's
# container has no /dev/kvm: it runs in CI jobs on KVM hosts instead
# (docs/FUZZING.md, "CI matrices").
