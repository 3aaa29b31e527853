//! Which pages of guest RAM a restore looks at, and how a persistent VM
//! chooses.
//!
//! Two ways give every page an iteration may have changed:
//!
//! - **held**: every page the memfd holds now or held at the snapshot (a
//!   page never written is a hole), each compared with the copy. It costs
//!   nothing while the guest runs, and a compare per page held at the reset.
//! - **logged**: the pages KVM's dirty log names (what the vCPUs wrote) and
//!   those the VMM wrote ([`crate::memory_model::ram::WrittenPages`]: the
//!   DMA engine, the services, the pager). The reset looks at those only,
//!   but KVM write-protects every logged page again at each reset, so the
//!   vCPUs' first write to a page in each iteration faults into KVM. With
//!   hardware-assisted paging that fault is cheap; under shadow paging
//!   (KVM's PVM flavour) it costs about a VM exit, more than the compares it
//!   saves on a small guest.
//!
//! Which is faster depends on the host and the guest, so a persistent VM
//! measures: its first iterations after the snapshot alternate between the
//! two in blocks, and it keeps the one whose iterations (run and reset
//! together) took less time. The choice changes speed only: both put back
//! the same bytes, and nothing a verdict depends on sees which was used.

use std::time::Duration;

/// How a restore finds the pages to compare with the snapshot's copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirtyPages {
    /// Every page the memfd holds now or held at the snapshot.
    Held,
    /// KVM's dirty log and the VMM's record of its writes.
    Logged,
}

/// Iterations measured each way before the choice.
const TRIAL_ITERATIONS: u32 = 16;
/// Iterations of one way in a row during the trial: a block amortises the
/// switch and keeps both ways' blocks spread over the same stretch of time.
const BLOCK: u32 = 4;

/// The way of the next iterations: fixed, or still being measured.
#[derive(Clone, Debug)]
pub enum Choice {
    /// Chosen (by the trial or by the caller).
    Fixed(DirtyPages),
    /// Being measured: time and iterations so far, held then logged.
    Trial {
        /// Time spent by each way's iterations (run and the reset after it).
        spent: [Duration; 2],
        /// Iterations counted each way.
        counted: [u32; 2],
    },
}

fn index(way: DirtyPages) -> usize {
    match way {
        DirtyPages::Held => 0,
        DirtyPages::Logged => 1,
    }
}

impl Choice {
    /// A choice that measures both ways first.
    pub fn measured() -> Choice {
        Choice::Trial { spent: [Duration::ZERO; 2], counted: [0; 2] }
    }

    /// The way to track the next iteration.
    pub fn next(&self) -> DirtyPages {
        match self {
            Choice::Fixed(way) => *way,
            Choice::Trial { counted, .. } => {
                let done = counted[0] + counted[1];
                if counted[1] >= TRIAL_ITERATIONS || (counted[0] < TRIAL_ITERATIONS && (done / BLOCK).is_multiple_of(2)) {
                    DirtyPages::Held
                } else {
                    DirtyPages::Logged
                }
            }
        }
    }

    /// Counts an iteration tracked `way` that took `cost` (its run and the
    /// reset after it); once both ways are measured, keeps the faster.
    pub fn count(&mut self, way: DirtyPages, cost: Duration) {
        let Choice::Trial { spent, counted } = self else { return };
        spent[index(way)] += cost;
        counted[index(way)] += 1;
        if counted.iter().all(|&n| n >= TRIAL_ITERATIONS) {
            let faster = if spent[1] < spent[0] { DirtyPages::Logged } else { DirtyPages::Held };
            *self = Choice::Fixed(faster);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trial_alternates_in_blocks_then_keeps_the_faster_way() {
        let mut choice = Choice::measured();
        let mut ways = Vec::new();
        while let Choice::Trial { .. } = choice {
            let way = choice.next();
            ways.push(way);
            let cost = if way == DirtyPages::Logged { 90 } else { 100 };
            choice.count(way, Duration::from_micros(cost));
        }
        assert_eq!(ways.len(), 2 * TRIAL_ITERATIONS as usize);
        assert_eq!(&ways[..8], &[[DirtyPages::Held; 4], [DirtyPages::Logged; 4]].concat()[..]);
        assert_eq!(ways.iter().filter(|&&w| w == DirtyPages::Logged).count(), TRIAL_ITERATIONS as usize);
        assert_eq!(choice.next(), DirtyPages::Logged);
        let mut fixed = Choice::Fixed(DirtyPages::Held);
        fixed.count(DirtyPages::Logged, Duration::ZERO);
        assert_eq!(fixed.next(), DirtyPages::Held, "a fixed choice stays");
    }

    #[test]
    fn a_tie_keeps_the_way_that_needs_no_dirty_log() {
        let mut choice = Choice::measured();
        while let Choice::Trial { .. } = choice {
            choice.count(choice.next(), Duration::from_micros(50));
        }
        assert_eq!(choice.next(), DirtyPages::Held);
    }
}
