//! A vCPU's state at the snapshot point, and putting it back.
//!
//! What a CPL3 guest can change: the general registers, the special
//! registers (segments' hidden parts, FS/GS bases through `wrfsbase`, CR2 by
//! faulting), the FPU and SSE state (x87, XMM, MXCSR), and the pending
//! events (the device interrupts the VMM injects, a pending exception). It
//! cannot write MSRs, XCR0 or the debug registers (those are CPL0
//! instructions; XCR0 stays x87|SSE, so the FPU state is the whole extended
//! state); they are captured too, so that the snapshot test checks that an
//! iteration leaves them alone, but not put back every time.
//!
//! The registers, special registers and events go back through the kvm_run
//! sync area: no ioctl, KVM loads them at the next KVM_RUN. The FPU takes
//! one ioctl.

use kvm_bindings::{Msrs, kvm_debugregs, kvm_fpu, kvm_msr_entry, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs};
use kvm_ioctls::{SyncReg, VcpuFd};

use crate::kvm::vm::KvmError;

/// MSRs captured for the check that iterations leave them alone (the
/// syscall and sysenter MSRs, the kernel GS base, PAT, TSC_AUX).
const MSRS: [u32; 10] =
    [0x174, 0x175, 0x176, 0xc000_0081, 0xc000_0082, 0xc000_0083, 0xc000_0084, 0xc000_0102, 0x277, 0xc000_0103];

/// One vCPU's state.
#[derive(Clone, Debug)]
pub struct VcpuState {
    regs: kvm_regs,
    sregs: kvm_sregs,
    fpu: kvm_fpu,
    events: kvm_vcpu_events,
    /// What a CPL3 guest cannot change, kept to check it did not.
    fixed: Fixed,
}

/// What a CPL3 guest cannot change.
#[derive(Clone, Debug, PartialEq)]
pub struct Fixed {
    msrs: Vec<(u32, u64)>,
    xcrs: Vec<(u32, u64)>,
    debugregs: ([u64; 4], u64, u64),
}

fn ioctl(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> KvmError {
    move |e| KvmError::Ioctl(what, e)
}

/// Completes what the vCPU's last exit left pending inside KVM (a port or
/// MMIO access whose instruction KVM finishes at the next entry: on VMX and
/// SVM RIP is still at the `out`) and applies the registers the VMM wrote in
/// the sync area, without running guest code: KVM_RUN with immediate_exit.
pub fn settle(fd: &mut VcpuFd) -> Result<(), KvmError> {
    fd.set_kvm_immediate_exit(1);
    let run = fd.run().map(drop);
    fd.set_kvm_immediate_exit(0);
    match run {
        Err(e) if e.errno() == libc::EINTR => Ok(()),
        Err(e) => Err(KvmError::Ioctl("complete the last exit (KVM_RUN with immediate_exit)", e)),
        // Some KVMs enter anyway when nothing was pending; the exit is spurious.
        Ok(()) => Ok(()),
    }
}

fn fixed(fd: &VcpuFd) -> Result<Fixed, KvmError> {
    let entries: Vec<kvm_msr_entry> = MSRS.iter().map(|&index| kvm_msr_entry { index, ..Default::default() }).collect();
    let mut msrs = Msrs::from_entries(&entries).map_err(|_| KvmError::Ioctl("list MSRs", kvm_ioctls::Error::new(libc::E2BIG)))?;
    let read = fd.get_msrs(&mut msrs).map_err(ioctl("read MSRs"))?;
    let msrs = msrs.as_slice().iter().take(read).map(|e| (e.index, e.data)).collect();
    // Hosts without XSAVE have no XCRs: nothing the guest could change either.
    let xcrs = fd
        .get_xcrs()
        .map_or_else(|_| Vec::new(), |x: kvm_xcrs| x.xcrs.iter().take(x.nr_xcrs as usize).map(|x| (x.xcr, x.value)).collect());
    let d: kvm_debugregs = fd.get_debug_regs().map_err(ioctl("read debug registers"))?;
    Ok(Fixed { msrs, xcrs, debugregs: (d.db, d.dr6, d.dr7) })
}

impl VcpuState {
    /// Reads the state of a vCPU that no thread runs, after [`settle`].
    pub fn capture(fd: &VcpuFd) -> Result<VcpuState, KvmError> {
        Ok(VcpuState {
            regs: fd.get_regs().map_err(ioctl("read registers"))?,
            sregs: fd.get_sregs().map_err(ioctl("read special registers"))?,
            fpu: fd.get_fpu().map_err(ioctl("read the FPU"))?,
            events: fd.get_vcpu_events().map_err(ioctl("read vCPU events"))?,
            fixed: fixed(fd)?,
        })
    }

    /// Puts the state back into a vCPU that no thread runs, after [`settle`]:
    /// the FPU now, the rest at its next KVM_RUN.
    pub fn restore(&self, fd: &mut VcpuFd) -> Result<(), KvmError> {
        fd.set_fpu(&self.fpu).map_err(ioctl("write the FPU"))?;
        let sync = fd.sync_regs_mut();
        sync.regs = self.regs;
        sync.sregs = self.sregs;
        sync.events = self.events;
        for reg in [SyncReg::Register, SyncReg::SystemRegister, SyncReg::VcpuEvents] {
            fd.set_sync_dirty_reg(reg);
        }
        Ok(())
    }

    /// Whether `fd` holds this state now (read through ioctls, after [`settle`]).
    pub fn matches(&self, fd: &VcpuFd) -> Result<bool, KvmError> {
        let now = VcpuState::capture(fd)?;
        let fpu = |f: &kvm_fpu| (f.fpr, f.fcw, f.fsw, f.ftwx, f.last_opcode, f.last_ip, f.last_dp, f.xmm, f.mxcsr);
        let events = |e: &kvm_vcpu_events| {
            (e.exception.injected, e.exception.nr, e.interrupt.injected, e.interrupt.nr, e.nmi.injected, e.nmi.pending)
        };
        Ok(now.regs == self.regs
            && format!("{:?}", now.sregs) == format!("{:?}", self.sregs)
            && fpu(&now.fpu) == fpu(&self.fpu)
            && events(&now.events) == events(&self.events)
            && now.fixed == self.fixed)
    }
}
