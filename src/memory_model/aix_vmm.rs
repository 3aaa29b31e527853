//! AIX virtual memory objects (`vms_create`) and the kernel regions that map
//! them or a device window (`vm_att`, `io_att`).
//!
//! An object is a sparse set of pages, each a guest frame of role
//! [`Role::VmObject`] with its storage protect key; what a frame *is* stays
//! the ledger's, and so does its modified mark, which `vm_qmodify` reads.
//! The CPU sets a page-table entry's dirty bit when it stores through it; the
//! VMM folds that bit into the frame's mark whenever the entry is rewritten
//! or removed, and when the mark is asked for, so the mark covers every
//! store made so far. DMA sets no dirty bit and so no mark, as on AIX.
//!
//! Regions are fixed slots of [`VM_REGION_SIZE`]: [`VM_REGIONS`] in the
//! kernel half, shared by every vCPU and process (the kernel half is one),
//! and as many at the top of each process's user half. Each holds one
//! object, mapped whole at the slot's base, or (in the kernel) one device
//! window. Every change to an entry that may be cached (accessed bit set)
//! zaps the old frame's stage-2 mappings, so no vCPU keeps a stale
//! (writable) translation. A hold (`as_geth64`) keeps an object from being
//! deleted until its put.

use std::collections::BTreeMap;

use crate::memory_model::ram::GuestMemoryMmap;
use kmemvisor_abi::aix_vmm::{FILEKEY, VM_KEY_UNLIMITED, VM_MAX_OBJECTS, VM_OBJECT_MAX_SIZE};
use kmemvisor_abi::layout::{
    PAGE_SIZE, USER_END, USER_REGIONS_VA, VM_REGION_SIZE, VM_REGIONS, VM_REGIONS_VA, user_region_va, vm_region_va,
};

use crate::memory_model::ledger::{FrameLedger, LedgerError, Owner, Role};
use crate::memory_model::paging::{AddressSpace, PteFlags, Translation, Walker};
use crate::memory_model::processes::Processes;
use crate::memory_model::ram::{ZapError, fill, zap_frame};

/// Pages of the largest object: one region's.
pub const MAX_PAGES: u64 = VM_OBJECT_MAX_SIZE / PAGE_SIZE;

/// Why an object or region operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VmError {
    /// The vmid was never handed out.
    #[error("vmid {0:#x} names no object vms_create made")]
    Forged(u64),
    /// The vmid's object was deleted (vmids are never reused).
    #[error("vmid {0} names an object that vms_delete deleted")]
    Deleted(u64),
    /// [`VM_MAX_OBJECTS`] objects exist.
    #[error("{VM_MAX_OBJECTS} objects exist already")]
    TooMany,
    /// Not enough free frames (for the pages, or a page table).
    #[error("not enough free guest frames")]
    NoFrames,
    /// A region maps the object.
    #[error("object {vmid} is still mapped by {regions} region(s): vm_det or as_det64 first")]
    Attached {
        /// The object.
        vmid: u64,
        /// Regions that map it.
        regions: u32,
    },
    /// A hold protects the object.
    #[error("object {vmid} is protected by {holds} hold(s) of as_geth64: as_puth64 first")]
    Held {
        /// The object.
        vmid: u64,
        /// Holds on it.
        holds: u32,
    },
    /// A frame of the object may not lose its contents now.
    #[error("{0}")]
    Busy(LedgerError),
    /// Every region is in use.
    #[error("all {VM_REGIONS} regions are in use")]
    NoRegion,
    /// No region holds the address.
    #[error("{0:#x} lies in no region that is mapped")]
    NotAttached(u64),
    /// The page number lies past the largest object.
    #[error("page {0} lies past the largest object ({MAX_PAGES} pages)")]
    TooLarge(u64),
    /// A stage-2 zap failed: a vCPU could keep a stale translation.
    #[error(transparent)]
    Zap(#[from] ZapError),
}

/// One page of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    frame: u64,
    /// Storage protect key: [`FILEKEY`] or [`RDONLY`](kmemvisor_abi::aix_vmm::RDONLY).
    key: u64,
}

/// One virtual memory object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmObject {
    /// The `gnode` of `vms_create`, kept as given (never dereferenced).
    pub gnode: u64,
    /// Its pages, by page number.
    pages: BTreeMap<u64, Page>,
    /// Regions that map it.
    regions: u32,
    /// Holds on it (`as_geth64` without its `as_puth64` yet).
    holds: u32,
}

