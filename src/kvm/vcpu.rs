//! The vCPU threads: a small run loop around a pure exit handler.
//!
//! [`handle_exit`] decides what an exit means from the exit alone, the port
//! bus and the shared state; the loop around it only moves registers in and out
//! of `kvm_run`, so the decisions are unit-tested with made-up exits.

use std::sync::Arc;
use std::time::Instant;

use kmemvisor_abi::dma::{DMA_ENGINE_GPA, DMA_ENGINE_SIZE};
use kmemvisor_abi::layout;
use kvm_bindings::{KVM_EXIT_INTERNAL_ERROR, kvm_regs};
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};

use crate::checker::{Violation, ViolationKind};
use crate::devices::dma_engine::Access;
use crate::kvm::bus::{PortBus, PortDevice};
use crate::kvm::cpu;
use crate::report::{ExitCause, RegisterDump};
use crate::services::{self, Caller, Outcome, Reply, Request};
use crate::state::VmState;
use crate::symbols::stack;
use crate::sync::lock;
use crate::trace::Event;

/// An exit, copied out of `kvm_run` so that it can be handled (and tested)
/// without the vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `out` to `port` of `size` bytes.
    IoOut {
        /// The port.
        port: u16,
        /// The bytes written, little-endian.
        data: u32,
        /// 1, 2 or 4.
        size: usize,
    },
    /// `in` from `port` of `size` bytes.
    IoIn {
        /// The port.
        port: u16,
        /// 1, 2 or 4.
        size: usize,
    },
    /// A load from a guest-physical address with no RAM or device.
    MmioRead {
        /// The address.
        gpa: u64,
        /// Bytes read.
        size: usize,
    },
    /// A store to a guest-physical address with no RAM or device.
    MmioWrite {
        /// The address.
        gpa: u64,
        /// Bytes written.
        size: usize,
        /// The value stored (its first `size` bytes, little-endian).
        data: u64,
    },
    /// The vCPU shut down (triple fault).
    Shutdown,
    /// KVM could not go on; `what` says how.
    Failed(&'static str, u64),
}

/// What the run loop does next.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Re-enter the guest.
    Resume,
    /// Put the reply in rax/rdx and re-enter.
    Reply(Reply),
    /// Complete the `in` with all-ones and re-enter.
    AllOnes,
    /// Complete the MMIO load with this value and re-enter.
    Load(u64),
    /// This vCPU's work is done with a result.
    Idle(u64),
    /// Stop the VM.
    Stop(ExitCause),
    /// Stop the VM with a cause that needs the registers.
    Fault(Fault),
}

/// A stop that needs a register dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The vCPU shut down.
    TripleFault,
    /// KVM failed.
    Failed(&'static str, u64),
}

/// Decides what `exit` of `vcpu` means; `regs` are its registers at the exit.
/// Device time moves on by this exit once it is handled, so a transfer due
/// now runs after the call or access it ends (see `devices::dma_engine`).
pub fn handle_exit(state: &VmState, bus: &PortBus, vcpu: usize, exit: Exit, regs: &kvm_regs) -> Action {
    let action = decide(state, bus, vcpu, exit, regs);
    state.trace(exit_event(bus, vcpu, exit, regs, &action));
    state.dma.advance(state);
    action
}

