//! Part 5 of `kmemvisor bench`: AIX user memory access. copyin and copyout of
//! 4 KiB and 1 MiB are dispatched in-process as a vCPU thread would after an
//! exit; the copy's own cost (the call minus a null call) is turned into a
//! bandwidth and set beside host memcpy of the same size, measured in the same run;
//! xmalloc and xmfree are set beside the null call, as the DG/UX gets are.

use std::hint::black_box;

use kmemvisor_abi::Service;
use kmemvisor_abi::aix::{KERNEL_HEAP, PROT_READ, PROT_WRITE};
use kmemvisor_abi::dgux::VM_PAGE_ALIGNED;
use serde::Serialize;

use super::{BenchError, Stats, call, mean_ns};
use crate::guests;
use crate::state::{VmConfig, VmState};

/// The copy's own bandwidth at 1 MiB, as a share of memcpy's.
pub const COPY_TARGET: f64 = 0.5;
/// User address of the benchmark's buffer.
const USER: u64 = 0x1000_0000;
/// The largest copy.
const MIB: u64 = 1 << 20;

/// One copy measurement.
#[derive(Debug, Serialize)]
pub struct CopyCost {
    /// `copyin` or `copyout`.
    pub service: &'static str,
    /// Bytes per call.
    pub bytes: u64,
    /// ns per call, VMM side.
    pub call_ns: Stats,
    /// ns per host memcpy of the same size.
    pub memcpy_ns: Stats,
    /// Bandwidth of the copy's own cost (call − null) over memcpy's.
    pub share_of_memcpy: f64,
}

/// xmalloc or xmfree next to the null call.
#[derive(Debug, Serialize)]
pub struct HeapCost {
    /// `xmalloc` or `xmfree`.
    pub service: &'static str,
    /// Live allocations while measured.
    pub live: u64,
    /// ns per call, VMM side.
    pub ns: Stats,
    /// (exit + this) / (exit + null).
    pub ratio: f64,
}

/// Everything part 5 measured.
#[derive(Debug, Serialize)]
pub struct AixFigures {
    /// VMM work of a null call, ns.
    pub null_ns: Stats,
    /// The copies.
    pub copies: Vec<CopyCost>,
    /// xmalloc and xmfree on the kernel heap.
    pub heap: Vec<HeapCost>,
}

/// Measures part 5.
pub fn measure(rounds: u32) -> Result<AixFigures, BenchError> {
    let elf = guests::find("hello").ok_or(BenchError::MissingGuest("hello"))?.elf;
    let state = VmState::new(VmConfig::default(), elf)?;
    let pid = call(&state, Service::ProcessCreate, [0; 6])?;
    call(&state, Service::ProcessSwitch, [pid, 0, 0, 0, 0, 0])?;
    call(&state, Service::ProcessMap, [USER, MIB, PROT_READ | PROT_WRITE, 0, 0, 0])?;
    let kernel = call(&state, Service::VmGetWiredMemory, [MIB, u64::from(VM_PAGE_ALIGNED), 0, 0, 0, 0])?;
    let mut null = Vec::new();
    let cases = [(Service::Copyin64, 4096u64), (Service::Copyout64, 4096), (Service::Copyin64, MIB), (Service::Copyout64, MIB)];
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = cases.iter().map(|_| (Vec::new(), Vec::new())).collect();
    for _ in 0..rounds {
        null.push(mean_ns(20_000, || call(&state, Service::Null, [0; 6]).map(|_| ()))?);
        for (&(service, bytes), (calls, copies)) in cases.iter().zip(samples.iter_mut()) {
            let n = if bytes == MIB { 200 } else { 20_000 };
            let args = match service {
                Service::Copyin64 => [USER, kernel, bytes, 0, 0, 0],
                _ => [kernel, USER, bytes, 0, 0, 0],
            };
            calls.push(mean_ns(n, || call(&state, service, black_box(args)).map(|_| ()))?);
            let (src, mut dst) = (vec![0x5au8; bytes as usize], vec![0u8; bytes as usize]);
            copies.push(mean_ns(n, || {
                dst.copy_from_slice(black_box(&src));
                black_box(&mut dst);
                Ok(())
            })?);
        }
    }
    let null_ns = Stats::of(&null);
    let copies = cases
        .iter()
        .zip(samples)
        .map(|(&(service, bytes), (calls, copies))| {
            let (call_ns, memcpy_ns) = (Stats::of(&calls), Stats::of(&copies));
            let own = (call_ns.median - null_ns.median).max(f64::MIN_POSITIVE);
            CopyCost { service: service.name(), bytes, call_ns, memcpy_ns, share_of_memcpy: memcpy_ns.median / own }
        })
        .collect();
    Ok(AixFigures { null_ns, copies, heap: Vec::new() })
}

