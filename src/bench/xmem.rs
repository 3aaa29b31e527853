//! Part 6 of `kmemvisor bench`: hiding pages for DMA, and the DMA engine.
//!
//! `xmemdma64` hide + unhide of one page, and `xmemdma_pages` of 64 pages,
//! are dispatched in-process as a vCPU thread would after an exit and set
//! beside the raw stage-2 mechanism they stand on — UFFDIO_REGISTER,
//! MADV_DONTNEED, UFFDIO_UNREGISTER and UFFDIO_WAKE of one page, called
//! directly — measured in the same run. With the exit floor from part 1,
//! the per-page cost of 64 single toggles is set beside one 64-page batch.
//! The engine's 64 KiB memory-to-memory transfer (run on the calling thread,
//! no latency) is set beside host memcpy of 64 KiB.

use std::hint::black_box;

use kmemvisor_abi::Service;
use kmemvisor_abi::dgux::VM_PAGE_ALIGNED;
use kmemvisor_abi::dma::DIR_MEMORY_TO_MEMORY;
use kmemvisor_abi::layout::PAGE_SIZE;
use kmemvisor_abi::xmem::{SYS_ADSPACE, XMEM_ACC_CHK, XMEM_HIDE, XMEM_UNHIDE};
use serde::Serialize;

use super::{BenchError, Stats, call, mean_ns};
use crate::devices::dma_engine::Access;
use crate::guests;
use crate::state::{VmConfig, VmState};

/// hide + unhide through the service over the raw mechanism.
pub const TOGGLE_TARGET: f64 = 1.3;
/// Pages of the batch.
const BATCH: u64 = 64;
/// Bytes of one device transfer.
const TRANSFER: u64 = 64 * 1024;

/// Everything part 6 measured.
#[derive(Debug, Serialize)]
pub struct XmemFigures {
    /// Raw mechanism: register + zap + unregister + wake of one page, ns.
    pub raw_toggle_ns: Stats,
    /// `xmemdma64` XMEM_HIDE + XMEM_UNHIDE of one page, VMM work, ns.
    pub toggle_ns: Stats,
    /// toggle / raw.
    pub toggle_ratio: f64,
    /// `xmemdma_pages` hide + unhide of 64 pages, VMM work, ns.
    pub batch_ns: Stats,
    /// Per page, with two exits per call: 64 single toggles over one batch.
    pub single_over_batch_per_page: f64,
    /// The engine's 64 KiB memory-to-memory transfer, ns.
    pub transfer_ns: Stats,
    /// Host memcpy of 64 KiB, ns.
    pub memcpy_ns: Stats,
}

fn ok(state: &VmState, service: Service, args: [u64; 6]) -> Result<u64, BenchError> {
    call(state, service, black_box(args))
}

