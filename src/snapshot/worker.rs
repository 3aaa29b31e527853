//! The persistent VM of a fuzzing worker thread: each worker keeps its own,
//! booted at its first iteration of a guest and options, and restored for
//! every later one.
//!
//! When a persistent VM cannot be built or restored (KVM refuses a state,
//! a vCPU thread is stuck), the worker says so once and boots a fresh VM
//! for each iteration instead: slower, the same reports. A guest whose
//! `fuzz_snapshot` was refused (`crate::services::fuzz`) gets a note, and
//! its iterations start at its first instruction.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::kvm::machine::{self, MachineError, RunOptions, RunOutcome};
use crate::snapshot::persistent::{PersistentError, PersistentVm, SnapshotPoint};
use crate::state::VmConfig;
use crate::sync::lock;

/// One iteration to run.
pub struct Iteration<'a> {
    /// The guest's name in the report.
    pub name: &'a str,
    /// Its ELF image.
    pub elf: &'a [u8],
    /// The run options; the seeds and the input are the iteration's.
    pub config: &'a VmConfig,
    /// The run's `--timeout`.
    pub timeout: Option<Duration>,
    /// The iteration's seed (schedule and DMA delays).
    pub seed: u64,
    /// What the guest's `fuzz_input` gives.
    pub input: Arc<[u8]>,
}

/// What the worker's VM was built for: iterations of anything else need another.
struct Key {
    name: String,
    elf: Vec<u8>,
    config: VmConfig,
    timeout: Option<Duration>,
}

impl Key {
    fn of(iteration: &Iteration<'_>) -> Key {
        let config = iteration.config.clone();
        Key { name: iteration.name.to_owned(), elf: iteration.elf.to_vec(), config, timeout: iteration.timeout }
    }

    /// Whether `iteration` can run on the VM built for this key (compared
    /// in place: no copy per iteration).
    fn fits(&self, iteration: &Iteration<'_>) -> bool {
        self.name == iteration.name
            && self.timeout == iteration.timeout
            && self.config == *iteration.config
            && self.elf[..] == *iteration.elf
    }
}

enum Vm {
    Persistent(Box<PersistentVm>),
    /// The persistent VM failed: fresh boots from now on.
    Fresh,
}

thread_local! {
    static WORKER_VM: RefCell<Option<(Key, Vm)>> = const { RefCell::new(None) };
}

/// Says `message` on stderr once per process.
fn note_once(message: String) {
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    if lock(&SAID).insert(message.clone()) {
        eprintln!("kmemvisor: {message}");
    }
}

/// Runs `iteration` on this thread's persistent VM; its outcome is that of
/// `kmemvisor run … --seed S --input FILE`.
pub fn run(iteration: Iteration<'_>) -> Result<RunOutcome, MachineError> {
    WORKER_VM.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|(k, _)| !k.fits(&iteration)) {
            let key = Key::of(&iteration);
            let mut config = iteration.config.clone();
            config.input = Arc::from(Vec::new());
            let vm = match PersistentVm::boot(iteration.name, iteration.elf, config, iteration.timeout) {
                Ok(vm) => Vm::Persistent(Box::new(vm)),
                Err(PersistentError::Machine(e)) => return Err(e),
                Err(e) => fall_back(&e),
            };
            *slot = Some((key, vm));
        }
        let Some((_, vm)) = slot.as_mut() else { return fresh(&iteration) };
        let Vm::Persistent(persistent) = vm else { return fresh(&iteration) };
        let first = *persistent.point() == SnapshotPoint::Pending;
        match persistent.run(iteration.seed, iteration.input.clone()) {
            Ok(outcome) => {
                if first && let SnapshotPoint::FirstInstruction(Some(why)) = persistent.point() {
                    note_once(format!(
                        "fuzz_snapshot of {} is not used as the snapshot point ({why}); iterations start at its first \
                         instruction",
                        iteration.name
                    ));
                }
                Ok(outcome)
            }
            Err(e) => {
                *vm = fall_back(&e);
                fresh(&iteration)
            }
        }
    })
}

fn fall_back(error: &PersistentError) -> Vm {
    note_once(format!("the snapshot VM cannot go on ({error}); every iteration boots a fresh VM instead"));
    Vm::Fresh
}

/// `iteration` on a freshly booted VM.
fn fresh(iteration: &Iteration<'_>) -> Result<RunOutcome, MachineError> {
    let mut config = iteration.config.clone();
    config.dma.seed = iteration.seed;
    if let crate::kvm::vcpu_pool::Schedule::Serial { seed, .. } = &mut config.schedule {
        *seed = iteration.seed;
    }
    config.input = iteration.input.clone();
    let options = RunOptions {
        name: iteration.name.to_owned(),
        elf: iteration.elf.to_vec(),
        vm: config,
        timeout: iteration.timeout,
        console: Box::new(std::io::sink()),
        handle_signals: false,
    };
    machine::run(options)
}
