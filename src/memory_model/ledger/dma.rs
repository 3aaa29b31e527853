//! The DMA ledger: which frames a transfer queued or running on the DMA
//! engine will touch, and which frames the device wrote.
//!
//! In the spirit of Linux's DMA-API debugging, the device's future is known
//! at the doorbell: a driver that ends a hand-off (unhide, detach, unpin,
//! unwire, release, free) of a frame a transfer still touches is caught at
//! that call, however the device's timing falls — not only when the
//! transfer happens to run after it.

use std::ops::Range;

use kmemvisor_abi::Service;
use kmemvisor_abi::layout::PAGE_SIZE;

use super::{FrameLedger, page_of};

/// Who wrote a frame: the transfer, and the call that ended the frame's
/// hand-off without accounting for the write, once one did. Small data
/// (a site, an origin id of [`crate::memory_model::origins::Origins`]):
/// one is kept per run of frames, until the write is accounted for or the
/// frame freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceWrite {
    /// The DMA engine's channel that ran the transfer.
    pub channel: u32,
    /// The site of the transfer's doorbell (a guest RIP): one address, kept
    /// as it is rather than interned, as every transfer records one.
    pub doorbell: u64,
    /// The call that ended the hand-off without a modified mark, if one did.
    pub unmarked_end: Option<HandOffEnd>,
}

/// A call that ended a frame's hand-off to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandOffEnd {
    /// The service (an unwire, an unhide).
    pub service: Service,
    /// The origin of the call (its stack).
    pub origin: u32,
}

/// The guest-physical ranges one transfer reads and writes (a transfer
/// between RAM and the device's memory has one of the two).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferRanges {
    /// What the device reads.
    pub reads: Option<Range<u64>>,
    /// What the device writes.
    pub writes: Option<Range<u64>>,
}

impl TransferRanges {
    /// The frames the device writes (page-aligned; empty if none).
    pub fn written_frames(&self) -> Range<u64> {
        self.writes.as_ref().map_or(0..0, frames_of)
    }

