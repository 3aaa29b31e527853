//! AIX virtual memory manager services: `vms_create`, `vms_delete`,
//! `vm_handle`, `vm_att`, `vm_det`, `vm_release`, `vm_releasep`,
//! `vm_qmodify`, `vm_protectp`, `vm_makep`, `vm_cflush`, `io_att`, `io_det`.
//!
//! The objects and regions are the memory model's ([`aix_vmm`]); this
//! module decodes the arguments (AIX `int`s: 0 to `i32::MAX`), enforces the
//! environments (only `vm_att`, `vm_det`, `io_att`, `io_det` and `vm_cflush`
//! at interrupt level) and decides which refusal is a plain status and
//! which a violation: AIX documents `EINVAL` for a vmid it never made, but
//! gives `vm_att`, `vm_det`, `io_det` and `vm_cflush` no error return, so
//! their misuse is a violation; the attaches halt the VM when every region
//! is in use, as AIX's panic.

use kmemvisor_abi::aix_vmm::{
    FILEKEY, IO_HANDLE_PAGES_MASK, RDONLY, V_CLIENT, V_LARGE, VM_KEY_LIMITED, VM_OBJECT_MAX_SIZE, VMS_CREATE_TYPE_MASK,
};
use kmemvisor_abi::layout::{self, PAGE_SIZE, VM_REGION_SIZE};
use kmemvisor_abi::{Service, Status};

use crate::checker::ViolationKind;
use crate::memory_model::aix_vmm::{self, MAX_PAGES, Mapping, VmError};
use crate::memory_model::kernel_memory::GuestView;
use crate::memory_model::ledger::LedgerError;
use crate::report::ExitCause;
use crate::services::{Caller, Outcome, Reply, refuse, zap_failed};
use crate::state::VmState;
use crate::sync::lock;

/// Serves the virtual memory manager services.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let [a0, a1, a2, a3, ..] = args;
    let anywhere = matches!(service, Service::VmAtt | Service::VmDet | Service::IoAtt | Service::IoDet | Service::VmCflush);
    if !anywhere && lock(&state.contexts[caller.vcpu]).at_interrupt_level() {
        let why = format!("{} can be called from the process environment only: called at interrupt level", service.name());
        return refuse(state, caller, ViolationKind::VmmAtInterruptLevel, service, &args[..arity(service)], why, Status::EPERM);
    }
    let call = Call { state, caller, service, args: &args[..arity(service)] };
    match service {
        Service::VmsCreate => call.create(a0, a1, a2),
        Service::VmsDelete => call.with_kernel(|k, _| k.vmm.delete(&mut k.frames, a0).map(|()| 0)),
        Service::VmHandle if a1 > VM_KEY_LIMITED => Reply::status(Status::EINVAL),
        Service::VmHandle => call.with_kernel(|k, _| k.vmm.object(a0).map(|_| aix_vmm::handle(a0, a1))),
        Service::VmAtt => call.attach(a0, a1),
        Service::IoAtt => call.io_attach(a0, a1),
        Service::VmDet | Service::IoDet => call.detach(a0),
        Service::VmRelease => call.release_range(a0, a1),
        Service::VmReleasep => match pages(a1, a2) {
            Some((first, count)) => call.with_kernel(|k, view| k.vmm.release(view, &mut k.frames, a0, first, count).map(|()| 0)),
            None => Reply::status(Status::EINVAL),
        },
        Service::VmQmodify => call.with_kernel(|k, view| k.vmm.modified(view, &mut k.frames, a0).map(u64::from)),
        Service::VmProtectp => match pages(a1, a2) {
            Some((first, count)) if a3 == FILEKEY || a3 == RDONLY => {
                call.with_kernel(|k, view| k.vmm.protect(view, &mut k.frames, a0, first, count, a3).map(|()| 0))
            }
            _ => Reply::status(Status::EINVAL),
        },
        Service::VmMakep => match int(a1) {
            Some(pno) => call.with_kernel(|k, view| k.vmm.make_page(view, &mut k.frames, a0, pno).map(|_| 0)),
            None => Reply::status(Status::EINVAL),
        },
        Service::VmCflush => call.cflush(a0, a1),
        _ => Reply::status(Status::ENOSYS),
    }
}

/// How many arguments a service takes: what a violation reports.
fn arity(service: Service) -> usize {
    match service {
        Service::VmsCreate => 5,
        Service::VmProtectp => 4,
        Service::VmReleasep => 3,
        Service::VmHandle | Service::VmAtt | Service::IoAtt | Service::VmRelease | Service::VmMakep | Service::VmCflush => 2,
        _ => 1,
    }
}

