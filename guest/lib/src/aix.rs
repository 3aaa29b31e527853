//! AIX kernel services: memory management (heaps), memory pinning and user
//! memory access (groups `0x01`–`0x03`), one function per service, named as
//! AIX names it, with AIX's argument order.
//!
//! | AIX type | here |
//! |---|---|
//! | `heapaddr_t` | [`Heap`] |
//! | `caddr_t` (kernel) | `*mut u8` / `*const u8` |
//! | `caddr_t` (user, plain variants) | `*mut u8` / `*const u8` (must lie below 4 GiB) |
//! | `unsigned long long` (user, `*64` variants) | `u64` |
//! | `int`/`uint` sizes | `usize` (`u32` for `copyinstr`'s `max` and `*actual`) |
//! | `int` error return | [`Status`] ([`Status::OK`] for 0, else the errno) |
//! | `enum uio_rw` | [`UIO_READ`] / [`UIO_WRITE`] (`u64`) |
//! | `struct uio`, `struct iovec` | [`Uio`], [`IoVec`] |
//!
//! Return conventions follow AIX: [`xmalloc`] returns the pointer or null,
//! [`xmfree`] returns 0 or -1, [`fubyte`]/[`fuword`] the datum or -1,
//! [`subyte`]/[`suword`]/[`uwritec`] 0 (or the character) or -1, and the
//! services that AIX gives an `int` errno result ([`init_heap`] aside) return
//! it as a [`Status`]. The VMM answers every call with a status in `rax` and a
//! value in `rdx`: the [`raw`] module returns both, for every service, with
//! full 64-bit arguments, so that a conformance test can check each refusal.
//!
//! Semantics in short:
//!
//! - **Heaps**: [`KERNEL_HEAP`] (pageable) and [`PINNED_HEAP`] exist from
//!   boot; [`init_heap`] makes a heap of a mapped, writable kernel region.
//!   Allocations are zero-filled and aligned to `1 << align_log2`. A double
//!   free is a violation; a pointer not from the heap is refused quietly.
//!   Allocations still live at exit are violations.
//! - **Pinning**: per-page pin counts on kernel memory ([`pin`], [`unpin`]),
//!   on user or kernel memory by segment flag ([`pinu`], [`unpinu`]), and on
//!   the code and data of a loaded object: the image or a guest module
//!   ([`pincode`], [`unpincode`], one count per object).
//!   Pages still pinned at exit are violations.
//! - **User memory access**: only in process context (see
//!   [`process`](crate::process)). At interrupt level each call is a
//!   violation and `EFAULT`; without a current process it is `EFAULT`. A bad
//!   user address is `EFAULT`; a bad kernel address is a violation and
//!   `EFAULT`. Copies stop at the first bad user byte.

use kmemvisor_abi::{Service, Status};

pub use kmemvisor_abi::aix::{
    IoVec, KERNEL_HEAP, PINNED_HEAP, UIO_MAXIOV, UIO_READ, UIO_SYSSPACE, UIO_USERISPACE, UIO_USERSPACE, UIO_WRITE, Uio,
    XMALLOC_MAX_ALIGN_LOG2,
};

/// A heap handle (AIX `heapaddr_t`): [`Heap::KERNEL`], [`Heap::PINNED`] or
/// what [`init_heap`] returned.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Heap(pub u64);

impl Heap {
    /// AIX `kernel_heap`: the pageable kernel heap.
    pub const KERNEL: Heap = Heap(KERNEL_HEAP);
    /// AIX `pinned_heap`: the pinned kernel heap.
    pub const PINNED: Heap = Heap(PINNED_HEAP);
}

/// The raw calls: every service with 64-bit arguments, returning the status
/// the VMM put in `rax` and the value in `rdx`. Nothing is narrowed or
/// checked, so a test can send what the typed functions cannot express.
pub mod raw {
    use super::*;

    use crate::hypercall::call_status as call;

    /// Makes a call that writes no guest memory.
    fn pure(service: Service, args: [u64; 6]) -> (Status, u64) {
        // SAFETY: callers pass only services that read or write no guest
        // memory the caller may use (pin counts, fresh allocations, reads).
        unsafe { call(service, args) }
    }

    // ---- memory management ----

