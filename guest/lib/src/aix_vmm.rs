//! AIX virtual memory manager services (group `0x04`): one function per
//! service, named as AIX names it, with AIX's argument order.
//!
//! A data provider creates a *virtual memory object* ([`vms_create`]), names
//! it with an access key ([`vm_handle`]) and maps it into a kernel region to
//! reach its bytes ([`vm_att`], [`vm_det`]). Pages are named by number for
//! the services that need no mapping: [`vm_releasep`] drops their contents
//! (they read as zeros), [`vm_protectp`] makes them read-only or read-write,
//! [`vm_makep`] makes a page without reading it in, and [`vm_qmodify`] says
//! whether any was stored to. [`io_att`] maps a device window (the DMA
//! engine's registers, say) the same way, [`io_det`] gives it back. The
//! `as_*64` services map objects into the current process's own regions
//! (the top 4 GiB of its user half): [`as_att64`], [`as_seth64`],
//! [`as_det64`]; [`as_geth64`] names the object at an address and protects
//! it from deletion until [`as_puth64`], [`as_getsrval64`] names it only.
//! Their 32-bit forms [`as_att`], [`as_det`], [`as_seth`], [`as_geth`],
//! [`as_getsrval`] and [`as_puth`] do the same on the address space that
//! [`getadsp`] named, current or not, in the same regions. [`vm_move`]
//! moves bytes between an object (by vmid and offset, no mapping needed)
//! and the buffers of a [`Uio`], as `uiomove` does.
//!
//! | AIX type | here |
//! |---|---|
//! | `vmid_t` | [`VmId`] |
//! | `vmhandle_t` | [`VmHandle`]; an `io_att` handle is [`io_handle`]`(bus, pages)` |
//! | `adspace_t *` | [`AdSpace`] (opaque: never dereferenced) |
//! | `struct uio` | [`Uio`] |
//! | `caddr_t` | `*mut u8` / `*const u8` |
//! | `int` sizes, page numbers | `i32` (negative values are refused) |
//! | `int` error return | [`Status`] ([`Status::OK`] for 0) |
//! | `vm_qmodify`'s TRUE/FALSE | `bool` |
//!
//! Regions are [`VM_REGIONS`](kmemvisor_abi::layout::VM_REGIONS) fixed slots
//! of 256 MiB shared by [`vm_att`] and [`io_att`]; an attach with none free
//! halts the VM (exit status 76), as AIX panics. Only [`vm_att`],
//! [`vm_det`], [`io_att`], [`io_det`] and [`vm_cflush`] may be called at
//! interrupt level; the others there are a violation and `EPERM`.
//!
//! | call | statuses | violations |
//! |---|---|---|
//! | [`vms_create`] | `EINVAL` (type without [`V_CLIENT`] or with unknown bits; more than 256 MiB); `ENOMEM` (no frames, or 1024 objects) | — |
//! | [`vms_delete`] | `EINVAL` (a vmid never made) | a deleted vmid (`EINVAL`); a region maps it (`EBUSY`); a page pinned, hidden or in a DMA transfer (`EBUSY`) |
//! | [`vm_handle`] | `EINVAL` (a vmid never made; key not 0 or 1): [`VmHandle::INVALID`] | a deleted vmid |
//! | [`vm_att`] | — | a handle of no live object (`EINVAL`, null) |
//! | [`vm_det`], [`io_det`] | — | an address in no region that attach mapped (`EINVAL`) |
//! | [`vm_release`] | `EINVAL` (not a `vm_att` region; negative; past the region); `EACCES` (a limited handle) | as [`vms_delete`] for busy pages |
//! | [`vm_releasep`], [`vm_protectp`] | `EINVAL` (bad vmid, negative, past 65536 pages, unknown key) | a deleted vmid; busy pages (release) |
//! | [`vm_makep`] | `EINVAL` (bad vmid, negative); `EFBIG` (page 65536 or above); `ENOMEM` | a deleted vmid |
//! | [`vm_cflush`] | — | a range outside kernel memory (`EINVAL`) |
//! | [`io_att`] | — | a window outside the device window (`EINVAL`, null) |
//! | [`as_att64`] | `EINVAL` (no current process); `ENOMEM` (no free region) | a handle of no live object (`EINVAL`) |
//! | [`as_det64`] | `EINVAL` (no current process, or no mapped region there) | — |
//! | [`as_seth64`] | `EINVAL` (no current process, or outside the regions) | a handle of no live object (`EINVAL`) |
//! | [`as_geth64`], [`as_getsrval64`] | `EINVAL` (no mapped region there): [`VmHandle::INVALID`] | — |
//! | [`as_puth64`] | `EINVAL` (outside the regions) | no hold there (`EINVAL`); the region still maps the object (`EBUSY`) |
//! | [`vm_move`] | `EINVAL` (bad vmid, `rw`, segment flag or iovec count; `limit` not an `int`); `EFAULT` (an offset past 256 MiB, a read-only page written, a bad user byte: the uio says what moved); `ENOMEM` (no frame for a new page) | a deleted vmid; as `uiomove` for the uio |
//! | [`getadsp`] | `EINVAL` (no current process): [`AdSpace::NULL`] | — |
//! | [`as_att`] | `ENOMEM` (no free region): null | a pointer of no live process (`EINVAL`); a handle of no live object |
//! | [`as_det`] | `EINVAL` (no mapped region there) | a pointer of no live process |
//! | [`as_seth`], [`as_geth`], [`as_getsrval`] | — | a pointer of no live process; an address in no (mapped) region (`EINVAL`); a handle of no live object ([`as_seth`]) |
//! | [`as_puth`] | — | a pointer of no live process; no hold in that space (`EINVAL`); every region holding it still maps the object (`EBUSY`) |
//! | [`vm_mount`] | `EINVAL` (type not [`D_REMOTE`]; a null strategy; `nbufstr` ≤ 0; the strategy mounted already); `ENOMEM` (16 devices, or more than 4096 bufs) | — |
//! | [`vm_umount`] | `EINVAL` (type not [`D_REMOTE`], with or without [`D_NOWAIT`]; a strategy not mounted); `EIO` (a page on the device cannot be read back: it stays mounted) | — |
//! | [`vm_write`] | `EINVAL` (not an object region; negative; past the region); `EACCES` (a limited handle); `ENODEV` (no device mounted) | — |
//! | [`vm_writep`] | `EINVAL` (bad vmid, negative, past 65536 pages); `ENODEV` | a deleted vmid |
//! | [`vms_iowait`] | `EINVAL` (bad vmid); `EIO` (a page-out failed since the last wait) | a deleted vmid |
//!
//! A held object cannot be deleted ([`vms_delete`]: `EBUSY`, a violation).
//! A destroyed process's regions are detached and its holds dropped.
//!
//! Paging: [`vm_mount`] adds a paging device, a file the VMM's pager
//! writes pages to; [`vm_write`] and [`vm_writep`] page the modified pages
//! of a range out (unchanged, pinned or hidden pages stay in), and
//! [`vms_iowait`] says whether that went well. A page that is out comes
//! back in, byte for byte, when it is touched (the touching CPU waits for
//! it) or when its device is unmounted.
//!
//! `docs/ABI.md` ("AIX virtual memory manager services") has the rules in full.

