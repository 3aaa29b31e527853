//! `kmemvisor replay`: rerun a report's run and compare.

use std::process::ExitCode;

use std::collections::BTreeMap;

use crate::cli::args::{Cli, Command, ReplayArgs};
use crate::cli::inputs::resolve;
use crate::cli::run::{Given, execute};
use clap::Parser;
use kmemvisor::guests::Kind;
use kmemvisor::replay as recorded;
use kmemvisor::report::status;

/// `kmemvisor replay REPORT`: reruns the run a report describes and says
/// whether the verdict and the event trace are the same.
pub(crate) fn replay(args: &ReplayArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("kmemvisor: replay: {message}");
        ExitCode::from(status::USAGE)
    };
    let recorded = match recorded::Recorded::read(&args.report) {
        Ok(recorded) => recorded,
        Err(e) => return usage(e.to_string()),
    };
    if recorded.version != env!("CARGO_PKG_VERSION") {
        return usage(format!(
            "{} was written by kmemvisor {}, this is {}: another version may schedule differently, so the run cannot be replayed",
            args.report.display(),
            recorded.version,
            env!("CARGO_PKG_VERSION")
        ));
    }
    let argv = std::iter::once("kmemvisor".to_owned()).chain(recorded.command_line.iter().cloned());
    let run_args = match Cli::try_parse_from(argv) {
        Ok(Cli { command: Command::Run(run_args) }) => run_args,
        Ok(_) | Err(_) => return usage(format!("{} records a command line that is not a `run`", args.report.display())),
    };
    let mut run_args = *run_args;
    // The replay writes nothing the original wrote.
    run_args.report = None;
    run_args.trace = None;
    if let Err(why) = recorded.inputs_unchanged(&run_args.guest, &run_args.modules, |arg, kind| {
        resolve(arg, if kind == recorded::Input::Guest { Kind::Guest } else { Kind::Module })
            .map(|(_, elf)| elf)
            .map_err(|e| e.to_string())
    }) {
        return usage(why);
    }
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
