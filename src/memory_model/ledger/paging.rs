//! Paging state of frames: which paging device holds a copy of a frame's
//! page, and whether the page is out (its contents only on the device).
//!
//! A frame keeps its role, owner and counts while its page is out: the page
//! still belongs to its object, only its contents live in the device's file.
//! A device holds the page of frame `f` at byte `f` of its file (sparse
//! files), so no slot table is needed: the ledger's record of the device is
//! the whole of the mapping. The copy stays valid after a page-in, until the
//! page is modified or the frame is released, so a clean page can be evicted
//! again without a write — which is exactly how a modification the kernel
//! never heard of (a device write without a modified mark) gets lost.

use kmemvisor_abi::layout::{ARENA_SIZE, UNWIRED_ARENA_VA};

use super::{Counts, FrameLedger, LedgerError, Role, page_of};

/// A paging device, by the id the pager gave it.
pub type DeviceId = u32;

/// The paging state of one frame that has a copy on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backing {
    /// The device whose file holds the copy.
    pub device: DeviceId,
    /// The page is out: its contents are only on the device.
    pub out: bool,
}

impl FrameLedger {
    /// Why the page of the frame at `gpa` may not be paged out, if it may
    /// not: only unpinned, unwired pages of virtual memory objects and of
    /// DG/UX kernel unwired memory (at wire count 0, with no physical
    /// mapping) that no device holds or touches are pageable (wired and
    /// pinned memory is never paged).
    pub fn page_out_refusal(&self, gpa: u64) -> Option<LedgerError> {
        let frame = page_of(gpa);
        match self.role(frame) {
            None => return Some(LedgerError::NotRam(gpa)),
            Some(Role::VmObject) => {}
            // An alias would be a second entry whose accessed bit the clock does not read.
            Some(Role::KernelMemory) if self.is_dgux_unwired(frame) && !self.aliases.contains_key(&frame) => {}
            Some(role) => return Some(LedgerError::Role { frame, role }),
        }
        if self.backing(frame).is_some_and(|b| b.out) {
            return Some(LedgerError::PagedOut(frame));
        }
        self.held(frame, self.counts(frame))
    }

    /// Why the page of `frame` (whose counts are `counts`) must stay as it
    /// is in memory: pinned, wired above its initial count, hidden, or in a
    /// DMA transfer.
    fn held(&self, frame: u64, counts: Option<&Counts>) -> Option<LedgerError> {
        if let Some(c) = counts {
            if c.is_pinned() {
                return Some(LedgerError::Pinned { frame, pins: c.pins.max(1) });
            }
            if c.wires > c.initial_wires {
                return Some(LedgerError::Wired { frame, count: c.wires, initial: c.initial_wires });
            }
        }
        if self.hides(frame) > 0 {
            return Some(LedgerError::Hidden(frame));
        }
        (self.transfers_on(frame) > 0).then_some(LedgerError::InTransfer(frame))
    }

    /// Keeps of `frames` (pages in memory of virtual memory objects) those
    /// `vm_writep` writes: modified, and not held (pinned, wired, hidden or
    /// in a transfer). One lookup of each frame's counts: a flush of many
    /// pages is one pass.
    pub fn retain_write_back(&self, frames: &mut Vec<u64>) {
        frames.retain(|&gpa| {
            let frame = page_of(gpa);
            let counts = self.counts.get(&frame);
            counts.is_some_and(|c| c.marks.modified) && self.held(frame, counts).is_none()
        });
    }

    /// The paging state of the frame at `gpa`, if a device holds a copy of it.
    pub fn backing(&self, gpa: u64) -> Option<Backing> {
        self.backing.get(&page_of(gpa)).copied()
    }

    /// Whether the page of the frame at `gpa` is out.
    pub fn is_paged_out(&self, gpa: u64) -> bool {
        self.backing(gpa).is_some_and(|b| b.out)
    }

    /// The page of the frame at `gpa` was written to `device` and is now out.
    pub fn paged_out(&mut self, gpa: u64, device: DeviceId) {
        self.backing.insert(page_of(gpa), Backing { device, out: true });
        self.set_modified(gpa, false);
    }

