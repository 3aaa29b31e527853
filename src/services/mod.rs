//! Hypercall decoding and dispatch: plain functions from (vCPU, request) to an
//! outcome, with no KVM in sight, so that every malformed request is unit-tested.

pub mod aix;
pub mod dgux;
pub mod fuzz;
pub mod process;
#[cfg(test)]
mod properties;

use std::sync::atomic::{AtomicU64, Ordering};

use kmemvisor_abi::{ABI_VERSION, ARG_COUNT, Service, ServiceGroup, Status};

use crate::checker::{Violation, ViolationKind};
use crate::kvm::vcpu_pool::StartRequest;
use crate::memory_model::ram::ZapError;
use crate::memory_model::{guest_access, origins};
use crate::report::{ExitCause, vector_name};
use crate::state::VmState;
use crate::symbols::stack;

/// Largest `console_write` in bytes; longer writes are refused with EINVAL.
pub const MAX_CONSOLE_WRITE: u64 = 64 * 1024;
/// Longest panic message or file name read from the guest.
const MAX_PANIC_TEXT: u64 = 4096;

/// One call as the guest made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The raw service number (rax).
    pub number: u64,
    /// rdi, rsi, rcx, r8, r9, r10.
    pub args: [u64; ARG_COUNT],
}

impl Request {
    /// Decodes the registers of a hypercall exit.
    pub fn from_regs(regs: &kvm_bindings::kvm_regs) -> Request {
        Request { number: regs.rax, args: [regs.rdi, regs.rsi, regs.rcx, regs.r8, regs.r9, regs.r10] }
    }
}

/// What goes back in rax and rdx.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// rax.
    pub status: Status,
    /// rdx.
    pub value: u64,
}

impl Reply {
    /// Status OK with `value`.
    pub(crate) fn ok(value: u64) -> Outcome {
        Outcome::Reply(Reply { status: Status::OK, value })
    }

    /// `status` and no value.
    pub(crate) fn status(status: Status) -> Outcome {
        Outcome::Reply(Reply { status, value: 0 })
    }
}

/// Who made a call: for violations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The vCPU.
    pub vcpu: usize,
    /// Guest RIP of the call: the `out` itself (`kvm::call_site`).
    pub rip: u64,
    /// The frame pointer at the call, where the walk of its stack starts.
    pub rbp: u64,
    /// The stack pointer at the call: a frameless function's return address is there.
    pub rsp: u64,
}

impl Caller {
    /// A violation of `kind` by this call of `service`, with the call's stack.
    pub fn violation(self, state: &VmState, kind: ViolationKind, service: &str, args: &[u64], message: String) -> Violation {
        Violation::new(kind, service, args, self.vcpu, self.rip, message).with_stack(self.stack(state))
    }

    /// The call's RIP, then the return addresses of the frames above it.
    pub fn stack(self, state: &VmState) -> Vec<u64> {
        stack::capture(state.ram.memory(), &state.space, self.rip, self.rsp, self.rbp)
    }

    /// The first [`origins::DEPTH`] addresses of [`Caller::stack`]: what an
    /// allocation keeps of its call, for a leak at exit.
    pub fn origin(self, state: &VmState) -> origins::CallStack {
        let mut stack = [0; origins::DEPTH];
        stack::capture_into(state.ram.memory(), &state.space, self.rip, self.rsp, self.rbp, &mut stack);
        stack
    }
}

/// The run stops: the VMM changed a guest page-table entry but could not drop
/// the old frame's stage-2 mappings, so a vCPU might still reach it.
pub fn zap_failed(caller: Caller, service: Service, error: ZapError) -> Outcome {
    let what = format!("{}: {error}", service.name());
    Outcome::Stop(Box::new(ExitCause::VmFailure { vcpu: caller.vcpu, what, registers: None }))
}

/// Records a violation of `service` and answers `status`. Under `--strict`
/// the recording requested the stop (`Checker::record`), and the vCPU does
/// not re-enter the guest to see the status.
pub fn refuse(
    state: &VmState,
    caller: Caller,
    kind: ViolationKind,
    service: Service,
    args: &[u64],
    message: String,
    status: Status,
) -> Outcome {
    state.record_violation(caller.violation(state, kind, service.name(), args, message));
    Reply::status(status)
}

