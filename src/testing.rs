//! Unit-test support: a VM state built without KVM from the bundled `hello`
//! guest (and the bundled `mod-sample` module), and calls through the real
//! dispatcher.

use kmemvisor_abi::{Service, Status};

use crate::loader::ModuleElf;
use crate::services::{Caller, Outcome, Reply, Request, dispatch};
use crate::state::{VmConfig, VmState};

/// The RIP the test calls report.
pub const RIP: u64 = 0x1234;

/// A VM state with `config`.
pub fn state_with(config: VmConfig) -> VmState {
    VmState::new(config, crate::guests::find("hello").expect("bundled hello").elf).expect("state")
}

/// A VM state with the default configuration.
pub fn state() -> VmState {
    state_with(VmConfig::default())
}

/// The bundled `mod-sample` module, to load with [`VmConfig::modules`].
pub fn sample_module() -> ModuleElf {
    ModuleElf { name: "mod-sample".into(), elf: crate::guests::find("mod-sample").expect("bundled mod-sample").elf.to_vec() }
}

/// A VM state with `mod-sample` loaded next to `hello`.
pub fn state_with_module() -> VmState {
    state_with(VmConfig { modules: vec![sample_module()], ..VmConfig::default() })
}

/// `service(args…)` from vCPU 0.
pub fn call(state: &VmState, service: Service, args: &[u64]) -> Outcome {
    let mut all = [0u64; 6];
    all[..args.len()].copy_from_slice(args);
    dispatch(state, Caller { vcpu: 0, rip: RIP, rbp: 0, rsp: 0 }, Request { number: service.number(), args: all })
}

/// The reply to `service(args…)`; panics on a stop.
pub fn reply(state: &VmState, service: Service, args: &[u64]) -> (Status, u64) {
    match call(state, service, args) {
        Outcome::Reply(Reply { status, value }) => (status, value),
        other => panic!("{} did not reply: {other:?}", service.name()),
    }
}

/// The status of `service(args…)`.
pub fn status(state: &VmState, service: Service, args: &[u64]) -> Status {
    reply(state, service, args).0
}

/// The value of `service(args…)`, which must succeed.
pub fn ok(state: &VmState, service: Service, args: &[u64]) -> u64 {
    let (status, value) = reply(state, service, args);
    assert_eq!(status, Status::OK, "{}({args:x?})", service.name());
    value
}

/// The messages of the violations recorded so far.
pub fn violations(state: &VmState) -> Vec<String> {
    state.checker.violations().into_iter().map(|v| v.message).collect()
}

/// The kinds of the violations recorded so far, as their identifiers.
pub fn kinds(state: &VmState) -> Vec<&'static str> {
    state.checker.violations().into_iter().map(|v| v.kind.as_str()).collect()
}