    /// The page of the frame at `gpa` was written to `device` and stays in:
    /// clean, with a current copy, and unreferenced — the first the clock
    /// takes, without a write (AIX: a page `vm_writep` wrote is a
    /// replacement candidate).
    pub fn written_back(&mut self, gpa: u64, device: DeviceId) {
        self.backing.insert(page_of(gpa), Backing { device, out: false });
        if let Some(c) = self.counts.get_mut(&page_of(gpa)).filter(|c| c.wired_memory) {
            c.marks.modified = false;
            c.marks.referenced = false;
        }
    }

    /// Sets or clears the referenced mark of the frame at `gpa` (the
    /// pager's second-chance bit; DG/UX unwires only ever set it).
    pub fn set_referenced(&mut self, gpa: u64, referenced: bool) {
        if let Some(c) = self.counts.get_mut(&page_of(gpa)).filter(|c| c.wired_memory) {
            c.marks.referenced = referenced;
        }
    }

    /// Whether the frame at `gpa` is a page of the DG/UX kernel unwired
    /// arena: the DG/UX memory the pager may take, whenever its wire count
    /// is 0 and it has no guest-visible alias. Its owner's page is the
    /// address that maps it, whose accessed bit the pager reads.
    pub fn is_dgux_unwired(&self, gpa: u64) -> bool {
        let frame = page_of(gpa);
        let arena = UNWIRED_ARENA_VA..UNWIRED_ARENA_VA + ARENA_SIZE;
        self.role(frame) == Some(Role::KernelMemory)
            && self.counts.get(&frame).is_some_and(|c| c.owner.pid == 0 && arena.contains(&c.owner.va))
    }

    /// The frames of DG/UX kernel unwired memory ([`FrameLedger::is_dgux_unwired`]), with their kernel page.
    pub fn dgux_unwired(&self) -> Vec<(u64, u64)> {
        let frames = self.counts.iter().filter(|&(&frame, _)| self.is_dgux_unwired(frame));
        frames.map(|(&frame, c)| (frame, c.owner.va)).collect()
    }

    /// Pageable pages in memory: frames of virtual memory objects and of
    /// DG/UX kernel unwired memory whose page is not out.
    pub fn resident_pageable_pages(&self) -> u64 {
        let objects = self.roles.iter().filter(|&&r| r == Role::VmObject).count() as u64;
        let unwired = self.counts.keys().filter(|&&frame| self.is_dgux_unwired(frame)).count() as u64;
        (objects + unwired).saturating_sub(self.pages_out())
    }

    /// The page of the frame at `gpa` is in again; the device keeps its copy.
    pub fn paged_in(&mut self, gpa: u64) {
        if let Some(b) = self.backing.get_mut(&page_of(gpa)) {
            b.out = false;
        }
    }

    /// The device's copy of the frame at `gpa` no longer counts (the page
    /// was modified, released, or its device removed).
    pub fn drop_backing(&mut self, gpa: u64) {
        self.backing.remove(&page_of(gpa));
    }

    /// Frames whose copy is on `device`, with whether each page is out.
    pub fn backed_by(&self, device: DeviceId) -> Vec<(u64, bool)> {
        self.backing.iter().filter(|(_, b)| b.device == device).map(|(&f, b)| (f, b.out)).collect()
    }

    /// The frames whose pages are out.
    pub fn frames_out(&self) -> Vec<u64> {
        self.backing.iter().filter(|(_, b)| b.out).map(|(&f, _)| f).collect()
    }

    /// Frames whose pages are out.
    pub fn pages_out(&self) -> u64 {
        self.backing.values().filter(|b| b.out).count() as u64
    }