impl VmObject {
    /// The frame of page `pno` and whether its protect key lets it be
    /// written ([`FILEKEY`]), if the page exists.
    pub fn page(&self, pno: u64) -> Option<(u64, bool)> {
        self.pages.get(&pno).map(|p| (p.frame, p.key == FILEKEY))
    }

    /// The frames of its existing pages in `[first, first + count)`.
    pub fn frames_in(&self, first: u64, count: u64) -> impl Iterator<Item = u64> + '_ {
        self.pages.range(first..first.saturating_add(count)).map(|(_, p)| p.frame)
    }

    /// Its pages' frames.
    pub fn frames(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages.values().map(|p| p.frame)
    }
}

/// What a region maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// An object, through a handle with this access key (`vm_att`, `as_att64`).
    Object {
        /// The object.
        vmid: u64,
        /// The handle's key.
        key: u64,
    },
    /// A device window of `pages` pages at bus address `bus` (`io_att`).
    Device {
        /// Guest-physical address of its first page.
        bus: u64,
        /// Its pages.
        pages: u64,
    },
}

/// A region slot: the kernel's (`pid` 0) or a process's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// 0 for the kernel regions, else the process.
    pub pid: u64,
    /// The slot, 0 to [`VM_REGIONS`] − 1.
    pub n: u64,
}

impl Place {
    /// The region's first address.
    pub fn base(self) -> u64 {
        if self.pid == 0 { vm_region_va(self.n) } else { user_region_va(self.n) }
    }
}

/// The kernel region that holds `va`, or else the region of process `pid`
/// (0: none) that holds it.
pub fn place_of(pid: u64, va: u64) -> Option<Place> {
    if let Some(n) = va.checked_sub(VM_REGIONS_VA).map(|offset| offset / VM_REGION_SIZE).filter(|&n| n < VM_REGIONS) {
        return Some(Place { pid: 0, n });
    }
    (pid != 0 && (USER_REGIONS_VA..USER_END).contains(&va)).then(|| Place { pid, n: (va - USER_REGIONS_VA) / VM_REGION_SIZE })
}

/// Everything a region change touches: guest RAM, the kernel's address
/// space, the processes' (whose page tables go back with them), the frames.
pub struct Books<'a> {
    /// Guest RAM.
    pub memory: &'a GuestMemoryMmap,
    /// The kernel address space.
    pub kernel: &'a AddressSpace,
    /// The processes.
    pub processes: &'a mut Processes,
    /// The frame ledger.
    pub frames: &'a mut FrameLedger,
}

impl Books<'_> {
    fn space(&self, pid: u64) -> Option<&AddressSpace> {
        if pid == 0 { Some(self.kernel) } else { self.processes.get(pid).map(|p| p.space()) }
    }

    /// Maps page `va` of `pid`'s space to `gpa`; false when no table frame is left.
    fn map(&mut self, pid: u64, va: u64, gpa: u64, flags: PteFlags) -> bool {
        if pid == 0 {
            self.kernel.map(self.memory, self.frames, va, gpa, flags).is_ok()
        } else {
            self.processes.map_foreign(self.memory, self.frames, pid, va, gpa, flags)
        }
    }

    fn unmap(&self, pid: u64, va: u64) -> Option<Translation> {
        self.space(pid)?.unmap(self.memory, va)
    }

    fn remap(&self, pid: u64, va: u64, gpa: u64, flags: PteFlags) -> Option<Translation> {
        self.space(pid)?.remap(self.memory, va, gpa, flags).ok()
    }

    /// What an entry that is rewritten or removed leaves behind: its dirty
    /// bit becomes the frame's modified mark, and a translation that may be
    /// cached (accessed bit set) is zapped.
    fn retire(&mut self, old: Translation) -> Result<(), ZapError> {
        if old.flags.contains(PteFlags::DIRTY) {
            self.frames.set_modified(old.gpa, true);
        }
        if old.flags.contains(PteFlags::ACCESSED) { zap_frame(self.memory, old.gpa) } else { Ok(()) }
    }
}

/// Every object, region and hold of a VM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AixVmm {
    objects: BTreeMap<u64, VmObject>,
    /// The last vmid handed out (vmids start at 1).
    last_vmid: u64,
    regions: BTreeMap<Place, Mapping>,
    /// Holds, each on the object a region held when `as_geth64` took it.
    holds: Vec<(Place, u64)>,
}

/// The handle of `vmid` with access `key` (0 or 1): what `vm_handle` returns.
pub fn handle(vmid: u64, key: u64) -> u64 {
    vmid << 1 | (key & 1)
}

