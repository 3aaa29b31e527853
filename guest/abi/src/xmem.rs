//! AIX cross-memory services: the descriptor `xmattach` fills and the flags
//! of `xmemdma`.
//!
//! The descriptor is a receipt, not the state: the VMM keeps the attachment
//! and checks that a descriptor names a live one (`handle` and `tag` must both
//! match), so a forged or stale descriptor is refused rather than trusted.

/// `xmattach` segment flag: the buffer is in the current process's user space
/// (AIX `USER_ADSPACE`).
pub const USER_ADSPACE: u64 = 0;
/// `xmattach` segment flag: the buffer is kernel (global) memory
/// (AIX `SYS_ADSPACE`).
pub const SYS_ADSPACE: u64 = 1;

/// `xmemdma` flag: hide the page from every vCPU and hand it to the device.
pub const XMEM_HIDE: u64 = 0;
/// `xmemdma` flag: hand the page back (undo one `XMEM_HIDE`).
pub const XMEM_UNHIDE: u64 = 1;
/// `xmemdma` flag: only check access and return the real address; nothing is hidden.
pub const XMEM_ACC_CHK: u64 = 2;
/// With [`XMEM_ACC_CHK`]: the device will only write the page.
pub const XMEM_WRITE_ONLY: u64 = 4;

/// `xmemdma` of a page that is not hidden (no value): AIX's `XMEM_FAIL`.
pub const XMEM_FAIL: u64 = u64::MAX;

/// Most pages one `xmemdma_pages` call hides or unhides.
pub const XMEMDMA_MAX_PAGES: u64 = 1024;

/// A cross-memory descriptor (`struct xmem`), filled by `xmattach`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Xmem {
    /// The VMM's attachment number; 0 in a descriptor never attached.
    pub handle: u64,
    /// A value the VMM chose for this attachment; must come back unchanged.
    pub tag: u64,
    /// The process the buffer belongs to; 0 for kernel memory.
    pub aspace_id: u64,
    /// The attached buffer's first address.
    pub base: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// Size of [`Xmem`] in guest memory.
pub const XMEM_SIZE: u64 = core::mem::size_of::<Xmem>() as u64;

const _: () = assert!(XMEM_SIZE == 40);
const _: () = assert!(core::mem::offset_of!(Xmem, handle) == 0);
const _: () = assert!(core::mem::offset_of!(Xmem, tag) == 8);
const _: () = assert!(core::mem::offset_of!(Xmem, aspace_id) == 16);
const _: () = assert!(core::mem::offset_of!(Xmem, base) == 24);
const _: () = assert!(core::mem::offset_of!(Xmem, len) == 32);