    /// `init_heap(area, size, flags)`: the status and the new heap's handle.
    ///
    /// # Safety
    ///
    /// On success the region belongs to the heap: the VMM writes it when it
    /// zero-fills allocations, and nothing else may use it.
    pub unsafe fn init_heap(area: u64, size: u64, flags: u64) -> (Status, u64) {
        // SAFETY: the caller gives the region up.
        unsafe { call(Service::InitHeap, [area, size, flags, 0, 0, 0]) }
    }

    /// `xmalloc(size, align_log2, heap)`: the status and the pointer (0 on
    /// failure).
    pub fn xmalloc(size: u64, align_log2: u64, heap: u64) -> (Status, u64) {
        // A boot heap's allocations are fresh pages; an `init_heap` heap's
        // lie in the region its caller gave up.
        pure(Service::Xmalloc, [size, align_log2, heap, 0, 0, 0])
    }

    /// `xmfree(ptr, heap)`: the status.
    ///
    /// # Safety
    ///
    /// When the free succeeds the memory is gone (pages with no other live
    /// allocation are unmapped): nothing may use it afterwards.
    pub unsafe fn xmfree(ptr: u64, heap: u64) -> (Status, u64) {
        // SAFETY: the caller gives the memory up.
        unsafe { call(Service::Xmfree, [ptr, heap, 0, 0, 0, 0]) }
    }

    // ---- pinning ----

    /// `pin(addr, length)`: the status.
    pub fn pin(addr: u64, length: u64) -> (Status, u64) {
        pure(Service::Pin, [addr, length, 0, 0, 0, 0])
    }

    /// `unpin(addr, length)`: the status.
    pub fn unpin(addr: u64, length: u64) -> (Status, u64) {
        pure(Service::Unpin, [addr, length, 0, 0, 0, 0])
    }

    /// `pinu(addr, length, segflag)`: the status.
    pub fn pinu(addr: u64, length: u64, segflag: u64) -> (Status, u64) {
        pure(Service::Pinu, [addr, length, segflag, 0, 0, 0])
    }

    /// `unpinu(addr, length, segflag)`: the status.
    pub fn unpinu(addr: u64, length: u64, segflag: u64) -> (Status, u64) {
        pure(Service::Unpinu, [addr, length, segflag, 0, 0, 0])
    }

    /// `pincode(function)`: the status.
    pub fn pincode(function: u64) -> (Status, u64) {
        pure(Service::Pincode, [function, 0, 0, 0, 0, 0])
    }

    /// `unpincode(function)`: the status.
    pub fn unpincode(function: u64) -> (Status, u64) {
        pure(Service::Unpincode, [function, 0, 0, 0, 0, 0])
    }

    // ---- user memory access ----

    /// `copyin(uaddr, kaddr, count)`: the status and the bytes copied.
    ///
    /// # Safety
    ///
    /// `kaddr` must be valid for `count` bytes of writes (or a kernel address
    /// the VMM refuses, a violation).
    pub unsafe fn copyin(uaddr: u64, kaddr: u64, count: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `kaddr`.
        unsafe { call(Service::Copyin, [uaddr, kaddr, count, 0, 0, 0]) }
    }

    /// `copyin64(uaddr, kaddr, count)`: the status and the bytes copied.
    ///
    /// # Safety
    ///
    /// As for [`copyin`].
    pub unsafe fn copyin64(uaddr: u64, kaddr: u64, count: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `kaddr`.
        unsafe { call(Service::Copyin64, [uaddr, kaddr, count, 0, 0, 0]) }
    }

    /// `copyout(kaddr, uaddr, count)`: the status and the bytes copied.
    ///
    /// # Safety
    ///
    /// The user memory at `uaddr` may be referenced by the guest: nothing may
    /// hold a reference to it across the call.
    pub unsafe fn copyout(kaddr: u64, uaddr: u64, count: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `uaddr`.
        unsafe { call(Service::Copyout, [kaddr, uaddr, count, 0, 0, 0]) }
    }

    /// `copyout64(kaddr, uaddr, count)`: the status and the bytes copied.
    ///
    /// # Safety
    ///
    /// As for [`copyout`].
    pub unsafe fn copyout64(kaddr: u64, uaddr: u64, count: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `uaddr`.
        unsafe { call(Service::Copyout64, [kaddr, uaddr, count, 0, 0, 0]) }
    }

