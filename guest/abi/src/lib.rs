//! The kmemvisor hypercall ABI, version 1: everything that crosses the boundary
//! between the VMM and its guest, defined once and used by both sides.
//!
//! A guest makes a call with one `out dx, eax` to [`HYPERCALL_PORT`]:
//!
//! | register | on entry | on return |
//! |---|---|---|
//! | `rax` | service number ([`Service`]) | [`Status`] (0 = OK) |
//! | `rdi`, `rsi`, `rcx`, `r8`, `r9`, `r10` | arguments 0–5 | unchanged |
//! | `rdx` | the port, [`HYPERCALL_PORT`] | the call's value (0 when it has none) |
//!
//! All other registers and the flags are preserved. The VMM reads and writes
//! these registers through KVM's shared `kvm_run` area, so a call costs one exit
//! and no extra ioctl. Pointers are guest-virtual addresses in the current
//! address space; the VMM translates them through the page tables it owns.
//!
//! `docs/ABI.md` describes the ABI for people; [`layout`] is the one place where
//! guest-physical and guest-virtual addresses are defined.
#![no_std]

pub mod aix;
pub mod aix_vmm;
pub mod boot_info;
pub mod c_header;
pub mod dgux;
pub mod dma;
pub mod image;
pub mod layout;
pub mod module;
pub mod service;
pub mod status;
pub mod vcpu;
pub mod xmem;

pub use boot_info::BootInfo;
pub use image::ImageHeader;
pub use module::{ModuleHeader, ModuleInfo};
pub use service::{Service, ServiceGroup};
pub use status::Status;
pub use vcpu::VcpuPage;

/// ABI major version: changes when an existing call changes meaning.
pub const ABI_MAJOR: u16 = 1;
/// ABI minor version: changes when calls are added (1: the DG/UX and AIX
/// services, processes and interrupt level; 2: cross-memory services and the
/// DMA engine; 3: guest modules, their header and the boot-info module table;
/// 4: `vcpu_yield`; 5: the AIX virtual memory manager services of group
/// `0x04`: virtual memory objects, `vm_att` and `io_att` regions).
pub const ABI_MINOR: u16 = 7;
/// The value [`Service::AbiVersion`] returns: `major << 16 | minor`.
pub const ABI_VERSION: u64 = ((ABI_MAJOR as u64) << 16) | ABI_MINOR as u64;

/// The I/O port of the hypercall doorbell (`out dx, eax`).
pub const HYPERCALL_PORT: u16 = 0x0b00;
/// A port whose writes the VMM discards without any work: the raw exit floor
/// that `kmemvisor bench` measures the hypercall against.
pub const NULL_DEVICE_PORT: u16 = 0x0b01;

/// Number of argument registers of one call.
pub const ARG_COUNT: usize = 6;
/// Most vCPUs a VM can have.
pub const MAX_VCPUS: usize = 16;