/// The (vmid, key) a handle names.
pub fn decode(handle: u64) -> (u64, u64) {
    (handle >> 1, handle & 1)
}

/// The leaf flags of an object page: writable only through an unlimited
/// handle on a page whose key is [`FILEKEY`].
fn object_flags(handle_key: u64, page_key: u64) -> PteFlags {
    let data = PteFlags::USER | PteFlags::NO_EXECUTE;
    if handle_key == VM_KEY_UNLIMITED && page_key == FILEKEY { data | PteFlags::WRITABLE } else { data }
}

/// The leaf flags of a device page: uncached, as device registers are.
fn device_flags() -> PteFlags {
    PteFlags::USER | PteFlags::WRITABLE | PteFlags::NO_EXECUTE | PteFlags::CACHE_DISABLE | PteFlags::WRITE_THROUGH
}

impl AixVmm {
    /// The live object `vmid`, or why there is none.
    pub fn object(&self, vmid: u64) -> Result<&VmObject, VmError> {
        match self.objects.get(&vmid) {
            Some(object) => Ok(object),
            None if (1..=self.last_vmid).contains(&vmid) => Err(VmError::Deleted(vmid)),
            None => Err(VmError::Forged(vmid)),
        }
    }

    /// A new object of `pages` zeroed pages (all or nothing); its vmid.
    pub fn create(&mut self, memory: &GuestMemoryMmap, frames: &mut FrameLedger, pages: u64, gnode: u64) -> Result<u64, VmError> {
        if self.objects.len() >= VM_MAX_OBJECTS {
            return Err(VmError::TooMany);
        }
        let got = frames.allocate(pages, Role::VmObject).ok_or(VmError::NoFrames)?;
        self.last_vmid += 1;
        let mut object = VmObject { gnode, pages: BTreeMap::new(), regions: 0, holds: 0 };
        for (pno, frame) in (0..).zip(got) {
            fill_frame(memory, frame, 0);
            frames.own(frame, Owner { pid: 0, va: 0 }, 0, false);
            object.pages.insert(pno, Page { frame, key: FILEKEY });
        }
        self.objects.insert(self.last_vmid, object);
        Ok(self.last_vmid)
    }

    /// Deletes `vmid` and gives its frames back: refused while a region maps
    /// it, a hold protects it, or a frame is pinned, hidden or in a DMA transfer.
    pub fn delete(&mut self, frames: &mut FrameLedger, vmid: u64) -> Result<(), VmError> {
        if let Some(refusal) = self.delete_refusal(frames, vmid) {
            return Err(refusal);
        }
        let object = self.objects.remove(&vmid).ok_or(VmError::Forged(vmid))?;
        for frame in object.frames() {
            // Checked above: nothing holds the frame.
            let _ = frames.release(frame);
        }
        Ok(())
    }

    /// Why `vms_delete` of `vmid` must be refused, if it must. A page that
    /// is out does not count: the caller drops it first (its contents go
    /// with the object either way).
    pub fn delete_refusal(&self, frames: &FrameLedger, vmid: u64) -> Option<VmError> {
        let object = match self.object(vmid) {
            Ok(object) => object,
            Err(error) => return Some(error),
        };
        if object.regions > 0 {
            return Some(VmError::Attached { vmid, regions: object.regions });
        }
        if object.holds > 0 {
            return Some(VmError::Held { vmid, holds: object.holds });
        }
        frames.release_refusal(object.frames().filter(|&f| !frames.is_paged_out(f))).map(VmError::Busy)
    }

    /// The frames of the existing pages of `[first, first + count)` of
    /// `vmid`, once the dirty bits of their mappings are folded into the
    /// frames' modified marks (the entries are rewritten clean, and zapped):
    /// what a page-out asks to know whether a page must be written.
    pub fn settle(&self, books: &mut Books, vmid: u64, first: u64, count: u64) -> Result<Vec<u64>, VmError> {
        let pages = self.pages_in(vmid, first, count)?;
        let mut zapped = Ok(());
        for &(pno, page) in &pages {
            zapped = zapped.and(self.remap(books, vmid, pno, page));
        }
        zapped?;
        Ok(pages.into_iter().map(|(_, p)| p.frame).collect())
    }