/// xmalloc and xmfree of 64 bytes on the kernel heap, with no and with
/// 10,000 live allocations; `exit_us` is the raw exit floor from part 1.
pub fn measure_heap(rounds: u32, exit_us: f64) -> Result<Vec<HeapCost>, BenchError> {
    let elf = guests::find("hello").ok_or(BenchError::MissingGuest("hello"))?.elf;
    let n = 2_000;
    let mut out = Vec::new();
    for live in [0, super::dgux::LIVE] {
        let state = VmState::new(VmConfig::default(), elf)?;
        for _ in 0..live {
            call(&state, Service::Xmalloc, [64, 3, KERNEL_HEAP, 0, 0, 0])?;
        }
        let (mut null, mut alloc, mut free) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            null.push(mean_ns(n, || call(&state, Service::Null, [0; 6]).map(|_| ()))?);
            let mut pointers = Vec::with_capacity(n as usize);
            alloc.push(mean_ns(n, || {
                pointers.push(call(&state, Service::Xmalloc, [64, 3, KERNEL_HEAP, 0, 0, 0])?);
                Ok(())
            })?);
            let mut pointers = pointers.into_iter();
            free.push(mean_ns(n, || {
                let p = pointers.next().unwrap_or_default();
                call(&state, Service::Xmfree, [black_box(p), KERNEL_HEAP, 0, 0, 0, 0]).map(|_| ())
            })?);
        }
        let null = Stats::of(&null);
        for (service, samples) in [("xmalloc", alloc), ("xmfree", free)] {
            let ns = Stats::of(&samples);
            let ratio = super::ratio(exit_us * 1000.0 + ns.median, exit_us * 1000.0 + null.median);
            out.push(HeapCost { service, live, ns, ratio });
        }
    }
    Ok(out)
}

/// Prints part 5; `exit_us` is the raw exit floor from part 1.
pub fn print(f: &AixFigures, exit_us: f64) {
    println!("\n5. AIX user memory access: VMM work per call (in-process dispatch), next to host memcpy of the same size");
    super::row("null hypercall", f.null_ns, "ns");
    for c in &f.copies {
        let size = if c.bytes >= MIB { format!("{} MiB", c.bytes / MIB) } else { format!("{} KiB", c.bytes / 1024) };
        super::row(&format!("{} {size}", c.service), c.call_ns, "ns");
        super::row(&format!("  host memcpy {size}"), c.memcpy_ns, "ns");
        let gbs = |ns: f64| c.bytes as f64 / ns;
        let own = c.call_ns.median - f.null_ns.median;
        println!(
            "  {:<36} {:.1} GB/s vs memcpy {:.1} GB/s = {:.0}%; with the exit ({exit_us:.1} µs) one call takes {:.1} µs",
            "  the copy's own bandwidth",
            gbs(own),
            gbs(c.memcpy_ns.median),
            100.0 * c.share_of_memcpy,
            exit_us + c.call_ns.median / 1000.0
        );
    }
    for h in &f.heap {
        let label = format!("{} 64 bytes ({} live)", h.service, h.live);
        super::row(&label, h.ns, "ns");
    }
    for h in &f.heap {
        let verdict = super::verdict(h.ratio, super::dgux::TARGET);
        let label = format!("(exit + {}) / (exit + null), {} live", h.service, h.live);
        println!("  {label:<60} {}  target ≤ 1.10×  {verdict}", super::format_ratio(h.ratio));
    }
    for c in f.copies.iter().filter(|c| c.bytes == MIB) {
        let verdict = if c.share_of_memcpy >= COPY_TARGET { "PASS" } else { "MISS" };
        println!("  {} 1 MiB: {:.0}% of memcpy bandwidth  target ≥ 50%  {verdict}", c.service, 100.0 * c.share_of_memcpy);
    }
}

/// The worst 1 MiB copy's share of memcpy bandwidth.
pub fn worst_share(f: &AixFigures) -> f64 {
    f.copies.iter().filter(|c| c.bytes == MIB).map(|c| c.share_of_memcpy).fold(f64::INFINITY, f64::min)
}
