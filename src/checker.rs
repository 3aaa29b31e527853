//! The checker: misuse that `docs/ABI.md` forbids becomes a recorded
//! violation, and `--strict` turns the first one into a stop.
//!
//! [`Checker::record`] is the only place where that is decided. Every
//! violation goes through it (by way of `VmState::record_violation`): the
//! hypercall refusals, the stray port and MMIO exits, the DMA engine, the
//! touches of hidden pages and the leaks found at exit. None of those callers
//! looks at `--strict`: a refused call answers its status and a stray access
//! resumes as usual, and the stop request that `record` made keeps the vCPU
//! from entering the guest again (each vCPU thread checks it before every
//! `KVM_RUN`).

mod kinds;

use std::sync::Mutex;

use crate::kvm::stop::Stop;
use crate::report::ExitCause;
use crate::symbols::Place;
use crate::sync::lock;
use serde::Serialize;

pub use kinds::ViolationKind;

/// One recorded misuse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The service (guest-library name) or access (`port-io`) concerned.
    pub service: String,
    /// The rule it broke (`docs/VIOLATIONS.md`).
    pub kind: ViolationKind,
    /// Its arguments, in hex.
    pub args: Vec<String>,
    /// The vCPU that made it.
    pub vcpu: usize,
    /// Guest RIP of the instruction that made it: for a hypercall the `out`
    /// itself, for a touch of a hidden page the touching instruction.
    pub rip: String,
    /// What was wrong, naming what was expected and what was given.
    pub message: String,
    /// The site in the guest's source and the frames that led there: only
    /// `rip` is known until the report looks the stack up (`symbols`).
    #[serde(flatten)]
    pub place: Place,
    /// What the report looks up: the instruction, then the return addresses
    /// of the frames above it (`symbols::stack`); empty while the RIP is not
    /// known yet (a vCPU that touched a hidden page still waits in KVM_RUN).
    #[serde(skip)]
    pub stack: Vec<u64>,
}

impl Violation {
    /// A violation of the rule `kind` by `service` with `args`, made by
    /// `vcpu` at `rip`.
    pub fn new(kind: ViolationKind, service: &str, args: &[u64], vcpu: usize, rip: u64, message: String) -> Violation {
        Violation {
            service: service.to_string(),
            kind,
            args: args.iter().map(|a| format!("{a:#x}")).collect(),
            vcpu,
            rip: format!("{rip:#x}"),
            message,
            place: Place::unknown(rip),
            stack: vec![rip],
        }
    }

    /// This violation with `stack` (from `symbols::stack::capture`, starting
    /// at its RIP) as the stack to look up.
    pub fn with_stack(self, stack: Vec<u64>) -> Violation {
        Violation { stack, ..self }
    }

    /// This violation with its RIP not known yet: `Checker::place` gives it later.
    pub fn unplaced(self) -> Violation {
        Violation { stack: Vec::new(), ..self }
    }
}

/// Misuse still standing when the guest exits by itself: the memory model
/// lists these, and each becomes a violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leak {
    /// The rule it breaks.
    pub kind: ViolationKind,
    /// The service that made what is left behind (the get, `xmalloc`, the pin, `xmattach`, …).
    pub service: &'static str,
    /// The address of what is left behind.
    pub address: u64,
    /// The vCPU of that call.
    pub vcpu: usize,
    /// Guest RIP of that call.
    pub rip: u64,
    /// That call's stack when it was kept (its first address is `rip`):
    /// the frames let the report name the driver's line. Empty: `rip` only.
    pub stack: Vec<u64>,
    /// What is left behind.
    pub message: String,
}

impl From<Leak> for Violation {
    fn from(leak: Leak) -> Violation {
        let violation = Violation::new(leak.kind, leak.service, &[leak.address], leak.vcpu, leak.rip, leak.message);
        if leak.stack.is_empty() { violation } else { violation.with_stack(leak.stack) }
    }
}

/// Collects violations.
#[derive(Debug, Default)]
pub struct Checker {
    violations: Mutex<Vec<Violation>>,
    strict: bool,
}

impl Clone for Checker {
    fn clone(&self) -> Checker {
        Checker { violations: Mutex::new(lock(&self.violations).clone()), strict: self.strict }
    }
}

impl Checker {
    /// A checker; `strict` makes every violation stop the guest.
    pub fn new(strict: bool) -> Checker {
        Checker { violations: Mutex::new(Vec::new()), strict }
    }

    /// Records `violation`. Under `--strict` the first violation asks `stop`
    /// to stop the VM (cause `strict-violation`; a cause that came first
    /// keeps winning) and is the only one recorded: what other vCPUs, the DMA
    /// engine or the leak check find while the VM stops is dropped, so a
    /// strict report names exactly the violation that stopped the run.
    pub fn record(&self, violation: Violation, stop: &Stop) {
        let mut violations = lock(&self.violations);
        if self.strict && !violations.is_empty() {
            return;
        }
        violations.push(violation);
        drop(violations);
        if self.strict {
            stop.request(ExitCause::StrictViolation);
        }
    }

