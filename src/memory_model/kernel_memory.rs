//! Kernel memory backed page by page: DG/UX wired and unwired allocations and
//! the two AIX boot heaps (`kernel_heap`, `pinned_heap`), each in its own
//! arena, with the frame each page owns and an optional physical mapping per
//! page. Wire counts and referenced/modified marks are the frames', kept by
//! the [`FrameLedger`]: every call translates its addresses to the frames
//! they map now. Every operation checks everything before it changes anything.

use std::collections::BTreeMap;
use std::fmt;

use crate::memory_model::ram::GuestMemoryMmap;
use kmemvisor_abi::Status;
use kmemvisor_abi::dgux::{SC_EXECUTE_ACCESS, SC_WRITE_ACCESS, VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS, alignment_bytes};
use kmemvisor_abi::dma::{DMA_ENGINE_GPA, DMA_ENGINE_SIZE};
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use serde::Serialize;

use super::arena::Arena;
use super::inject::{FailSpec, Injector};
use super::origins::Origins;
use crate::checker::{Leak, ViolationKind};
pub use crate::memory_model::ledger::Marks;
use crate::memory_model::ledger::{FrameLedger, LedgerError, Owner, Role};
use crate::memory_model::paging::{AddressSpace, LEAF_SPAN, LeafSlot, PteFlags};
use crate::memory_model::ram::{ZapError, fill, zap_frame};

/// DG/UX wired or unwired memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Never paged out; pages start with wire count 1.
    Wired,
    /// May be paged out; pages start with wire count 0.
    Unwired,
}

impl From<Kind> for Region {
    fn from(kind: Kind) -> Region {
        match kind {
            Kind::Wired => Region::Wired,
            Kind::Unwired => Region::Unwired,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Region::from(*self).fmt(f)
    }
}

/// Which memory an allocation is: DG/UX memory or an AIX boot heap; each
/// has its own arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// DG/UX wired memory: pages start with wire count 1.
    Wired,
    /// DG/UX unwired memory: pages start with wire count 0.
    Unwired,
    /// The AIX pageable `kernel_heap`: pages start with wire count 0.
    KernelHeap,
    /// The AIX `pinned_heap`: pinned from birth; pages start with wire count 1.
    PinnedHeap,
}

impl Region {
    fn initial_wire_count(self) -> u32 {
        match self {
            Region::Wired | Region::PinnedHeap => 1,
            Region::Unwired | Region::KernelHeap => 0,
        }
    }

    /// Whether DG/UX memory (else an AIX heap).
    pub const fn is_dgux(self) -> bool {
        matches!(self, Region::Wired | Region::Unwired)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Wired => "wired",
            Region::Unwired => "unwired",
            Region::KernelHeap => "kernel_heap",
            Region::PinnedHeap => "pinned_heap",
        })
    }
}

/// A live allocation, kept small: there may be very many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// Where the get came from: its stack in [`Origins`].
    pub origin: u32,
    /// Bytes asked for (`bytes` is a uint32 in the manual page).
    pub bytes: u32,
    /// The vCPU that made the get.
    pub vcpu: u16,
    /// Which memory.
    pub kind: Region,
    /// Made by a demand get (else a perhaps get; `false` for `xmalloc`).
    pub demand: bool,
}

impl Allocation {
    /// The get that made it.
    fn service(&self) -> &'static str {
        match (self.kind, self.demand) {
            (Region::Wired, true) => "vm_get_wired_memory",
            (Region::Wired, false) => "vm_perhaps_get_wired_memory",
            (Region::Unwired, true) => "vm_get_unwired_memory",
            (Region::Unwired, false) => "vm_perhaps_get_unwired_memory",
            (Region::KernelHeap | Region::PinnedHeap, _) => "xmalloc",
        }
    }
}

const _: () = assert!(std::mem::size_of::<Allocation>() == 12);

/// Whether `vm_map_physical_memory` may map `[physical, physical + bytes)`:
/// `Ok(true)` for free RAM (kernel memory and process pages: frames whose
/// role allows an alias), `Ok(false)` for the DMA engine's register window,
/// `VM_EINVAL_MMAP_BAD_REGION` for anything else — page tables and fixed
/// frames are the VMM's: a guest that could map one would rewrite its own
/// translations (the ledger says what each frame is now).
pub fn physical_region(frames: &FrameLedger, physical: u64, bytes: u64, ram_end: u64) -> Result<bool, Status> {
    let end = physical.checked_add(bytes);
    let in_ram = physical >= layout::FREE_RAM_GPA && end.is_some_and(|end| end <= ram_end);
    // A device's registers are mapped like hardware's: the DMA engine's window.
    let in_device = physical >= DMA_ENGINE_GPA && end.is_some_and(|end| end <= DMA_ENGINE_GPA + DMA_ENGINE_SIZE);
    if !(in_ram || in_device) || (in_ram && pages(physical, physical + bytes).any(|frame| frames.may_alias(frame).is_err())) {
        return Err(Status::VM_EINVAL_MMAP_BAD_REGION);
    }
    Ok(in_ram)
}

/// Bytes a B-tree map spends per entry of `(K, V)`: the entry and a third more
/// for partly filled nodes and their links.
fn tree_bytes<K, V>(entries: usize) -> u64 {
    (entries * std::mem::size_of::<(K, V)>() * 4 / 3) as u64
}

/// The state of one arena page.
#[derive(Clone, Copy, Debug)]
struct Page {
    /// The page's own frame.
    frame: u64,
    /// Live allocations on the page.
    live: u32,
    /// The frame `vm_map_physical_memory` put in place of `frame`.
    physical: Option<u64>,
    /// The page's leaf entry in the kernel space.
    slot: LeafSlot,
}

/// Why a get failed.
#[derive(Debug, PartialEq, Eq)]
pub enum GetError {
    /// The request itself is wrong (a violation).
    Refused(GetRefusal),
    /// No memory (or an injected failure).
    OutOfMemory,
}

