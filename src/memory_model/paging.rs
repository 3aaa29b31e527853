//! Guest page tables, built and owned by the VMM.
//!
//! x86-64 4-level paging with 4 KiB leaves only, so that every page can carry
//! its own permissions and cache attributes. Table frames come from the
//! page-table pool ([`layout::PAGE_TABLES_GPA`]), which is never mapped into the
//! guest: the guest cannot change its own translations. Because the tables are
//! the VMM's, a walk of them is also how the VMM reads guest-virtual memory.

use crate::memory_model::ram::{GuestMemoryMmap, fill, load_word, mark_written, word};
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use vm_memory::{Bytes, GuestAddress};

/// Bits of a page-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PteFlags(u64);

impl PteFlags {
    /// The entry is valid.
    pub const PRESENT: PteFlags = PteFlags(1 << 0);
    /// Writes are allowed.
    pub const WRITABLE: PteFlags = PteFlags(1 << 1);
    /// CPL3 may access the page.
    pub const USER: PteFlags = PteFlags(1 << 2);
    /// Page-level write-through (PWT).
    pub const WRITE_THROUGH: PteFlags = PteFlags(1 << 3);
    /// Page-level cache disable (PCD).
    pub const CACHE_DISABLE: PteFlags = PteFlags(1 << 4);
    /// The CPU (or KVM on its behalf) walked this entry: only then can a
    /// translation through it be cached anywhere.
    pub const ACCESSED: PteFlags = PteFlags(1 << 5);
    /// The CPU stored through this entry (set by the CPU, read by the VMM
    /// as the page's modified mark).
    pub const DIRTY: PteFlags = PteFlags(1 << 6);
    /// Instruction fetches are not allowed (needs EFER.NXE).
    pub const NO_EXECUTE: PteFlags = PteFlags(1 << 63);
    /// Flags of intermediate entries: leaves decide permissions.
    const TABLE: PteFlags = PteFlags(0b111);
    /// The bits that hold a frame address.
    const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

    /// The flags of `bits` (an entry's low bits and NX).
    pub const fn from_bits(bits: u64) -> PteFlags {
        PteFlags(bits)
    }

    /// No bits.
    pub const fn empty() -> PteFlags {
        PteFlags(0)
    }

    /// Both sets of bits.
    pub const fn union(self, other: PteFlags) -> PteFlags {
        PteFlags(self.0 | other.0)
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: PteFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }
}

impl std::ops::BitOr for PteFlags {
    type Output = PteFlags;

    fn bitor(self, other: PteFlags) -> PteFlags {
        self.union(other)
    }
}

/// What went wrong building or walking page tables.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    /// The address is not canonical (bits 63..47 differ).
    #[error("Address {0:#x} is not canonical")]
    NotCanonical(u64),
    /// An address is not page aligned.
    #[error("Address {0:#x} is not page aligned")]
    Unaligned(u64),
    /// The virtual page is mapped already.
    #[error("Virtual page {0:#x} is mapped already")]
    AlreadyMapped(u64),
    /// The page-table pool has no free frame left.
    #[error("The page-table pool is exhausted")]
    PoolExhausted,
    /// The virtual page is not mapped.
    #[error("Virtual page {0:#x} is not mapped")]
    NotMapped(u64),
    /// A table frame lies outside guest RAM.
    #[error("Page-table frame {0:#x} is outside guest RAM")]
    Memory(u64),
}

/// Where new page-table frames come from.
pub trait TableFrames {
    /// A free frame for a page table, or `None` when there is none.
    fn table_frame(&mut self) -> Option<u64>;
}

impl TableFrames for crate::memory_model::ledger::FrameLedger {
    fn table_frame(&mut self) -> Option<u64> {
        self.allocate_table()
    }
}

/// Hands out the frames of the page-table pool.
#[derive(Debug)]
pub struct TablePool {
    next: u64,
    end: u64,
}

impl TablePool {
    /// The pool at its layout place.
    pub fn new() -> TablePool {
        TablePool::with_range(layout::PAGE_TABLES_GPA, layout::PAGE_TABLES_GPA + layout::PAGE_TABLES_SIZE)
    }

