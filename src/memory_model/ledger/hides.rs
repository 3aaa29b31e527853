//! Hides and aliases: which frames are hidden for DMA and how many times,
//! which frames the guest aliased with `vm_map_physical_memory`, and the
//! role checks that say what may be hidden, aliased or touched by a device.

use std::collections::BTreeMap;

use kmemvisor_abi::layout::PAGE_SIZE;

use super::{FrameLedger, LedgerError, Role};

impl FrameLedger {
    /// How many times the frame holding `gpa` is hidden (0: not hidden).
    pub fn hides(&self, gpa: u64) -> u32 {
        self.hides.get(&(gpa & !(PAGE_SIZE - 1))).copied().unwrap_or(0)
    }

    /// Whether `gpa` may be hidden: a RAM frame whose role allows DMA (invariant 2).
    pub fn may_hide(&self, gpa: u64) -> Result<(), LedgerError> {
        let frame = gpa & !(PAGE_SIZE - 1);
        match self.role(frame) {
            None => Err(LedgerError::NotRam(gpa)),
            Some(role) if !role.allows_dma() => Err(LedgerError::Role { frame, role }),
            Some(_) if self.is_paged_out(frame) => Err(LedgerError::PagedOut(frame)),
            Some(_) => Ok(()),
        }
    }

    /// One more hide of each of `frames`, all or nothing; returns the frames
    /// whose first hide this was (they must leave the vCPUs).
    pub fn hide(&mut self, frames: &[u64]) -> Result<Vec<u64>, LedgerError> {
        if let Some(err) = frames.iter().find_map(|&gpa| self.may_hide(gpa).err()) {
            return Err(err);
        }
        let mut first = Vec::new();
        for &gpa in frames {
            let count = self.hides.entry(gpa & !(PAGE_SIZE - 1)).or_insert(0);
            *count += 1;
            if *count == 1 {
                first.push(gpa & !(PAGE_SIZE - 1));
            }
        }
        Ok(first)
    }

    /// One hide less of each of `frames`, all or nothing; returns the frames
    /// whose last hide this was (they are back for the vCPUs).
    pub fn unhide(&mut self, frames: &[u64]) -> Result<Vec<u64>, LedgerError> {
        let mut wanted: BTreeMap<u64, u32> = BTreeMap::new();
        for &gpa in frames {
            *wanted.entry(gpa & !(PAGE_SIZE - 1)).or_insert(0) += 1;
        }
        if let Some((&frame, _)) = wanted.iter().find(|&(&frame, &n)| self.hides(frame) < n) {
            return Err(LedgerError::NotHidden(frame));
        }
        let mut last = Vec::new();
        for (frame, n) in wanted {
            if let Some(count) = self.hides.get_mut(&frame) {
                *count -= n;
                if *count == 0 {
                    self.hides.remove(&frame);
                    last.push(frame);
                }
            }
        }
        Ok(last)
    }

    /// Hidden frames and their counts.
    pub fn hidden(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.hides.iter().map(|(&frame, &count)| (frame, count))
    }

    /// Why the device may not touch the frame holding `gpa`, if it may not
    /// (invariant 4): it is not RAM, or its role never allows DMA.
    pub fn dma_refusal(&self, gpa: u64) -> Option<LedgerError> {
        self.may_hide(gpa).err()
    }

    /// Whether the guest may get an alias of the frame at `gpa`: RAM handed
    /// out or free, never a page table or a fixed frame (invariant 1).
    pub fn may_alias(&self, gpa: u64) -> Result<(), LedgerError> {
        let frame = gpa & !(PAGE_SIZE - 1);
        match self.role(frame) {
            None => Err(LedgerError::NotRam(gpa)),
            Some(Role::Free | Role::KernelMemory | Role::ProcessPage) => Ok(()),
            Some(role) => Err(LedgerError::Role { frame, role }),
        }
    }

    /// Records that kernel page `va` is now an alias of the frame at `gpa`.
    pub fn add_alias(&mut self, gpa: u64, va: u64) {
        self.aliases.entry(gpa & !(PAGE_SIZE - 1)).or_default().insert(va);
    }

    /// Records that kernel page `va` no longer aliases the frame at `gpa`.
    pub fn remove_alias(&mut self, gpa: u64, va: u64) {
        let frame = gpa & !(PAGE_SIZE - 1);
        if let Some(vas) = self.aliases.get_mut(&frame) {
            vas.remove(&va);
            if vas.is_empty() {
                self.aliases.remove(&frame);
            }
        }
    }

