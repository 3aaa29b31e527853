//! DG/UX `memory_allocation(3K)`: one function per service (group `0x06`),
//! named as the manual page names it in snake case, with its argument order and
//! widths.
//!
//! | manual page type | here |
//! |---|---|
//! | `pointer_to_any_type` | `*mut u8` / `*const u8` |
//! | `uint32_type` bytes, alignment | `u32` |
//! | `boolean_type` | `bool` |
//! | `sc_access_mode_type` (`bit16_type`) | [`ScAccessMode`] (`u16`) |
//! | `bit32_type` access mode, control flags | `u32` |
//! | `int32_type` sharing | `i32` |
//! | `physical_address_type` | [`PhysicalAddress`] (`u64`) |
//!
//! Every 32-bit argument travels zero-extended in its 64-bit register (a
//! negative `sharing` as its 32-bit pattern).
//!
//! The manual page's return types are kept: the gets return the pointer
//! ([`VM_INVALID_MEMORY_PTR`], a null pointer, when a perhaps get finds no
//! memory or any get is refused), the `status_type` routines return the
//! [`Status`] (with [`Status::OK`] for success), and the `void` routines return
//! `()`. The VMM still answers every call with a status in `rax`; the [`raw`]
//! module returns it, and the value in `rdx`, for every service, so that a
//! conformance test can check refusals, and accepts full 64-bit arguments.
//!
//! Semantics in short (docs/ABI.md has them in full): allocations come from
//! the wired arena at [`WIRED_ARENA_VA`](crate::abi::layout::WIRED_ARENA_VA) or
//! the unwired arena at
//! [`UNWIRED_ARENA_VA`](crate::abi::layout::UNWIRED_ARENA_VA), zero-filled;
//! releases must match the get (pointer, byte count and type); wire counts are
//! kept per page, starting at 1 for wired and 0 for unwired allocations, and no
//! unwire may go below that; misuse is recorded as a violation in the VMM's
//! report, and every allocation or extra wire still live when the guest exits
//! is one too.

use kmemvisor_abi::dgux as c;
use kmemvisor_abi::{Service, Status};

pub use kmemvisor_abi::dgux::{
    AbortCode, MAX_WIRE_COUNT, VM_BYTE_ALIGNED, VM_DEFAULT_ALIGNMENT, VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS, VM_DOUBLE_WORD_ALIGNED,
    VM_INVALID_MEMORY_PTR, VM_INVALID_PHYSICAL_ADDRESS, VM_PAGE_ALIGNED, VM_WORD_ALIGNED, alignment_bytes,
};

/// The manual page's `sc_access_mode_type` (a `bit16_type`).
pub type ScAccessMode = u16;
/// The manual page's `physical_address_type`: a guest-physical byte address.
pub type PhysicalAddress = u64;

/// [`SC_NO_ACCESS`](kmemvisor_abi::dgux::SC_NO_ACCESS) as an [`ScAccessMode`].
pub const SC_NO_ACCESS: ScAccessMode = c::SC_NO_ACCESS as ScAccessMode;
/// [`SC_READ_ACCESS`](kmemvisor_abi::dgux::SC_READ_ACCESS) as an [`ScAccessMode`].
pub const SC_READ_ACCESS: ScAccessMode = c::SC_READ_ACCESS as ScAccessMode;
/// [`SC_WRITE_ACCESS`](kmemvisor_abi::dgux::SC_WRITE_ACCESS) as an [`ScAccessMode`].
pub const SC_WRITE_ACCESS: ScAccessMode = c::SC_WRITE_ACCESS as ScAccessMode;
/// [`SC_EXECUTE_ACCESS`](kmemvisor_abi::dgux::SC_EXECUTE_ACCESS) as an [`ScAccessMode`].
pub const SC_EXECUTE_ACCESS: ScAccessMode = c::SC_EXECUTE_ACCESS as ScAccessMode;
/// [`SC_ACCESS_MODE_MASK`](kmemvisor_abi::dgux::SC_ACCESS_MODE_MASK) as an [`ScAccessMode`].
pub const SC_ACCESS_MODE_MASK: ScAccessMode = c::SC_ACCESS_MODE_MASK as ScAccessMode;

