//! DG/UX `memory_allocation(3K)`: the constants the manual page names.
//!
//! The manual page publishes names, not values; the values here are kmemvisor's and
//! are part of ABI v1. Service numbers are in [`Service`](crate::Service)
//! (group `0x06`), statuses in [`Status`](crate::Status).
//!
//! Semantics the manual page leaves open, as kmemvisor defines them (docs/ABI.md):
//! - Alignments are codes, not byte counts; [`alignment_bytes`] maps them.
//!   A request for fewer bytes than its alignment, for 0 bytes, for more than
//!   a page with [`VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS`], for more than
//!   `u32::MAX` bytes, or with an unknown alignment is refused: a violation,
//!   status `EINVAL`, value [`VM_INVALID_MEMORY_PTR`] — for the demand gets
//!   too, which halt only when memory runs out.
//! - Wire counts are kept per frame. A wired allocation's frames start at 1,
//!   an unwired allocation's at 0, and no unwire may take a frame below that
//!   initial count (the manual page's "0 for wired; 1 for unwired" read the
//!   other way round: wired memory is the memory that starts wired).
//! - Memory outside the two arenas (the image, the stacks) is always resident
//!   and never paged; wiring or unwiring it is accepted and changes nothing.

/// Alignment code: any byte.
pub const VM_BYTE_ALIGNED: u32 = 0;
/// Alignment code: 32-bit words.
pub const VM_WORD_ALIGNED: u32 = 1;
/// Alignment code: 64-bit double words.
pub const VM_DOUBLE_WORD_ALIGNED: u32 = 2;
/// Alignment code: the most efficient alignment, double words.
pub const VM_DEFAULT_ALIGNMENT: u32 = 3;
/// Alignment code: pages.
pub const VM_PAGE_ALIGNED: u32 = 4;
/// Alignment code: double words, and the allocation never crosses a page
/// (so it is at most a page long).
pub const VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS: u32 = 5;

/// The byte alignment of an alignment code, or `None` for an unknown code.
pub const fn alignment_bytes(alignment: u32) -> Option<u64> {
    match alignment {
        VM_BYTE_ALIGNED => Some(1),
        VM_WORD_ALIGNED => Some(4),
        VM_DOUBLE_WORD_ALIGNED | VM_DEFAULT_ALIGNMENT | VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS => Some(8),
        VM_PAGE_ALIGNED => Some(crate::layout::PAGE_SIZE),
        _ => None,
    }
}

/// What the perhaps gets return when memory cannot be allocated.
pub const VM_INVALID_MEMORY_PTR: u64 = 0;
/// What `vm_get_physical_byte_address` stores for an invalid logical address.
pub const VM_INVALID_PHYSICAL_ADDRESS: u64 = u64::MAX;

/// `sc_access_mode_type`: no access.
pub const SC_NO_ACCESS: u64 = 0;
/// `sc_access_mode_type`: read.
pub const SC_READ_ACCESS: u64 = 1 << 0;
/// `sc_access_mode_type`: write.
pub const SC_WRITE_ACCESS: u64 = 1 << 1;
/// `sc_access_mode_type`: execute.
pub const SC_EXECUTE_ACCESS: u64 = 1 << 2;
/// `sc_access_mode_type`: every valid bit.
pub const SC_ACCESS_MODE_MASK: u64 = SC_READ_ACCESS | SC_WRITE_ACCESS | SC_EXECUTE_ACCESS;

/// `mmap` access mode: read.
pub const PROT_READ: u64 = 1 << 0;
/// `mmap` access mode: write.
pub const PROT_WRITE: u64 = 1 << 1;
/// `mmap` access mode: execute.
pub const PROT_EXEC: u64 = 1 << 2;
/// `mmap` sharing: shared (the only one supported).
pub const MAP_SHARED: u64 = 1;
/// `mmap` sharing: private (refused with `VM_EINVAL_MMAP_UNSUPPORTED`).
pub const MAP_PRIVATE: u64 = 2;

/// `vm_map_physical_memory` control flag, bit 0: the logical address is a
/// kernel address (default: user).
pub const VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK: u64 = 1 << 0;
/// `vm_map_physical_memory` control flag, bit 1: write-through caching (PWT
/// in the page-table entries); without it caching is inhibited (PCD).
pub const VM_MMAP_WRITE_THROUGH_MASK: u64 = 1 << 1;
/// `vm_unmap_physical_memory` control flag, bit 0: the logical address is a
/// kernel address (default: user).
pub const VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK: u64 = 1 << 0;

/// Highest wire count of a page; a region holding a page at this count cannot
/// be wired again (`VM_EFAULT_UNWIRE_AND_VALIDATE_REGIONS`).
pub const MAX_WIRE_COUNT: u64 = 0xffff;

/// The `sc_panic` codes of the demand gets: the VM halts with one of these.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortCode {
    /// `vm_get_wired_memory` could not allocate.
    VmPanicGetWiredMemory = 0x2001,
    /// `vm_get_unwired_memory` could not allocate.
    VmPanicGetUnwiredMemory = 0x2002,
}

impl AbortCode {
    /// The name as the manual page spells it.
    pub const fn name(self) -> &'static str {
        match self {
            AbortCode::VmPanicGetWiredMemory => "VM_PANIC_GET_WIRED_MEMORY",
            AbortCode::VmPanicGetUnwiredMemory => "VM_PANIC_GET_UNWIRED_MEMORY",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_codes_map_to_byte_alignments() {
        assert_eq!(alignment_bytes(VM_BYTE_ALIGNED), Some(1));
        assert_eq!(alignment_bytes(VM_WORD_ALIGNED), Some(4));
        assert_eq!(alignment_bytes(VM_DOUBLE_WORD_ALIGNED), Some(8));
        assert_eq!(alignment_bytes(VM_DEFAULT_ALIGNMENT), Some(8));
        assert_eq!(alignment_bytes(VM_PAGE_ALIGNED), Some(4096));
        assert_eq!(alignment_bytes(VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS), Some(8));
        assert_eq!(alignment_bytes(6), None);
        assert_eq!(alignment_bytes(u32::MAX), None);
    }
}
