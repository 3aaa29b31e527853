//! AIX pinning's own books: the limits, and the `pincode` count of each
//! loaded object. Pin counts themselves are the frames': the
//! [`FrameLedger`] keeps them, with the call that made each frame's first
//! pin. A frame's count starts at its initial value — 1 for the pinned
//! heap's frames, 0 for every other — and never goes below it.

use std::collections::BTreeMap;

use crate::checker::{Leak, ViolationKind};
use crate::memory_model::ledger::FrameLedger;
pub(crate) use crate::memory_model::ledger::PinOrigin as Origin;

/// Pinned frames may be at most this share of guest RAM frames.
pub const PIN_LIMIT_PERCENT: u64 = 90;
/// Largest `length` of a pinning call (AIX's `int`).
pub const MAX_PIN_LENGTH: u64 = i32::MAX as u64;

/// The process id of kernel pages.
pub(crate) const KERNEL: u64 = 0;

/// The `pincode` counts.
#[derive(Clone, Debug, Default)]
pub struct Pins {
    /// Loaded object (0: the main image, then the modules, as
    /// [`VmState::objects`](crate::state::VmState::objects)) → its `pincode`
    /// calls not yet undone; only counts above 0 have an entry.
    pub(crate) code_pins: BTreeMap<usize, u64>,
}

/// Frames still pinned above their initial count, by owner and address.
pub fn leaks(frames: &FrameLedger) -> Vec<Leak> {
    let mut pinned: Vec<_> = frames.all_counts().filter(|(_, c)| c.pins > 0).collect();
    pinned.sort_by_key(|(_, c)| c.owner);
    pinned
        .into_iter()
        .map(|(frame, c)| {
            let (pid, page) = (c.owner.pid, c.owner.va);
            let base = u32::from(c.pinned_from_birth);
            let origin = frames.first_pin(frame).unwrap_or(Origin { service: "pin", vcpu: 0, rip: 0 });
            let whose = if pid == KERNEL { String::new() } else { format!(" of process {pid}") };
            let message = format!(
                "page {page:#x}{whose} is still pinned at exit: pin count {}, initial {base} (first pinned by {})",
                u64::from(base) + u64::from(c.pins),
                origin.service
            );
            Leak {
                kind: ViolationKind::LeakPinned,
                service: origin.service,
                address: page,
                vcpu: origin.vcpu,
                rip: origin.rip,
                stack: Vec::new(),
                message,
            }
        })
        .collect()
}