/// [`PROT_READ`](kmemvisor_abi::dgux::PROT_READ) as a `bit32_type`.
pub const PROT_READ: u32 = c::PROT_READ as u32;
/// [`PROT_WRITE`](kmemvisor_abi::dgux::PROT_WRITE) as a `bit32_type`.
pub const PROT_WRITE: u32 = c::PROT_WRITE as u32;
/// [`PROT_EXEC`](kmemvisor_abi::dgux::PROT_EXEC) as a `bit32_type`.
pub const PROT_EXEC: u32 = c::PROT_EXEC as u32;
/// [`MAP_SHARED`](kmemvisor_abi::dgux::MAP_SHARED) as an `int32_type`.
pub const MAP_SHARED: i32 = c::MAP_SHARED as i32;
/// [`MAP_PRIVATE`](kmemvisor_abi::dgux::MAP_PRIVATE) as an `int32_type`.
pub const MAP_PRIVATE: i32 = c::MAP_PRIVATE as i32;
/// [`VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK`](kmemvisor_abi::dgux::VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK)
/// as a `bit32_type`.
pub const VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK: u32 = c::VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK as u32;
/// [`VM_MMAP_WRITE_THROUGH_MASK`](kmemvisor_abi::dgux::VM_MMAP_WRITE_THROUGH_MASK) as a `bit32_type`.
pub const VM_MMAP_WRITE_THROUGH_MASK: u32 = c::VM_MMAP_WRITE_THROUGH_MASK as u32;
/// [`VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK`](kmemvisor_abi::dgux::VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK)
/// as a `bit32_type`.
pub const VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK: u32 = c::VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK as u32;

// The narrowed constants keep their values.
const _: () = assert!(SC_ACCESS_MODE_MASK as u64 == c::SC_ACCESS_MODE_MASK);
const _: () = assert!(MAP_SHARED as u64 == c::MAP_SHARED && MAP_PRIVATE as u64 == c::MAP_PRIVATE);
const _: () = assert!(VM_MMAP_WRITE_THROUGH_MASK as u64 == c::VM_MMAP_WRITE_THROUGH_MASK);

/// The raw calls: every service with 64-bit arguments, returning the status
/// the VMM put in `rax` (and, where the service has one, the value in `rdx`).
/// Nothing is narrowed or checked, so a test can send what the typed
/// functions cannot express (a byte count above `u32::MAX`, an unknown
/// alignment, stray flag bits).
pub mod raw {
    use super::*;

    use crate::hypercall::call_status as call;

    /// `vm_get_wired_memory(bytes, alignment)`: the status and the pointer.
    /// Does not return when memory runs out: the VM halts.
    pub fn vm_get_wired_memory(bytes: u64, alignment: u64) -> (Status, u64) {
        // SAFETY: a get takes no pointers; it only maps fresh arena pages.
        unsafe { call(Service::VmGetWiredMemory, [bytes, alignment, 0, 0, 0, 0]) }
    }

    /// `vm_get_unwired_memory(bytes, alignment)`: the status and the pointer.
    /// Does not return when memory runs out: the VM halts.
    pub fn vm_get_unwired_memory(bytes: u64, alignment: u64) -> (Status, u64) {
        // SAFETY: as for `vm_get_wired_memory`.
        unsafe { call(Service::VmGetUnwiredMemory, [bytes, alignment, 0, 0, 0, 0]) }
    }

    /// `vm_perhaps_get_wired_memory(bytes, alignment)`: the status (`ENOMEM`
    /// when memory runs out) and the pointer.
    pub fn vm_perhaps_get_wired_memory(bytes: u64, alignment: u64) -> (Status, u64) {
        // SAFETY: as for `vm_get_wired_memory`.
        unsafe { call(Service::VmPerhapsGetWiredMemory, [bytes, alignment, 0, 0, 0, 0]) }
    }

    /// `vm_perhaps_get_unwired_memory(bytes, alignment)`: the status and the pointer.
    pub fn vm_perhaps_get_unwired_memory(bytes: u64, alignment: u64) -> (Status, u64) {
        // SAFETY: as for `vm_get_wired_memory`.
        unsafe { call(Service::VmPerhapsGetUnwiredMemory, [bytes, alignment, 0, 0, 0, 0]) }
    }

