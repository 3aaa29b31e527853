//! Fingerprints of guest RAM and of the VMM state: the check that an
//! iteration leaves nothing behind compares them with the snapshot's.

use std::sync::atomic::Ordering;

use crate::state::VmState;
use crate::sync::lock;

/// FNV-1a over `bytes`, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The fingerprint of `bytes` (guest RAM).
pub fn ram(bytes: &[u8]) -> u64 {
    // Whole words: eight times fewer steps than bytes, as stable.
    bytes.chunks(8).fold(0xcbf2_9ce4_8422_2325_u64, |hash, word| {
        let mut w = [0u8; 8];
        w[..word.len()].copy_from_slice(word);
        (hash ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Everything the VMM holds of `state` apart from guest RAM, as text:
/// equal texts, equal states. Host times (when a vCPU first entered, when
/// a turn was given) are left out; the seeds are in.
pub fn describe_vmm(state: &VmState) -> String {
    let kernel = lock(&state.kernel);
    let contexts: Vec<_> = state.contexts.iter().map(|c| *lock(c)).collect();
    let cr3: Vec<u64> = state.cr3.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    format!(
        "config {:?}\nconsole {}\ncalls {:?} unknown {}\nviolations {:?}\ntrace {:?}\nvcpus {}\nstop {:?}\n\
         kernel {:?}\ncontexts {contexts:?}\ninterrupt handler {}\ncr3 {cr3:?}\nhiding {}\ncall site past the out {}\n\
         dma {}\nhelpers requested {}",
        (state.config.dma, state.config.schedule),
        state.console.describe(),
        state.calls.snapshot(),
        state.calls.unknown(),
        state.checker.violations(),
        state.trace.summary(),
        state.vcpus.describe(),
        state.stop.cause(),
        *kernel,
        state.interrupt_handler.load(Ordering::SeqCst),
        state.hiding.describe(),
        state.call_site.past_port_io(),
        state.dma.describe(),
        state.trap_used(),
    )
}

/// The fingerprint of [`describe_vmm`].
pub fn vmm(state: &VmState) -> u64 {
    fnv1a(describe_vmm(state).as_bytes())
}
