//! Part 9 of `kmemvisor bench`: the seeded-bug benchmark of `kmemvisor
//! fuzz`. Buggy drivers — each one hand-off mistake, or a leak on an error
//! path that `--fail-alloc` opens — are fuzzed from scratch under several
//! campaign seeds: how long until the campaign finds
//! the bug (the violation kind that names it), and how many findings the
//! correct twins give (there must be none). Beside them: the campaign's
//! rate of hand-offs per second on one core, `-j 2` against `-j 1`, and the
//! whole-process shell loop (`kmemvisor run` per seed) a user would write
//! without `fuzz`, measured in the same run.

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{BenchError, percentile, progress};
use crate::devices::dma_engine::DmaConfig;
use crate::fuzz::{self, Campaign};
use crate::guests;
use crate::kvm::pct::{DEFAULT_DEPTH, DEFAULT_STEPS};
use crate::kvm::vcpu_pool::Schedule;
use crate::memory_model::inject::FailSpec;
use crate::report::Invocation;
use crate::state::VmConfig;

/// Every seeded bug is found within this many seconds, p90 over the campaign seeds.
pub const FIND_TARGET_SECONDS: f64 = 10.0;
/// Hand-offs per second on one core.
pub const HANDOFF_TARGET: f64 = 1000.0;
/// `-j 2` against `-j 1`.
pub const SPEEDUP_TARGET: f64 = 1.8;
/// Campaign seeds per bug.
const CAMPAIGN_SEEDS: u64 = 5;
/// A campaign that has not found its bug after this long has missed it.
const GIVE_UP: Duration = Duration::from_secs(20);
/// Runs of each correct twin.
const TWIN_RUNS: u64 = 300;
/// Runs of the shell-loop baseline.
const SHELL_RUNS: u32 = 30;

/// A buggy driver: the guest, its arguments and options, and the violation
/// kind that names its bug.
struct SeededBug {
    name: &'static str,
    guest: &'static str,
    args: &'static str,
    vcpus: usize,
    jitter: u64,
    /// `--fail-alloc`'s spec ("": none).
    fail_alloc: &'static str,
    kind: &'static str,
}

/// The hand-off mistakes. Timing-dependent ones run with DMA latency 0 and a
/// jitter, so that whether the device is done at the driver's next call is
/// the schedule's to choose.
const BUGS: [SeededBug; 8] = [
    SeededBug {
        name: "AIX unhide during the transfer",
        guest: "dma-handoff",
        args: "aix-unhide-early",
        vcpus: 1,
        jitter: 3,
        fail_alloc: "",
        kind: "dma.unhide-during-transfer",
    },
    SeededBug {
        name: "DG/UX unwire during the transfer",
        guest: "dma-handoff",
        args: "dgux-unwire-early",
        vcpus: 1,
        jitter: 3,
        fail_alloc: "",
        kind: "dma.unwire-during-transfer",
    },
    SeededBug {
        name: "DG/UX release during the transfer",
        guest: "dma-handoff",
        args: "dgux-release-early",
        vcpus: 1,
        jitter: 3,
        fail_alloc: "",
        kind: "dma.release-during-transfer",
    },
    SeededBug {
        name: "DG/UX unwire without the modified mark",
        guest: "dma-handoff",
        args: "dgux-no-modify",
        vcpus: 1,
        jitter: 3,
        fail_alloc: "",
        kind: "dma.unwire-without-modified-mark",
    },
    SeededBug {
        name: "DMA into unwired memory",
        guest: "dma-handoff",
        args: "dgux-unwired-target",
        vcpus: 1,
        jitter: 3,
        fail_alloc: "",
        kind: "dma.page-not-handed-off",
    },
    SeededBug {
        name: "DG/UX double fetch of the device's data",
        guest: "dma-handoff",
        args: "dgux-double-fetch",
        vcpus: 1,
        jitter: 3,
        fail_alloc: "",
        kind: "dma.double-fetch",
    },
    SeededBug {
        name: "read before the completion (2 vCPUs)",
        guest: "dma-race",
        args: "",
        vcpus: 2,
        jitter: 3,
        fail_alloc: "",
        kind: "hidden-page.touched",
    },
    SeededBug {
        name: "leak on an error path (--fail-alloc)",
        guest: "alloc-error-path",
        args: "leak",
        vcpus: 1,
        jitter: 0,
        fail_alloc: FAIL_ALLOC,
        kind: "leak.dgux-allocation",
    },
];

