//! A persistent VM: booted once, run to its snapshot point, then restored
//! and run again for every iteration.
//!
//! The snapshot is first taken at the guest's first instruction, right
//! after the boot; the VM is armed for the guest's own snapshot point
//! (`fuzz_snapshot`). The first iteration runs from the boot: if the guest
//! reaches its snapshot point there, the VM pauses, the snapshot is taken
//! again at that point, and the iteration goes on. Every later iteration
//! starts from the snapshot: guest RAM, the vCPUs and the VMM state are put
//! back, the iteration's seed and input are set, and the vCPU threads run
//! until the VM stops (an exit, a violation under `--strict`, a timeout).
//! Its report is the one `kmemvisor run … --seed S` would give (the
//! snapshot point is refused where the seed decided something already;
//! `crate::services::fuzz`).
//!
//! Which pages of RAM a restore compares is chosen by measuring both ways
//! (`super::dirty`), unless the caller fixes it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kmemvisor_abi::layout::PAGE_SIZE;

use crate::kvm::events::ConsoleSink;
use crate::kvm::machine::{Machine, MachineError, RunOutcome};
use crate::kvm::vm::KvmError;
use crate::memory_model::ram::{ZapError, page_numbers};
use crate::report::ExitCause;
use crate::snapshot::dirty::{Choice, DirtyPages};
use crate::snapshot::fingerprint::{self, describe_vmm};
use crate::snapshot::ram::{RamCopy, Restored};
use crate::snapshot::vcpu_state::{self, VcpuState};
use crate::snapshot::vmm_state::{StateError, VmmState};
use crate::state::{VmConfig, VmState};
use crate::sync::lock;

