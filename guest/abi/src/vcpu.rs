//! The per-vCPU page: what a vCPU can learn about itself without an exit.
//!
//! The VMM maps one page per vCPU at [`layout::vcpu_page_va`](crate::layout::vcpu_page_va)
//! and points the vCPU's FS base at it, so the guest reads `fs:[0]` for its id.

/// The start of the per-vCPU page, written by the VMM before the vCPU starts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuPage {
    /// This vCPU's index, 0 for the boot vCPU.
    pub vcpu_id: u64,
    /// The number of vCPUs of the VM.
    pub vcpu_count: u64,
    /// Lowest address of this vCPU's stack (above its guard page).
    pub stack_bottom: u64,
    /// Highest address of this vCPU's stack (the initial stack pointer).
    pub stack_top: u64,
}

const _: () = assert!(core::mem::offset_of!(VcpuPage, vcpu_id) == 0);
const _: () = assert!(core::mem::offset_of!(VcpuPage, vcpu_count) == 8);
const _: () = assert!(core::mem::offset_of!(VcpuPage, stack_bottom) == 16);
const _: () = assert!(core::mem::offset_of!(VcpuPage, stack_top) == 24);
const _: () = assert!(core::mem::size_of::<VcpuPage>() == 32);
