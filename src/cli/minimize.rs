//! `kmemvisor fuzz --minimize FINDING [--output FILE]`: shrinks a finding's
//! run — its guest input (`--input`), its guest arguments and its schedule
//! (DMA jitter, PCT depth and steps, vCPUs) — to the simplest that still
//! fails the same way (the same first violation kind and call site, or the
//! same exit cause), and writes that run's report, which `kmemvisor replay`
//! reruns, with the shrunk input beside it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use kmemvisor::fuzz::signature;
use kmemvisor::minimize::{KNOBS, cut_sizes, guest_args, lower_values, option_value, with_option, without, without_guest_arg};
use kmemvisor::replay as recorded;
use kmemvisor::report::{Report, status};

use crate::cli::args::{Cli, Command};
use crate::cli::replay::load;
use crate::cli::run::{Given, execute_to, options_of};

/// Runs at most this many trials: a finding's run takes milliseconds.
const MAX_TRIALS: usize = 400;

/// `kmemvisor fuzz --minimize`'s own command line.
#[derive(Debug, Parser)]
#[command(name = "kmemvisor fuzz --minimize")]
struct MinimizeArgs {
    /// The finding: a report `kmemvisor fuzz` wrote (or any `kmemvisor run` report).
    #[arg(long = "minimize", value_name = "FINDING")]
    finding: PathBuf,
    /// Where the shrunk finding goes (default: FINDING with `.min.json`).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `Some(status)` when `argv` is a `kmemvisor fuzz --minimize` command line,
/// which this module handles instead of a campaign.
pub(crate) fn intercept(argv: &[String]) -> Option<ExitCode> {
    if argv.get(1).is_none_or(|c| c != "fuzz") || !argv.iter().any(|a| a == "--minimize" || a.starts_with("--minimize=")) {
        return None;
    }
    let args = match MinimizeArgs::try_parse_from(argv.iter().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return Some(ExitCode::from(if e.use_stderr() { status::USAGE } else { 0 }));
        }
    };
    Some(minimize(&args.finding, args.output.as_deref()))
}

/// One run of `line` (the words after `kmemvisor`), quietly: its report, or
/// `None` when the line is not a run that can be made.
fn trial(line: &[String]) -> Option<Report> {
    let argv = std::iter::once("kmemvisor".to_owned()).chain(line.iter().cloned());
    let matches = Cli::command().try_get_matches_from(argv).ok()?;
    let Ok(Cli { command: Command::Run(args) }) = Cli::from_arg_matches(&matches) else { return None };
    let options = options_of(matches.subcommand_matches("run")?);
    let given = Given { command_line: line.to_vec(), options };
    execute_to(&args, given, Box::new(std::io::sink()), false).ok().map(|outcome| outcome.report)
}

/// The option values of `line` as parsed, defaults included.
fn current(line: &[String], id: &str) -> Option<u64> {
    let argv = std::iter::once("kmemvisor".to_owned()).chain(line.iter().cloned());
    let matches = Cli::command().try_get_matches_from(argv).ok()?;
    options_of(matches.subcommand_matches("run")?).get(id)?.first()?.parse().ok()
}

/// The search: the simplest command line so far that fails as `target` does.
struct Shrinker {
    target: String,
    line: Vec<String>,
    best: Report,
    trials: usize,
    changes: Vec<String>,
}

impl Shrinker {
    /// Runs `candidate`; keeps it (and says `what` changed) when it fails the same way.
    fn try_edit(&mut self, candidate: Vec<String>, what: String) -> bool {
        let kept = self.try_quietly(candidate);
        if kept {
            self.changes.push(what);
        }
        kept
    }

    /// Runs `candidate`; keeps it when it fails the same way.
    fn try_quietly(&mut self, candidate: Vec<String>) -> bool {
        self.trials += 1;
        match trial(&candidate) {
            Some(report) if signature(&report).as_deref() == Some(self.target.as_str()) => {
                self.line = candidate;
                self.best = report;
                true
            }
            _ => false,
        }
    }