impl From<Result<u64, Status>> for Outcome {
    fn from(result: Result<u64, Status>) -> Outcome {
        match result {
            Ok(value) => Reply::ok(value),
            Err(status) => Reply::status(status),
        }
    }
}

/// What the vCPU does after a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Return to the guest with this reply.
    Reply(Reply),
    /// Stop the VM (boxed: a cause is large, a reply is two words).
    Stop(Box<ExitCause>),
    /// This (non-boot) vCPU's work is done with this result; it becomes idle.
    Idle(u64),
}

/// Calls per service, counted without locks.
#[derive(Debug)]
pub struct CallCounts {
    per_service: [AtomicU64; Service::COUNT],
    unknown: AtomicU64,
}

impl Clone for CallCounts {
    fn clone(&self) -> CallCounts {
        CallCounts {
            per_service: std::array::from_fn(|i| AtomicU64::new(self.per_service[i].load(Ordering::Relaxed))),
            unknown: AtomicU64::new(self.unknown.load(Ordering::Relaxed)),
        }
    }
}

impl Default for CallCounts {
    fn default() -> CallCounts {
        CallCounts { per_service: std::array::from_fn(|_| AtomicU64::new(0)), unknown: AtomicU64::new(0) }
    }
}

impl CallCounts {
    /// Calls of each service that was called at least once.
    pub fn snapshot(&self) -> Vec<(Service, u64)> {
        Service::ALL.iter().zip(&self.per_service).map(|(&s, c)| (s, c.load(Ordering::Relaxed))).filter(|&(_, n)| n > 0).collect()
    }

    /// Calls with unknown service numbers.
    pub fn unknown(&self) -> u64 {
        self.unknown.load(Ordering::Relaxed)
    }
}

/// Serves `request` from `caller`.
pub fn dispatch(state: &VmState, caller: Caller, request: Request) -> Outcome {
    let Ok(service) = Service::try_from(request.number) else {
        state.calls.unknown.fetch_add(1, Ordering::Relaxed);
        return Reply::status(Status::ENOSYS);
    };
    state.calls.per_service[service.index()].fetch_add(1, Ordering::Relaxed);
    match service.group() {
        ServiceGroup::Core => {}
        ServiceGroup::DguxMemoryAllocation => return dgux::serve(state, caller, service, request.args),
        _ => return aix::serve(state, caller, service, request.args),
    }
    let vcpu = caller.vcpu;
    let [a0, a1, a2, a3, a4, a5] = request.args;
    match service {
        Service::AbiVersion => Reply::ok(ABI_VERSION),
        Service::Null => Reply::ok(0),
        Service::ConsoleWrite => console_write(state, vcpu, a0, a1).into(),
        Service::Exit => Outcome::Stop(Box::new(ExitCause::GuestExit { code: a0 })),
        Service::Panic => Outcome::Stop(Box::new(ExitCause::Panic {
            vcpu,
            message: guest_text(state, a0, a1),
            file: guest_text(state, a2, a3),
            line: a4,
            column: a5,
            stack: caller.stack(state),
        })),
        Service::Exception => Outcome::Stop(Box::new(ExitCause::Exception {
            vcpu,
            vector: a0,
            name: vector_name(a0),
            error_code: a1,
            cr2: 0,
            rip: a2,
            rsp: a5,
            stack: stack::capture_exception(state.ram.memory(), &state.space, a2, a5, caller.rbp),
        })),
        Service::VcpuStart => {
            let request = StartRequest { entry: a1, function: a2, argument: a3 };
            state.vcpus.start(a0, request).map(|()| 0).into()
        }
        Service::VcpuWait => state.vcpus.wait(vcpu, a0, &state.stop).into(),
        Service::VcpuYield => {
            state.vcpus.yield_turn(vcpu);
            Reply::ok(0)
        }
        Service::VcpuDone if vcpu == 0 => Reply::status(Status::EINVAL),
        Service::VcpuDone => Outcome::Idle(a0),
        Service::ProcessCreate
        | Service::ProcessDestroy
        | Service::ProcessSwitch
        | Service::ProcessMap
        | Service::InterruptEnter
        | Service::InterruptLeave
        | Service::InterruptRegister
        | Service::InterruptReturn => process::serve(state, caller, service, request.args),
        Service::FuzzSnapshot | Service::FuzzInput | Service::FuzzCoverage => fuzz::serve(state, caller, service, request.args),
        _ => Reply::status(Status::ENOSYS),
    }
}