    /// `copyinstr(uaddr, kaddr, max, actual_ptr)`: the status and the length
    /// copied, NUL included.
    ///
    /// # Safety
    ///
    /// `kaddr` must be valid for `max` bytes of writes and `actual_ptr`, when
    /// not 0, for the store of the length.
    pub unsafe fn copyinstr(uaddr: u64, kaddr: u64, max: u64, actual_ptr: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `kaddr` and `actual_ptr`.
        unsafe { call(Service::Copyinstr, [uaddr, kaddr, max, actual_ptr, 0, 0]) }
    }

    /// `copyinstr64(uaddr, kaddr, max, actual_ptr)`: as [`copyinstr`].
    ///
    /// # Safety
    ///
    /// As for [`copyinstr`].
    pub unsafe fn copyinstr64(uaddr: u64, kaddr: u64, max: u64, actual_ptr: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `kaddr` and `actual_ptr`.
        unsafe { call(Service::Copyinstr64, [uaddr, kaddr, max, actual_ptr, 0, 0]) }
    }

    /// `fubyte(uaddr)`: the status and the byte.
    pub fn fubyte(uaddr: u64) -> (Status, u64) {
        pure(Service::Fubyte, [uaddr, 0, 0, 0, 0, 0])
    }

    /// `fubyte64(uaddr)`: the status and the byte.
    pub fn fubyte64(uaddr: u64) -> (Status, u64) {
        pure(Service::Fubyte64, [uaddr, 0, 0, 0, 0, 0])
    }

    /// `fuword(uaddr)`: the status and the 32-bit word.
    pub fn fuword(uaddr: u64) -> (Status, u64) {
        pure(Service::Fuword, [uaddr, 0, 0, 0, 0, 0])
    }

    /// `fuword64(uaddr)`: the status and the 32-bit word.
    pub fn fuword64(uaddr: u64) -> (Status, u64) {
        pure(Service::Fuword64, [uaddr, 0, 0, 0, 0, 0])
    }

    /// `subyte(uaddr, byte)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`copyout`].
    pub unsafe fn subyte(uaddr: u64, byte: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `uaddr`.
        unsafe { call(Service::Subyte, [uaddr, byte, 0, 0, 0, 0]) }
    }

    /// `subyte64(uaddr, byte)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`copyout`].
    pub unsafe fn subyte64(uaddr: u64, byte: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `uaddr`.
        unsafe { call(Service::Subyte64, [uaddr, byte, 0, 0, 0, 0]) }
    }

    /// `suword(uaddr, word)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`copyout`].
    pub unsafe fn suword(uaddr: u64, word: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `uaddr`.
        unsafe { call(Service::Suword, [uaddr, word, 0, 0, 0, 0]) }
    }

    /// `suword64(uaddr, word)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`copyout`].
    pub unsafe fn suword64(uaddr: u64, word: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for `uaddr`.
        unsafe { call(Service::Suword64, [uaddr, word, 0, 0, 0, 0]) }
    }

    /// `uiomove(cp, n, rw, uio)`: the status and the bytes moved.
    ///
    /// # Safety
    ///
    /// `uio` must point to a [`Uio`] whose `iov` points to `iovcnt`
    /// [`IoVec`]s, all writable (the VMM updates them); `cp` and every buffer
    /// must be valid for what the direction does to them.
    pub unsafe fn uiomove(cp: u64, n: u64, rw: u64, uio: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for every pointer.
        unsafe { call(Service::Uiomove, [cp, n, rw, uio, 0, 0]) }
    }

    /// `ureadc(c, uio)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`uiomove`].
    pub unsafe fn ureadc(c: u64, uio: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for the uio.
        unsafe { call(Service::Ureadc, [c, uio, 0, 0, 0, 0]) }
    }

    /// `uwritec(uio)`: the status and the character.
    ///
    /// # Safety
    ///
    /// As for [`uiomove`].
    pub unsafe fn uwritec(uio: u64) -> (Status, u64) {
        // SAFETY: the caller vouches for the uio.
        unsafe { call(Service::Uwritec, [uio, 0, 0, 0, 0, 0]) }
    }
}

