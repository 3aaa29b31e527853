//! A range of kernel virtual addresses, handed out first-fit.

use std::collections::BTreeMap;

use kmemvisor_abi::layout::PAGE_SIZE;

/// Free ranges of one arena, keyed by start, coalesced.
#[derive(Debug)]
pub struct Arena {
    free: BTreeMap<u64, u64>,
}

impl Arena {
    /// The arena `[base, base + size)`, all free.
    pub fn new(base: u64, size: u64) -> Arena {
        Arena { free: BTreeMap::from([(base, size)]) }
    }

    /// `bytes` at an address aligned to `align` (a power of two); with
    /// `no_page_cross`, the range stays within one page.
    pub fn allocate(&mut self, bytes: u64, align: u64, no_page_cross: bool) -> Option<u64> {
        let (start, len, at) = self.free.iter().find_map(|(&start, &len)| {
            let end = start.checked_add(len)?;
            let mut at = start.checked_next_multiple_of(align)?;
            if no_page_cross && at / PAGE_SIZE != (at + bytes - 1) / PAGE_SIZE {
                at = at.checked_next_multiple_of(PAGE_SIZE)?;
            }
            (at.checked_add(bytes)? <= end).then_some((start, len, at))
        })?;
        self.free.remove(&start);
        if at > start {
            self.free.insert(start, at - start);
        }
        let tail = start + len - (at + bytes);
        if tail > 0 {
            self.free.insert(at + bytes, tail);
        }
        Some(at)
    }

    /// Gives `[start, start + bytes)` back, merging it with free neighbours.
    pub fn release(&mut self, start: u64, bytes: u64) {
        let (mut start, mut bytes) = (start, bytes);
        if let Some((&before, &len)) = self.free.range(..start).next_back()
            && before + len == start
        {
            self.free.remove(&before);
            start = before;
            bytes += len;
        }
        if let Some(len) = self.free.remove(&(start + bytes)) {
            bytes += len;
        }
        self.free.insert(start, bytes);
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