/// What is wrong with a get: each is a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GetRefusal {
    /// `bytes` is 0.
    #[error("bytes must be positive")]
    ZeroBytes,
    /// `bytes` does not fit its `uint32`.
    #[error("{bytes} bytes does not fit the uint32 `bytes`")]
    TooLarge {
        /// The byte count asked for.
        bytes: u64,
    },
    /// `alignment` is no alignment code.
    #[error("{alignment} is not an alignment code (VM_BYTE_ALIGNED .. VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS)")]
    NotAnAlignmentCode {
        /// The alignment argument.
        alignment: u64,
    },
    /// An alignment in bytes that is not a power of two.
    #[error("an alignment of {align} bytes is not a power of two")]
    AlignmentNotPowerOfTwo {
        /// The alignment in bytes.
        align: u64,
    },
    /// Fewer bytes than the alignment.
    #[error("{bytes} bytes is less than the alignment of {align} bytes")]
    SmallerThanAlignment {
        /// The byte count asked for.
        bytes: u64,
        /// The alignment in bytes.
        align: u64,
    },
    /// More than a page with `VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS`.
    #[error("{bytes} bytes cannot fit one page (VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS)")]
    NoPageCrossTooLarge {
        /// The byte count asked for.
        bytes: u64,
    },
}

impl GetRefusal {
    /// The rule the get broke.
    pub fn kind(self) -> ViolationKind {
        match self {
            GetRefusal::ZeroBytes => ViolationKind::DgUxGetZeroBytes,
            GetRefusal::TooLarge { .. } => ViolationKind::DgUxUint32Overflow,
            GetRefusal::NotAnAlignmentCode { .. } | GetRefusal::AlignmentNotPowerOfTwo { .. } => ViolationKind::DgUxBadAlignment,
            GetRefusal::SmallerThanAlignment { .. } => ViolationKind::DgUxGetSmallerThanAlignment,
            GetRefusal::NoPageCrossTooLarge { .. } => ViolationKind::DgUxNoPageCrossTooLarge,
        }
    }
}

/// Why a release failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ReleaseError {
    /// The release is wrong: nothing was released (a violation).
    Refused(ReleaseRefusal),
    /// Not a refusal: the memory was released, but a freed frame's stage-2
    /// mappings could not be dropped (the VM must stop).
    Zap(ZapError),
}

impl From<ReleaseRefusal> for ReleaseError {
    fn from(refusal: ReleaseRefusal) -> ReleaseError {
        ReleaseError::Refused(refusal)
    }
}

/// Why a release was refused: each is a violation.
#[derive(Debug, PartialEq, Eq)]
pub enum ReleaseRefusal {
    /// No live allocation there.
    NoAllocation,
    /// Inside an allocation, not at its start.
    NotStart {
        /// Where the allocation starts.
        start: u64,
        /// Its size.
        bytes: u64,
    },
    /// The other type.
    WrongKind {
        /// The type it was allocated as.
        actual: Region,
    },
    /// Another byte count.
    WrongSize {
        /// The byte count of the get.
        expected: u64,
    },
    /// A page's frame is wired above its initial count, through this
    /// address or any other mapping of the frame.
    StillWired {
        /// The page.
        page: u64,
        /// Its wire count.
        count: u32,
        /// Its initial count.
        initial: u32,
    },
    /// A page's frame is pinned (AIX `pin`) above its initial count, through
    /// this address or any other mapping of the frame.
    Pinned {
        /// The page.
        page: u64,
        /// Pins above the initial count.
        pins: u32,
    },
    /// A frame of the allocation is hidden for DMA (`xmemdma`), through
    /// this address or any other mapping of the frame.
    Hidden {
        /// The frame.
        frame: u64,
    },
    /// A frame of the allocation is touched by a DMA transfer that is queued
    /// or running: the device could write it after it was reused.
    InTransfer {
        /// The frame.
        frame: u64,
    },
}

impl ReleaseRefusal {
    /// The rule the release broke.
    pub fn kind(&self) -> ViolationKind {
        match self {
            ReleaseRefusal::NoAllocation => ViolationKind::DgUxReleaseNoAllocation,
            ReleaseRefusal::NotStart { .. } => ViolationKind::DgUxReleaseNotStart,
            ReleaseRefusal::WrongKind { .. } => ViolationKind::DgUxReleaseWrongType,
            ReleaseRefusal::WrongSize { .. } => ViolationKind::DgUxReleaseSizeMismatch,
            ReleaseRefusal::StillWired { .. } => ViolationKind::DgUxReleaseStillWired,
            ReleaseRefusal::Pinned { .. } => ViolationKind::AixFreePinned,
            ReleaseRefusal::Hidden { .. } => ViolationKind::XmemFreeHiddenPage,
            ReleaseRefusal::InTransfer { .. } => ViolationKind::DmaReleaseDuringTransfer,
        }
    }

    /// Whether another subsystem holds the memory (pinned, hidden for DMA,
    /// in a transfer) rather than DG/UX itself refusing the release.
    pub fn held_elsewhere(&self) -> bool {
        matches!(self, ReleaseRefusal::Hidden { .. } | ReleaseRefusal::InTransfer { .. } | ReleaseRefusal::Pinned { .. })
    }
}

impl fmt::Display for ReleaseRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseRefusal::NoAllocation => write!(f, "no live allocation starts there (released already, or never allocated)"),
            ReleaseRefusal::NotStart { start, bytes } => {
                write!(f, "the pointer is inside the allocation of {bytes} bytes at {start:#x}, not at its start")
            }
            ReleaseRefusal::WrongKind { actual } => write!(f, "the memory was allocated as {actual} memory"),
            ReleaseRefusal::WrongSize { expected } => write!(f, "expected the {expected} bytes of the get"),
            ReleaseRefusal::StillWired { page, count, initial } => {
                write!(f, "page {page:#x} is still wired: wire count {count}, initial {initial}; unwire it first")
            }
            ReleaseRefusal::Pinned { page, pins } => {
                write!(f, "page {page:#x} is still pinned: {pins} pin(s) above its initial count; unpin it first")
            }
            ReleaseRefusal::Hidden { frame } => {
                write!(
                    f,
                    "guest-physical frame {frame:#x} of the allocation is hidden for DMA: unhide it (xmemdma XMEM_UNHIDE) first"
                )
            }
            ReleaseRefusal::InTransfer { frame } => write!(
                f,
                "guest-physical frame {frame:#x} of the allocation is touched by a DMA transfer that is queued or running: \
                 wait for the transfer to complete first"
            ),
        }
    }
}

