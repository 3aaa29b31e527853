//! kmemvisor: a KVM virtual machine monitor that hosts a small guest and serves it
//! the kernel memory services of AIX and DG/UX through a hypercall ABI.
#![doc = include_str!("../docs/BOOT_PATH.md")]

pub mod aix;
pub mod bench;
pub mod bus;
pub mod checker;
pub mod console;
pub mod cpu;
pub mod dgux;
pub mod dma_engine;
pub mod events;
pub mod frames;
pub mod guest_access;
pub mod guests;
pub mod helpers;
pub mod hiding;
pub mod hypercall;
pub mod loader;
pub mod machine;
pub mod memory;
pub mod paging;
pub mod process;
pub mod report;
pub mod state;
pub mod stop;
pub mod sync;
#[cfg(test)]
pub mod testing;
pub mod vcpu;
pub mod vcpu_pool;
pub mod vm;
