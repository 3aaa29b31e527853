//! The DMA ledger: which frames a transfer queued or running on the DMA
//! engine will touch, and which frames the device wrote.
//!
//! In the spirit of Linux's DMA-API debugging, the device's future is known
//! at the doorbell: a driver that ends a hand-off (unhide, detach, unpin,
//! unwire, release, free) of a frame a transfer still touches is caught at
//! that call, however the device's timing falls — not only when the
//! transfer happens to run after it.

use std::ops::Range;

use kmemvisor_abi::layout::PAGE_SIZE;

use super::{FrameLedger, page_of};

/// The frames of `range`, page-aligned: from the frame of its start to the
/// end of the frame of its last byte (empty for an empty range).
fn frames_of(range: &Range<u64>) -> Range<u64> {
    if range.is_empty() {
        return 0..0;
    }
    page_of(range.start)..page_of(range.end - 1).saturating_add(PAGE_SIZE)
}

impl FrameLedger {
    /// A transfer on the DMA engine will touch `ranges` of guest-physical
    /// memory. A transfer touches at most two ranges and the engine runs
    /// one per channel, so a short list beats a per-frame table: a doorbell
    /// costs two pushes, not a map update per page.
    pub fn begin_transfer(&mut self, ranges: &[Range<u64>]) {
        self.transfers.extend(ranges.iter().map(frames_of).filter(|r| !r.is_empty()));
    }

    /// The transfer [`FrameLedger::begin_transfer`] announced with `ranges`
    /// ran or was dropped.
    pub fn end_transfer(&mut self, ranges: &[Range<u64>]) {
        for range in ranges.iter().map(frames_of) {
            if let Some(i) = self.transfers.iter().position(|r| *r == range) {
                self.transfers.swap_remove(i);
            }
        }
    }

    /// Transfers queued or running that touch the frame at `gpa`.
    pub fn transfers_on(&self, gpa: u64) -> u32 {
        self.transfers.iter().filter(|r| r.contains(&gpa)).count() as u32
    }

    /// The first of `frames` that a queued or running transfer touches.
    pub fn first_in_transfer(&self, frames: impl IntoIterator<Item = u64>) -> Option<u64> {
        frames.into_iter().map(page_of).find(|&frame| self.transfers_on(frame) > 0)
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

    /// The device wrote `range`: its frames remember it until they are
    /// unwired or freed ([`FrameLedger::take_device_write`]). Kept as merged
    /// ranges: drivers write the same buffers again and again.
    pub fn device_wrote(&mut self, range: &Range<u64>) {
        let mut merged = frames_of(range);
        if merged.is_empty() {
            return;
        }
        self.written.retain(|r| {
            let touches = r.start <= merged.end && merged.start <= r.end;
            if touches {
                merged = merged.start.min(r.start)..merged.end.max(r.end);
            }
            !touches
        });
        self.written.push(merged);
    }

    /// Whether the device wrote the frame at `gpa` since this was last asked,
    /// and forgets it.
    pub fn take_device_write(&mut self, gpa: u64) -> bool {
        let frame = page_of(gpa);
        let Some(i) = self.written.iter().position(|r| r.contains(&frame)) else { return false };
        let r = self.written.swap_remove(i);
        self.written.extend([r.start..frame, frame + PAGE_SIZE..r.end].into_iter().filter(|r| !r.is_empty()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FrameLedger, Owner, Role};
    use kmemvisor_abi::layout::PAGE_SIZE;

    fn ledger() -> (FrameLedger, u64, u64) {
        let mut frames = FrameLedger::new(0x10_0000, 0x40_0000, true);
        let [a, b] = frames.allocate(2, Role::KernelMemory).expect("frames")[..] else { panic!("two frames") };
        frames.own(a, Owner { pid: 0, va: 0x1000 }, 1, false);
        (frames, a, b)
    }

    #[test]
    fn transfers_are_counted_per_frame_until_each_ends() {
        let (mut frames, a, b) = ledger();
        assert_eq!(b, a + PAGE_SIZE, "contiguous frames");
        // A transfer reading a + 8 .. b + 8 (two frames), and one writing the last byte of b.
        frames.begin_transfer(&[a + 8..b + 8, 0..0]);
        let last_byte = b + PAGE_SIZE - 1..b + PAGE_SIZE;
        frames.begin_transfer(std::slice::from_ref(&last_byte));
        assert_eq!((frames.transfers_on(a), frames.transfers_on(b + 100), frames.transfers_on(b + PAGE_SIZE)), (1, 2, 0));
        assert_eq!(frames.first_in_transfer([a + PAGE_SIZE * 40, b]), Some(b));
        frames.end_transfer(&[a + 8..b + 8, 0..0]);
        assert_eq!((frames.transfers_on(a), frames.transfers_on(b)), (0, 1));
        assert_eq!(frames.first_in_transfer([a]), None);
        frames.end_transfer(std::slice::from_ref(&last_byte));
        frames.end_transfer(std::slice::from_ref(&(b..b + 1)));
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
    fn a_device_write_is_remembered_per_frame_once_and_forgotten_at_release() {
        let (mut frames, a, b) = ledger();
        frames.device_wrote(&(a + 16..a + 32));
        frames.device_wrote(&(b..b + 1));
        frames.device_wrote(&(a..a));
        assert_eq!(frames.written, vec![a..b + PAGE_SIZE], "adjacent writes merge");
        assert!(frames.take_device_write(b + 5));
        assert!(!frames.take_device_write(b), "asked once");
        assert!(frames.take_device_write(a));
        assert!(frames.written.is_empty());
        frames.device_wrote(&(a..b + PAGE_SIZE));
        assert_eq!(frames.release(b), Ok(true));
        assert!(!frames.take_device_write(b), "a freed frame forgets");
        assert!(frames.take_device_write(a));
    }
}
