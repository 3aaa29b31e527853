//! A range of kernel virtual addresses, handed out first-fit.

use std::collections::BTreeMap;

use kmemvisor_abi::layout::PAGE_SIZE;

/// Free ranges of one arena, coalesced, keyed by their end: taking from the
/// front of a range or giving back in front of one changes a value, not a
/// key, so the usual get and release reshape no tree node.
#[derive(Clone, Debug)]
pub struct Arena {
    /// end -> start.
    free: BTreeMap<u64, u64>,
}

impl Arena {
    /// The arena `[base, base + size)`, all free.
    pub fn new(base: u64, size: u64) -> Arena {
        Arena { free: BTreeMap::from([(base + size, base)]) }
    }

    /// `bytes` at an address aligned to `align` (a power of two); with
    /// `no_page_cross`, the range stays within one page (none for more than a page).
    pub fn allocate(&mut self, bytes: u64, align: u64, no_page_cross: bool) -> Option<u64> {
        if no_page_cross && bytes > PAGE_SIZE {
            return None;
        }
        let (end, start, at) = self.free.iter().find_map(|(&end, &start)| {
            let mut at = start.checked_next_multiple_of(align)?;
            if no_page_cross && at / PAGE_SIZE != (at + bytes - 1) / PAGE_SIZE {
                at = at.checked_next_multiple_of(PAGE_SIZE)?;
            }
            (at.checked_add(bytes)? <= end).then_some((end, start, at))
        })?;
        let after = at + bytes;
        if after < end {
            self.free.insert(end, after);
        } else {
            self.free.remove(&end);
        }
        if at > start {
            self.free.insert(at, start);
        }
        Some(at)
    }

    /// Gives `[start, start + bytes)` back, merging it with free neighbours.
    pub fn release(&mut self, start: u64, bytes: u64) {
        let end = start + bytes;
        let start = self.free.remove(&start).unwrap_or(start);
        match self.free.range_mut(end + 1..).next() {
            Some((_, next_start)) if *next_start == end => *next_start = start,
            _ => {
                self.free.insert(end, start);
            }
        }
    }

