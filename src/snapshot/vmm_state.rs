//! Everything the VMM keeps of a VM besides guest RAM and the vCPUs, at the
//! snapshot point, and putting it back.
//!
//! Each part is rebuilt whole from a copy taken at the snapshot point
//! (`Clone`), never reset field by field: a field added to a part later is
//! restored without anyone remembering to. The capture and the restore name
//! every field of [`VmState`] (an exhaustive pattern), so that a field added
//! to the state does not compile until it is decided here.
//!
//! The seed of an iteration is applied on the way back: the serial
//! schedule, the DMA engine's delays and the failure injectors without a
//! seed of their own become those of the new seed, as they would be in a
//! run started with it. That is exact because the
//! snapshot point is taken only before the seed decided anything
//! (`crate::services::fuzz`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::checker::Checker;
use crate::devices::console::Console;
use crate::devices::dma_engine::DmaEngine;
use crate::devices::hiding::HideError;
use crate::kvm::call_site::CallSite;
use crate::kvm::vcpu_pool::{Schedule, VcpuPool};
use crate::services::CallCounts;
use crate::services::process::VcpuContext;
use crate::snapshot::port::CoverageMap;
use crate::state::{Kernel, VmState};
use crate::sync::lock;
use crate::trace::EventTrace;

/// Why the VMM state could not be captured or put back.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A part holds something a snapshot cannot (pages hidden or trapped before).
    #[error("the VM cannot be snapshot here: {0}")]
    NotQuiet(&'static str),
    /// An eventfd for the console's copy could not be made.
    #[error("cannot create the {0}'s eventfd")]
    Eventfd(&'static str, #[source] std::io::Error),
    /// The hidden pages could not all be given back.
    #[error("cannot give the hidden pages back")]
    Hiding(#[source] HideError),
}

/// The VMM state at the snapshot point.
#[derive(Debug)]
pub struct VmmState {
    console: Console,
    calls: CallCounts,
    checker: Checker,
    trace: EventTrace,
    vcpus: VcpuPool,
    first_entry: OnceLock<Instant>,
    kernel: Kernel,
    contexts: Vec<VcpuContext>,
    interrupt_handler: bool,
    cr3: Vec<u64>,
    call_site: CallSite,
    dma: DmaEngine,
    coverage_map: Option<CoverageMap>,
}

impl VmmState {
    /// Copies the state of a still VM (no thread runs).
    pub fn capture(state: &VmState) -> Result<VmmState, StateError> {
        let VmState {
            // Fixed from boot on: the image, the modules, the kernel address
            // space's root, and where RAM is (its bytes are `super::ram`'s).
            ram: _,
            space: _,
            image: _,
            modules: _,
            // Set per iteration (the seeds), the rest fixed.
            config: _,
            console,
            calls,
            checker,
            trace,
            vcpus,
            // A new request per iteration: the snapshot's is the pause itself.
            stop: _,
            first_entry,
            kernel,
            contexts,
            interrupt_handler,
            cr3,
            hiding,
            call_site,
            // Set by each vCPU thread when it starts.
            vcpu_tids: _,
            dma,
            trap_used,
            // The input is set per iteration; the snapshot point is taken
            // once; the edge counters' place is the guest's, restored.
            fuzz,
        } = state;
        if trap_used.load(Ordering::SeqCst) {
            return Err(StateError::NotQuiet("a page was trapped (hidden, watched for a double fetch or paged out)"));
        }
        if !hiding.hides_nothing() {
            return Err(StateError::NotQuiet("pages are hidden"));
        }
        Ok(VmmState {
            console: console.try_clone().map_err(|e| StateError::Eventfd("console", e))?,
            calls: calls.clone(),
            checker: checker.clone(),
            trace: trace.clone(),
            vcpus: vcpus.reseeded(state.config.schedule),
            first_entry: first_entry.clone(),
            kernel: lock(kernel).save(),
            contexts: contexts.iter().map(|c| *lock(c)).collect(),
            interrupt_handler: interrupt_handler.load(Ordering::SeqCst),
            cr3: cr3.iter().map(|c| c.load(Ordering::SeqCst)).collect(),
            call_site: call_site.clone(),
            dma: dma.clone(),
            coverage_map: fuzz.coverage_map(),
        })
    }

    /// The kernel's books at the snapshot point.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// Puts the captured state back into `state` (whose threads have all
    /// ended), scheduled and timed by `seed` from the start.
    pub fn restore(&self, state: &mut VmState, seed: u64) -> Result<(), StateError> {
        let VmState {
            ram: _,
            space: _,
            image: _,
            modules: _,
            config,
            console,
            calls,
            checker,
            trace,
            vcpus,
            stop,
            first_entry,
            kernel,
            contexts,
            interrupt_handler,
            cr3,
            hiding,
            call_site,
            vcpu_tids,
            dma,
            trap_used,
            fuzz,
        } = state;
        config.dma.seed = seed;
        if let Schedule::Serial { seed: s, .. } = &mut config.schedule {
            *s = seed;
        }
        hiding.reset().map_err(StateError::Hiding)?;
        console.restore_from(&self.console);
        *calls = self.calls.clone();
        *checker = self.checker.clone();
        *trace = self.trace.clone();
        *vcpus = self.vcpus.reseeded(config.schedule);
        stop.reset();
        *first_entry = self.first_entry.clone();
        let mut books = lock(kernel);
        books.clone_from(&self.kernel);
        books.reseed_injectors(seed);
        *contexts = self.contexts.iter().map(|&c| Mutex::new(c)).collect();
        *interrupt_handler = AtomicBool::new(self.interrupt_handler);
        *cr3 = self.cr3.iter().map(|&c| AtomicU64::new(c)).collect();
        *call_site = self.call_site.clone();
        *vcpu_tids = (0..self.cr3.len()).map(|_| AtomicU32::new(0)).collect();
        dma.restore(&self.dma, seed);
        *trap_used = AtomicBool::new(false);
        fuzz.set_coverage_map(self.coverage_map);
        Ok(())
    }
}
