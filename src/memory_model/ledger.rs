//! The frame ledger: the one record of what each guest frame is.
//!
//! Every frame of guest RAM has an entry here, from frame 0 to the end of
//! RAM: its role (CPU tables, page table, image, free, kernel memory, …),
//! how many times it is hidden for DMA, and the guest-visible aliases that
//! `vm_map_physical_memory` made of it. Services, the hiding layer and the
//! DMA engine all ask the ledger, and they ask about the frame — never about
//! what a virtual address used to map. A device window is not a frame: an
//! address outside RAM has no entry and is refused by every operation.
//!
//! # Invariants
//!
//! [`FrameLedger::check`] verifies them; the operations below keep them:
//! 1. A frame that holds a page table has no guest-visible alias: a table is
//!    never drawn from a frame that has one ([`FrameLedger::allocate_table`]
//!    skips them), and an alias of a table is refused ([`FrameLedger::may_alias`]).
//! 2. Only RAM frames whose role allows DMA are ever hidden
//!    ([`FrameLedger::hide`]); the VMM, CPU tables, boot info, vCPU pages,
//!    page tables, the image and modules never are.
//! 3. A hidden frame is never released, so it can be neither freed nor
//!    reassigned; a remap of a virtual address leaves the frame's hides alone.
//! 4. The device touches a frame only if its role allows DMA ([`FrameLedger::dma_refusal`]).
//! 5. The free count equals the number of frames whose role is `Free`.
//! 6. A free frame has no wires, pins, hides or marks: counts exist only for
//!    frames handed out ([`FrameLedger::own`]) or pinned, and go with the
//!    frame's release.
//! 7. A frame wired above its initial count, pinned above its initial count
//!    or hidden is never released ([`FrameLedger::release`] refuses, and the
//!    services ask [`FrameLedger::release_refusal`] before they change anything).
//! 8. Wire counts and marks exist only for the frames of kernel memory and
//!    process pages, between their initial count and `MAX_WIRE_COUNT`; every
//!    other frame (the image, modules, stacks, vCPU pages, boot info) and every
//!    device window is resident by nature: wiring it counts nothing.
//! 9. A frame has a first-pin origin exactly when it is pinned above its
//!    initial count, and the pinned count equals the frames pinned from birth
//!    or above.
//!
//! # Counts follow the frame
//!
//! DG/UX wire counts, AIX pin counts and the referenced/modified marks are
//! facts about the frame, not about the address a call named: a guest may
//! reach one frame through several addresses (`vm_map_physical_memory`), and
//! a release must see what was done through any of them. Services translate
//! each address to the frame it maps now and count there.
//!
//! Allocation: by default the frames of one request are deliberately not
//! physically contiguous — the free list yields every other frame first, so
//! two frames handed out one after the other are never neighbours, and a
//! driver that assumes a multi-page buffer is physically contiguous (the
//! DG/UX page warns against it) gets it wrong visibly. `contiguous` mode
//! hands out runs instead.
//!
//! Bookkeeping is one byte per frame plus a 4-byte free-list entry per free
//! frame, and sparse maps for hides, aliases and counts (one small entry per
//! frame handed out): well under 1% of guest RAM.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kmemvisor_abi::dgux::MAX_WIRE_COUNT;
use kmemvisor_abi::layout::{PAGE_SHIFT, PAGE_SIZE};

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
    wired_memory: bool,
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

impl Counts {
    fn is_pinned(&self) -> bool {
        self.pinned_from_birth || self.pins > 0
    }
}

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    /// Fixed memory no one uses.
    Unused,
    /// The GDT, IDT or TSS.
    CpuTables,
    /// The boot-info page.
    BootInfo,
    /// A vCPU page.
    VcpuPage,
    /// A vCPU stack.
    Stack,
    /// A page table (of the boot pool or drawn from free RAM).
    PageTable,
    /// The main image.
    Image,
    /// A guest module.
    Module,
    /// Free RAM, not handed out.
    Free,
    /// A page of the DG/UX arenas or the AIX heaps.
    KernelMemory,
    /// A page a process mapped.
    ProcessPage,
}

