//! Counts and marks that follow the frame: DG/UX wire counts, AIX pin
//! counts with the origin of the first pin, the referenced and modified
//! marks, and whose memory each frame is.

use std::collections::BTreeMap;

use kmemvisor_abi::dgux::MAX_WIRE_COUNT;

use super::{FrameLedger, LedgerError, Role, page_of};

/// Largest pin count of a frame above its initial count; one more pin is refused.
pub const MAX_PIN_COUNT: u32 = u32::MAX;

/// Who a frame's memory is, and the address its owner knows it by (for reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner {
    /// 0 for kernel memory, else the process.
    pub pid: u64,
    /// The owner's page that maps the frame.
    pub va: u64,
}

/// Where the first pin of a frame came from, for the leak report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinOrigin {
    /// The service's name.
    pub service: &'static str,
    /// The vCPU that called it.
    pub vcpu: usize,
    /// Guest RIP of the call.
    pub rip: u64,
}

/// What an unwire also marks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    /// Set the referenced bit.
    pub referenced: bool,
    /// Set the modified bit.
    pub modified: bool,
}

/// The counts and marks of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Whose memory it is.
    pub owner: Owner,
    /// Whether DG/UX wiring counts here (kernel memory, process pages).
    pub(super) wired_memory: bool,
    /// DG/UX wire count.
    pub wires: u32,
    /// The wire count the frame was handed out with.
    pub initial_wires: u32,
    /// AIX pins above the initial pin count.
    pub pins: u32,
    /// Pinned from birth (the `pinned_heap`): initial pin count 1.
    pub pinned_from_birth: bool,
    /// The marks.
    pub marks: Marks,
}

/// One counted frame of a wire or unwire, as it stands before the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Grouped {
    frame: u64,
    wires: u32,
    initial: u32,
    /// How many times the call names it.
    named: u32,
}

/// A wire that [`FrameLedger::plan_wire`] checked: what
/// [`FrameLedger::apply_wire`] will count.
#[derive(Debug, PartialEq, Eq)]
pub struct WirePlan {
    frames: Vec<Grouped>,
}

impl WirePlan {
    /// Frames at wire count 0 now: pageable, so the wire pages them in first.
    pub fn pageable(&self) -> usize {
        self.pageable_frames().count()
    }

    /// Those frames, each once.
    pub fn pageable_frames(&self) -> impl Iterator<Item = u64> + '_ {
        self.frames.iter().filter(|g| g.wires == 0).map(|g| g.frame)
    }
}

impl Counts {
    pub(super) fn is_pinned(&self) -> bool {
        self.pinned_from_birth || self.pins > 0
    }
}

impl FrameLedger {
    /// Records that the frame at `gpa`, just handed out as kernel memory or a
    /// process page, is `owner`'s, with its initial wire count and whether
    /// it is pinned from birth.
    pub fn own(&mut self, gpa: u64, owner: Owner, initial_wires: u32, pinned_from_birth: bool) {
        let counts = Counts {
            owner,
            wired_memory: true,
            wires: initial_wires,
            initial_wires,
            pins: 0,
            pinned_from_birth,
            marks: Marks::default(),
        };
        if let Some(old) = self.counts.insert(page_of(gpa), counts) {
            self.pinned -= u64::from(old.is_pinned());
        }
        self.pinned += u64::from(pinned_from_birth);
    }

    /// The counts of the frame at `gpa`, if it has any.
    pub fn counts(&self, gpa: u64) -> Option<&Counts> {
        self.counts.get(&page_of(gpa))
    }