/// Why an unwire was refused: each is a violation.
#[derive(Debug, PartialEq, Eq)]
pub enum UnwireError {
    /// A page of the range is not mapped.
    NotMapped(u64),
    /// A page would go below its initial wire count.
    BelowFloor {
        /// The page.
        page: u64,
        /// Its wire count.
        count: u32,
        /// Its initial count.
        initial: u32,
    },
}

impl UnwireError {
    /// The rule the unwire broke.
    pub fn kind(&self) -> ViolationKind {
        match self {
            UnwireError::NotMapped(_) => ViolationKind::DgUxUnwireNotAllocated,
            UnwireError::BelowFloor { .. } => ViolationKind::DgUxUnwireBelowInitialCount,
        }
    }
}

impl fmt::Display for UnwireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnwireError::NotMapped(page) => write!(f, "page {page:#x} is not allocated memory"),
            UnwireError::BelowFloor { page, count, initial } => {
                write!(f, "unwiring page {page:#x} would take its wire count {count} below its initial count {initial}")
            }
        }
    }
}

/// A page in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageReport {
    /// Its kernel address.
    pub va: String,
    /// The guest-physical address it maps now.
    pub gpa: String,
    /// Its wire count.
    pub wire_count: u32,
    /// The count it started with.
    pub initial_wire_count: u32,
    /// Marked referenced.
    pub referenced: bool,
    /// Marked modified.
    pub modified: bool,
    /// The process of a user page; 0 for kernel memory.
    pub pid: u64,
}

/// The `dgux` object of the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DgUxReport {
    /// Gets that `--fail-alloc` made fail.
    pub injected_failures: u64,
    /// Page-ins that `--fail-pagein` made fail.
    pub injected_pagein_failures: u64,
    /// Allocations still live at the end.
    pub live_allocations: usize,
    /// Pages with a wire count above the initial one or a mark.
    pub pages: Vec<PageReport>,
    /// Bytes of VMM-side bookkeeping (frame allocator and tables).
    pub bookkeeping_bytes: u64,
}

/// The first page of `start` and the end of the last page of `start + bytes`.
pub fn page_span(start: u64, bytes: u64) -> Option<(u64, u64)> {
    let end = start.checked_add(bytes)?.checked_next_multiple_of(PAGE_SIZE)?;
    Some((start - start % PAGE_SIZE, end))
}

/// Writes zeros over `[start, start + bytes)` of `space`, page by page;
/// false at a page that is not mapped writable.
pub fn zero_range(memory: &GuestMemoryMmap, space: &AddressSpace, start: u64, bytes: u64) -> bool {
    let mut done = 0;
    while done < bytes {
        let Some(at) = start.checked_add(done) else { return false };
        let chunk = (PAGE_SIZE - at % PAGE_SIZE).min(bytes - done);
        let Some(t) = space.translate(memory, at).filter(|t| t.flags.contains(PteFlags::WRITABLE)) else {
            return false;
        };
        if !fill(memory, t.gpa, chunk as usize, 0) {
            return false;
        }
        done += chunk;
    }
    true
}

/// Whether `[first, end)` lies in the user range when a process owns it (a
/// process's space also holds the shared kernel half).
fn in_owners_range(owner: Option<u64>, first: u64, end: u64) -> bool {
    owner.is_none() || (first >= layout::USER_START && end <= layout::USER_END)
}

fn pages(first: u64, end: u64) -> impl Iterator<Item = u64> + Clone {
    (first..end).step_by(PAGE_SIZE as usize)
}

/// Guest memory and the address space the kernel memory lives in.
#[derive(Clone, Copy)]
pub struct GuestView<'a> {
    /// Guest RAM.
    pub memory: &'a GuestMemoryMmap,
    /// The kernel address space.
    pub space: &'a AddressSpace,
}

/// All page-backed kernel memory of a VM (DG/UX memory and the AIX boot
/// heaps); its frames come from the VM's [`FrameLedger`], passed to the
/// calls that need them.
#[derive(Clone, Debug)]
pub struct KernelMemory {
    wired: Arena,
    unwired: Arena,
    kernel_heap: Arena,
    pinned_heap: Arena,
    allocations: BTreeMap<u64, Allocation>,
    pages: BTreeMap<u64, Page>,
    injector: Injector,
    /// Where the live allocations (and the `init_heap` heaps') came from.
    pub origins: Origins,
}

impl KernelMemory {
    /// No kernel memory yet; gets fail as `fail` says (in a run with seed `run_seed`).
    pub fn new(fail: FailSpec, run_seed: u64) -> KernelMemory {
        KernelMemory {
            wired: Arena::new(layout::WIRED_ARENA_VA, layout::ARENA_SIZE),
            unwired: Arena::new(layout::UNWIRED_ARENA_VA, layout::ARENA_SIZE),
            kernel_heap: Arena::new(layout::KERNEL_HEAP_VA, layout::ARENA_SIZE),
            pinned_heap: Arena::new(layout::PINNED_HEAP_VA, layout::ARENA_SIZE),
            allocations: BTreeMap::new(),
            pages: BTreeMap::new(),
            injector: Injector::new(fail, run_seed),
            origins: Origins::default(),
        }
    }

