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
//! Every run counts the behaviour it reached ([`crate::coverage`]); an input
//! whose run reached something new is kept in the corpus directory
//! ([`corpus`]), checked once for stability (its rerun must give the same
//! trace), and rerun first by the next campaign on that corpus, which so
//! resumes with what this one learnt. Inputs of guests that read theirs
//! (`fuzz_input`) are bred from the corpus ([`mutate`]); the others get a
//! fresh schedule seed each run.
//!
//! Each worker thread boots its VM once and restores it from a snapshot for
//! every run (`crate::snapshot`).

pub mod corpus;
pub mod mutate;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::kvm::machine::{MachineError, RunOutcome};
use crate::report::{ExitCause, Invocation, Report};
use crate::seeded::SplitMix64;
use crate::snapshot::worker::{self, Iteration};
use crate::state::VmConfig;
use crate::sync::lock;

use corpus::{Corpus, CorpusError, Input};

/// Why a campaign stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    /// A run could not be set up (no KVM, a bad image…).
    #[error("a run could not be made: {0}")]
    Run(#[from] MachineError),
    /// The corpus cannot be read or written, or holds a file that is not an input.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
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
    /// Where the inputs that reached new behaviour go (and come from).
    pub corpus: PathBuf,
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
    /// Inputs the corpus held at the start, rerun first.
    pub resumed: u64,
    /// Inputs in the corpus now.
    pub corpus: u64,
    /// Distinct features (behaviour) reached.
    pub features: u64,
    /// Corpus inputs rerun to check that they repeat…
    pub rechecked: u64,
    /// …and those whose rerun gave the same trace.
    pub stable: u64,
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

/// The `run` command line of a run with this seed and, when the guest
/// input is not empty, this file of it (for replay).
pub type InvocationOf<'a> = dyn Fn(u64, Option<&Path>) -> Invocation + Sync + 'a;

/// What the workers of a campaign share.
struct Shared<'a> {
    campaign: &'a Campaign,
    /// The campaign's run options, counting coverage.
    config: VmConfig,
    invocation: &'a InvocationOf<'a>,
    corpus: Corpus,
    /// The inputs the corpus held at the start.
    resumed: Vec<Input>,
    /// The inputs kept whose guest read its input: the ones worth breeding.
    parents: Mutex<Vec<Input>>,
    /// Every feature reached so far.
    seen: Mutex<HashSet<u64>>,
    stats: Mutex<Stats>,
    started: Instant,
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
    invocation: &InvocationOf<'_>,
    stop: &AtomicBool,
    progress: &(dyn Fn(&Stats) + Sync),
) -> Result<Stats, FuzzError> {
    std::fs::create_dir_all(&campaign.findings).map_err(|source| FuzzError::Write { path: campaign.findings.clone(), source })?;
    let corpus = Corpus::open(&campaign.corpus)?;
    let resumed = corpus.load()?;
    let stats = Stats { resumed: resumed.len() as u64, corpus: resumed.len() as u64, ..Stats::default() };
    let shared = Shared {
        campaign,
        config: VmConfig { coverage: true, ..campaign.config.clone() },
        invocation,
        corpus,
        resumed,
        parents: Mutex::new(Vec::new()),
        seen: Mutex::new(HashSet::new()),
        stats: Mutex::new(stats),
        started: Instant::now(),
    };
    let next = AtomicU64::new(0);
    let failed: Mutex<Option<FuzzError>> = Mutex::new(None);
    let done = |i: u64| {
        stop.load(Ordering::SeqCst)
            || lock(&failed).is_some()
            || campaign.runs.is_some_and(|n| i >= n)
            || campaign.duration.is_some_and(|d| shared.started.elapsed() >= d)
    };
    std::thread::scope(|scope| {
        for _ in 0..campaign.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if done(i) {
                        return;
                    }
                    if let Err(e) = shared.iteration(i) {
                        lock(&failed).get_or_insert(e);
                        return;
                    }
                    progress(&lock(&shared.stats));
                }
            });
        }
    });
    if let Some(e) = lock(&failed).take() {
        return Err(e);
    }
    let stats = lock(&shared.stats).clone();
    write_json(&campaign.findings.join("stats.json"), &stats)?;
    Ok(stats)
}