use kmemvisor_abi::aix::Uio;
use kmemvisor_abi::{Service, Status};

pub use kmemvisor_abi::aix::{UIO_READ, UIO_WRITE};
pub use kmemvisor_abi::aix_vmm::{
    D_NOWAIT, D_REMOTE, FILEKEY, INVLSID, RDONLY, V_CLIENT, V_INTRSEG, V_LARGE, VM_KEY_LIMITED, VM_KEY_UNLIMITED,
    VM_MAKEP_POISON, VM_MAX_PAGING_BUFS, VM_MAX_PAGING_DEVICES, io_handle,
};

/// A virtual memory object's id (AIX `vmid_t`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VmId(pub u64);

/// An object and an access key (AIX `vmhandle_t`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VmHandle(pub u64);

impl VmHandle {
    /// What [`vm_handle`] returns for a vmid it refused (`INVLSID`).
    pub const INVALID: VmHandle = VmHandle(INVLSID);
}

/// A process's address space as the 32-bit `as_*` services name it (AIX
/// `adspace_t *`): an opaque value from [`getadsp`], never dereferenced.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdSpace(pub u64);

impl AdSpace {
    /// What [`getadsp`] returns with no current process.
    pub const NULL: AdSpace = AdSpace(0);
}

/// The raw calls: every service with 64-bit arguments, returning the status
/// the VMM put in `rax` and the value in `rdx`. Nothing is narrowed or checked.
pub mod raw {
    use super::*;