    /// A pool over `[start, end)`.
    pub fn with_range(start: u64, end: u64) -> TablePool {
        TablePool { next: start, end }
    }

    /// Frames handed out so far.
    pub fn used(&self) -> u64 {
        (self.next - layout::PAGE_TABLES_GPA) / PAGE_SIZE
    }
}

impl TableFrames for TablePool {
    fn table_frame(&mut self) -> Option<u64> {
        (self.next < self.end).then(|| {
            self.next += PAGE_SIZE;
            self.next - PAGE_SIZE
        })
    }
}

/// A zeroed page-table frame from `frames`.
fn new_table(memory: &GuestMemoryMmap, frames: &mut dyn TableFrames) -> Result<u64, PagingError> {
    let frame = frames.table_frame().ok_or(PagingError::PoolExhausted)?;
    if !fill(memory, frame, PAGE_SIZE as usize, 0) {
        return Err(PagingError::Memory(frame));
    }
    Ok(frame)
}

impl Default for TablePool {
    fn default() -> TablePool {
        TablePool::new()
    }
}

/// A leaf translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Guest-physical address of the byte.
    pub gpa: u64,
    /// The leaf entry's flags.
    pub flags: PteFlags,
}

impl Translation {
    /// The frame and flags of a leaf entry.
    fn of_entry(entry: u64) -> Translation {
        Translation { gpa: entry & PteFlags::ADDRESS_MASK, flags: PteFlags(entry & !PteFlags::ADDRESS_MASK) }
    }
}

/// Bytes one leaf table maps: the 2 MiB region its pages share.
pub const LEAF_SPAN: u64 = 1 << 21;

/// Where a page's leaf entry lives, as [`AddressSpace::map_near`] found it.
/// It stays that page's entry while the tables above it stay, which in the
/// kernel space is the VM's life: its tables are never freed, and a
/// snapshot's restore puts them back with the books that keep slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafSlot {
    /// The region of the page (its address / [`LEAF_SPAN`]).
    region: u64,
    /// Guest-physical address of the entry.
    at: u64,
}

/// One address space: a PML4 and everything below it.
#[derive(Clone, Debug)]
pub struct AddressSpace {
    root: u64,
}

/// Whether bits 63..47 of `va` are all equal.
pub const fn is_canonical(va: u64) -> bool {
    let top = (va as i64) >> 47;
    top == 0 || top == -1
}

fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * level)) & 0x1ff
}

impl AddressSpace {
    /// A new, empty address space.
    pub fn new(memory: &GuestMemoryMmap, frames: &mut dyn TableFrames) -> Result<AddressSpace, PagingError> {
        Ok(AddressSpace { root: new_table(memory, frames)? })
    }

    /// Guest-physical address of the PML4: the value for CR3.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Maps the 4 KiB page at `va` to the frame at `gpa`.
    pub fn map(
        &self,
        memory: &GuestMemoryMmap,
        frames: &mut dyn TableFrames,
        va: u64,
        gpa: u64,
        flags: PteFlags,
    ) -> Result<(), PagingError> {
        self.map_near(memory, frames, va, gpa, flags, None).map(|_| ())
    }

    /// [`AddressSpace::map`], through the leaf table of `near` when it is
    /// a slot of the same 2 MiB region (one entry read instead of a walk of
    /// four tables, each a cold page after a world switch); the new
    /// mapping's slot.
    pub fn map_near(
        &self,
        memory: &GuestMemoryMmap,
        frames: &mut dyn TableFrames,
        va: u64,
        gpa: u64,
        flags: PteFlags,
        near: Option<LeafSlot>,
    ) -> Result<LeafSlot, PagingError> {
        if !is_canonical(va) {
            return Err(PagingError::NotCanonical(va));
        }
        for address in [va, gpa] {
            if address % PAGE_SIZE != 0 {
                return Err(PagingError::Unaligned(address));
            }
        }
        let table = match near.filter(|slot| slot.region == va / LEAF_SPAN) {
            Some(slot) => slot.at - slot.at % PAGE_SIZE,
            None => self.leaf_table(memory, frames, va)?,
        };
        let slot = table + 8 * index(va, 0);
        if read_entry(memory, slot)? & PteFlags::PRESENT.0 != 0 {
            return Err(PagingError::AlreadyMapped(va));
        }
        write_entry(memory, slot, gpa | (flags | PteFlags::PRESENT).0)?;
        Ok(LeafSlot { region: va / LEAF_SPAN, at: slot })
    }