    /// Cuts the run's `--input` bytes down, half of them first, then
    /// smaller pieces, while the run fails the same way; the candidates and
    /// then the shortest go to `file`, which the line names from then on.
    fn shrink_input(&mut self, file: &Path) -> Result<(), String> {
        let Some(path) = option_value(&self.line, "input").map(PathBuf::from) else { return Ok(()) };
        let original = std::fs::read(&path).map_err(|e| format!("cannot read the input {}: {e}", path.display()))?;
        let write = |bytes: &[u8]| std::fs::write(file, bytes).map_err(|e| format!("cannot write {}: {e}", file.display()));
        let candidate_line = with_option(&self.line, "input", file.display());
        let mut input = original.clone();
        let mut cut = true;
        while cut && self.trials < MAX_TRIALS {
            cut = false;
            for size in cut_sizes(input.len()) {
                let mut start = 0;
                while start < input.len() && self.trials < MAX_TRIALS {
                    let candidate = without(&input, start, size);
                    write(&candidate)?;
                    if self.try_quietly(candidate_line.clone()) {
                        input = candidate;
                        cut = true;
                    } else {
                        start += size;
                    }
                }
            }
        }
        if input.len() < original.len() {
            write(&input)?;
            self.changes.push(format!("input {} → {} byte(s), in {}", original.len(), input.len(), file.display()));
        } else {
            // Nothing shorter fails the same way: the line still names the original input.
            let _ = std::fs::remove_file(file);
        }
        Ok(())
    }
}

fn minimize(finding: &Path, output: Option<&Path>) -> ExitCode {
    let fail = |message: String, code: u8| {
        eprintln!("kmemvisor: fuzz --minimize: {message}");
        ExitCode::from(code)
    };
    let (recorded, _) = match load(finding) {
        Ok(loaded) => loaded,
        Err(why) => return fail(why, status::USAGE),
    };
    let line = recorded.command_line.clone();
    let Some(first) = trial(&line) else {
        return fail(format!("the run {} records cannot be made again", finding.display()), status::VMM_ERROR);
    };
    if !recorded::compare(&recorded, &first).same {
        return fail(
            format!("{} does not reproduce: run `kmemvisor replay {}` to see how", finding.display(), finding.display()),
            1,
        );
    }
    let Some(target) = signature(&first) else {
        return fail(format!("{} records a clean run: nothing to minimize", finding.display()), status::USAGE);
    };
    eprintln!("kmemvisor: fuzz --minimize: {target}: {}", line.join(" "));
    let out = output.map_or_else(|| finding.with_extension("min.json"), Path::to_path_buf);
    let mut shrinker = Shrinker { target, line, best: first, trials: 1, changes: Vec::new() };
    if let Err(why) = shrinker.shrink_input(&out.with_extension("input")) {
        return fail(why, status::CANNOT_WRITE);
    }
    // Passes until nothing shrinks: each edit is kept only if the run still fails the same way.
    let mut shrunk = true;
    while shrunk && shrinker.trials < MAX_TRIALS {
        shrunk = false;
        for n in (0..guest_args(&shrinker.line).len()).rev() {
            let what = format!("guest argument `{}` dropped", guest_args(&shrinker.line)[n]);
            shrunk |= shrinker.try_edit(without_guest_arg(&shrinker.line, n), what);
        }
        for knob in KNOBS {
            let Some(now) = current(&shrinker.line, knob.id) else { continue };
            for value in lower_values(now, knob.floor) {
                let candidate = with_option(&shrinker.line, knob.long, value);
                if shrinker.trials < MAX_TRIALS && shrinker.try_edit(candidate, format!("--{} {now} → {value}", knob.long)) {
                    shrunk = true;
                    break;
                }
            }
        }
    }
    let Shrinker { line, best, trials, changes, .. } = shrinker;
    if let Err(e) = std::fs::write(&out, best.to_json() + "\n") {
        return fail(format!("cannot write {}: {e}", out.display()), status::CANNOT_WRITE);
    }
    eprintln!(
        "kmemvisor: fuzz --minimize: {trials} run(s); {}",
        if changes.is_empty() { "nothing shrank".to_owned() } else { changes.join(", ") }
    );
    eprintln!("kmemvisor: fuzz --minimize: kmemvisor {}", line.join(" "));
    eprintln!("kmemvisor: fuzz --minimize: wrote {} (kmemvisor replay {} reruns it)", out.display(), out.display());
    ExitCode::SUCCESS
}