    /// `vm_release_wired_memory(memory_ptr, bytes)`: the status.
    ///
    /// # Safety
    ///
    /// When the release succeeds the memory is gone (its pages may be
    /// unmapped): nothing may use it afterwards.
    pub unsafe fn vm_release_wired_memory(memory_ptr: u64, bytes: u64) -> Status {
        // SAFETY: the caller gives the memory up; the VMM reads none of it.
        unsafe { call(Service::VmReleaseWiredMemory, [memory_ptr, bytes, 0, 0, 0, 0]) }.0
    }

    /// `vm_release_unwired_memory(memory_ptr, bytes)`: the status.
    ///
    /// # Safety
    ///
    /// As for [`vm_release_wired_memory`].
    pub unsafe fn vm_release_unwired_memory(memory_ptr: u64, bytes: u64) -> Status {
        // SAFETY: as for `vm_release_wired_memory`.
        unsafe { call(Service::VmReleaseUnwiredMemory, [memory_ptr, bytes, 0, 0, 0, 0]) }.0
    }

    /// `vm_check_access_and_wire_memory(start_ptr, is_user_address,
    /// bytes_to_wire, access_requested)`: the status.
    pub fn vm_check_access_and_wire_memory(
        start_ptr: u64,
        is_user_address: u64,
        bytes_to_wire: u64,
        access_requested: u64,
    ) -> Status {
        let args = [start_ptr, is_user_address, bytes_to_wire, access_requested, 0, 0];
        // SAFETY: wiring changes wire counts only; the VMM touches no guest memory.
        unsafe { call(Service::VmCheckAccessAndWireMemory, args) }.0
    }

    /// `vm_wire_memory(start_ptr, is_user_address, bytes_to_wire)`: the status.
    pub fn vm_wire_memory(start_ptr: u64, is_user_address: u64, bytes_to_wire: u64) -> Status {
        // SAFETY: as for `vm_check_access_and_wire_memory`.
        unsafe { call(Service::VmWireMemory, [start_ptr, is_user_address, bytes_to_wire, 0, 0, 0]) }.0
    }

    /// `vm_unwire_memory(start_ptr, is_user_address, bytes_to_unwire)`: the status.
    pub fn vm_unwire_memory(start_ptr: u64, is_user_address: u64, bytes_to_unwire: u64) -> Status {
        // SAFETY: unwiring changes wire counts only.
        unsafe { call(Service::VmUnwireMemory, [start_ptr, is_user_address, bytes_to_unwire, 0, 0, 0]) }.0
    }

    /// `vm_mark_and_unwire_memory(start_ptr, is_user_address,
    /// bytes_to_unwire, access_performed)`: the status.
    pub fn vm_mark_and_unwire_memory(
        start_ptr: u64,
        is_user_address: u64,
        bytes_to_unwire: u64,
        access_performed: u64,
    ) -> Status {
        let args = [start_ptr, is_user_address, bytes_to_unwire, access_performed, 0, 0];
        // SAFETY: marking and unwiring change the VMM's page records only.
        unsafe { call(Service::VmMarkAndUnwireMemory, args) }.0
    }

    /// `vm_mark_mod_and_ref_and_unwire_memory(start_ptr, is_user_address,
    /// bytes_to_unwire)`: the status.
    pub fn vm_mark_mod_and_ref_and_unwire_memory(start_ptr: u64, is_user_address: u64, bytes_to_unwire: u64) -> Status {
        let args = [start_ptr, is_user_address, bytes_to_unwire, 0, 0, 0];
        // SAFETY: as for `vm_mark_and_unwire_memory`.
        unsafe { call(Service::VmMarkModAndRefAndUnwireMemory, args) }.0
    }

    /// `vm_mark_ref_and_unwire_memory(start_ptr, is_user_address,
    /// bytes_to_unwire)`: the status.
    pub fn vm_mark_ref_and_unwire_memory(start_ptr: u64, is_user_address: u64, bytes_to_unwire: u64) -> Status {
        let args = [start_ptr, is_user_address, bytes_to_unwire, 0, 0, 0];
        // SAFETY: as for `vm_mark_and_unwire_memory`.
        unsafe { call(Service::VmMarkRefAndUnwireMemory, args) }.0
    }