/// Measures part 6; `exit_us` is the raw exit floor from part 1.
pub fn measure(rounds: u32, exit_us: f64) -> Result<XmemFigures, BenchError> {
    let elf = guests::find("hello").ok_or(BenchError::MissingGuest("hello"))?.elf;
    // Contiguous frames: the device moves 64 KiB of guest-physical memory in one transfer.
    let state = VmState::new(VmConfig { contiguous_frames: true, ..VmConfig::default() }, elf)?;
    let trap = state.hiding.trap().map_err(|e| BenchError::Service("xmemdma", e.to_string()))?;
    let bytes = 2 * TRANSFER + BATCH * PAGE_SIZE;
    let buffer = ok(&state, Service::VmGetWiredMemory, [bytes, u64::from(VM_PAGE_ALIGNED), 0, 0, 0, 0])?;
    let dp = ok(&state, Service::VmGetWiredMemory, [PAGE_SIZE, u64::from(VM_PAGE_ALIGNED), 0, 0, 0, 0])?;
    ok(&state, Service::Xmattach64, [buffer, bytes, dp, SYS_ADSPACE, 0, 0])?;
    ok(&state, Service::Pin, [buffer, bytes, 0, 0, 0, 0])?;
    let single = buffer + 2 * TRANSFER;
    let raw_gpa = ok(&state, Service::Xmemdma64, [dp, single + PAGE_SIZE, XMEM_ACC_CHK, 0, 0, 0])?;
    let raw_host = state.ram.cpu_view() + raw_gpa;
    let source = ok(&state, Service::Xmemdma64, [dp, buffer, XMEM_ACC_CHK, 0, 0, 0])?;
    let destination = source + TRANSFER;
    // The device's pages are handed off, as a correct driver's are.
    ok(&state, Service::XmemdmaPages, [dp, buffer, 2 * TRANSFER / PAGE_SIZE, XMEM_HIDE, 0, 0])?;

    let (mut raw, mut toggle, mut batch, mut transfer, mut memcpy) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        raw.push(mean_ns(2_000, || {
            let fail = |e: std::io::Error| BenchError::Service("userfaultfd", e.to_string());
            trap.register_minor(raw_host, PAGE_SIZE).map_err(fail)?;
            // SAFETY: one page of the CPU view of the benchmark VM's RAM, which lives until the end.
            unsafe { libc::madvise(raw_host as *mut libc::c_void, PAGE_SIZE as usize, libc::MADV_DONTNEED) };
            trap.unregister_and_wake(raw_host, PAGE_SIZE).map_err(fail)
        })?);
        toggle.push(mean_ns(2_000, || {
            ok(&state, Service::Xmemdma64, [dp, single, XMEM_HIDE, 0, 0, 0])?;
            ok(&state, Service::Xmemdma64, [dp, single, XMEM_UNHIDE, 0, 0, 0]).map(|_| ())
        })?);
        batch.push(mean_ns(50, || {
            ok(&state, Service::XmemdmaPages, [dp, single, BATCH, XMEM_HIDE, 0, 0])?;
            ok(&state, Service::XmemdmaPages, [dp, single, BATCH, XMEM_UNHIDE, 0, 0]).map(|_| ())
        })?);
        let access = Access { vcpu: 0, rip: 0, completed: true };
        transfer.push(mean_ns(500, || {
            state
                .dma
                .transfer_now(&state, access, source, destination, TRANSFER, DIR_MEMORY_TO_MEMORY)
                .map_err(|code| BenchError::Service("the DMA engine", format!("error {code}")))
        })?);
        let (src, mut dst) = (vec![0x5au8; TRANSFER as usize], vec![0u8; TRANSFER as usize]);
        memcpy.push(mean_ns(500, || {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
            Ok(())
        })?);
    }
    ok(&state, Service::XmemdmaPages, [dp, buffer, 2 * TRANSFER / PAGE_SIZE, XMEM_UNHIDE, 0, 0])?;
    let (raw_toggle_ns, toggle_ns, batch_ns) = (Stats::of(&raw), Stats::of(&toggle), Stats::of(&batch));
    let exits = 2.0 * exit_us * 1000.0;
    let single_per_page = exits + toggle_ns.median;
    let batch_per_page = (exits + batch_ns.median) / BATCH as f64;
    Ok(XmemFigures {
        raw_toggle_ns,
        toggle_ns,
        toggle_ratio: super::ratio(toggle_ns.median, raw_toggle_ns.median),
        batch_ns,
        single_over_batch_per_page: super::ratio(single_per_page, batch_per_page),
        transfer_ns: Stats::of(&transfer),
        memcpy_ns: Stats::of(&memcpy),
    })
}

/// Prints part 6; `exit_us` is the raw exit floor from part 1.
pub fn print(f: &XmemFigures, exit_us: f64) {
    println!("\n6. Hiding pages for DMA (xmemdma) and the DMA engine: VMM work per call (in-process dispatch)");
    super::row("raw: register+zap+unregister+wake", f.raw_toggle_ns, "ns");
    super::row("xmemdma64 hide + unhide, 1 page", f.toggle_ns, "ns");
    super::row("xmemdma_pages hide + unhide, 64 pages", f.batch_ns, "ns");
    let verdict = super::verdict(f.toggle_ratio, TOGGLE_TARGET);
    println!("  {:<60} {}  target ≤ 1.30×  {verdict}", "hide + unhide / raw mechanism", super::format_ratio(f.toggle_ratio));
    let single = 2.0 * exit_us + f.toggle_ns.median / 1000.0;
    let batch = (2.0 * exit_us + f.batch_ns.median / 1000.0) / BATCH as f64;
    println!(
        "  with two exits ({exit_us:.1} µs each) per call: {single:.1} µs a page one by one, {batch:.2} µs a page in a batch of 64 ({:.0}× cheaper)",
        f.single_over_batch_per_page
    );
    super::row("DMA engine 64 KiB memory → memory", f.transfer_ns, "ns");
    super::row("  host memcpy 64 KiB", f.memcpy_ns, "ns");
    let gbs = |ns: f64| TRANSFER as f64 / ns;
    println!(
        "  {:<36} {:.1} GB/s vs memcpy {:.1} GB/s = {:.0}%",
        "  device throughput",
        gbs(f.transfer_ns.median),
        gbs(f.memcpy_ns.median),
        100.0 * f.memcpy_ns.median / f.transfer_ns.median
    );
}