    use crate::hypercall::call_status as call;

    /// Makes a call that changes no guest memory the caller may reference.
    fn pure(service: Service, args: [u64; 6]) -> (Status, u64) {
        // SAFETY: callers pass only services that map new memory, read
        // books or change protections: no byte the caller references changes.
        unsafe { call(service, args) }
    }

    /// `vms_create(type, gnode, size, uplim, downlim)`: the status and the vmid.
    pub fn vms_create(kind: u64, gnode: u64, size: u64, uplim: u64, downlim: u64) -> (Status, u64) {
        pure(Service::VmsCreate, [kind, gnode, size, uplim, downlim, 0])
    }

    /// `vms_delete(vmid)`: the status (refused while a region maps it).
    pub fn vms_delete(vmid: u64) -> (Status, u64) {
        pure(Service::VmsDelete, [vmid, 0, 0, 0, 0, 0])
    }

    /// `vm_handle(vmid, key)`: the status and the handle.
    pub fn vm_handle(vmid: u64, key: u64) -> (Status, u64) {
        pure(Service::VmHandle, [vmid, key, 0, 0, 0, 0])
    }

    /// `vm_att(vmhandle, offset)`: the status and the address.
    pub fn vm_att(handle: u64, offset: u64) -> (Status, u64) {
        pure(Service::VmAtt, [handle, offset, 0, 0, 0, 0])
    }

    /// `vm_det(eaddr)`: the status.
    ///
    /// # Safety
    ///
    /// Nothing may reference the region's memory any more: it is unmapped.
    pub unsafe fn vm_det(eaddr: u64) -> (Status, u64) {
        // SAFETY: the caller gives up the region.
        unsafe { call(Service::VmDet, [eaddr, 0, 0, 0, 0, 0]) }
    }

    /// `vm_release(vaddr, nbytes)`: the status.
    ///
    /// # Safety
    ///
    /// The pages' contents become zeros under any reference to them.
    pub unsafe fn vm_release(vaddr: u64, nbytes: u64) -> (Status, u64) {
        // SAFETY: the caller gives up the contents.
        unsafe { call(Service::VmRelease, [vaddr, nbytes, 0, 0, 0, 0]) }
    }

    /// `vm_releasep(vmid, pfirst, npages)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`vm_release`].
    pub unsafe fn vm_releasep(vmid: u64, pfirst: u64, npages: u64) -> (Status, u64) {
        // SAFETY: the caller gives up the contents.
        unsafe { call(Service::VmReleasep, [vmid, pfirst, npages, 0, 0, 0]) }
    }

    /// `vm_qmodify(vmid)`: the status and 1 (modified) or 0.
    pub fn vm_qmodify(vmid: u64) -> (Status, u64) {
        pure(Service::VmQmodify, [vmid, 0, 0, 0, 0, 0])
    }