    /// The leaf table of `va`, made with the tables above it if missing.
    fn leaf_table(&self, memory: &GuestMemoryMmap, frames: &mut dyn TableFrames, va: u64) -> Result<u64, PagingError> {
        let mut table = self.root;
        for level in (1..4).rev() {
            let slot = table + 8 * index(va, level);
            let entry = read_entry(memory, slot)?;
            table = if entry & PteFlags::PRESENT.0 != 0 {
                entry & PteFlags::ADDRESS_MASK
            } else {
                let next = new_table(memory, frames)?;
                write_entry(memory, slot, next | PteFlags::TABLE.0)?;
                next
            };
        }
        Ok(table)
    }

    /// Maps `count` consecutive pages from `va` to consecutive frames from `gpa`.
    pub fn map_range(
        &self,
        memory: &GuestMemoryMmap,
        frames: &mut dyn TableFrames,
        va: u64,
        gpa: u64,
        count: u64,
        flags: PteFlags,
    ) -> Result<(), PagingError> {
        (0..count).try_for_each(|i| self.map(memory, frames, va + i * PAGE_SIZE, gpa + i * PAGE_SIZE, flags))
    }

    /// The address of the leaf entry of `va`, if its tables exist.
    fn leaf_slot(&self, memory: &GuestMemoryMmap, va: u64) -> Option<u64> {
        if !is_canonical(va) {
            return None;
        }
        let mut table = self.root;
        for level in (1..4).rev() {
            let entry = read_entry(memory, table + 8 * index(va, level)).ok()?;
            if entry & PteFlags::PRESENT.0 == 0 {
                return None;
            }
            table = entry & PteFlags::ADDRESS_MASK;
        }
        Some(table + 8 * index(va, 0))
    }

    /// Points the mapped page at `va` to `gpa` with `flags` and returns the
    /// old translation; until the old frame is zapped (see
    /// [`crate::memory_model::ram::zap_frame`]) vCPUs may still use a cached one.
    pub fn remap(&self, memory: &GuestMemoryMmap, va: u64, gpa: u64, flags: PteFlags) -> Result<Translation, PagingError> {
        let slot = self.leaf_slot(memory, va).ok_or(PagingError::NotMapped(va))?;
        if read_entry(memory, slot)? & PteFlags::PRESENT.0 == 0 {
            return Err(PagingError::NotMapped(va));
        }
        let old = swap_entry(memory, slot, (gpa & PteFlags::ADDRESS_MASK) | (flags | PteFlags::PRESENT).0)?;
        Ok(Translation::of_entry(old))
    }

    /// Removes the mapping of the page at `va` and returns what it was; see
    /// [`AddressSpace::remap`] on cached translations.
    pub fn unmap(&self, memory: &GuestMemoryMmap, va: u64) -> Option<Translation> {
        clear_entry(memory, self.leaf_slot(memory, va)?)
    }

    /// [`AddressSpace::unmap`] of the page whose leaf entry is `slot`.
    pub fn unmap_slot(&self, memory: &GuestMemoryMmap, slot: LeafSlot) -> Option<Translation> {
        clear_entry(memory, slot.at)
    }

    /// Creates the top-level entry that covers `va`, if missing: kernel
    /// regions get theirs at boot, so that every user address space, which
    /// copies the kernel half of the top level, sees later kernel mappings.
    pub fn reserve_top_level(&self, memory: &GuestMemoryMmap, frames: &mut dyn TableFrames, va: u64) -> Result<(), PagingError> {
        let slot = self.root + 8 * index(va, 3);
        if read_entry(memory, slot)? & PteFlags::PRESENT.0 == 0 {
            let table = new_table(memory, frames)?;
            write_entry(memory, slot, table | PteFlags::TABLE.0)?;
        }
        Ok(())
    }

