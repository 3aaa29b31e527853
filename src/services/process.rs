//! The process and interrupt-level services, and what each vCPU is running on
//! behalf of. A vCPU is in process context when it has switched to a
//! process, and at interrupt level between `interrupt_enter` and
//! `interrupt_leave` or while a device-interrupt handler the VMM injected
//! runs (until `interrupt_return`); the AIX and DG/UX context rules are
//! checked against this.

use std::sync::atomic::Ordering;

use kmemvisor_abi::{Service, Status};

use crate::checker::ViolationKind;
use crate::memory_model::aix_vmm::VmError;
use crate::memory_model::ledger::LedgerError;
use crate::services::{Caller, Outcome, Reply, refuse, zap_failed};
use crate::state::VmState;
use crate::sync::lock;

/// What a vCPU runs on behalf of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuContext {
    /// The current process, 0 for none.
    pub pid: u64,
    /// Interrupt-level nesting the guest declared (`interrupt_enter`).
    pub interrupt_depth: u32,
    /// A device interrupt waits to be injected.
    pub interrupt_pending: bool,
    /// An injected interrupt's handler runs (until `interrupt_return`).
    pub in_handler: bool,
}

impl VcpuContext {
    /// Whether the vCPU is at interrupt level.
    pub fn at_interrupt_level(&self) -> bool {
        self.interrupt_depth > 0 || self.in_handler
    }

    /// Whether to inject the pending interrupt now that the vCPU is about to
    /// enter the guest: one is pending, no handler runs (they do not nest)
    /// and the guest has a handler `registered`. If so, the handler counts
    /// as running from now. (RFLAGS.IF cannot say it: `sti` faults at CPL3
    /// on PVM.)
    pub fn take_injection(&mut self, registered: bool) -> bool {
        let inject = self.interrupt_pending && !self.in_handler && registered;
        if inject {
            self.interrupt_pending = false;
            self.in_handler = true;
        }
        inject
    }
}

/// Deepest interrupt-level nesting.
const MAX_INTERRUPT_DEPTH: u32 = 16;

