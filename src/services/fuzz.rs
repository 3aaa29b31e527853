//! `fuzz_snapshot`, `fuzz_input` and `fuzz_coverage`: the guest's side of
//! fuzzing (`crate::snapshot::port`).

use kmemvisor_abi::{Service, Status};

use crate::memory_model::guest_access;
use crate::report::ExitCause;
use crate::services::{Caller, Outcome, Reply};
use crate::snapshot::port::{CoverageMap, MAX_COVERAGE_MAP};
use crate::state::VmState;

/// Serves `fuzz_snapshot`, `fuzz_input` and `fuzz_coverage`.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    match service {
        Service::FuzzSnapshot => {
            if state.fuzz.take_armed() {
                match seed_decided(state, caller.vcpu) {
                    None => {
                        state.stop.request(ExitCause::SnapshotPoint { vcpu: caller.vcpu });
                    }
                    Some(why) => state.fuzz.refuse(why),
                }
            }
            Reply::ok(0)
        }
        Service::FuzzInput => {
            let input = state.fuzz.input();
            let count = input.len().min(usize::try_from(args[1]).unwrap_or(usize::MAX));
            match guest_access::write(state.ram.memory(), &state.space, args[0], &input[..count]) {
                Ok(()) => Reply::ok(count as u64),
                Err(_) => Reply::status(Status::EFAULT),
            }
        }
        Service::FuzzCoverage => {
            let [va, len, ..] = args;
            if len == 0 || len > MAX_COVERAGE_MAP {
                return Reply::status(Status::EINVAL);
            }
            // Read once now, so that a map the guest cannot read is refused
            // here rather than lost silently after each run.
            match guest_access::read(state.ram.memory(), &state.space, va, len as usize) {
                Ok(_) => {
                    state.fuzz.set_coverage_map(Some(CoverageMap { va, len }));
                    Reply::ok(0)
                }
                Err(_) => Reply::status(Status::EFAULT),
            }
        }
        _ => Reply::status(Status::ENOSYS),
    }
}

/// The guest's edge counters now, if it named readable ones: what a run's
/// features add to those of its trace (`crate::coverage::guest_features`).
pub fn coverage_counters(state: &VmState) -> Option<Vec<u8>> {
    let map = state.fuzz.coverage_map()?;
    // The map was checked when named; a remap since makes it unreadable, and then it counts nothing.
    guest_access::read(state.ram.memory(), &state.space, map.va, usize::try_from(map.len).ok()?).ok()
}

