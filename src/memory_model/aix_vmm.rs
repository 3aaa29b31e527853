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
//! Regions are [`VM_REGIONS`] fixed slots of [`VM_REGION_SIZE`] in the kernel
//! half, shared by every vCPU and process (the kernel half is one). Each holds
//! one object, mapped whole at the slot's base, or one device window. Every
//! change to an entry that may be cached (accessed bit set) zaps the old
//! frame's stage-2 mappings, so no vCPU keeps a stale (writable) translation.

use std::collections::BTreeMap;

use kmemvisor_abi::aix_vmm::{FILEKEY, VM_KEY_UNLIMITED, VM_MAKEP_POISON, VM_MAX_OBJECTS, VM_OBJECT_MAX_SIZE};
use kmemvisor_abi::layout::{PAGE_SIZE, VM_REGION_SIZE, VM_REGIONS, vm_region_va};
use vm_memory::{Bytes, GuestAddress};

use crate::memory_model::kernel_memory::GuestView;
use crate::memory_model::ledger::{FrameLedger, LedgerError, Owner, Role};
use crate::memory_model::paging::{PteFlags, Translation};
use crate::memory_model::ram::{ZapError, zap_frame};

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
    #[error("object {vmid} is still mapped by {regions} region(s) (vm_att): vm_det first")]
    Attached {
        /// The object.
        vmid: u64,
        /// Regions that map it.
        regions: u32,
    },
    /// A frame of the object may not lose its contents now.
    #[error("{0}")]
    Busy(LedgerError),
    /// Every region is in use.
    #[error("all {VM_REGIONS} regions are in use")]
    NoRegion,
    /// No region holds the address.
    #[error("{0:#x} lies in no region that vm_att or io_att mapped")]
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
#[derive(Debug, PartialEq, Eq)]
pub struct VmObject {
    /// The `gnode` of `vms_create`, kept as given (never dereferenced).
    pub gnode: u64,
    /// Its pages, by page number.
    pages: BTreeMap<u64, Page>,
    /// Regions that map it.
    regions: u32,
}

impl VmObject {
    /// The frame of page `pno`, if the page exists.
    pub fn frame(&self, pno: u64) -> Option<u64> {
        self.pages.get(&pno).map(|p| p.frame)
    }

    /// Its pages' frames.
    pub fn frames(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages.values().map(|p| p.frame)
    }
}

/// What a region maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// An object, through a handle with this access key (`vm_att`).
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

/// Every object and region of a VM.
#[derive(Debug, PartialEq, Eq)]
pub struct AixVmm {
    objects: BTreeMap<u64, VmObject>,
    next_vmid: u64,
    regions: [Option<Mapping>; VM_REGIONS as usize],
}

impl Default for AixVmm {
    fn default() -> AixVmm {
        AixVmm { objects: BTreeMap::new(), next_vmid: 1, regions: [None; VM_REGIONS as usize] }
    }
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

/// What an entry that is rewritten or removed leaves behind: its dirty bit
/// becomes the frame's modified mark, and a translation that may be cached
/// (accessed bit set) is zapped.
fn retire(view: GuestView, frames: &mut FrameLedger, old: Translation) -> Result<(), ZapError> {
    if old.flags.contains(PteFlags::DIRTY) {
        frames.set_modified(old.gpa, true);
    }
    if old.flags.contains(PteFlags::ACCESSED) { zap_frame(view.memory, old.gpa) } else { Ok(()) }
}

impl AixVmm {
    /// The live object `vmid`, or why there is none.
    pub fn object(&self, vmid: u64) -> Result<&VmObject, VmError> {
        match self.objects.get(&vmid) {
            Some(object) => Ok(object),
            None if (1..self.next_vmid).contains(&vmid) => Err(VmError::Deleted(vmid)),
            None => Err(VmError::Forged(vmid)),
        }
    }

    /// Live objects.
    pub fn objects(&self) -> usize {
        self.objects.len()
    }

    /// A new object of `pages` zeroed pages (all or nothing); its vmid.
    pub fn create(&mut self, view: GuestView, frames: &mut FrameLedger, pages: u64, gnode: u64) -> Result<u64, VmError> {
        if self.objects.len() >= VM_MAX_OBJECTS {
            return Err(VmError::TooMany);
        }
        let got = frames.allocate(pages, Role::VmObject).ok_or(VmError::NoFrames)?;
        let vmid = self.next_vmid;
        self.next_vmid += 1;
        let mut object = VmObject { gnode, pages: BTreeMap::new(), regions: 0 };
        for (pno, frame) in (0..).zip(got) {
            fill(view, frame, 0);
            frames.own(frame, Owner { pid: 0, va: 0 }, 0, false);
            object.pages.insert(pno, Page { frame, key: FILEKEY });
        }
        self.objects.insert(vmid, object);
        Ok(vmid)
    }

