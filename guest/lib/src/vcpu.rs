//! What a vCPU knows about itself without an exit: its [`VcpuPage`], which the
//! FS base of every vCPU points at.

use core::arch::asm;
use core::mem::offset_of;

use kmemvisor_abi::VcpuPage;

/// This vCPU's index; 0 is the boot vCPU.
pub fn vcpu_id() -> u64 {
    let id: u64;
    // SAFETY: the VMM maps every vCPU's page at its FS base before the vCPU
    // starts; the read has no side effects.
    unsafe {
        asm!(
            "mov {id}, qword ptr fs:[{offset}]",
            id = out(reg) id,
            offset = const offset_of!(VcpuPage, vcpu_id),
            options(nostack, preserves_flags, readonly, pure),
        );
    }
    id
}

/// The number of vCPUs of the VM.
pub fn vcpu_count() -> u64 {
    let count: u64;
    // SAFETY: as in `vcpu_id`.
    unsafe {
        asm!(
            "mov {count}, qword ptr fs:[{offset}]",
            count = out(reg) count,
            offset = const offset_of!(VcpuPage, vcpu_count),
            options(nostack, preserves_flags, readonly, pure),
        );
    }
    count
}