    /// `vm_protectp(vmid, pfirst, npages, key)`: the status.
    pub fn vm_protectp(vmid: u64, pfirst: u64, npages: u64, key: u64) -> (Status, u64) {
        pure(Service::VmProtectp, [vmid, pfirst, npages, key, 0, 0])
    }

    /// `vm_makep(vmid, pno)`: the status.
    pub fn vm_makep(vmid: u64, pno: u64) -> (Status, u64) {
        pure(Service::VmMakep, [vmid, pno, 0, 0, 0, 0])
    }

    /// `vm_cflush(eaddr, nbytes)`: the status.
    pub fn vm_cflush(eaddr: u64, nbytes: u64) -> (Status, u64) {
        pure(Service::VmCflush, [eaddr, nbytes, 0, 0, 0, 0])
    }

    /// `io_att(iohandle, offset)`: the status and the address.
    pub fn io_att(handle: u64, offset: u64) -> (Status, u64) {
        pure(Service::IoAtt, [handle, offset, 0, 0, 0, 0])
    }

    /// `as_att64(vmhandle, offset)`: the status and the address.
    pub fn as_att64(handle: u64, offset: u64) -> (Status, u64) {
        pure(Service::AsAtt64, [handle, offset, 0, 0, 0, 0])
    }

    /// `as_det64(addr64)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`vm_det`].
    pub unsafe fn as_det64(addr64: u64) -> (Status, u64) {
        // SAFETY: the caller gives up the region.
        unsafe { call(Service::AsDet64, [addr64, 0, 0, 0, 0, 0]) }
    }

    /// `as_seth64(addr64, vmhandle)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`vm_det`]: what the region mapped before is unmapped.
    pub unsafe fn as_seth64(addr64: u64, handle: u64) -> (Status, u64) {
        // SAFETY: the caller gives up what the region mapped.
        unsafe { call(Service::AsSeth64, [addr64, handle, 0, 0, 0, 0]) }
    }

    /// `as_geth64(addr64)`: the status and the handle.
    pub fn as_geth64(addr64: u64) -> (Status, u64) {
        pure(Service::AsGeth64, [addr64, 0, 0, 0, 0, 0])
    }

    /// `as_getsrval64(addr64)`: the status and the handle.
    pub fn as_getsrval64(addr64: u64) -> (Status, u64) {
        pure(Service::AsGetsrval64, [addr64, 0, 0, 0, 0, 0])
    }

    /// `as_puth64(addr64, vmhandle)`: the status.
    pub fn as_puth64(addr64: u64, handle: u64) -> (Status, u64) {
        pure(Service::AsPuth64, [addr64, handle, 0, 0, 0, 0])
    }

    /// `io_det(eaddr)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`vm_det`].
    pub unsafe fn io_det(eaddr: u64) -> (Status, u64) {
        // SAFETY: the caller gives up the region.
        unsafe { call(Service::IoDet, [eaddr, 0, 0, 0, 0, 0]) }
    }

    /// `vm_move(vmid, offset, limit, rw, uio)`: the status and the bytes moved.
    ///
    /// # Safety
    ///
    /// As for [`aix::raw::uiomove`](crate::aix::raw::uiomove); with
    /// `UIO_WRITE` the object's bytes also change under any reference to them.
    pub unsafe fn vm_move(vmid: u64, offset: u64, limit: u64, rw: u64, uio: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for the uio, its buffers and the object's bytes.
        unsafe { call(Service::VmMove, [vmid, offset, limit, rw, uio, 0]) }
    }

    /// `getadsp()`: the status and the current process's address-space pointer.
    pub fn getadsp() -> (Status, u64) {
        pure(Service::Getadsp, [0; 6])
    }

    /// `as_att(adspacep, vmhandle, offset)`: the status and the address.
    pub fn as_att(adspacep: u64, handle: u64, offset: u64) -> (Status, u64) {
        pure(Service::AsAtt, [adspacep, handle, offset, 0, 0, 0])
    }