    /// Every page of every object as (frame, vmid, page number), by frame:
    /// the order of the pager's second-chance clock.
    pub fn pages_by_frame(&self) -> Vec<(u64, u64, u64)> {
        let mut pages: Vec<(u64, u64, u64)> =
            self.objects.iter().flat_map(|(&vmid, o)| o.pages.iter().map(move |(&pno, p)| (p.frame, vmid, pno))).collect();
        pages.sort_unstable();
        pages
    }

    /// Whether a vCPU reached page `pno` of `vmid` through a region since
    /// this was last asked: an accessed bit in one of its entries, which are
    /// then rewritten without it (their dirty bits folded into the mark,
    /// the old translations zapped) — the pager's referenced bit.
    pub fn take_accessed(&self, books: &mut Books, vmid: u64, pno: u64) -> Result<bool, VmError> {
        let Some(&page) = self.object(vmid)?.pages.get(&pno) else { return Ok(false) };
        let accessed = self.regions_of(vmid).into_iter().any(|(place, _)| {
            books.space(place.pid).is_some_and(|space| {
                Walker::new(books.memory, space)
                    .translate(place.base() + pno * PAGE_SIZE)
                    .is_some_and(|t| t.flags.contains(PteFlags::ACCESSED))
            })
        });
        if accessed {
            self.remap(books, vmid, pno, page)?;
        }
        Ok(accessed)
    }

    /// The storage protect key of the object page the frame at `frame` holds, if it holds one.
    pub fn key_of_frame(&self, frame: u64) -> Option<u64> {
        self.objects.values().flat_map(|o| o.pages.values()).find(|p| p.frame == frame).map(|p| p.key)
    }

    /// The frames of the existing pages of `[first, first + count)` of `vmid`.
    pub fn frames_in(&self, vmid: u64, first: u64, count: u64) -> Result<Vec<u64>, VmError> {
        Ok(self.pages_in(vmid, first, count)?.into_iter().map(|(_, p)| p.frame).collect())
    }

    /// What the region at `place` maps.
    pub fn region(&self, place: Place) -> Option<Mapping> {
        self.regions.get(&place).copied()
    }

    /// The first free region of `pid` (0: the kernel's).
    pub fn free_place(&self, pid: u64) -> Option<Place> {
        (0..VM_REGIONS).map(|n| Place { pid, n }).find(|place| !self.regions.contains_key(place))
    }

    /// The regions that map `vmid`, with their handles' keys.
    fn regions_of(&self, vmid: u64) -> Vec<(Place, u64)> {
        self.regions
            .iter()
            .filter_map(|(&place, m)| match *m {
                Mapping::Object { vmid: v, key } if v == vmid => Some((place, key)),
                _ => None,
            })
            .collect()
    }

    /// Maps `mapping` (a live object, or a device window the caller
    /// checked) into the free region at `place`; its base address.
    pub fn attach(&mut self, books: &mut Books, place: Place, mapping: Mapping) -> Result<u64, VmError> {
        let base = place.base();
        let pages: Vec<(u64, u64, PteFlags)> = match mapping {
            Mapping::Object { vmid, key } => {
                self.object(vmid)?.pages.iter().map(|(&pno, p)| (pno, p.frame, object_flags(key, p.key))).collect()
            }
            Mapping::Device { bus, pages } => (0..pages).map(|i| (i, bus + i * PAGE_SIZE, device_flags())).collect(),
        };
        for (i, &(pno, frame, flags)) in pages.iter().enumerate() {
            if !books.map(place.pid, base + pno * PAGE_SIZE, frame, flags) {
                // Only a page table could not be had; nothing was reached yet.
                for &(pno, ..) in &pages[..i] {
                    books.unmap(place.pid, base + pno * PAGE_SIZE);
                }
                return Err(VmError::NoFrames);
            }
        }
        if let Mapping::Object { vmid, .. } = mapping
            && let Some(object) = self.objects.get_mut(&vmid)
        {
            object.regions += 1;
        }
        self.regions.insert(place, mapping);
        Ok(base)
    }

    /// Unmaps the region at `place`; what it mapped. The dirty bits of an
    /// object's pages become their modified marks.
    pub fn detach(&mut self, books: &mut Books, place: Place) -> Result<Mapping, VmError> {
        let mapping = self.region(place).ok_or(VmError::NotAttached(place.base()))?;
        let pnos: Vec<u64> = match mapping {
            Mapping::Object { vmid, .. } => {
                self.objects.get(&vmid).map(|o| o.pages.keys().copied().collect()).unwrap_or_default()
            }
            Mapping::Device { pages, .. } => (0..pages).collect(),
        };
        let mut zapped = Ok(());
        for pno in pnos {
            if let Some(old) = books.unmap(place.pid, place.base() + pno * PAGE_SIZE) {
                zapped = zapped.and(books.retire(old));
            }
        }
        if let Mapping::Object { vmid, .. } = mapping
            && let Some(object) = self.objects.get_mut(&vmid)
        {
            object.regions -= 1;
        }
        self.regions.remove(&place);
        zapped?;
        Ok(mapping)
    }

