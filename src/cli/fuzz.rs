//! `kmemvisor fuzz`: a campaign of seeded runs (the library's `fuzz`), with a
//! live status line (`fuzz_status`), Ctrl-C, and findings that replay as
//! `kmemvisor run`s.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::CommandFactory;
use clap::parser::ValueSource;
use kmemvisor::fuzz::{self, Campaign, Stats};
use kmemvisor::report::{Invocation, status};

use crate::cli::args::{Cli, FuzzArgs};
use crate::cli::fuzz_status::{StatusLine, status_line};
use crate::cli::report_error;
use crate::cli::run::{Given, Prepared, prepare, setup_failed};

/// Set by SIGINT or SIGTERM: the campaign stops after the runs in progress.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// The `run` options a fuzz command line gave, as `run` arguments, without
/// the ones the campaign decides (`--seed`, `--input`) or that do not apply
/// (`--report`, `--trace`).
fn run_arguments(matches: &clap::ArgMatches) -> Vec<String> {
    let command = Cli::command();
    let Some(run) = command.find_subcommand("run") else { return Vec::new() };
    let mut out = Vec::new();
    for arg in run.get_arguments() {
        let id = arg.get_id().as_str();
        let (Some(long), Some(ValueSource::CommandLine)) = (arg.get_long(), matches.value_source(id)) else { continue };
        if ["seed", "input", "report", "trace"].contains(&long) {
            continue;
        }
        let values: Vec<String> =
            matches.get_raw(id).map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect()).unwrap_or_default();
        if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
            if values.first().is_some_and(|v| v == "true") {
                out.push(format!("--{long}"));
            }
            continue;
        }
        for value in values {
            out.push(format!("--{long}"));
            out.push(value);
        }
    }
    out
}

/// Runs the campaign `args` describe; `matches` are the `fuzz` subcommand's.
pub(crate) fn fuzz(args: &FuzzArgs, matches: &clap::ArgMatches) -> ExitCode {
    if args.run.report.is_some() || args.run.trace.is_some() {
        eprintln!("kmemvisor: fuzz writes one report per finding in --findings: --report and --trace do not apply");
        return ExitCode::from(status::USAGE);
    }
    let options = run_arguments(matches);
    let guest_args = args.run.guest_args.clone();
    let command_line = move |seed: u64, input: Option<&Path>| -> Vec<String> {
        let mut line = vec!["run".to_owned(), args.run.guest.clone()];
        line.extend(options.iter().cloned());
        line.extend(["--seed".to_owned(), seed.to_string()]);
        if let Some(input) = input {
            line.extend(["--input".to_owned(), input.display().to_string()]);
        }
        if !guest_args.is_empty() {
            line.push("--".to_owned());
            line.extend(guest_args.iter().cloned());
        }
        line
    };
    let given = Given { command_line: command_line(args.run.seed, None), options: BTreeMap::new() };
    let Prepared { elf, config, invocation, origins } = match prepare(&args.run, given) {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    let base = invocation;
    let invocation = |seed: u64, input: Option<&Path>| {
        let mut options = base.options.clone();
        options.insert("seed".to_owned(), vec![seed.to_string()]);
        if let Some(input) = input {
            options.insert("input".to_owned(), vec![input.display().to_string()]);
        }
        Invocation { command_line: command_line(seed, input), options, ..base.clone() }
    };
    let jobs = args.jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), usize::from);
    let campaign = Campaign {
        name: args.run.guest.clone(),
        elf,
        config,
        timeout: (!args.run.timeout.is_zero()).then_some(args.run.timeout),
        runs: args.runs,
        duration: args.duration,
        jobs,
        findings: args.findings.clone(),
        corpus: args.corpus.clone().unwrap_or_else(|| args.findings.join("corpus")),
        seed: args.campaign_seed,
    };
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if unsafe { libc::signal(signal, on_stop as *const () as libc::sighandler_t) } == libc::SIG_ERR {
            eprintln!(
                "kmemvisor: fuzz: cannot catch signal {signal}: it will end the campaign at once (findings are written as found)"
            );
        }
    }
    let status = StatusLine::new(std::io::stderr().is_terminal());
    let progress = |stats: &Stats| status.update(stats);
    let result = fuzz::run(&campaign, &invocation, &STOP, &progress);
    status.finish();
    match result {
        Ok(stats) => {
            eprintln!("kmemvisor: fuzz: {}", status_line(&stats));
            for (finding, runs) in &stats.findings {
                eprintln!("kmemvisor: fuzz: finding {finding} ({runs} run(s)) in {}", args.findings.display());
            }
            if stats.findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(fuzz::FuzzError::Run(e)) => setup_failed(e, &args.run, &origins),
        Err(e @ fuzz::FuzzError::Corpus(fuzz::corpus::CorpusError::NotAnInput { .. })) => report_error(&e, status::USAGE),
        Err(e) => report_error(&e, status::VMM_ERROR),
    }
}