impl Role {
    /// Whether a device may read or write the frame, and so whether it may
    /// be hidden for DMA: only memory handed out for data.
    pub fn allows_dma(self) -> bool {
        matches!(self, Role::KernelMemory | Role::ProcessPage | Role::Stack)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Unused => "unused fixed memory",
            Role::CpuTables => "a CPU table (GDT, IDT or TSS)",
            Role::BootInfo => "the boot-info page",
            Role::VcpuPage => "a vCPU page",
            Role::Stack => "a vCPU stack",
            Role::PageTable => "a page table",
            Role::Image => "the guest image",
            Role::Module => "a guest module",
            Role::Free => "a free frame",
            Role::KernelMemory => "kernel memory",
            Role::ProcessPage => "a process page",
        })
    }
}

/// Why the ledger refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The address is not in guest RAM (a device window, or past the end).
    #[error("guest-physical {0:#x} is not RAM")]
    NotRam(u64),
    /// The frame's role forbids it.
    #[error("guest-physical frame {frame:#x} is {role}")]
    Role {
        /// The frame.
        frame: u64,
        /// What it is.
        role: Role,
    },
    /// The frame is hidden for DMA.
    #[error("guest-physical frame {0:#x} is hidden for DMA")]
    Hidden(u64),
    /// The frame is not hidden.
    #[error("guest-physical frame {0:#x} is not hidden")]
    NotHidden(u64),
    /// The frame is wired above its initial count.
    #[error("guest-physical frame {frame:#x} is still wired: wire count {count}, initial {initial}")]
    Wired {
        /// The frame.
        frame: u64,
        /// Its wire count.
        count: u32,
        /// Its initial count.
        initial: u32,
    },
    /// The frame is pinned above its initial count.
    #[error("guest-physical frame {frame:#x} is still pinned: {pins} pin(s) above its initial count")]
    Pinned {
        /// The frame.
        frame: u64,
        /// Pins above the initial count.
        pins: u32,
    },
    /// One more wire would pass `MAX_WIRE_COUNT`.
    #[error("guest-physical frame {0:#x} is at the highest wire count")]
    WireCeiling(u64),
    /// An unwire would go below the initial count.
    #[error("guest-physical frame {frame:#x} would go below its initial wire count {initial} (wire count {count})")]
    BelowFloor {
        /// The frame.
        frame: u64,
        /// Its wire count.
        count: u32,
        /// Its initial count.
        initial: u32,
    },
    /// One more pin would overflow the count.
    #[error("guest-physical frame {0:#x} is at the highest pin count")]
    PinCeiling(u64),
    /// An unpin would go below the initial count.
    #[error("guest-physical frame {0:#x} is not pinned above its initial count")]
    NotPinned(u64),
    /// Pinning would pass the limit of pinned frames.
    #[error("pinning would pass the limit of {0} pinned frames")]
    PinLimit(u64),
}

/// Every guest frame.
#[derive(Debug)]
pub struct FrameLedger {
    /// The role of every frame of RAM, by frame number.
    roles: Vec<Role>,
    /// Frame number of the first frame the allocator manages.
    base: u64,
    /// Frames to hand out next (from the end), as offsets from `base`; may
    /// hold frames taken meanwhile by a contiguous request, which are skipped.
    free_list: Vec<u32>,
    free: u64,
    contiguous: bool,
    /// Hide counts of hidden frames, by guest-physical address.
    hides: BTreeMap<u64, u32>,
    /// Guest-visible aliases (kernel virtual pages) of frames, by frame.
    aliases: BTreeMap<u64, BTreeSet<u64>>,
    /// Counts and marks of frames handed out or pinned, by frame (invariant 6).
    counts: BTreeMap<u64, Counts>,
    /// The call that made the first pin of each frame pinned above its initial count.
    first_pins: BTreeMap<u64, PinOrigin>,
    /// Frames pinned now: from birth or above their initial count (invariant 9).
    pinned: u64,
}