    /// Allocates `bytes` of `kind` memory with an alignment code, zero-filled;
    /// `caller` is the vCPU and the call's stack (see [`Origins`]).
    #[allow(clippy::too_many_arguments)]
    pub fn get(
        &mut self,
        view: GuestView,
        frames: &mut FrameLedger,
        kind: Kind,
        demand: bool,
        bytes: u64,
        alignment: u64,
        caller: (usize, &[u64]),
    ) -> Result<u64, GetError> {
        let refuse = |refusal| Err(GetError::Refused(refusal));
        if bytes == 0 {
            return refuse(GetRefusal::ZeroBytes);
        }
        if bytes > u64::from(u32::MAX) {
            return refuse(GetRefusal::TooLarge { bytes });
        }
        let Some(align) = u32::try_from(alignment).ok().and_then(alignment_bytes) else {
            return refuse(GetRefusal::NotAnAlignmentCode { alignment });
        };
        if bytes < align {
            return refuse(GetRefusal::SmallerThanAlignment { bytes, align });
        }
        let no_page_cross = alignment == u64::from(VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS);
        if no_page_cross && bytes > PAGE_SIZE {
            return refuse(GetRefusal::NoPageCrossTooLarge { bytes });
        }
        self.allocate(view, frames, kind.into(), demand, bytes, align, no_page_cross, caller)
    }

    /// The failure injector, to reseed it for a fuzzing iteration or ask
    /// whether the run's seed decided a failure.
    pub fn injector(&mut self) -> &mut Injector {
        &mut self.injector
    }

    /// Whether `--fail-alloc` makes this get fail; every get asks once.
    pub fn inject_failure(&mut self) -> bool {
        self.injector.should_fail()
    }

    /// Allocates `bytes` (1 ..= `u32::MAX`) of `region` memory aligned to `align` (a power of two), zero-filled; counts as a
    /// get for `--fail-alloc`.
    #[allow(clippy::too_many_arguments)]
    pub fn allocate(
        &mut self,
        view: GuestView,
        frames: &mut FrameLedger,
        region: Region,
        demand: bool,
        bytes: u64,
        align: u64,
        no_page_cross: bool,
        caller: (usize, &[u64]),
    ) -> Result<u64, GetError> {
        if bytes == 0 {
            return Err(GetError::Refused(GetRefusal::ZeroBytes));
        }
        if bytes > u64::from(u32::MAX) {
            return Err(GetError::Refused(GetRefusal::TooLarge { bytes }));
        }
        if !align.is_power_of_two() {
            return Err(GetError::Refused(GetRefusal::AlignmentNotPowerOfTwo { align }));
        }
        if self.injector.should_fail() {
            return Err(GetError::OutOfMemory);
        }
        let va = self.arena(region).allocate(bytes, align, no_page_cross).ok_or(GetError::OutOfMemory)?;
        let (first, end) = page_span(va, bytes).ok_or(GetError::OutOfMemory)?;
        let GuestView { memory, space } = view;
        if let Err(e) = self.back_pages(view, frames, region, first, end) {
            self.arena(region).release(va, bytes);
            return Err(e);
        }
        for page in pages(first, end) {
            let Some(p) = self.pages.get_mut(&page) else { continue };
            // A page shared with earlier allocations (the only ones with a
            // live count yet) may hold their old bytes; fresh pages come
            // zeroed from `back_pages`.
            if p.live > 0 {
                let (from, to) = (va.max(page), (va + bytes).min(page + PAGE_SIZE));
                zero_range(memory, space, from, to - from);
            }
            p.live += 1;
        }
        let (bytes, vcpu) = (bytes as u32, u16::try_from(caller.0).unwrap_or(u16::MAX));
        let origin = self.origins.intern(caller.1);
        self.allocations.insert(va, Allocation { origin, bytes, vcpu, kind: region, demand });
        Ok(va)
    }

    fn arena(&mut self, region: Region) -> &mut Arena {
        match region {
            Region::Wired => &mut self.wired,
            Region::Unwired => &mut self.unwired,
            Region::KernelHeap => &mut self.kernel_heap,
            Region::PinnedHeap => &mut self.pinned_heap,
        }
    }

    /// Maps a fresh frame under every page of `[first, end)` that has none.
    fn back_pages(
        &mut self,
        GuestView { memory, space }: GuestView,
        frames: &mut FrameLedger,
        region: Region,
        first: u64,
        end: u64,
    ) -> Result<(), GetError> {
        let wanted = (end - first) / PAGE_SIZE;
        // Only the first and last page can exist already; keep a few frames for page tables.
        if frames.free_frames() < wanted.saturating_sub(2) + 4 {
            return Err(GetError::OutOfMemory);
        }
        let new = pages(first, end).filter(|p| !self.pages.contains_key(p)).count();
        let taken = frames.allocate(new as u64, Role::KernelMemory).ok_or(GetError::OutOfMemory)?;
        let flags = PteFlags::USER | PteFlags::WRITABLE | PteFlags::NO_EXECUTE;
        let mut unbacked = pages(first, end);
        for (i, &frame) in taken.iter().enumerate() {
            // Counted above: as many pages without a frame as frames taken.
            let Some(page) = unbacked.find(|p| !self.pages.contains_key(p)) else { break };
            let zeroed = fill(memory, frame, PAGE_SIZE as usize, 0);
            let mapped =
                if zeroed { space.map_near(memory, frames, page, frame, flags, self.slot_near(page)).ok() } else { None };
            let Some(slot) = mapped else {
                for page in pages(first, page) {
                    if self.pages.get(&page).is_some_and(|p| taken[..i].contains(&p.frame)) {
                        space.unmap(memory, page);
                        self.pages.remove(&page);
                    }
                }
                // Fresh frames: none can be hidden, wired or pinned yet.
                let _ = frames.release_all(taken.iter().copied());
                return Err(GetError::OutOfMemory);
            };
            frames.own(frame, Owner { pid: 0, va: page }, region.initial_wire_count(), region == Region::PinnedHeap);
            self.pages.insert(page, Page { frame, live: 0, physical: None, slot });
        }
        Ok(())
    }

    /// The slot of a mapped page in the leaf table's region of `page`, if any.
    fn slot_near(&self, page: u64) -> Option<LeafSlot> {
        let region = page - page % LEAF_SPAN;
        self.pages.range(region..region.saturating_add(LEAF_SPAN)).next().map(|(_, p)| p.slot)
    }

    /// Releases the allocation at `ptr`; pages left without a live allocation
    /// are unmapped, so that touching released memory faults.
    pub fn release(
        &mut self,
        view: GuestView,
        frames: &mut FrameLedger,
        kind: Kind,
        ptr: u64,
        bytes: u64,
    ) -> Result<(), ReleaseError> {
        self.release_region(view, frames, kind.into(), ptr, bytes)
    }

