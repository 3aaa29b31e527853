//! The `kmemvisor` command line tool: the argument types, and one module per
//! subcommand; the library does the work.

pub(crate) mod args;
pub(crate) mod fuzz;
pub(crate) mod fuzz_status;
pub(crate) mod inputs;
pub(crate) mod minimize;
pub(crate) mod replay;
pub(crate) mod run;
pub(crate) mod sdk;
pub(crate) mod test;

use std::process::ExitCode;

use kmemvisor::report::status;

/// Prints an error with its chain of causes and returns the VMM-error status.
pub(crate) fn fail(error: &dyn std::error::Error) -> ExitCode {
    report_error(error, status::VMM_ERROR)
}

/// Prints `error` with its chain of causes and returns `status`.
pub(crate) fn report_error(error: &dyn std::error::Error, status: u8) -> ExitCode {
    let mut message = format!("kmemvisor: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    eprintln!("{message}");
    ExitCode::from(status)
}