/// An AIX `int` that may not be negative: 0 to `i32::MAX`, whatever the
/// register's upper half says (a sign-extended negative value is refused).
fn int(value: u64) -> Option<u64> {
    (value <= i32::MAX as u64).then_some(value)
}

/// The page range `(pfirst, npages)` of a `vm_*p` service: both
/// non-negative `int`s, ending inside the largest object (a range that
/// crosses the object's boundary is `EINVAL`, as AIX documents).
fn pages(pfirst: u64, npages: u64) -> Option<(u64, u64)> {
    let (first, count) = (int(pfirst)?, int(npages)?);
    (first + count <= MAX_PAGES).then_some((first, count))
}

/// The violation a frame that may not lose its contents is.
fn busy_kind(refusal: LedgerError) -> ViolationKind {
    match refusal {
        LedgerError::Wired { .. } => ViolationKind::DgUxReleaseStillWired,
        LedgerError::Hidden(_) => ViolationKind::XmemFreeHiddenPage,
        LedgerError::InTransfer(_) => ViolationKind::DmaReleaseDuringTransfer,
        _ => ViolationKind::AixFreePinned,
    }
}

/// One call being served.
struct Call<'a> {
    state: &'a VmState,
    caller: Caller,
    service: Service,
    args: &'a [u64],
}