    fn release_region(
        &mut self,
        GuestView { memory, space }: GuestView,
        frames: &mut FrameLedger,
        region: Region,
        ptr: u64,
        bytes: u64,
    ) -> Result<(), ReleaseError> {
        let Some(&allocation) = self.allocations.get(&ptr) else {
            return Err(match self.containing(ptr) {
                Some((start, a)) => ReleaseRefusal::NotStart { start, bytes: u64::from(a.bytes) },
                None => ReleaseRefusal::NoAllocation,
            }
            .into());
        };
        if allocation.kind != region {
            return Err(ReleaseRefusal::WrongKind { actual: allocation.kind }.into());
        }
        if u64::from(allocation.bytes) != bytes {
            return Err(ReleaseRefusal::WrongSize { expected: u64::from(allocation.bytes) }.into());
        }
        let (first, end) = page_span(ptr, bytes).ok_or(ReleaseRefusal::NoAllocation)?;
        // Only the frames of pages this allocation has alone are freed: a page
        // shared with other live allocations may be wired or pinned for them.
        // A frame hidden, wired or pinned — through any mapping of it — cannot be freed.
        let alone = pages(first, end).filter_map(|page| self.pages.get(&page).filter(|p| p.live == 1).map(|p| (page, p.frame)));
        let page_of = |frame: u64| alone.clone().find(|&(_, f)| f == frame).map_or(frame, |(page, _)| page);
        // Freed first, all or none; the books and the mappings follow.
        match frames.release_all(alone.clone().map(|(_, frame)| frame)) {
            Ok(()) => {}
            Err(LedgerError::Wired { frame, count, initial }) => {
                return Err(ReleaseRefusal::StillWired { page: page_of(frame), count, initial }.into());
            }
            Err(LedgerError::Pinned { frame, pins }) => return Err(ReleaseRefusal::Pinned { page: page_of(frame), pins }.into()),
            Err(LedgerError::Hidden(frame)) => return Err(ReleaseRefusal::Hidden { frame }.into()),
            Err(LedgerError::InTransfer(frame)) => return Err(ReleaseRefusal::InTransfer { frame }.into()),
            Err(_) => return Err(ReleaseRefusal::NoAllocation.into()),
        }
        self.allocations.remove(&ptr);
        self.arena(region).release(ptr, bytes);
        let mut zapped = Ok(());
        for page in pages(first, end) {
            let Some(p) = self.pages.get_mut(&page) else { continue };
            p.live -= 1;
            if p.live == 0 {
                let (physical, slot) = (p.physical, p.slot);
                self.pages.remove(&page);
                if let Some(alias) = physical {
                    frames.remove_alias(alias, page);
                }
                if let Some(old) = space.unmap_slot(memory, slot).filter(|old| old.flags.contains(PteFlags::ACCESSED)) {
                    zapped = zapped.and(zap_frame(memory, old.gpa));
                }
            }
        }
        // Released all the same: the books are right, the VM must stop.
        zapped.map_err(ReleaseError::Zap)
    }

    /// Frees the `region` allocation that starts at `ptr`, whatever its size
    /// (`xmfree`); its byte count on success.
    pub fn free(&mut self, view: GuestView, frames: &mut FrameLedger, region: Region, ptr: u64) -> Result<u64, ReleaseError> {
        let Some(bytes) = self.allocation_bytes(ptr) else { return Err(ReleaseRefusal::NoAllocation.into()) };
        // The release refuses an allocation of another kind.
        self.release_region(view, frames, region, ptr, bytes).map(|()| bytes)
    }

    /// The size of the live allocation starting at `ptr`.
    pub fn allocation_bytes(&self, ptr: u64) -> Option<u64> {
        self.allocations.get(&ptr).map(|a| u64::from(a.bytes))
    }

    /// The live allocation whose bytes contain `address`.
    fn containing(&self, address: u64) -> Option<(u64, Allocation)> {
        let (&start, &a) = self.allocations.range(..=address).next_back()?;
        (address < start + u64::from(a.bytes)).then_some((start, a))
    }

    /// The unwired allocation whose pages contain the page at `page`, as (start, end of its pages).
    fn unwired_span(&self, page: u64) -> Option<(u64, u64)> {
        let mut best: Option<(u64, u64)> = None;
        for (&start, a) in self.allocations.range(..page.saturating_add(PAGE_SIZE)).rev() {
            let (first, end) = page_span(start, u64::from(a.bytes))?;
            if end <= page {
                break;
            }
            if a.kind == Region::Unwired && first <= page {
                best = Some(best.map_or((first, end), |(f, e)| (f.min(first), e.max(end))));
            }
        }
        best
    }

