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
//! 8. Wire counts and marks exist only for the frames of kernel memory,
//!    process pages and virtual memory objects, between their initial count and `MAX_WIRE_COUNT`; every
//!    other frame (the image, modules, stacks, vCPU pages, boot info) and every
//!    device window is resident by nature: wiring it counts nothing.
//! 9. A frame has a first-pin origin exactly when it is pinned above its
//!    initial count, and the pinned count equals the frames pinned from birth
//!    or above.
//! 10. Only pages of virtual memory objects and of the DG/UX kernel unwired
//!     arena have paging-device copies, and a page that is out is neither
//!     hidden, pinned nor wired: it cannot be
//!     hidden or released while out ([`FrameLedger::may_hide`],
//!     [`FrameLedger::release_refusal`]), and only a pageable page goes out
//!     ([`FrameLedger::page_out_refusal`]).
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

use changes::Changes;
mod changes;
mod counts;
mod dma;
mod hides;
mod paging;

pub use counts::{Counts, MAX_PIN_COUNT, Marks, Owner, PinOrigin};
pub use dma::{DeviceWrite, HandOffEnd, TransferRanges};
pub use paging::{Backing, DeviceId};

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
    /// A page of an AIX virtual memory object (`vms_create`, `vm_makep`).
    VmObject,
}

impl Role {
    /// Whether a device may read or write the frame, and so whether it may
    /// be hidden for DMA: only memory handed out for data.
    pub fn allows_dma(self) -> bool {
        matches!(self, Role::KernelMemory | Role::ProcessPage | Role::VmObject | Role::Stack)
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
            Role::VmObject => "a page of a virtual memory object",
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
    /// A transfer queued or running on the DMA engine touches it.
    #[error("guest-physical frame {0:#x} is touched by a DMA transfer that is queued or running")]
    InTransfer(u64),
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
    /// The frame's page is out on a paging device.
    #[error("guest-physical frame {0:#x} is paged out")]
    PagedOut(u64),
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
    /// Frame ranges of the transfers queued or running on the DMA engine,
    /// each with whether the device writes it.
    transfers: Vec<(std::ops::Range<u64>, bool)>,
    /// Runs of frames the DMA engine wrote, by first frame: the end of the
    /// run and who wrote it, until the write is accounted for or the frame freed.
    written: BTreeMap<u64, (u64, DeviceWrite)>,
    /// Frames a paging device holds a copy of, and whether each page is out.
    backing: BTreeMap<u64, Backing>,
    /// Which entries of `roles` and `free_list` changed since the ledger
    /// was equal to a copy ([`FrameLedger::name_for_copies`]).
    changes: Changes,
}

/// A copy of `v` with the same capacity: the report's bookkeeping size
/// counts capacities, and a copy must report what the original does.
fn same_capacity<T: Clone>(v: &[T], capacity: usize) -> Vec<T> {
    let mut copy = Vec::with_capacity(capacity);
    copy.extend_from_slice(v);
    copy
}

impl Clone for FrameLedger {
    fn clone(&self) -> FrameLedger {
        let FrameLedger {
            roles,
            base,
            free_list,
            free,
            contiguous,
            hides,
            aliases,
            counts,
            first_pins,
            pinned,
            transfers,
            written,
            backing,
            changes,
        } = self;
        FrameLedger {
            roles: same_capacity(roles, roles.capacity()),
            base: *base,
            free_list: same_capacity(free_list, free_list.capacity()),
            free: *free,
            contiguous: *contiguous,
            hides: hides.clone(),
            aliases: aliases.clone(),
            counts: counts.clone(),
            first_pins: first_pins.clone(),
            pinned: *pinned,
            transfers: same_capacity(transfers, transfers.capacity()),
            written: written.clone(),
            backing: backing.clone(),
            changes: changes.clone(),
        }
    }