    /// A new address space whose kernel half (top-level entries 256–511) is
    /// this one's, shared.
    pub fn new_user(&self, memory: &GuestMemoryMmap, frames: &mut dyn TableFrames) -> Result<AddressSpace, PagingError> {
        let user = AddressSpace::new(memory, frames)?;
        let mut kernel_half = [0u8; 2048];
        memory.read_slice(&mut kernel_half, GuestAddress(self.root + 2048)).map_err(|_| PagingError::Memory(self.root))?;
        memory.write_slice(&kernel_half, GuestAddress(user.root + 2048)).map_err(|_| PagingError::Memory(user.root))?;
        Ok(user)
    }

    /// Every table frame reachable from the root (the root included) and
    /// every present leaf as (virtual page, translation): what the CPU can
    /// walk, for the memory model's invariant checks.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn walk(&self, memory: &GuestMemoryMmap) -> (Vec<u64>, Vec<(u64, Translation)>) {
        let (mut tables, mut leaves) = (Vec::new(), Vec::new());
        let mut pending = vec![(self.root, 3u32, 0u64)];
        while let Some((table, level, base)) = pending.pop() {
            tables.push(table);
            let mut bytes = [0u8; PAGE_SIZE as usize];
            if memory.read_slice(&mut bytes, GuestAddress(table)).is_err() {
                continue;
            }
            for (i, word) in (0u64..).zip(bytes.chunks_exact(8)) {
                let entry = u64::from_le_bytes(word.try_into().unwrap_or_default());
                if entry & PteFlags::PRESENT.0 == 0 {
                    continue;
                }
                let mut va = base | (i << (12 + 9 * level));
                if level == 3 && i >= 256 {
                    va |= 0xffff_0000_0000_0000;
                }
                if level == 0 {
                    leaves.push((va, Translation::of_entry(entry)));
                } else {
                    pending.push((entry & PteFlags::ADDRESS_MASK, level - 1, va));
                }
            }
        }
        (tables, leaves)
    }

    /// Translates `va`, or `None` where nothing is mapped.
    pub fn translate(&self, memory: &GuestMemoryMmap, va: u64) -> Option<Translation> {
        if !is_canonical(va) {
            return None;
        }
        let mut table = self.root;
        for level in (0..4).rev() {
            let entry = read_entry(memory, table + 8 * index(va, level)).ok()?;
            if entry & PteFlags::PRESENT.0 == 0 {
                return None;
            }
            table = entry & PteFlags::ADDRESS_MASK;
            if level == 0 {
                let flags = PteFlags(entry & !PteFlags::ADDRESS_MASK);
                return Some(Translation { gpa: table | (va & (PAGE_SIZE - 1)), flags });
            }
        }
        None
    }
}

/// Translates many addresses of one space, remembering the last page table
/// so that neighbouring pages cost one entry read instead of four.
pub struct Walker<'a> {
    memory: &'a GuestMemoryMmap,
    space: &'a AddressSpace,
    /// The 2 MiB region last walked and its page table.
    cached: Option<(u64, u64)>,
}

impl<'a> Walker<'a> {
    /// A walker over `space`.
    pub fn new(memory: &'a GuestMemoryMmap, space: &'a AddressSpace) -> Walker<'a> {
        Walker { memory, space, cached: None }
    }

    /// What [`AddressSpace::translate`] says of `va`.
    pub fn translate(&mut self, va: u64) -> Option<Translation> {
        let region = va / LEAF_SPAN;
        let table = match self.cached {
            Some((cached, table)) if cached == region => table,
            _ => {
                let table = self.space.leaf_slot(self.memory, va)? - 8 * index(va, 0);
                self.cached = Some((region, table));
                table
            }
        };
        let entry = read_entry(self.memory, table + 8 * index(va, 0)).ok()?;
        (entry & PteFlags::PRESENT.0 != 0).then(|| {
            let t = Translation::of_entry(entry);
            Translation { gpa: t.gpa | (va & (PAGE_SIZE - 1)), flags: t.flags }
        })
    }
}

/// One aligned atomic load ([`load_word`]): entries are shared with vCPUs
/// setting accessed and dirty bits, and a walk is on every get, release and
/// wire.
fn read_entry(memory: &GuestMemoryMmap, at: u64) -> Result<u64, PagingError> {
    load_word(memory, at).ok_or(PagingError::Memory(at))
}