/// A pointer as the argument register carries it.
fn addr<T>(ptr: *const T) -> u64 {
    ptr as u64
}

/// The status of a reply.
fn status((status, _): (Status, u64)) -> Status {
    status
}

// ---------------------------------------------------------------- heaps

/// Makes a heap of the `size` bytes at `area` (8-byte aligned, mapped,
/// writable kernel memory, at least 64 bytes, overlapping no other
/// `init_heap` region); `flags` must be 0. Returns the new heap, or `EINVAL`.
///
/// # Safety
///
/// The region belongs to the heap from then on (the VMM zero-fills
/// allocations in it): nothing else may use it.
pub unsafe fn init_heap(area: *mut u8, size: usize, flags: u32) -> Result<Heap, Status> {
    // SAFETY: the caller gives the region up.
    match unsafe { raw::init_heap(addr(area), size as u64, u64::from(flags)) } {
        (Status::OK, handle) => Ok(Heap(handle)),
        (status, _) => Err(status),
    }
}

/// Allocates `size` zero-filled bytes aligned to `1 << align_log2` (at most
/// [`XMALLOC_MAX_ALIGN_LOG2`]) from `heap`. Returns null when the request is
/// refused (size 0, alignment too large, unknown heap: `EINVAL`) or the heap
/// has no room (`ENOMEM`); [`raw::xmalloc`] shows which.
pub fn xmalloc(size: usize, align_log2: u32, heap: Heap) -> *mut u8 {
    match raw::xmalloc(size as u64, u64::from(align_log2), heap.0) {
        (Status::OK, ptr) => ptr as *mut u8,
        _ => core::ptr::null_mut(),
    }
}

/// Frees an allocation of `heap`: 0 on success, -1 when refused (a pointer
/// not allocated from `heap`, quietly; a double free, a violation).
///
/// # Safety
///
/// The memory is gone afterwards: a page with no other live allocation is
/// unmapped, so a later access faults.
pub unsafe fn xmfree(ptr: *mut u8, heap: Heap) -> i32 {
    // SAFETY: the caller gives the memory up.
    match status(unsafe { raw::xmfree(addr(ptr), heap.0) }) {
        Status::OK => 0,
        _ => -1,
    }
}

// ---------------------------------------------------------------- pinning

/// Pins the pages of `[addr, addr + length)` (kernel memory): each page's pin
/// count goes up by one. `EINVAL` for a length of 0 or above `i32::MAX`, a
/// wrapping range, a user address or an unmapped page; `ENOMEM` when 90% of
/// RAM would be pinned.
pub fn pin(addr: *const u8, length: usize) -> Status {
    status(raw::pin(self::addr(addr), length as u64))
}

/// Unpins the pages of `[addr, addr + length)`: `EINVAL` as for [`pin`], and
/// for a page that is not pinned (nothing changes then).
pub fn unpin(addr: *const u8, length: usize) -> Status {
    status(raw::unpin(self::addr(addr), length as u64))
}

/// Pins user ([`UIO_USERSPACE`], [`UIO_USERISPACE`]: the current process's)
/// or system ([`UIO_SYSSPACE`]: as [`pin`]) memory. For user memory: `EFAULT`
/// without a process or for an unmapped page, `EPERM` and a violation at
/// interrupt level. Another `segflag` is `EINVAL`.
pub fn pinu(addr: *const u8, length: usize, segflag: u64) -> Status {
    status(raw::pinu(self::addr(addr), length as u64, segflag))
}

/// Unpins what [`pinu`] pinned. Unpinning user memory at interrupt level is
/// `EPERM` and a violation; system memory may be unpinned there.
pub fn unpinu(addr: *const u8, length: usize, segflag: u64) -> Status {
    status(raw::unpinu(self::addr(addr), length as u64, segflag))
}

/// Pins the code and data pages of the loaded object — the image, or a guest
/// module loaded with `--module` — that contains the code at `function`
/// (`EINVAL` when `function` is in no object's code).
pub fn pincode(function: *const u8) -> Status {
    status(raw::pincode(addr(function)))
}

/// Unpins what a [`pincode`] of the same object pinned (`EINVAL` when that
/// object has no `pincode` outstanding).
pub fn unpincode(function: *const u8) -> Status {
    status(raw::unpincode(addr(function)))
}