    /// `vm_get_physical_byte_address(logical_address, is_user_address,
    /// physical_addr_ptr)`: the status and the value (the address stored).
    ///
    /// # Safety
    ///
    /// The VMM writes 8 bytes at `physical_addr_ptr` when it is a mapped,
    /// writable address: it must then be valid for that write.
    pub unsafe fn vm_get_physical_byte_address(
        logical_address: u64,
        is_user_address: u64,
        physical_addr_ptr: u64,
    ) -> (Status, u64) {
        let args = [logical_address, is_user_address, physical_addr_ptr, 0, 0, 0];
        // SAFETY: the caller vouches for `physical_addr_ptr`.
        unsafe { call(Service::VmGetPhysicalByteAddress, args) }
    }

    /// `vm_map_physical_memory(logical_addr, physical_addr, num_bytes,
    /// access_mode, sharing, control_flags)`: the status.
    ///
    /// # Safety
    ///
    /// On success the pages at `logical_addr` show the physical frames from
    /// then on: their old contents are discarded, and writes through them
    /// land in those frames, whoever else uses them.
    pub unsafe fn vm_map_physical_memory(
        logical_addr: u64,
        physical_addr: u64,
        num_bytes: u64,
        access_mode: u64,
        sharing: u64,
        control_flags: u64,
    ) -> Status {
        let args = [logical_addr, physical_addr, num_bytes, access_mode, sharing, control_flags];
        // SAFETY: the caller vouches for the mapping.
        unsafe { call(Service::VmMapPhysicalMemory, args) }.0
    }

    /// `vm_unmap_physical_memory(logical_addr, num_bytes, control_flags)`: the status.
    ///
    /// # Safety
    ///
    /// On success the pages are the allocation's own again, zero-filled:
    /// nothing may rely on what was visible through the mapping.
    pub unsafe fn vm_unmap_physical_memory(logical_addr: u64, num_bytes: u64, control_flags: u64) -> Status {
        // SAFETY: the caller vouches for the unmapping.
        unsafe { call(Service::VmUnmapPhysicalMemory, [logical_addr, num_bytes, control_flags, 0, 0, 0]) }.0
    }
}

/// A pointer as the argument register carries it.
fn addr(ptr: *const u8) -> u64 {
    ptr as u64
}

/// A get's reply as the manual page returns it: the pointer, or null on failure.
fn pointer((status, value): (Status, u64)) -> *mut u8 {
    match status {
        Status::OK => value as *mut u8,
        _ => VM_INVALID_MEMORY_PTR as *mut u8,
    }
}

/// Allocates `bytes` of wired memory at `alignment` (an alignment code such as
/// [`VM_DEFAULT_ALIGNMENT`]): zero-filled, in the wired arena.
///
/// When memory runs out the VM halts with `VM_PANIC_GET_WIRED_MEMORY`, as the
/// manual page's system halt. A refused request (0 bytes, fewer bytes than the
/// alignment, an unknown alignment, more than a page with
/// [`VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS`]) is a violation and returns null.
pub fn vm_get_wired_memory(bytes: u32, alignment: u32) -> *mut u8 {
    pointer(raw::vm_get_wired_memory(u64::from(bytes), u64::from(alignment)))
}

/// Allocates `bytes` of unwired memory at `alignment`: zero-filled, in the
/// unwired arena. Halts the VM with `VM_PANIC_GET_UNWIRED_MEMORY` when memory
/// runs out; a refused request is a violation and returns null.
pub fn vm_get_unwired_memory(bytes: u32, alignment: u32) -> *mut u8 {
    pointer(raw::vm_get_unwired_memory(u64::from(bytes), u64::from(alignment)))
}

/// Allocates `bytes` of wired memory at `alignment`, or returns null
/// ([`VM_INVALID_MEMORY_PTR`]) when no memory is left (status `ENOMEM`, no
/// violation) or the request is refused (a violation).
pub fn vm_perhaps_get_wired_memory(bytes: u32, alignment: u32) -> *mut u8 {
    pointer(raw::vm_perhaps_get_wired_memory(u64::from(bytes), u64::from(alignment)))
}

/// Allocates `bytes` of unwired memory at `alignment`, or returns null
/// ([`VM_INVALID_MEMORY_PTR`]) when no memory is left or the request is refused.
pub fn vm_perhaps_get_unwired_memory(bytes: u32, alignment: u32) -> *mut u8 {
    pointer(raw::vm_perhaps_get_unwired_memory(u64::from(bytes), u64::from(alignment)))
}