/// Serves `process_*` and `interrupt_*`.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let memory = state.ram.memory();
    let context = &state.contexts[caller.vcpu];
    match service {
        Service::ProcessCreate => {
            let k = &mut *lock(&state.kernel);
            k.processes.create(memory, &mut k.frames, &state.space).into()
        }
        Service::ProcessDestroy => {
            let k = &mut *lock(&state.kernel);
            // A vCPU runs in it, or a driver pinned its memory for I/O.
            let pid = args[0];
            if pid == 0 {
                return Reply::status(Status::ESRCH);
            }
            if k.xmem.holds_process(pid) {
                let why = format!("process_destroy of process {pid}, whose memory is attached for cross-memory: xmdetach first");
                return refuse(state, caller, ViolationKind::XmemFreeWhileAttached, service, &args[..1], why, Status::EBUSY);
            }
            // Its frames' counts say whether they may go, through whatever
            // address (its own, or a kernel alias) they were wired or pinned.
            let refusal = k.processes.get(pid).and_then(|p| k.frames.release_refusal(p.frames()));
            // A frame a transfer will still touch: ending the hand-off now is caught at this call.
            if let Some(LedgerError::InTransfer(frame)) = refusal {
                let why = format!(
                    "process_destroy of process {pid}, whose frame {frame:#x} a DMA transfer that is queued or running \
                     touches: wait for the transfer to complete"
                );
                return refuse(state, caller, ViolationKind::DmaReleaseDuringTransfer, service, &args[..1], why, Status::EBUSY);
            }
            if state.contexts.iter().any(|c| lock(c).pid == pid) || refusal.is_some() {
                return Reply::status(Status::EBUSY);
            }
            // Its AIX regions go with it (as on AIX, an exiting process's segments are detached).
            let (vmm, mut books) = crate::services::aix::vmm::split(state, k);
            if let Err(e) = vmm.forget_process(&mut books, pid) {
                return match e {
                    VmError::Zap(zap) => zap_failed(caller, service, zap),
                    _ => Reply::status(Status::EBUSY),
                };
            }
            match k.processes.destroy(memory, &mut k.frames, args[0]) {
                Ok(status) => Reply::status(status),
                Err(e) => zap_failed(caller, service, e),
            }
        }
        Service::ProcessSwitch => {
            let k = lock(&state.kernel);
            let root = match args[0] {
                0 => state.space.root(),
                pid => match k.processes.get(pid) {
                    Some(process) => process.space().root(),
                    None => return Reply::status(Status::ESRCH),
                },
            };
            let mut context = lock(context);
            if context.at_interrupt_level() {
                return Reply::status(Status::EPERM);
            }
            context.pid = args[0];
            state.cr3[caller.vcpu].store(root, Ordering::SeqCst);
            Reply::ok(0)
        }
        Service::ProcessMap => {
            let pid = lock(context).pid;
            let k = &mut *lock(&state.kernel);
            Reply::status(k.processes.map(memory, &mut k.frames, pid, args[0], args[1], args[2]))
        }
        Service::InterruptEnter => {
            let mut context = lock(context);
            if context.interrupt_depth >= MAX_INTERRUPT_DEPTH {
                return Reply::status(Status::EINVAL);
            }
            context.interrupt_depth += 1;
            Reply::ok(u64::from(context.interrupt_depth))
        }
        Service::InterruptLeave => {
            let mut context = lock(context);
            if context.interrupt_depth == 0 {
                drop(context);
                return refuse(
                    state,
                    caller,
                    ViolationKind::ProcessInterruptLeaveWithoutEnter,
                    service,
                    &[],
                    "interrupt_leave without interrupt_enter".into(),
                    Status::EINVAL,
                );
            }
            context.interrupt_depth -= 1;
            Reply::ok(u64::from(context.interrupt_depth))
        }
        Service::InterruptRegister => match args[0] {
            0 | 1 => {
                state.interrupt_handler.store(args[0] == 1, Ordering::SeqCst);
                Reply::ok(0)
            }
            _ => Reply::status(Status::EINVAL),
        },
        Service::InterruptReturn => {
            let mut context = lock(context);
            if !context.in_handler {
                drop(context);
                let why = "interrupt_return outside an interrupt handler (the firmware's vector 32 makes it)".to_owned();
                return refuse(
                    state,
                    caller,
                    ViolationKind::ProcessInterruptReturnOutsideHandler,
                    service,
                    &[],
                    why,
                    Status::EINVAL,
                );
            }
            context.in_handler = false;
            Reply::ok(0)
        }
        _ => Reply::status(Status::ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmemvisor_abi::aix::PROT_WRITE;

    #[test]
    fn switching_destroying_and_interrupt_level_follow_the_rules() {
        use crate::services::{Request, dispatch};
        let state =
            VmState::new(crate::state::VmConfig::default(), crate::guests::find("hello").expect("hello").elf).expect("state");
        let call = |service: Service, args: [u64; 6]| {
            dispatch(&state, Caller { vcpu: 0, rip: 0, rbp: 0, rsp: 0 }, Request { number: service.number(), args })
        };
        let reply = |status, value| Outcome::Reply(Reply { status, value });
        assert_eq!(call(Service::ProcessMap, [0x1000_0000, 10, 0, 0, 0, 0]), reply(Status::ESRCH, 0), "no current process");
        let Outcome::Reply(Reply { status: Status::OK, value: pid }) = call(Service::ProcessCreate, [0; 6]) else {
            panic!("create")
        };
        assert_eq!(call(Service::ProcessSwitch, [pid + 1, 0, 0, 0, 0, 0]), reply(Status::ESRCH, 0));
        assert_eq!(call(Service::ProcessSwitch, [pid, 0, 0, 0, 0, 0]), reply(Status::OK, 0));
        let root = state.kernel.lock().expect("lock").processes.get(pid).expect("live").space().root();
        assert_eq!(state.cr3[0].load(Ordering::SeqCst), root);
        assert_eq!(call(Service::ProcessMap, [0x1000_0000, 10, PROT_WRITE, 0, 0, 0]), reply(Status::OK, 0));
        assert_eq!(call(Service::ProcessDestroy, [pid, 0, 0, 0, 0, 0]), reply(Status::EBUSY, 0), "it is current");
        assert_eq!(call(Service::InterruptEnter, [0; 6]), reply(Status::OK, 1));
        assert_eq!(call(Service::ProcessSwitch, [0; 6]), reply(Status::EPERM, 0), "no switching at interrupt level");
        assert_eq!(call(Service::InterruptLeave, [0; 6]), reply(Status::OK, 0));
        assert_eq!(call(Service::InterruptLeave, [0; 6]), reply(Status::EINVAL, 0));
        assert_eq!(crate::testing::kinds(&state), ["process.interrupt-leave-without-enter"]);
        assert_eq!(call(Service::ProcessSwitch, [0; 6]), reply(Status::OK, 0));
        assert_eq!(state.cr3[0].load(Ordering::SeqCst), state.space.root());
        assert_eq!(call(Service::ProcessDestroy, [pid, 0, 0, 0, 0, 0]), reply(Status::OK, 0));
    }

    #[test]
    fn an_injected_interrupt_is_interrupt_level_until_its_return_and_never_nests() {
        let mut context = VcpuContext::default();
        assert!(!context.take_injection(true), "nothing pending");
        context.interrupt_pending = true;
        assert!(!context.take_injection(false), "no handler registered");
        assert!(context.take_injection(true));
        assert!(context.at_interrupt_level() && context.in_handler && !context.interrupt_pending);
        context.interrupt_pending = true;
        assert!(!context.take_injection(true), "no nesting while a handler runs");
        context.in_handler = false;
        assert!(context.take_injection(true), "the pending one enters after the return");
    }

    #[test]
    fn interrupt_register_takes_0_or_1_and_interrupt_return_needs_a_running_handler() {
        use crate::testing::{state, status};
        let s = state();
        assert_eq!(status(&s, Service::InterruptRegister, &[2]), Status::EINVAL);
        assert_eq!(status(&s, Service::InterruptRegister, &[1]), Status::OK);
        assert!(s.interrupt_handler.load(Ordering::SeqCst));
        assert_eq!(status(&s, Service::InterruptReturn, &[]), Status::EINVAL);
        assert_eq!(crate::testing::kinds(&s), ["process.interrupt-return-outside-handler"]);
        s.contexts[0].lock().expect("context").in_handler = true;
        assert_eq!(status(&s, Service::InterruptReturn, &[]), Status::OK);
        assert!(!s.contexts[0].lock().expect("context").at_interrupt_level());
        assert_eq!(status(&s, Service::InterruptRegister, &[0]), Status::OK);
        assert!(!s.interrupt_handler.load(Ordering::SeqCst));
    }

    #[test]
    fn a_process_with_pinned_memory_cannot_be_destroyed() {
        use crate::testing::{ok, state, status};
        use kmemvisor_abi::aix::UIO_USERSPACE;
        let s = state();
        let pid = ok(&s, Service::ProcessCreate, &[]);
        ok(&s, Service::ProcessSwitch, &[pid]);
        ok(&s, Service::ProcessMap, &[0x1000_0000, 4096, PROT_WRITE]);
        ok(&s, Service::Pinu, &[0x1000_0000, 4096, UIO_USERSPACE]);
        ok(&s, Service::ProcessSwitch, &[0]);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::EBUSY);
        ok(&s, Service::ProcessSwitch, &[pid]);
        ok(&s, Service::Unpinu, &[0x1000_0000, 4096, UIO_USERSPACE]);
        ok(&s, Service::ProcessSwitch, &[0]);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::OK);
    }
}