/// What the trace records of a handled exit.
fn exit_event(bus: &PortBus, vcpu: usize, exit: Exit, regs: &kvm_regs, action: &Action) -> Event {
    let access = |what, at, value| Event::Access { vcpu, what, at, value };
    match exit {
        Exit::IoOut { port, .. } if bus.device(port) == Some(PortDevice::Hypercall) => {
            let name = kmemvisor_abi::Service::try_from(regs.rax).map_or("unknown", |s| s.name());
            let (status, value) = match action {
                Action::Reply(reply) => (Some(reply.status.code()), reply.value),
                Action::Idle(result) => (None, *result),
                _ => (None, 0),
            };
            Event::Hypercall { vcpu, number: regs.rax, name, status, value }
        }
        Exit::IoOut { port, data, .. } => access("port-out", u64::from(port), u64::from(data)),
        Exit::IoIn { port, .. } => access("port-in", u64::from(port), 0),
        Exit::MmioRead { gpa, .. } => access("mmio-read", gpa, if let Action::Load(v) = action { *v } else { 0 }),
        Exit::MmioWrite { gpa, data, .. } => access("mmio-write", gpa, data),
        Exit::Shutdown => access("shutdown", 0, 0),
        Exit::Failed(_, code) => access("failed", code, 0),
    }
}

fn decide(state: &VmState, bus: &PortBus, vcpu: usize, exit: Exit, regs: &kvm_regs) -> Action {
    match exit {
        Exit::IoOut { port, .. } if bus.device(port) == Some(PortDevice::Hypercall) => {
            let rip = state.call_site.of(state.ram.memory(), &state.space, regs.rip);
            match services::dispatch(state, Caller { vcpu, rip, rbp: regs.rbp, rsp: regs.rsp }, Request::from_regs(regs)) {
                Outcome::Reply(reply) => Action::Reply(reply),
                Outcome::Stop(cause) => Action::Stop(*cause),
                Outcome::Idle(result) => Action::Idle(result),
            }
        }
        Exit::IoOut { port, .. } if bus.device(port) == Some(PortDevice::Null) => Action::Resume,
        Exit::IoOut { port, data, size } => {
            let message = format!("`out` of {size} byte(s) to port {port:#x}, where no device is");
            let args = [u64::from(port), u64::from(data)];
            stray(
                state,
                vcpu,
                regs,
                state.call_site.past_port_io(),
                ViolationKind::PortIoNoDevice,
                "port-io",
                &args,
                message,
                Action::Resume,
            )
        }
        Exit::IoIn { port, size } => {
            let message = format!("`in` of {size} byte(s) from port {port:#x}, which no device answers");
            stray(
                state,
                vcpu,
                regs,
                state.call_site.past_port_io(),
                ViolationKind::PortIoNoDevice,
                "port-io",
                &[u64::from(port)],
                message,
                Action::AllOnes,
            )
        }
        Exit::MmioRead { gpa, size } if dma_window(gpa) => {
            Action::Load(state.dma.mmio_read(state, Access { vcpu, rip: regs.rip, completed: false }, gpa - DMA_ENGINE_GPA, size))
        }
        Exit::MmioWrite { gpa, size, data } if dma_window(gpa) => {
            // A violation under --strict requests the stop, which the run loop sees before re-entry.
            state.dma.mmio_write(state, Access { vcpu, rip: regs.rip, completed: true }, gpa - DMA_ENGINE_GPA, size, data);
            Action::Resume
        }
        Exit::MmioRead { gpa, size } => {
            let message = format!("load of {size} byte(s) from guest-physical {gpa:#x}, where no RAM or device is");
            stray(state, vcpu, regs, false, ViolationKind::MmioNoRamOrDevice, "mmio", &[gpa], message, Action::AllOnes)
        }
        Exit::MmioWrite { gpa, size, .. } => {
            let message = format!("store of {size} byte(s) to guest-physical {gpa:#x}, where no RAM or device is");
            // KVM completes a store before it exits: RIP is past it.
            stray(state, vcpu, regs, true, ViolationKind::MmioNoRamOrDevice, "mmio", &[gpa], message, Action::Resume)
        }
        Exit::Shutdown => Action::Fault(Fault::TripleFault),
        Exit::Failed(what, code) => Action::Fault(Fault::Failed(what, code)),
    }
}

/// Puts `reply` in the registers the guest reads it from: the status in rax,
/// the value in rdx. Every other register (the arguments included) stays as
/// the guest left it.
fn apply_reply(regs: &mut kvm_regs, reply: Reply) {
    regs.rax = reply.status.code();
    regs.rdx = reply.value;
}

