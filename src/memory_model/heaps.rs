//! The AIX heaps' books: the two boot heaps (page-backed kernel memory, see
//! [`KernelMemory`](crate::memory_model::kernel_memory::KernelMemory)) and the
//! `init_heap` heaps over caller-owned regions, with their live allocations
//! and their most recent frees, which tell a double free from a foreign
//! pointer.

use std::collections::{BTreeMap, HashMap, VecDeque};

use kmemvisor_abi::aix::{KERNEL_HEAP, PINNED_HEAP};

use crate::checker::{Leak, ViolationKind};
use crate::memory_model::arena::Arena;
use crate::memory_model::kernel_memory::Region;
use crate::memory_model::ledger::FrameLedger;
use crate::memory_model::origins::Origins;
use crate::memory_model::pins::Pins;

/// How many frees each heap remembers to tell a double free from a wild pointer.
pub const RECENT_FREES: usize = 4096;
/// Most heaps `init_heap` may make.
pub const MAX_HEAPS: usize = 4096;
/// Smallest `init_heap` region.
pub const MIN_HEAP_SIZE: u64 = 64;
/// Largest `init_heap` region (what a `uint32` size can say).
pub const MAX_HEAP_SIZE: u64 = u32::MAX as u64;

/// The AIX kernel's VMM-side memory state: heaps and pin counts.
#[derive(Clone, Debug, Default)]
pub struct AixMemory {
    /// The heaps.
    pub heaps: Heaps,
    /// Pin counts.
    pub pins: Pins,
}

impl AixMemory {
    /// Misuse still standing at the end, as
    /// [`KernelMemory::leaks`](crate::memory_model::kernel_memory::KernelMemory::leaks)
    /// gives it: live allocations of `init_heap` heaps and frames still pinned.
    /// (Live allocations of the two boot heaps are that function's.)
    pub fn leaks(&self, frames: &FrameLedger, origins: &Origins) -> Vec<Leak> {
        let mut leaks = self.heaps.leaks(origins);
        leaks.extend(crate::memory_model::pins::leaks(frames));
        leaks
    }
}

/// The most recent frees of one heap, bounded.
#[derive(Clone, Debug, Default)]
pub(crate) struct RecentFrees {
    pub(crate) order: VecDeque<u64>,
    pub(crate) count: HashMap<u64, u32>,
}

impl RecentFrees {
    pub(crate) fn remember(&mut self, ptr: u64) {
        if self.order.len() >= RECENT_FREES
            && let Some(old) = self.order.pop_front()
            && let Some(n) = self.count.get_mut(&old)
        {
            *n -= 1;
            if *n == 0 {
                self.count.remove(&old);
            }
        }
        self.order.push_back(ptr);
        *self.count.entry(ptr).or_insert(0) += 1;
    }

    pub(crate) fn contains(&self, ptr: u64) -> bool {
        self.count.contains_key(&ptr)
    }
}

/// A live allocation of an `init_heap` heap.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Allocation {
    /// Where the `xmalloc` came from: its stack in [`Origins`].
    pub(crate) origin: u32,
    pub(crate) bytes: u32,
    pub(crate) vcpu: u16,
}

/// A heap over a caller's region.
#[derive(Clone, Debug)]
pub(crate) struct AreaHeap {
    pub(crate) start: u64,
    pub(crate) arena: Arena,
    pub(crate) allocations: BTreeMap<u64, Allocation>,
}

#[derive(Clone, Debug)]
pub(crate) enum Backing {
    /// A boot heap: page-backed kernel memory.
    Boot(Region),
    /// An `init_heap` heap.
    Area(AreaHeap),
}

#[derive(Clone, Debug)]
pub(crate) struct Heap {
    pub(crate) backing: Backing,
    pub(crate) recent: RecentFrees,
}

/// Every heap, by handle.
#[derive(Clone, Debug)]
pub struct Heaps {
    pub(crate) heaps: BTreeMap<u64, Heap>,
    /// `init_heap` regions: start → end.
    pub(crate) regions: BTreeMap<u64, u64>,
    pub(crate) next: u64,
}

