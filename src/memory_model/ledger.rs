//! Guest frames above the fixed regions, handed out by the VMM.
//!
//! By default the frames of one request are deliberately not physically
//! contiguous: the free list yields every other frame first, so two frames
//! handed out one after the other are never neighbours, and a driver that
//! assumes a multi-page buffer is physically contiguous (the DG/UX page warns
//! against it) gets it wrong visibly. `contiguous` mode hands out runs instead.
//!
//! Bookkeeping is one bit per frame plus a 4-byte free-list entry per frame:
//! about 0.1% of guest RAM.

use kmemvisor_abi::layout::{PAGE_SHIFT, PAGE_SIZE};

/// Guest frames from `first` to `end`.
#[derive(Debug)]
pub struct FrameAllocator {
    /// Frame number of the first managed frame.
    base: u64,
    /// Managed frames.
    count: u64,
    /// One bit per frame: set when in use.
    used: Vec<u64>,
    /// One bit per frame: set when it holds a page table, which the guest
    /// must never get mapped (it would rewrite its own translations).
    tables: Vec<u64>,
    /// Frames to hand out next (from the end); may hold frames that a
    /// contiguous request took meanwhile, which are skipped.
    free_list: Vec<u32>,
    free: u64,
    contiguous: bool,
}

impl FrameAllocator {
    /// Manages the frames of `[first_gpa, end_gpa)`.
    pub fn new(first_gpa: u64, end_gpa: u64, contiguous: bool) -> FrameAllocator {
        let base = first_gpa >> PAGE_SHIFT;
        let count = (end_gpa >> PAGE_SHIFT).saturating_sub(base);
        // Popped from the end: even offsets first, then odd ones, each ascending.
        let order = (0..count).step_by(2).chain((1..count).step_by(2));
        let mut free_list: Vec<u32> = order.filter_map(|i| u32::try_from(i).ok()).collect();
        free_list.reverse();
        let words = count.div_ceil(64) as usize;
        FrameAllocator { base, count, used: vec![0; words], tables: vec![0; words], free_list, free: count, contiguous }
    }

    fn is_used(&self, index: u64) -> bool {
        bit(&self.used, index)
    }

    fn set_used(&mut self, index: u64, used: bool) {
        set_bit(&mut self.used, index, used);
    }

    /// The index of the managed frame at `gpa`.
    fn index(&self, gpa: u64) -> Option<u64> {
        (gpa >> PAGE_SHIFT).checked_sub(self.base).filter(|&i| i < self.count)
    }

    /// One frame for a page table, remembered as such.
    pub fn allocate_table(&mut self) -> Option<u64> {
        let frame = *self.allocate(1)?.first()?;
        if let Some(index) = self.index(frame) {
            set_bit(&mut self.tables, index, true);
        }
        Some(frame)
    }

    /// Whether the frame at `gpa` holds a page table.
    pub fn is_table(&self, gpa: u64) -> bool {
        self.index(gpa).is_some_and(|i| bit(&self.tables, i))
    }

    /// Frames not in use.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Bytes of bookkeeping.
    pub fn bookkeeping_bytes(&self) -> u64 {
        ((self.used.capacity() + self.tables.capacity()) * 8 + self.free_list.capacity() * 4) as u64
    }

    /// `n` frames (guest-physical addresses), or `None` if there are not
    /// enough (nothing is taken then).
    pub fn allocate(&mut self, n: u64) -> Option<Vec<u64>> {
        if n > self.free {
            return None;
        }
        let indices = if self.contiguous { self.take_run(n)? } else { self.take_scattered(n) };
        Some(indices.into_iter().map(|i| (self.base + i) << PAGE_SHIFT).collect())
    }

    fn take_scattered(&mut self, n: u64) -> Vec<u64> {
        let mut taken = Vec::with_capacity(n as usize);
        while (taken.len() as u64) < n {
            let Some(index) = self.free_list.pop() else { break };
            let index = u64::from(index);
            if !self.is_used(index) {
                self.set_used(index, true);
                taken.push(index);
            }
        }
        self.free -= taken.len() as u64;
        taken
    }

    fn take_run(&mut self, n: u64) -> Option<Vec<u64>> {
        let mut run = 0;
        for index in 0..self.count {
            run = if self.is_used(index) { 0 } else { run + 1 };
            if run == n {
                let start = index + 1 - n;
                for i in start..=index {
                    self.set_used(i, true);
                }
                self.free -= n;
                return Some((start..=index).collect());
            }
        }
        None
    }

