//! Part 4 of `kmemvisor bench`: the DG/UX services' own cost per call, next to
//! the null hypercall, with no and with 10,000 live allocations, and the
//! VMM's bookkeeping memory.
//!
//! Each service is dispatched in-process exactly as a vCPU thread would after
//! an exit, so the figure is the VMM's work per call; the exit itself (part 1)
//! is the same for every service and is added to both sides of the ratio.

use std::hint::black_box;

use kmemvisor_abi::Service;
use kmemvisor_abi::dgux::{VM_DEFAULT_ALIGNMENT, VM_PAGE_ALIGNED};
use serde::Serialize;

use super::{BenchError, Stats, call, mean_ns, ratio};
use crate::guests;
use crate::state::{VmConfig, VmState};
use crate::sync::lock;

/// Live allocations of the loaded measurement.
pub const LIVE: u64 = 10_000;
/// The per-call target against the null hypercall.
pub const TARGET: f64 = 1.1;
/// Most bookkeeping, as a share of guest RAM.
pub const BOOKKEEPING_TARGET: f64 = 0.01;

/// One service's cost.
#[derive(Debug, Serialize)]
pub struct ServiceCost {
    /// The guest-library name.
    pub service: &'static str,
    /// Live allocations while measured.
    pub live: u64,
    /// VMM work per call, ns.
    pub ns: Stats,
    /// (exit + this) / (exit + null).
    pub ratio: f64,
}

/// A guest-driven pair of calls, measured end to end against null calls.
#[derive(Debug, Serialize)]
pub struct PairCost {
    /// The two services of the pair.
    pub pair: &'static str,
    /// Live allocations while measured.
    pub live: u64,
    /// TSC cycles per call of the pair (both calls averaged), per run.
    pub cycles: Stats,
    /// TSC cycles per null call in the same runs.
    pub null_cycles: Stats,
    /// Median over the runs of cycles / null cycles.
    pub ratio: f64,
}

/// Everything part 4 measured.
#[derive(Debug, Serialize)]
pub struct DgUxFigures {
    /// The guest-driven pairs.
    pub pairs: Vec<PairCost>,
    /// VMM work of a null call, ns.
    pub null_ns: Stats,
    /// Each service, unloaded and loaded.
    pub services: Vec<ServiceCost>,
    /// Bookkeeping bytes with `LIVE` live allocations.
    pub bookkeeping_bytes: u64,
    /// Guest RAM.
    pub memory_bytes: u64,
}

/// ns per call of get, release, wire and unwire of one state, one round.
fn round(state: &VmState, n: u64) -> Result<[f64; 5], BenchError> {
    let null = mean_ns(n, || call(state, Service::Null, [0; 6]).map(|_| ()))?;
    let mut pointers = Vec::with_capacity(n as usize);
    let get = mean_ns(n, || {
        pointers.push(call(state, Service::VmGetWiredMemory, [64, u64::from(VM_DEFAULT_ALIGNMENT), 0, 0, 0, 0])?);
        Ok(())
    })?;
    let mut to_release = pointers.into_iter();
    let release = mean_ns(n, || {
        let p = to_release.next().unwrap_or_default();
        call(state, Service::VmReleaseWiredMemory, [black_box(p), 64, 0, 0, 0, 0]).map(|_| ())
    })?;
    let page = call(state, Service::VmGetUnwiredMemory, [4096, u64::from(VM_PAGE_ALIGNED), 0, 0, 0, 0])?;
    let wire = mean_ns(n, || call(state, Service::VmWireMemory, [page, 0, 4096, 0, 0, 0]).map(|_| ()))?;
    let unwire = mean_ns(n, || call(state, Service::VmUnwireMemory, [page, 0, 4096, 0, 0, 0]).map(|_| ()))?;
    call(state, Service::VmReleaseUnwiredMemory, [page, 4096, 0, 0, 0, 0])?;
    Ok([null, get, release, wire, unwire])
}

/// Measures part 4; `exit_us` is the raw exit floor from part 1.
pub fn measure(rounds: u32, exit_us: f64) -> Result<DgUxFigures, BenchError> {
    let elf = guests::find("hello").ok_or(BenchError::MissingGuest("hello"))?.elf;
    let n = 2_000;
    let names = ["vm_get_wired_memory", "vm_release_wired_memory", "vm_wire_memory", "vm_unwire_memory"];
    let mut services = Vec::new();
    let mut null_samples = Vec::new();
    let mut bookkeeping_bytes = 0;
    let mut memory_bytes = 0;
    for live in [0, LIVE] {
        let state = VmState::new(VmConfig::default(), elf)?;
        for _ in 0..live {
            call(&state, Service::VmGetWiredMemory, [64, u64::from(VM_DEFAULT_ALIGNMENT), 0, 0, 0, 0])?;
        }
        let mut samples: [Vec<f64>; 5] = Default::default();
        for _ in 0..rounds {
            for (i, ns) in round(&state, n)?.into_iter().enumerate() {
                samples[i].push(ns);
            }
        }
        let null = Stats::of(&samples[0]);
        null_samples.extend(&samples[0]);
        for (name, service) in names.iter().zip(&samples[1..]) {
            let ns = Stats::of(service);
            let cost = ratio(exit_us * 1000.0 + ns.median, exit_us * 1000.0 + null.median);
            services.push(ServiceCost { service: name, live, ns, ratio: cost });
        }
        let kernel = lock(&state.kernel);
        bookkeeping_bytes = kernel.dgux.report(&kernel.frames, 0).bookkeeping_bytes;
        memory_bytes = state.ram.size();
    }
    Ok(DgUxFigures { pairs: Vec::new(), null_ns: Stats::of(&null_samples), services, bookkeeping_bytes, memory_bytes })
}