    /// Every frame with counts, by frame.
    pub fn all_counts(&self) -> impl Iterator<Item = (u64, &Counts)> + '_ {
        self.counts.iter().map(|(&frame, c)| (frame, c))
    }

    /// The wire count and initial count of the frame at `gpa`: `Ok(None)`
    /// for memory resident by nature, whose wires are not counted (fixed
    /// frames, a device window: invariant 8); an error for a frame no one
    /// was handed (free RAM the guest mapped).
    pub fn wire_count(&self, gpa: u64) -> Result<Option<(u32, u32)>, LedgerError> {
        let frame = page_of(gpa);
        match self.role(frame) {
            None => Ok(None),
            Some(role @ (Role::Free | Role::KernelMemory | Role::ProcessPage | Role::VmObject)) => {
                match self.counts.get(&frame) {
                    Some(c) if c.wired_memory => Ok(Some((c.wires, c.initial_wires))),
                    _ => Err(LedgerError::Role { frame, role }),
                }
            }
            Some(_) => Ok(None),
        }
    }

    /// The counted frames among `frames`, each with its wire count, initial
    /// count and how many times it is named, sorted; an error for a frame no
    /// one was handed. One lookup per frame — after a VM exit these maps are
    /// cold in the cache — and a sorted vector rather than a map: one
    /// allocation for the usual few pages, O(n log n) for a hostile range.
    fn grouped(&self, frames: &[u64]) -> Result<Vec<Grouped>, LedgerError> {
        let mut counted = Vec::with_capacity(frames.len());
        for &gpa in frames {
            if let Some((wires, initial)) = self.wire_count(gpa)? {
                counted.push(Grouped { frame: page_of(gpa), wires, initial, named: 1 });
            }
        }
        counted.sort_unstable_by_key(|g| g.frame);
        counted.dedup_by(|next, kept| {
            let same = next.frame == kept.frame;
            kept.named += u32::from(same);
            same
        });
        Ok(counted)
    }

    /// Checks a wire of `frames` (a frame named twice is wired twice),
    /// changing nothing: an error for a frame no one was handed or one the
    /// wire would take past `MAX_WIRE_COUNT`.
    pub fn plan_wire(&self, frames: &[u64]) -> Result<WirePlan, LedgerError> {
        let grouped = self.grouped(frames)?;
        if let Some(g) = grouped.iter().find(|g| u64::from(g.wires) + u64::from(g.named) > MAX_WIRE_COUNT) {
            return Err(LedgerError::WireCeiling(g.frame));
        }
        Ok(WirePlan { frames: grouped })
    }

    /// Applies a wire that [`FrameLedger::plan_wire`] checked under the same lock.
    pub fn apply_wire(&mut self, plan: WirePlan) {
        for g in plan.frames {
            if let Some(c) = self.counts.get_mut(&g.frame) {
                c.wires += g.named;
            }
        }
    }

    /// One more wire of each of `frames` (a frame named twice is wired
    /// twice), all or nothing; memory resident by nature counts nothing.
    pub fn wire(&mut self, frames: &[u64]) -> Result<(), LedgerError> {
        let plan = self.plan_wire(frames)?;
        self.apply_wire(plan);
        Ok(())
    }

    /// One wire less of each of `frames`, marking them as `marks` says, all
    /// or nothing: no frame goes below its initial count.
    pub fn unwire(&mut self, frames: &[u64], marks: Marks) -> Result<(), LedgerError> {
        let grouped = self.grouped(frames)?;
        if let Some(g) = grouped.iter().find(|g| g.wires < g.initial + g.named) {
            return Err(LedgerError::BelowFloor { frame: g.frame, count: g.wires, initial: g.initial });
        }
        for g in grouped {
            if let Some(c) = self.counts.get_mut(&g.frame) {
                c.wires -= g.named;
                c.marks.referenced |= marks.referenced;
                c.marks.modified |= marks.modified;
            }
        }
        Ok(())
    }

    /// Sets or clears the modified mark of the frame at `gpa` (a frame with
    /// counts: kernel memory, a process page or an object page): a store the
    /// VMM saw through a page-table dirty bit or made itself, or contents dropped.
    pub fn set_modified(&mut self, gpa: u64, modified: bool) {
        if let Some(c) = self.counts.get_mut(&page_of(gpa)).filter(|c| c.wired_memory) {
            c.marks.modified = modified;
        }
    }

    /// The marks of the frame at `gpa`.
    pub fn marks(&self, gpa: u64) -> Marks {
        self.counts(gpa).map(|c| c.marks).unwrap_or_default()
    }

    /// Pins of the frame at `gpa` above its initial count.
    pub fn pin_count(&self, gpa: u64) -> u32 {
        self.counts(gpa).map_or(0, |c| c.pins)
    }

    /// The call that made the first pin of the frame at `gpa`, while it is pinned above its initial count.
    pub fn first_pin(&self, gpa: u64) -> Option<PinOrigin> {
        self.first_pins.get(&page_of(gpa)).copied()
    }

    /// Whether the frame at `gpa` is pinned now; a device window is resident
    /// by nature and counts as pinned.
    pub fn is_pinned(&self, gpa: u64) -> bool {
        self.role(gpa).is_none() || self.counts(gpa).is_some_and(Counts::is_pinned)
    }

    /// Whether the frame at `gpa` stays in memory: pinned, wired above 0, or
    /// resident by nature (fixed frames, device windows).
    pub fn is_resident(&self, gpa: u64) -> bool {
        match self.wire_count(gpa) {
            Ok(None) => true,
            Ok(Some((wires, _))) => wires > 0 || self.is_pinned(gpa),
            Err(_) => false,
        }
    }

    /// Frames pinned now.
    pub fn pinned_frames(&self) -> u64 {
        self.pinned
    }

    /// One more pin of each of `frames`, given as (frame, the owner's page of
    /// a frame not handed out: a fixed frame), all or nothing; pinned frames
    /// may not pass `limit`. A device window is resident by nature: pinning
    /// it counts nothing. Free RAM cannot be pinned.
    pub fn pin(&mut self, frames: &[(u64, Owner)], origin: PinOrigin, limit: u64) -> Result<(), LedgerError> {
        let mut wanted: BTreeMap<u64, (u32, Owner)> = BTreeMap::new();
        for &(gpa, owner) in frames {
            let frame = page_of(gpa);
            match self.role(frame) {
                None => continue,
                Some(role @ Role::Free) => return Err(LedgerError::Role { frame, role }),
                Some(_) => wanted.entry(frame).or_insert((0, owner)).0 += 1,
            }
        }
        let mut newly = 0u64;
        for (&frame, &(n, _)) in &wanted {
            let c = self.counts.get(&frame);
            if c.is_some_and(|c| c.pins.checked_add(n).is_none()) {
                return Err(LedgerError::PinCeiling(frame));
            }
            newly += u64::from(!c.is_some_and(Counts::is_pinned));
        }
        if self.pinned.saturating_add(newly) > limit {
            return Err(LedgerError::PinLimit(limit));
        }
        self.pinned += newly;
        for (frame, (n, owner)) in wanted {
            let c = self.counts.entry(frame).or_insert(Counts {
                owner,
                wired_memory: false,
                wires: 0,
                initial_wires: 0,
                pins: 0,
                pinned_from_birth: false,
                marks: Marks::default(),
            });
            c.pins += n;
            self.first_pins.entry(frame).or_insert(origin);
        }
        Ok(())
    }

    /// One pin less of each of `frames`, all or nothing: none goes below its
    /// initial count. A device window counts nothing.
    pub fn unpin(&mut self, frames: &[u64]) -> Result<(), LedgerError> {
        let mut wanted: BTreeMap<u64, u32> = BTreeMap::new();
        for &gpa in frames.iter().filter(|&&gpa| self.role(gpa).is_some()) {
            *wanted.entry(page_of(gpa)).or_insert(0) += 1;
        }
        if let Some((&frame, _)) = wanted.iter().find(|&(&frame, &n)| self.pin_count(frame) < n) {
            return Err(LedgerError::NotPinned(frame));
        }
        for (frame, n) in wanted {
            let Some(c) = self.counts.get_mut(&frame) else { continue };
            c.pins -= n;
            if c.pins == 0 {
                self.first_pins.remove(&frame);
                self.pinned -= u64::from(!c.pinned_from_birth);
                // A fixed frame's entry exists only while it is pinned (invariant 6).
                if !c.wired_memory {
                    self.counts.remove(&frame);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{BASE, ledger};
    use super::*;
    use kmemvisor_abi::layout::{PAGE_SHIFT, PAGE_SIZE};

    const ORIGIN: PinOrigin = PinOrigin { service: "pin", vcpu: 0, rip: 0x1234 };

    fn owner(va: u64) -> Owner {
        Owner { pid: 0, va }
    }

    #[test]
    fn wires_and_marks_follow_the_frame_and_block_its_release() {
        let mut frames = ledger(8, false);
        let [a, b] = frames.allocate(2, Role::KernelMemory).expect("frames")[..] else { panic!("two frames") };
        frames.own(a, owner(0x1000), 1, false);
        frames.own(b, owner(0x2000), 0, false);
        assert_eq!(frames.wire_count(a + 8), Ok(Some((1, 1))));
        assert_eq!(frames.wire(&[a, b, b]), Ok(()), "a frame named twice is wired twice");
        assert_eq!(frames.wire_count(b), Ok(Some((2, 0))));
        assert_eq!(frames.release_refusal([a]), Some(LedgerError::Wired { frame: a, count: 2, initial: 1 }));
        assert_eq!(frames.release(a), Err(LedgerError::Wired { frame: a, count: 2, initial: 1 }));
        assert_eq!(frames.role(a), Some(Role::KernelMemory), "a refused release changes nothing");
        let marks = Marks { referenced: true, modified: false };
        assert_eq!(
            frames.unwire(&[a, a], marks),
            Err(LedgerError::BelowFloor { frame: a, count: 2, initial: 1 }),
            "all or nothing"
        );
        assert_eq!((frames.wire_count(a), frames.marks(a)), (Ok(Some((2, 1))), Marks::default()));
        assert_eq!(frames.unwire(&[a, b], marks), Ok(()));
        assert_eq!(frames.marks(a), marks);
        assert_eq!(frames.check(), Ok(()));
        assert_eq!(frames.release(a), Ok(true), "back at its initial count");
        assert_eq!((frames.counts(a), frames.marks(a)), (None, Marks::default()), "a free frame has no counts or marks");
        assert_eq!(frames.wire(&[a]), Err(LedgerError::Role { frame: a, role: Role::Free }), "free RAM is no one's to wire");
        assert_eq!(frames.check(), Ok(()));
    }

    #[test]
    fn the_wire_ceiling_is_all_or_nothing() {
        let mut frames = ledger(4, false);
        let a = frames.allocate(1, Role::ProcessPage).expect("frame")[0];
        frames.own(a, Owner { pid: 3, va: 0x1000_0000 }, 0, false);
        for _ in 0..MAX_WIRE_COUNT - 1 {
            assert_eq!(frames.wire(&[a]), Ok(()));
        }
        assert_eq!(frames.wire(&[a, a]), Err(LedgerError::WireCeiling(a)));
        assert_eq!(frames.wire_count(a), Ok(Some((MAX_WIRE_COUNT as u32 - 1, 0))));
        assert_eq!(frames.wire(&[a]), Ok(()));
        assert_eq!(frames.check(), Ok(()));
    }

    #[test]
    fn fixed_frames_and_device_windows_are_resident_by_nature() {
        let mut frames = ledger(4, false);
        frames.assign(0x3000, 1, Role::Image);
        let device = BASE + 64 * PAGE_SIZE;
        for gpa in [0x3000, device] {
            assert_eq!(frames.wire_count(gpa), Ok(None));
            assert_eq!(frames.wire(&[gpa]), Ok(()));
            assert_eq!(frames.unwire(&[gpa], Marks { referenced: true, modified: true }), Ok(()));
            assert!(frames.is_resident(gpa));
            assert_eq!(frames.counts(gpa), None, "nothing is counted");
        }
        assert!(frames.is_pinned(device), "device memory counts as pinned");
        assert_eq!(frames.pin(&[(device, owner(0xd000))], ORIGIN, 10), Ok(()));
        assert_eq!(frames.unpin(&[device, device]), Ok(()), "pinning a device window counts nothing");
        assert_eq!(frames.pinned_frames(), 0);
        // The image is pinned (pincode) and counted, with its page and origin.
        assert_eq!(frames.pin(&[(0x3000, owner(0xffff_8000_0000_0000))], ORIGIN, 10), Ok(()));
        assert_eq!((frames.pin_count(0x3000), frames.first_pin(0x3000)), (1, Some(ORIGIN)));
        assert_eq!(frames.counts(0x3000).map(|c| c.owner), Some(owner(0xffff_8000_0000_0000)));
        assert_eq!(frames.check(), Ok(()));
        assert_eq!(frames.unpin(&[0x3000]), Ok(()));
        assert_eq!((frames.counts(0x3000), frames.first_pin(0x3000)), (None, None));
        assert_eq!(frames.check(), Ok(()));
    }

    #[test]
    fn pins_follow_the_frame_keep_their_floor_and_block_its_release() {
        let mut frames = ledger(8, false);
        let [a, heap, free] = frames.allocate(3, Role::KernelMemory).expect("frames")[..] else { panic!("three frames") };
        assert_eq!(frames.release(free), Ok(true));
        frames.own(a, owner(0x1000), 0, false);
        frames.own(heap, owner(0x2000), 1, true);
        assert_eq!(frames.pinned_frames(), 1, "the pinned heap's frame is pinned from birth");
        assert_eq!(frames.unpin(&[heap]), Err(LedgerError::NotPinned(heap)), "below its initial count");
        assert_eq!(frames.pin(&[(free, owner(0x3000))], ORIGIN, 10), Err(LedgerError::Role { frame: free, role: Role::Free }));
        assert_eq!(frames.pin(&[(a, owner(0x1000)), (heap, owner(0x2000))], ORIGIN, 1), Err(LedgerError::PinLimit(1)));
        assert_eq!((frames.pin_count(a), frames.pinned_frames()), (0, 1), "all or nothing");
        assert_eq!(frames.pin(&[(a, owner(0x9000)), (heap, owner(0x2000))], ORIGIN, 2), Ok(()));
        assert_eq!(frames.counts(a).map(|c| c.owner), Some(owner(0x1000)), "the owner stays the frame's, not the alias's");
        assert_eq!(frames.pin(&[(heap, owner(0x2000))], ORIGIN, 2), Ok(()), "pinning pinned frames takes no more");
        assert_eq!(frames.release_refusal([heap, a]), Some(LedgerError::Pinned { frame: heap, pins: 2 }));
        assert_eq!(frames.release(a), Err(LedgerError::Pinned { frame: a, pins: 1 }));
        assert_eq!(frames.check(), Ok(()));
        assert_eq!(frames.unpin(&[a, a]), Err(LedgerError::NotPinned(a)));
        assert_eq!(frames.unpin(&[a, heap, heap]), Ok(()));
        assert_eq!((frames.first_pin(a), frames.pinned_frames()), (None, 1));
        assert_eq!(frames.release(heap), Ok(true));
        assert_eq!(frames.pinned_frames(), 0, "the birth pin goes with the frame");
        assert_eq!(frames.release(a), Ok(true));
        assert_eq!(frames.check(), Ok(()));
        let mut counts = ledger(2, false);
        let c = counts.allocate(1, Role::KernelMemory).expect("frame")[0];
        counts.own(c, owner(0x1000), 0, false);
        assert_eq!(counts.pin(&[(c, owner(0x1000))], ORIGIN, u64::MAX), Ok(()));
        if let Some(entry) = counts.counts.get_mut(&c) {
            entry.pins = MAX_PIN_COUNT;
        }
        assert_eq!(counts.pin(&[(c, owner(0x1000))], ORIGIN, u64::MAX), Err(LedgerError::PinCeiling(c)));
    }

    #[test]
    fn check_finds_counts_on_a_free_frame() {
        let mut frames = ledger(4, false);
        let a = frames.allocate(1, Role::KernelMemory).expect("frame")[0];
        frames.own(a, owner(0x1000), 0, false);
        frames.roles[(a >> PAGE_SHIFT) as usize] = Role::Free;
        frames.free += 1;
        assert!(frames.check().is_err_and(|e| e.contains("invariant 6")));
    }

    #[test]
    fn residency_and_pins_read_the_frame_and_its_role() {
        let mut frames = ledger(8, false);
        frames.assign(0x2000, 1, Role::Stack);
        let [a, b, c] = frames.allocate(3, Role::KernelMemory).expect("frames")[..] else { panic!("three frames") };
        frames.own(a, owner(0xffff_c000_0000_0000), 0, false);
        frames.own(b, owner(0xffff_c000_0000_1000), 1, false);
        let free = BASE + 7 * PAGE_SIZE;
        assert_eq!(frames.role(free), Some(Role::Free));
        // Wired above 0, pinned, resident by nature, or none of these.
        assert_eq!([a, b, 0x2000, 0xd000_0000, free].map(|f| frames.is_resident(f)), [false, true, true, true, false]);
        assert_eq!([a, b, 0x2000, 0xd000_0000].map(|f| frames.is_pinned(f)), [false, false, false, true]);
        frames.pin(&[(a, owner(0xffff_c000_0000_0000)), (0x2000, owner(0x2000))], ORIGIN, 8).expect("pin");
        assert_eq!([a, 0x2000].map(|f| (frames.is_pinned(f), frames.is_resident(f))), [(true, true); 2]);
        // A fixed frame pinned has counts, but its wires are still not counted.
        assert_eq!(frames.wire_count(0x2000), Ok(None));
        assert_eq!(frames.wire(&[0x2000]), Ok(()));
        assert_eq!(frames.counts(0x2000).map(|c| c.wires), Some(0));
        let counted: Vec<u64> = frames.all_counts().map(|(f, _)| f).collect();
        assert_eq!(counted, [0x2000, a, b], "by frame");
        // c was never owned: no one's memory to wire.
        assert_eq!(frames.wire_count(c + 0x10), Err(LedgerError::Role { frame: c, role: Role::KernelMemory }));
        // Nor once pinned: a pin is not an owner.
        frames.pin(&[(c, owner(0xffff_c000_0000_2000))], ORIGIN, 8).expect("pin");
        assert_eq!(frames.wire_count(c), Err(LedgerError::Role { frame: c, role: Role::KernelMemory }));
    }

    #[test]
    fn a_wire_plan_counts_the_frames_it_pages_in_once() {
        let mut frames = ledger(4, false);
        let [a, b] = frames.allocate(2, Role::KernelMemory).expect("frames")[..] else { panic!("two frames") };
        frames.own(a, owner(0xffff_d000_0000_0000), 0, false);
        frames.own(b, owner(0xffff_c000_0000_0000), 1, false);
        assert_eq!(frames.plan_wire(&[a, a, b]).map(|p| p.pageable()), Ok(1), "a at 0, named twice, is paged in once");
        assert_eq!(frames.plan_wire(&[b, 0x2000]).map(|p| p.pageable()), Ok(0), "wired, or resident by nature");
        let plan = frames.plan_wire(&[a, a]).expect("plan");
        frames.apply_wire(plan);
        assert_eq!(frames.wire_count(a), Ok(Some((2, 0))));
        assert_eq!(frames.plan_wire(&[a]).map(|p| p.pageable()), Ok(0));
    }

    #[test]
    fn owning_a_frame_again_keeps_the_pinned_count_right() {
        let mut frames = ledger(4, false);
        let a = frames.allocate(1, Role::KernelMemory).expect("frame")[0];
        frames.own(a, owner(0xffff_e800_0000_0000), 0, true);
        assert_eq!(frames.pinned_frames(), 1);
        frames.own(a, owner(0xffff_e800_0000_0000), 0, true);
        assert_eq!(frames.pinned_frames(), 1, "the old entry's pin goes with it");
        frames.own(a, owner(0xffff_c000_0000_0000), 1, false);
        assert_eq!(frames.pinned_frames(), 0);
        assert_eq!(frames.check(), Ok(()));
    }

    #[test]
    fn marks_accumulate_and_the_ceiling_counts_each_naming() {
        let mut frames = ledger(4, false);
        let a = frames.allocate(1, Role::KernelMemory).expect("frame")[0];
        frames.own(a, owner(0xffff_c000_0000_0000), 0, false);
        frames.wire(&[a, a]).expect("wire twice");
        frames.unwire(&[a], Marks { referenced: true, modified: false }).expect("unwire");
        frames.unwire(&[a], Marks { referenced: false, modified: true }).expect("unwire");
        assert_eq!(frames.marks(a), Marks { referenced: true, modified: true }, "marks add up, never clear");
        let below = frames.unwire(&[a], Marks::default());
        assert_eq!(below, Err(LedgerError::BelowFloor { frame: a, count: 0, initial: 0 }));
        let max = u32::try_from(MAX_WIRE_COUNT).expect("fits");
        frames.counts.get_mut(&a).expect("counts").wires = max - 2;
        assert_eq!(frames.wire(&[a, a, a]), Err(LedgerError::WireCeiling(a)), "three more pass the ceiling");
        assert_eq!(frames.wire(&[a, a]), Ok(()));
    }
}