// ---------------------------------------------------------------- user memory access

/// Copies `count` bytes from user address `uaddr` (below 4 GiB) of the
/// current process to kernel address `kaddr`: `OK`, or `EFAULT` (the bytes
/// before the first bad user byte are copied). [`raw::copyin`] also gives
/// the count copied.
///
/// # Safety
///
/// `kaddr` must be valid for `count` bytes of writes.
pub unsafe fn copyin(uaddr: *const u8, kaddr: *mut u8, count: usize) -> Status {
    // SAFETY: the caller vouches for `kaddr`.
    status(unsafe { raw::copyin(addr(uaddr), addr(kaddr), count as u64) })
}

/// [`copyin`] from any user address.
///
/// # Safety
///
/// As for [`copyin`].
pub unsafe fn copyin64(uaddr: u64, kaddr: *mut u8, count: usize) -> Status {
    // SAFETY: the caller vouches for `kaddr`.
    status(unsafe { raw::copyin64(uaddr, addr(kaddr), count as u64) })
}

/// Copies `count` bytes from kernel address `kaddr` to user address `uaddr`
/// (below 4 GiB, writable) of the current process: `OK` or `EFAULT`.
///
/// # Safety
///
/// Nothing may hold a reference to the user memory across the call.
pub unsafe fn copyout(kaddr: *const u8, uaddr: *mut u8, count: usize) -> Status {
    // SAFETY: the caller vouches for `uaddr`.
    status(unsafe { raw::copyout(addr(kaddr), addr(uaddr), count as u64) })
}

/// [`copyout`] to any user address.
///
/// # Safety
///
/// As for [`copyout`].
pub unsafe fn copyout64(kaddr: *const u8, uaddr: u64, count: usize) -> Status {
    // SAFETY: the caller vouches for `uaddr`.
    status(unsafe { raw::copyout64(addr(kaddr), uaddr, count as u64) })
}

/// Runs a `copyinstr` variant with the length stored in a local (the VMM may
/// store 4 or 8 bytes), then copies it to `actual`.
fn with_actual(actual: Option<&mut u32>, f: impl FnOnce(u64) -> (Status, u64)) -> Status {
    let mut stored: u64 = 0;
    let (status, _) = match actual {
        Some(_) => f(&mut stored as *mut u64 as u64),
        None => f(0),
    };
    if let Some(actual) = actual {
        *actual = stored as u32;
    }
    status
}

/// Copies a NUL-terminated string from user address `uaddr` (below 4 GiB) to
/// `kaddr`, at most `max` bytes with the NUL, and stores the bytes copied in
/// `actual`. Returns `OK` (the NUL was copied), `ENAMETOOLONG` (no NUL in
/// `max` bytes; `max` copied) or `EFAULT` (a bad user byte).
///
/// # Safety
///
/// `kaddr` must be valid for `max` bytes of writes.
pub unsafe fn copyinstr(uaddr: *const u8, kaddr: *mut u8, max: u32, actual: Option<&mut u32>) -> Status {
    // SAFETY: the caller vouches for `kaddr`; the length goes to a live local.
    with_actual(actual, |ptr| unsafe { raw::copyinstr(addr(uaddr), addr(kaddr), u64::from(max), ptr) })
}

/// [`copyinstr`] from any user address.
///
/// # Safety
///
/// As for [`copyinstr`].
pub unsafe fn copyinstr64(uaddr: u64, kaddr: *mut u8, max: u32, actual: Option<&mut u32>) -> Status {
    // SAFETY: the caller vouches for `kaddr`; the length goes to a live local.
    with_actual(actual, |ptr| unsafe { raw::copyinstr64(uaddr, addr(kaddr), u64::from(max), ptr) })
}

/// The datum of a fetch, or -1 as AIX returns on a bad address.
fn fetched((status, value): (Status, u64)) -> i32 {
    match status {
        Status::OK => value as u32 as i32,
        _ => -1,
    }
}

/// 0 for a store that succeeded, -1 otherwise.
fn stored((status, _): (Status, u64)) -> i32 {
    match status {
        Status::OK => 0,
        _ => -1,
    }
}

