//! Guests written as a sequence of steps that stops at the first failure:
//! the failing step's name and status become one console line and exit 1.

use kmemvisor_abi::Status;

use crate::println;

/// What went wrong: the step, and the status or code that said so.
pub struct Failed(pub &'static str, pub u64);

/// `result`, with a failure named after `step`.
pub fn check<T>(step: &'static str, result: Result<T, Status>) -> Result<T, Failed> {
    result.map_err(|status| Failed(step, status.code()))
}

/// The exit code of guest `name` whose steps ended with `result`: 0, or 1
/// after printing the step that failed.
pub fn exit_code(name: &str, result: Result<(), Failed>) -> u32 {
    match result {
        Ok(()) => 0,
        Err(Failed(step, code)) => {
            println!("{name}: {step} failed: {code:#x}");
            1
        }
    }
}
