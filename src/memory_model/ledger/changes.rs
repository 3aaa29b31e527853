//! What changed in the ledger's two per-frame tables (the roles and the free
//! list) since it was last equal to a copy of it, so that making it that
//! copy again — a snapshot reset, on every fuzzing iteration — copies the
//! entries that changed instead of the whole tables.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// Names each copied state; 0 names none.
static NEXT_COPY: AtomicU64 = AtomicU64::new(1);

/// The changes of one ledger since it was equal to the copy named `copy`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Changes {
    /// The copy the ledger was last equal to (0: none, nothing is known).
    copy: u64,
    /// The frame numbers whose role may have changed since, as one range.
    roles: Range<usize>,
    /// The free list's shortest length since: the entries below it are the copy's.
    free_low: usize,
}

impl Changes {
    /// The changes of a ledger whose present state gets a new name, its
    /// free list `free_len` long: none yet.
    pub(super) fn new_copy(free_len: usize) -> Changes {
        Changes { copy: NEXT_COPY.fetch_add(1, Ordering::Relaxed), roles: 0..0, free_low: free_len }
    }

    /// Frame `i`'s role is written.
    pub(super) fn role(&mut self, i: usize) {
        self.roles = if self.roles.is_empty() { i..i + 1 } else { self.roles.start.min(i)..self.roles.end.max(i + 1) };
    }

    /// The free list is `len` long after a pop.
    pub(super) fn free_len(&mut self, len: usize) {
        self.free_low = self.free_low.min(len);
    }

    /// What to copy from a copy whose changes are `saved` (its free list
    /// `saved_free_len` long) to make this ledger equal to it: the frames
    /// whose roles to copy and where the free list's suffix to copy starts;
    /// `None` when this ledger was not last equal to that copy's named
    /// state, or the copy changed since.
    pub(super) fn to_copy_from(&self, saved: &Changes, saved_free_len: usize) -> Option<(Range<usize>, usize)> {
        let saved_unchanged = saved.roles.is_empty() && saved.free_low == saved_free_len;
        (self.copy != 0 && self.copy == saved.copy && saved_unchanged)
            .then(|| (self.roles.clone(), self.free_low.min(saved_free_len)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{BASE, ledger};
    use super::super::{FrameLedger, Role, copy_into};
    use kmemvisor_abi::layout::PAGE_SIZE;

    /// Allocations (of `n` frames, or a page table) and releases (of the
    /// `n`-th frame taken), in the order `steps` gives.
    fn apply(frames: &mut FrameLedger, taken: &mut Vec<u64>, steps: &[(u8, u8)]) {
        for &(op, n) in steps {
            match op % 4 {
                0 => taken.extend(frames.allocate(u64::from(n % 5) + 1, Role::KernelMemory).unwrap_or_default()),
                1 => taken.extend(frames.allocate_table()),
                2 => frames.assign(BASE - PAGE_SIZE * (u64::from(n) % 8 + 1), 1, Role::Image),
                _ if !taken.is_empty() => {
                    let frame = taken.swap_remove(usize::from(n) % taken.len());
                    assert_eq!(frames.release(frame), Ok(true));
                }
                _ => {}
            }
        }
    }

    fn described(frames: &FrameLedger) -> String {
        format!("{frames:?}")
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6c65_6467_6572),
            cases: 64,
            ..proptest::test_runner::Config::default()
        })]

        /// Iterations of changes, each put back by `clone_from` of the copy:
        /// the ledger is the copy again every time, whether it copied only
        /// the changed entries or everything.
        #[test]
        fn clone_from_a_copy_puts_back_every_change(
            before in proptest::collection::vec((0u8..4, 0u8..255), 0..20),
            iterations in proptest::collection::vec(proptest::collection::vec((0u8..4, 0u8..255), 0..30), 1..6),
        ) {
            let mut frames = ledger(48, false);
            let mut taken = Vec::new();
            apply(&mut frames, &mut taken, &before);
            frames.name_for_copies();
            let copy = frames.clone();
            for steps in iterations {
                let mut now = taken.clone();
                apply(&mut frames, &mut now, &steps);
                frames.clone_from(&copy);
                proptest::prop_assert!(described(&frames) == described(&copy), "not the copy again");
                proptest::prop_assert_eq!(frames.check(), Ok(()));
            }
        }
    }

    #[test]
    fn only_the_changed_entries_are_copied_back_from_the_copy_the_ledger_was_equal_to() {
        let mut frames = ledger(16, false);
        frames.name_for_copies();
        let copy = frames.clone();
        let taken = frames.allocate(3, Role::KernelMemory).expect("frames");
        let first = (taken[0] / PAGE_SIZE) as usize;
        let changes = frames.changes.to_copy_from(&copy.changes, copy.free_list.len()).expect("the same copy");
        assert_eq!(changes.1, copy.free_list.len() - 3, "three popped");
        assert!(changes.0.contains(&first));
        frames.clone_from(&copy);
        assert!(described(&frames) == described(&copy));
        // Only what the ledger noted is copied: an entry changed behind its
        // back (as no code outside a test can) stays as it is.
        let unnoted = frames.roles.len() - 1;
        frames.roles[unnoted] = Role::Image;
        let _ = frames.allocate(1, Role::KernelMemory);
        frames.clone_from(&copy);
        assert_eq!((frames.roles[unnoted], copy.roles[unnoted]), (Role::Image, Role::Free), "copied back whole");
        frames.roles[unnoted] = Role::Free;
        // Another ledger's copy, or a copy that changed since, is copied whole.
        let mut other = ledger(16, false);
        other.name_for_copies();
        assert_eq!(frames.changes.to_copy_from(&other.changes, other.free_list.len()), None);
        let mut changed_copy = copy.clone();
        let _ = changed_copy.allocate(1, Role::KernelMemory);
        assert_eq!(frames.changes.to_copy_from(&changed_copy.changes, changed_copy.free_list.len()), None);
        frames.clone_from(&changed_copy);
        assert!(described(&frames) == described(&changed_copy));
    }

    #[test]
    fn a_copy_keeps_the_capacities_of_what_it_copies() {
        let (mut to, from) = (Vec::with_capacity(64), Vec::from([7u32, 8]));
        to.extend([1, 2, 3]);
        copy_into(&mut to, &from);
        assert_eq!((to.as_slice(), to.capacity()), (from.as_slice(), from.capacity()));
        let mut same = Vec::with_capacity(from.capacity());
        same.push(1);
        let buffer = same.as_ptr();
        copy_into(&mut same, &from);
        assert_eq!((same.as_slice(), same.as_ptr()), (from.as_slice(), buffer), "the buffer it had is kept");
        // A ledger whose free list has another capacity than the copy it was
        // equal to gets the copy's, whatever changed.
        let mut frames = ledger(16, false);
        frames.name_for_copies();
        let copy = frames.clone();
        let _ = frames.allocate(2, Role::KernelMemory);
        frames.free_list.reserve(1000);
        frames.clone_from(&copy);
        assert_eq!(frames.bookkeeping_bytes(), copy.bookkeeping_bytes());
        assert_eq!(frames.free_list.capacity(), copy.free_list.capacity());
        assert!(described(&frames) == described(&copy));
    }
}