impl FrameLedger {
    /// A ledger of `ram_size` bytes of RAM whose frames from `first_free` on
    /// are free and handed out; every frame below is `Unused` until
    /// [`FrameLedger::assign`] says what it is.
    pub fn new(first_free: u64, ram_size: u64, contiguous: bool) -> FrameLedger {
        let frames = ram_size >> PAGE_SHIFT;
        let base = (first_free >> PAGE_SHIFT).min(frames);
        let count = frames - base;
        let mut roles = vec![Role::Unused; frames as usize];
        roles[base as usize..].fill(Role::Free);
        // Popped from the end: even offsets first, then odd ones, each ascending.
        let order = (0..count).step_by(2).chain((1..count).step_by(2));
        let mut free_list: Vec<u32> = order.filter_map(|i| u32::try_from(i).ok()).collect();
        free_list.reverse();
        FrameLedger {
            roles,
            base,
            free_list,
            free: count,
            contiguous,
            hides: BTreeMap::new(),
            aliases: BTreeMap::new(),
            counts: BTreeMap::new(),
            first_pins: BTreeMap::new(),
            pinned: 0,
        }
    }

    /// The frame number of `gpa` if it is a RAM frame's address.
    fn index(&self, gpa: u64) -> Option<usize> {
        let i = usize::try_from(gpa >> PAGE_SHIFT).ok()?;
        (i < self.roles.len()).then_some(i)
    }

    /// The role of the frame that holds `gpa`, or `None` outside RAM.
    pub fn role(&self, gpa: u64) -> Option<Role> {
        self.index(gpa).map(|i| self.roles[i])
    }

    /// Says what the fixed frames of `[gpa, gpa + pages)` are (at boot);
    /// frames outside RAM or managed by the allocator are left alone.
    pub fn assign(&mut self, gpa: u64, pages: u64, role: Role) {
        for page in 0..pages {
            if let Some(i) = self.index(gpa + page * PAGE_SIZE).filter(|&i| (i as u64) < self.base) {
                self.roles[i] = role;
            }
        }
    }

    /// Whether the frame at `gpa` holds a page table.
    pub fn is_table(&self, gpa: u64) -> bool {
        self.role(gpa) == Some(Role::PageTable)
    }

    /// Frames not in use.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Bytes of bookkeeping.
    pub fn bookkeeping_bytes(&self) -> u64 {
        (self.roles.capacity()
            + self.free_list.capacity() * 4
            + (self.hides.len() + self.aliases.len()) * 48
            + self.counts.len() * (std::mem::size_of::<(u64, Counts)>() * 4 / 3)
            + self.first_pins.len() * 48) as u64
    }

    /// `n` free frames (guest-physical addresses), now `role`, or `None` if
    /// there are not enough (nothing is taken then).
    pub fn allocate(&mut self, n: u64, role: Role) -> Option<Vec<u64>> {
        self.allocate_where(n, role, |_| true)
    }

    /// One frame for a page table: never a frame the guest has an alias of.
    pub fn allocate_table(&mut self) -> Option<u64> {
        let aliases = std::mem::take(&mut self.aliases);
        let frame = self.allocate_where(1, Role::PageTable, |gpa| !aliases.contains_key(&gpa));
        self.aliases = aliases;
        frame?.first().copied()
    }

    fn allocate_where(&mut self, n: u64, role: Role, eligible: impl Fn(u64) -> bool) -> Option<Vec<u64>> {
        if n > self.free {
            return None;
        }
        let offsets = if self.contiguous { self.take_run(n, &eligible)? } else { self.take_scattered(n, &eligible)? };
        let frames: Vec<u64> = offsets.iter().map(|&i| (self.base + i) << PAGE_SHIFT).collect();
        for &i in &offsets {
            self.roles[(self.base + i) as usize] = role;
        }
        self.free -= n;
        Some(frames)
    }