/// What, before a `fuzz_snapshot` of `vcpu`, the seed has decided already,
/// if anything: then an iteration from here under another seed would not be
/// the run with that seed.
fn seed_decided(state: &VmState, vcpu: usize) -> Option<String> {
    if vcpu != 0 {
        return Some(format!("it was called on vCPU {vcpu}; the snapshot point is vCPU 0's, while the others are idle"));
    }
    if state.vcpus.schedule_decided() {
        return Some("another vCPU has run before it: the seed's schedule decided already".into());
    }
    if state.dma.delays_drawn() {
        return Some("a DMA transfer's delay was drawn before it (--dma-jitter): the seed decided already".into());
    }
    if state.trap_used() {
        return Some("a page was trapped before it (hidden, watched for a DMA double fetch, or paged out); move it before the driver's first I/O".into());
    }
    let k = &mut *crate::sync::lock(&state.kernel);
    if k.injectors_drew_from_run_seed() {
        return Some(
            "a get or page-in drew its --fail-alloc/--fail-pagein rate from the run's seed before it: the seed decided already (give the rate its own seed=, or move fuzz_snapshot before the first get)"
                .into(),
        );
    }
    if k.pager.has_devices() {
        // A restore would share the device's file with the iterations that wrote it.
        return Some("a paging device is mounted before it (vm_mount); move it after the snapshot point".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{Request, dispatch};
    use crate::state::VmConfig;
    use kmemvisor_abi::layout;
    use std::sync::Arc;
    use vm_memory::{Bytes, GuestAddress};

    fn call(state: &VmState, vcpu: usize, service: Service, args: [u64; 6]) -> Outcome {
        dispatch(state, Caller { vcpu, rip: 0x1000, rbp: 0, rsp: 0 }, Request { number: service.number(), args })
    }

    #[test]
    fn outside_fuzzing_the_snapshot_point_does_nothing() {
        let s = crate::testing::state_with(VmConfig::default());
        assert!(matches!(call(&s, 0, Service::FuzzSnapshot, [0; 6]), Outcome::Reply(Reply { status: Status::OK, value: 0 })));
        assert!(!s.stop.is_stopping());
    }

    #[test]
    fn an_armed_snapshot_point_pauses_the_vm_once() {
        let s = crate::testing::state_with(VmConfig::default());
        s.fuzz.arm();
        assert!(matches!(call(&s, 0, Service::FuzzSnapshot, [0; 6]), Outcome::Reply(Reply { status: Status::OK, .. })));
        assert_eq!(s.stop.cause(), Some(ExitCause::SnapshotPoint { vcpu: 0 }));
        assert!(!s.fuzz.take_armed(), "one snapshot point per VM");
    }

    #[test]
    fn a_snapshot_point_after_the_seed_decided_is_refused_but_returns_ok() {
        let s = crate::testing::state_with(VmConfig { vcpus: 2, ..VmConfig::default() });
        s.fuzz.arm();
        assert!(matches!(call(&s, 1, Service::FuzzSnapshot, [0; 6]), Outcome::Reply(Reply { status: Status::OK, .. })));
        assert!(!s.stop.is_stopping());
        assert!(s.fuzz.refusal().expect("refused").contains("vCPU 1"));
    }

    #[test]
    fn the_input_is_copied_up_to_the_buffer_and_a_bad_buffer_is_efault() {
        let s = crate::testing::state_with(VmConfig::default());
        let buffer = layout::stack_bottom(0);
        let none = call(&s, 0, Service::FuzzInput, [buffer, 16, 0, 0, 0, 0]);
        assert!(matches!(none, Outcome::Reply(Reply { status: Status::OK, value: 0 })));
        s.fuzz.set_input(Arc::from(&b"hello fuzz"[..]));
        let some = call(&s, 0, Service::FuzzInput, [buffer, 5, 0, 0, 0, 0]);
        assert!(matches!(some, Outcome::Reply(Reply { status: Status::OK, value: 5 })));
        let mut bytes = [0u8; 6];
        s.ram.memory().read_slice(&mut bytes, GuestAddress(layout::stack_gpa(0))).expect("read");
        assert_eq!(&bytes, b"hello\0");
        let bad = call(&s, 0, Service::FuzzInput, [0x10, 5, 0, 0, 0, 0]);
        assert!(matches!(bad, Outcome::Reply(Reply { status: Status::EFAULT, .. })));
    }

    #[test]
    fn the_coverage_map_is_named_once_readable_and_read_after_the_run() {
        let s = crate::testing::state_with(VmConfig::default());
        let map = layout::stack_bottom(0);
        assert_eq!(coverage_counters(&s), None, "no map named");
        for (len, status) in [(0, Status::EINVAL), (MAX_COVERAGE_MAP + 1, Status::EINVAL)] {
            let r = call(&s, 0, Service::FuzzCoverage, [map, len, 0, 0, 0, 0]);
            assert!(matches!(r, Outcome::Reply(Reply { status: st, .. }) if st == status), "{len}");
        }
        let unreadable = call(&s, 0, Service::FuzzCoverage, [0x10, 4, 0, 0, 0, 0]);
        assert!(matches!(unreadable, Outcome::Reply(Reply { status: Status::EFAULT, .. })));
        assert_eq!(s.fuzz.coverage_map(), None, "a refused map is not named");
        s.ram.memory().write_slice(&[0, 3, 0, 1], GuestAddress(layout::stack_gpa(0))).expect("write");
        let named = call(&s, 0, Service::FuzzCoverage, [map, 4, 0, 0, 0, 0]);
        assert!(matches!(named, Outcome::Reply(Reply { status: Status::OK, value: 0 })));
        assert_eq!(s.fuzz.coverage_map(), Some(CoverageMap { va: map, len: 4 }));
        assert_eq!(coverage_counters(&s), Some(vec![0, 3, 0, 1]));
    }

    #[test]
    fn a_snapshot_point_after_a_failure_drawn_from_the_run_s_seed_is_refused() {
        use crate::memory_model::inject::FailSpec;
        let drawn = |seed| {
            let fail_alloc = FailSpec { rate: 0.5, seed, ..FailSpec::default() };
            let s = crate::testing::state_with(VmConfig { fail_alloc, ..VmConfig::default() });
            call(&s, 0, Service::VmPerhapsGetWiredMemory, [64, 0, 0, 0, 0, 0]);
            s.fuzz.arm();
            call(&s, 0, Service::FuzzSnapshot, [0; 6]);
            s.fuzz.refusal()
        };
        assert!(drawn(None).expect("refused").contains("--fail-alloc"));
        assert_eq!(drawn(Some(7)), None, "a rate with its own seed is not the run's to decide");
    }
}
