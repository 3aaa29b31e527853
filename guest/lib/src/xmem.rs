//! AIX cross-memory services (group `0x05`): one function per service, named
//! as AIX names it, with AIX's argument order.
//!
//! A driver that must reach a buffer outside the context it runs in — a
//! user buffer from interrupt level, or any buffer a device moves data to —
//! *attaches* it first ([`xmattach`], under the process that owns it), which
//! fills a cross-memory descriptor ([`Xmem`]). With the descriptor it copies
//! to and from the buffer from any context ([`xmemin`], [`xmemout`]), pins it
//! ([`xmempin`]), and hands its pages to a device ([`xmemdma`] with
//! [`XMEM_HIDE`], which returns the page's real address for the device, and
//! [`XMEM_UNHIDE`] when the device is done). [`xmdetach`] ends the attachment.
//!
//! | AIX type | here |
//! |---|---|
//! | `caddr_t` buffer address (user or kernel, by `segflag`) | `u64` |
//! | `caddr_t` kernel buffer of `xmemin`/`xmemout` | `*mut u8` / `*const u8` |
//! | `int` count | `u64` (at most `i32::MAX`) |
//! | `struct xmem *dp` | [`&mut Xmem`](Xmem) where the VMM writes it, [`&Xmem`](Xmem) where it reads it |
//! | `int` error return | `Result<(), Status>` (`Err` carries the errno) |
//! | `xmemdma`'s real address (`XMEM_FAIL` on failure) | `Result<u64, Status>` |
//!
//! The VMM answers every call with a status in `rax` and a value in `rdx`;
//! the [`raw`] module returns both, for every service, with full 64-bit
//! arguments, so that a conformance test can send what the typed functions
//! cannot express (a forged descriptor pointer, a bad kernel address).
//!
//! Every function returns `Ok` or the status the VMM answered. A *violation*
//! (misuse AIX forbids without an error return) is recorded in the report and
//! the call still answers the status shown:
//!
//! | call | statuses | violations |
//! |---|---|---|
//! | [`xmattach`], [`xmattach64`] | `EINVAL` (`segflag` not [`USER_ADSPACE`]/[`SYS_ADSPACE`], `count` 0 or above `i32::MAX`, a wrapping range); `EFAULT` (a user range not mapped in the current process or, for `xmattach`, ending above 4 GiB; a kernel range not mapped; `dp` not 40 writable kernel bytes) | at interrupt level, or [`USER_ADSPACE`] without a current process (`EPERM`) |
//! | [`xmdetach`] | `EFAULT` (`dp` unreadable); `EINVAL` (a descriptor that never named an attachment) | a stale descriptor, already detached (`EINVAL`); pages still hidden through it (`EBUSY`) |
//! | [`xmemin`], [`xmemout`] | `EFAULT` (the range leaves the attached buffer; `kaddr` not mapped kernel memory); `EINVAL` (`count` above `i32::MAX`, a bad descriptor) | at interrupt level with a page of either buffer not resident (`EPERM`) |
//! | [`xmemdma`], [`xmemdma64`] | `EFAULT` (`xaddr` outside the attached buffer); `EINVAL` (unknown flags, a bad descriptor) | [`XMEM_HIDE`] of a page not pinned, [`XMEM_UNHIDE`] of a page not hidden (`EINVAL`) |
//! | [`xmemdma_pages`] | as [`xmemdma`], and `EINVAL` for 0 or more than [`XMEMDMA_MAX_PAGES`] pages or flags other than hide/unhide | as [`xmemdma`] |
//! | [`xmempin`], [`xmemunpin`] | `EFAULT` (outside the attached buffer); `EINVAL` (unpin below zero, a bad descriptor) | none |
//!
//! While a buffer is attached its memory cannot be freed (`xmfree`,
//! `vm_release_*_memory`, `process_destroy`: a violation and `EBUSY`), and
//! attachments still attached or pages still hidden when the guest exits are
//! violations. A vCPU that touches a hidden page stalls until it is
//! unhidden, and each such stall is a violation (`hidden-page`); when every
//! running vCPU stalls that way the run ends (`hidden-page-deadlock`, exit
//! status 75). `docs/ABI.md` has the rules in full.

use kmemvisor_abi::{Service, Status};

pub use kmemvisor_abi::xmem::{
    SYS_ADSPACE, USER_ADSPACE, XMEM_ACC_CHK, XMEM_FAIL, XMEM_HIDE, XMEM_SIZE, XMEM_UNHIDE, XMEM_WRITE_ONLY, XMEMDMA_MAX_PAGES,
    Xmem,
};

/// The raw calls: every service with 64-bit arguments, returning the status
/// the VMM put in `rax` and the value in `rdx`. Nothing is narrowed or
/// checked.
pub mod raw {
    use super::*;

    use crate::hypercall::call_status as call;

