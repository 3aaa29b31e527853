//! Guest RAM at the snapshot point, and putting it back.
//!
//! The copy is kept whole. Putting it back touches only the pages that may
//! differ — the candidates the caller names (every page the memfd holds, or
//! the pages KVM's dirty log and the VMM's own write log name) — and copies
//! those that do.
//!
//! Page tables need more than their bytes: with shadow paging KVM keeps its
//! own translations of the guest's tables and trusts them until the guest
//! writes a table through its own mapping, which the VMM's copy bypasses.
//! So for every entry of a page-table frame that the copy changes, the frame
//! the old entry pointed at is dropped from the vCPUs' mappings
//! (`ram::zap_frames`): the next access walks the restored tables. (On
//! EPT/NPT the same drop flushes the TLBs.) The VMM's own table edits do
//! the same during a run.

use kmemvisor_abi::layout::PAGE_SIZE;

use crate::memory_model::ledger::FrameLedger;
use crate::memory_model::ram::{GuestRam, ZapError, zap_frames};

const PAGE: usize = PAGE_SIZE as usize;
/// Bits of a page-table entry that hold the frame address.
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
const PRESENT: u64 = 1;
/// Frames a zap may take in between two frames it must drop. Each zap is
/// one `madvise` and one KVM TLB flush, the costly part; the frames of one
/// allocation are every other frame (docs/ABI.md), so its stale frames are
/// two apart, and the ones in between are most often free. Dropping a
/// mapping is always safe: the next access maps the frame again.
const GAP: u64 = 3;

/// Guest RAM as it was.
pub struct RamCopy {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for RamCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RamCopy({} bytes)", self.bytes.len())
    }
}

/// What putting RAM back did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Pages looked at.
    pub candidates: u64,
    /// Pages that differed and were copied back.
    pub copied: u64,
    /// Frames dropped from the vCPUs' mappings because a table entry pointing at them changed.
    pub zapped: u64,
}

/// `len` bytes of guest RAM from `offset`, through the VMM view (the caller
/// keeps the range inside RAM).
fn read(ram: &GuestRam, offset: usize, len: usize) -> &[u8] {
    debug_assert!(offset + len <= ram.size() as usize);
    // SAFETY: the range lies in the VMM view, `ram.size()` readable bytes
    // that live as long as `ram`. The caller holds the VM still: no vCPU
    // thread runs and no device works, so nothing writes guest RAM while
    // the slice lives (this module's own writes come after its reads).
    unsafe { std::slice::from_raw_parts((ram.vmm_view() as usize + offset) as *const u8, len) }
}

/// Writes `bytes` into guest RAM at `offset` through the VMM view (the
/// caller keeps the range inside RAM and holds the VM still).
fn write(ram: &GuestRam, offset: usize, bytes: &[u8]) {
    debug_assert!(offset + bytes.len() <= ram.size() as usize);
    // SAFETY: the range lies in the VMM view, writable and alive as long as
    // `ram`; no slice of it is alive (see `read`) and `bytes` is the copy's
    // own memory, so the two do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), (ram.vmm_view() as usize + offset) as *mut u8, bytes.len()) }
}

impl RamCopy {
    /// Copies all of `ram` (the VM must be still). Only the pages the memfd
    /// holds are read; the copy's other pages stay untouched zeros.
    pub fn capture(ram: &GuestRam) -> std::io::Result<RamCopy> {
        let mut bytes = vec![0u8; ram.size() as usize];
        for range in ram.populated()? {
            let range = range.start as usize..range.end as usize;
            bytes[range.clone()].copy_from_slice(read(ram, range.start, range.len()));
        }
        Ok(RamCopy { bytes })
    }

    /// The copy's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Puts back every page of `candidates` (page numbers) that differs from
    /// the copy; `now` is the frame ledger of the run that ends, `then` the
    /// copy's: a frame that is a page table in either has its changed
    /// entries' old frames zapped. The VM must be still.
    pub fn restore(
        &self,
        ram: &GuestRam,
        candidates: impl Iterator<Item = u64>,
        now: &FrameLedger,
        then: &FrameLedger,
    ) -> Result<Restored, ZapError> {
        let mut done = Restored::default();
        // Each frame is dropped once, after every table is back.
        let mut stale = std::collections::BTreeSet::new();
        for page in candidates {
            let start = page as usize * PAGE;
            let Some(saved) = self.bytes.get(start..start + PAGE) else { continue };
            let live = read(ram, start, PAGE);
            done.candidates += 1;
            if live == saved {
                continue;
            }
            let gpa = page * PAGE_SIZE;
            if now.is_table(gpa) || then.is_table(gpa) {
                for (old, new) in live.chunks_exact(8).zip(saved.chunks_exact(8)) {
                    let old = u64::from_le_bytes(old.try_into().unwrap_or_default());
                    let new = u64::from_le_bytes(new.try_into().unwrap_or_default());
                    if old != new && old & PRESENT != 0 {
                        stale.insert(old & ADDRESS_MASK);
                    }
                }
            }
            write(ram, start, saved);
            done.copied += 1;
        }
        // Runs of frames at most GAP apart go in one call.
        let mut run: Option<(u64, u64)> = None;
        for &frame in &stale {
            run = match run {
                Some((start, pages)) if frame <= start + (pages + GAP) * PAGE_SIZE => {
                    Some((start, (frame - start) / PAGE_SIZE + 1))
                }
                Some((start, pages)) => {
                    zap_frames(ram.memory(), start, pages)?;
                    Some((frame, 1))
                }
                None => Some((frame, 1)),
            };
        }
        if let Some((start, pages)) = run {
            zap_frames(ram.memory(), start, pages)?;
        }
        done.zapped = stale.len() as u64;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmemvisor_abi::layout;
    use vm_memory::{Bytes, GuestAddress};

    #[test]
    fn only_changed_pages_are_copied_back_and_table_entries_that_changed_are_counted() {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let mut ledger = FrameLedger::new(layout::FREE_RAM_GPA, layout::MIN_RAM_SIZE, false);
        ledger.assign(layout::PAGE_TABLES_GPA, 1, crate::memory_model::ledger::Role::PageTable);
        let memory = ram.memory();
        memory.write_obj(0x1234_u64, GuestAddress(layout::FREE_RAM_GPA)).expect("write");
        let copy = RamCopy::capture(&ram).expect("capture");
        memory.write_obj(0x5678_u64, GuestAddress(layout::FREE_RAM_GPA)).expect("write");
        memory.write_obj(0x9abc_u64, GuestAddress(layout::FREE_RAM_GPA + 3 * PAGE_SIZE)).expect("write");
        // A page-table entry pointing at a frame: its change zaps the old frame.
        memory.write_obj(0x7000_u64 | PRESENT, GuestAddress(layout::PAGE_TABLES_GPA + 8)).expect("write");
        let all = 0..ram.frames();
        let done = copy.restore(&ram, all, &ledger, &ledger).expect("restore");
        assert_eq!(done, Restored { candidates: ram.frames(), copied: 3, zapped: 1 });
        assert_eq!(memory.read_obj::<u64>(GuestAddress(layout::FREE_RAM_GPA)).expect("read"), 0x1234);
        assert_eq!(read(&ram, 0, ram.size() as usize), copy.bytes());
    }
}
