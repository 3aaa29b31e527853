//! Part 7 of `kmemvisor bench`: what determinism costs. The serial schedule
//! per hypercall, end to end in the `bench` guest on two vCPUs against the
//! same guest under the parallel schedule; and a DMA transfer's bookkeeping
//! (register decode, the frame ledger's transfer counts, device time, the
//! event trace) against the 64 KiB copy it carries; apart, the same
//! transfer with the double-fetch watch of the pages it writes, which traps
//! them in stage 2 as a hide does (so it is not bookkeeping).

use std::time::Duration;

use kmemvisor_abi::Service;
use kmemvisor_abi::dgux::VM_PAGE_ALIGNED;
use kmemvisor_abi::dma::*;
use kmemvisor_abi::layout::PAGE_SIZE;
use kmemvisor_abi::xmem::{SYS_ADSPACE, XMEM_ACC_CHK};
use serde::Serialize;

use super::{BenchError, Comparison, Stats, call, mean_ns, progress};
use crate::devices::dma_engine::Access;
use crate::guests;
use crate::kvm::pct::{DEFAULT_DEPTH, DEFAULT_STEPS};
use crate::kvm::vcpu_pool::Schedule;
use crate::state::{VmConfig, VmState};

/// A hypercall under the serial schedule, against one under the parallel schedule.
pub const SCHEDULE_TARGET: f64 = 1.05;
/// A transfer's bookkeeping, as a share of its 64 KiB copy.
pub const BOOKKEEPING_TARGET: f64 = 0.10;
/// Bytes of the measured transfer.
const TRANSFER: u64 = 64 << 10;

/// Everything part 7 measured.
#[derive(Debug, Serialize)]
pub struct ScheduleFigures {
    /// µs per null call on two vCPUs: parallel (baseline) against serial.
    pub hypercall: Comparison,
    /// ns of a 64 KiB transfer run directly (checks and copy).
    pub copy_ns: Stats,
    /// ns of the same transfer through the doorbell, device time and a STATUS read.
    pub device_ns: Stats,
    /// (device − copy) / copy, medians.
    pub bookkeeping_share: f64,
    /// ns of the transfer through the doorbell with the double-fetch watch
    /// of the pages it writes (the default; not bookkeeping: stage-2 traps,
    /// as a hide's are).
    pub watched_ns: Stats,
}

/// Measures part 7 over `rounds` rounds, `calls` null calls per guest run.
pub fn measure(rounds: u32, calls: u64) -> Result<ScheduleFigures, BenchError> {
    let timeout = Duration::from_secs(30) + Duration::from_micros(calls.saturating_mul(500));
    let per_exit = |report: &crate::report::Report| report.run_time_us as f64 / (calls + 1) as f64;
    let (mut parallel, mut serial) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        progress(&format!("schedule round {round}/{rounds}: {calls} null calls on 2 vCPUs, parallel then serial"));
        for (schedule, samples) in [
            (Schedule::Parallel, &mut parallel),
            (Schedule::Serial { seed: 1, depth: DEFAULT_DEPTH, steps: DEFAULT_STEPS }, &mut serial),
        ] {
            let vm = VmConfig { cmdline: format!("null {calls}"), vcpus: 2, schedule, ..VmConfig::default() };
            samples.push(per_exit(&super::run_guest_with("bench", vm, timeout)?.0));
        }
    }
    let hypercall =
        Comparison::new("null hypercall, serial / parallel schedule (2 vCPUs)", "µs/exit", &parallel, &serial, SCHEDULE_TARGET);
    progress("a DMA transfer's bookkeeping, in-process");
    let (copy_ns, device_ns) = measure_transfer(rounds, false)?;
    let bookkeeping_share = (device_ns.median - copy_ns.median) / copy_ns.median;
    let (_, watched_ns) = measure_transfer(rounds, true)?;
    Ok(ScheduleFigures { hypercall, copy_ns, device_ns, bookkeeping_share, watched_ns })
}

/// The 64 KiB transfer directly, and through the registers and device time,
/// with or without the double-fetch watch of the pages it writes.
fn measure_transfer(rounds: u32, double_fetch_watch: bool) -> Result<(Stats, Stats), BenchError> {
    let elf = guests::find("hello").ok_or(BenchError::MissingGuest("hello"))?.elf;
    let state = VmState::new(VmConfig { contiguous_frames: true, double_fetch_watch, ..VmConfig::default() }, elf)?;
    // Two contiguous, wired (so handed off, the DG/UX way) 64 KiB buffers.
    let buffer = call(&state, Service::VmGetWiredMemory, [2 * TRANSFER, u64::from(VM_PAGE_ALIGNED), 0, 0, 0, 0])?;
    let dp = call(&state, Service::VmGetWiredMemory, [PAGE_SIZE, u64::from(VM_PAGE_ALIGNED), 0, 0, 0, 0])?;
    call(&state, Service::Xmattach64, [buffer, 2 * TRANSFER, dp, SYS_ADSPACE, 0, 0])?;
    let source = call(&state, Service::Xmemdma64, [dp, buffer, XMEM_ACC_CHK, 0, 0, 0])?;
    let destination = source + TRANSFER;
    let access = Access { vcpu: 0, rip: 0, completed: true };
    let engine = &state.dma;
    let failed = |what: String| BenchError::Service("the DMA engine", what);
    let (mut copy, mut device) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        copy.push(mean_ns(500, || {
            engine
                .transfer_now(&state, access, source, destination, TRANSFER, DIR_MEMORY_TO_MEMORY)
                .map_err(|code| failed(format!("error {code}")))
        })?);
        // The registers keep their values: each doorbell repeats the transfer.
        for (reg, value) in
            [(REG_SOURCE, source), (REG_DESTINATION, destination), (REG_LENGTH, TRANSFER), (REG_DIRECTION, DIR_MEMORY_TO_MEMORY)]
        {
            engine.mmio_write(&state, access, reg, 8, value);
        }
        device.push(mean_ns(500, || {
            engine.mmio_write(&state, access, REG_DOORBELL, 8, 1);
            // Device time: the doorbell's exit, then the default latency of one more.
            engine.advance(&state);
            engine.advance(&state);
            match engine.mmio_read(&state, access, REG_STATUS, 8) {
                STATUS_DONE => Ok(()),
                status => Err(failed(format!("status {status} after the latency"))),
            }
        })?);
    }
    if !state.checker.violations().is_empty() {
        return Err(failed(format!("{:?}", state.checker.violations())));
    }
    Ok((Stats::of(&copy), Stats::of(&device)))
}

/// Prints part 7.
pub fn print(f: &ScheduleFigures) {
    println!("\n7. Determinism: the serial schedule per hypercall, a DMA transfer's bookkeeping");
    super::comparison_rows(&f.hypercall, "null hypercall, parallel schedule", "null hypercall, serial schedule");
    super::row("DMA 64 KiB transfer, run directly", f.copy_ns, "ns");
    super::row("  through doorbell, device time, STATUS", f.device_ns, "ns");
    let met = if f.bookkeeping_share <= BOOKKEEPING_TARGET { "PASS" } else { "MISS" };
    println!(
        "  {:<60} {:>6.1}%  target ≤ {:.0}%  {met}",
        "bookkeeping / the copy",
        100.0 * f.bookkeeping_share,
        100.0 * BOOKKEEPING_TARGET
    );
    super::row("  the same, watching its 16 pages for double fetches", f.watched_ns, "ns");
}