/// Whether `gpa` lies in the DMA engine's register window.
fn dma_window(gpa: u64) -> bool {
    gpa.checked_sub(DMA_ENGINE_GPA).is_some_and(|offset| offset < DMA_ENGINE_SIZE)
}

/// Records a violation of the access the vCPU exited for; `past`: RIP is
/// already past the accessing instruction, so its line is looked up from
/// the byte before RIP.
#[allow(clippy::too_many_arguments)] // the violation's parts plus what the vCPU does next
fn stray(
    state: &VmState,
    vcpu: usize,
    regs: &kvm_regs,
    past: bool,
    kind: ViolationKind,
    what: &str,
    args: &[u64],
    message: String,
    then: Action,
) -> Action {
    // Under --strict this requested the stop, which the run loop sees before re-entry.
    let mut stack = stack::capture(state.ram.memory(), &state.space, regs.rip, regs.rsp, regs.rbp);
    if let Some(site) = stack.first_mut().filter(|_| past) {
        *site = site.wrapping_sub(1);
    }
    state.record_violation(Violation::new(kind, what, args, vcpu, regs.rip, message).with_stack(stack));
    then
}

/// What a stack pointer in a guard page suggests.
pub fn stack_hint(rsp: u64) -> Option<String> {
    (0..kmemvisor_abi::MAX_VCPUS as u64).find_map(|n| {
        let guard_start = layout::stack_bottom(n) - (layout::STACK_SLOT - layout::STACK_SIZE);
        // A push at RSP writes just below it: in the guard once RSP is within it or at its top.
        let overflow = rsp > guard_start && rsp <= layout::stack_bottom(n) + 64;
        overflow.then(|| format!("RSP {rsp:#x} is in the guard page below vCPU {n}'s stack: a stack overflow"))
    })
}

/// Copies the exit out of `kvm_run`.
fn exit_of(fd: &mut VcpuFd) -> Result<Exit, kvm_ioctls::Error> {
    let exit = match fd.run()? {
        VcpuExit::IoOut(port, data) => {
            let mut bytes = [0u8; 4];
            let size = data.len().min(4);
            bytes[..size].copy_from_slice(&data[..size]);
            Exit::IoOut { port, data: u32::from_le_bytes(bytes), size: data.len() }
        }
        VcpuExit::IoIn(port, data) => Exit::IoIn { port, size: data.len() },
        VcpuExit::MmioRead(gpa, data) => Exit::MmioRead { gpa, size: data.len() },
        VcpuExit::MmioWrite(gpa, data) => {
            let mut bytes = [0u8; 8];
            let size = data.len().min(8);
            bytes[..size].copy_from_slice(&data[..size]);
            Exit::MmioWrite { gpa, size: data.len(), data: u64::from_le_bytes(bytes) }
        }
        VcpuExit::Shutdown => Exit::Shutdown,
        VcpuExit::FailEntry(reason, _) => Exit::Failed("the hardware refused to enter the guest; reason", reason),
        VcpuExit::InternalError => {
            let run = fd.get_kvm_run();
            // SAFETY: with exit_reason KVM_EXIT_INTERNAL_ERROR, `internal` is the union member KVM filled.
            let suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
            debug_assert_eq!(run.exit_reason, KVM_EXIT_INTERNAL_ERROR);
            Exit::Failed("KVM internal error (1 = emulation failure); suberror", u64::from(suberror))
        }
        _ => {
            let reason = fd.get_kvm_run().exit_reason;
            Exit::Failed("unexpected KVM exit; exit_reason", u64::from(reason))
        }
    };
    Ok(exit)
}

/// How a stretch of guest execution ended.
enum Ended {
    Idle(u64),
    Stopped,
}

/// The signal that kicks a vCPU thread out of KVM_RUN.
pub fn kick_signal() -> i32 {
    vmm_sys_util::signal::SIGRTMIN()
}