    /// In place: the per-frame tables keep their buffers, and when this
    /// ledger was last equal to `source`, a copy taken after
    /// [`FrameLedger::name_for_copies`], only their entries that changed
    /// since are copied back (a snapshot reset).
    fn clone_from(&mut self, source: &FrameLedger) {
        let FrameLedger {
            roles,
            base,
            free_list,
            free,
            contiguous,
            hides,
            aliases,
            counts,
            first_pins,
            pinned,
            transfers,
            written,
            backing,
            changes,
        } = source;
        let same_buffers = self.roles.capacity() == roles.capacity() && self.free_list.capacity() == free_list.capacity();
        match self.changes.to_copy_from(changes, free_list.len()).filter(|_| same_buffers && self.roles.len() == roles.len()) {
            Some((changed, free_low)) => {
                self.roles[changed.clone()].copy_from_slice(&roles[changed]);
                self.free_list.truncate(free_low);
                self.free_list.extend_from_slice(&free_list[free_low..]);
            }
            None => {
                copy_into(&mut self.roles, roles);
                copy_into(&mut self.free_list, free_list);
            }
        }
        // Equal to `source` now, so as far from the named state as it is.
        self.changes = changes.clone();
        self.base = *base;
        self.free = *free;
        self.contiguous = *contiguous;
        self.hides.clone_from(hides);
        self.aliases.clone_from(aliases);
        self.counts.clone_from(counts);
        self.first_pins.clone_from(first_pins);
        self.pinned = *pinned;
        copy_into(&mut self.transfers, transfers);
        self.written.clone_from(written);
        self.backing.clone_from(backing);
    }
}

/// Makes `to` a copy of `from` with `from`'s capacity, in `to`'s buffer when
/// that has the capacity already.
fn copy_into<T: Clone>(to: &mut Vec<T>, from: &Vec<T>) {
    if to.capacity() == from.capacity() {
        to.clear();
        to.extend_from_slice(from);
    } else {
        *to = same_capacity(from, from.capacity());
    }
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
            transfers: Vec::new(),
            written: BTreeMap::new(),
            backing: BTreeMap::new(),
            pinned: 0,
            changes: Changes::default(),
        }
    }

    /// Names the ledger's present state for the copies (`clone`) taken
    /// before it next changes: from now on the ledger notes which frames'
    /// roles change and how short its free list gets, and its `clone_from`
    /// of such a copy, unchanged, copies back only those entries of the
    /// two per-frame tables (a snapshot reset).
    pub fn name_for_copies(&mut self) {
        self.changes = Changes::new_copy(self.free_list.len());
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
                self.changes.role(i);
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
            + (self.hides.len() + self.aliases.len() + self.written.len()) * 48
            + self.counts.len() * (std::mem::size_of::<(u64, Counts)>() * 4 / 3)
            + self.first_pins.len() * 48
            + self.transfers.capacity() * 24) as u64
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
        for &i in &offsets {
            let frame = (self.base + i) as usize;
            self.roles[frame] = role;
            self.changes.role(frame);
        }
        self.free -= n;
        // Collected in place: the offsets' buffer becomes the frames'.
        Some(offsets.into_iter().map(|i| (self.base + i) << PAGE_SHIFT).collect())
    }

    fn is_free(&self, offset: u64) -> bool {
        self.roles[(self.base + offset) as usize] == Role::Free
    }

    fn take_scattered(&mut self, n: u64, eligible: &impl Fn(u64) -> bool) -> Option<Vec<u64>> {
        let mut taken = Vec::with_capacity(n as usize);
        let mut passed = Vec::new();
        while (taken.len() as u64) < n {
            let Some(offset) = self.free_list.pop() else { break };
            self.changes.free_len(self.free_list.len());
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
        let Some(i) = self.allocated(gpa) else { return Ok(false) };
        if let Some(refusal) = self.release_refusal([gpa]) {
            return Err(refusal);
        }
        self.free(i, gpa);
        Ok(true)
    }

    /// Gives back every frame of `frames` as [`FrameLedger::release`] does,
    /// or none: the first refusal, as [`FrameLedger::release_refusal`] says,
    /// comes before anything changes. One check for all of them: a check
    /// followed by a `release` of each frame would check each twice.
    pub fn release_all<I>(&mut self, frames: I) -> Result<(), LedgerError>
    where
        I: IntoIterator<Item = u64>,
        I::IntoIter: Clone,
    {
        let frames = frames.into_iter();
        if let Some(refusal) = self.release_refusal(frames.clone()) {
            return Err(refusal);
        }
        for gpa in frames {
            if let Some(i) = self.allocated(gpa) {
                self.free(i, gpa);
            }
        }
        Ok(())
    }

    /// The frame number of `gpa` if it is the address of a frame the allocator manages and has handed out.
    fn allocated(&self, gpa: u64) -> Option<usize> {
        self.index(gpa).filter(|&i| gpa.is_multiple_of(PAGE_SIZE) && i as u64 >= self.base && self.roles[i] != Role::Free)
    }

    /// Frees frame number `i` (at `gpa`), which the allocator manages and which may be freed.
    fn free(&mut self, i: usize, gpa: u64) {
        if self.counts.remove(&gpa).is_some_and(|c| c.pinned_from_birth) {
            self.pinned -= 1;
        }
        // A freed frame's next owner is not blamed for this one's DMA, nor
        // handed its paging-device copy.
        self.take_device_write(gpa);
        self.backing.remove(&gpa);
        self.roles[i] = Role::Free;
        self.changes.role(i);
        self.free += 1;
        if let Ok(offset) = u32::try_from(i as u64 - self.base) {
            self.free_list.push(offset);
        }
    }

    /// Why releasing `frames` must be refused, if it must (invariant 7): the
    /// first that is hidden, then the first wired above its initial count,
    /// then the first pinned above it — through whatever address that happened.
    pub fn release_refusal(&self, frames: impl IntoIterator<Item = u64>) -> Option<LedgerError> {
        // One pass, two lookups a frame: these maps are cold after a VM exit.
        let (mut hidden, mut wired, mut pinned) = (None, None, None);
        for gpa in frames {
            let frame = page_of(gpa);
            if hidden.is_none() && self.hides.contains_key(&frame) {
                hidden = Some(LedgerError::Hidden(frame));
            }
            if hidden.is_none() && self.transfers_on(frame) > 0 {
                hidden = Some(LedgerError::InTransfer(frame));
            }
            if hidden.is_none() && self.is_paged_out(frame) {
                hidden = Some(LedgerError::PagedOut(frame));
            }
            if let Some(c) = self.counts.get(&frame) {
                if wired.is_none() && c.wires > c.initial_wires {
                    wired = Some(LedgerError::Wired { frame, count: c.wires, initial: c.initial_wires });
                }
                if pinned.is_none() && c.pins > 0 {
                    pinned = Some(LedgerError::Pinned { frame, pins: c.pins });
                }
            }
        }
        hidden.or(wired).or(pinned)
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
                Some(Role::KernelMemory | Role::ProcessPage | Role::VmObject) if c.wired_memory => {}
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
        for (&frame, b) in &self.backing {
            if self.role(frame) != Some(Role::VmObject) && !self.is_dgux_unwired(frame) {
                return Err(format!(
                    "invariant 10: frame {frame:#x} has a paging-device copy but is neither an object page nor DG/UX unwired memory"
                ));
            }
            if b.out && (self.hides(frame) > 0 || self.counts(frame).is_some_and(|c| c.is_pinned() || c.wires > c.initial_wires))
            {
                return Err(format!("invariant 10: frame {frame:#x} is paged out but hidden, pinned or wired"));
            }
        }
        if pinned != self.pinned {
            return Err(format!("invariant 9: {pinned} frames are pinned but the count says {}", self.pinned));
        }
        // A hidden free frame broke invariant 2 above already (a free frame may not be hidden).
        Ok(())
    }
}