    /// Before process `pid` is destroyed: its regions are detached and its
    /// holds dropped (they could only be put under it).
    pub fn forget_process(&mut self, books: &mut Books, pid: u64) -> Result<(), VmError> {
        let places: Vec<Place> = self.regions.keys().copied().filter(|p| p.pid == pid).collect();
        let mut zapped = Ok(());
        for place in places {
            zapped = zapped.and(self.detach(books, place).map(drop));
        }
        for (_, vmid) in self.holds.extract_if(.., |(place, _)| place.pid == pid) {
            if let Some(object) = self.objects.get_mut(&vmid) {
                object.holds -= 1;
            }
        }
        zapped
    }

    /// `as_geth64`: a hold on the object the region at `place` maps.
    pub fn hold(&mut self, place: Place, vmid: u64) {
        if let Some(object) = self.objects.get_mut(&vmid) {
            object.holds += 1;
            self.holds.push((place, vmid));
        }
    }

    /// Whether a hold was taken at `place` on `vmid` and not put yet.
    pub fn is_held(&self, place: Place, vmid: u64) -> bool {
        self.holds.contains(&(place, vmid))
    }

    /// The regions of process `pid` where a hold on `vmid` was taken and not put yet.
    pub fn held_places(&self, pid: u64, vmid: u64) -> Vec<Place> {
        self.holds.iter().filter(|&&(place, v)| place.pid == pid && v == vmid).map(|&(place, _)| place).collect()
    }

    /// `as_puth64`: drops a hold taken at `place` on `vmid`; false if none was.
    pub fn put(&mut self, place: Place, vmid: u64) -> bool {
        let Some(i) = self.holds.iter().position(|&h| h == (place, vmid)) else { return false };
        self.holds.swap_remove(i);
        if let Some(object) = self.objects.get_mut(&vmid) {
            object.holds -= 1;
        }
        true
    }

    /// The existing pages of `vmid` in `[first, first + count)` with their frames.
    fn pages_in(&self, vmid: u64, first: u64, count: u64) -> Result<Vec<(u64, Page)>, VmError> {
        Ok(self.object(vmid)?.pages.range(first..first.saturating_add(count)).map(|(&pno, &p)| (pno, p)).collect())
    }

    /// Rewrites the entry of page `pno` in every region that maps `vmid`,
    /// folding the old entry in.
    fn remap(&self, books: &mut Books, vmid: u64, pno: u64, page: Page) -> Result<(), ZapError> {
        let mut zapped = Ok(());
        for (place, key) in self.regions_of(vmid) {
            if let Some(old) = books.remap(place.pid, place.base() + pno * PAGE_SIZE, page.frame, object_flags(key, page.key)) {
                zapped = zapped.and(books.retire(old));
            }
        }
        zapped
    }

    /// `vm_releasep`: the existing pages of `[first, first + count)` lose
    /// their contents (zeros afterwards) and their modified marks. Refused
    /// whole while one is pinned, hidden or in a DMA transfer.
    pub fn release(&mut self, books: &mut Books, vmid: u64, first: u64, count: u64) -> Result<(), VmError> {
        let pages = self.pages_in(vmid, first, count)?;
        if let Some(refusal) = books.frames.release_refusal(pages.iter().map(|(_, p)| p.frame)) {
            return Err(VmError::Busy(refusal));
        }
        let mut zapped = Ok(());
        for (pno, page) in pages {
            // Dirty bits set before the release are folded in first, then
            // cleared with the mark: the page is a fresh zero page.
            zapped = zapped.and(self.remap(books, vmid, pno, page));
            fill_frame(books.memory, page.frame, 0);
            books.frames.set_modified(page.frame, false);
        }
        Ok(zapped?)
    }