/// The body of vCPU thread `id`; gives the vCPU back once the VM stops.
pub fn run(id: usize, mut fd: VcpuFd, state: Arc<VmState>, bus: Arc<PortBus>) -> VcpuFd {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    state.vcpu_tids[id].store(u32::try_from(tid).unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    if id == 0 {
        run_guest(id, &mut fd, &state, &bus);
    } else {
        while let Some(start) = state.vcpus.next_start(id, &state.stop) {
            let regs = cpu::start_regs(start.entry, layout::stack_top(id as u64), start.function, start.argument);
            fd.sync_regs_mut().regs = regs;
            fd.set_sync_dirty_reg(SyncReg::Register);
            match run_guest(id, &mut fd, &state, &bus) {
                Ended::Idle(result) => state.vcpus.finish(id, result),
                Ended::Stopped => break,
            }
        }
    }
    fd
}

fn run_guest(id: usize, fd: &mut VcpuFd, state: &VmState, bus: &PortBus) -> Ended {
    let _ = state.first_entry.set(Instant::now());
    let mut cr3 = state.space.root();
    loop {
        // Under the serial schedule, only the holder of the turn enters the guest.
        if !state.vcpus.take_turn(id, &state.stop) {
            return Ended::Stopped;
        }
        // `process_switch` asked for another address space.
        let wanted = state.cr3[id].load(std::sync::atomic::Ordering::SeqCst);
        if wanted != cr3 {
            let switched = fd.get_sregs().and_then(|mut sregs| {
                sregs.cr3 = wanted;
                fd.set_sregs(&sregs)
            });
            if let Err(e) = switched {
                state.stop.request(fault_cause(fd, id, Fault::Failed("cannot switch CR3; errno", e.errno() as u64)));
                return Ended::Stopped;
            }
            cr3 = wanted;
        }
        // A device interrupt for this vCPU enters at this exit boundary, which
        // the schedule chose: the same one on every run.
        let registered = state.interrupt_handler.load(std::sync::atomic::Ordering::SeqCst);
        if lock(&state.contexts[id]).take_injection(registered) {
            if let Err(e) = inject_interrupt(fd) {
                state.stop.request(fault_cause(fd, id, Fault::Failed("cannot inject an interrupt; errno", e.errno() as u64)));
                return Ended::Stopped;
            }
            state.trace(Event::Interrupt { vcpu: id });
        }
        let exit = match exit_of(fd) {
            Ok(exit) => exit,
            // A kick (signal) or a spurious wake-up: the spin fallback may
            // have taken the turn back; then look at the stop request again.
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                place_touch(fd, state, id);
                state.vcpus.kicked_out(id);
                if state.vcpus.take_preemption(id) {
                    state.trace(Event::Preemption { vcpu: id });
                    state.vcpus.exited(id);
                }
                continue;
            }
            Err(e) => Exit::Failed("KVM_RUN failed; errno", e.errno() as u64),
        };
        // A vCPU released from a hidden-page stall ran on without the turn:
        // its exit waits for it. A stop may have come while the vCPU ran (or
        // waited for a hidden page that the stop released): nothing after it
        // is served.
        if !state.vcpus.take_turn(id, &state.stop) {
            return Ended::Stopped;
        }
        let regs = fd.sync_regs_mut().regs;
        let action = handle_exit(state, bus, id, exit, &regs);
        state.vcpus.exited(id);
        match action {
            Action::Resume => {}
            Action::Reply(reply) => {
                apply_reply(&mut fd.sync_regs_mut().regs, reply);
                fd.set_sync_dirty_reg(SyncReg::Register);
            }
            Action::AllOnes => {
                if let Some(data) = in_data(fd) {
                    data.fill(0xff);
                }
            }
            Action::Load(value) => {
                if let Some(data) = in_data(fd) {
                    let bytes = value.to_le_bytes();
                    let n = data.len().min(8);
                    data[..n].copy_from_slice(&bytes[..n]);
                }
            }
            Action::Idle(result) => return Ended::Idle(result),
            Action::Stop(cause) => {
                state.stop.request(with_cr2(fd, cause));
                return Ended::Stopped;
            }
            Action::Fault(fault) => {
                state.stop.request(fault_cause(fd, id, fault));
                return Ended::Stopped;
            }
        }
    }
}

