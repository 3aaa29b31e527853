//! The DMA ledger: which frames a transfer queued or running on the DMA
//! engine will touch, and which frames the device wrote.
//!
//! In the spirit of Linux's DMA-API debugging, the device's future is known
//! at the doorbell: a driver that ends a hand-off (unhide, detach, unpin,
//! unwire, release, free) of a frame a transfer still touches is caught at
//! that call, however the device's timing falls — not only when the
//! transfer happens to run after it.

use super::{FrameLedger, page_of};

impl FrameLedger {
    /// A transfer on the DMA engine will touch `frames` (guest-physical
    /// addresses; a frame named twice counts twice).
    pub fn begin_transfer(&mut self, frames: &[u64]) {
        for &gpa in frames {
            *self.transfers.entry(page_of(gpa)).or_insert(0) += 1;
        }
    }

    /// The transfer [`FrameLedger::begin_transfer`] announced with `frames`
    /// ran or was dropped.
    pub fn end_transfer(&mut self, frames: &[u64]) {
        for &gpa in frames {
            let frame = page_of(gpa);
            if let Some(n) = self.transfers.get_mut(&frame) {
                *n -= 1;
                if *n == 0 {
                    self.transfers.remove(&frame);
                }
            }
        }
    }

    /// Transfers queued or running that touch the frame at `gpa`.
    pub fn transfers_on(&self, gpa: u64) -> u32 {
        self.transfers.get(&page_of(gpa)).copied().unwrap_or(0)
    }

    /// The first of `frames` that a queued or running transfer touches.
    pub fn first_in_transfer(&self, frames: impl IntoIterator<Item = u64>) -> Option<u64> {
        frames.into_iter().map(page_of).find(|frame| self.transfers.contains_key(frame))
    }

    /// Whether the frame at `gpa` is handed off to a device: hidden with
    /// `xmemdma` (AIX), or wired the DG/UX way — DG/UX wired memory, or any
    /// frame wired above its initial count (`vm_wire_memory`). The AIX pinned
    /// heap is pinned from birth, not handed off: AIX drivers hide.
    pub fn handed_off(&self, gpa: u64) -> bool {
        let frame = page_of(gpa);
        self.hides.contains_key(&frame)
            || self.counts.get(&frame).is_some_and(|c| c.wires > c.initial_wires || (c.wires > 0 && !c.pinned_from_birth))
    }

    /// The device wrote `frames`: each counted one remembers it until it is
    /// unwired ([`FrameLedger::take_device_write`]).
    pub fn device_wrote(&mut self, frames: &[u64]) {
        for &gpa in frames {
            if let Some(c) = self.counts.get_mut(&page_of(gpa)) {
                c.device_wrote = true;
            }
        }
    }

    /// Whether the device wrote the frame at `gpa` since this was last asked,
    /// and forgets it.
    pub fn take_device_write(&mut self, gpa: u64) -> bool {
        self.counts.get_mut(&page_of(gpa)).is_some_and(|c| std::mem::take(&mut c.device_wrote))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FrameLedger, Owner, Role};
    use kmemvisor_abi::layout::PAGE_SIZE;

    fn ledger() -> (FrameLedger, u64, u64) {
        let mut frames = FrameLedger::new(0x10_0000, 0x40_0000, false);
        let [a, b] = frames.allocate(2, Role::KernelMemory).expect("frames")[..] else { panic!("two frames") };
        frames.own(a, Owner { pid: 0, va: 0x1000 }, 1, false);
        (frames, a, b)
    }

    #[test]
    fn transfers_are_counted_per_frame_until_each_ends() {
        let (mut frames, a, b) = ledger();
        frames.begin_transfer(&[a, a + 8, b]);
        frames.begin_transfer(&[b + PAGE_SIZE - 1]);
        assert_eq!((frames.transfers_on(a), frames.transfers_on(b)), (2, 2));
        assert_eq!(frames.first_in_transfer([a + PAGE_SIZE * 40, b]), Some(b));
        frames.end_transfer(&[a, a + 8, b]);
        assert_eq!((frames.transfers_on(a), frames.transfers_on(b)), (0, 1));
        assert_eq!(frames.first_in_transfer([a]), None);
        frames.end_transfer(&[b]);
        frames.end_transfer(&[b]);
        assert_eq!(frames.transfers_on(b), 0, "an end without a begin is ignored");
        assert_eq!(frames.first_in_transfer([a, b]), None);
    }

    #[test]
    fn hidden_frames_dgux_wired_memory_and_frames_wired_above_their_floor_are_handed_off() {
        let mut frames = FrameLedger::new(0x10_0000, 0x40_0000, false);
        let [wired, unwired, pinned_heap, hidden] = frames.allocate(4, Role::KernelMemory).expect("frames")[..] else {
            panic!("four frames")
        };
        let owner = Owner { pid: 0, va: 0x1000 };
        frames.own(wired, owner, 1, false);
        frames.own(unwired, owner, 0, false);
        frames.own(pinned_heap, owner, 1, true);
        frames.own(hidden, owner, 0, false);
        frames.hide(&[hidden]).expect("hide");
        let handed = |f: &FrameLedger| [wired, unwired, pinned_heap, hidden].map(|gpa| f.handed_off(gpa + 8));
        assert_eq!(handed(&frames), [true, false, false, true]);
        frames.wire(&[unwired, pinned_heap]).expect("wire");
        assert_eq!(handed(&frames), [true, true, true, true], "wired above the floor");
        frames.unwire(&[unwired, pinned_heap], Default::default()).expect("unwire");
        frames.unhide(&[hidden]).expect("unhide");
        assert_eq!(handed(&frames), [true, false, false, false]);
    }

    #[test]
    fn a_device_write_is_remembered_once_and_only_for_counted_frames() {
        let (mut frames, a, b) = ledger();
        frames.device_wrote(&[a + 16, b]);
        assert!(frames.take_device_write(a));
        assert!(!frames.take_device_write(a), "asked once");
        assert!(!frames.take_device_write(b), "b was never handed out with counts");
    }
}