    /// Every alias as (frame, kernel page or process page key), for the
    /// invariant checks: the services only add and remove them.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn all_aliases(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.aliases.iter().flat_map(|(&frame, vas)| vas.iter().map(move |&va| (frame, va)))
    }

    /// The aliases of the frame at `gpa` (for tests: the services only add and remove them).
    #[cfg(test)]
    pub fn aliases(&self, gpa: u64) -> impl Iterator<Item = u64> + '_ {
        self.aliases.get(&(gpa & !(PAGE_SIZE - 1))).into_iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{BASE, ledger};
    use super::*;

    #[test]
    fn only_data_frames_of_ram_are_hidden_and_a_hidden_frame_is_never_released() {
        let mut frames = ledger(8, false);
        frames.assign(0x1000, 1, Role::CpuTables);
        let data = frames.allocate(1, Role::ProcessPage).expect("data")[0];
        let table = frames.allocate_table().expect("table");
        assert_eq!(frames.hide(&[data, 0x1000]), Err(LedgerError::Role { frame: 0x1000, role: Role::CpuTables }));
        assert_eq!(frames.hides(data), 0, "all or nothing");
        assert_eq!(frames.hide(&[table]), Err(LedgerError::Role { frame: table, role: Role::PageTable }));
        assert_eq!(frames.hide(&[0xd000_0000]), Err(LedgerError::NotRam(0xd000_0000)));
        let free = BASE + 7 * PAGE_SIZE;
        assert_eq!(frames.role(free), Some(Role::Free));
        assert_eq!(frames.hide(&[free]), Err(LedgerError::Role { frame: free, role: Role::Free }));
        assert_eq!(frames.hide(&[data + 8]), Ok(vec![data]));
        assert_eq!(frames.hide(&[data]), Ok(vec![]), "a nested hide");
        assert_eq!(frames.hides(data + 100), 2);
        assert_eq!(frames.release(data), Err(LedgerError::Hidden(data)));
        assert_eq!(frames.release_refusal([table, data]), Some(LedgerError::Hidden(data)));
        assert_eq!(frames.release_refusal([table, data + 0x123]), Some(LedgerError::Hidden(data)), "any byte of a hidden frame");
        assert_eq!(frames.dma_refusal(data), None);
        assert_eq!(frames.dma_refusal(table), Some(LedgerError::Role { frame: table, role: Role::PageTable }));
        assert_eq!(frames.unhide(&[data, data, data]), Err(LedgerError::NotHidden(data)), "more unhides than hides");
        assert_eq!(frames.unhide(&[data]), Ok(vec![]));
        assert_eq!(frames.unhide(&[data]), Ok(vec![data]));
        assert_eq!(frames.unhide(&[data]), Err(LedgerError::NotHidden(data)));
        assert_eq!(frames.release(data), Ok(true));
        assert_eq!(frames.check(), Ok(()));
    }

    #[test]
    fn hides_and_aliases_name_any_byte_of_a_frame_and_are_listed() {
        let mut frames = ledger(8, false);
        let [a, b] = frames.allocate(2, Role::KernelMemory).expect("frames")[..] else { panic!("two frames") };
        assert_eq!(frames.hide(&[a + 0x10, b, b]), Ok(vec![a, b]));
        assert_eq!(frames.hidden().collect::<Vec<_>>(), [(a, 1), (b, 2)]);
        assert_eq!(frames.unhide(&[a + 0xfff, b + 8]), Ok(vec![a]));
        assert_eq!(frames.hidden().collect::<Vec<_>>(), [(b, 1)]);
        frames.add_alias(a + 0x20, 0xffff_d000_0000_0000);
        frames.add_alias(a, 0xffff_d000_0000_1000);
        assert_eq!(frames.aliases(a + 0x30).collect::<Vec<_>>(), [0xffff_d000_0000_0000, 0xffff_d000_0000_1000]);
        frames.remove_alias(a + 0x40, 0xffff_d000_0000_0000);
        assert_eq!(frames.aliases(a).collect::<Vec<_>>(), [0xffff_d000_0000_1000]);
        assert_eq!(frames.aliases(b).count(), 0);
    }
}