    /// `xmattach(addr, count, dp, segflag)`: the status.
    ///
    /// # Safety
    ///
    /// `dp` must be valid for a 40-byte write (or an address the VMM refuses).
    pub unsafe fn xmattach(addr: u64, count: u64, dp: u64, segflag: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `dp`.
        unsafe { call(Service::Xmattach, [addr, count, dp, segflag, 0, 0]) }
    }

    /// `xmattach64(addr, count, dp, segflag)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`xmattach`].
    pub unsafe fn xmattach64(addr: u64, count: u64, dp: u64, segflag: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `dp`.
        unsafe { call(Service::Xmattach64, [addr, count, dp, segflag, 0, 0]) }
    }

    /// `xmdetach(dp)`: the status.
    ///
    /// # Safety
    ///
    /// The VMM zeroes the descriptor's handle on success: `dp` must be valid
    /// for that write.
    pub unsafe fn xmdetach(dp: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `dp`.
        unsafe { call(Service::Xmdetach, [dp, 0, 0, 0, 0, 0]) }
    }

    /// `xmemin(uaddr, kaddr, count, dp)`: the status.
    ///
    /// # Safety
    ///
    /// `kaddr` must be valid for `count` bytes of writes (or an address the
    /// VMM refuses).
    pub unsafe fn xmemin(uaddr: u64, kaddr: u64, count: u64, dp: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `kaddr`.
        unsafe { call(Service::Xmemin, [uaddr, kaddr, count, dp, 0, 0]) }
    }

    /// `xmemout(kaddr, uaddr, count, dp)`: the status.
    ///
    /// # Safety
    ///
    /// Nothing may hold a reference to the attached memory at `uaddr` across
    /// the call.
    pub unsafe fn xmemout(kaddr: u64, uaddr: u64, count: u64, dp: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for the attached memory.
        unsafe { call(Service::Xmemout, [kaddr, uaddr, count, dp, 0, 0]) }
    }

    /// `xmemdma(dp, xaddr, flags)`: the status and the real address.
    pub fn xmemdma(dp: u64, xaddr: u64, flags: u64) -> (Status, u64) {
        // SAFETY: the VMM only reads the descriptor; hiding a page changes no
        // memory (a vCPU that touches it waits).
        unsafe { call(Service::Xmemdma, [dp, xaddr, flags, 0, 0, 0]) }
    }

    /// `xmemdma64(dp, xaddr, flags)`: the status and the real address.
    pub fn xmemdma64(dp: u64, xaddr: u64, flags: u64) -> (Status, u64) {
        // SAFETY: as for `xmemdma`.
        unsafe { call(Service::Xmemdma64, [dp, xaddr, flags, 0, 0, 0]) }
    }

    /// `xmempin(uaddr, count, dp)`: the status.
    pub fn xmempin(uaddr: u64, count: u64, dp: u64) -> (Status, u64) {
        // SAFETY: pinning changes pin counts only.
        unsafe { call(Service::Xmempin, [uaddr, count, dp, 0, 0, 0]) }
    }

    /// `xmemunpin(uaddr, count, dp)`: the status.
    pub fn xmemunpin(uaddr: u64, count: u64, dp: u64) -> (Status, u64) {
        // SAFETY: as for `xmempin`.
        unsafe { call(Service::Xmemunpin, [uaddr, count, dp, 0, 0, 0]) }
    }

    /// `xmemdma_pages(dp, xaddr, pages, flags, real_addrs)`: the status and
    /// the pages handled.
    ///
    /// # Safety
    ///
    /// `real_addrs`, when not 0, must be valid for `pages` 8-byte writes (or
    /// an address the VMM refuses).
    pub unsafe fn xmemdma_pages(dp: u64, xaddr: u64, pages: u64, flags: u64, real_addrs: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `real_addrs`.
        unsafe { call(Service::XmemdmaPages, [dp, xaddr, pages, flags, real_addrs, 0]) }
    }
}

/// A descriptor as the argument register carries it.
fn at(dp: &Xmem) -> u64 {
    dp as *const Xmem as u64
}

/// `Ok(value)` for `OK`, the status otherwise.
fn result((status, value): (Status, u64)) -> Result<u64, Status> {
    match status {
        Status::OK => Ok(value),
        status => Err(status),
    }
}

/// Attaches the `count` bytes at `addr` for cross-memory moves and fills
/// `dp`. With [`USER_ADSPACE`] the buffer is user memory of the current
/// process, below 4 GiB (the call must run under that process); with
/// [`SYS_ADSPACE`] it is kernel memory. The descriptor gets a handle (never
/// 0), a tag, the process (0 for kernel memory), the base and the length.
/// Statuses: see the [module](self) table.
pub fn xmattach(addr: u64, count: u64, dp: &mut Xmem, segflag: u64) -> Result<(), Status> {
    // SAFETY: `dp` is a live exclusive reference to 40 bytes.
    result(unsafe { raw::xmattach(addr, count, dp as *mut Xmem as u64, segflag) }).map(drop)
}

