//! kmemvisor: a KVM virtual machine monitor that hosts a small guest and serves it
//! the kernel memory services of AIX and DG/UX through a hypercall ABI.
//!
//! The tree follows the architecture: [`memory_model`] is what every guest
//! frame and address is (data and rules, no hypercall decoding);
//! [`services`] decodes hypercalls and applies the AIX and DG/UX rules through the
//! model; [`kvm`] is the KVM core that runs the vCPUs; [`devices`] are what
//! the guest reaches beside the services (DMA engine, hiding, console).
#![doc = include_str!("../docs/BOOT_PATH.md")]

pub mod bench;
pub mod checker;
pub mod coverage;
pub mod devices;
pub mod fuzz;
pub mod guests;
#[cfg(any(test, feature = "fuzzing"))]
pub mod invariants;
pub mod kvm;
pub mod loader;
pub mod memory_model;
pub mod minimize;
pub mod new_project;
pub mod replay;
pub mod report;
pub mod sdk;
pub mod seeded;
pub mod services;
pub mod snapshot;
pub mod state;
pub mod symbols;
pub mod sync;
#[cfg(test)]
pub mod testing;
pub mod testrun;
pub mod trace;
pub mod units;
