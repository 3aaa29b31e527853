//! The harness of conformance guests: one `PASS:`, `FAIL:` or `SKIP:` line per
//! case and a closing `SUMMARY: N passed, M failed, K skipped` line, which the
//! integration tests read.

use core::fmt::{self, Display, Write as _};

use kmemvisor_abi::Status;

use crate::console::TruncatingBuffer;
use crate::println;

/// Why a case failed.
pub struct Why(TruncatingBuffer<300>);

impl Why {
    /// A reason from a format (see [`ensure!`](crate::ensure)).
    pub fn new(args: fmt::Arguments<'_>) -> Why {
        let mut buffer = TruncatingBuffer::new();
        let _ = buffer.write_fmt(args);
        Why(buffer)
    }

    /// The reason as text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.0.as_bytes()).unwrap_or("?")
    }
}

/// The outcome of one case.
pub type Outcome = Result<(), Why>;

/// Fails the case (returns `Err(Why)`) with a message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($message:tt)*) => {
        if !$cond {
            return Err($crate::conformance::Why::new(format_args!($($message)*)));
        }
    };
}

/// Fails the case unless `got` is `want`.
// The guest has no allocator: a reason lives inline, and cases are few.
#[allow(clippy::result_large_err)]
pub fn expect(what: &str, got: Status, want: Status) -> Outcome {
    crate::ensure!(got == want, "{what} answered {}, expected {}", got.name(), want.name());
    Ok(())
}

/// The counts the summary line prints.
#[derive(Default)]
pub struct Tally {
    passed: u32,
    failed: u32,
    skipped: u32,
}

impl Tally {
    /// Prints the case's line and counts it.
    pub fn case(&mut self, name: impl Display, outcome: Outcome) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("PASS: {name}");
            }
            Err(why) => {
                self.failed += 1;
                println!("FAIL: {name}: {}", why.as_str());
            }
        }
    }

    /// Prints a skipped case with the reason.
    pub fn skip(&mut self, name: &str, reason: &str) {
        self.skipped += 1;
        println!("SKIP: {name}: {reason}");
    }

    /// Prints the summary line; the guest's exit code: 0 when nothing failed.
    pub fn finish(&self) -> u32 {
        println!("SUMMARY: {} passed, {} failed, {} skipped", self.passed, self.failed, self.skipped);
        u32::from(self.failed > 0)
    }
}