    /// `vm_check_access_and_wire_memory`: kernel addresses (`owner` None) in
    /// the kernel space, user addresses of process `owner` in its space. The
    /// counts are the frames' the pages map now. A pageable page that is
    /// wired is brought in first: `page_in_fails` brings the frame in and
    /// says whether that failed (the pager's read, or `--fail-pagein`).
    pub fn wire(
        GuestView { memory, space }: GuestView,
        frames: &mut FrameLedger,
        owner: Option<u64>,
        start: u64,
        bytes: u64,
        access: u64,
        mut page_in_fails: impl FnMut(&mut FrameLedger, u64) -> bool,
    ) -> Status {
        let Some((first, end)) = page_span(start, bytes) else { return Status::VM_EFAULT_INVALID_ADDRESS };
        if bytes == 0 {
            return Status::OK;
        }
        if !in_owners_range(owner, first, end) {
            return Status::VM_EFAULT_INVALID_ADDRESS;
        }
        let mut translations = Vec::new();
        for page in pages(first, end) {
            let Some(t) = space.translate(memory, page) else { return Status::VM_EFAULT_INVALID_ADDRESS };
            translations.push(t);
        }
        let gpas: Vec<u64> = translations.iter().map(|t| t.gpa).collect();
        // The ledger checks and groups the wire once; its answers keep the
        // manual page's order: no one's memory, then access, then the ceiling.
        let plan = frames.plan_wire(&gpas);
        if matches!(plan, Err(LedgerError::Role { .. } | LedgerError::NotRam(_))) {
            // Free RAM the guest mapped is no one's memory: nothing to wire.
            return Status::VM_EFAULT_INVALID_ADDRESS;
        }
        for t in &translations {
            let denied = (access != 0 && !t.flags.contains(PteFlags::USER))
                || (access & SC_WRITE_ACCESS != 0 && !t.flags.contains(PteFlags::WRITABLE))
                || (access & SC_EXECUTE_ACCESS != 0 && t.flags.contains(PteFlags::NO_EXECUTE));
            if denied {
                return Status::VM_EFAULT_ACCESS_DENIED;
            }
        }
        let Ok(plan) = plan else { return Status::VM_EFAULT_UNWIRE_AND_VALIDATE_REGIONS };
        // A frame at count 0 is pageable: wiring it brings it in first, which
        // a real I/O error or `--fail-pagein` can make fail (the manual page's
        // "bad I/O status"). A frame named twice (an alias in the range) is
        // wired twice, paged in once.
        let mut failed = false;
        for frame in plan.pageable_frames().collect::<Vec<_>>() {
            // One page-in per frame, whatever the others gave: runs stay reproducible.
            failed |= page_in_fails(frames, frame);
        }
        if failed {
            return Status::VM_EIO;
        }
        frames.apply_wire(plan);
        Status::OK
    }

    /// `vm_unwire_memory` and the mark routines, for `owner` as in
    /// [`KernelMemory::wire`]: the frames the pages map now are unwired and marked.
    pub fn unwire(
        &mut self,
        GuestView { memory, space }: GuestView,
        frames: &mut FrameLedger,
        owner: Option<u64>,
        start: u64,
        bytes: u64,
        marks: Marks,
    ) -> Result<Vec<(u64, u64)>, UnwireError> {
        let (first, end) = page_span(start, bytes).ok_or(UnwireError::NotMapped(start))?;
        if !in_owners_range(owner, first, end) {
            return Err(UnwireError::NotMapped(first));
        }
        let mut gpas = Vec::new();
        for page in pages(first, end) {
            let Some(t) = space.translate(memory, page) else { return Err(UnwireError::NotMapped(page)) };
            gpas.push(t.gpa);
        }
        // The page a refusal names: the first that maps the frame.
        let page_of =
            |frame: u64| (first..).step_by(PAGE_SIZE as usize).zip(&gpas).find(|&(_, &g)| g == frame).map_or(first, |(p, _)| p);
        frames.unwire(&gpas, marks).map_err(|e| match e {
            // A frame named twice (an alias in the range) is unwired twice.
            LedgerError::BelowFloor { frame, count, initial } => UnwireError::BelowFloor { page: page_of(frame), count, initial },
            // Free RAM the guest mapped: no one's memory, as an unmapped page.
            LedgerError::Role { frame, .. } | LedgerError::NotRam(frame) => UnwireError::NotMapped(page_of(frame)),
            _ => UnwireError::NotMapped(first),
        })?;
        Ok(pages(first, end).zip(gpas).collect())
    }

    /// `vm_map_physical_memory` for a kernel address (the caller checked
    /// sharing, sizes, alignment and the address-space bit).
    #[allow(clippy::too_many_arguments)]
    pub fn map_physical(
        &mut self,
        GuestView { memory, space }: GuestView,
        frames: &mut FrameLedger,
        logical: u64,
        physical: u64,
        bytes: u64,
        flags: PteFlags,
        ram_end: u64,
    ) -> Result<Status, ZapError> {
        if space.translate(memory, logical).is_none() {
            return Ok(Status::VM_EINVAL_MMAP_SPACE_UNALLOCATED);
        }
        let Some((_, span_end)) = self.unwired_span(logical) else { return Ok(Status::VM_EINVAL_MMAP_ADDRESS_NOT_DATA) };
        if logical.checked_add(bytes).is_none_or(|end| end > span_end) {
            return Ok(Status::VM_EINVAL_MMAP_BAD_REGION);
        }
        let in_ram = match physical_region(frames, physical, bytes, ram_end) {
            Ok(in_ram) => in_ram,
            Err(status) => return Ok(status),
        };
        if pages(logical, logical + bytes).any(|page| self.pages.get(&page).is_some_and(|p| p.physical.is_some())) {
            return Ok(Status::VM_EINVAL_MMAP_ALREADY_MAPPED);
        }
        let mut zapped = Ok(());
        for (i, page) in pages(logical, logical + bytes).enumerate() {
            let frame = physical + i as u64 * PAGE_SIZE;
            if let Ok(old) = space.remap(memory, page, frame, flags)
                && let Some(p) = self.pages.get_mut(&page)
            {
                if let Some(previous) = p.physical.replace(frame) {
                    frames.remove_alias(previous, page);
                }
                if in_ram {
                    frames.add_alias(frame, page);
                }
                if old.flags.contains(PteFlags::ACCESSED) {
                    zapped = zapped.and(zap_frame(memory, old.gpa));
                }
            }
        }
        zapped.map(|()| Status::OK)
    }

    /// `vm_unmap_physical_memory` for a kernel address (the caller checked
    /// sizes and alignment): the pages get their own frames back, zeroed. An
    /// error means the books changed but a stale translation may remain.
    pub fn unmap_physical(
        &mut self,
        GuestView { memory, space }: GuestView,
        frames: &mut FrameLedger,
        logical: u64,
        bytes: u64,
    ) -> Result<Status, ZapError> {
        let Some((_, span_end)) = self.unwired_span(logical) else { return Ok(Status::VM_EINVAL_MUNMAP_BAD_REGION) };
        if logical.checked_add(bytes).is_none_or(|end| end > span_end) {
            return Ok(Status::VM_EINVAL_MUNMAP_BAD_REGION);
        }
        if pages(logical, logical + bytes).any(|page| self.pages.get(&page).is_none_or(|p| p.physical.is_none())) {
            return Ok(Status::VM_EINVAL_MUNMAP_DATA_NOT_MAPPED);
        }
        let mut zapped = Ok(());
        let flags = PteFlags::USER | PteFlags::WRITABLE | PteFlags::NO_EXECUTE;
        for page in pages(logical, logical + bytes) {
            if let Some(p) = self.pages.get_mut(&page) {
                let _ = fill(memory, p.frame, PAGE_SIZE as usize, 0);
                if let Ok(old) = space.remap(memory, page, p.frame, flags) {
                    if let Some(alias) = p.physical.take() {
                        frames.remove_alias(alias, page);
                    }
                    if old.flags.contains(PteFlags::ACCESSED) {
                        zapped = zapped.and(zap_frame(memory, old.gpa));
                    }
                }
            }
        }
        zapped.map(|()| Status::OK)
    }