    /// `as_det(adspacep, eaddr)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`vm_det`].
    pub unsafe fn as_det(adspacep: u64, eaddr: u64) -> (Status, u64) {
        // SAFETY: the caller gives up the region.
        unsafe { call(Service::AsDet, [adspacep, eaddr, 0, 0, 0, 0]) }
    }

    /// `as_seth(adspacep, vmhandle, addr)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`as_seth64`].
    pub unsafe fn as_seth(adspacep: u64, handle: u64, addr: u64) -> (Status, u64) {
        // SAFETY: the caller gives up what the region mapped.
        unsafe { call(Service::AsSeth, [adspacep, handle, addr, 0, 0, 0]) }
    }

    /// `as_geth(adspacep, addr)`: the status and the handle.
    pub fn as_geth(adspacep: u64, addr: u64) -> (Status, u64) {
        pure(Service::AsGeth, [adspacep, addr, 0, 0, 0, 0])
    }

    /// `as_getsrval(adspacep, addr)`: the status and the handle.
    pub fn as_getsrval(adspacep: u64, addr: u64) -> (Status, u64) {
        pure(Service::AsGetsrval, [adspacep, addr, 0, 0, 0, 0])
    }

    /// `as_puth(adspacep, vmhandle)`: the status.
    pub fn as_puth(adspacep: u64, handle: u64) -> (Status, u64) {
        pure(Service::AsPuth, [adspacep, handle, 0, 0, 0, 0])
    }

    /// `vm_mount(type, strategy, nbufstr)`: the status.
    pub fn vm_mount(kind: u64, strategy: u64, nbufstr: u64) -> (Status, u64) {
        pure(Service::VmMount, [kind, strategy, nbufstr, 0, 0, 0])
    }

    /// `vm_umount(type, strategy)`: the status.
    pub fn vm_umount(kind: u64, strategy: u64) -> (Status, u64) {
        pure(Service::VmUmount, [kind, strategy, 0, 0, 0, 0])
    }

    /// `vm_write(vaddr, nbytes, force)`: the status. The pages' contents
    /// stay what they are: a page-out, and the page-in a later touch makes,
    /// keep every byte.
    pub fn vm_write(vaddr: u64, nbytes: u64, force: u64) -> (Status, u64) {
        pure(Service::VmWrite, [vaddr, nbytes, force, 0, 0, 0])
    }

    /// `vm_writep(vmid, pfirst, npages)`: the status.
    pub fn vm_writep(vmid: u64, pfirst: u64, npages: u64) -> (Status, u64) {
        pure(Service::VmWritep, [vmid, pfirst, npages, 0, 0, 0])
    }

    /// `vms_iowait(vmid)`: the status.
    pub fn vms_iowait(vmid: u64) -> (Status, u64) {
        pure(Service::VmsIowait, [vmid, 0, 0, 0, 0, 0])
    }
}

/// An AIX `int` as the register carries it: sign-extended, so that a
/// negative value reaches the VMM as one (and is refused).
fn int(value: i32) -> u64 {
    i64::from(value) as u64
}

/// Creates a client-storage object of `size` bytes (pages with
/// [`V_LARGE`]), zero-filled, and stores its id in `vmid`. `kind` must hold
/// [`V_CLIENT`]; `gnode` is kept as given; `uplim` and `downlim` are
/// ignored, as AIX documents.
pub fn vms_create(vmid: &mut VmId, kind: u64, gnode: u64, size: u64, uplim: i32, downlim: i32) -> Status {
    let (status, value) = raw::vms_create(kind, gnode, size, int(uplim), int(downlim));
    if status == Status::OK {
        *vmid = VmId(value);
    }
    status
}

/// Deletes the object and frees its pages; `EBUSY` (a violation) while a
/// region maps it.
pub fn vms_delete(vmid: VmId) -> Status {
    raw::vms_delete(vmid.0).0
}

