//! The snapshot reset figures of part 9: what restoring a persistent VM
//! costs (a fixed part plus a part per page copied back, fitted over
//! iterations of guests that dirty few and many pages), and iterations per
//! second with the snapshot against a fresh boot per iteration, measured
//! in the same run — for each way of finding the pages to put back
//! (`snapshot::dirty`): comparing every page held, or KVM's dirty log with
//! the VMM's record. A campaign keeps the way whose iterations are faster;
//! the targets are judged on that one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{BenchError, percentile, progress, ratio};
use crate::guests;
use crate::kvm::machine::{self, RunOptions};
use crate::snapshot::dirty::DirtyPages;
use crate::snapshot::persistent::PersistentVm;
use crate::state::VmConfig;

/// Restore time without pages to copy, in µs.
pub const FIXED_TARGET_US: f64 = 40.0;
/// Restore time per page copied back, in µs.
pub const PER_PAGE_TARGET_US: f64 = 1.5;
/// Iterations on one persistent VM (and fresh VMs per guest).
const BLOCK: u64 = 50;
/// Blocks of each way per guest.
const BLOCKS: u64 = 4;

/// The reset figures of both ways, against fresh boots.
#[derive(Debug, Default, Serialize)]
pub struct ResetFigures {
    /// Comparing every page the memfd holds.
    pub held: WayFigures,
    /// KVM's dirty log and the VMM's record of its writes.
    pub logged: WayFigures,
    /// Iterations per second with a fresh VM each.
    pub fresh_per_second: f64,
}

/// The reset figures of one way.
#[derive(Debug, Default, Serialize)]
pub struct WayFigures {
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
}

impl ResetFigures {
    /// The way a campaign keeps: the one with more iterations per second.
    pub fn kept(&self) -> (&'static str, &WayFigures) {
        if self.logged.snapshot_per_second > self.held.snapshot_per_second {
            ("dirty log", &self.logged)
        } else {
            ("held pages", &self.held)
        }
    }
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
    let mut held = Samples::default();
    let mut logged = Samples::default();
    let mut fresh_seconds = 0.0;
    let mut fresh_iterations = 0;
    for (guest, config) in workloads() {
        let elf = guests::find(guest).ok_or(BenchError::MissingGuest(guest))?.elf;
        let timeout = Some(Duration::from_secs(10));
        // The two ways alternate in blocks, so that both see the same host.
        for _ in 0..BLOCKS {
            for (way, samples) in [(DirtyPages::Held, &mut held), (DirtyPages::Logged, &mut logged)] {
                progress(&format!("snapshot reset: {BLOCK} iterations of {guest} on a persistent VM, {way:?}"));
                samples.persistent(guest, elf, &config, timeout, way)?;
            }
        }
        progress(&format!("snapshot reset: {BLOCK} iterations of {guest} on fresh VMs"));
        let started = Instant::now();
        for seed in 1..=BLOCK {
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
        fresh_iterations += BLOCK;
    }
    Ok(ResetFigures {
        held: held.figures(),
        logged: logged.figures(),
        fresh_per_second: fresh_iterations as f64 / fresh_seconds.max(1e-9),
    })
}

/// What one way's iterations gave: (pages copied back, restore µs) per
/// restore, and the time of the iterations.
#[derive(Default)]
struct Samples {
    restores: Vec<(f64, f64)>,
    seconds: f64,
    iterations: u64,
}

impl Samples {
    /// [`BLOCK`] iterations of `guest` on a persistent VM whose pages are tracked `way`.
    fn persistent(
        &mut self,
        guest: &'static str,
        elf: &[u8],
        config: &VmConfig,
        timeout: Option<Duration>,
        way: DirtyPages,
    ) -> Result<(), BenchError> {
        let mut vm = PersistentVm::boot(guest, elf, config.clone(), timeout).map_err(|e| BenchError::Fuzz(e.to_string()))?;
        vm.track_dirty_pages(way);
        // The first iteration runs from the boot (maybe to the snapshot point): not timed.
        vm.run(1, Arc::from(&[1][..])).map_err(|e| BenchError::Fuzz(e.to_string()))?;
        let started = Instant::now();
        for seed in 2..=BLOCK + 1 {
            vm.run(seed, Arc::from(&[seed as u8][..])).map_err(|e| BenchError::Fuzz(e.to_string()))?;
            let reset = vm.last_reset();
            self.restores.push((reset.ram.copied as f64, reset.time.as_secs_f64() * 1e6));
        }
        self.seconds += started.elapsed().as_secs_f64();
        self.iterations += BLOCK;
        Ok(())
    }

    fn figures(&self) -> WayFigures {
        let times: Vec<f64> = self.restores.iter().map(|s| s.1).collect();
        let pages: Vec<f64> = self.restores.iter().map(|s| s.0).collect();
        let (fixed_us, per_page_us) = fit(&self.restores);
        WayFigures {
            p50_us: percentile(&times, 50.0),
            fixed_us,
            per_page_us,
            pages_p50: percentile(&pages, 50.0),
            snapshot_per_second: self.iterations as f64 / self.seconds.max(1e-9),
        }
    }
}

/// Prints the reset figures.
pub fn print(f: &ResetFigures) {
    for (way, w) in [("held pages", &f.held), ("dirty log", &f.logged)] {
        println!(
            "  snapshot reset ({way}): p50 {:.1} µs ({:.0} pages copied back, p50); fitted {:.1} µs + {:.2} µs per page; \
             {:.0} iterations/s with the snapshot ({:.2}× a fresh VM each, {:.0}/s)",
            w.p50_us,
            w.pages_p50,
            w.fixed_us,
            w.per_page_us,
            w.snapshot_per_second,
            ratio(w.snapshot_per_second, f.fresh_per_second),
            f.fresh_per_second
        );
    }
}

/// The summary lines of the reset figures: those of the way a campaign keeps.
pub fn summary(f: &ResetFigures) {
    let verdict = |met: bool| if met { "PASS" } else { "MISS" };
    let (way, w) = f.kept();
    println!(
        "  {:<40} {:>6.1}µs  target ≤ 40 µs  {}",
        format!("snapshot reset, fixed part ({way})"),
        w.fixed_us,
        verdict(w.fixed_us <= FIXED_TARGET_US)
    );
    println!(
        "  {:<40} {:>6.2}µs  target ≤ 1.5 µs {}",
        "snapshot reset, per page copied back",
        w.per_page_us,
        verdict(w.per_page_us <= PER_PAGE_TARGET_US)
    );
    let speedup = ratio(w.snapshot_per_second, f.fresh_per_second);
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