    /// Number of free ranges (the allocator's bookkeeping).
    pub fn fragments(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0xffff_c000_0000_0000;

    #[test]
    fn allocations_are_aligned_and_disjoint() {
        let mut arena = Arena::new(BASE, 1 << 30);
        let a = arena.allocate(3, 1, false).expect("a");
        let b = arena.allocate(16, 8, false).expect("b");
        let c = arena.allocate(4096, 4096, false).expect("c");
        assert_eq!(a, BASE);
        assert_eq!(b, BASE + 8);
        assert_eq!(c % 4096, 0);
        assert!(c >= b + 16);
    }

    #[test]
    fn no_page_cross_moves_to_the_next_page() {
        let mut arena = Arena::new(BASE, 1 << 30);
        arena.allocate(4000, 8, false).expect("filler");
        let p = arena.allocate(200, 8, true).expect("p");
        assert_eq!(p, BASE + 4096);
        let q = arena.allocate(96, 8, true).expect("q");
        assert_eq!(q, BASE + 4000, "the space left before the page boundary is used when it fits");
    }

    #[test]
    fn released_ranges_coalesce_and_are_reused() {
        let mut arena = Arena::new(BASE, 3 * 4096);
        let a = arena.allocate(4096, 4096, false).expect("a");
        let b = arena.allocate(4096, 4096, false).expect("b");
        let c = arena.allocate(4096, 4096, false).expect("c");
        assert_eq!(arena.allocate(1, 1, false), None, "full");
        arena.release(a, 4096);
        arena.release(c, 4096);
        arena.release(b, 4096);
        assert_eq!(arena.fragments(), 1);
        assert_eq!(arena.allocate(3 * 4096, 4096, false), Some(BASE));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x0061_7265_6e61),
            cases: 64,
            ..proptest::test_runner::Config::default()
        })]

        /// Against a byte map of 8 pages: every allocation is first-fit,
        /// aligned, within one page when asked, and free ranges stay coalesced.
        #[test]
        fn the_arena_is_first_fit_over_a_byte_map(steps in proptest::collection::vec((0u64..2 * PAGE_SIZE, 0u32..13, proptest::bool::ANY, proptest::bool::ANY), 1..60)) {
            const SIZE: u64 = 8 * PAGE_SIZE;
            let mut arena = Arena::new(BASE, SIZE);
            let mut used = vec![false; SIZE as usize];
            let mut live: Vec<(u64, u64)> = Vec::new();
            for (bytes, align_shift, no_page_cross, release) in steps {
                if release && !live.is_empty() {
                    let (at, bytes) = live.remove(bytes as usize % live.len());
                    arena.release(at, bytes);
                    used[(at - BASE) as usize..(at - BASE + bytes) as usize].fill(false);
                } else {
                    let (bytes, align) = (bytes.max(1), 1u64 << align_shift);
                    let mut taken_before = vec![0u64; used.len() + 1];
                    for (i, &u) in used.iter().enumerate() {
                        taken_before[i + 1] = taken_before[i] + u64::from(u);
                    }
                    let fits = |at: u64| {
                        at + bytes <= SIZE
                            && !(no_page_cross && at / PAGE_SIZE != (at + bytes - 1) / PAGE_SIZE)
                            && taken_before[(at + bytes) as usize] == taken_before[at as usize]
                    };
                    // First fit: the lowest free range that holds an aligned (and,
                    // if asked, page-local) placement, at its lowest such address.
                    let expected = (0..SIZE).step_by(align as usize).find(|&at| fits(at));
                    let got = arena.allocate(bytes, align, no_page_cross).map(|at| at - BASE);
                    proptest::prop_assert_eq!(got, expected);
                    if let Some(at) = got {
                        used[at as usize..(at + bytes) as usize].fill(true);
                        live.push((at + BASE, bytes));
                    }
                }
                let free_runs = used.iter().zip(std::iter::once(&true).chain(used.iter())).filter(|(u, before)| !**u && **before).count();
                proptest::prop_assert_eq!(arena.fragments(), free_runs);
            }
        }
    }

    #[test]
    fn requests_beyond_the_arena_fail() {
        let mut arena = Arena::new(BASE, 8192);
        assert_eq!(arena.allocate(8193, 1, false), None);
        assert_eq!(arena.allocate(u64::MAX, 1, false), None);
        assert_eq!(arena.allocate(8192, 1, false), Some(BASE));
    }

    #[test]
    fn an_exact_fit_leaves_no_fragment_and_releases_coalesce_both_ways() {
        let mut arena = Arena::new(BASE, 4 * PAGE_SIZE);
        assert_eq!(arena.fragments(), 1);
        let [a, b, c, d] = [0; 4].map(|_| arena.allocate(PAGE_SIZE, PAGE_SIZE, false).expect("page"));
        assert_eq!([a, b, c, d], [BASE, BASE + PAGE_SIZE, BASE + 2 * PAGE_SIZE, BASE + 3 * PAGE_SIZE]);
        assert_eq!(arena.fragments(), 0, "exact fits leave no empty ranges");
        assert_eq!(arena.allocate(1, 1, false), None);
        arena.release(b, PAGE_SIZE);
        arena.release(d, PAGE_SIZE);
        assert_eq!(arena.fragments(), 2);
        arena.release(c, PAGE_SIZE);
        assert_eq!(arena.fragments(), 1, "c joins the range before and the range after");
        assert_eq!(arena.allocate(3 * PAGE_SIZE, PAGE_SIZE, false), Some(b), "one range of three pages");
        arena.release(b, 3 * PAGE_SIZE);
        arena.release(a, PAGE_SIZE);
        assert_eq!(arena.fragments(), 1);
        assert_eq!(arena.allocate(4 * PAGE_SIZE, PAGE_SIZE, false), Some(BASE), "all of it again");
    }
}