/// Gives the touch of a hidden page this vCPU made its RIP and stack. The
/// vCPU is out of KVM_RUN after its kick: the touching instruction has not
/// run yet, so RIP is still that instruction's. Only a touch waiting for it
/// pays the `KVM_GET_REGS`.
fn place_touch(fd: &VcpuFd, state: &VmState, id: usize) {
    if !state.checker.awaits_place(id) {
        return;
    }
    if let Ok(regs) = fd.get_regs() {
        state.checker.place(id, &stack::capture(state.ram.memory(), &state.space, regs.rip, regs.rsp, regs.rbp));
    }
}

/// Queues the device interrupt (`INTERRUPT_VECTOR`) for delivery at the next
/// entry, through the guest's IDT.
fn inject_interrupt(fd: &mut VcpuFd) -> Result<(), kvm_ioctls::Error> {
    let mut events = fd.get_vcpu_events()?;
    events.interrupt.injected = 1;
    events.interrupt.nr = kmemvisor_abi::image::INTERRUPT_VECTOR as u8;
    events.interrupt.soft = 0;
    fd.set_vcpu_events(&events)
}

/// The data buffer of a pending `in` or MMIO load.
fn in_data(fd: &mut VcpuFd) -> Option<&mut [u8]> {
    let run = fd.get_kvm_run();
    match run.exit_reason {
        kvm_bindings::KVM_EXIT_IO => {
            // SAFETY: for KVM_EXIT_IO, `io` is the union member KVM filled.
            let io = unsafe { run.__bindgen_anon_1.io };
            let len = usize::from(io.size) * io.count as usize;
            let offset = usize::try_from(io.data_offset).ok()?;
            let base = run as *mut kvm_bindings::kvm_run as *mut u8;
            // SAFETY: KVM places the I/O data at data_offset inside the kvm_run
            // mapping (one page or more), `len` bytes long; the borrow of `fd`
            // keeps the mapping alive and unaliased for the slice's lifetime.
            Some(unsafe { std::slice::from_raw_parts_mut(base.add(offset), len) })
        }
        kvm_bindings::KVM_EXIT_MMIO => {
            // SAFETY: for KVM_EXIT_MMIO, `mmio` is the union member KVM filled.
            let mmio = unsafe { &mut run.__bindgen_anon_1.mmio };
            let len = (mmio.len as usize).min(mmio.data.len());
            Some(&mut mmio.data[..len])
        }
        _ => None,
    }
}

fn with_cr2(fd: &mut VcpuFd, cause: ExitCause) -> ExitCause {
    match cause {
        ExitCause::Exception { vcpu, vector, name, error_code, rip, rsp, stack, .. } => {
            let cr2 = fd.get_sregs().map(|s| s.cr2).unwrap_or(0);
            ExitCause::Exception { vcpu, vector, name, error_code, cr2, rip, rsp, stack }
        }
        other => other,
    }
}