    /// Byte offset of the frame at `gpa`'s page in a paging device's file.
    pub fn device_offset(gpa: u64) -> u64 {
        page_of(gpa)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ledger;
    use super::super::{Marks, Owner, PinOrigin, TransferRanges};
    use super::*;

    #[test]
    fn only_free_standing_object_pages_are_pageable_and_an_out_page_stays_its_objects() {
        let mut frames = ledger(8, false);
        let [object, kernel, pinned, hidden] = frames.allocate(4, Role::VmObject).expect("frames")[..] else {
            panic!("four frames")
        };
        let owner = Owner { pid: 0, va: 0x1000 };
        for f in [object, pinned, hidden] {
            frames.own(f, owner, 0, false);
        }
        assert_eq!(frames.release(kernel), Ok(true));
        let kernel = frames.allocate(1, Role::KernelMemory).expect("frame")[0];
        frames.pin(&[(pinned, owner)], PinOrigin { service: "pin", vcpu: 0, rip: 0 }, 8).expect("pin");
        frames.hide(&[hidden]).expect("hide");
        assert_eq!(frames.page_out_refusal(object + 8), None);
        assert_eq!(frames.page_out_refusal(kernel), Some(LedgerError::Role { frame: kernel, role: Role::KernelMemory }));
        assert_eq!(frames.page_out_refusal(pinned), Some(LedgerError::Pinned { frame: pinned, pins: 1 }));
        assert_eq!(frames.page_out_refusal(hidden), Some(LedgerError::Hidden(hidden)));
        assert_eq!(frames.page_out_refusal(!0xfff), Some(LedgerError::NotRam(!0xfff)));
        frames.begin_transfer(&TransferRanges { reads: Some(object..object + 1), writes: None });
        assert_eq!(frames.page_out_refusal(object), Some(LedgerError::InTransfer(object)));
        frames.end_transfer(&TransferRanges { reads: Some(object..object + 1), writes: None });
        frames.set_modified(object, true);
        frames.paged_out(object, 3);
        assert_eq!(frames.backing(object + 5), Some(Backing { device: 3, out: true }));
        assert!(frames.is_paged_out(object) && !frames.marks(object).modified, "written: clean");
        assert_eq!(frames.page_out_refusal(object), Some(LedgerError::PagedOut(object)));
        assert_eq!(frames.hide(&[object]), Err(LedgerError::PagedOut(object)), "a device may not touch an out page");
        assert_eq!(frames.role(object), Some(Role::VmObject));
        assert_eq!((frames.pages_out(), frames.backed_by(3)), (1, vec![(object, true)]));
        assert_eq!(frames.check(), Ok(()));
        frames.paged_in(object);
        assert_eq!(frames.backing(object), Some(Backing { device: 3, out: false }), "the copy stays");
        assert_eq!(frames.release(object), Ok(true));
        assert_eq!(frames.backing(object), None, "a released frame forgets its copy");
        assert_eq!(FrameLedger::device_offset(object + 9), object);
    }

    #[test]
    fn a_write_back_takes_the_modified_pages_not_held_and_leaves_them_in_clean_and_unreferenced() {
        let mut frames = ledger(8, false);
        let all = frames.allocate(6, Role::VmObject).expect("frames");
        let [clean, modified, pinned, hidden, moving, wired] = all[..] else { panic!("six frames") };
        let owner = Owner { pid: 0, va: 0x1000 };
        for &f in &all {
            frames.own(f, owner, 0, false);
            frames.set_modified(f, f != clean);
            frames.set_referenced(f, true);
        }
        frames.pin(&[(pinned, owner)], PinOrigin { service: "pin", vcpu: 0, rip: 0 }, 8).expect("pin");
        frames.hide(&[hidden]).expect("hide");
        frames.begin_transfer(&TransferRanges { reads: None, writes: Some(moving + 8..moving + 9) });
        frames.wire(&[wired]).expect("wire");
        let mut candidates = all.clone();
        frames.retain_write_back(&mut candidates);
        assert_eq!(candidates, [modified], "only the modified page that nothing holds");
        frames.written_back(modified + 5, 2);
        assert_eq!(frames.backing(modified), Some(Backing { device: 2, out: false }), "in, with its copy");
        assert_eq!(frames.marks(modified), Marks::default(), "clean and unreferenced");
        assert_eq!(frames.pages_out(), 0);
        let mut again = all.clone();
        frames.retain_write_back(&mut again);
        assert_eq!(again, Vec::<u64>::new(), "written: nothing left to write");
        assert_eq!(frames.check(), Ok(()));
    }
}
