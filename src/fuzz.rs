//! `kmemvisor fuzz`: a campaign of runs of one guest, each under another
//! seed — another schedule of the vCPUs and other DMA completion times —
//! that keeps every distinct way the guest fails as a replayable report.
//!
//! A run's verdict depends only on the guest, its options and the seed
//! (device time and the serial schedule), so a finding is the report of
//! `kmemvisor run … --seed S`: `kmemvisor replay` reruns it. Findings are
//! told apart by what went wrong — the first violation's kind and guest
//! call site, or the exit cause — and each is written the moment it is
//! found, so a stopped campaign loses nothing.
//!
//! Each worker thread boots its VM once and restores it from a snapshot for
//! every run (`crate::snapshot`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::kvm::machine::MachineError;
use crate::report::{ExitCause, Invocation, Report};
use crate::seeded::SplitMix64;
use crate::snapshot::worker::{self, Iteration};
use crate::state::VmConfig;
use crate::sync::lock;

/// Why a campaign stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    /// A run could not be set up (no KVM, a bad image…).
    #[error("a run could not be made: {0}")]
    Run(#[from] MachineError),
    /// The findings directory cannot be written: nothing found is lost until then.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A campaign.
pub struct Campaign {
    /// The guest's name, for the reports.
    pub name: String,
    /// Its ELF image.
    pub elf: Vec<u8>,
    /// The options of every run; the seed is the campaign's to choose.
    pub config: VmConfig,
    /// Each run's `--timeout`.
    pub timeout: Option<Duration>,
    /// Stop after this many runs…
    pub runs: Option<u64>,
    /// …or after this long (whichever comes first; neither: until stopped).
    pub duration: Option<Duration>,
    /// Runs at once.
    pub jobs: usize,
    /// Where findings go.
    pub findings: PathBuf,
    /// The campaign's seed: run `i` gets the `i`-th seed drawn from it.
    pub seed: u64,
}

/// What a campaign did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Runs made.
    pub runs: u64,
    /// Runs that failed in some way (a violation, a fault, a stop other than a clean exit).
    pub failing_runs: u64,
    /// Distinct findings, by what went wrong: the runs that failed so.
    pub findings: BTreeMap<String, u64>,
    /// Seconds from the start to each finding's first run.
    pub first_found: BTreeMap<String, f64>,
    /// Seconds since the start.
    pub seconds: f64,
    /// Runs per second.
    pub runs_per_second: f64,
}

/// What went wrong in a run, as findings are told apart; `None` for a
/// clean exit 0.
pub fn signature(report: &Report) -> Option<String> {
    if let Some(v) = report.violations.first() {
        return Some(format!("{}@{}", v.kind.as_str(), v.rip));
    }
    match &report.exit.cause {
        ExitCause::GuestExit { code: 0 } => None,
        ExitCause::GuestExit { code } => Some(format!("exit-{code}")),
        ExitCause::Panic { file, line, .. } => Some(format!("panic@{file}:{line}")),
        ExitCause::Exception { vector, rip, .. } => Some(format!("exception-{vector}@{rip:#x}")),
        // The report's own name for the cause (`deadlock`, `timeout`, …).
        other => Some(serde_json::to_value(other).ok().and_then(|v| v["cause"].as_str().map(str::to_owned)).unwrap_or_default()),
    }
}

/// The seed of run `i` of a campaign seeded `seed`.
pub fn run_seed(seed: u64, i: u64) -> u64 {
    SplitMix64::new(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
}

/// Runs `campaign` until its end or `stop`; `invocation` gives the `run`
/// command a run with a seed is (for replay), `progress` sees the stats now
/// and then. Returns the stats.
pub fn run(
    campaign: &Campaign,
    invocation: &(dyn Fn(u64) -> Invocation + Sync),
    stop: &AtomicBool,
    progress: &(dyn Fn(&Stats) + Sync),
) -> Result<Stats, FuzzError> {
    std::fs::create_dir_all(&campaign.findings).map_err(|source| FuzzError::Write { path: campaign.findings.clone(), source })?;
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let stats = Mutex::new(Stats::default());
    let failed: Mutex<Option<FuzzError>> = Mutex::new(None);
    let done = |i: u64| {
        stop.load(Ordering::SeqCst)
            || lock(&failed).is_some()
            || campaign.runs.is_some_and(|n| i >= n)
            || campaign.duration.is_some_and(|d| started.elapsed() >= d)
    };
    std::thread::scope(|scope| {
        for _ in 0..campaign.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if done(i) {
                        return;
                    }
                    if let Err(e) = one(campaign, invocation, i, &stats, started) {
                        lock(&failed).get_or_insert(e);
                        return;
                    }
                    progress(&lock(&stats));
                }
            });
        }
    });
    if let Some(e) = lock(&failed).take() {
        return Err(e);
    }
    let stats = lock(&stats).clone();
    write_json(&campaign.findings.join("stats.json"), &stats)?;
    Ok(stats)
}

/// Run `i`: its report, and a new finding written if it is one.
fn one(
    campaign: &Campaign,
    invocation: &(dyn Fn(u64) -> Invocation + Sync),
    i: u64,
    stats: &Mutex<Stats>,
    started: Instant,
) -> Result<(), FuzzError> {
    let seed = run_seed(campaign.seed, i);
    let iteration = Iteration {
        name: &campaign.name,
        elf: &campaign.elf,
        config: &campaign.config,
        timeout: campaign.timeout,
        seed,
        input: campaign.config.input.clone(),
    };
    let mut report = worker::run(iteration)?;
    let finding = signature(&report);
    let mut s = lock(stats);
    s.runs += 1;
    s.seconds = started.elapsed().as_secs_f64();
    s.runs_per_second = s.runs as f64 / s.seconds.max(1e-9);
    let Some(finding) = finding else { return Ok(()) };
    s.failing_runs += 1;
    let count = s.findings.entry(finding.clone()).or_insert(0);
    *count += 1;
    if *count == 1 {
        let seconds = s.seconds;
        s.first_found.insert(finding.clone(), seconds);
        report.invocation = Some(invocation(seed));
        let objects: Vec<&[u8]> =
            std::iter::once(&campaign.elf[..]).chain(campaign.config.modules.iter().map(|m| &m.elf[..])).collect();
        report.locate(&objects);
        let file = campaign.findings.join(format!("{}.json", file_name(&finding)));
        write_json(&file, &report)?;
    }
    Ok(())
}

/// A finding's file name: its signature with only safe characters.
fn file_name(finding: &str) -> String {
    finding.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), FuzzError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    std::fs::write(path, text + "\n").map_err(|source| FuzzError::Write { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_get_distinct_seeds_that_the_campaign_seed_fixes() {
        let seeds: Vec<u64> = (0..100).map(|i| run_seed(7, i)).collect();
        let mut unique = seeds.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 100);
        assert_eq!(seeds, (0..100).map(|i| run_seed(7, i)).collect::<Vec<_>>());
        assert_ne!(run_seed(8, 0), run_seed(7, 0));
    }

    #[test]
    fn finding_files_have_safe_names() {
        assert_eq!(file_name("dma.unhide-during-transfer@0xffffffff80201063"), "dma.unhide-during-transfer_0xffffffff80201063");
        assert_eq!(file_name("panic@src/main.rs:12"), "panic_src_main.rs_12");
        assert_eq!(file_name("../../etc"), ".._.._etc");
    }
}