    /// Gives the violations of `vcpu` whose RIP was not known yet the stack
    /// `stack` (its first address is the RIP). Returns how many it placed.
    pub fn place(&self, vcpu: usize, stack: &[u64]) -> usize {
        let Some(&rip) = stack.first() else { return 0 };
        let mut placed = 0;
        for v in lock(&self.violations).iter_mut().filter(|v| v.vcpu == vcpu && v.stack.is_empty()) {
            v.rip = format!("{rip:#x}");
            v.place = Place::unknown(rip);
            v.stack = stack.to_vec();
            placed += 1;
        }
        placed
    }

    /// The stack of the last violation of `kind` by `vcpu`, when it has one.
    pub fn stack_of_last(&self, vcpu: usize, kind: ViolationKind) -> Option<Vec<u64>> {
        let violations = lock(&self.violations);
        let last = violations.iter().rev().find(|v| v.vcpu == vcpu && v.kind == kind)?;
        (!last.stack.is_empty()).then(|| last.stack.clone())
    }

    /// Whether a violation of `vcpu` waits for its RIP (`place`).
    pub fn awaits_place(&self, vcpu: usize) -> bool {
        lock(&self.violations).iter().any(|v| v.vcpu == vcpu && v.stack.is_empty())
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
        let v = Violation::new(ViolationKind::PortIoNoDevice, "port-io", &[0x80, 1], 0, 0x1234, "no device".into());
        let w = Violation::new(ViolationKind::DmaDoorbellWhileBusy, "dma", &[2], 1, 0, "channel busy".into());
        let stop = Stop::new().expect("stop");
        let lenient = Checker::new(false);
        lenient.record(v.clone(), &stop);
        lenient.record(w.clone(), &stop);
        assert_eq!(lenient.violations(), vec![v.clone(), w.clone()]);
        assert!(!stop.is_stopping(), "a lenient checker never stops the VM");

        let strict = Checker::new(true);
        strict.record(v.clone(), &stop);
        assert!(stop.is_stopping());
        assert_eq!(stop.cause(), Some(ExitCause::StrictViolation));
        strict.record(w, &stop);
        assert_eq!(strict.violations(), vec![v], "only the first violation is kept under --strict");
        assert_eq!(strict.violations()[0].args, vec!["0x80", "0x1"]);
        assert_eq!(strict.violations()[0].rip, "0x1234");
        assert_eq!(strict.violations()[0].kind, ViolationKind::PortIoNoDevice);
    }

    #[test]
    fn the_kind_is_serialized_as_its_identifier_beside_the_service_and_message() {
        let v = Violation::new(ViolationKind::DgUxReleaseSizeMismatch, "vm_release_wired_memory", &[8], 0, 0, "size".into());
        let json = serde_json::to_value(&v).expect("json");
        assert_eq!(json["kind"], "dgux.release-size-mismatch");
        assert_eq!((json["service"].as_str(), json["message"].as_str()), (Some("vm_release_wired_memory"), Some("size")));
    }

    #[test]
    fn violations_without_a_rip_get_it_from_their_vcpu_later() {
        let stop = Stop::new().expect("stop");
        let checker = Checker::new(false);
        let touch = |vcpu| Violation::new(ViolationKind::HiddenPageTouched, "hidden-page", &[0x1000], vcpu, 0, "t".into());
        checker.record(touch(1).unplaced(), &stop);
        checker.record(touch(2).unplaced(), &stop);
        checker.record(touch(1), &stop);
        assert!(checker.awaits_place(1) && checker.awaits_place(2) && !checker.awaits_place(0));
        assert_eq!(checker.place(1, &[0xffff_ffff_8020_0010, 0xffff_ffff_8020_0100]), 1);
        assert_eq!(checker.place(1, &[0x1]), 0, "placed once");
        assert_eq!(checker.place(2, &[]), 0, "an empty stack places nothing");
        let v = checker.violations();
        assert_eq!(
            (v[0].rip.as_str(), v[0].stack.as_slice()),
            ("0xffffffff80200010", &[0xffff_ffff_8020_0010, 0xffff_ffff_8020_0100][..])
        );
        assert_eq!((v[1].rip.as_str(), v[1].stack.len()), ("0x0", 0));
        assert_eq!(v[2].stack, vec![0], "a violation recorded with its RIP keeps it");
        assert_eq!(checker.stack_of_last(1, ViolationKind::HiddenPageTouched), Some(vec![0]), "the last one");
        assert_eq!(checker.stack_of_last(2, ViolationKind::HiddenPageTouched), None, "not placed yet");
        assert_eq!(checker.stack_of_last(1, ViolationKind::HiddenPageStallTimeout), None);
    }

    #[test]
    fn a_strict_violation_after_another_stop_keeps_the_first_cause() {
        let stop = Stop::new().expect("stop");
        assert!(stop.request(ExitCause::GuestExit { code: 0 }));
        let strict = Checker::new(true);
        let v = Violation::new(ViolationKind::LeakAttachment, "xmattach", &[], 0, 0, "left attached at exit".into());
        strict.record(v.clone(), &stop);
        assert_eq!(stop.cause(), Some(ExitCause::GuestExit { code: 0 }));
        assert_eq!(strict.violations(), vec![v]);
    }
}