/// Releases wired memory: `memory_ptr` and `bytes` must be exactly what a
/// wired get returned and was given, and no page may be wired above its
/// initial count; anything else is a violation and frees nothing
/// ([`raw::vm_release_wired_memory`] shows the status).
///
/// # Safety
///
/// The memory is gone afterwards: pages that hold no other allocation are
/// unmapped, so a later access faults.
pub unsafe fn vm_release_wired_memory(memory_ptr: *mut u8, bytes: u32) {
    // SAFETY: the caller gives the memory up.
    unsafe { raw::vm_release_wired_memory(addr(memory_ptr), u64::from(bytes)) };
}

/// Releases unwired memory, checked as [`vm_release_wired_memory`] is.
///
/// # Safety
///
/// As for [`vm_release_wired_memory`].
pub unsafe fn vm_release_unwired_memory(memory_ptr: *mut u8, bytes: u32) {
    // SAFETY: the caller gives the memory up.
    unsafe { raw::vm_release_unwired_memory(addr(memory_ptr), u64::from(bytes)) };
}

/// Checks that the pages of `[start_ptr, start_ptr + bytes_to_wire)` (start
/// rounded down, end up) allow `access_requested` and wires them: each arena
/// page's wire count goes up by one. Returns `OK`, or the manual page's status
/// (`VM_EFAULT_INVALID_ADDRESS`, `VM_STATUS_PROCESS_HAS_NO_VM`,
/// `VM_EFAULT_ACCESS_DENIED`, `VM_EFAULT_UNWIRE_AND_VALIDATE_REGIONS`) and
/// then changes nothing. Access bits outside [`SC_ACCESS_MODE_MASK`] are a
/// violation (`EINVAL`).
pub fn vm_check_access_and_wire_memory(
    start_ptr: *const u8,
    is_user_address: bool,
    bytes_to_wire: u32,
    access_requested: ScAccessMode,
) -> Status {
    raw::vm_check_access_and_wire_memory(
        addr(start_ptr),
        u64::from(is_user_address),
        u64::from(bytes_to_wire),
        u64::from(access_requested),
    )
}

/// Wires the pages of `[start_ptr, start_ptr + bytes_to_wire)` (obsolescent):
/// [`vm_check_access_and_wire_memory`] with [`SC_NO_ACCESS`].
pub fn vm_wire_memory(start_ptr: *const u8, is_user_address: bool, bytes_to_wire: u32) -> Status {
    raw::vm_wire_memory(addr(start_ptr), u64::from(is_user_address), u64::from(bytes_to_wire))
}

/// Unwires the pages of `[start_ptr, start_ptr + bytes_to_unwire)` (start
/// rounded down, end up). Taking an arena page below its initial wire count
/// (1 for wired, 0 for unwired allocations), a user address or an unmapped page
/// is a violation and changes nothing ([`raw::vm_unwire_memory`] shows the
/// status).
pub fn vm_unwire_memory(start_ptr: *const u8, is_user_address: bool, bytes_to_unwire: u32) {
    raw::vm_unwire_memory(addr(start_ptr), u64::from(is_user_address), u64::from(bytes_to_unwire));
}

/// Marks the pages referenced (if `access_performed` has any bit) and modified
/// (if it has [`SC_WRITE_ACCESS`]), then unwires them as [`vm_unwire_memory`]
/// does; nothing is marked when the unwire is refused.
pub fn vm_mark_and_unwire_memory(
    start_ptr: *const u8,
    is_user_address: bool,
    bytes_to_unwire: u32,
    access_performed: ScAccessMode,
) {
    raw::vm_mark_and_unwire_memory(
        addr(start_ptr),
        u64::from(is_user_address),
        u64::from(bytes_to_unwire),
        u64::from(access_performed),
    );
}

/// Marks the pages referenced and modified, then unwires them (obsolescent:
/// [`vm_mark_and_unwire_memory`] with [`SC_WRITE_ACCESS`]).
pub fn vm_mark_mod_and_ref_and_unwire_memory(start_ptr: *const u8, is_user_address: bool, bytes_to_unwire: u32) {
    raw::vm_mark_mod_and_ref_and_unwire_memory(addr(start_ptr), u64::from(is_user_address), u64::from(bytes_to_unwire));
}

