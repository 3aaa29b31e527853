//! The checker: misuse the seeds forbid but give no status for becomes a
//! recorded violation, and `--strict` turns the first one into a stop.

use std::sync::Mutex;

use crate::sync::lock;
use serde::Serialize;

/// One recorded misuse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The service (guest-library name) or access (`port-io`) concerned.
    pub service: String,
    /// Its arguments, in hex.
    pub args: Vec<String>,
    /// The vCPU that made it.
    pub vcpu: usize,
    /// Guest RIP at the exit that reported it.
    pub rip: String,
    /// What was wrong, naming what was expected and what was given.
    pub message: String,
}

impl Violation {
    /// A violation of `service` with `args` by `vcpu` at `rip`.
    pub fn new(service: &str, args: &[u64], vcpu: usize, rip: u64, message: String) -> Violation {
        Violation {
            service: service.to_string(),
            args: args.iter().map(|a| format!("{a:#x}")).collect(),
            vcpu,
            rip: format!("{rip:#x}"),
            message,
        }
    }
}

/// What the caller must do after recording a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on running the guest.
    Continue,
    /// Stop the guest (`--strict`).
    Stop,
}

/// Collects violations.
#[derive(Debug, Default)]
pub struct Checker {
    violations: Mutex<Vec<Violation>>,
    strict: bool,
}

impl Checker {
    /// A checker; `strict` makes every violation stop the guest.
    pub fn new(strict: bool) -> Checker {
        Checker { violations: Mutex::new(Vec::new()), strict }
    }

    /// Records `violation`.
    pub fn record(&self, violation: Violation) -> Verdict {
        lock(&self.violations).push(violation);
        if self.strict { Verdict::Stop } else { Verdict::Continue }
    }

    /// Every violation so far.
    pub fn violations(&self) -> Vec<Violation> {
        lock(&self.violations).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_checkers_stop_and_lenient_ones_continue() {
        let v = Violation::new("port-io", &[0x80, 1], 0, 0x1234, "no device".into());
        assert_eq!(Checker::new(false).record(v.clone()), Verdict::Continue);
        let strict = Checker::new(true);
        assert_eq!(strict.record(v.clone()), Verdict::Stop);
        assert_eq!(strict.violations(), vec![v]);
        assert_eq!(strict.violations()[0].args, vec!["0x80", "0x1"]);
        assert_eq!(strict.violations()[0].rip, "0x1234");
    }
}
