//! The `kmemvisor` command: run a guest, test a suite, replay a report, list
//! the bundled guests, benchmark.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use cli::args::{Cli, Command};
use cli::fail;
use cli::replay::replay;
use cli::run::{Given, options_of, run};
use cli::test::test;
use kmemvisor::bench;
use kmemvisor::guests::BUNDLED;
use kmemvisor::report::status;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    if let Some(code) = cli::minimize::intercept(&argv) {
        return code;
    }
    let parsed = Cli::command().try_get_matches().and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            // A word after GUEST that is no option is most likely meant for the guest.
            let run_like = std::env::args().nth(1).is_some_and(|c| c == "run" || c == "fuzz");
            if run_like && e.kind() == clap::error::ErrorKind::UnknownArgument {
                eprintln!("hint: arguments for the guest go after `--`: kmemvisor run GUEST [OPTIONS] -- ARGS");
            }
            return ExitCode::from(if e.use_stderr() { status::USAGE } else { 0 });
        }
    };
    let given = Given {
        command_line: std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect(),
        options: matches.subcommand_matches("run").map(options_of).unwrap_or_default(),
    };
    match cli.command {
        Command::Run(args) => run(*args, given),
        Command::Replay(args) => replay(&args),
        Command::Test(args) => test(&args),
        Command::Fuzz(args) => match matches.subcommand_matches("fuzz") {
            Some(fuzz_matches) => cli::fuzz::fuzz(&args, fuzz_matches),
            None => ExitCode::from(kmemvisor::report::status::USAGE),
        },
        Command::Sdk(args) => cli::sdk::sdk(&args),
        Command::Cc(args) => cli::sdk::cc(&args),
        Command::New(args) => cli::sdk::new(&args),
        Command::List => {
            let width = BUNDLED.iter().map(|g| g.name.len()).max().unwrap_or(0);
            for guest in BUNDLED {
                println!("{:<width$}  {:<6}  {}", guest.name, guest.kind.name(), guest.summary);
            }
            ExitCode::SUCCESS
        }
        Command::Bench(args) => match bench::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
    }
}