/// [`xmattach`] of a user buffer anywhere in the user range.
pub fn xmattach64(addr: u64, count: u64, dp: &mut Xmem, segflag: u64) -> Result<(), Status> {
    // SAFETY: as in `xmattach`.
    result(unsafe { raw::xmattach64(addr, count, dp as *mut Xmem as u64, segflag) }).map(drop)
}

/// Ends the attachment `dp` names and zeroes its handle. Allowed at
/// interrupt level. Every page hidden through it must have been unhidden
/// first (else a violation and `EBUSY`); a descriptor already detached is a
/// violation and `EINVAL`.
pub fn xmdetach(dp: &mut Xmem) -> Result<(), Status> {
    // SAFETY: `dp` is a live exclusive reference.
    result(unsafe { raw::xmdetach(dp as *mut Xmem as u64) }).map(drop)
}

/// Copies `count` bytes at `uaddr` of the attached space (the attached
/// process's memory, whatever process this vCPU runs) to kernel memory at
/// `kaddr`. At interrupt level every page of both buffers must be resident
/// (pinned, on the pinned heap, or DG/UX-wired).
///
/// # Safety
///
/// `kaddr` must be valid for `count` bytes of writes.
pub unsafe fn xmemin(uaddr: u64, kaddr: *mut u8, count: u64, dp: &Xmem) -> Result<(), Status> {
    // SAFETY: the caller vouches for `kaddr`; `dp` is live and only read.
    result(unsafe { raw::xmemin(uaddr, kaddr as u64, count, at(dp)) }).map(drop)
}

/// Copies `count` bytes from kernel memory at `kaddr` to `uaddr` of the
/// attached space: the reverse of [`xmemin`], with its rules.
///
/// # Safety
///
/// Nothing may hold a reference to the attached memory at `uaddr` across the
/// call.
pub unsafe fn xmemout(kaddr: *const u8, uaddr: u64, count: u64, dp: &Xmem) -> Result<(), Status> {
    // SAFETY: the caller vouches for the attached memory; `dp` is only read.
    result(unsafe { raw::xmemout(kaddr as u64, uaddr, count, at(dp)) }).map(drop)
}

/// Prepares the page at `xaddr` of the attached buffer for DMA and returns
/// the real (guest-physical) address of `xaddr`, which a device takes.
///
/// - [`XMEM_HIDE`]: the page must be pinned in the attached space; it is
///   hidden from every vCPU (hides nest) until as many [`XMEM_UNHIDE`]s.
/// - [`XMEM_UNHIDE`]: one hide less.
/// - [`XMEM_ACC_CHK`], optionally with [`XMEM_WRITE_ONLY`]: only the real
///   address; nothing is hidden.
///
/// Allowed at interrupt level.
pub fn xmemdma(dp: &Xmem, xaddr: u64, flags: u64) -> Result<u64, Status> {
    result(raw::xmemdma(at(dp), xaddr, flags))
}

/// [`xmemdma`] with a 64-bit real address.
pub fn xmemdma64(dp: &Xmem, xaddr: u64, flags: u64) -> Result<u64, Status> {
    result(raw::xmemdma64(at(dp), xaddr, flags))
}

/// Pins `count` bytes at `uaddr` of the attached space (page by page, as
/// `pinu` does for the attached process).
pub fn xmempin(uaddr: u64, count: u64, dp: &Xmem) -> Result<(), Status> {
    result(raw::xmempin(uaddr, count, at(dp))).map(drop)
}

/// Unpins what [`xmempin`] pinned (`EINVAL` below zero, nothing changes).
pub fn xmemunpin(uaddr: u64, count: u64, dp: &Xmem) -> Result<(), Status> {
    result(raw::xmemunpin(uaddr, count, at(dp))).map(drop)
}

/// [`xmemdma64`] with [`XMEM_HIDE`] or [`XMEM_UNHIDE`] for `pages`
/// consecutive pages from `xaddr`'s page, all or none. Each page's real
/// address goes to `real_addrs[i]` when `real_addrs` is not empty. Returns
/// the number of pages.
///
/// A non-empty `real_addrs` shorter than `pages` is refused here with
/// `EINVAL`, without a call: the VMM would write past its end.
pub fn xmemdma_pages(dp: &Xmem, xaddr: u64, pages: u64, flags: u64, real_addrs: &mut [u64]) -> Result<u64, Status> {
    let out = if real_addrs.is_empty() {
        0
    } else if (real_addrs.len() as u64) < pages {
        return Err(Status::EINVAL);
    } else {
        real_addrs.as_mut_ptr() as u64
    };
    // SAFETY: `out` is 0 or a live exclusive slice of at least `pages` u64s.
    result(unsafe { raw::xmemdma_pages(at(dp), xaddr, pages, flags, out) })
}