impl Call<'_> {
    fn refuse(&self, kind: ViolationKind, why: String, status: Status) -> Outcome {
        refuse(self.state, self.caller, kind, self.service, self.args, why, status)
    }

    /// The answer to a refusal of the memory model.
    fn refused(&self, error: VmError) -> Outcome {
        let name = self.service.name();
        match error {
            VmError::Forged(_) => Reply::status(Status::EINVAL),
            VmError::Deleted(_) => self.refuse(ViolationKind::VmmDeletedObject, format!("{name}: {error}"), Status::EINVAL),
            VmError::TooMany | VmError::NoFrames => Reply::status(Status::ENOMEM),
            VmError::TooLarge(_) => Reply::status(Status::EFBIG),
            VmError::Attached { .. } => self.refuse(ViolationKind::VmmDeleteAttached, format!("vms_delete: {error}"), Status::EBUSY),
            VmError::Busy(refusal) => {
                let why = format!("{name} would drop the contents of an object page that may not lose them: {refusal}");
                self.refuse(busy_kind(refusal), why, Status::EBUSY)
            }
            VmError::NotAttached(_) => {
                let why = format!("{name}: {error}; AIX halts the system here");
                self.refuse(ViolationKind::VmmDetachNotAttached, why, Status::EINVAL)
            }
            VmError::NoRegion => Outcome::Stop(Box::new(ExitCause::AixHalt {
                vcpu: self.caller.vcpu,
                service: name,
                why: format!("{error} (vm_att and io_att share them; vm_det or io_det gives one back)"),
            })),
            VmError::Zap(zap) => zap_failed(self.caller, self.service, zap),
        }
    }

    /// Runs `f` on the kernel under its lock; its value, or the answer to its refusal.
    fn with_kernel(&self, f: impl FnOnce(&mut crate::state::Kernel, GuestView) -> Result<u64, VmError>) -> Outcome {
        let view = GuestView { memory: self.state.ram.memory(), space: &self.state.space };
        let result = f(&mut lock(&self.state.kernel), view);
        match result {
            Ok(value) => Reply::ok(value),
            Err(error) => self.refused(error),
        }
    }

    /// `vms_create(type, gnode, size, uplim, downlim)`: `uplim` and
    /// `downlim` are ignored, as AIX documents.
    fn create(&self, kind: u64, gnode: u64, size: u64) -> Outcome {
        if kind & V_CLIENT == 0 || kind & !VMS_CREATE_TYPE_MASK != 0 {
            return Reply::status(Status::EINVAL);
        }
        let bytes = if kind & V_LARGE != 0 { size.checked_mul(PAGE_SIZE) } else { Some(size) };
        let Some(bytes) = bytes.filter(|&b| b <= VM_OBJECT_MAX_SIZE) else { return Reply::status(Status::EINVAL) };
        self.with_kernel(|k, view| k.vmm.create(view, &mut k.frames, bytes.div_ceil(PAGE_SIZE), gnode))
    }

    /// `vm_att(vmhandle, offset)`: the address of `offset` (its bits inside
    /// a region) in the region the object now has.
    fn attach(&self, handle: u64, offset: u64) -> Outcome {
        let (vmid, key) = aix_vmm::decode(handle);
        let view = GuestView { memory: self.state.ram.memory(), space: &self.state.space };
        let k = &mut *lock(&self.state.kernel);
        if let Err(error) = k.vmm.object(vmid) {
            let why = format!("vm_att of handle {handle:#x}: {error}");
            return self.refuse(ViolationKind::VmmBadHandle, why, Status::EINVAL);
        }
        match k.vmm.attach(view, &mut k.frames, Mapping::Object { vmid, key }) {
            Ok(base) => Reply::ok(base + offset % VM_REGION_SIZE),
            Err(error) => self.refused(error),
        }
    }

    /// `io_att(iohandle, offset)`: the window must lie in the device window.
    fn io_attach(&self, handle: u64, offset: u64) -> Outcome {
        let bus = handle & !IO_HANDLE_PAGES_MASK;
        let pages = (handle & IO_HANDLE_PAGES_MASK) + 1;
        let window = layout::DEVICE_WINDOW_GPA..layout::DEVICE_WINDOW_GPA + layout::DEVICE_WINDOW_SIZE;
        if !window.contains(&bus) || bus + pages * PAGE_SIZE > window.end {
            let why = format!(
                "io_att of handle {handle:#x}: {pages} page(s) at bus address {bus:#x} do not lie in the device window \
                 {:#x}..{:#x}",
                window.start, window.end
            );
            return self.refuse(ViolationKind::VmmBadIoHandle, why, Status::EINVAL);
        }
        let view = GuestView { memory: self.state.ram.memory(), space: &self.state.space };
        let k = &mut *lock(&self.state.kernel);
        match k.vmm.attach(view, &mut k.frames, Mapping::Device { bus, pages }) {
            Ok(base) => Reply::ok(base + offset % VM_REGION_SIZE),
            Err(error) => self.refused(error),
        }
    }

    /// `vm_det(eaddr)` and `io_det(eaddr)`: each gives back a region its
    /// own attach made.
    fn detach(&self, eaddr: u64) -> Outcome {
        let view = GuestView { memory: self.state.ram.memory(), space: &self.state.space };
        let k = &mut *lock(&self.state.kernel);
        let device = self.service == Service::IoDet;
        match k.vmm.region_of(eaddr) {
            Some((_, mapping)) if matches!(mapping, Mapping::Device { .. }) == device => {}
            Some((base, _)) => {
                let (made, other) = if device { ("vm_att", "vm_det") } else { ("io_att", "io_det") };
                let why = format!(
                    "{}: the region at {base:#x} holding {eaddr:#x} was mapped by {made}: give it back with {other}",
                    self.service.name()
                );
                return self.refuse(ViolationKind::VmmDetachNotAttached, why, Status::EINVAL);
            }
            None => return self.refused(VmError::NotAttached(eaddr)),
        }
        match k.vmm.detach(view, &mut k.frames, eaddr) {
            Ok(_) => Reply::ok(0),
            Err(error) => self.refused(error),
        }
    }

    /// `vm_release(vaddr, nbytes)`: the object pages that the range of a
    /// `vm_att` region maps.
    fn release_range(&self, vaddr: u64, nbytes: u64) -> Outcome {
        let Some(nbytes) = int(nbytes) else { return Reply::status(Status::EINVAL) };
        let view = GuestView { memory: self.state.ram.memory(), space: &self.state.space };
        let k = &mut *lock(&self.state.kernel);
        let Some((base, Mapping::Object { vmid, key })) = k.vmm.region_of(vaddr) else {
            // Not mapped, or an I/O region: EINVAL, as AIX documents.
            return Reply::status(Status::EINVAL);
        };
        if vaddr + nbytes > base + VM_REGION_SIZE {
            return Reply::status(Status::EINVAL);
        }
        if key == VM_KEY_LIMITED {
            return Reply::status(Status::EACCES);
        }
        if nbytes == 0 {
            return Reply::ok(0);
        }
        let first = (vaddr - base) / PAGE_SIZE;
        let end = (vaddr - base + nbytes).div_ceil(PAGE_SIZE);
        match k.vmm.release(view, &mut k.frames, vmid, first, end - first) {
            Ok(()) => Reply::ok(0),
            Err(error) => self.refused(error),
        }
    }

    /// `vm_cflush(eaddr, nbytes)`: x86 caches are coherent, and instruction
    /// fetches see stores, so there is nothing to write back; only the
    /// arguments are checked. `nbytes` ≤ 0 does nothing, as AIX documents.
    fn cflush(&self, eaddr: u64, nbytes: u64) -> Outcome {
        if nbytes as i64 <= 0 {
            return Reply::ok(0);
        }
        if int(nbytes).is_none() {
            return Reply::status(Status::EINVAL);
        }
        let kernel = eaddr >= layout::KERNEL_START && eaddr.checked_add(nbytes).is_some();
        if !kernel {
            let why = format!("vm_cflush of {nbytes} bytes at {eaddr:#x}: only kernel addresses may be flushed");
            return self.refuse(ViolationKind::VmmCflushNotKernel, why, Status::EINVAL);
        }
        Reply::ok(0)
    }
}
