//! Snapshot reset for fuzzing: a VM booted once, run to its snapshot point,
//! then restored and run again for every iteration (`persistent`).
//!
//! One module per part of the state: guest RAM (`ram`, and `dirty` for
//! which of its pages a restore looks at), the vCPUs
//! (`vcpu_state`), the VMM's own state (`vmm_state`); what the guest sees
//! of it (`port`: `fuzz_snapshot`, `fuzz_input`); the fingerprints that
//! check a restore left nothing behind (`fingerprint`).

pub mod dirty;
pub mod fingerprint;
pub mod persistent;
pub mod port;
pub mod ram;
pub mod vcpu_state;
pub mod vmm_state;
pub mod worker;
