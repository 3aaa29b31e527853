//! `kmemvisor replay`: rerun a report's run and compare.

use std::process::ExitCode;

use std::collections::BTreeMap;

use crate::cli::args::{Cli, Command, ReplayArgs, RunArgs};
use crate::cli::inputs::resolve;
use crate::cli::run::{Given, execute};
use clap::Parser;
use kmemvisor::guests::Kind;
use kmemvisor::replay as recorded;
use kmemvisor::report::status;

/// The run a report records, checked for a replay: written by this version,
/// a `run` command line, its guest and modules unchanged. Otherwise why not.
pub(crate) fn load(report: &std::path::Path) -> Result<(recorded::Recorded, RunArgs), String> {
    let recorded = recorded::Recorded::read(report).map_err(|e| e.to_string())?;
    if recorded.version != env!("CARGO_PKG_VERSION") {
        return Err(format!(
            "{} was written by kmemvisor {}, this is {}: another version may schedule differently, so the run cannot be replayed",
            report.display(),
            recorded.version,
            env!("CARGO_PKG_VERSION")
        ));
    }
    let argv = std::iter::once("kmemvisor".to_owned()).chain(recorded.command_line.iter().cloned());
    let run_args = match Cli::try_parse_from(argv) {
        Ok(Cli { command: Command::Run(run_args) }) => run_args,
        Ok(_) | Err(_) => return Err(format!("{} records a command line that is not a `run`", report.display())),
    };
    let mut run_args = *run_args;
    // A rerun writes nothing the original wrote.
    run_args.report = None;
    run_args.trace = None;
    recorded.inputs_unchanged(&run_args.guest, &run_args.modules, |arg, kind| {
        resolve(arg, if kind == recorded::Input::Guest { Kind::Guest } else { Kind::Module })
            .map(|(_, elf)| elf)
            .map_err(|e| e.to_string())
    })?;
    Ok((recorded, run_args))
}

/// `kmemvisor replay REPORT`: reruns the run a report describes and says
/// whether the verdict and the event trace are the same.
pub(crate) fn replay(args: &ReplayArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("kmemvisor: replay: {message}");
        ExitCode::from(status::USAGE)
    };
    let (recorded, run_args) = match load(&args.report) {
        Ok(loaded) => loaded,
        Err(why) => return usage(why),
    };
    if !recorded.reproducible {
        eprintln!("kmemvisor: replay: the report says its run was timing-dependent; the replay may differ");
    }
    let given = Given { command_line: recorded.command_line.clone(), options: BTreeMap::new() };
    let outcome = match execute(&run_args, given) {
        Ok(outcome) => outcome,
        Err(code) => return code,
    };
    let verdict = recorded::compare(&recorded, &outcome.report);
    for line in &verdict.lines {
        eprintln!("kmemvisor: replay: {line}");
    }
    if verdict.same { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