/// The handle of `vmid` with `key` ([`VM_KEY_UNLIMITED`] or
/// [`VM_KEY_LIMITED`]: read-only), or [`VmHandle::INVALID`].
pub fn vm_handle(vmid: VmId, key: u64) -> VmHandle {
    match raw::vm_handle(vmid.0, key) {
        (Status::OK, handle) => VmHandle(handle),
        _ => VmHandle::INVALID,
    }
}

/// Maps the object into a free region; the address of `offset` (its bits
/// inside 256 MiB) there, or null for a handle of no live object (a
/// violation). No free region halts the VM.
pub fn vm_att(handle: VmHandle, offset: u64) -> *mut u8 {
    match raw::vm_att(handle.0, offset) {
        (Status::OK, at) => at as *mut u8,
        _ => core::ptr::null_mut(),
    }
}

/// Unmaps the region holding `eaddr`; an address in no `vm_att` region is
/// a violation.
///
/// # Safety
///
/// Nothing may reference the region's memory any more.
pub unsafe fn vm_det(eaddr: *const u8) {
    // SAFETY: the caller gives up the region; AIX's vm_det returns nothing.
    let _ = unsafe { raw::vm_det(eaddr as u64) };
}

/// Drops the contents of the object pages `[vaddr, vaddr + nbytes)`
/// touches, through a `vm_att` region: they read as zeros afterwards.
///
/// # Safety
///
/// The pages' contents change under any reference to them.
pub unsafe fn vm_release(vaddr: *mut u8, nbytes: i32) -> Status {
    // SAFETY: the caller gives up the contents.
    unsafe { raw::vm_release(vaddr as u64, int(nbytes)).0 }
}

/// As [`vm_release`], for pages `pfirst .. pfirst + npages` of the object.
///
/// # Safety
///
/// As for [`vm_release`].
pub unsafe fn vm_releasep(vmid: VmId, pfirst: i32, npages: i32) -> Status {
    // SAFETY: the caller gives up the contents.
    unsafe { raw::vm_releasep(vmid.0, int(pfirst), int(npages)).0 }
}

/// Whether a page of the object was stored to since it was made or
/// released (false for a vmid the VMM refuses).
pub fn vm_qmodify(vmid: VmId) -> bool {
    raw::vm_qmodify(vmid.0) == (Status::OK, 1)
}

/// Sets the storage protect key ([`FILEKEY`] or [`RDONLY`]) of the existing
/// pages `pfirst .. pfirst + npages`; a store to a read-only page faults.
pub fn vm_protectp(vmid: VmId, pfirst: i32, npages: i32, key: u64) -> Status {
    raw::vm_protectp(vmid.0, int(pfirst), int(npages), key).0
}

/// Makes page `pno` of the object exist without reading it in: a new page
/// holds [`VM_MAKEP_POISON`] until the caller overwrites it.
pub fn vm_makep(vmid: VmId, pno: i32) -> Status {
    raw::vm_makep(vmid.0, int(pno)).0
}

/// Writes back the cache lines of a kernel range: nothing to do on x86,
/// whose caches are coherent; a range outside kernel memory is a violation.
pub fn vm_cflush(eaddr: *const u8, nbytes: i32) {
    let _ = raw::vm_cflush(eaddr as u64, int(nbytes));
}

/// Maps the device window an [`io_handle`] names into a free region; the
/// address of `offset` there, or null for a window outside the device
/// window (a violation). No free region halts the VM.
pub fn io_att(iohandle: u64, offset: u64) -> *mut u8 {
    match raw::io_att(iohandle, offset) {
        (Status::OK, at) => at as *mut u8,
        _ => core::ptr::null_mut(),
    }
}

/// Unmaps the region holding `eaddr` (mapped by [`io_att`]).
///
/// # Safety
///
/// Nothing may reference the region any more.
pub unsafe fn io_det(eaddr: *const u8) {
    // SAFETY: the caller gives up the region; AIX's io_det returns nothing.
    let _ = unsafe { raw::io_det(eaddr as u64) };
}