    fn is_free(&self, offset: u64) -> bool {
        self.roles[(self.base + offset) as usize] == Role::Free
    }

    fn take_scattered(&mut self, n: u64, eligible: &impl Fn(u64) -> bool) -> Option<Vec<u64>> {
        let mut taken = Vec::with_capacity(n as usize);
        let mut passed = Vec::new();
        while (taken.len() as u64) < n {
            let Some(offset) = self.free_list.pop() else { break };
            let offset = u64::from(offset);
            if !self.is_free(offset) {
                continue;
            }
            if eligible((self.base + offset) << PAGE_SHIFT) {
                taken.push(offset);
            } else {
                passed.push(offset);
            }
        }
        // Frames passed over stay free and come back first.
        self.free_list.extend(passed.iter().rev().filter_map(|&o| u32::try_from(o).ok()));
        if (taken.len() as u64) < n {
            self.free_list.extend(taken.iter().rev().filter_map(|&o| u32::try_from(o).ok()));
            return None;
        }
        Some(taken)
    }

    fn take_run(&mut self, n: u64, eligible: &impl Fn(u64) -> bool) -> Option<Vec<u64>> {
        let count = self.roles.len() as u64 - self.base;
        let mut run = 0;
        for offset in 0..count {
            let usable = self.is_free(offset) && eligible((self.base + offset) << PAGE_SHIFT);
            run = if usable { run + 1 } else { 0 };
            if run == n {
                return Some((offset + 1 - n..=offset).collect());
            }
        }
        None
    }

    /// Gives the frame at `gpa` back, with its counts and marks. A hidden,
    /// wired or pinned frame is refused (invariants 3 and 7);
    /// frames the allocator does not manage, or free already, are ignored
    /// (`Ok(false)`).
    pub fn release(&mut self, gpa: u64) -> Result<bool, LedgerError> {
        let Some(i) = self.index(gpa).filter(|&i| gpa.is_multiple_of(PAGE_SIZE) && i as u64 >= self.base) else {
            return Ok(false);
        };
        if self.roles[i] == Role::Free {
            return Ok(false);
        }
        if let Some(refusal) = self.release_refusal([gpa]) {
            return Err(refusal);
        }
        if self.counts.remove(&gpa).is_some_and(|c| c.pinned_from_birth) {
            self.pinned -= 1;
        }
        self.roles[i] = Role::Free;
        self.free += 1;
        if let Ok(offset) = u32::try_from(i as u64 - self.base) {
            self.free_list.push(offset);
        }
        Ok(true)
    }

    /// The first of `frames` that is hidden, if any: what a release of them
    /// must refuse before it changes anything.
    pub fn first_hidden(&self, frames: impl IntoIterator<Item = u64>) -> Option<u64> {
        frames.into_iter().find(|gpa| self.hides.contains_key(&(gpa & !(PAGE_SIZE - 1))))
    }

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