    /// Misuse still standing at the end: (service, address, vCPU, RIP,
    /// message): live allocations, then frames of kernel memory and process
    /// pages still wired above their initial count, by owner and address.
    pub fn leaks(&self, frames: &FrameLedger) -> Vec<Leak> {
        let origins = &self.origins;
        let mut leaks: Vec<_> = self
            .allocations
            .iter()
            .map(|(&va, a)| {
                let (kind, message) = if a.kind.is_dgux() {
                    let message = format!("{} bytes of {} memory at {va:#x} are still allocated at exit", a.bytes, a.kind);
                    (ViolationKind::LeakDgUxAllocation, message)
                } else {
                    let message = format!(
                        "xmalloc of {} bytes from the {} at {va:#x} was never freed (xmfree) before exit",
                        a.bytes, a.kind
                    );
                    (ViolationKind::LeakXmalloc, message)
                };
                let (rip, stack) = (origins.rip(a.origin), origins.stack(a.origin));
                Leak { kind, service: a.service(), address: va, vcpu: usize::from(a.vcpu), rip, stack, message }
            })
            .collect();
        let mut wired: Vec<_> = frames.all_counts().filter(|(_, c)| c.wires > c.initial_wires).map(|(_, c)| c).collect();
        wired.sort_by_key(|c| c.owner);
        for c in wired {
            let (pid, page) = (c.owner.pid, c.owner.va);
            let message = if pid == 0 {
                format!("page {page:#x} is still wired at exit: wire count {}, initial {}", c.wires, c.initial_wires)
            } else {
                format!("user page {page:#x} of process {pid} is still wired at exit: wire count {}", c.wires)
            };
            leaks.push(Leak {
                kind: ViolationKind::LeakWired,
                service: "vm_unwire_memory",
                address: page,
                vcpu: 0,
                rip: 0,
                stack: Vec::new(),
                message,
            });
        }
        leaks
    }