/// The three figures of a `bench-cycles:` line: null, get+release, wire+unwire.
fn parse_cycles(console: &str) -> Option<[f64; 3]> {
    let line = console.lines().find_map(|l| l.strip_prefix("bench-cycles: "))?;
    let mut figures = [0.0; 3];
    for (slot, key) in figures.iter_mut().zip(["null=", "getrel=", "wire="]) {
        let field = line.split_whitespace().find_map(|f| f.strip_prefix(key))?;
        *slot = field.parse().ok()?;
    }
    Some(figures)
}

/// Runs the bundled `bench` guest's `dgux LIVE BLOCKS` mode, which times
/// interleaved blocks of null calls, get+release and wire+unwire pairs with
/// the TSC: the ratios compare calls that met the same host.
pub fn measure_end_to_end(rounds: u32, blocks: u64) -> Result<Vec<PairCost>, BenchError> {
    let timeout = std::time::Duration::from_secs(120);
    let mut out = Vec::new();
    for live in [0, LIVE] {
        let mut runs: [Vec<f64>; 3] = Default::default();
        for round in 1..=rounds {
            super::progress(&format!("DG/UX calls in the guest with {live} live allocations, run {round}/{rounds}"));
            let cmdline = format!("dgux {live} {}", blocks.max(1));
            let (_, console) = super::run_guest_capturing("bench", cmdline.clone(), timeout)?;
            let figures = parse_cycles(&console)
                .ok_or_else(|| BenchError::Service("bench guest", format!("no bench-cycles line for `{cmdline}`")))?;
            for (samples, figure) in runs.iter_mut().zip(figures) {
                samples.push(figure);
            }
        }
        for (pair, samples) in
            [("vm_perhaps_get_wired_memory + vm_release_wired_memory", &runs[1]), ("vm_wire_memory + vm_unwire_memory", &runs[2])]
        {
            let ratios: Vec<f64> = samples.iter().zip(&runs[0]).map(|(s, n)| ratio(*s, *n)).collect();
            let ratio = super::percentile(&ratios, 50.0);
            out.push(PairCost { pair, live, cycles: Stats::of(samples), null_cycles: Stats::of(&runs[0]), ratio });
        }
    }
    Ok(out)
}

/// Prints part 4.
pub fn print(f: &DgUxFigures, exit_us: f64) {
    println!(
        "\n4. DG/UX services: VMM work per call, next to the null call (in-process dispatch; exit floor {exit_us:.2} µs from 1.)"
    );
    super::row("null hypercall", f.null_ns, "ns");
    for s in &f.services {
        let label = format!("{} ({} live)", s.service, s.live);
        super::row(&label, s.ns, "ns");
    }
    println!("  end to end in the bench guest (TSC cycles per call, blocks interleaved with null calls):");
    for p in &f.pairs {
        let label = format!("{} ({} live)", p.pair, p.live);
        println!(
            "    {label:<66} {:>8.0} vs null {:>8.0}  {}  target ≤ {}  {}",
            p.cycles.median,
            p.null_cycles.median,
            super::format_ratio(p.ratio),
            super::format_ratio(TARGET),
            super::verdict(p.ratio, TARGET)
        );
    }
    for s in &f.services {
        let label = format!("(exit + {}) / (exit + null), {} live", s.service, s.live);
        println!(
            "  {label:<60} {}  target ≤ {}  {}",
            super::format_ratio(s.ratio),
            super::format_ratio(TARGET),
            super::verdict(s.ratio, TARGET)
        );
    }
    let share = f.bookkeeping_bytes as f64 / f.memory_bytes as f64;
    let verdict = if share <= BOOKKEEPING_TARGET { "PASS" } else { "MISS" };
    println!(
        "  bookkeeping with {LIVE} live allocations: {} KiB of {} MiB guest RAM = {:.3}%  target ≤ 1%  {verdict}",
        f.bookkeeping_bytes / 1024,
        f.memory_bytes >> 20,
        100.0 * share
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_lines_parse_and_anything_else_does_not() {
        assert_eq!(parse_cycles("x\nbench-cycles: null=100 getrel=120 wire=99\n"), Some([100.0, 120.0, 99.0]));
        assert_eq!(parse_cycles("bench-cycles: null=100 wire=99"), None);
        assert_eq!(parse_cycles("bench-cycles: null=x getrel=1 wire=2"), None);
        assert_eq!(parse_cycles(""), None);
    }
}