    /// Each range, with whether the device writes it.
    fn sides(&self) -> impl Iterator<Item = (&Range<u64>, bool)> {
        self.reads.iter().map(|r| (r, false)).chain(self.writes.iter().map(|r| (r, true)))
    }
}

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
    pub fn begin_transfer(&mut self, ranges: &TransferRanges) {
        let sides = ranges.sides().map(|(r, writes)| (frames_of(r), writes));
        self.transfers.extend(sides.filter(|(r, _)| !r.is_empty()));
    }

    /// The transfer [`FrameLedger::begin_transfer`] announced with `ranges`
    /// ran or was dropped.
    pub fn end_transfer(&mut self, ranges: &TransferRanges) {
        for side in ranges.sides().map(|(r, writes)| (frames_of(r), writes)) {
            if let Some(i) = self.transfers.iter().position(|t| *t == side) {
                self.transfers.swap_remove(i);
            }
        }
    }

    /// Transfers queued or running that touch the frame at `gpa`.
    pub fn transfers_on(&self, gpa: u64) -> u32 {
        self.transfers.iter().filter(|(r, _)| r.contains(&gpa)).count() as u32
    }

    /// Whether a transfer queued or running will write the frame at `gpa`.
    pub fn write_pending(&self, gpa: u64) -> bool {
        self.transfers.iter().any(|(r, writes)| *writes && r.contains(&gpa))
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

    /// The device wrote `range` in the transfer `write` names: its frames
    /// remember it — the newest write of each frame — until the write is
    /// accounted for (a page-out, a modified mark at the end of the
    /// hand-off) or the frame is freed. Kept as runs of frames: drivers
    /// write the same buffers again and again.
    pub fn device_wrote(&mut self, range: &Range<u64>, write: DeviceWrite) {
        self.set_written(frames_of(range), Some(write));
    }

    /// The newest write of the device to the frame at `gpa` not yet accounted for.
    pub fn device_write(&self, gpa: u64) -> Option<DeviceWrite> {
        let frame = page_of(gpa);
        self.written.range(..=frame).next_back().filter(|(_, (end, _))| frame < *end).map(|(_, &(_, write))| write)
    }

    /// The device's write to the frame at `gpa`, which is now accounted for
    /// (or its frame freed): the frame forgets it.
    pub fn take_device_write(&mut self, gpa: u64) -> Option<DeviceWrite> {
        let write = self.device_write(gpa)?;
        let frame = page_of(gpa);
        self.set_written(frame..frame + PAGE_SIZE, None);
        Some(write)
    }

    /// `end` ended the hand-off of the frame at `gpa` without marking it
    /// modified: a write of the device to it stays unaccounted for, and
    /// remembers the call. Returns the write if this call is the first to
    /// leave it so (a later unwire is not blamed again).
    pub fn end_unmarked(&mut self, gpa: u64, end: HandOffEnd) -> Option<DeviceWrite> {
        let write = self.device_write(gpa).filter(|w| w.unmarked_end.is_none())?;
        let frame = page_of(gpa);
        self.set_written(frame..frame + PAGE_SIZE, Some(DeviceWrite { unmarked_end: Some(end), ..write }));
        Some(write)
    }

    /// Makes `frames` (page-aligned) remember `write`, or nothing; runs
    /// that meet with equal writes merge.
    fn set_written(&mut self, frames: Range<u64>, write: Option<DeviceWrite>) {
        if frames.is_empty() {
            return;
        }
        // A driver's next transfer into the same buffer: nothing changes.
        if write.is_some() && self.written.get(&frames.start) == write.map(|w| (frames.end, w)).as_ref() {
            return;
        }
        // Cut the runs that overlap `frames`, keeping their parts outside.
        let overlapping: Vec<u64> =
            self.written.range(..frames.end).rev().take_while(|(_, (end, _))| *end > frames.start).map(|(&s, _)| s).collect();
        for start in overlapping {
            if let Some((end, old)) = self.written.remove(&start) {
                if start < frames.start {
                    self.written.insert(start, (frames.start, old));
                }
                if end > frames.end {
                    self.written.insert(frames.end, (end, old));
                }
            }
        }
        let Some(write) = write else { return };
        let (mut start, mut end) = (frames.start, frames.end);
        if let Some((&before, &(before_end, w))) = self.written.range(..start).next_back()
            && before_end == start
            && w == write
        {
            self.written.remove(&before);
            start = before;
        }
        if let Some(&(after_end, w)) = self.written.get(&end)
            && w == write
        {
            self.written.remove(&end);
            end = after_end;
        }
        self.written.insert(start, (end, write));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FrameLedger, Owner, Role};
    use super::{DeviceWrite, HandOffEnd, TransferRanges};
    use kmemvisor_abi::Service;
    use kmemvisor_abi::layout::PAGE_SIZE;

    fn ledger() -> (FrameLedger, u64, u64) {
        let mut frames = FrameLedger::new(0x10_0000, 0x40_0000, true);
        let [a, b] = frames.allocate(2, Role::KernelMemory).expect("frames")[..] else { panic!("two frames") };
        frames.own(a, Owner { pid: 0, va: 0x1000 }, 1, false);
        (frames, a, b)
    }

    fn reads(range: std::ops::Range<u64>) -> TransferRanges {
        TransferRanges { reads: Some(range), writes: None }
    }

    fn writes(range: std::ops::Range<u64>) -> TransferRanges {
        TransferRanges { reads: None, writes: Some(range) }
    }

    #[test]
    fn transfers_are_counted_per_frame_until_each_ends() {
        let (mut frames, a, b) = ledger();
        assert_eq!(b, a + PAGE_SIZE, "contiguous frames");
        // A transfer reading a + 8 .. b + 8 (two frames) and writing nothing
        // in RAM, and one writing the last byte of b.
        let first = TransferRanges { reads: Some(a + 8..b + 8), writes: Some(0..0) };
        frames.begin_transfer(&first);
        let last_byte = writes(b + PAGE_SIZE - 1..b + PAGE_SIZE);
        frames.begin_transfer(&last_byte);
        assert_eq!((frames.transfers_on(a), frames.transfers_on(b + 100), frames.transfers_on(b + PAGE_SIZE)), (1, 2, 0));
        assert_eq!((frames.write_pending(a), frames.write_pending(b + 5), frames.write_pending(0)), (false, true, false));
        assert_eq!(frames.first_in_transfer([a + PAGE_SIZE * 40, b]), Some(b));
        frames.end_transfer(&first);
        assert_eq!((frames.transfers_on(a), frames.transfers_on(b)), (0, 1));
        assert_eq!(frames.first_in_transfer([a]), None);
        frames.end_transfer(&reads(b + PAGE_SIZE - 1..b + PAGE_SIZE));
        assert!(frames.write_pending(b), "a read of the same frames is another transfer");
        frames.end_transfer(&last_byte);
        frames.end_transfer(&writes(b..b + 1));
        assert_eq!(frames.transfers_on(b), 0, "an end without a begin is ignored");
        assert!(!frames.write_pending(b));
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

    const WRITE: DeviceWrite = DeviceWrite { channel: 1, doorbell: 7, unmarked_end: None };

    #[test]
    fn a_device_write_is_remembered_per_frame_once_and_forgotten_at_release() {
        let (mut frames, a, b) = ledger();
        frames.device_wrote(&(a + 16..a + 32), WRITE);
        frames.device_wrote(&(b..b + 1), WRITE);
        frames.device_wrote(&(a..a), WRITE);
        assert_eq!(frames.written.len(), 1, "adjacent writes of one transfer merge");
        assert_eq!(frames.take_device_write(b + 5), Some(WRITE));
        assert_eq!(frames.take_device_write(b), None, "asked once");
        assert_eq!(frames.take_device_write(a), Some(WRITE));
        assert!(frames.written.is_empty());
        frames.device_wrote(&(a..b + PAGE_SIZE), WRITE);
        assert_eq!(frames.release(b), Ok(true));
        assert_eq!(frames.take_device_write(b), None, "a freed frame forgets");
        assert_eq!(frames.take_device_write(a), Some(WRITE));
    }

    #[test]
    fn a_frame_keeps_its_newest_write_and_the_first_unwire_that_left_it_unmarked() {
        let (mut frames, a, b) = ledger();
        let other = DeviceWrite { channel: 2, doorbell: 9, unmarked_end: None };
        frames.device_wrote(&(a..b + PAGE_SIZE), WRITE);
        frames.device_wrote(&(b + 8..b + 9), other);
        assert_eq!((frames.device_write(a), frames.device_write(b)), (Some(WRITE), Some(other)), "the newest write wins");
        let unwire = HandOffEnd { service: Service::VmUnwireMemory, origin: 3 };
        assert_eq!(frames.end_unmarked(a, unwire), Some(WRITE));
        assert_eq!(frames.end_unmarked(a, HandOffEnd { origin: 4, ..unwire }), None, "blamed once");
        assert_eq!(frames.device_write(a + 1), Some(DeviceWrite { unmarked_end: Some(unwire), ..WRITE }));
        assert_eq!(frames.end_unmarked(b, unwire), Some(other));
        frames.device_wrote(&(a..a + 1), WRITE);
        assert_eq!(frames.device_write(a), Some(WRITE), "a new transfer's write is not blamed on the old unwire");
        assert_eq!(frames.take_device_write(b), Some(DeviceWrite { unmarked_end: Some(unwire), ..other }));
        assert_eq!(frames.end_unmarked(b, unwire), None, "accounted for: nothing to leave unmarked");
        assert_eq!(frames.written.len(), 1);
    }
}