    /// The aliases of the frame at `gpa`.
    pub fn aliases(&self, gpa: u64) -> impl Iterator<Item = u64> + '_ {
        self.aliases.get(&(gpa & !(PAGE_SIZE - 1))).into_iter().flatten().copied()
    }

    /// Why releasing `frames` must be refused, if it must (invariant 7): the
    /// first that is hidden, then the first wired above its initial count,
    /// then the first pinned above it — through whatever address that happened.
    pub fn release_refusal(&self, frames: impl IntoIterator<Item = u64> + Clone) -> Option<LedgerError> {
        if let Some(frame) = self.first_hidden(frames.clone()) {
            return Some(LedgerError::Hidden(frame));
        }
        let counted = || frames.clone().into_iter().filter_map(|gpa| Some((page_of(gpa), self.counts.get(&page_of(gpa))?)));
        if let Some((frame, c)) = counted().find(|(_, c)| c.wires > c.initial_wires) {
            return Some(LedgerError::Wired { frame, count: c.wires, initial: c.initial_wires });
        }
        counted().find(|(_, c)| c.pins > 0).map(|(frame, c)| LedgerError::Pinned { frame, pins: c.pins })
    }

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
            Some(role @ (Role::Free | Role::KernelMemory | Role::ProcessPage)) => match self.counts.get(&frame) {
                Some(c) if c.wired_memory => Ok(Some((c.wires, c.initial_wires))),
                _ => Err(LedgerError::Role { frame, role }),
            },
            Some(_) => Ok(None),
        }
    }

    /// How many times each counted frame occurs in `frames`; an error for a
    /// frame no one was handed.
    fn counted_frames(&self, frames: &[u64]) -> Result<BTreeMap<u64, u32>, LedgerError> {
        let mut wanted = BTreeMap::new();
        for &gpa in frames {
            if self.wire_count(gpa)?.is_some() {
                *wanted.entry(page_of(gpa)).or_insert(0) += 1;
            }
        }
        Ok(wanted)
    }

    /// One more wire of each of `frames` (a frame named twice is wired
    /// twice), all or nothing; memory resident by nature counts nothing.
    pub fn wire(&mut self, frames: &[u64]) -> Result<(), LedgerError> {
        let wanted = self.counted_frames(frames)?;
        for (&frame, &n) in &wanted {
            if self.counts.get(&frame).is_some_and(|c| u64::from(c.wires) + u64::from(n) > MAX_WIRE_COUNT) {
                return Err(LedgerError::WireCeiling(frame));
            }
        }
        for (frame, n) in wanted {
            if let Some(c) = self.counts.get_mut(&frame) {
                c.wires += n;
            }
        }
        Ok(())
    }

    /// One wire less of each of `frames`, marking them as `marks` says, all
    /// or nothing: no frame goes below its initial count.
    pub fn unwire(&mut self, frames: &[u64], marks: Marks) -> Result<(), LedgerError> {
        let wanted = self.counted_frames(frames)?;
        for (&frame, &n) in &wanted {
            if let Some(c) = self.counts.get(&frame).filter(|c| c.wires < c.initial_wires + n) {
                return Err(LedgerError::BelowFloor { frame, count: c.wires, initial: c.initial_wires });
            }
        }
        for (frame, n) in wanted {
            if let Some(c) = self.counts.get_mut(&frame) {
                c.wires -= n;
                c.marks.referenced |= marks.referenced;
                c.marks.modified |= marks.modified;
            }
        }
        Ok(())
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

    /// Checks every invariant; the first broken one, said.
    pub fn check(&self) -> Result<(), String> {
        for &frame in self.aliases.keys() {
            if self.is_table(frame) {
                return Err(format!("invariant 1: page table {frame:#x} has a guest alias"));
            }
        }
        for (&frame, &count) in &self.hides {
            if count == 0 {
                return Err(format!("frame {frame:#x} is listed hidden with count 0"));
            }
            if let Err(e) = self.may_hide(frame) {
                return Err(format!("invariant 2: hidden {e}"));
            }
        }
        let free = self.roles.iter().filter(|&&r| r == Role::Free).count() as u64;
        if free != self.free {
            return Err(format!("invariant 5: {free} frames are free but the count says {}", self.free));
        }
        let mut pinned = 0;
        for (&frame, c) in &self.counts {
            match self.role(frame) {
                None | Some(Role::Free) => return Err(format!("invariant 6: frame {frame:#x} has counts but is not handed out")),
                Some(Role::KernelMemory | Role::ProcessPage) if c.wired_memory => {}
                Some(_) if !c.wired_memory && c.pins > 0 => {}
                Some(role) => return Err(format!("invariant 8: frame {frame:#x} ({role}) has counts it may not have")),
            }
            let no_wires = c.wires == 0 && c.initial_wires == 0 && c.marks == Marks::default() && !c.pinned_from_birth;
            if !c.wired_memory && !no_wires {
                return Err(format!("invariant 8: fixed frame {frame:#x} has wires, marks or a birth pin"));
            }
            if c.wires < c.initial_wires || u64::from(c.wires) > MAX_WIRE_COUNT {
                return Err(format!("invariant 8: frame {frame:#x} has wire count {} (initial {})", c.wires, c.initial_wires));
            }
            if (c.pins > 0) != self.first_pins.contains_key(&frame) {
                return Err(format!(
                    "invariant 9: frame {frame:#x} has {} pins but origin {:?}",
                    c.pins,
                    self.first_pins.get(&frame)
                ));
            }
            pinned += u64::from(c.is_pinned());
        }
        if let Some(frame) = self.first_pins.keys().find(|f| !self.counts.contains_key(f)) {
            return Err(format!("invariant 9: frame {frame:#x} has a pin origin but no pins"));
        }
        if pinned != self.pinned {
            return Err(format!("invariant 9: {pinned} frames are pinned but the count says {}", self.pinned));
        }
        if let Some((&frame, _)) = self.hides.iter().find(|&(&f, _)| self.role(f) == Some(Role::Free)) {
            return Err(format!("invariant 6: free frame {frame:#x} is hidden"));
        }
        Ok(())
    }
}

