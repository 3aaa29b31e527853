//! kmemvisor: a KVM virtual machine monitor that hosts a small guest and serves it
//! the kernel memory services of AIX and DG/UX through a hypercall ABI.
#![doc = include_str!("../docs/BOOT_PATH.md")]

pub mod cpu;
pub mod loader;
pub mod memory;
pub mod paging;