fn fault_cause(fd: &mut VcpuFd, vcpu: usize, fault: Fault) -> ExitCause {
    let registers = match (fd.get_regs(), fd.get_sregs()) {
        (Ok(regs), Ok(sregs)) => Some(RegisterDump::new(&regs, &sregs)),
        _ => None,
    };
    match fault {
        Fault::TripleFault => {
            let registers = registers.unwrap_or_default();
            ExitCause::TripleFault { vcpu, hint: stack_hint(registers.rsp()), registers }
        }
        Fault::Failed(what, code) => ExitCause::VmFailure { vcpu, what: format!("{what} {code:#x}"), registers },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::VmConfig;
    use kmemvisor_abi::{HYPERCALL_PORT, NULL_DEVICE_PORT, Service, Status};

    fn state(strict: bool) -> VmState {
        crate::testing::state_with(VmConfig { strict, ..VmConfig::default() })
    }

    #[test]
    fn hypercall_exits_are_dispatched_from_the_registers() {
        let s = state(false);
        let regs = kvm_regs { rax: Service::Null.number(), rip: 0x1234, ..Default::default() };
        let exit = Exit::IoOut { port: HYPERCALL_PORT, data: 1, size: 4 };
        assert_eq!(handle_exit(&s, &PortBus::default(), 0, exit, &regs), Action::Reply(Reply { status: Status::OK, value: 0 }));
        let regs = kvm_regs { rax: Service::Exit.number(), rdi: 9, ..Default::default() };
        assert_eq!(handle_exit(&s, &PortBus::default(), 0, exit, &regs), Action::Stop(ExitCause::GuestExit { code: 9 }));
    }

    /// Random registers of a hypercall exit: any service number (a real one
    /// two times in three), random or small arguments, and random values in
    /// every other register.
    fn random_regs(next: &mut impl FnMut() -> u64) -> kvm_regs {
        let mut word = || if next().is_multiple_of(2) { next() } else { next() % 0x10_0000 };
        let rax = match word() % 3 {
            0 => word(),
            _ => Service::ALL[(word() % Service::COUNT as u64) as usize].number(),
        };
        kvm_regs {
            rax,
            rbx: word(),
            rcx: word(),
            rdx: word(),
            rsi: word(),
            rdi: word(),
            rsp: word(),
            rbp: word(),
            r8: word(),
            r9: word(),
            r10: word(),
            r11: word(),
            r12: word(),
            r13: word(),
            r14: word(),
            r15: word(),
            rip: word(),
            rflags: word(),
        }
    }

    #[test]
    fn a_hypercall_reply_writes_rax_and_rdx_and_nothing_else() {
        let s = state(false);
        let bus = PortBus::default();
        let exit = Exit::IoOut { port: HYPERCALL_PORT, data: 0, size: 4 };
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut replies = 0;
        for _ in 0..2_000 {
            let regs = random_regs(&mut next);
            if Service::try_from(regs.rax).is_ok_and(|s| s == Service::VcpuWait || s == Service::VcpuStart) {
                continue; // a random start makes vCPU 1 busy, and a wait for it would block
            }
            let Action::Reply(reply) = handle_exit(&s, &bus, 0, exit, &regs) else { continue };
            replies += 1;
            let mut after = regs;
            apply_reply(&mut after, reply);
            assert_eq!(Status::try_from(after.rax), Ok(reply.status), "rax holds an ABI status");
            assert_eq!(after.rdx, reply.value);
            let untouched = kvm_regs { rax: regs.rax, rdx: regs.rdx, ..after };
            assert_eq!(untouched, regs, "service {:#x}: only rax and rdx change", regs.rax);
        }
        assert_eq!(replies, 1944, "what this seed gives");
    }

    #[test]
    fn the_null_device_costs_nothing_and_records_nothing() {
        let s = state(true);
        let exit = Exit::IoOut { port: NULL_DEVICE_PORT, data: 0, size: 1 };
        assert_eq!(handle_exit(&s, &PortBus::default(), 0, exit, &kvm_regs::default()), Action::Resume);
        assert!(s.checker.violations().is_empty());
    }

    #[test]
    fn stray_accesses_are_violations_and_strict_stops_at_the_first() {
        let lenient = state(false);
        let regs = kvm_regs { rip: 0xffff_ffff_8020_1000, ..Default::default() };
        let bus = PortBus::default();
        assert_eq!(handle_exit(&lenient, &bus, 0, Exit::IoOut { port: 0x80, data: 0x55, size: 1 }, &regs), Action::Resume);
        assert_eq!(handle_exit(&lenient, &bus, 0, Exit::IoIn { port: 0x60, size: 1 }, &regs), Action::AllOnes);
        assert_eq!(handle_exit(&lenient, &bus, 0, Exit::MmioRead { gpa: 0xd000_1000, size: 4 }, &regs), Action::AllOnes);
        let store = Exit::MmioWrite { gpa: 0xd000_1000, size: 4, data: 0 };
        assert_eq!(handle_exit(&lenient, &bus, 0, store, &regs), Action::Resume);
        let violations = lenient.checker.violations();
        assert_eq!(violations.len(), 4);
        assert_eq!(violations[0].service, "port-io");
        assert_eq!(violations[0].rip, "0xffffffff80201000");
        assert!(violations[0].message.contains("port 0x80"), "{}", violations[0].message);
        assert!(!lenient.stop.is_stopping());
        let strict = state(true);
        let exit = Exit::IoOut { port: 0x80, data: 0, size: 1 };
        assert_eq!(handle_exit(&strict, &bus, 0, exit, &regs), Action::Resume);
        assert_eq!(strict.stop.cause(), Some(ExitCause::StrictViolation), "the run loop stops before re-entry");
        assert_eq!(handle_exit(&strict, &bus, 0, Exit::IoIn { port: 0x60, size: 1 }, &regs), Action::AllOnes);
        assert_eq!(strict.checker.violations().len(), 1, "only the first violation is kept under --strict");
    }

    #[test]
    fn the_dma_window_reaches_the_engine() {
        use kmemvisor_abi::dma::{DMA_CHANNEL_STRIDE, DMA_ENGINE_ID, REG_ID, REG_LENGTH};
        let s = state(false);
        let bus = PortBus::default();
        let regs = kvm_regs::default();
        let id = Exit::MmioRead { gpa: DMA_ENGINE_GPA + REG_ID, size: 8 };
        assert_eq!(handle_exit(&s, &bus, 0, id, &regs), Action::Load(DMA_ENGINE_ID));
        let length = DMA_ENGINE_GPA + DMA_CHANNEL_STRIDE + REG_LENGTH;
        assert_eq!(handle_exit(&s, &bus, 0, Exit::MmioWrite { gpa: length, size: 8, data: 77 }, &regs), Action::Resume);
        assert_eq!(handle_exit(&s, &bus, 0, Exit::MmioRead { gpa: length, size: 8 }, &regs), Action::Load(77));
        assert!(s.checker.violations().is_empty());
        let odd = Exit::MmioRead { gpa: DMA_ENGINE_GPA + 3, size: 8 };
        assert_eq!(handle_exit(&s, &bus, 0, odd, &regs), Action::Load(u64::MAX));
        assert_eq!(s.checker.violations()[0].service, "dma");
    }

    #[test]
    fn shutdowns_and_failures_ask_for_a_register_dump() {
        let s = state(false);
        let bus = PortBus::default();
        assert_eq!(handle_exit(&s, &bus, 0, Exit::Shutdown, &kvm_regs::default()), Action::Fault(Fault::TripleFault));
        let failed = Exit::Failed("KVM internal error", 1);
        assert_eq!(handle_exit(&s, &bus, 0, failed, &kvm_regs::default()), Action::Fault(Fault::Failed("KVM internal error", 1)));
    }

    #[test]
    fn stack_overflows_are_recognised_from_rsp() {
        let guard = layout::stack_bottom(2) - 8;
        assert!(stack_hint(guard).expect("hint").contains("vCPU 2"));
        assert!(stack_hint(layout::stack_bottom(0) + 0x800).is_none());
        assert!(stack_hint(layout::stack_top(0)).is_none(), "the top of one stack is not the guard of the next");
        assert!(stack_hint(0x1000).is_none());
    }
}