/// Why a persistent VM cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum PersistentError {
    /// The VM could not be built or run.
    #[error(transparent)]
    Machine(#[from] MachineError),
    /// KVM refused to give or take a vCPU's state.
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// The VMM state could not be captured or put back.
    #[error(transparent)]
    State(#[from] StateError),
    /// A restored page table's old frames could not be dropped from the vCPUs.
    #[error("cannot drop a frame from the vCPUs' mappings after restoring a page table")]
    Zap(#[from] ZapError),
    /// The pages of guest RAM could not be listed.
    #[error("cannot list the pages of guest RAM")]
    Ram(#[from] std::io::Error),
    /// A vCPU thread of the last run did not end: the VM cannot run again.
    #[error("a vCPU thread of the last run did not end; the VM cannot be restored")]
    Stuck,
}

/// Where the iterations start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotPoint {
    /// Not known yet: the first iteration has not run.
    Pending,
    /// The guest's `fuzz_snapshot`.
    Guest,
    /// The guest's first instruction: it never called `fuzz_snapshot` in
    /// its first iteration, or the call was refused for the reason given.
    FirstInstruction(Option<String>),
}

/// Everything a snapshot holds.
struct Snapshot {
    ram: RamCopy,
    /// The pages the memfd held then: a page the pager took out since
    /// (punched out of the memfd) is no longer among the memfd's pages, and
    /// must come back all the same.
    populated: Vec<std::ops::Range<u64>>,
    vcpus: Vec<VcpuState>,
    vmm: VmmState,
    /// The VMM state as the iterations start from it, as text (`fingerprint::describe_vmm`).
    described: String,
}

/// What the last restore did, for the benchmark.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResetFigures {
    /// How long the restore took.
    pub time: Duration,
    /// What it did to guest RAM.
    pub ram: Restored,
    /// Pages that only the VMM's record of its writes named, KVM's dirty
    /// log not (0 unless the pages were logged).
    pub vmm_only: u64,
}

/// A VM that runs iteration after iteration from one snapshot.
pub struct PersistentVm {
    machine: Machine,
    snapshot: Snapshot,
    point: SnapshotPoint,
    name: String,
    timeout: Option<Duration>,
    sink: ConsoleSink,
    /// The VM ran since the snapshot was taken (or since the boot).
    ran: bool,
    last_reset: ResetFigures,
    /// How the pages of the next iteration are tracked.
    choice: Choice,
    /// How those of the last run were (whether KVM's dirty log is on).
    tracked: DirtyPages,
    /// How long the last run took, counted for the choice with the reset after it.
    last_run: Option<Duration>,
}

fn state_mut(machine: &mut Machine) -> Result<&mut VmState, PersistentError> {
    Arc::get_mut(&mut machine.state).ok_or(PersistentError::Stuck)
}

impl PersistentVm {
    /// Boots `elf` under `config` (its seeds are replaced per iteration) and
    /// takes the snapshot at its first instruction.
    pub fn boot(name: &str, elf: &[u8], config: VmConfig, timeout: Option<Duration>) -> Result<PersistentVm, PersistentError> {
        let mut machine = Machine::boot(config, elf)?;
        let mut snapshot = capture(&mut machine, DirtyPages::Held)?;
        snapshot.described = describe_vmm(&machine.state);
        machine.state.fuzz.arm();
        let sink: ConsoleSink = Arc::new(Mutex::new(Box::new(std::io::sink()) as Box<dyn Write + Send>));
        Ok(PersistentVm {
            machine,
            snapshot,
            point: SnapshotPoint::Pending,
            name: name.to_owned(),
            timeout,
            sink,
            ran: false,
            last_reset: ResetFigures::default(),
            choice: Choice::measured(),
            tracked: DirtyPages::Held,
            last_run: None,
        })
    }

    /// Tracks the pages of every iteration from the next on `way` instead
    /// of measuring which way is faster.
    pub fn track_dirty_pages(&mut self, way: DirtyPages) {
        self.choice = Choice::Fixed(way);
    }

    /// How the pages of the last run were tracked.
    pub fn tracked(&self) -> DirtyPages {
        self.tracked
    }

    /// Where the iterations start.
    pub fn point(&self) -> &SnapshotPoint {
        &self.point
    }

    /// What the last restore did.
    pub fn last_reset(&self) -> ResetFigures {
        self.last_reset
    }

    /// The VM's state (for checks between iterations).
    pub fn state(&self) -> &VmState {
        &self.machine.state
    }

    /// Runs one iteration under `seed` with `input` for `fuzz_input`, and
    /// returns its outcome: that of `kmemvisor run … --seed S` with that input.
    pub fn run(&mut self, seed: u64, input: Arc<[u8]>) -> Result<RunOutcome, PersistentError> {
        self.restore(seed)?;
        let way = self.choice.next();
        if way != self.tracked {
            let state = &self.machine.state;
            self.machine.vm.log_dirty_pages(&state.ram, way == DirtyPages::Logged)?;
            self.tracked = way;
        }
        let state = state_mut(&mut self.machine)?;
        state.fuzz.set_input(input.clone());
        state.config.input = input;
        let started = Instant::now();
        self.ran = true;
        self.machine.drive(&self.sink, self.timeout, false)?;
        // The first run (from the boot, maybe through the snapshot point) is no iteration like the others.
        let measured = self.point != SnapshotPoint::Pending;
        if let Some(ExitCause::SnapshotPoint { .. }) = self.machine.state.stop.cause() {
            self.snapshot = capture(&mut self.machine, self.tracked)?;
            self.point = SnapshotPoint::Guest;
            // The pause is no part of the run: it goes on as if there had been none.
            let state = state_mut(&mut self.machine)?;
            state.stop.reset();
            state.hiding.reset().map_err(StateError::Hiding)?;
            self.snapshot.described = describe_vmm(state);
            self.machine.drive(&self.sink, self.timeout, false)?;
        } else if self.point == SnapshotPoint::Pending {
            self.point = SnapshotPoint::FirstInstruction(self.machine.state.fuzz.refusal());
        }
        if self.machine.vcpus.is_empty() {
            return Err(PersistentError::Stuck);
        }
        let mut outcome = self.machine.outcome(self.name.clone());
        outcome.report.boot_time_us = 0;
        outcome.report.run_time_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_run = measured.then(|| started.elapsed());
        Ok(outcome)
    }

    /// Puts the snapshot back, scheduled and timed by `seed`.
    pub fn restore(&mut self, seed: u64) -> Result<(), PersistentError> {
        let started = Instant::now();
        let mut ram = Restored::default();
        let mut vmm_only = 0;
        if self.ran {
            for fd in &mut self.machine.vcpus {
                vcpu_state::settle(fd)?;
            }
            let state = &self.machine.state;
            let written = state.ram.written().take();
            let pages: Vec<u64> = match self.tracked {
                // Every page that differs from the snapshot's is in the memfd now.
                DirtyPages::Held => state
                    .ram
                    .populated()?
                    .into_iter()
                    .chain(self.snapshot.populated.iter().cloned())
                    .flat_map(|r| r.start / PAGE_SIZE..r.end / PAGE_SIZE)
                    .collect::<std::collections::BTreeSet<u64>>()
                    .into_iter()
                    .collect(),
                DirtyPages::Logged => {
                    let mut logged = self.machine.vm.dirty_log(&state.ram)?;
                    // Both bitmaps have a bit per page of RAM.
                    for (cpu, vmm) in logged.iter_mut().zip(&written) {
                        vmm_only += u64::from((vmm & !*cpu).count_ones());
                        *cpu |= vmm;
                    }
                    page_numbers(&logged)
                }
            };
            ram = self.snapshot.ram.restore(
                &state.ram,
                pages.into_iter(),
                &lock(&state.kernel).frames,
                &self.snapshot.vmm.kernel().frames,
            )?;
            for (fd, saved) in self.machine.vcpus.iter_mut().zip(&self.snapshot.vcpus) {
                saved.restore(fd)?;
            }
            self.ran = false;
        }
        self.snapshot.vmm.restore(state_mut(&mut self.machine)?, seed)?;
        self.last_reset = ResetFigures { time: started.elapsed(), ram, vmm_only };
        if let Some(run) = self.last_run.take() {
            self.choice.count(self.tracked, run + self.last_reset.time);
        }
        Ok(())
    }

    /// What differs between the VM now and its snapshot, after
    /// [`PersistentVm::restore`] with the seed the snapshot was taken
    /// under: "guest RAM", "vCPU N", or the first differing line of the
    /// VMM state. Empty when the VM is exactly at its snapshot.
    pub fn differences(&mut self) -> Result<Vec<String>, PersistentError> {
        let mut differ = Vec::new();
        let live = RamCopy::capture(&self.machine.state.ram)?;
        if fingerprint::ram(live.bytes()) != fingerprint::ram(self.snapshot.ram.bytes()) {
            differ.push("guest RAM".to_owned());
        }
        for (n, (fd, saved)) in self.machine.vcpus.iter_mut().zip(&self.snapshot.vcpus).enumerate() {
            vcpu_state::settle(fd)?;
            if !saved.matches(fd)? {
                differ.push(format!("vCPU {n}"));
            }
        }
        let now = describe_vmm(&self.machine.state);
        if let Some((was, is)) = self.snapshot.described.lines().zip(now.lines()).find(|(a, b)| a != b) {
            differ.push(format!("VMM state: {was} → {is}"));
        }
        Ok(differ)
    }
}

/// Takes the snapshot of a still machine: what was written before is in
/// the copy, so the records of writes start empty.
fn capture(machine: &mut Machine, tracked: DirtyPages) -> Result<Snapshot, PersistentError> {
    let mut vcpus = Vec::with_capacity(machine.vcpus.len());
    for fd in &mut machine.vcpus {
        vcpu_state::settle(fd)?;
        vcpus.push(VcpuState::capture(fd)?);
    }
    if vcpus.is_empty() {
        return Err(PersistentError::Stuck);
    }
    let state = &machine.state;
    state.ram.written().take();
    if tracked == DirtyPages::Logged {
        machine.vm.dirty_log(&state.ram)?;
    }
    Ok(Snapshot {
        ram: RamCopy::capture(&state.ram)?,
        populated: state.ram.populated()?,
        vcpus,
        vmm: VmmState::capture(state)?,
        described: String::new(),
    })
}