    /// Gives the frame at `gpa` back; frames it does not manage or that are
    /// free already are ignored (and reported as `false`).
    pub fn release(&mut self, gpa: u64) -> bool {
        let Some(index) = self.index(gpa).filter(|_| gpa.is_multiple_of(PAGE_SIZE)) else {
            return false;
        };
        if !self.is_used(index) {
            return false;
        }
        self.set_used(index, false);
        set_bit(&mut self.tables, index, false);
        self.free += 1;
        if let Ok(index) = u32::try_from(index) {
            self.free_list.push(index);
        }
        true
    }
}

fn bit(bits: &[u64], index: u64) -> bool {
    bits[(index / 64) as usize] & (1 << (index % 64)) != 0
}

fn set_bit(bits: &mut [u64], index: u64, value: bool) {
    let word = &mut bits[(index / 64) as usize];
    if value {
        *word |= 1 << (index % 64);
    } else {
        *word &= !(1 << (index % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x0110_0000;

    #[test]
    fn scattered_frames_are_never_neighbours() {
        let mut frames = FrameAllocator::new(BASE, BASE + 64 * PAGE_SIZE, false);
        let got = frames.allocate(8).expect("frames");
        assert_eq!(got.len(), 8);
        for pair in got.windows(2) {
            assert_ne!(pair[1], pair[0] + PAGE_SIZE, "{got:x?}");
            assert_ne!(pair[0], pair[1] + PAGE_SIZE, "{got:x?}");
        }
        assert!(got.iter().all(|&g| (BASE..BASE + 64 * PAGE_SIZE).contains(&g) && g.is_multiple_of(PAGE_SIZE)));
        assert_eq!(frames.free_frames(), 56);
    }

    #[test]
    fn contiguous_mode_hands_out_runs() {
        let mut frames = FrameAllocator::new(BASE, BASE + 16 * PAGE_SIZE, true);
        let a = frames.allocate(3).expect("run");
        assert_eq!(a, vec![BASE, BASE + PAGE_SIZE, BASE + 2 * PAGE_SIZE]);
        assert!(frames.release(BASE + PAGE_SIZE));
        let b = frames.allocate(2).expect("run");
        assert_eq!(b, vec![BASE + 3 * PAGE_SIZE, BASE + 4 * PAGE_SIZE], "the hole of one frame is too small");
        assert_eq!(frames.allocate(1), Some(vec![BASE + PAGE_SIZE]));
    }

    #[test]
    fn every_frame_can_be_allocated_once_and_exhaustion_takes_nothing() {
        let mut frames = FrameAllocator::new(BASE, BASE + 10 * PAGE_SIZE, false);
        let mut all = frames.allocate(10).expect("all");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 10);
        assert_eq!(frames.allocate(1), None);
        assert!(frames.release(all[3]));
        assert_eq!(frames.allocate(2), None);
        assert_eq!(frames.free_frames(), 1);
        assert_eq!(frames.allocate(1), Some(vec![all[3]]));
    }

    #[test]
    fn page_table_frames_are_known_until_released() {
        let mut frames = FrameAllocator::new(BASE, BASE + 8 * PAGE_SIZE, false);
        let table = frames.allocate_table().expect("table");
        let data = frames.allocate(1).expect("data")[0];
        assert!(frames.is_table(table) && !frames.is_table(data));
        assert!(!frames.is_table(u64::MAX) && !frames.is_table(0));
        assert!(frames.release(table));
        assert!(!frames.is_table(table));
    }

    #[test]
    fn bad_releases_are_ignored() {
        let mut frames = FrameAllocator::new(BASE, BASE + 4 * PAGE_SIZE, false);
        assert!(!frames.release(BASE), "free already");
        assert!(!frames.release(BASE - PAGE_SIZE), "below the range");
        assert!(!frames.release(BASE + 4 * PAGE_SIZE), "above the range");
        assert!(!frames.release(BASE + 1), "unaligned");
        assert!(!frames.release(u64::MAX));
        assert_eq!(frames.free_frames(), 4);
    }

    #[test]
    fn bookkeeping_stays_under_one_percent_of_ram() {
        let ram = 64u64 << 20;
        let frames = FrameAllocator::new(BASE, ram, false);
        assert!(frames.bookkeeping_bytes() * 100 < ram, "{} bytes", frames.bookkeeping_bytes());
    }
}
