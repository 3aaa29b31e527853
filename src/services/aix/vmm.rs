//! AIX virtual memory manager services: `vms_create`, `vms_delete`,
//! `vm_handle`, `vm_att`, `vm_det`, `vm_release`, `vm_releasep`,
//! `vm_qmodify`, `vm_protectp`, `vm_makep`, `vm_cflush`, `io_att`, `io_det`;
//! `vm_move` is in [`vm_move`], the `as_*` services and
//! `getadsp` in [`adspace`].
//!
//! The objects and regions are the memory model's ([`aix_vmm`]); this
//! module decodes the arguments (AIX `int`s: 0 to `i32::MAX`), enforces the
//! environments (only `vm_att`, `vm_det`, `io_att`, `io_det`, `vm_cflush`
//! and `as_getsrval` at interrupt level) and decides which refusal is a plain status and
//! which a violation: AIX documents `EINVAL` for a vmid it never made, but
//! gives `vm_att`, `vm_det`, `io_det` and `vm_cflush` no error return, so
//! their misuse is a violation; the kernel attaches halt the VM when every
//! region is in use, as AIX's panic.

use kmemvisor_abi::aix_vmm::{
    FILEKEY, IO_HANDLE_PAGES_MASK, RDONLY, V_CLIENT, V_LARGE, VM_KEY_LIMITED, VM_MAKEP_POISON, VM_OBJECT_MAX_SIZE,
    VMS_CREATE_TYPE_MASK,
};
use kmemvisor_abi::layout::{self, PAGE_SIZE, VM_REGION_SIZE};
use kmemvisor_abi::{Service, Status};

use crate::checker::ViolationKind;
use crate::memory_model::aix_vmm::{self, AixVmm, Books, MAX_PAGES, Mapping, VmError, place_of};
use crate::memory_model::ledger::LedgerError;
use crate::report::ExitCause;
use crate::services::aix::{adspace, paging, vm_move};
use crate::services::{Caller, Outcome, Reply, refuse, zap_failed};
use crate::state::{Kernel, VmState};
use crate::sync::lock;

/// Serves the virtual memory manager services.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let [a0, a1, a2, a3, a4, _] = args;
    let anywhere = matches!(
        service,
        Service::VmAtt | Service::VmDet | Service::IoAtt | Service::IoDet | Service::VmCflush | Service::AsGetsrval
    );
    let context = *lock(&state.contexts[caller.vcpu]);
    let call = Call { state, caller, service, args: &args[..arity(service)], pid: context.pid };
    if !anywhere && context.at_interrupt_level() {
        let why = format!("{} can be called from the process environment only: called at interrupt level", service.name());
        return call.refuse(ViolationKind::VmmAtInterruptLevel, why, Status::EPERM);
    }
    match service {
        Service::VmsCreate => call.create(a0, a1, a2),
        Service::VmsDelete => call.delete(a0),
        Service::VmHandle if a1 > VM_KEY_LIMITED => Reply::status(Status::EINVAL),
        Service::VmHandle => call.with_kernel(|vmm, _| vmm.object(a0).map(|_| aix_vmm::handle(a0, a1))),
        Service::VmAtt => call.attach(a0, a1),
        Service::IoAtt => call.io_attach(a0, a1),
        Service::VmDet | Service::IoDet => call.detach(a0),
        Service::VmRelease => call.release_range(a0, a1),
        Service::VmReleasep => match pages(a1, a2) {
            Some((first, count)) => call.release_pages(&mut lock(&state.kernel), a0, first, count),
            None => Reply::status(Status::EINVAL),
        },
        Service::VmQmodify => call.with_kernel(|vmm, books| vmm.modified(books, a0).map(u64::from)),
        Service::VmProtectp => match pages(a1, a2) {
            Some((first, count)) if a3 == FILEKEY || a3 == RDONLY => {
                call.with_kernel(|vmm, books| vmm.protect(books, a0, first, count, a3).map(|()| 0))
            }
            _ => Reply::status(Status::EINVAL),
        },
        Service::VmMakep => match int(a1) {
            Some(pno) => call.with_kernel(|vmm, books| vmm.make_page(books, a0, pno, VM_MAKEP_POISON).map(|_| 0)),
            None => Reply::status(Status::EINVAL),
        },
        Service::VmCflush => call.cflush(a0, a1),
        Service::AsAtt64
        | Service::AsDet64
        | Service::AsSeth64
        | Service::AsGeth64
        | Service::AsGetsrval64
        | Service::AsPuth64
        | Service::AsAtt
        | Service::AsDet
        | Service::AsSeth
        | Service::AsGeth
        | Service::AsGetsrval
        | Service::AsPuth
        | Service::Getadsp => adspace::serve(&call, [a0, a1, a2]),
        Service::VmMove => vm_move::serve(&call, a0, a1, a2, a3, a4),
        Service::VmMount | Service::VmUmount | Service::VmWrite | Service::VmWritep | Service::VmsIowait => {
            paging::serve(&call, &args)
        }
        _ => Reply::status(Status::ENOSYS),
    }
}