/// The frame (page-aligned address) that holds `gpa`.
fn page_of(gpa: u64) -> u64 {
    gpa & !(PAGE_SIZE - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x0110_0000;

    fn ledger(frames: u64, contiguous: bool) -> FrameLedger {
        FrameLedger::new(BASE, BASE + frames * PAGE_SIZE, contiguous)
    }

    #[test]
    fn scattered_frames_are_never_neighbours() {
        let mut frames = ledger(64, false);
        let got = frames.allocate(8, Role::KernelMemory).expect("frames");
        assert_eq!(got.len(), 8);
        for pair in got.windows(2) {
            assert_ne!(pair[1], pair[0] + PAGE_SIZE, "{got:x?}");
            assert_ne!(pair[0], pair[1] + PAGE_SIZE, "{got:x?}");
        }
        assert!(got.iter().all(|&g| (BASE..BASE + 64 * PAGE_SIZE).contains(&g) && g.is_multiple_of(PAGE_SIZE)));
        assert!(got.iter().all(|&g| frames.role(g) == Some(Role::KernelMemory)));
        assert_eq!(frames.free_frames(), 56);
        assert_eq!(frames.check(), Ok(()));
    }

    #[test]
    fn contiguous_mode_hands_out_runs() {
        let mut frames = ledger(16, true);
        let a = frames.allocate(3, Role::ProcessPage).expect("run");
        assert_eq!(a, vec![BASE, BASE + PAGE_SIZE, BASE + 2 * PAGE_SIZE]);
        assert_eq!(frames.release(BASE + PAGE_SIZE), Ok(true));
        let b = frames.allocate(2, Role::ProcessPage).expect("run");
        assert_eq!(b, vec![BASE + 3 * PAGE_SIZE, BASE + 4 * PAGE_SIZE], "the hole of one frame is too small");
        assert_eq!(frames.allocate(1, Role::ProcessPage), Some(vec![BASE + PAGE_SIZE]));
        assert_eq!(frames.check(), Ok(()));
    }

    #[test]
    fn every_frame_can_be_allocated_once_and_exhaustion_takes_nothing() {
        let mut frames = ledger(10, false);
        let mut all = frames.allocate(10, Role::KernelMemory).expect("all");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 10);
        assert_eq!(frames.allocate(1, Role::KernelMemory), None);
        assert_eq!(frames.release(all[3]), Ok(true));
        assert_eq!(frames.allocate(2, Role::KernelMemory), None);
        assert_eq!(frames.free_frames(), 1);
        assert_eq!(frames.allocate(1, Role::KernelMemory), Some(vec![all[3]]));
    }

    #[test]
    fn page_table_frames_are_known_until_released() {
        let mut frames = ledger(8, false);
        let table = frames.allocate_table().expect("table");
        let data = frames.allocate(1, Role::KernelMemory).expect("data")[0];
        assert!(frames.is_table(table) && !frames.is_table(data));
        assert!(!frames.is_table(u64::MAX) && !frames.is_table(0));
        assert_eq!(frames.release(table), Ok(true));
        assert!(!frames.is_table(table));
        assert_eq!(frames.role(table), Some(Role::Free));
    }

    #[test]
    fn bad_releases_are_ignored() {
        let mut frames = ledger(4, false);
        assert_eq!(frames.release(BASE), Ok(false), "free already");
        assert_eq!(frames.release(BASE - PAGE_SIZE), Ok(false), "below the managed range");
        assert_eq!(frames.release(BASE + 4 * PAGE_SIZE), Ok(false), "past RAM");
        assert_eq!(frames.release(BASE + 1), Ok(false), "unaligned");
        assert_eq!(frames.release(u64::MAX), Ok(false));
        assert_eq!(frames.free_frames(), 4);
    }

    #[test]
    fn a_table_is_never_drawn_from_a_frame_the_guest_aliases() {
        let mut frames = ledger(4, false);
        let all = frames.allocate(4, Role::KernelMemory).expect("all");
        for &f in &all {
            assert_eq!(frames.release(f), Ok(true));
        }
        // The guest maps three free frames; only the fourth may become a table.
        for &f in &all[..3] {
            assert_eq!(frames.may_alias(f), Ok(()));
            frames.add_alias(f, 0xffff_d000_0000_0000 + f);
        }
        assert_eq!(frames.allocate_table(), Some(all[3]));
        assert_eq!(frames.allocate_table(), None, "every other free frame is aliased");
        assert_eq!(frames.free_frames(), 3, "the frames passed over are still free");
        assert_eq!(frames.may_alias(all[3]), Err(LedgerError::Role { frame: all[3], role: Role::PageTable }));
        frames.remove_alias(all[0], 0xffff_d000_0000_0000 + all[0]);
        assert_eq!(frames.aliases(all[0]).count(), 0);
        assert_eq!(frames.allocate_table(), Some(all[0]));
        assert_eq!(frames.check(), Ok(()));
        let data = frames.allocate(2, Role::KernelMemory).expect("aliased frames are fine for data");
        assert_eq!(data.len(), 2);
    }

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
        assert_eq!(frames.first_hidden([table, data]), Some(data));
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
    fn fixed_frames_keep_the_role_they_were_assigned() {
        let mut frames = ledger(2, false);
        frames.assign(0x2000, 2, Role::Image);
        frames.assign(BASE, 1, Role::Image);
        assert_eq!(
            (frames.role(0x2000), frames.role(0x3fff), frames.role(0x4000)),
            (Some(Role::Image), Some(Role::Image), Some(Role::Unused))
        );
        assert_eq!(frames.role(BASE), Some(Role::Free), "the allocator's frames are not assigned");
        assert_eq!(frames.role(BASE + 2 * PAGE_SIZE), None, "past RAM");
        assert_eq!(frames.release(0x2000), Ok(false), "fixed frames are never released");
    }

    #[test]
    fn bookkeeping_stays_under_one_percent_of_ram() {
        let ram = 64u64 << 20;
        let frames = FrameLedger::new(BASE, ram, false);
        assert!(frames.bookkeeping_bytes() * 100 < ram, "{} bytes", frames.bookkeeping_bytes());
    }

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
}
