//! DG/UX `memory_allocation(3K)`: wired and unwired kernel memory, wire
//! counts, reference/modify marking and physical mapping, enforced by the VMM.
//!
//! [`kernel_memory`] holds the state and its rules, [`services`] turns the
//! fifteen hypercalls into calls on it, [`arena`] hands out kernel virtual
//! ranges, and [`inject`] makes gets fail on purpose (`--fail-alloc`).

pub mod arena;
pub mod inject;
pub mod kernel_memory;
pub mod services;