    /// Deletes `vmid` and gives its frames back: refused while a region maps
    /// it or while a frame is pinned, hidden or in a DMA transfer.
    pub fn delete(&mut self, frames: &mut FrameLedger, vmid: u64) -> Result<(), VmError> {
        let object = self.object(vmid)?;
        if object.regions > 0 {
            return Err(VmError::Attached { vmid, regions: object.regions });
        }
        if let Some(refusal) = frames.release_refusal(object.frames()) {
            return Err(VmError::Busy(refusal));
        }
        let object = self.objects.remove(&vmid).ok_or(VmError::Forged(vmid))?;
        for frame in object.frames() {
            // Checked above: nothing holds the frame.
            let _ = frames.release(frame);
        }
        Ok(())
    }

    /// The region that holds `va` and what it maps.
    pub fn region_of(&self, va: u64) -> Option<(u64, Mapping)> {
        let n = va.checked_sub(vm_region_va(0))? / VM_REGION_SIZE;
        Some((vm_region_va(n), (*self.regions.get(usize::try_from(n).ok()?)?)?))
    }

    /// Bases of the regions that map `vmid`, with their handles' keys.
    fn regions_of(&self, vmid: u64) -> Vec<(u64, u64)> {
        (0..)
            .zip(&self.regions)
            .filter_map(|(n, r)| match r {
                Some(Mapping::Object { vmid: v, key }) if *v == vmid => Some((vm_region_va(n), *key)),
                _ => None,
            })
            .collect()
    }

    /// Maps `mapping` (a live object, or a device window the caller checked)
    /// into a free region; its base address.
    pub fn attach(&mut self, view: GuestView, frames: &mut FrameLedger, mapping: Mapping) -> Result<u64, VmError> {
        let n = self.regions.iter().position(Option::is_none).ok_or(VmError::NoRegion)?;
        let base = vm_region_va(n as u64);
        let pages: Vec<(u64, u64, PteFlags)> = match mapping {
            Mapping::Object { vmid, key } => {
                self.object(vmid)?.pages.iter().map(|(&pno, p)| (pno, p.frame, object_flags(key, p.key))).collect()
            }
            Mapping::Device { bus, pages } => (0..pages).map(|i| (i, bus + i * PAGE_SIZE, device_flags())).collect(),
        };
        for (i, &(pno, frame, flags)) in pages.iter().enumerate() {
            if view.space.map(view.memory, frames, base + pno * PAGE_SIZE, frame, flags).is_err() {
                // Only a page table could not be had; nothing was reached yet.
                for &(pno, ..) in &pages[..i] {
                    view.space.unmap(view.memory, base + pno * PAGE_SIZE);
                }
                return Err(VmError::NoFrames);
            }
        }
        if let Mapping::Object { vmid, .. } = mapping
            && let Some(object) = self.objects.get_mut(&vmid)
        {
            object.regions += 1;
        }
        self.regions[n] = Some(mapping);
        Ok(base)
    }

    /// Unmaps the region holding `va`; what it mapped. The dirty bits of an
    /// object's pages become their modified marks.
    pub fn detach(&mut self, view: GuestView, frames: &mut FrameLedger, va: u64) -> Result<Mapping, VmError> {
        let (base, mapping) = self.region_of(va).ok_or(VmError::NotAttached(va))?;
        let pnos: Vec<u64> = match mapping {
            Mapping::Object { vmid, .. } => {
                self.objects.get(&vmid).map(|o| o.pages.keys().copied().collect()).unwrap_or_default()
            }
            Mapping::Device { pages, .. } => (0..pages).collect(),
        };
        let mut zapped = Ok(());
        for pno in pnos {
            if let Some(old) = view.space.unmap(view.memory, base + pno * PAGE_SIZE) {
                zapped = zapped.and(retire(view, frames, old));
            }
        }
        if let Mapping::Object { vmid, .. } = mapping
            && let Some(object) = self.objects.get_mut(&vmid)
        {
            object.regions -= 1;
        }
        self.regions[((base - vm_region_va(0)) / VM_REGION_SIZE) as usize] = None;
        zapped?;
        Ok(mapping)
    }

    /// The existing pages of `vmid` in `[first, first + count)` with their frames.
    fn pages_in(&self, vmid: u64, first: u64, count: u64) -> Result<Vec<(u64, Page)>, VmError> {
        Ok(self.object(vmid)?.pages.range(first..first.saturating_add(count)).map(|(&pno, &p)| (pno, p)).collect())
    }