    /// `vm_qmodify`: whether a page of `vmid` is marked modified, once the
    /// dirty bits of its mappings are folded into the marks (they stay set:
    /// AIX leaves the frames' bits alone).
    pub fn modified(&self, books: &mut Books, vmid: u64) -> Result<bool, VmError> {
        let object = self.object(vmid)?;
        let mut dirty = Vec::new();
        for (place, _) in self.regions_of(vmid) {
            let Some(space) = books.space(place.pid) else { continue };
            let mut walker = Walker::new(books.memory, space);
            for (&pno, page) in &object.pages {
                if walker.translate(place.base() + pno * PAGE_SIZE).is_some_and(|t| t.flags.contains(PteFlags::DIRTY)) {
                    dirty.push(page.frame);
                }
            }
        }
        for frame in dirty {
            books.frames.set_modified(frame, true);
        }
        Ok(object.frames().any(|frame| books.frames.marks(frame).modified))
    }

    /// `vm_protectp`: sets the storage protect key of the existing pages of
    /// `[first, first + count)` and rewrites their mappings.
    pub fn protect(&mut self, books: &mut Books, vmid: u64, first: u64, count: u64, key: u64) -> Result<(), VmError> {
        let pages = self.pages_in(vmid, first, count)?;
        let mut zapped = Ok(());
        for (pno, page) in pages {
            let page = Page { key, ..page };
            if let Some(p) = self.objects.get_mut(&vmid).and_then(|o| o.pages.get_mut(&pno)) {
                *p = page;
            }
            zapped = zapped.and(self.remap(books, vmid, pno, page));
        }
        Ok(zapped?)
    }

    /// `vm_makep` (and `vm_move` into a page the object does not have): page
    /// `pno` of `vmid` exists afterwards; a new one holds `contents` in
    /// every byte ([`VM_MAKEP_POISON`](kmemvisor_abi::aix_vmm::VM_MAKEP_POISON) for `vm_makep`, zeros for `vm_move`)
    /// and appears in every region that maps the object. Whether it is new.
    pub fn make_page(&mut self, books: &mut Books, vmid: u64, pno: u64, contents: u8) -> Result<bool, VmError> {
        if self.object(vmid)?.pages.contains_key(&pno) {
            return Ok(false);
        }
        if pno >= MAX_PAGES {
            return Err(VmError::TooLarge(pno));
        }
        let frame = books.frames.allocate(1, Role::VmObject).and_then(|f| f.first().copied()).ok_or(VmError::NoFrames)?;
        // Filled before any vCPU can reach it.
        fill_frame(books.memory, frame, contents);
        let regions = self.regions_of(vmid);
        for (i, &(place, key)) in regions.iter().enumerate() {
            if !books.map(place.pid, place.base() + pno * PAGE_SIZE, frame, object_flags(key, FILEKEY)) {
                for &(place, _) in &regions[..i] {
                    books.unmap(place.pid, place.base() + pno * PAGE_SIZE);
                }
                let _ = books.frames.release(frame);
                return Err(VmError::NoFrames);
            }
        }
        books.frames.own(frame, Owner { pid: 0, va: 0 }, 0, false);
        if let Some(object) = self.objects.get_mut(&vmid) {
            object.pages.insert(pno, Page { frame, key: FILEKEY });
        }
        Ok(true)
    }
}

/// Fills the frame at `gpa` with `byte`.
fn fill_frame(memory: &GuestMemoryMmap, gpa: u64, byte: u8) {
    // The frame came from the ledger: it is RAM, so the fill cannot fail.
    let _ = fill(memory, gpa, PAGE_SIZE as usize, byte);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_a_kernel_region_or_else_the_process_s() {
        let last = VM_REGIONS_VA + (VM_REGIONS - 1) * VM_REGION_SIZE;
        assert_eq!(place_of(0, VM_REGIONS_VA), Some(Place { pid: 0, n: 0 }));
        assert_eq!(place_of(7, last + VM_REGION_SIZE - 1), Some(Place { pid: 0, n: VM_REGIONS - 1 }));
        assert_eq!(place_of(0, last + VM_REGION_SIZE), None, "past the last kernel region");
        assert_eq!(place_of(0, VM_REGIONS_VA - 1), None);
        assert_eq!(place_of(0, USER_REGIONS_VA), None, "no process");
        assert_eq!(place_of(3, USER_REGIONS_VA + VM_REGION_SIZE), Some(Place { pid: 3, n: 1 }));
        assert_eq!(place_of(3, USER_END), None);
        assert_eq!(place_of(3, USER_REGIONS_VA - 1), None);
        assert_eq!(Place { pid: 0, n: 2 }.base(), VM_REGIONS_VA + 2 * VM_REGION_SIZE);
        assert_eq!(Place { pid: 3, n: 2 }.base(), USER_REGIONS_VA + 2 * VM_REGION_SIZE);
    }
}
