//! The boot-info page: what the VMM tells the guest at boot.
//!
//! Mapped read-only at [`layout::BOOT_INFO_VA`](crate::layout::BOOT_INFO_VA).
//! The command line comes first, as in ABI 1.2; the module table (ABI 1.3)
//! takes the end of the page, which the command line gave up, so a guest built
//! against 1.2 still finds its arguments where it looks for them.

use crate::layout::{MODULE_SLOTS, PAGE_SIZE};
use crate::module::ModuleInfo;

/// Most bytes of command line a guest receives: the page minus the two
/// counts and the module table.
pub const CMDLINE_MAX: usize = PAGE_SIZE as usize - 2 * 8 - MODULE_SLOTS * core::mem::size_of::<ModuleInfo>();
/// Rows of the module table: one per module slot.
pub const MAX_MODULES: usize = MODULE_SLOTS;

/// The boot-info page.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// Bytes of `cmdline` in use.
    pub cmdline_len: u64,
    /// The guest's arguments (`kmemvisor run GUEST -- ARGS`), UTF-8, separated
    /// by single spaces.
    pub cmdline: [u8; CMDLINE_MAX],
    /// Rows of `modules` in use: the modules loaded with `--module`, in the
    /// order of the command line.
    pub module_count: u64,
    /// The loaded modules.
    pub modules: [ModuleInfo; MAX_MODULES],
}

const _: () = assert!(core::mem::offset_of!(BootInfo, cmdline_len) == 0);
const _: () = assert!(core::mem::offset_of!(BootInfo, cmdline) == 8);
const _: () = assert!(CMDLINE_MAX == 3568);
const _: () = assert!(core::mem::offset_of!(BootInfo, module_count) == 8 + CMDLINE_MAX);
const _: () = assert!(core::mem::offset_of!(BootInfo, modules) == 16 + CMDLINE_MAX);
const _: () = assert!(core::mem::size_of::<BootInfo>() == PAGE_SIZE as usize);