/// How many arguments a service takes: what a violation reports.
fn arity(service: Service) -> usize {
    match service {
        Service::VmsCreate | Service::VmMove => 5,
        Service::VmProtectp => 4,
        Service::VmReleasep | Service::AsAtt | Service::AsSeth | Service::VmMount | Service::VmWrite | Service::VmWritep => 3,
        Service::VmHandle
        | Service::VmAtt
        | Service::IoAtt
        | Service::VmRelease
        | Service::VmMakep
        | Service::VmCflush
        | Service::AsAtt64
        | Service::AsSeth64
        | Service::AsPuth64
        | Service::AsDet
        | Service::AsGeth
        | Service::AsGetsrval
        | Service::AsPuth
        | Service::VmUmount => 2,
        Service::Getadsp => 0,
        _ => 1,
    }
}

/// An AIX `int` that may not be negative: 0 to `i32::MAX`, whatever the
/// register's upper half says (a sign-extended negative value is refused).
pub(super) fn int(value: u64) -> Option<u64> {
    (value <= i32::MAX as u64).then_some(value)
}

/// The object and the page range `(vmid, first, count)` that `[vaddr,
/// vaddr + nbytes)` covers in the region holding `vaddr` (the kernel's, or
/// process `pid`'s), for `vm_release` and `vm_write`: `EINVAL` when
/// `nbytes` is no non-negative `int`, the region maps no object (not
/// mapped, or an I/O region, as AIX documents) or the range passes its
/// end; `EACCES` through a limited handle.
pub(super) fn object_range(k: &Kernel, pid: u64, vaddr: u64, nbytes: u64) -> Result<(u64, u64, u64), Status> {
    let nbytes = int(nbytes).ok_or(Status::EINVAL)?;
    let found = place_of(pid, vaddr).and_then(|place| k.vmm.region(place).map(|m| (place.base(), m)));
    let Some((base, Mapping::Object { vmid, key })) = found else { return Err(Status::EINVAL) };
    if vaddr + nbytes > base + VM_REGION_SIZE {
        return Err(Status::EINVAL);
    }
    if key == VM_KEY_LIMITED {
        return Err(Status::EACCES);
    }
    let first = (vaddr - base) / PAGE_SIZE;
    let end = (vaddr - base + nbytes).div_ceil(PAGE_SIZE);
    Ok((vmid, first, end - first))
}

/// The page range `(pfirst, npages)` of a `vm_*p` service: both
/// non-negative `int`s, ending inside the largest object (a range that
/// crosses the object's boundary is `EINVAL`, as AIX documents).
pub(super) fn pages(pfirst: u64, npages: u64) -> Option<(u64, u64)> {
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
pub(super) struct Call<'a> {
    pub(super) state: &'a VmState,
    pub(super) caller: Caller,
    pub(super) service: Service,
    pub(super) args: &'a [u64],
    /// The calling vCPU's current process (0: none).
    pub(super) pid: u64,
}