/// Maps the object into a free region of the current process (the top
/// 4 GiB of its user half); the address of `offset` there (its bits inside
/// 256 MiB), or 0 (AIX's NULL) for no current process, no free region
/// (`ENOMEM`) or a handle of no live object (a violation).
pub fn as_att64(handle: VmHandle, offset: i32) -> u64 {
    match raw::as_att64(handle.0, u64::from(offset as u32)) {
        (Status::OK, at) => at,
        _ => 0,
    }
}

/// Unmaps the current process's region holding `addr64`; `EINVAL` for an
/// address in no mapped region.
///
/// # Safety
///
/// Nothing may reference the region's memory any more.
pub unsafe fn as_det64(addr64: u64) -> Status {
    // SAFETY: the caller gives up the region.
    unsafe { raw::as_det64(addr64).0 }
}

/// Maps the object into the current process's region holding `addr64`,
/// replacing what it mapped; `EINVAL` for an address outside the regions.
///
/// # Safety
///
/// What the region mapped before may no longer be referenced.
pub unsafe fn as_seth64(addr64: u64, handle: VmHandle) -> Status {
    // SAFETY: the caller gives up what the region mapped.
    unsafe { raw::as_seth64(addr64, handle.0).0 }
}

/// The handle of the object mapped at `addr64` in the current process,
/// which cannot be deleted until [`as_puth64`]; [`VmHandle::INVALID`] for an
/// address in no mapped region.
pub fn as_geth64(addr64: u64) -> VmHandle {
    match raw::as_geth64(addr64) {
        (Status::OK, handle) => VmHandle(handle),
        _ => VmHandle::INVALID,
    }
}

/// As [`as_geth64`], without the protection (never [`as_puth64`] it).
pub fn as_getsrval64(addr64: u64) -> VmHandle {
    match raw::as_getsrval64(addr64) {
        (Status::OK, handle) => VmHandle(handle),
        _ => VmHandle::INVALID,
    }
}

/// Ends the protection [`as_geth64`] at `addr64` took, once the object is
/// detached there.
pub fn as_puth64(addr64: u64, handle: VmHandle) -> Status {
    raw::as_puth64(addr64, handle.0).0
}

/// Moves up to `limit` bytes between the object at `offset` and the buffers
/// of `uio`: [`UIO_READ`] copies the object into them, [`UIO_WRITE`] out of
/// them into the object, as `uiomove` does with a kernel buffer (the VMM
/// advances the iovecs and `uio` by what moved). A page the object lacks
/// reads as zeros, and a write makes it. `limit` ≤ 0 moves nothing. Returns
/// `OK`, `EFAULT` (past 256 MiB, a read-only page written, a bad user
/// byte), `ENOMEM` or `EINVAL`.
///
/// # Safety
///
/// `uio.iov` must point to `uio.iovcnt` writable iovecs, and the buffers
/// must be valid for what `rw` does to them; with [`UIO_WRITE`] the
/// object's bytes change under any reference to them.
pub unsafe fn vm_move(vmid: VmId, offset: u64, limit: i32, rw: u64, uio: &mut Uio) -> Status {
    // SAFETY: the caller vouches for the iovecs, buffers and object bytes;
    // `uio` is a live exclusive reference, which the VMM updates in place.
    unsafe { raw::vm_move(vmid.0, offset, int(limit), rw, uio as *mut Uio as u64).0 }
}

/// The current process's address space, for the 32-bit `as_*` services;
/// [`AdSpace::NULL`] with no current process.
pub fn getadsp() -> AdSpace {
    match raw::getadsp() {
        (Status::OK, adspacep) => AdSpace(adspacep),
        _ => AdSpace::NULL,
    }
}