    /// Rewrites the entry of page `pno` in every region that maps `vmid`
    /// with the flags `key` gives for `page_key`, folding the old entry in.
    fn remap(&self, view: GuestView, frames: &mut FrameLedger, vmid: u64, pno: u64, page: Page) -> Result<(), ZapError> {
        let mut zapped = Ok(());
        for (base, key) in self.regions_of(vmid) {
            if let Ok(old) = view.space.remap(view.memory, base + pno * PAGE_SIZE, page.frame, object_flags(key, page.key)) {
                zapped = zapped.and(retire(view, frames, old));
            }
        }
        zapped
    }

    /// `vm_releasep`: the existing pages of `[first, first + count)` lose
    /// their contents (zeros afterwards) and their modified marks. Refused
    /// whole while one is pinned, hidden or in a DMA transfer.
    pub fn release(
        &mut self,
        view: GuestView,
        frames: &mut FrameLedger,
        vmid: u64,
        first: u64,
        count: u64,
    ) -> Result<(), VmError> {
        let pages = self.pages_in(vmid, first, count)?;
        if let Some(refusal) = frames.release_refusal(pages.iter().map(|(_, p)| p.frame)) {
            return Err(VmError::Busy(refusal));
        }
        let mut zapped = Ok(());
        for (pno, page) in pages {
            // Dirty bits set before the release are folded in first, then
            // cleared with the mark: the page is a fresh zero page.
            zapped = zapped.and(self.remap(view, frames, vmid, pno, page));
            fill(view, page.frame, 0);
            frames.set_modified(page.frame, false);
        }
        Ok(zapped?)
    }

    /// `vm_qmodify`: whether a page of `vmid` is marked modified, once the
    /// dirty bits of its mappings are folded into the marks (they stay set:
    /// AIX leaves the frames' bits alone).
    pub fn modified(&self, view: GuestView, frames: &mut FrameLedger, vmid: u64) -> Result<bool, VmError> {
        let object = self.object(vmid)?;
        for (base, _) in self.regions_of(vmid) {
            for (&pno, page) in &object.pages {
                let dirty =
                    view.space.translate(view.memory, base + pno * PAGE_SIZE).is_some_and(|t| t.flags.contains(PteFlags::DIRTY));
                if dirty {
                    frames.set_modified(page.frame, true);
                }
            }
        }
        Ok(object.frames().any(|frame| frames.marks(frame).modified))
    }

    /// `vm_protectp`: sets the storage protect key of the existing pages of
    /// `[first, first + count)` and rewrites their mappings.
    pub fn protect(
        &mut self,
        view: GuestView,
        frames: &mut FrameLedger,
        vmid: u64,
        first: u64,
        count: u64,
        key: u64,
    ) -> Result<(), VmError> {
        let pages = self.pages_in(vmid, first, count)?;
        let mut zapped = Ok(());
        for (pno, page) in pages {
            let page = Page { key, ..page };
            if let Some(p) = self.objects.get_mut(&vmid).and_then(|o| o.pages.get_mut(&pno)) {
                *p = page;
            }
            zapped = zapped.and(self.remap(view, frames, vmid, pno, page));
        }
        Ok(zapped?)
    }

    /// `vm_makep`: page `pno` of `vmid` exists afterwards; a new one holds
    /// [`VM_MAKEP_POISON`] and appears in every region that maps the object.
    /// Whether it is new.
    pub fn make_page(&mut self, view: GuestView, frames: &mut FrameLedger, vmid: u64, pno: u64) -> Result<bool, VmError> {
        if self.object(vmid)?.pages.contains_key(&pno) {
            return Ok(false);
        }
        if pno >= MAX_PAGES {
            return Err(VmError::TooLarge(pno));
        }
        let frame = frames.allocate(1, Role::VmObject).and_then(|f| f.first().copied()).ok_or(VmError::NoFrames)?;
        // Filled before any vCPU can reach it.
        fill(view, frame, VM_MAKEP_POISON);
        let regions = self.regions_of(vmid);
        for (i, &(base, key)) in regions.iter().enumerate() {
            if view.space.map(view.memory, frames, base + pno * PAGE_SIZE, frame, object_flags(key, FILEKEY)).is_err() {
                for &(base, _) in &regions[..i] {
                    view.space.unmap(view.memory, base + pno * PAGE_SIZE);
                }
                let _ = frames.release(frame);
                return Err(VmError::NoFrames);
            }
        }
        frames.own(frame, Owner { pid: 0, va: 0 }, 0, false);
        if let Some(object) = self.objects.get_mut(&vmid) {
            object.pages.insert(pno, Page { frame, key: FILEKEY });
        }
        Ok(true)
    }
}

/// Fills the frame at `gpa` with `byte`.
fn fill(view: GuestView, gpa: u64, byte: u8) {
    // The frame came from the ledger: it is RAM, so the write cannot fail.
    let _ = view.memory.write_slice(&[byte; PAGE_SIZE as usize], GuestAddress(gpa));
}