/// Replaces the entry at `at` in one atomic step and returns the old one: a
/// vCPU walking the tables may set the accessed bit at the same moment, and
/// that bit decides whether the old frame must be zapped.
fn swap_entry(memory: &GuestMemoryMmap, at: u64, entry: u64) -> Result<u64, PagingError> {
    let old = word(memory, at).ok_or(PagingError::Memory(at))?.swap(entry, std::sync::atomic::Ordering::SeqCst);
    mark_written(memory, at, 8);
    Ok(old)
}

/// Clears the leaf entry at `at`; what it mapped, if anything.
fn clear_entry(memory: &GuestMemoryMmap, at: u64) -> Option<Translation> {
    let old = swap_entry(memory, at, 0).ok()?;
    (old & PteFlags::PRESENT.0 != 0).then_some(Translation::of_entry(old))
}

fn write_entry(memory: &GuestMemoryMmap, at: u64, entry: u64) -> Result<(), PagingError> {
    word(memory, at).ok_or(PagingError::Memory(at))?.store(entry, std::sync::atomic::Ordering::Relaxed);
    mark_written(memory, at, 8);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_model::ram::GuestRam;

    fn setup() -> (GuestRam, TablePool, AddressSpace) {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let mut pool = TablePool::new();
        let space = AddressSpace::new(ram.memory(), &mut pool).expect("space");
        (ram, pool, space)
    }

    #[test]
    fn a_slot_of_the_same_region_stands_for_the_walk_and_unmaps_its_own_page() {
        let (ram, mut pool, space) = setup();
        let m = ram.memory();
        let va = layout::IMAGE_VA - layout::IMAGE_VA % LEAF_SPAN;
        let flags = PteFlags::WRITABLE;
        let first = space.map_near(m, &mut pool, va, 0x30_0000, flags, None).expect("map");
        let second = space.map_near(m, &mut pool, va + PAGE_SIZE, 0x30_1000, flags, Some(first)).expect("near");
        assert_eq!(second, LeafSlot { region: va / LEAF_SPAN, at: first.at + 8 }, "the next entry of the same leaf table");
        assert_eq!(space.translate(m, va + PAGE_SIZE).map(|t| t.gpa), Some(0x30_1000));
        // A slot of another region is not used: the page gets its own leaf table.
        let far = va + LEAF_SPAN;
        let third = space.map_near(m, &mut pool, far, 0x30_2000, flags, Some(first)).expect("far");
        assert_ne!(third.at - third.at % PAGE_SIZE, first.at - first.at % PAGE_SIZE);
        assert_eq!(space.translate(m, far).map(|t| t.gpa), Some(0x30_2000));
        assert_eq!(space.map_near(m, &mut pool, va, 0x30_3000, flags, Some(second)), Err(PagingError::AlreadyMapped(va)));
        assert_eq!(space.unmap_slot(m, second).map(|t| t.gpa), Some(0x30_1000));
        assert_eq!(space.translate(m, va + PAGE_SIZE), None);
        assert_eq!(space.unmap_slot(m, second), None, "already unmapped");
        assert_eq!(space.translate(m, va).map(|t| t.gpa), Some(0x30_0000), "its neighbour stays");
    }

    #[test]
    fn a_slot_of_the_same_region_is_trusted_without_reading_the_tables_above() {
        let (ram, mut pool, space) = setup();
        let m = ram.memory();
        let va = layout::IMAGE_VA - layout::IMAGE_VA % LEAF_SPAN;
        let first = space.map_near(m, &mut pool, va, 0x30_0000, PteFlags::WRITABLE, None).expect("map");
        // A slot in another table, as a page of this region would have had it: the entry goes there.
        let other = pool.table_frame().expect("table");
        let near = LeafSlot { region: first.region, at: other + 8 * index(va, 0) };
        let slot = space.map_near(m, &mut pool, va + PAGE_SIZE, 0x30_1000, PteFlags::WRITABLE, Some(near)).expect("map");
        assert_eq!(slot.at, other + 8 * index(va + PAGE_SIZE, 0));
        assert_eq!(space.translate(m, va + PAGE_SIZE), None, "the walk's table was not written");
        assert_eq!(read_entry(m, slot.at).map(|e| e & PteFlags::ADDRESS_MASK), Ok(0x30_1000));
    }

    #[test]
    fn every_entry_written_or_swapped_is_recorded_as_written() {
        let (ram, mut pool, space) = setup();
        let m = ram.memory();
        let va = layout::IMAGE_VA;
        ram.written().take();
        let slot = space.map_near(m, &mut pool, va, 0x30_0000, PteFlags::WRITABLE, None).expect("map");
        let tables = crate::memory_model::ram::page_numbers(&ram.written().take());
        assert!(tables.contains(&(slot.at / PAGE_SIZE)), "the leaf table {:#x} among {tables:x?}", slot.at);
        assert_eq!(space.unmap_slot(m, slot).map(|t| t.gpa), Some(0x30_0000));
        assert_eq!(crate::memory_model::ram::page_numbers(&ram.written().take()), vec![slot.at / PAGE_SIZE]);
    }

    #[test]
    fn a_mapped_page_translates_with_its_flags_and_offset() {
        let (ram, mut pool, space) = setup();
        let va = layout::IMAGE_VA;
        let flags = PteFlags::USER | PteFlags::NO_EXECUTE;
        space.map(ram.memory(), &mut pool, va, 0x30_0000, flags).expect("map");
        let t = space.translate(ram.memory(), va + 0x123).expect("mapped");
        assert_eq!(t.gpa, 0x30_0123);
        assert!(t.flags.contains(PteFlags::PRESENT | PteFlags::USER | PteFlags::NO_EXECUTE));
        assert!(!t.flags.contains(PteFlags::WRITABLE));
        assert_eq!(space.translate(ram.memory(), va + PAGE_SIZE), None);
        assert_eq!(space.translate(ram.memory(), va - PAGE_SIZE), None);
    }

    #[test]
    fn the_walk_is_what_the_cpu_would_see() {
        let (ram, mut pool, space) = setup();
        let va = 0xffff_ffff_8020_3000;
        space.map(ram.memory(), &mut pool, va, 0x0040_5000, PteFlags::WRITABLE).expect("map");
        // Walk by hand the way the MMU does: PML4 → PDPT → PD → PT.
        let mut table = space.root();
        for (level, expected_index) in [(3, 511), (2, 510), (1, 1), (0, 3)] {
            assert_eq!(index(va, level), expected_index);
            let entry: u64 = ram.memory().read_obj(GuestAddress(table + 8 * expected_index)).expect("entry");
            assert_eq!(entry & 1, 1, "level {level} present");
            if level > 0 {
                assert_eq!(entry & 0b111, 0b111, "intermediate entries are P|RW|U");
            }
            table = entry & PteFlags::ADDRESS_MASK;
        }
        assert_eq!(table, 0x0040_5000);
    }

    #[test]
    fn tables_are_shared_by_neighbouring_pages() {
        let (ram, mut pool, space) = setup();
        space.map_range(ram.memory(), &mut pool, layout::IMAGE_VA, 0x20_0000, 512, PteFlags::USER).expect("map");
        // One PML4, one PDPT, one PD, one PT for 2 MiB of aligned pages.
        assert_eq!(pool.used(), 4);
        for i in [0, 1, 511] {
            let t = space.translate(ram.memory(), layout::IMAGE_VA + i * PAGE_SIZE).expect("mapped");
            assert_eq!(t.gpa, 0x20_0000 + i * PAGE_SIZE);
        }
    }

    #[test]
    fn bad_mappings_are_refused() {
        let (ram, mut pool, space) = setup();
        let m = ram.memory();
        assert_eq!(
            space.map(m, &mut pool, 0x8000_0000_0000, 0, PteFlags::USER),
            Err(PagingError::NotCanonical(0x8000_0000_0000))
        );
        assert_eq!(space.map(m, &mut pool, 0x1001, 0, PteFlags::USER), Err(PagingError::Unaligned(0x1001)));
        assert_eq!(space.map(m, &mut pool, 0x1000, 0x10, PteFlags::USER), Err(PagingError::Unaligned(0x10)));
        space.map(m, &mut pool, 0x1000, 0x5000, PteFlags::USER).expect("map");
        assert_eq!(space.map(m, &mut pool, 0x1000, 0x6000, PteFlags::USER), Err(PagingError::AlreadyMapped(0x1000)));
        assert_eq!(space.translate(m, 0x1000).map(|t| t.gpa), Some(0x5000));
    }

    #[test]
    fn pages_can_be_remapped_and_unmapped() {
        let (ram, mut pool, space) = setup();
        let m = ram.memory();
        let va = layout::WIRED_ARENA_VA;
        space.map(m, &mut pool, va, 0x40_0000, PteFlags::USER | PteFlags::WRITABLE).expect("map");
        let old = space.remap(m, va, 0x41_0000, PteFlags::USER | PteFlags::CACHE_DISABLE).expect("remap");
        assert_eq!(old.gpa, 0x40_0000);
        assert!(old.flags.contains(PteFlags::WRITABLE) && !old.flags.contains(PteFlags::ACCESSED));
        let t = space.translate(m, va).expect("mapped");
        assert_eq!(t.gpa, 0x41_0000);
        assert!(t.flags.contains(PteFlags::CACHE_DISABLE) && !t.flags.contains(PteFlags::WRITABLE));
        assert_eq!(space.unmap(m, va + 0x10).map(|t| t.gpa), Some(0x41_0000));
        assert_eq!(space.translate(m, va), None);
        assert_eq!(space.unmap(m, va), None, "unmapped already");
        assert_eq!(space.remap(m, va, 0x42_0000, PteFlags::USER), Err(PagingError::NotMapped(va)));
        assert_eq!(space.remap(m, 0x7000_0000, 0x42_0000, PteFlags::USER), Err(PagingError::NotMapped(0x7000_0000)));
    }

    #[test]
    fn user_spaces_share_the_kernel_half_and_keep_their_own_user_half() {
        let (ram, mut pool, kernel) = setup();
        let m = ram.memory();
        kernel.reserve_top_level(m, &mut pool, layout::WIRED_ARENA_VA).expect("reserve");
        let user = kernel.new_user(m, &mut pool).expect("user space");
        // A kernel mapping made after the user space exists is visible in it.
        kernel.map(m, &mut pool, layout::WIRED_ARENA_VA, 0x40_0000, PteFlags::USER).expect("map");
        assert_eq!(user.translate(m, layout::WIRED_ARENA_VA).map(|t| t.gpa), Some(0x40_0000));
        user.map(m, &mut pool, 0x1000_0000, 0x41_0000, PteFlags::USER).expect("user map");
        assert_eq!(kernel.translate(m, 0x1000_0000), None, "user pages are the user space's own");
    }

    #[test]
    fn the_walker_agrees_with_translate() {
        let (ram, mut pool, space) = setup();
        let m = ram.memory();
        let base = layout::WIRED_ARENA_VA + (2 << 20) - 3 * PAGE_SIZE;
        for i in [0, 1, 2, 3, 5] {
            space.map(m, &mut pool, base + i * PAGE_SIZE, 0x40_0000 + 0x2000 * i, PteFlags::USER).expect("map");
        }
        let mut walker = Walker::new(m, &space);
        for va in (base - PAGE_SIZE..base + 7 * PAGE_SIZE).step_by(0x800) {
            assert_eq!(walker.translate(va + 3), space.translate(m, va + 3), "{va:#x}");
        }
        assert_eq!(walker.translate(u64::MAX), None);
    }

    #[test]
    fn the_walk_finds_every_table_and_every_leaf_at_its_own_address() {
        let (ram, mut pool, space) = setup();
        let m = ram.memory();
        // Table indices below and above 256 at every level, in both halves.
        let low = 0x1000;
        let top_of_user = 0x7fff_ffff_f000;
        let kernel = 0xffff_8000_0000_0000 | 300 << 30 | 100 << 21 | 400 << 12;
        for (i, va) in (0..).zip([low, top_of_user, kernel]) {
            space.map(m, &mut pool, va, 0x40_0000 + i * PAGE_SIZE, PteFlags::USER).expect("map");
        }
        let (mut tables, mut leaves) = space.walk(m);
        tables.sort_unstable();
        leaves.sort_unstable_by_key(|&(va, _)| va);
        let pool_frames: Vec<u64> = (0..10).map(|i| layout::PAGE_TABLES_GPA + i * PAGE_SIZE).collect();
        assert_eq!(tables, pool_frames, "the root and three tables below it for each page");
        let leaf = |i: u64| Translation { gpa: 0x40_0000 + i * PAGE_SIZE, flags: PteFlags::USER | PteFlags::PRESENT };
        assert_eq!(leaves, [(low, leaf(0)), (top_of_user, leaf(1)), (kernel, leaf(2))]);
    }

    #[test]
    fn the_walker_tells_apart_pages_that_differ_only_in_their_top_bits() {
        let (ram, mut pool, space) = setup();
        let m = ram.memory();
        let (user, kernel) = (0x1000, 0xffff_8000_0000_1000);
        space.map(m, &mut pool, user, 0x40_0000, PteFlags::USER).expect("map");
        space.map(m, &mut pool, kernel, 0x41_0000, PteFlags::USER).expect("map");
        let mut walker = Walker::new(m, &space);
        assert_eq!([user, kernel].map(|va| walker.translate(va).map(|t| t.gpa)), [Some(0x40_0000), Some(0x41_0000)]);
    }

    #[test]
    fn an_entry_is_swapped_anywhere_in_ram_on_an_8_byte_boundary_only() {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let m = ram.memory();
        let last = layout::MIN_RAM_SIZE - 8;
        for at in [0, last] {
            m.write_obj(0x1234u64, GuestAddress(at)).expect("write");
            assert_eq!(swap_entry(m, at, 0x5678), Ok(0x1234), "{at:#x}");
            assert_eq!(read_entry(m, at), Ok(0x5678), "{at:#x}");
        }
        for at in [4, last + 4, layout::MIN_RAM_SIZE] {
            assert_eq!(swap_entry(m, at, 1), Err(PagingError::Memory(at)), "{at:#x}");
        }
    }

    #[test]
    fn non_canonical_and_unmapped_addresses_do_not_translate() {
        let (ram, _pool, space) = setup();
        for va in [0, 0x8000_0000_0000, 0xffff_7fff_ffff_ffff, u64::MAX] {
            assert_eq!(space.translate(ram.memory(), va), None, "{va:#x}");
        }
        // A table entry that is not present is never followed: not even to
        // frame 0 (its address bits' zero), whatever frame 0 holds — here
        // entries that would map frame 0 at every level.
        for slot in 0..PAGE_SIZE / 8 {
            ram.memory().write_obj(0x7u64, GuestAddress(slot * 8)).expect("fill frame 0");
        }
        assert_eq!(space.translate(ram.memory(), 0x40_0000), None);
        assert_eq!(Walker::new(ram.memory(), &space).translate(0x40_0000), None);
    }

    #[test]
    fn an_exhausted_pool_is_an_error_not_a_panic() {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let start = layout::PAGE_TABLES_GPA;
        let mut pool = TablePool::with_range(start, start + 3 * PAGE_SIZE);
        let space = AddressSpace::new(ram.memory(), &mut pool).expect("space");
        assert_eq!(space.map(ram.memory(), &mut pool, 0x1000, 0x5000, PteFlags::USER), Err(PagingError::PoolExhausted));
    }

    #[test]
    fn canonical_check_matches_the_architecture() {
        assert!(is_canonical(0));
        assert!(is_canonical(0x7fff_ffff_ffff));
        assert!(!is_canonical(0x8000_0000_0000));
        assert!(is_canonical(0xffff_8000_0000_0000));
        assert!(!is_canonical(0xfff0_0000_0000_0000));
    }

    #[test]
    fn the_table_pool_hands_out_each_frame_of_its_range_once_in_order() {
        let mut pool = TablePool::with_range(0x8000, 0xa000);
        let frames: Vec<Option<u64>> = (0..3).map(|_| pool.table_frame()).collect();
        assert_eq!(frames, [Some(0x8000), Some(0x9000), None]);
    }
}