/// Marks the pages referenced, then unwires them (obsolescent:
/// [`vm_mark_and_unwire_memory`] with [`SC_READ_ACCESS`]).
pub fn vm_mark_ref_and_unwire_memory(start_ptr: *const u8, is_user_address: bool, bytes_to_unwire: u32) {
    raw::vm_mark_ref_and_unwire_memory(addr(start_ptr), u64::from(is_user_address), u64::from(bytes_to_unwire));
}

/// Stores at `physical_addr_ptr` the guest-physical byte address of
/// `logical_address`, or [`VM_INVALID_PHYSICAL_ADDRESS`] when the logical
/// address is unmapped or a user address. Pages of one allocation need not be
/// physically contiguous: ask for each page. When `physical_addr_ptr` is not
/// mapped and writable nothing is stored ([`raw::vm_get_physical_byte_address`]
/// shows the status, `EFAULT`).
///
/// # Safety
///
/// `physical_addr_ptr` must be valid for an 8-byte write (or unmapped).
pub unsafe fn vm_get_physical_byte_address(
    logical_address: *const u8,
    is_user_address: bool,
    physical_addr_ptr: *mut PhysicalAddress,
) {
    // SAFETY: the caller vouches for `physical_addr_ptr`.
    unsafe { raw::vm_get_physical_byte_address(addr(logical_address), u64::from(is_user_address), physical_addr_ptr as u64) };
}

/// The guest-physical address of a kernel `logical_address`, or `None` when it
/// is unmapped: [`vm_get_physical_byte_address`] into a local.
pub fn physical_address_of(logical_address: *const u8) -> Option<PhysicalAddress> {
    let mut physical: PhysicalAddress = VM_INVALID_PHYSICAL_ADDRESS;
    let target = &mut physical as *mut PhysicalAddress as u64;
    // SAFETY: `target` is a live local, valid for the 8-byte write; the logical
    // address is only translated, never dereferenced.
    unsafe { raw::vm_get_physical_byte_address(addr(logical_address), 0, target) };
    (physical != VM_INVALID_PHYSICAL_ADDRESS).then_some(physical)
}

/// Maps `num_bytes` of guest-physical memory at `physical_addr` over the
/// pages at `logical_addr`, which must lie inside one unwired allocation.
/// `access_mode` is `PROT_READ`/`PROT_WRITE`/`PROT_EXEC` (without
/// [`PROT_WRITE`] the mapping is read-only), `sharing` must be
/// [`MAP_SHARED`], and `control_flags` needs
/// [`VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK`] for a kernel address (no user
/// address spaces exist) and may add [`VM_MMAP_WRITE_THROUGH_MASK`]. Returns
/// `OK` or one of the manual page's `VM_EINVAL_MMAP_*` statuses, and then changes
/// nothing.
///
/// # Safety
///
/// On success the pages show the physical frames: their old contents are
/// discarded and writes through them land in those frames, whoever else uses
/// them.
pub unsafe fn vm_map_physical_memory(
    logical_addr: *mut u8,
    physical_addr: PhysicalAddress,
    num_bytes: u32,
    access_mode: u32,
    sharing: i32,
    control_flags: u32,
) -> Status {
    // SAFETY: the caller vouches for the mapping.
    unsafe {
        raw::vm_map_physical_memory(
            addr(logical_addr),
            physical_addr,
            u64::from(num_bytes),
            u64::from(access_mode),
            u64::from(sharing as u32),
            u64::from(control_flags),
        )
    }
}

/// Undoes [`vm_map_physical_memory`] for `num_bytes` at `logical_addr` (a part
/// of a mapping is fine): the pages are the allocation's own again,
/// zero-filled. Returns `OK` or one of the manual page's `VM_EINVAL_MUNMAP_*`
/// statuses, and then changes nothing.
///
/// # Safety
///
/// Nothing may rely on what was visible through the mapping.
pub unsafe fn vm_unmap_physical_memory(logical_addr: *mut u8, num_bytes: u32, control_flags: u32) -> Status {
    // SAFETY: the caller vouches for the unmapping.
    unsafe { raw::vm_unmap_physical_memory(addr(logical_addr), u64::from(num_bytes), u64::from(control_flags)) }
}
