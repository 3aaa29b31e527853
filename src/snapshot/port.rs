//! What the guest sees of fuzzing: its snapshot point (`fuzz_snapshot`),
//! the iteration's input (`fuzz_input`) and where it counts its edges
//! (`fuzz_coverage`).
//!
//! The snapshot point is taken only where nothing that the seed decides has
//! happened yet: vCPU 0 alone has run, no DMA delay has been drawn, no page
//! has been hidden. From such a point an iteration under seed S goes on
//! exactly as a fresh `kmemvisor run --seed S` would, so its report is that
//! run's. Elsewhere the call is refused (the guest still gets `OK`: its
//! behaviour must not depend on being fuzzed) and iterations start at the
//! guest's first instruction instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// The most input bytes an iteration carries (`--input FILE` included).
pub const MAX_INPUT: usize = 1 << 20;

/// The largest edge-counter map a guest may name: AFL's 64 KiB.
pub const MAX_COVERAGE_MAP: u64 = 1 << 16;

/// Where the guest counts its edges: guest-virtual address and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoverageMap {
    /// The first counter.
    pub va: u64,
    /// Counters (bytes), at most [`MAX_COVERAGE_MAP`].
    pub len: u64,
}

/// The fuzzing side of one VM.
#[derive(Debug, Default)]
pub struct FuzzPort {
    /// The bytes `fuzz_input` gives.
    input: Mutex<Arc<[u8]>>,
    /// A persistent VM waits for the guest's snapshot point.
    armed: AtomicBool,
    /// Why the guest's `fuzz_snapshot` could not be the snapshot point.
    refusal: Mutex<Option<String>>,
    /// The guest's edge counters, once it named them.
    coverage_map: Mutex<Option<CoverageMap>>,
}

impl FuzzPort {
    /// The bytes `fuzz_input` gives from now on (at most [`MAX_INPUT`] of them are kept).
    pub fn set_input(&self, bytes: Arc<[u8]>) {
        *lock(&self.input) = if bytes.len() > MAX_INPUT { Arc::from(&bytes[..MAX_INPUT]) } else { bytes };
    }

    /// The input bytes.
    pub fn input(&self) -> Arc<[u8]> {
        lock(&self.input).clone()
    }

    /// Makes the next `fuzz_snapshot` pause the VM (a persistent VM waits for it).
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Whether a `fuzz_snapshot` now is the snapshot point; it is the only one either way.
    pub fn take_armed(&self) -> bool {
        self.armed.swap(false, Ordering::SeqCst)
    }

    /// Records why the guest's `fuzz_snapshot` was refused.
    pub fn refuse(&self, why: String) {
        *lock(&self.refusal) = Some(why);
    }

    /// Why the guest's `fuzz_snapshot` was refused, if it was.
    pub fn refusal(&self) -> Option<String> {
        lock(&self.refusal).clone()
    }

    /// Where the guest counts its edges from now on (`None`: nowhere).
    pub fn set_coverage_map(&self, map: Option<CoverageMap>) {
        *lock(&self.coverage_map) = map;
    }

    /// Where the guest counts its edges, if it said.
    pub fn coverage_map(&self) -> Option<CoverageMap> {
        *lock(&self.coverage_map)
    }
}
