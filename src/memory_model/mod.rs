//! The memory model: what each guest frame and each guest address is, and
//! the rules that keep those facts true. It holds data and rules only — no
//! hypercall decoding, no VM-state aggregate — so every service and device
//! consults the same books.

pub mod aix_vmm;
pub mod arena;
pub mod attachments;
pub mod guest_access;
pub mod heaps;
pub mod inject;
pub mod kernel_memory;
pub mod ledger;
pub mod origins;
pub mod paging;
pub mod pins;
pub mod processes;
pub mod ram;