/// The frame (page-aligned address) that holds `gpa`.
fn page_of(gpa: u64) -> u64 {
    gpa & !(PAGE_SIZE - 1)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(super) const BASE: u64 = 0x0110_0000;

    pub(super) fn ledger(frames: u64, contiguous: bool) -> FrameLedger {
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
    fn contiguous_mode_finds_no_run_in_fragmented_ram_and_skips_aliased_frames_for_tables() {
        let mut frames = ledger(8, true);
        let all = frames.allocate(8, Role::KernelMemory).expect("all");
        for &f in all.iter().step_by(2) {
            assert_eq!(frames.release(f), Ok(true));
        }
        assert_eq!(frames.free_frames(), 4);
        assert_eq!(frames.allocate(2, Role::KernelMemory), None, "four free frames, no two in a row");
        frames.add_alias(all[0], 0xffff_d000_0000_0000);
        frames.add_alias(all[2], 0xffff_d000_0000_1000);
        assert_eq!(frames.allocate_table(), Some(all[4]), "the first two free frames are aliased");
        assert_eq!(frames.check(), Ok(()));
    }

    #[test]
    fn release_all_frees_every_frame_or_none() {
        let mut frames = ledger(8, false);
        let got = frames.allocate(3, Role::KernelMemory).expect("frames");
        let owner = Owner { pid: 0, va: 0xffff_c000_0000_0000 };
        for &f in &got {
            frames.own(f, owner, 1, false);
        }
        frames.hide(&[got[2]]).expect("hide");
        assert_eq!(frames.release_all(got.iter().copied()), Err(LedgerError::Hidden(got[2])));
        assert_eq!(frames.free_frames(), 5, "the refusal of the last frees none before it");
        assert!(got.iter().all(|&f| frames.role(f) == Some(Role::KernelMemory) && frames.counts(f).is_some()));
        frames.unhide(&[got[2]]).expect("unhide");
        // A frame the allocator does not manage, and one freed already, are passed over.
        assert_eq!(frames.release(got[1]), Ok(true));
        assert_eq!(frames.release_all(got.iter().copied().chain([0x2000])), Ok(()));
        assert_eq!(frames.free_frames(), 8);
        assert!(got.iter().all(|&f| frames.role(f) == Some(Role::Free) && frames.counts(f).is_none()));
        assert_eq!(frames.check(), Ok(()));
    }

    #[test]
    fn check_names_each_broken_invariant() {
        let origin = PinOrigin { service: "pin", vcpu: 0, rip: 0 };
        let owner = Owner { pid: 0, va: 0xffff_c000_0000_0000 };
        // A sound ledger: a table, a wired frame that is hidden and pinned, a pinned stack frame.
        let sound = || {
            let mut frames = ledger(8, false);
            frames.assign(0x2000, 1, Role::Stack);
            frames.assign(0x3000, 1, Role::Image);
            let table = frames.allocate_table().expect("table");
            let data = frames.allocate(1, Role::KernelMemory).expect("frame")[0];
            frames.own(data, owner, 1, false);
            frames.hide(&[data]).expect("hide");
            frames.pin(&[(data, owner), (0x2000, owner)], origin, 8).expect("pin");
            assert_eq!(frames.check(), Ok(()));
            (frames, table, data)
        };
        type Break = fn(&mut FrameLedger, u64, u64);
        let cases: [(Break, &str); 16] = [
            (|f, table, _| f.add_alias(table, 0xffff_d000_0000_0000), "invariant 1: page table"),
            (|f, _, data| _ = f.hides.insert(data, 0), "frame 0x"),
            (|f, table, _| _ = f.hides.insert(table, 1), "invariant 2: hidden guest-physical frame"),
            (|f, _, _| f.free += 1, "invariant 5:"),
            (|f, _, data| f.roles[(data >> PAGE_SHIFT) as usize] = Role::Image, "invariant 2:"),
            (|f, _, _| _ = f.counts.insert(0x3000, f.counts[&0x2000]), "invariant 9: frame 0x3000 has 1 pins but origin None"),
            (
                |f, _, _| {
                    let mut c = f.counts[&0x2000];
                    c.pins = 0;
                    f.counts.insert(0x3000, c);
                },
                "invariant 8: frame 0x3000 (the guest image) has counts it may not have",
            ),
            (|f, _, _| f.counts.get_mut(&0x2000).expect("c").wired_memory = true, "invariant 8: frame 0x2000 (a vCPU stack)"),
            (|f, _, _| f.counts.get_mut(&0x2000).expect("c").wires = 1, "invariant 8: fixed frame 0x2000"),
            (|f, _, _| f.counts.get_mut(&0x2000).expect("c").initial_wires = 1, "invariant 8: fixed frame 0x2000"),
            (|f, _, _| f.counts.get_mut(&0x2000).expect("c").marks.modified = true, "invariant 8: fixed frame 0x2000"),
            (|f, _, _| f.counts.get_mut(&0x2000).expect("c").pinned_from_birth = true, "invariant 8: fixed frame 0x2000"),
            (|f, _, data| f.counts.get_mut(&data).expect("c").wires = 0, "invariant 8: frame 0x"),
            (|f, _, data| _ = f.first_pins.remove(&data), "invariant 9: frame 0x"),
            (
                |f, _, _| _ = f.first_pins.insert(0x3000, PinOrigin { service: "pin", vcpu: 0, rip: 0 }),
                "invariant 9: frame 0x3000 has a pin origin",
            ),
            (|f, _, _| f.pinned += 1, "invariant 9: 2 frames are pinned but the count says 3"),
        ];
        // Kernel memory always counts wires: counts that do not are not its.
        let (mut frames, _, _) = sound();
        let other = frames.allocate(1, Role::KernelMemory).expect("frame")[0];
        frames.own(other, owner, 0, false);
        frames.counts.get_mut(&other).expect("c").wired_memory = false;
        let said = frames.check().expect_err("broken");
        assert!(said.starts_with(&format!("invariant 8: frame {other:#x} (kernel memory) has counts")), "{said}");
        for (i, (corrupt, expected)) in cases.iter().enumerate() {
            let (mut frames, table, data) = sound();
            corrupt(&mut frames, table, data);
            let said = frames.check().expect_err("broken");
            assert!(said.starts_with(expected), "case {i}: `{said}` does not start with `{expected}`");
        }
    }

    #[test]
    fn every_role_says_what_it_is() {
        let said: Vec<String> = [
            Role::Unused,
            Role::CpuTables,
            Role::BootInfo,
            Role::VcpuPage,
            Role::Stack,
            Role::PageTable,
            Role::Image,
            Role::Module,
            Role::Free,
            Role::KernelMemory,
            Role::ProcessPage,
            Role::VmObject,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            said,
            [
                "unused fixed memory",
                "a CPU table (GDT, IDT or TSS)",
                "the boot-info page",
                "a vCPU page",
                "a vCPU stack",
                "a page table",
                "the guest image",
                "a guest module",
                "a free frame",
                "kernel memory",
                "a process page",
                "a page of a virtual memory object"
            ]
        );
    }

    #[test]
    fn bookkeeping_counts_every_structure() {
        let mut frames = ledger(16, false);
        let total = (BASE >> PAGE_SHIFT) + 16;
        let fresh = frames.bookkeeping_bytes();
        // The role bytes of every frame and the free list's 4-byte entries (its capacity may be larger).
        assert!((total + 4 * 16..=total + 8 * 16).contains(&fresh), "{fresh}");
        let data = frames.allocate(1, Role::KernelMemory).expect("frame")[0];
        let after_alloc = frames.bookkeeping_bytes();
        assert_eq!(after_alloc, fresh, "the free list keeps its capacity");
        frames.own(data, Owner { pid: 0, va: 0xffff_c000_0000_0000 }, 1, false);
        let entry = (std::mem::size_of::<(u64, Counts)>() * 4 / 3) as u64;
        assert_eq!(frames.bookkeeping_bytes(), after_alloc + entry);
        frames.hide(&[data]).expect("hide");
        assert_eq!(frames.bookkeeping_bytes(), after_alloc + entry + 48);
        frames.add_alias(data, 0xffff_d000_0000_0000);
        assert_eq!(frames.bookkeeping_bytes(), after_alloc + entry + 96);
        let origin = PinOrigin { service: "pin", vcpu: 0, rip: 0 };
        frames.pin(&[(data, Owner { pid: 0, va: 0xffff_c000_0000_0000 })], origin, 16).expect("pin");
        assert_eq!(frames.bookkeeping_bytes(), after_alloc + entry + 144);
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
}