/// The byte at user address `uaddr` (below 4 GiB), 0..=255, or -1 when the
/// address is bad.
pub fn fubyte(uaddr: *const u8) -> i32 {
    fetched(raw::fubyte(addr(uaddr)))
}

/// [`fubyte`] at any user address.
pub fn fubyte64(uaddr: u64) -> i32 {
    fetched(raw::fubyte64(uaddr))
}

/// The 32-bit word at user address `uaddr` (below 4 GiB), or -1 when the
/// address is bad (a word of all ones reads as -1 too: [`raw::fuword`] tells
/// them apart).
pub fn fuword(uaddr: *const u8) -> i32 {
    fetched(raw::fuword(addr(uaddr)))
}

/// [`fuword`] at any user address.
pub fn fuword64(uaddr: u64) -> i32 {
    fetched(raw::fuword64(uaddr))
}

/// Stores `byte` at user address `uaddr` (below 4 GiB, writable): 0, or -1
/// when the address is bad.
///
/// # Safety
///
/// Nothing may hold a reference to the user byte across the call.
pub unsafe fn subyte(uaddr: *mut u8, byte: u8) -> i32 {
    // SAFETY: the caller vouches for `uaddr`.
    stored(unsafe { raw::subyte(addr(uaddr), u64::from(byte)) })
}

/// [`subyte`] at any user address.
///
/// # Safety
///
/// As for [`subyte`].
pub unsafe fn subyte64(uaddr: u64, byte: u8) -> i32 {
    // SAFETY: the caller vouches for `uaddr`.
    stored(unsafe { raw::subyte64(uaddr, u64::from(byte)) })
}

/// Stores the 32-bit `word` at user address `uaddr` (below 4 GiB, writable):
/// 0, or -1 when the address is bad.
///
/// # Safety
///
/// As for [`subyte`].
pub unsafe fn suword(uaddr: *mut u8, word: u32) -> i32 {
    // SAFETY: the caller vouches for `uaddr`.
    stored(unsafe { raw::suword(addr(uaddr), u64::from(word)) })
}

/// [`suword`] at any user address.
///
/// # Safety
///
/// As for [`subyte`].
pub unsafe fn suword64(uaddr: u64, word: u32) -> i32 {
    // SAFETY: the caller vouches for `uaddr`.
    stored(unsafe { raw::suword64(uaddr, u64::from(word)) })
}

/// Moves up to `n` bytes between the kernel buffer `cp` and the buffers of
/// `uio`: [`UIO_READ`] copies `cp` into them, [`UIO_WRITE`] out of them. The
/// VMM advances the iovecs and `uio` (`iovdcnt`, `offset`, `resid`) by what
/// moved. Returns `OK`, `EFAULT` (a bad byte; the uio says what moved) or
/// `EINVAL` (bad `rw`, segment flag or iovec count).
///
/// # Safety
///
/// `uio.iov` must point to `uio.iovcnt` writable [`IoVec`]s, and `cp` and the
/// buffers must be valid for what `rw` does to them.
pub unsafe fn uiomove(cp: *mut u8, n: usize, rw: u64, uio: &mut Uio) -> Status {
    // SAFETY: the caller vouches for the iovecs and buffers; `uio` is a live
    // exclusive reference, which the VMM updates in place.
    status(unsafe { raw::uiomove(addr(cp), n as u64, rw, addr(uio as *mut Uio)) })
}

/// Writes the character `c` (its low 8 bits) into the buffers of `uio`, as
/// [`uiomove`] of one byte with [`UIO_READ`]: `OK` or `EFAULT`.
///
/// # Safety
///
/// As for [`uiomove`].
pub unsafe fn ureadc(c: i32, uio: &mut Uio) -> Status {
    // SAFETY: as for `uiomove`.
    status(unsafe { raw::ureadc(u64::from(c as u32), addr(uio as *mut Uio)) })
}

/// Takes one character from the buffers of `uio` (0..=255), or -1 when none is
/// left (`ENOENT`) or the address is bad (`EFAULT`).
///
/// # Safety
///
/// As for [`uiomove`].
pub unsafe fn uwritec(uio: &mut Uio) -> i32 {
    // SAFETY: as for `uiomove`.
    fetched(unsafe { raw::uwritec(addr(uio as *mut Uio)) })
}