fn console_write(state: &VmState, vcpu: usize, ptr: u64, len: u64) -> Result<u64, Status> {
    if len > MAX_CONSOLE_WRITE {
        return Err(Status::EINVAL);
    }
    let bytes = guest_access::read(state.ram.memory(), &state.space, ptr, len as usize).map_err(|_| Status::EFAULT)?;
    state.console.write(vcpu, &bytes);
    Ok(len)
}

/// A string from the guest for a report: unreadable parts are said to be so.
fn guest_text(state: &VmState, ptr: u64, len: u64) -> String {
    let len = len.min(MAX_PANIC_TEXT) as usize;
    match guest_access::read(state.ram.memory(), &state.space, ptr, len) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<unreadable: {e}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::VmConfig;
    use kmemvisor_abi::layout;
    use vm_memory::{Bytes, GuestAddress};

    fn state(vcpus: usize) -> VmState {
        crate::testing::state_with(VmConfig { vcpus, ..VmConfig::default() })
    }

    fn call(state: &VmState, number: u64, args: [u64; 6]) -> Outcome {
        dispatch(state, Caller { vcpu: 0, rip: 0x1000, rbp: 0, rsp: 0 }, Request { number, args })
    }

    fn flushed(state: &VmState) -> String {
        let mut out = Vec::new();
        state.console.flush_to(&mut out).expect("flush");
        String::from_utf8(out).expect("utf8")
    }

    /// A guest-virtual address holding `text` (the vCPU 0 stack).
    fn put(state: &VmState, text: &[u8]) -> u64 {
        let gpa = layout::stack_gpa(0);
        state.ram.memory().write_slice(text, GuestAddress(gpa)).expect("write");
        layout::stack_bottom(0)
    }

    #[test]
    fn registers_decode_in_abi_order() {
        let regs = kvm_bindings::kvm_regs { rax: 1, rdi: 2, rsi: 3, rcx: 4, r8: 5, r9: 6, r10: 7, rdx: 99, ..Default::default() };
        assert_eq!(Request::from_regs(&regs), Request { number: 1, args: [2, 3, 4, 5, 6, 7] });
    }

    #[test]
    fn unknown_services_get_enosys_and_are_counted() {
        let s = state(1);
        for number in [0x015, 0x103, 0x60f, 0x6ff, 0x7000, 1 << 40, u64::MAX] {
            assert_eq!(call(&s, number, [u64::MAX; 6]), Reply::status(Status::ENOSYS), "{number:#x}");
        }
        assert_eq!(s.calls.unknown(), 7);
        assert!(s.calls.snapshot().is_empty());
    }

    #[test]
    fn version_and_null_answer_and_are_counted() {
        let s = state(1);
        assert_eq!(call(&s, Service::AbiVersion.number(), [0; 6]), Reply::ok(ABI_VERSION));
        assert_eq!(call(&s, Service::Null.number(), [u64::MAX; 6]), Reply::ok(0));
        assert_eq!(call(&s, Service::Null.number(), [0; 6]), Reply::ok(0));
        assert_eq!(s.calls.snapshot(), vec![(Service::AbiVersion, 1), (Service::Null, 2)]);
    }

    #[test]
    fn console_write_reads_guest_memory_and_refuses_bad_pointers() {
        let s = state(1);
        let ptr = put(&s, b"hello\n");
        let write = Service::ConsoleWrite.number();
        assert_eq!(call(&s, write, [ptr, 6, 0, 0, 0, 0]), Reply::ok(6));
        assert_eq!(flushed(&s), "hello\n");
        let stack_end = layout::stack_top(0);
        let bad = [
            (0, 1, Status::EFAULT),
            (u64::MAX, 2, Status::EFAULT),
            (0x8000_0000_0000, 1, Status::EFAULT),
            (stack_end - 2, 4, Status::EFAULT),
            (layout::SYSTEM_TABLES_VA, 8, Status::EFAULT),
            (ptr, MAX_CONSOLE_WRITE + 1, Status::EINVAL),
            (ptr, u64::MAX, Status::EINVAL),
        ];
        for (p, len, status) in bad {
            assert_eq!(call(&s, write, [p, len, 0, 0, 0, 0]), Reply::status(status), "{p:#x} {len}");
        }
        assert_eq!(call(&s, write, [0, 0, 0, 0, 0, 0]), Reply::ok(0), "an empty write needs no memory");
        assert_eq!(flushed(&s), "");
    }

    #[test]
    fn exit_panic_and_exception_stop_the_vm() {
        let s = state(1);
        assert_eq!(
            call(&s, Service::Exit.number(), [3, 0, 0, 0, 0, 0]),
            Outcome::Stop(Box::new(ExitCause::GuestExit { code: 3 }))
        );
        let msg = put(&s, b"boom src/x.rs");
        let stop = |outcome| match outcome {
            Outcome::Stop(cause) => *cause,
            other => panic!("not a stop: {other:?}"),
        };
        let ExitCause::Panic { message, file, line, column, .. } =
            stop(call(&s, Service::Panic.number(), [msg, 4, msg + 5, 8, 12, 5]))
        else {
            panic!("not a panic stop")
        };
        assert_eq!((message.as_str(), file.as_str(), line, column), ("boom", "src/x.rs", 12, 5));
        let ExitCause::Panic { message, .. } = stop(call(&s, Service::Panic.number(), [0, u64::MAX, 0, 0, 0, 0])) else {
            panic!("not a panic stop")
        };
        assert!(message.starts_with("<unreadable"), "{message}");
        let ExitCause::Exception { vector, name, error_code, rip, rsp, .. } =
            stop(call(&s, Service::Exception.number(), [14, 6, 0x1000, 0x0b, 0x3002, 0x2000]))
        else {
            panic!("not an exception stop")
        };
        assert_eq!((vector, name, error_code, rip, rsp), (14, "#PF", 6, 0x1000, 0x2000));
    }

    #[test]
    fn vcpu_calls_check_their_targets() {
        let s = state(2);
        let start = Service::VcpuStart.number();
        let wait = Service::VcpuWait.number();
        for target in [0, 2, u64::MAX] {
            assert_eq!(call(&s, start, [target, 1, 2, 3, 0, 0]), Reply::status(Status::EINVAL));
            assert_eq!(call(&s, wait, [target, 0, 0, 0, 0, 0]), Reply::status(Status::EINVAL));
        }
        assert_eq!(call(&s, wait, [1, 0, 0, 0, 0, 0]), Reply::ok(0));
        assert_eq!(call(&s, start, [1, 1, 2, 3, 0, 0]), Reply::ok(0));
        assert_eq!(call(&s, start, [1, 1, 2, 3, 0, 0]), Reply::status(Status::EBUSY));
        assert_eq!(
            call(&s, Service::VcpuDone.number(), [9, 0, 0, 0, 0, 0]),
            Reply::status(Status::EINVAL),
            "vCPU 0 is never done"
        );
        assert_eq!(
            dispatch(
                &s,
                Caller { vcpu: 1, rip: 0, rbp: 0, rsp: 0 },
                Request { number: Service::VcpuDone.number(), args: [9, 0, 0, 0, 0, 0] }
            ),
            Outcome::Idle(9)
        );
    }

    #[test]
    fn a_refused_call_answers_its_status_and_strict_stops_at_the_first() {
        let leave = Service::InterruptLeave.number();
        let lenient = state(1);
        assert_eq!(call(&lenient, leave, [0; 6]), Reply::status(Status::EINVAL));
        assert_eq!(call(&lenient, leave, [0; 6]), Reply::status(Status::EINVAL));
        assert_eq!(crate::testing::violations(&lenient).len(), 2);
        assert!(!lenient.stop.is_stopping());

        let strict = crate::testing::state_with(VmConfig { strict: true, ..VmConfig::default() });
        assert_eq!(call(&strict, leave, [0; 6]), Reply::status(Status::EINVAL));
        assert_eq!(strict.stop.cause(), Some(ExitCause::StrictViolation), "the vCPU loop sees this before re-entry");
        assert_eq!(call(&strict, leave, [0; 6]), Reply::status(Status::EINVAL));
        assert_eq!(crate::testing::violations(&strict), vec!["interrupt_leave without interrupt_enter".to_string()]);
        assert_eq!(crate::testing::kinds(&strict), ["process.interrupt-leave-without-enter"]);
    }

    /// Everything of the VMM's memory model that a call can change: the
    /// kernel (frames, DG/UX memory, processes, AIX heaps and pins,
    /// attachments), the hidden pages with their hide counts, each vCPU's
    /// context and CR3, and what each vCPU is doing. Not in it: the call
    /// counts and the violations, which every call and every refusal adds to
    /// by design, and guest RAM, which a refused copy legitimately writes up to
    /// its first bad byte (the partial-copy rule of `docs/ABI.md`).
    fn fingerprint(s: &VmState) -> String {
        let cr3: Vec<u64> = s.cr3.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        let contexts: Vec<_> = s.contexts.iter().map(|c| *crate::sync::lock(c)).collect();
        format!("{:?}\n{:?}\n{contexts:?}\n{cr3:x?}\n{:?}", *crate::sync::lock(&s.kernel), s.hiding, s.vcpus)
    }

    /// The xorshift generator of the random tests, from a fixed seed.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// A random request: any number, a number in the service range, or a
    /// real service; arguments random or small (so that some are valid
    /// addresses and sizes). `None` for `vcpu_wait`, which may block on a
    /// vCPU that a random start made busy.
    fn random_request(next: &mut impl FnMut() -> u64) -> Option<(Caller, Request)> {
        let number = match next() % 3 {
            0 => next(),
            1 => next() % 0x800,
            _ => Service::ALL[(next() % Service::COUNT as u64) as usize].number(),
        };
        if Service::try_from(number).is_ok_and(|s| s == Service::VcpuWait) {
            return None;
        }
        let args = std::array::from_fn(|_| if next().is_multiple_of(2) { next() } else { next() % 0x10_0000 });
        Some((Caller { vcpu: (next() % 2) as usize, rip: next(), rbp: 0, rsp: 0 }, Request { number, args }))
    }

    #[test]
    fn random_requests_answer_a_status_and_refusals_change_nothing() {
        // The fingerprint formats every frame of guest RAM after each call:
        // the smallest RAM and a few thousand requests keep this test quick.
        const REQUESTS: usize = 4_000;
        let s = crate::testing::state_with(VmConfig { vcpus: 2, memory: 32 << 20, ..VmConfig::default() });
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let (mut replies, mut refusals, mut stops, mut changes) = (0, 0, 0, 0);
        let mut before = fingerprint(&s);
        for _ in 0..REQUESTS {
            let Some((caller, request)) = random_request(&mut next) else { continue };
            let violations = s.checker.violations().len();
            let outcome = dispatch(&s, caller, request);
            let after = fingerprint(&s);
            let violated = s.checker.violations().len() > violations;
            match outcome {
                Outcome::Reply(Reply { status, value }) => {
                    replies += 1;
                    assert!(Status::ALL.contains(&status), "{request:x?}: {status:?} is not an ABI status");
                    assert_eq!(Status::try_from(status.code()), Ok(status), "{request:x?}");
                    if status != Status::OK {
                        assert_eq!(value, 0, "{request:x?}: a refusal carries no value");
                    }
                    if status != Status::OK || violated {
                        refusals += 1;
                        assert_eq!(after, before, "{request:x?} was refused ({}) but changed the memory model", status.name());
                    } else if after != before {
                        changes += 1;
                    }
                }
                Outcome::Stop(_) => stops += 1,
                Outcome::Idle(_) => assert!(caller.vcpu != 0, "vCPU 0 never goes idle"),
            }
            before = after;
        }
        // The generator is seeded: these are what this seed gives, so a change
        // in how requests are answered shows here.
        assert_eq!((replies, refusals, stops, changes), (3932, 3820, 44, 51));
    }
}