impl Shared<'_> {
    /// Iteration `i`: the corpus's inputs first, then new ones.
    fn iteration(&self, i: u64) -> Result<(), FuzzError> {
        let resumed = self.resumed.len() as u64;
        let input = match self.resumed.get(i as usize) {
            Some(input) => input.clone(),
            None => self.new_input(i - resumed),
        };
        let outcome = self.run(&input)?;
        let new = {
            let mut seen = lock(&self.seen);
            outcome.features.iter().fold(false, |new, &f| seen.insert(f) | new)
        };
        let reads_input = outcome.report.calls.get("fuzz_input").is_some_and(|&n| n > 0);
        if new && i >= resumed {
            self.corpus.add(&input)?;
            let again = self.run(&input)?;
            let mut s = lock(&self.stats);
            s.corpus += 1;
            s.rechecked += 1;
            s.stable += u64::from(again.report.determinism.trace == outcome.report.determinism.trace);
        }
        if (new || i < resumed) && reads_input {
            lock(&self.parents).push(input.clone());
        }
        self.record(&input, outcome.report)
    }

    /// New input `n`: bred from two kept inputs three times in four once
    /// the guest is known to read its input, else a fresh schedule seed with
    /// the campaign's input (`--input`).
    fn new_input(&self, n: u64) -> Input {
        let mut draws = SplitMix64::new(run_seed(self.campaign.seed, n));
        let fresh = Input { seed: draws.next_u64(), bytes: self.config.input.to_vec() };
        let parents = lock(&self.parents);
        if parents.is_empty() || draws.up_to(3) == 0 {
            return fresh;
        }
        let pick = |draws: &mut SplitMix64| &parents[draws.up_to(parents.len() as u64 - 1) as usize];
        // Half the time the newest: it reached the most recent behaviour.
        let newest = &parents[parents.len() - 1];
        let parent = if draws.up_to(1) == 0 { newest } else { pick(&mut draws) };
        let other = pick(&mut draws);
        mutate::mutate(parent, other, &mut draws)
    }

    /// The run of `input`.
    fn run(&self, input: &Input) -> Result<RunOutcome, FuzzError> {
        let iteration = Iteration {
            name: &self.campaign.name,
            elf: &self.campaign.elf,
            config: &self.config,
            timeout: self.campaign.timeout,
            seed: input.seed,
            input: Arc::from(&input.bytes[..]),
        };
        Ok(worker::run(iteration)?)
    }

    /// Counts a run of `input` that ended with `report`, and writes it as a
    /// new finding if it is one (with its guest input beside it, if any).
    fn record(&self, input: &Input, mut report: Report) -> Result<(), FuzzError> {
        let finding = signature(&report);
        let mut s = lock(&self.stats);
        s.runs += 1;
        s.features = lock(&self.seen).len() as u64;
        s.seconds = self.started.elapsed().as_secs_f64();
        s.runs_per_second = s.runs as f64 / s.seconds.max(1e-9);
        let Some(finding) = finding else { return Ok(()) };
        s.failing_runs += 1;
        let count = s.findings.entry(finding.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            let seconds = s.seconds;
            s.first_found.insert(finding.clone(), seconds);
            let campaign = self.campaign;
            let stem = file_name(&finding);
            let input_file = campaign.findings.join(format!("{stem}.input"));
            if !input.bytes.is_empty() {
                std::fs::write(&input_file, &input.bytes)
                    .map_err(|source| FuzzError::Write { path: input_file.clone(), source })?;
            }
            report.invocation = Some((self.invocation)(input.seed, (!input.bytes.is_empty()).then_some(&input_file)));
            let objects: Vec<&[u8]> =
                std::iter::once(&campaign.elf[..]).chain(campaign.config.modules.iter().map(|m| &m.elf[..])).collect();
            report.locate(&objects);
            let file = campaign.findings.join(format!("{stem}.json"));
            write_json(&file, &report)?;
        }
        Ok(())
    }
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