/// The failure rate of the error-path bug and its twin: each run's gets
/// fail as its seed draws.
const FAIL_ALLOC: &str = "rate=0.3";

/// A correct twin: no campaign may find anything in it.
struct Twin {
    name: &'static str,
    guest: &'static str,
    args: &'static str,
    fail_alloc: &'static str,
    /// Its runs are one hand-off each: their rate is the hand-off rate.
    one_handoff: bool,
}

/// The correct twins.
const TWINS: [Twin; 4] = [
    Twin { name: "AIX hand-off, correct", guest: "dma-handoff", args: "aix-correct", fail_alloc: "", one_handoff: false },
    Twin { name: "DG/UX hand-off, correct", guest: "dma-handoff", args: "dgux-correct", fail_alloc: "", one_handoff: true },
    Twin {
        name: "DG/UX receive, reads after completion",
        guest: "dma-handoff",
        args: "dgux-fetch-after-completion",
        fail_alloc: "",
        one_handoff: false,
    },
    Twin {
        name: "error path, correct (--fail-alloc)",
        guest: "alloc-error-path",
        args: "correct",
        fail_alloc: FAIL_ALLOC,
        one_handoff: false,
    },
];

/// One seeded bug's figures.
#[derive(Debug, Serialize)]
pub struct BugFigures {
    /// What the bug is.
    pub name: &'static str,
    /// The violation kind that names it.
    pub kind: &'static str,
    /// Seconds to the first finding of that kind, per campaign seed; `None`: not found.
    pub seconds: Vec<Option<f64>>,
    /// The 90th percentile of those (a miss counts as the give-up time).
    pub p90_seconds: f64,
}

