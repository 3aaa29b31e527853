//! One deterministic iteration of the bundled `dma-handoff` driver guest
//! under real KVM: the input chooses the driver's mode (correct or with a
//! hand-off mistake), the seed of the run (device-time jitter and the
//! serial schedule) and the DMA engine's latency and jitter. A run that
//! ends otherwise than by a clean `exit(0)` — a violation first of all, a
//! fault, a panic, a timeout — is a finding: the report, as
//! `kmemvisor run … --json` writes it, goes to stderr and the target aborts,
//! which libFuzzer keeps as a crash. Rerunning the crash file reproduces it:
//! the verdict depends only on the input.
//!
//! It needs /dev/kvm; without it the first iteration panics saying so.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use kmemvisor::fuzz::signature;
use kmemvisor::guests;
use kmemvisor::kvm::machine::{self, RunOptions};
use kmemvisor::kvm::vcpu_pool::Schedule;
use kmemvisor::state::VmConfig;
use libfuzzer_sys::fuzz_target;

/// The modes of `dma-handoff` (its first guest argument). `irq-stuck` is
/// left out: it ends only on the timeout, a second per iteration.
const MODES: [&str; 11] = [
    "aix-correct",
    "aix-unhide-early",
    "dgux-correct",
    "dgux-unwire-early",
    "dgux-no-modify",
    "dgux-unwired-target",
    "dgux-release-early",
    "dgux-double-fetch",
    "dgux-fetch-after-completion",
    "irq-no-handler",
    "irq-return-outside",
];
/// A run that lasts longer has hung: the VMM's watchdog ends it (a finding).
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Arbitrary, Debug)]
struct Input {
    mode: u8,
    /// The run's seed (`--seed`, `--dma-seed`).
    seed: u64,
    /// `--dma-latency`, in exits.
    latency: u8,
    /// `--dma-jitter`, in exits.
    jitter: u8,
}

fuzz_target!(|input: Input| {
    let guest = guests::find("dma-handoff").expect("the bundled dma-handoff guest");
    let mut vm = VmConfig { cmdline: MODES[usize::from(input.mode) % MODES.len()].to_owned(), ..VmConfig::default() };
    vm.dma.seed = input.seed;
    vm.dma.latency = u64::from(input.latency);
    vm.dma.jitter = u64::from(input.jitter);
    if let Schedule::Serial { seed, .. } = &mut vm.schedule {
        *seed = input.seed;
    }
    let options = RunOptions {
        name: guest.name.to_owned(),
        elf: guest.elf.to_vec(),
        vm,
        timeout: Some(TIMEOUT),
        console: Box::new(std::io::sink()),
        handle_signals: false,
    };
    // A persistent snapshot VM (restore, apply the input, run) replaces this fresh boot once `kmemvisor fuzz` has one.
    let mut report = match machine::run(options) {
        Ok(outcome) => outcome.report,
        Err(e) => panic!("kmemvisor cannot run a VM (this target needs /dev/kvm): {e}"),
    };
    if let Some(finding) = signature(&report) {
        report.locate(&[guest.elf]);
        let json = serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("(the report does not serialise: {e})"));
        eprintln!("kmemvisor finding {finding} with {input:?}:\n{json}");
        std::process::abort();
    }
});