impl Default for Heaps {
    fn default() -> Heaps {
        let boot = |region| Heap { backing: Backing::Boot(region), recent: RecentFrees::default() };
        Heaps {
            heaps: BTreeMap::from([(KERNEL_HEAP, boot(Region::KernelHeap)), (PINNED_HEAP, boot(Region::PinnedHeap))]),
            regions: BTreeMap::new(),
            next: PINNED_HEAP + 1,
        }
    }
}

impl Heaps {
    /// Whether `[start, end)` overlaps an `init_heap` region.
    pub(crate) fn overlaps(&self, start: u64, end: u64) -> bool {
        self.regions.range(..end).next_back().is_some_and(|(_, &e)| e > start)
    }

    /// Live allocations of `init_heap` heaps.
    pub fn leaks(&self, origins: &Origins) -> Vec<Leak> {
        let mut leaks = Vec::new();
        for (&handle, heap) in &self.heaps {
            let Backing::Area(area) = &heap.backing else { continue };
            for (&ptr, a) in &area.allocations {
                let message = format!(
                    "xmalloc of {} bytes from heap {handle} (init_heap at {:#x}) at {ptr:#x} was never freed (xmfree) before exit",
                    a.bytes, area.start
                );
                let (vcpu, rip, stack) = (usize::from(a.vcpu), origins.rip(a.origin), origins.stack(a.origin));
                leaks.push(Leak {
                    kind: ViolationKind::LeakXmalloc,
                    service: "xmalloc",
                    address: ptr,
                    vcpu,
                    rip,
                    stack,
                    message,
                });
            }
        }
        leaks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_model::ledger::{Owner, PinOrigin, Role};

    #[test]
    fn the_recent_frees_are_bounded() {
        let mut recent = RecentFrees::default();
        for ptr in 0..(RECENT_FREES as u64 + 10) {
            recent.remember(ptr);
        }
        recent.remember(20);
        assert!(!recent.contains(3), "forgotten");
        assert!(recent.contains(20) && recent.contains(RECENT_FREES as u64 + 9));
        assert_eq!(recent.order.len(), RECENT_FREES);
        assert_eq!(recent.count.len(), RECENT_FREES - 1, "20 is there twice");
    }

    #[test]
    fn leaks_are_the_heaps_and_the_pins_leaks() {
        let mut aix = AixMemory::default();
        let mut frames = FrameLedger::new(0x0110_0000, 0x0120_0000, false);
        let mut origins = Origins::default();
        assert!(aix.leaks(&frames, &origins).is_empty());
        let origin = origins.intern(&[0x1234, 0x5678]);
        let handle = aix.heaps.next;
        let arena = Arena::new(0xffff_c000_0000_0000, 0x1000);
        let allocations = BTreeMap::from([(0xffff_c000_0000_0010, Allocation { origin, bytes: 32, vcpu: 1 })]);
        let area = AreaHeap { start: 0xffff_c000_0000_0000, arena, allocations };
        aix.heaps.heaps.insert(handle, Heap { backing: Backing::Area(area), recent: RecentFrees::default() });
        // And a frame still pinned.
        let frame = frames.allocate(1, Role::KernelMemory).expect("frame")[0];
        let owner = Owner { pid: 0, va: 0xffff_e000_0000_0000 };
        frames.own(frame, owner, 0, false);
        frames.pin(&[(frame, owner)], PinOrigin { service: "pin", vcpu: 0, rip: 0x99 }, 8).expect("pin");
        let leaks = aix.leaks(&frames, &origins);
        assert_eq!(leaks.len(), 2, "{leaks:?}");
        assert_eq!((leaks[0].stack.as_slice(), leaks[1].stack.as_slice()), (&[0x1234, 0x5678][..], &[][..]));
        assert_eq!(
            (leaks[0].kind, leaks[0].service, leaks[0].address, leaks[0].vcpu, leaks[0].rip),
            (ViolationKind::LeakXmalloc, "xmalloc", 0xffff_c000_0000_0010, 1, 0x1234)
        );
        assert!(
            leaks[0].message.starts_with("xmalloc of 32 bytes from heap 3 (init_heap at 0xffffc00000000000)"),
            "{}",
            leaks[0].message
        );
        assert_eq!(
            (leaks[1].kind, leaks[1].service, leaks[1].address, leaks[1].rip),
            (ViolationKind::LeakPinned, "pin", 0xffff_e000_0000_0000, 0x99)
        );
    }
}