/// Maps the object into a free region of `adspacep` (current or not); the
/// address of `offset` there (its bits inside 256 MiB), or null when no
/// region is free or the call is refused.
pub fn as_att(adspacep: AdSpace, handle: VmHandle, offset: u64) -> *mut u8 {
    match raw::as_att(adspacep.0, handle.0, offset) {
        (Status::OK, at) => at as *mut u8,
        _ => core::ptr::null_mut(),
    }
}

/// Unmaps the region of `adspacep` holding `eaddr`; `EINVAL` for an address
/// in no mapped region.
///
/// # Safety
///
/// Nothing may reference the region's memory any more.
pub unsafe fn as_det(adspacep: AdSpace, eaddr: *const u8) -> Status {
    // SAFETY: the caller gives up the region.
    unsafe { raw::as_det(adspacep.0, eaddr as u64).0 }
}

/// Maps the object into the region of `adspacep` holding `addr`, replacing
/// what it mapped; an address outside the regions is a violation.
///
/// # Safety
///
/// What the region mapped before may no longer be referenced.
pub unsafe fn as_seth(adspacep: AdSpace, handle: VmHandle, addr: *const u8) {
    // SAFETY: the caller gives up what the region mapped; AIX's as_seth returns nothing.
    let _ = unsafe { raw::as_seth(adspacep.0, handle.0, addr as u64) };
}

/// The handle of the object mapped at `addr` in `adspacep`, which cannot be
/// deleted until [`as_puth`]; [`VmHandle::INVALID`] when refused (an address
/// in no mapped region is a violation).
pub fn as_geth(adspacep: AdSpace, addr: *const u8) -> VmHandle {
    match raw::as_geth(adspacep.0, addr as u64) {
        (Status::OK, handle) => VmHandle(handle),
        _ => VmHandle::INVALID,
    }
}

/// As [`as_geth`], without the protection (never [`as_puth`] it); also at
/// interrupt level.
pub fn as_getsrval(adspacep: AdSpace, addr: *const u8) -> VmHandle {
    match raw::as_getsrval(adspacep.0, addr as u64) {
        (Status::OK, handle) => VmHandle(handle),
        _ => VmHandle::INVALID,
    }
}

/// Ends a protection [`as_geth`] took in `adspacep` on the handle's
/// object, once a region where it was taken no longer maps the object.
pub fn as_puth(adspacep: AdSpace, handle: VmHandle) {
    // AIX's as_puth returns nothing; its misuse is a violation.
    let _ = raw::as_puth(adspacep.0, handle.0);
}

/// Adds a paging device named by `strategy` (the strategy routine, never
/// called: the VMM's pager does the I/O) with `nbufstr` bufs; `kind` must be
/// [`D_REMOTE`].
pub fn vm_mount(kind: u64, strategy: u64, nbufstr: i32) -> Status {
    raw::vm_mount(kind, strategy, int(nbufstr)).0
}

/// Brings every page that is out on the device `strategy` names back in,
/// then removes it.
pub fn vm_umount(kind: u64, strategy: u64) -> Status {
    raw::vm_umount(kind, strategy).0
}

/// Starts the page-out of the modified object pages `[vaddr, vaddr +
/// nbytes)` touches, through a region; `force` is accepted and changes
/// nothing (every page-out is made at once).
pub fn vm_write(vaddr: *const u8, nbytes: i32, force: i32) -> Status {
    raw::vm_write(vaddr as u64, int(nbytes), int(force)).0
}

/// As [`vm_write`], for pages `pfirst .. pfirst + npages` of the object.
pub fn vm_writep(vmid: VmId, pfirst: i32, npages: i32) -> Status {
    raw::vm_writep(vmid.0, int(pfirst), int(npages)).0
}

/// Waits for the object's page-outs: [`Status::EIO`] if one failed since
/// the last wait.
pub fn vms_iowait(vmid: VmId) -> Status {
    raw::vms_iowait(vmid.0).0
}