    /// The report's `dgux` object: the frames of kernel memory and process
    /// pages whose wire count is not the initial one or that are marked, by
    /// owner and address; `injected_pagein_failures` are the pager's
    /// (src/devices/pager), which serves DG/UX page-ins too.
    pub fn report(&self, frames: &FrameLedger, injected_pagein_failures: u64) -> DgUxReport {
        let mut counted: Vec<_> = frames
            .all_counts()
            // An object page's modified mark is vm_qmodify's, not a DG/UX fact.
            .filter(|&(frame, _)| frames.role(frame) != Some(Role::VmObject))
            .filter(|(_, c)| c.wires != c.initial_wires || c.marks != Marks::default())
            .map(|(frame, c)| (c.owner, frame, *c))
            .collect();
        counted.sort_by_key(|&(owner, ..)| owner);
        let pages = counted
            .into_iter()
            .map(|(owner, frame, c)| PageReport {
                va: format!("{:#x}", owner.va),
                // A kernel page reports what it maps now (a physical mapping
                // included), a user page nothing, as before counts followed frames.
                gpa: if owner.pid == 0 {
                    let now = self.pages.get(&owner.va).and_then(|p| p.physical).unwrap_or(frame);
                    format!("{now:#x}")
                } else {
                    String::new()
                },
                wire_count: c.wires,
                initial_wire_count: c.initial_wires,
                referenced: c.marks.referenced,
                modified: c.marks.modified,
                pid: owner.pid,
            })
            .collect();
        let tables = tree_bytes::<u64, Allocation>(self.allocations.len())
            + tree_bytes::<u64, Page>(self.pages.len())
            + tree_bytes::<u64, u64>(
                self.wired.fragments() + self.unwired.fragments() + self.kernel_heap.fragments() + self.pinned_heap.fragments(),
            );
        DgUxReport {
            injected_failures: self.injector.injected(),
            injected_pagein_failures,
            live_allocations: self.allocations.values().filter(|a| a.kind.is_dgux()).count(),
            pages,
            bookkeeping_bytes: frames.bookkeeping_bytes() + tables,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestAddress};

    #[test]
    fn kinds_and_regions_are_named_as_the_messages_say() {
        assert_eq!([Kind::Wired.to_string(), Kind::Unwired.to_string()], ["wired", "unwired"]);
        assert!(Region::Wired.is_dgux() && Region::Unwired.is_dgux());
        assert!(!Region::KernelHeap.is_dgux() && !Region::PinnedHeap.is_dgux());
    }

    #[test]
    fn a_tree_is_counted_at_a_third_more_than_its_entries() {
        // (u64, Allocation) is 24 bytes, (u64, u64) 16.
        assert_eq!(tree_bytes::<u64, Allocation>(3), 96);
        assert_eq!(tree_bytes::<u64, u64>(5), 106);
        assert_eq!(tree_bytes::<u64, u64>(0), 0);
    }

    #[test]
    fn zeroing_follows_the_mapping_page_by_page_and_stops_at_a_read_only_page() {
        use crate::memory_model::paging::TablePool;
        use crate::memory_model::ram::GuestRam;
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let m = ram.memory();
        let mut pool = TablePool::new();
        let space = AddressSpace::new(m, &mut pool).expect("space");
        let va = 0x40_0000;
        // Two virtually adjacent pages on frames that are not adjacent, then a read-only one.
        let writable = PteFlags::USER | PteFlags::WRITABLE;
        space.map(m, &mut pool, va, 0x50_0000, writable).expect("map");
        space.map(m, &mut pool, va + PAGE_SIZE, 0x30_0000, writable).expect("map");
        space.map(m, &mut pool, va + 2 * PAGE_SIZE, 0x60_0000, PteFlags::USER).expect("map");
        for frame in [0x50_0000, 0x50_1000, 0x30_0000, 0x60_0000] {
            m.write_slice(&[0xff; PAGE_SIZE as usize], GuestAddress(frame)).expect("fill");
        }
        let byte = |gpa: u64| m.read_obj::<u8>(GuestAddress(gpa)).expect("read");
        assert!(zero_range(m, &space, va + 0xf00, 0x200));
        assert_eq!([byte(0x50_0eff), byte(0x50_0f00), byte(0x50_0fff)], [0xff, 0, 0]);
        assert_eq!([byte(0x30_0000), byte(0x30_00ff), byte(0x30_0100)], [0, 0, 0xff]);
        assert_eq!(byte(0x50_1000), 0xff, "the frame after the first is not the next page's");
        // Over a whole page and more from an unaligned start.
        assert!(zero_range(m, &space, va + 0x10, PAGE_SIZE + 0x120));
        assert_eq!([byte(0x50_000f), byte(0x50_0010), byte(0x30_012f), byte(0x30_0130)], [0xff, 0, 0, 0xff]);
        // A read-only page ends it: false, and nothing of that page is written.
        assert!(!zero_range(m, &space, va + 2 * PAGE_SIZE - 8, 16));
        assert_eq!([byte(0x30_0ff8), byte(0x60_0000)], [0, 0xff]);
        assert!(!zero_range(m, &space, u64::MAX, 2), "past the end of the address space");
        assert!(zero_range(m, &space, 0x1000, 0), "nothing to zero");
    }

    /// Guest RAM with a kernel space, its frames and no kernel memory yet.
    fn empty() -> (crate::memory_model::ram::GuestRam, AddressSpace, FrameLedger, KernelMemory) {
        let ram = crate::memory_model::ram::GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let space = AddressSpace::new(ram.memory(), &mut crate::memory_model::paging::TablePool::new()).expect("space");
        let frames = FrameLedger::new(layout::FREE_RAM_GPA, layout::MIN_RAM_SIZE, false);
        (ram, space, frames, KernelMemory::new(FailSpec::default(), 1))
    }

    #[test]
    fn a_fresh_page_is_mapped_through_the_slot_of_a_page_in_its_2_mib_region_only() {
        let (ram, space, mut frames, mut kernel) = empty();
        let view = GuestView { memory: ram.memory(), space: &space };
        let page = u64::from(kmemvisor_abi::dgux::VM_PAGE_ALIGNED);
        let first = kernel.get(view, &mut frames, Kind::Wired, false, PAGE_SIZE, page, (0, &[])).expect("get");
        assert_eq!(first % LEAF_SPAN, 0, "the arena starts a region");
        let slot = kernel.pages[&first].slot;
        // Every page of the region, its last included, is told that slot; the next region's first is not.
        for va in [first, first + PAGE_SIZE, first + LEAF_SPAN - PAGE_SIZE] {
            assert_eq!(kernel.slot_near(va), Some(slot));
        }
        assert_eq!(kernel.slot_near(first + LEAF_SPAN), None);
        assert_eq!(kernel.slot_near(first - PAGE_SIZE), None);
    }

    #[test]
    fn a_get_that_cannot_map_a_page_gives_back_every_frame_and_mapping_it_made() {
        let (ram, space, mut frames, mut kernel) = empty();
        let view = GuestView { memory: ram.memory(), space: &space };
        let page = u64::from(kmemvisor_abi::dgux::VM_PAGE_ALIGNED);
        // The arena's second page is mapped already, which no page of kernel memory may be: a get of three fails there.
        let (first, second) = (layout::WIRED_ARENA_VA, layout::WIRED_ARENA_VA + PAGE_SIZE);
        let stray = frames.allocate(1, Role::KernelMemory).expect("frame")[0];
        space.map(ram.memory(), &mut frames, second, stray, PteFlags::WRITABLE).expect("map");
        let free = frames.free_frames();
        let got = kernel.get(view, &mut frames, Kind::Wired, false, 3 * PAGE_SIZE, page, (0, &[]));
        assert!(matches!(got, Err(GetError::OutOfMemory)), "{got:?}");
        assert_eq!(frames.free_frames(), free, "the first page's frame and the two others are free again");
        assert_eq!(space.translate(ram.memory(), first), None, "the first page is unmapped");
        assert!(kernel.pages.is_empty() && kernel.allocations.is_empty());
        assert_eq!(frames.check(), Ok(()));
        // The arena has its range back: a page fits where the three did not.
        assert_eq!(kernel.get(view, &mut frames, Kind::Wired, false, PAGE_SIZE, page, (0, &[])), Ok(first));
    }

    #[test]
    fn the_bookkeeping_counts_each_tree_once() {
        let (ram, space, mut frames, mut kernel) = empty();
        let view = GuestView { memory: ram.memory(), space: &space };
        let fragments = |k: &KernelMemory| {
            k.wired.fragments() + k.unwired.fragments() + k.kernel_heap.fragments() + k.pinned_heap.fragments()
        };
        let empty = kernel.report(&frames, 0).bookkeeping_bytes;
        assert_eq!(empty, frames.bookkeeping_bytes() + tree_bytes::<u64, u64>(fragments(&kernel)));
        kernel
            .get(view, &mut frames, Kind::Wired, false, 64, u64::from(kmemvisor_abi::dgux::VM_DEFAULT_ALIGNMENT), (0, &[]))
            .expect("get");
        let one = kernel.report(&frames, 0).bookkeeping_bytes;
        let trees = tree_bytes::<u64, Allocation>(1) + tree_bytes::<u64, Page>(1) + tree_bytes::<u64, u64>(fragments(&kernel));
        assert_eq!(one, frames.bookkeeping_bytes() + trees);
    }
}
