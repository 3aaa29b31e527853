//! The snapshot reset figures of part 9: what restoring a persistent VM
//! costs (a fixed part plus a part per page copied back, fitted over
//! iterations of guests that dirty few and many pages), and iterations per
//! second with the snapshot against a fresh boot per iteration, measured
//! in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{BenchError, percentile, progress, ratio};
use crate::guests;
use crate::kvm::machine::{self, RunOptions};
use crate::snapshot::persistent::PersistentVm;
use crate::state::VmConfig;

/// Restore time without pages to copy, in µs.
pub const FIXED_TARGET_US: f64 = 40.0;
/// Restore time per page copied back, in µs.
pub const PER_PAGE_TARGET_US: f64 = 1.5;
/// Iterations measured per guest.
const ITERATIONS: u64 = 300;

/// The reset figures.
#[derive(Debug, Default, Serialize)]
pub struct ResetFigures {
    /// Median restore time, in µs.
    pub p50_us: f64,
    /// The fitted restore time with no page to copy, in µs.
    pub fixed_us: f64,
    /// The fitted restore time per page copied back, in µs.
    pub per_page_us: f64,
    /// Pages copied back per iteration, median.
    pub pages_p50: f64,
    /// Iterations per second on a persistent VM.
    pub snapshot_per_second: f64,
    /// Iterations per second with a fresh VM each.
    pub fresh_per_second: f64,
}

/// The guests measured: a hand-off that dirties few pages, and the harness
/// that dirties all it can.
fn workloads() -> [(&'static str, VmConfig); 2] {
    let mut handoff = VmConfig { cmdline: "aix-correct".into(), ..VmConfig::default() };
    handoff.dma.latency = 0;
    handoff.dma.jitter = 3;
    [("dma-handoff", handoff), ("fuzz-dirty", VmConfig::default())]
}

/// Least squares of `y = a + b·x` over `points`: (a, b).
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n.max(1.0), sy / n.max(1.0));
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), (x, y)| (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx)));
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}

/// Measures the reset figures.
pub fn measure() -> Result<ResetFigures, BenchError> {
    let mut samples = Vec::new();
    let mut snapshot_seconds = 0.0;
    let mut fresh_seconds = 0.0;
    let mut iterations = 0;
    for (guest, config) in workloads() {
        progress(&format!("snapshot reset: {ITERATIONS} iterations of {guest} on a persistent VM, then fresh VMs"));
        let elf = guests::find(guest).ok_or(BenchError::MissingGuest(guest))?.elf;
        let timeout = Some(Duration::from_secs(10));
        let started = Instant::now();
        let mut vm = PersistentVm::boot(guest, elf, config.clone(), timeout).map_err(|e| BenchError::Fuzz(e.to_string()))?;
        for seed in 1..=ITERATIONS {
            vm.run(seed, Arc::from(&[seed as u8][..])).map_err(|e| BenchError::Fuzz(e.to_string()))?;
            // The first restore starts from the boot: nothing to put back.
            if seed > 1 {
                let reset = vm.last_reset();
                samples.push((reset.ram.copied as f64, reset.time.as_secs_f64() * 1e6));
            }
        }
        snapshot_seconds += started.elapsed().as_secs_f64();
        let started = Instant::now();
        for seed in 1..=ITERATIONS {
            let mut vm = config.clone();
            vm.dma.seed = seed;
            let options = RunOptions {
                name: guest.to_owned(),
                elf: elf.to_vec(),
                vm,
                timeout,
                console: Box::new(std::io::sink()),
                handle_signals: false,
            };
            machine::run(options)?;
        }
        fresh_seconds += started.elapsed().as_secs_f64();
        iterations += ITERATIONS;
    }
    let times: Vec<f64> = samples.iter().map(|s| s.1).collect();
    let pages: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let (fixed_us, per_page_us) = fit(&samples);
    Ok(ResetFigures {
        p50_us: percentile(&times, 50.0),
        fixed_us,
        per_page_us,
        pages_p50: percentile(&pages, 50.0),
        snapshot_per_second: iterations as f64 / snapshot_seconds.max(1e-9),
        fresh_per_second: iterations as f64 / fresh_seconds.max(1e-9),
    })
}

/// Prints the reset figures.
pub fn print(f: &ResetFigures) {
    println!(
        "  snapshot reset: p50 {:.1} µs ({:.0} pages copied back, p50); fitted {:.1} µs + {:.2} µs per page; {:.0} iterations/s \
         with the snapshot, {:.0}/s with a fresh VM each ({:.2}×)",
        f.p50_us,
        f.pages_p50,
        f.fixed_us,
        f.per_page_us,
        f.snapshot_per_second,
        f.fresh_per_second,
        ratio(f.snapshot_per_second, f.fresh_per_second)
    );
}

/// The summary lines of the reset figures.
pub fn summary(f: &ResetFigures) {
    let verdict = |met: bool| if met { "PASS" } else { "MISS" };
    println!(
        "  {:<40} {:>6.1}µs  target ≤ 40 µs  {}",
        "snapshot reset, fixed part",
        f.fixed_us,
        verdict(f.fixed_us <= FIXED_TARGET_US)
    );
    println!(
        "  {:<40} {:>6.2}µs  target ≤ 1.5 µs {}",
        "snapshot reset, per page copied back",
        f.per_page_us,
        verdict(f.per_page_us <= PER_PAGE_TARGET_US)
    );
    let speedup = ratio(f.snapshot_per_second, f.fresh_per_second);
    println!("  {:<40} {:>7.2}×  target > 1×     {}", "iterations/s, snapshot over fresh boot", speedup, verdict(speedup > 1.0));
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn the_fit_recovers_a_line() {
        let points: Vec<(f64, f64)> = (0..10).map(|x| (f64::from(x), 30.0 + 1.25 * f64::from(x))).collect();
        let (a, b) = fit(&points);
        assert!((a - 30.0).abs() < 1e-9 && (b - 1.25).abs() < 1e-9, "{a} {b}");
    }
}
