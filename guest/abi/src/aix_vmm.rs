//! AIX virtual memory manager services (group `0x04`): the constants that
//! cross the boundary.
//!
//! AIX publishes none of these values (its `sys/vmuser.h` is not public), so
//! they are kmemvisor's, part of ABI v1 (docs/ABI.md, "AIX virtual memory
//! manager services").

/// `vms_create` type: a client-storage object (the only type AIX allows).
pub const V_CLIENT: u64 = 1 << 0;
/// `vms_create` option: a page wait on the object may be interrupted
/// (accepted; no page wait exists without a pager).
pub const V_INTRSEG: u64 = 1 << 1;
/// `vms_create` option: `size` counts pages, not bytes.
pub const V_LARGE: u64 = 1 << 2;
/// The `vms_create` type bits kmemvisor knows; any other bit is `EINVAL`.
pub const VMS_CREATE_TYPE_MASK: u64 = V_CLIENT | V_INTRSEG | V_LARGE;

/// `vm_handle` key: unlimited access (the page's protect key decides).
pub const VM_KEY_UNLIMITED: u64 = 0;
/// `vm_handle` key: limited access: the object is mapped read-only.
pub const VM_KEY_LIMITED: u64 = 1;

/// `vm_protectp` storage protect key: read-write, every page's key at creation.
pub const FILEKEY: u64 = 0;
/// `vm_protectp` storage protect key: read-only; a store faults.
pub const RDONLY: u64 = 1;

/// The invalid segment id (`INVLSID`): never a `vmid` or a handle.
pub const INVLSID: u64 = u64::MAX;

/// Largest object, in bytes: one region, so that `vm_att` maps it whole.
pub const VM_OBJECT_MAX_SIZE: u64 = crate::layout::VM_REGION_SIZE;
/// Most objects that exist at once; `vms_create` answers `ENOMEM` past it.
pub const VM_MAX_OBJECTS: usize = 1024;
/// The byte a page made by `vm_makep` holds: its contents are undefined,
/// and a reader that did not overwrite it sees this rather than stale data.
pub const VM_MAKEP_POISON: u8 = 0xa5;

/// Bits of an `io_att` handle below the page address: the window's page
/// count minus one.
pub const IO_HANDLE_PAGES_MASK: u64 = 0xfff;

/// The `io_att` handle of the device window of `pages` pages (1–4096) at
/// the page-aligned bus (guest-physical) address `bus`.
pub const fn io_handle(bus: u64, pages: u64) -> u64 {
    (bus & !IO_HANDLE_PAGES_MASK) | ((pages.wrapping_sub(1)) & IO_HANDLE_PAGES_MASK)
}

/// The tag in the upper bits of every address-space pointer
/// (`adspace_t *`) that `getadsp` returns: a non-canonical address, so
/// that the pointer is never dereferenced, only handed back to the 32-bit
/// `as_*` services.
pub const ADSPACE_TAG: u64 = 0xad5a_ce00_0000_0000;
/// The bits of an address-space pointer below [`ADSPACE_TAG`]: the process id.
pub const ADSPACE_PID_MASK: u64 = 0xffff_ffff;

/// The address-space pointer of process `pid`: what `getadsp` returns
/// while `pid` is the current process.
pub const fn adspace(pid: u64) -> u64 {
    ADSPACE_TAG | (pid & ADSPACE_PID_MASK)
}

/// `vm_mount`/`vm_umount` type: a remote (client) paging device, the only
/// type AIX documents.
pub const D_REMOTE: u64 = 1 << 0;
/// `vm_umount` option: return at once. kmemvisor's page-outs are complete
/// when their call returns, so there is never anything to wait for and the
/// option changes nothing.
pub const D_NOWAIT: u64 = 1 << 1;
/// Most paging devices mounted at once; one more `vm_mount` is `ENOMEM`.
pub const VM_MAX_PAGING_DEVICES: usize = 16;
/// Largest `nbufstr` of `vm_mount`; more is `ENOMEM` (no memory for the bufs).
pub const VM_MAX_PAGING_BUFS: u64 = 4096;