impl Call<'_> {
    pub(super) fn refuse(&self, kind: ViolationKind, why: String, status: Status) -> Outcome {
        refuse(self.state, self.caller, kind, self.service, self.args, why, status)
    }

    /// The answer to a refusal of the memory model.
    pub(super) fn refused(&self, error: VmError) -> Outcome {
        let name = self.service.name();
        match error {
            VmError::Forged(_) => Reply::status(Status::EINVAL),
            VmError::Deleted(_) => self.refuse(ViolationKind::VmmDeletedObject, format!("{name}: {error}"), Status::EINVAL),
            VmError::TooMany | VmError::NoFrames => Reply::status(Status::ENOMEM),
            VmError::TooLarge(_) => Reply::status(Status::EFBIG),
            VmError::Attached { .. } => self.refuse(ViolationKind::VmmDeleteAttached, format!("{name}: {error}"), Status::EBUSY),
            VmError::Held { .. } => self.refuse(ViolationKind::VmmDeleteHeld, format!("{name}: {error}"), Status::EBUSY),
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

    /// Runs `f` on the objects and the books under the kernel's lock; its
    /// value, or the answer to its refusal.
    pub(super) fn with_kernel(&self, f: impl FnOnce(&mut AixVmm, &mut Books) -> Result<u64, VmError>) -> Outcome {
        let k = &mut *lock(&self.state.kernel);
        let (vmm, mut books) = split(self.state, k);
        match f(vmm, &mut books) {
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
        self.with_kernel(|vmm, books| vmm.create(books.memory, books.frames, bytes.div_ceil(PAGE_SIZE), gnode))
    }

    /// The (vmid, key) of a handle that names a live object, or the
    /// violation a bad handle is (AIX gives the attaches no error return).
    pub(super) fn live_handle(&self, vmm: &AixVmm, handle: u64) -> Result<(u64, u64), Outcome> {
        let (vmid, key) = aix_vmm::decode(handle);
        match vmm.object(vmid) {
            Ok(_) => Ok((vmid, key)),
            Err(error) => {
                let why = format!("{} of handle {handle:#x}: {error}", self.service.name());
                Err(self.refuse(ViolationKind::VmmBadHandle, why, Status::EINVAL))
            }
        }
    }

    /// `vm_att(vmhandle, offset)`: the address of `offset` (its bits inside
    /// a region) in the kernel region the object now has.
    fn attach(&self, handle: u64, offset: u64) -> Outcome {
        let k = &mut *lock(&self.state.kernel);
        let (vmid, key) = match self.live_handle(&k.vmm, handle) {
            Ok(named) => named,
            Err(answer) => return answer,
        };
        let Some(place) = k.vmm.free_place(0) else { return self.refused(VmError::NoRegion) };
        let (vmm, mut books) = split(self.state, k);
        match vmm.attach(&mut books, place, Mapping::Object { vmid, key }) {
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
        self.with_kernel(|vmm, books| {
            let place = vmm.free_place(0).ok_or(VmError::NoRegion)?;
            vmm.attach(books, place, Mapping::Device { bus, pages }).map(|base| base + offset % VM_REGION_SIZE)
        })
    }

    /// `vm_det(eaddr)` and `io_det(eaddr)`: each gives back a kernel region
    /// its own attach made.
    fn detach(&self, eaddr: u64) -> Outcome {
        let device = self.service == Service::IoDet;
        let k = &mut *lock(&self.state.kernel);
        let place = place_of(0, eaddr);
        match place.and_then(|p| k.vmm.region(p).map(|m| (p, m))) {
            Some((_, mapping)) if matches!(mapping, Mapping::Device { .. }) == device => {}
            Some((place, _)) => {
                let (made, other) = if device { ("vm_att", "vm_det") } else { ("io_att", "io_det") };
                let why = format!(
                    "{}: the region at {:#x} holding {eaddr:#x} was mapped by {made}: give it back with {other}",
                    self.service.name(),
                    place.base()
                );
                return self.refuse(ViolationKind::VmmDetachNotAttached, why, Status::EINVAL);
            }
            None => return self.refused(VmError::NotAttached(eaddr)),
        }
        let Some(place) = place else { return self.refused(VmError::NotAttached(eaddr)) };
        let (vmm, mut books) = split(self.state, k);
        match vmm.detach(&mut books, place) {
            Ok(_) => Reply::ok(0),
            Err(error) => self.refused(error),
        }
    }

    /// `vm_release(vaddr, nbytes)`: the object pages that the range of a
    /// region (the kernel's, or the current process's) maps.
    fn release_range(&self, vaddr: u64, nbytes: u64) -> Outcome {
        let k = &mut *lock(&self.state.kernel);
        match object_range(k, self.pid, vaddr, nbytes) {
            Ok((vmid, first, count)) => self.release_pages(k, vmid, first, count),
            Err(status) => Reply::status(status),
        }
    }

    /// `vm_releasep` of the existing pages of `[first, first + count)`:
    /// pages that are out are dropped unread when the release goes ahead.
    fn release_pages(&self, k: &mut Kernel, vmid: u64, first: u64, count: u64) -> Outcome {
        let frames = match k.vmm.frames_in(vmid, first, count) {
            Ok(frames) => frames,
            Err(error) => return self.refused(error),
        };
        if k.frames.release_refusal(frames.iter().copied().filter(|&f| !k.frames.is_paged_out(f))).is_none()
            && let Err(answer) = paging::discard_out(self, k, &frames)
        {
            return answer;
        }
        let (vmm, mut books) = split(self.state, k);
        match vmm.release(&mut books, vmid, first, count) {
            Ok(()) => Reply::ok(0),
            Err(error) => self.refused(error),
        }
    }

    /// `vms_delete(vmid)`: pages that are out are dropped unread when the
    /// delete goes ahead.
    fn delete(&self, vmid: u64) -> Outcome {
        let k = &mut *lock(&self.state.kernel);
        if k.vmm.delete_refusal(&k.frames, vmid).is_none() {
            let frames: Vec<u64> = k.vmm.object(vmid).map(|o| o.frames().collect()).unwrap_or_default();
            if let Err(answer) = paging::discard_out(self, k, &frames) {
                return answer;
            }
        }
        match k.vmm.delete(&mut k.frames, vmid) {
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
        if eaddr < layout::KERNEL_START || eaddr.checked_add(nbytes).is_none() {
            let why = format!("vm_cflush of {nbytes} bytes at {eaddr:#x}: only kernel addresses may be flushed");
            return self.refuse(ViolationKind::VmmCflushNotKernel, why, Status::EINVAL);
        }
        Reply::ok(0)
    }
}

/// The objects and the books a region change touches, borrowed from the kernel.
pub(crate) fn split<'a>(state: &'a VmState, k: &'a mut Kernel) -> (&'a mut AixVmm, Books<'a>) {
    let books = Books { memory: state.ram.memory(), kernel: &state.space, processes: &mut k.processes, frames: &mut k.frames };
    (&mut k.vmm, books)
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::aix_vmm::{FILEKEY, INVLSID, RDONLY, V_CLIENT, V_INTRSEG, V_LARGE, VM_MAKEP_POISON, io_handle};
    use kmemvisor_abi::dma::DMA_ENGINE_GPA;
    use kmemvisor_abi::layout::{self, PAGE_SIZE, VM_REGION_SIZE, VM_REGIONS, vm_region_va};
    use kmemvisor_abi::{Service, Status};

    use crate::memory_model::aix_vmm::{Books, MAX_PAGES};
    use crate::memory_model::guest_access;
    use crate::memory_model::paging::PteFlags;
    use crate::report::ExitCause;
    use crate::services::Outcome;
    use crate::state::VmState;
    use crate::testing::{call, kinds, ok, reply, state, status};

    /// A new object of `pages` pages; its vmid.
    fn object(s: &VmState, pages: u64) -> u64 {
        ok(s, Service::VmsCreate, &[V_CLIENT, 0x9000, pages * PAGE_SIZE, 0, 0])
    }

    /// `vm_att` of `vmid` with `key`; the region's base.
    fn attach(s: &VmState, vmid: u64, key: u64) -> u64 {
        let handle = ok(s, Service::VmHandle, &[vmid, key]);
        ok(s, Service::VmAtt, &[handle, 0])
    }

    fn flags(s: &VmState, va: u64) -> Option<PteFlags> {
        s.space.translate(s.ram.memory(), va).map(|t| t.flags)
    }

    fn peek(s: &VmState, va: u64, len: usize) -> Vec<u8> {
        guest_access::read(s.ram.memory(), &s.space, va, len).expect("read")
    }

    fn poke(s: &VmState, va: u64, bytes: &[u8]) {
        guest_access::write(s.ram.memory(), &s.space, va, bytes).expect("write");
    }

    /// What the CPU does on a store through `va`: the entry's accessed and dirty bits.
    fn cpu_store(s: &VmState, va: u64) {
        let t = s.space.translate(s.ram.memory(), va).expect("mapped");
        let bits = PteFlags::from_bits(t.flags.bits() | PteFlags::ACCESSED.bits() | PteFlags::DIRTY.bits());
        s.space.remap(s.ram.memory(), va & !(PAGE_SIZE - 1), t.gpa & !(PAGE_SIZE - 1), bits).expect("remap");
    }

    fn free_frames(s: &VmState) -> u64 {
        s.kernel.lock().expect("lock").frames.free_frames()
    }

    fn check_ledger(s: &VmState) {
        assert_eq!(s.kernel.lock().expect("lock").frames.check(), Ok(()));
    }

    #[test]
    fn an_object_lives_in_frames_maps_into_a_region_and_is_deleted_once_detached() {
        let s = state();
        let free = free_frames(&s);
        let vmid = object(&s, 3);
        assert_eq!(free_frames(&s), free - 3);
        let handle = ok(&s, Service::VmHandle, &[vmid, 0]);
        let at = ok(&s, Service::VmAtt, &[handle, 0x0234_5678 + 5 * VM_REGION_SIZE]);
        assert_eq!(at, vm_region_va(0) + 0x0234_5678, "the offset's bits inside a region");
        let base = vm_region_va(0);
        assert_eq!(peek(&s, base, 8), [0; 8], "zeroed");
        poke(&s, base + 2 * PAGE_SIZE, b"object");
        assert!(flags(&s, base + 3 * PAGE_SIZE).is_none(), "only the object's pages are mapped");
        let writable = PteFlags::USER | PteFlags::WRITABLE | PteFlags::NO_EXECUTE;
        assert!(flags(&s, base).is_some_and(|f| f.contains(writable)));
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::EBUSY);
        assert_eq!(kinds(&s), ["vmm.delete-attached"]);
        // A second region maps the same frames.
        let second = attach(&s, vmid, 0);
        assert_eq!(second, vm_region_va(1));
        assert_eq!(peek(&s, second + 2 * PAGE_SIZE, 6), b"object");
        assert_eq!(status(&s, Service::VmDet, &[base + 17]), Status::OK);
        assert_eq!(status(&s, Service::VmDet, &[second + VM_REGION_SIZE - 1]), Status::OK);
        assert!(flags(&s, base).is_none(), "unmapped");
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::OK);
        // The regions' page tables stay for the next attach: one directory, a table per region.
        assert_eq!(free_frames(&s), free - 3, "every frame of the object is back");
        check_ledger(&s);
        assert_eq!(s.checker.violations().len(), 1);
    }

    #[test]
    fn vmids_are_never_reused_and_a_deleted_one_is_a_violation_a_forged_one_einval() {
        let s = state();
        let vmid = object(&s, 1);
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::OK);
        assert_ne!(object(&s, 1), vmid);
        for service in [Service::VmsDelete, Service::VmQmodify] {
            assert_eq!(status(&s, service, &[vmid]), Status::EINVAL);
        }
        assert_eq!(status(&s, Service::VmHandle, &[vmid, 0]), Status::EINVAL);
        assert_eq!(status(&s, Service::VmMakep, &[vmid, 0]), Status::EINVAL);
        assert_eq!(kinds(&s), ["vmm.deleted-object"; 4]);
        for forged in [0, 99, INVLSID] {
            assert_eq!(status(&s, Service::VmsDelete, &[forged]), Status::EINVAL);
            assert_eq!(status(&s, Service::VmReleasep, &[forged, 0, 1]), Status::EINVAL);
        }
        assert_eq!(s.checker.violations().len(), 4, "a vmid never made is a plain EINVAL");
        assert_eq!(status(&s, Service::VmAtt, &[INVLSID, 0]), Status::EINVAL);
        assert_eq!(status(&s, Service::VmAtt, &[vmid << 1, 0]), Status::EINVAL);
        assert_eq!(kinds(&s)[4..], ["vmm.bad-handle"; 2]);
        assert_eq!(status(&s, Service::VmHandle, &[vmid + 1, 2]), Status::EINVAL, "keys are 0 and 1");
    }

    #[test]
    fn vms_create_checks_its_type_and_size() {
        let s = state();
        let create = |kind, size| reply(&s, Service::VmsCreate, &[kind, 0, size, 7, 9]);
        assert_eq!(create(0, PAGE_SIZE).0, Status::EINVAL, "not V_CLIENT");
        assert_eq!(create(V_CLIENT | 1 << 3, PAGE_SIZE).0, Status::EINVAL, "an unknown bit");
        assert_eq!(create(V_CLIENT, VM_REGION_SIZE + 1).0, Status::EINVAL, "larger than a region");
        assert_eq!(create(V_CLIENT | V_LARGE, u64::MAX).0, Status::EINVAL);
        assert_eq!(create(V_CLIENT, VM_REGION_SIZE).0, Status::ENOMEM, "more than RAM");
        let free = free_frames(&s);
        let empty = create(V_CLIENT | V_INTRSEG, 0);
        assert_eq!(empty.0, Status::OK, "an empty file");
        let part = create(V_CLIENT, PAGE_SIZE + 1).1;
        let large = create(V_CLIENT | V_LARGE, 2).1;
        assert_eq!(free_frames(&s), free - 4, "bytes round up to pages; V_LARGE counts pages");
        for vmid in [empty.1, part, large] {
            assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::OK);
        }
        assert_eq!(free_frames(&s), free);
        assert!(s.checker.violations().is_empty());
    }

    #[test]
    fn the_attach_that_finds_no_region_halts_and_detaches_name_their_own_regions() {
        let s = state();
        let vmid = object(&s, 1);
        for n in 0..VM_REGIONS {
            assert_eq!(attach(&s, vmid, 0), vm_region_va(n));
        }
        let handle = ok(&s, Service::VmHandle, &[vmid, 0]);
        let Outcome::Stop(cause) = call(&s, Service::VmAtt, &[handle, 0]) else { panic!("no halt") };
        assert!(
            matches!(&*cause, ExitCause::AixHalt { service: "vm_att", why, .. } if why.starts_with("all 16 regions")),
            "{cause:?}"
        );
        assert_eq!(cause.exit_status(0), crate::report::status::AIX_HALT);
        let Outcome::Stop(cause) = call(&s, Service::IoAtt, &[io_handle(DMA_ENGINE_GPA, 1), 0]) else { panic!("no halt") };
        assert!(matches!(&*cause, ExitCause::AixHalt { service: "io_att", .. }));
        assert_eq!(status(&s, Service::IoDet, &[vm_region_va(3)]), Status::EINVAL, "a vm_att region");
        assert_eq!(status(&s, Service::VmDet, &[vm_region_va(VM_REGIONS)]), Status::EINVAL, "past the regions");
        assert_eq!(status(&s, Service::VmDet, &[layout::KERNEL_HEAP_VA]), Status::EINVAL);
        assert_eq!(status(&s, Service::VmDet, &[vm_region_va(2)]), Status::OK);
        assert_eq!(status(&s, Service::VmDet, &[vm_region_va(2)]), Status::EINVAL, "detached already");
        assert_eq!(kinds(&s), ["vmm.detach-not-attached"; 4]);
        assert_eq!(attach(&s, vmid, 0), vm_region_va(2), "the region is free again");
    }

    #[test]
    fn io_att_maps_the_dma_engine_uncached_and_refuses_windows_outside_the_device_window() {
        let s = state();
        let at = ok(&s, Service::IoAtt, &[io_handle(DMA_ENGINE_GPA, 1), 0x10]);
        assert_eq!(at, vm_region_va(0) + 0x10);
        let t = s.space.translate(s.ram.memory(), at).expect("mapped");
        assert_eq!(t.gpa, DMA_ENGINE_GPA + 0x10);
        assert!(t.flags.contains(PteFlags::CACHE_DISABLE | PteFlags::WRITABLE | PteFlags::USER));
        assert_eq!(status(&s, Service::VmDet, &[at]), Status::EINVAL, "an io_att region");
        assert_eq!(status(&s, Service::VmRelease, &[at, 8]), Status::EINVAL, "an I/O region");
        assert_eq!(status(&s, Service::IoDet, &[at]), Status::OK);
        assert!(s.space.translate(s.ram.memory(), at).is_none());
        let end = layout::DEVICE_WINDOW_GPA + layout::DEVICE_WINDOW_SIZE;
        for bad in [io_handle(0x10_0000, 1), io_handle(end - PAGE_SIZE, 2), io_handle(end, 1)] {
            assert_eq!(status(&s, Service::IoAtt, &[bad, 0]), Status::EINVAL, "{bad:#x}");
        }
        assert_eq!(kinds(&s), ["vmm.detach-not-attached", "vmm.bad-io-handle", "vmm.bad-io-handle", "vmm.bad-io-handle"]);
    }

    #[test]
    fn io_att_maps_each_page_of_a_window_to_its_own_bus_page_and_io_det_unmaps_them_all() {
        let s = state();
        let bus = layout::DEVICE_WINDOW_GPA + 4 * PAGE_SIZE;
        let at = ok(&s, Service::IoAtt, &[io_handle(bus, 3), 0]);
        let gpas =
            |at: u64| (0..3).map(|i| s.space.translate(s.ram.memory(), at + i * PAGE_SIZE).map(|t| t.gpa)).collect::<Vec<_>>();
        assert_eq!(gpas(at), [Some(bus), Some(bus + PAGE_SIZE), Some(bus + 2 * PAGE_SIZE)]);
        assert_eq!(status(&s, Service::IoDet, &[at]), Status::OK);
        assert_eq!(gpas(at), [None; 3]);
        assert!(s.checker.violations().is_empty());
    }

    #[test]
    fn stores_mark_pages_modified_and_a_release_zeroes_them_and_clears_the_mark() {
        let s = state();
        let vmid = object(&s, 2);
        let base = attach(&s, vmid, 0);
        assert_eq!(ok(&s, Service::VmQmodify, &[vmid]), 0);
        poke(&s, base + PAGE_SIZE, b"data");
        cpu_store(&s, base + PAGE_SIZE);
        assert_eq!(ok(&s, Service::VmQmodify, &[vmid]), 1, "from the dirty bit");
        assert_eq!(ok(&s, Service::VmQmodify, &[vmid]), 1, "the frames' marks stay");
        assert_eq!(status(&s, Service::VmRelease, &[base + PAGE_SIZE + 5, 1]), Status::OK);
        assert_eq!(peek(&s, base + PAGE_SIZE, 4), [0; 4], "reads as zeros");
        assert_eq!(ok(&s, Service::VmQmodify, &[vmid]), 0, "a released page is clean");
        // A store seen only at vm_det still counts.
        cpu_store(&s, base);
        assert_eq!(status(&s, Service::VmDet, &[base]), Status::OK);
        assert_eq!(ok(&s, Service::VmQmodify, &[vmid]), 1);
        assert_eq!(status(&s, Service::VmReleasep, &[vmid, 0, MAX_PAGES]), Status::OK, "the whole object, as AFS truncates");
        assert_eq!(ok(&s, Service::VmQmodify, &[vmid]), 0);
        check_ledger(&s);
        assert!(s.checker.violations().is_empty());
    }

    #[test]
    fn release_ranges_are_checked_and_a_limited_handle_may_not_release() {
        let s = state();
        let vmid = object(&s, 1);
        let base = attach(&s, vmid, 0);
        let limited = attach(&s, vmid, 1);
        assert_eq!(status(&s, Service::VmRelease, &[limited, 8]), Status::EACCES);
        assert_eq!(status(&s, Service::VmRelease, &[base, u64::MAX]), Status::EINVAL, "a negative int");
        assert_eq!(
            status(&s, Service::VmRelease, &[base + VM_REGION_SIZE - 1, 2]),
            Status::EINVAL,
            "crosses the object's boundary"
        );
        assert_eq!(status(&s, Service::VmRelease, &[vm_region_va(5), 2]), Status::EINVAL, "not mapped");
        assert_eq!(status(&s, Service::VmRelease, &[base, 0]), Status::OK);
        for (first, count) in [(u64::MAX, 1), (0, 1 << 31), (MAX_PAGES, 1), (MAX_PAGES - 1, 2)] {
            assert_eq!(status(&s, Service::VmReleasep, &[vmid, first, count]), Status::EINVAL, "{first} {count}");
        }
        assert_eq!(status(&s, Service::VmReleasep, &[vmid, MAX_PAGES - 1, 1]), Status::OK, "no page there: nothing to do");
        assert!(s.checker.violations().is_empty());
    }

    #[test]
    fn a_pinned_page_keeps_its_contents() {
        let s = state();
        let vmid = object(&s, 1);
        let base = attach(&s, vmid, 0);
        poke(&s, base, b"pinned");
        assert_eq!(status(&s, Service::Pin, &[base, PAGE_SIZE]), Status::OK);
        assert_eq!(status(&s, Service::VmReleasep, &[vmid, 0, 1]), Status::EBUSY);
        assert_eq!(status(&s, Service::VmDet, &[base]), Status::OK);
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::EBUSY);
        assert_eq!(kinds(&s), ["aix.free-pinned"; 2]);
        let base = attach(&s, vmid, 0);
        assert_eq!(peek(&s, base, 6), b"pinned");
        assert_eq!(status(&s, Service::Unpin, &[base, PAGE_SIZE]), Status::OK);
        assert_eq!(status(&s, Service::VmDet, &[base]), Status::OK);
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::OK);
        check_ledger(&s);
    }

    #[test]
    fn protect_keys_and_handle_keys_decide_the_writable_bit() {
        let s = state();
        let vmid = object(&s, 2);
        let base = attach(&s, vmid, 0);
        let limited = attach(&s, vmid, 1);
        let writable = |va| flags(&s, va).is_some_and(|f| f.contains(PteFlags::WRITABLE));
        assert_eq!([writable(base), writable(limited)], [true, false]);
        cpu_store(&s, base + PAGE_SIZE);
        assert_eq!(status(&s, Service::VmProtectp, &[vmid, 1, 1, RDONLY]), Status::OK);
        assert_eq!([writable(base), writable(base + PAGE_SIZE)], [true, false]);
        assert!(flags(&s, base + PAGE_SIZE).is_some_and(|f| !f.contains(PteFlags::DIRTY)), "a fresh entry");
        assert_eq!(ok(&s, Service::VmQmodify, &[vmid]), 1, "the store before it was folded into the mark");
        assert_eq!(status(&s, Service::VmProtectp, &[vmid, 0, 2, FILEKEY]), Status::OK);
        assert_eq!([writable(base + PAGE_SIZE), writable(limited + PAGE_SIZE)], [true, false]);
        // A page made later gets the default key.
        assert_eq!(status(&s, Service::VmProtectp, &[vmid, 0, 8, RDONLY]), Status::OK);
        assert_eq!(status(&s, Service::VmMakep, &[vmid, 5]), Status::OK);
        assert!(writable(base + 5 * PAGE_SIZE));
        for bad in [[vmid, 0, 1, 2], [vmid, u64::MAX, 1, RDONLY], [vmid, 0, MAX_PAGES + 1, RDONLY]] {
            assert_eq!(status(&s, Service::VmProtectp, &bad), Status::EINVAL, "{bad:x?}");
        }
        assert!(s.checker.violations().is_empty());
    }

    #[test]
    fn vm_makep_makes_a_poisoned_page_in_every_region_and_keeps_existing_ones() {
        let s = state();
        let vmid = object(&s, 1);
        let base = attach(&s, vmid, 0);
        poke(&s, base, b"kept");
        assert_eq!(status(&s, Service::VmMakep, &[vmid, 0]), Status::OK);
        assert_eq!(peek(&s, base, 4), b"kept");
        let free = free_frames(&s);
        assert_eq!(status(&s, Service::VmMakep, &[vmid, 9]), Status::OK);
        assert_eq!(free_frames(&s), free - 1);
        assert_eq!(peek(&s, base + 9 * PAGE_SIZE, 4), [VM_MAKEP_POISON; 4]);
        let second = attach(&s, vmid, 0);
        assert_eq!(peek(&s, second + 9 * PAGE_SIZE, 1), [VM_MAKEP_POISON]);
        assert_eq!(status(&s, Service::VmMakep, &[vmid, MAX_PAGES]), Status::EFBIG);
        assert_eq!(status(&s, Service::VmMakep, &[vmid, u64::MAX]), Status::EINVAL);
        check_ledger(&s);
        assert!(s.checker.violations().is_empty());
    }

    #[test]
    fn vm_cflush_checks_its_arguments_and_does_nothing_else() {
        let s = state();
        for (eaddr, nbytes) in [(layout::KERNEL_HEAP_VA, 64), (0x1000, 0), (0x1000, u64::MAX), (u64::MAX, 1 << 31 | 1 << 63)] {
            assert_eq!(status(&s, Service::VmCflush, &[eaddr, nbytes]), Status::OK, "{eaddr:#x} {nbytes:#x}");
        }
        assert_eq!(status(&s, Service::VmCflush, &[layout::KERNEL_HEAP_VA, 1 << 31]), Status::EINVAL, "more than an int");
        assert!(s.checker.violations().is_empty());
        assert_eq!(status(&s, Service::VmCflush, &[0x1000_0000, 16]), Status::EINVAL);
        assert_eq!(status(&s, Service::VmCflush, &[u64::MAX - 4, 16]), Status::EINVAL, "wraps");
        assert_eq!(kinds(&s), ["vmm.cflush-not-kernel"; 2]);
    }

    #[test]
    fn process_only_services_refuse_interrupt_level_and_the_others_serve_it() {
        let s = state();
        let vmid = object(&s, 1);
        let handle = ok(&s, Service::VmHandle, &[vmid, 0]);
        assert_eq!(status(&s, Service::InterruptEnter, &[]), Status::OK);
        let refused: [(Service, &[u64]); 8] = [
            (Service::VmsCreate, &[V_CLIENT, 0, PAGE_SIZE, 0, 0]),
            (Service::VmsDelete, &[vmid]),
            (Service::VmHandle, &[vmid, 0]),
            (Service::VmRelease, &[vm_region_va(0), 1]),
            (Service::VmReleasep, &[vmid, 0, 1]),
            (Service::VmQmodify, &[vmid]),
            (Service::VmProtectp, &[vmid, 0, 1, RDONLY]),
            (Service::VmMakep, &[vmid, 1]),
        ];
        for (service, args) in refused {
            assert_eq!(status(&s, service, args), Status::EPERM, "{}", service.name());
        }
        assert_eq!(kinds(&s), ["vmm.at-interrupt-level"; 8]);
        let at = ok(&s, Service::VmAtt, &[handle, 0]);
        assert_eq!(status(&s, Service::VmCflush, &[at, 8]), Status::OK);
        assert_eq!(status(&s, Service::VmDet, &[at]), Status::OK);
        let io = ok(&s, Service::IoAtt, &[io_handle(DMA_ENGINE_GPA, 1), 0]);
        assert_eq!(status(&s, Service::IoDet, &[io]), Status::OK);
        assert_eq!(s.checker.violations().len(), 8);
    }

    #[test]
    fn the_pager_sees_an_accessed_page_once_and_the_key_of_each_frame() {
        let s = state();
        let vmid = object(&s, 3);
        let base = attach(&s, vmid, 0);
        // Every page touched once, so that it exists; then the accessed bits cleared.
        for pno in 0..3 {
            poke(&s, base + pno * PAGE_SIZE, b"x");
        }
        // Another object's region, touched too: its bits are not this object's.
        let other = object(&s, 1);
        let other_base = attach(&s, other, 0);
        poke(&s, other_base, b"y");
        let take_of = |vmid: u64, pno: u64| {
            let k = &mut *s.kernel.lock().expect("lock");
            let mut books =
                Books { memory: s.ram.memory(), kernel: &s.space, processes: &mut k.processes, frames: &mut k.frames };
            k.vmm.take_accessed(&mut books, vmid, pno).expect("an object page")
        };
        let take = |pno: u64| take_of(vmid, pno);
        for pno in 0..3 {
            take(pno);
        }
        take_of(other, 0);
        cpu_store(&s, base + 2 * PAGE_SIZE);
        cpu_store(&s, other_base);
        assert_eq!([take(0), take(1), take(2)], [false, false, true], "page 2 alone was accessed");
        assert!(!take(2), "a second chance clears the bit");
        assert!(!take(9), "no such page");
        assert!(take_of(other, 0));
        let frame = |pno: u64| s.space.translate(s.ram.memory(), base + pno * PAGE_SIZE).expect("mapped").gpa;
        assert_eq!(ok(&s, Service::VmProtectp, &[vmid, 1, 1, RDONLY]), 0);
        let k = s.kernel.lock().expect("lock");
        assert_eq!([k.vmm.key_of_frame(frame(0)), k.vmm.key_of_frame(frame(1))], [Some(FILEKEY), Some(RDONLY)]);
        assert_eq!(k.vmm.key_of_frame(s.image.segments[0].gpa), None, "the image is no object's");
    }

    #[test]
    fn a_detach_unmaps_every_page_of_its_region_and_no_other() {
        let s = state();
        let vmid = object(&s, 3);
        let first = attach(&s, vmid, 0);
        let second = attach(&s, vmid, 0);
        assert_eq!(status(&s, Service::VmDet, &[second]), Status::OK);
        let mapped = |base: u64| (0..3).map(|pno| flags(&s, base + pno * PAGE_SIZE).is_some()).collect::<Vec<_>>();
        assert_eq!(mapped(second), [false; 3]);
        assert_eq!(mapped(first), [true; 3], "the other region keeps its pages");
    }

    #[test]
    fn a_vm_makep_that_runs_out_of_page_tables_in_its_second_region_maps_the_page_nowhere() {
        let s = state();
        // The first region keeps the leaf table of pages 512 to 1023 that a larger object had built.
        let large = object(&s, 513);
        let first = attach(&s, large, 0);
        assert_eq!(status(&s, Service::VmDet, &[first]), Status::OK);
        let vmid = object(&s, 1);
        assert_eq!(attach(&s, vmid, 0), first);
        let second = attach(&s, vmid, 0);
        // One frame is left: the page's; the second region has no table for it.
        {
            let mut k = s.kernel.lock().expect("lock");
            let spare = k.frames.free_frames() - 1;
            k.frames.allocate(spare, crate::memory_model::ledger::Role::KernelMemory).expect("all frames but one");
        }
        assert_eq!(status(&s, Service::VmMakep, &[vmid, 512]), Status::ENOMEM);
        assert_eq!(flags(&s, first + 512 * PAGE_SIZE), None, "the first region's entry is gone again");
        assert_eq!(flags(&s, second + 512 * PAGE_SIZE), None);
        assert!(flags(&s, first).is_some() && flags(&s, second).is_some(), "the existing page stays mapped");
        assert_eq!(free_frames(&s), 1, "the page's frame is back");
        check_ledger(&s);
    }

    #[test]
    fn an_attach_that_runs_out_of_page_tables_midway_maps_nothing() {
        let s = state();
        // A first attach builds the region's upper tables and its first leaf table, which stay.
        let small = object(&s, 1);
        let base = attach(&s, small, 0);
        assert_eq!(status(&s, Service::VmDet, &[base]), Status::OK);
        // 513 pages need a second leaf table after the first 512, and no frame is left for it.
        let big = object(&s, 513);
        {
            let mut k = s.kernel.lock().expect("lock");
            let free = k.frames.free_frames();
            k.frames.allocate(free, crate::memory_model::ledger::Role::KernelMemory).expect("every free frame");
        }
        let handle = ok(&s, Service::VmHandle, &[big, 0]);
        assert_eq!(status(&s, Service::VmAtt, &[handle, 0]), Status::ENOMEM);
        let mapped = (0..513).filter(|pno| flags(&s, base + pno * PAGE_SIZE).is_some()).count();
        assert_eq!(mapped, 0, "the pages mapped before the failure are unmapped again");
        check_ledger(&s);
    }
}
