//! The boot-info page: what the VMM tells the guest at boot.
//!
//! Mapped read-only at [`layout::BOOT_INFO_VA`](crate::layout::BOOT_INFO_VA).

/// Most bytes of command line a guest receives.
pub const CMDLINE_MAX: usize = 4096 - 8;

/// The boot-info page.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// Bytes of `cmdline` in use.
    pub cmdline_len: u64,
    /// The guest's arguments (`kmemvisor run GUEST -- ARGS`), UTF-8, separated
    /// by single spaces.
    pub cmdline: [u8; CMDLINE_MAX],
}

const _: () = assert!(core::mem::offset_of!(BootInfo, cmdline_len) == 0);
const _: () = assert!(core::mem::offset_of!(BootInfo, cmdline) == 8);
const _: () = assert!(core::mem::size_of::<BootInfo>() == 4096);
