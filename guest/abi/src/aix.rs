//! AIX kernel services: the constants and structures that cross the boundary.
//!
//! Numbers follow AIX where AIX publishes them (`UIO_*`, `SYS_ADSPACE`…);
//! elsewhere they are kmemvisor's, part of ABI v1 (docs/ABI.md).

/// `init_heap`-free handle of the pageable kernel heap, present from boot.
pub const KERNEL_HEAP: u64 = 1;
/// Handle of the pinned kernel heap, present from boot.
pub const PINNED_HEAP: u64 = 2;
/// Largest `align_log2` of `xmalloc` (a page).
pub const XMALLOC_MAX_ALIGN_LOG2: u64 = 12;

/// `segflag`/`uio_segflg`: user data.
pub const UIO_USERSPACE: u64 = 0;
/// `segflag`/`uio_segflg`: kernel (system) data.
pub const UIO_SYSSPACE: u64 = 1;
/// `segflag`/`uio_segflg`: user instructions.
pub const UIO_USERISPACE: u64 = 2;

/// `uiomove` direction: from the kernel buffer into the uio's buffers (a read).
pub const UIO_READ: u64 = 0;
/// `uiomove` direction: from the uio's buffers into the kernel buffer (a write).
pub const UIO_WRITE: u64 = 1;

/// Most iovecs a `uio` may have (AIX's `UIO_MAXIOV`).
pub const UIO_MAXIOV: u32 = 1024;

/// `process_map` protection: readable.
pub const PROT_READ: u64 = 1 << 0;
/// `process_map` protection: writable.
pub const PROT_WRITE: u64 = 1 << 1;
/// `process_map` protection: executable.
pub const PROT_EXEC: u64 = 1 << 2;

/// One buffer of a `uio`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoVec {
    /// Start of the buffer (user or kernel, as the uio's segment flag says).
    pub base: u64,
    /// Bytes left in the buffer.
    pub len: u64,
}

/// A scatter/gather description of a transfer (`struct uio`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uio {
    /// Guest-virtual address of the first `IoVec`.
    pub iov: u64,
    /// Number of `IoVec`s (at most [`UIO_MAXIOV`]).
    pub iovcnt: u32,
    /// How many of them are used up; `uiomove` advances it.
    pub iovdcnt: u32,
    /// File offset; `uiomove` adds the bytes moved.
    pub offset: u64,
    /// Bytes still to move; `uiomove` subtracts the bytes moved.
    pub resid: u64,
    /// [`UIO_USERSPACE`], [`UIO_SYSSPACE`] or [`UIO_USERISPACE`].
    pub segflg: u32,
    /// Open mode flags (not interpreted).
    pub fmode: u32,
}

const _: () = assert!(core::mem::size_of::<IoVec>() == 16);
const _: () = assert!(core::mem::offset_of!(Uio, iov) == 0);
const _: () = assert!(core::mem::offset_of!(Uio, iovcnt) == 8);
const _: () = assert!(core::mem::offset_of!(Uio, iovdcnt) == 12);
const _: () = assert!(core::mem::offset_of!(Uio, offset) == 16);
const _: () = assert!(core::mem::offset_of!(Uio, resid) == 24);
const _: () = assert!(core::mem::offset_of!(Uio, segflg) == 32);
const _: () = assert!(core::mem::offset_of!(Uio, fmode) == 36);
const _: () = assert!(core::mem::size_of::<Uio>() == 40);