/// What part 9 measured.
#[derive(Debug, Serialize)]
pub struct FuzzFigures {
    /// Each seeded bug.
    pub bugs: Vec<BugFigures>,
    /// Findings in the correct twins (name, runs, findings).
    pub twins: Vec<(&'static str, u64, usize)>,
    /// Runs per second of a correct twin's campaign on one worker; each run is one hand-off.
    pub handoffs_per_second: f64,
    /// Microseconds per run, guest work and snapshot reset together.
    pub reset_us: f64,
    /// Runs per second with `-j 2` over `-j 1`, the same campaign for the same time.
    pub speedup: f64,
    /// CPU time (user and system, every thread) per run with `-j 1` and
    /// with `-j 2`, in µs: what the workers cost each other, whatever else
    /// the host runs.
    pub cpu_per_run_us: (f64, f64),
    /// Cores the campaign kept busy with `-j 1` and with `-j 2`.
    pub cores_used: (f64, f64),
    /// Runs per second of a shell loop of `kmemvisor run` processes.
    pub shell_runs_per_second: f64,
    /// What a snapshot reset costs, against a fresh boot.
    pub reset: super::reset::ResetFigures,
}

fn config(vcpus: usize, jitter: u64, cmdline: &str, fail_alloc: &str) -> Result<VmConfig, BenchError> {
    Ok(VmConfig {
        vcpus,
        cmdline: cmdline.to_owned(),
        fail_alloc: FailSpec::parse(fail_alloc).map_err(BenchError::Fuzz)?,
        dma: DmaConfig { latency: 0, jitter, seed: 1 },
        schedule: Schedule::Serial { seed: 1, depth: DEFAULT_DEPTH, steps: DEFAULT_STEPS },
        ..VmConfig::default()
    })
}

/// A campaign of `guest` in a scratch findings directory.
fn campaign(
    guest: &'static str,
    vm: VmConfig,
    seed: u64,
    runs: Option<u64>,
    duration: Option<Duration>,
    jobs: usize,
) -> Result<Campaign, BenchError> {
    let elf = guests::find(guest).ok_or(BenchError::MissingGuest(guest))?.elf.to_vec();
    let findings = std::env::temp_dir().join(format!("kmemvisor-bench-fuzz-{}-{seed}", std::process::id()));
    Ok(Campaign {
        name: guest.to_owned(),
        elf,
        config: vm,
        timeout: Some(Duration::from_secs(10)),
        runs,
        duration,
        jobs,
        corpus: findings.join("corpus"),
        findings,
        seed,
    })
}

/// Runs `campaign` to its end, or until `stop_at` is found; the stats.
fn run(campaign: &Campaign, stop_at: Option<&str>) -> Result<fuzz::Stats, BenchError> {
    let stop = AtomicBool::new(false);
    let invocation = |_seed: u64, _input: Option<&std::path::Path>| Invocation::default();
    let progress = |stats: &fuzz::Stats| {
        if stop_at.is_some_and(|kind| stats.findings.keys().any(|f| f.starts_with(kind))) {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let stats = fuzz::run(campaign, &invocation, &stop, &progress).map_err(|e| BenchError::Fuzz(e.to_string()));
    let _ = std::fs::remove_dir_all(&campaign.findings);
    stats
}

/// Seconds of each `-j 1` and `-j 2` campaign; [`JOBS_ROUNDS`] of each, alternated.
const JOBS_SECONDS: u64 = 2;
const JOBS_ROUNDS: u64 = 3;

/// `-j 1` against `-j 2` (index 0 and 1).
struct JobsFigures {
    runs_per_second: [f64; 2],
    cpu_per_run_us: [f64; 2],
    cores: [f64; 2],
}

/// User and system time of the whole process so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only the struct it is given; a zeroed rusage is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The same campaign (a correct hand-off) with one and two workers, for the
/// same time, alternated so that both see the same host.
fn measure_jobs() -> Result<JobsFigures, BenchError> {
    let (mut runs, mut wall, mut cpu) = ([0u64; 2], [0.0f64; 2], [0.0f64; 2]);
    for round in 0..JOBS_ROUNDS {
        for jobs in [1, 2] {
            progress(&format!("correct twin with -j {jobs} for {JOBS_SECONDS} s (round {} of {JOBS_ROUNDS})", round + 1));
            let c = campaign(
                "dma-handoff",
                config(1, 3, "aix-correct", "")?,
                1,
                None,
                Some(Duration::from_secs(JOBS_SECONDS)),
                jobs,
            )?;
            let (started, cpu_before) = (Instant::now(), cpu_seconds());
            let stats = run(&c, None)?;
            wall[jobs - 1] += started.elapsed().as_secs_f64();
            cpu[jobs - 1] += cpu_seconds() - cpu_before;
            runs[jobs - 1] += stats.runs;
        }
    }
    let per = |i: usize, x: f64| x / (runs[i].max(1) as f64);
    Ok(JobsFigures {
        runs_per_second: [0, 1].map(|i| runs[i] as f64 / wall[i].max(1e-9)),
        cpu_per_run_us: [0, 1].map(|i| per(i, cpu[i]) * 1e6),
        cores: [0, 1].map(|i| cpu[i] / wall[i].max(1e-9)),
    })
}

/// Measures part 9.
pub fn measure() -> Result<FuzzFigures, BenchError> {
    let mut bugs = Vec::new();
    for bug in &BUGS {
        progress(&format!("seeded bug: {} ({CAMPAIGN_SEEDS} campaigns)", bug.name));
        let mut seconds = Vec::new();
        for seed in 1..=CAMPAIGN_SEEDS {
            let vm = config(bug.vcpus, bug.jitter, bug.args, bug.fail_alloc)?;
            let c = campaign(bug.guest, vm, seed, None, Some(GIVE_UP), 1)?;
            let stats = run(&c, Some(bug.kind))?;
            seconds.push(stats.first_found.iter().find(|(f, _)| f.starts_with(bug.kind)).map(|(_, s)| *s));
        }
        let samples: Vec<f64> = seconds.iter().map(|s| s.unwrap_or(GIVE_UP.as_secs_f64())).collect();
        bugs.push(BugFigures { name: bug.name, kind: bug.kind, p90_seconds: percentile(&samples, 90.0), seconds });
    }
    let mut twins = Vec::new();
    let mut one_worker = 0.0;
    for twin in &TWINS {
        progress(&format!("correct twin: {} ({TWIN_RUNS} runs)", twin.name));
        let vm = config(1, 3, twin.args, twin.fail_alloc)?;
        let stats = run(&campaign(twin.guest, vm, 1, Some(TWIN_RUNS), None, 1)?, None)?;
        if twin.one_handoff {
            one_worker = stats.runs_per_second;
        }
        twins.push((twin.name, stats.runs, stats.findings.len()));
    }
    let jobs = measure_jobs()?;
    progress(&format!("shell loop: {SHELL_RUNS} `kmemvisor run` processes"));
    let exe = std::env::current_exe().map_err(|e| BenchError::Fuzz(e.to_string()))?;
    let started = Instant::now();
    for seed in 1..=SHELL_RUNS {
        let out = Command::new(&exe)
            .args([
                "run",
                "dma-handoff",
                "--dma-latency",
                "0",
                "--dma-jitter",
                "3",
                "--seed",
                &seed.to_string(),
                "--",
                "aix-correct",
            ])
            .output()
            .map_err(|e| BenchError::Fuzz(e.to_string()))?;
        if !out.status.success() {
            return Err(BenchError::Fuzz(format!("the shell-loop run with seed {seed} failed: {}", out.status)));
        }
    }
    let shell_runs_per_second = f64::from(SHELL_RUNS) / started.elapsed().as_secs_f64();
    let reset = super::reset::measure()?;
    Ok(FuzzFigures {
        bugs,
        twins,
        handoffs_per_second: one_worker,
        reset_us: 1e6 / one_worker.max(1e-9),
        speedup: jobs.runs_per_second[1] / jobs.runs_per_second[0].max(1e-9),
        cpu_per_run_us: (jobs.cpu_per_run_us[0], jobs.cpu_per_run_us[1]),
        cores_used: (jobs.cores[0], jobs.cores[1]),
        shell_runs_per_second,
        reset,
    })
}

/// Prints part 9.
pub fn print(f: &FuzzFigures) {
    println!("\nSeeded-bug benchmark of `kmemvisor fuzz` (one worker; {CAMPAIGN_SEEDS} campaign seeds per bug, from scratch):");
    for b in &f.bugs {
        let each: Vec<String> = b.seconds.iter().map(|s| s.map_or("missed".to_owned(), |s| format!("{s:.3}s"))).collect();
        println!("  {:<42} {:<34} p90 {:>7.3} s   [{}]", b.name, b.kind, b.p90_seconds, each.join(", "));
    }
    for (name, runs, findings) in &f.twins {
        println!("  {name:<42} {runs} runs, {findings} finding(s)");
    }
    println!(
        "  campaign: {:.0} hand-offs/s on one worker ({:.0} µs per run, reset from a snapshot); -j 2 {:.2}×; shell loop of `kmemvisor run`: {:.0} runs/s",
        f.handoffs_per_second, f.reset_us, f.speedup, f.shell_runs_per_second
    );
    println!(
        "  -j 1 / -j 2: {:.0} / {:.0} µs of CPU per run ({:.2}×), {:.2} / {:.2} cores busy",
        f.cpu_per_run_us.0,
        f.cpu_per_run_us.1,
        super::ratio(f.cpu_per_run_us.1, f.cpu_per_run_us.0),
        f.cores_used.0,
        f.cores_used.1
    );
    super::reset::print(&f.reset);
}

/// The summary lines of part 9.
pub fn summary(f: &FuzzFigures) {
    let verdict = |met: bool| if met { "PASS" } else { "MISS" };
    let worst = f.bugs.iter().map(|b| b.p90_seconds).fold(0.0, f64::max);
    println!(
        "  {:<40} {:>7.3}s  target ≤ 10 s    {}",
        "slowest seeded bug found, p90",
        worst,
        verdict(worst <= FIND_TARGET_SECONDS)
    );
    let false_findings: usize = f.twins.iter().map(|t| t.2).sum();
    println!("  {:<40} {:>8}  target 0        {}", "findings in the correct twins", false_findings, verdict(false_findings == 0));
    println!(
        "  {:<40} {:>8.0}  target ≥ 1000   {}",
        "fuzz hand-offs per second, one core",
        f.handoffs_per_second,
        verdict(f.handoffs_per_second >= HANDOFF_TARGET)
    );
    println!("  {:<40} {:>7.2}×  target ≥ 1.80×  {}", "fuzz -j 2 speed-up", f.speedup, verdict(f.speedup >= SPEEDUP_TARGET));
    super::reset::summary(&f.reset);
}
