//! User address spaces ("processes"): each is an address space whose kernel
//! half is the kernel's own (shared top-level entries) and whose user half
//! holds the memory the guest maps for it.

use std::collections::BTreeMap;

use crate::memory_model::ram::GuestMemoryMmap;
use kmemvisor_abi::Status;
use kmemvisor_abi::aix::{PROT_EXEC, PROT_WRITE};
use kmemvisor_abi::layout::{self, PAGE_SIZE};

use crate::memory_model::ledger::{FrameLedger, Owner, Role};
use crate::memory_model::paging::{AddressSpace, PteFlags, TableFrames};
use crate::memory_model::ram::{ZapError, fill, zap_frame};

/// Most processes alive at once.
pub const MAX_PROCESSES: usize = 64;
/// The highest process id. Ids are not reused within a run, and the ledger
/// keys a process's alias by its id above bit 48 ([`alias_key`]): a higher
/// one would be lost from the key or (0xffff) read as a kernel page, and
/// two owners' aliases would mix.
pub const MAX_PID: u64 = 0xfffe;

/// The ledger's name for user page `va` of process `pid` as an alias of a
/// frame: the process id above bit 48 (user addresses are below 2^47,
/// kernel ones have bits 48–63 set), so two processes' pages stay apart.
fn alias_key(pid: u64, va: u64) -> u64 {
    (pid << 48) | va
}

/// Whose page an alias key of the ledger names: (0, the kernel page) or
/// (the process, its user page).
#[cfg(any(test, feature = "fuzzing"))]
pub fn alias_owner(key: u64) -> (u64, u64) {
    if key >> 48 == 0xffff { (0, key) } else { (key >> 48, key & ((1 << 48) - 1)) }
}

/// Page-table frames drawn for one process, so that they go back with it.
struct Recording<'a> {
    frames: &'a mut FrameLedger,
    taken: &'a mut Vec<u64>,
}

impl TableFrames for Recording<'_> {
    fn table_frame(&mut self) -> Option<u64> {
        let frame = self.frames.table_frame()?;
        self.taken.push(frame);
        Some(frame)
    }
}

/// One user address space.
#[derive(Clone, Debug)]
pub struct Process {
    space: AddressSpace,
    /// Mapped user pages and their frames.
    pages: BTreeMap<u64, u64>,
    /// Pages `vm_map_physical_memory` mapped over: the frame each maps now,
    /// and the page's own flags to restore at the unmap.
    physical: BTreeMap<u64, (u64, PteFlags)>,
    /// Page-table frames of the user half, the root included.
    tables: Vec<u64>,
}

impl Process {
    /// The address space.
    pub fn space(&self) -> &AddressSpace {
        &self.space
    }

    /// The frames of its mapped pages.
    pub fn frames(&self) -> impl Iterator<Item = u64> + Clone + '_ {
        self.pages.values().copied()
    }
}

/// Every live process.
#[derive(Clone, Debug, Default)]
pub struct Processes {
    next: u64,
    all: BTreeMap<u64, Process>,
}

impl Processes {
    /// The process `pid`.
    pub fn get(&self, pid: u64) -> Option<&Process> {
        self.all.get(&pid)
    }

    /// A new process sharing `kernel`'s kernel half; its id.
    pub fn create(&mut self, memory: &GuestMemoryMmap, frames: &mut FrameLedger, kernel: &AddressSpace) -> Result<u64, Status> {
        if self.all.len() >= MAX_PROCESSES || self.next >= MAX_PID {
            return Err(Status::ENOSPC);
        }
        let mut tables = Vec::new();
        let space = kernel.new_user(memory, &mut Recording { frames, taken: &mut tables }).map_err(|_| Status::ENOMEM)?;
        self.next += 1;
        self.all.insert(self.next, Process { space, pages: BTreeMap::new(), physical: BTreeMap::new(), tables });
        Ok(self.next)
    }

    /// Maps `bytes` of zeroed memory at user address `va` (page-rounded) in `pid`.
    pub fn map(
        &mut self,
        memory: &GuestMemoryMmap,
        frames: &mut FrameLedger,
        pid: u64,
        va: u64,
        bytes: u64,
        prot: u64,
    ) -> Status {
        let Some(process) = self.all.get_mut(&pid) else { return Status::ESRCH };
        let Some((first, end)) = crate::memory_model::kernel_memory::page_span(va, bytes) else { return Status::EINVAL };
        // The top of the user half is the AIX as_att64 regions'.
        if bytes == 0 || first < layout::USER_START || end > layout::USER_REGIONS_VA {
            return Status::EINVAL;
        }
        if process.pages.range(first..end).next().is_some() {
            return Status::EEXIST;
        }
        let count = (end - first) / PAGE_SIZE;
        if frames.free_frames() < count + 4 {
            return Status::ENOMEM;
        }
        let Some(new) = frames.allocate(count, Role::ProcessPage) else { return Status::ENOMEM };
        let mut flags = PteFlags::USER;
        if prot & PROT_WRITE != 0 {
            flags = flags | PteFlags::WRITABLE;
        }
        if prot & PROT_EXEC == 0 {
            flags = flags | PteFlags::NO_EXECUTE;
        }
        let mut tables = Recording { frames, taken: &mut process.tables };
        for (i, &frame) in new.iter().enumerate() {
            let page = first + i as u64 * PAGE_SIZE;
            let zeroed = fill(memory, frame, PAGE_SIZE as usize, 0);
            if !zeroed || process.space.map(memory, &mut tables, page, frame, flags).is_err() {
                for &frame in &new[i..] {
                    // Fresh frames: none can be hidden yet.
                    let _ = tables.frames.release(frame);
                }
                return Status::ENOMEM;
            }
            process.pages.insert(page, frame);
            tables.frames.own(frame, Owner { pid, va: page }, 0, false);
        }
        Status::OK
    }

    /// Maps the user page `va` of `pid` to `gpa` (a frame that is not the
    /// process's own: an AIX object's page), its page tables going back
    /// with the process; false when `pid` is gone or no table frame is left.
    pub fn map_foreign(
        &mut self,
        memory: &GuestMemoryMmap,
        frames: &mut FrameLedger,
        pid: u64,
        va: u64,
        gpa: u64,
        flags: PteFlags,
    ) -> bool {
        let Some(process) = self.all.get_mut(&pid) else { return false };
        process.space.map(memory, &mut Recording { frames, taken: &mut process.tables }, va, gpa, flags).is_ok()
    }

    /// `vm_map_physical_memory` for a user address of `pid` (the caller
    /// checked sharing, sizes and alignment): every page of `[logical,
    /// logical + bytes)` must be memory the process mapped (`process_map`,
    /// DG/UX's valloc), and then maps `physical` instead, with `flags`. An
    /// error means the books changed but a stale translation may remain.
    #[allow(clippy::too_many_arguments)]
    pub fn map_physical(
        &mut self,
        memory: &GuestMemoryMmap,
        frames: &mut FrameLedger,
        pid: u64,
        logical: u64,
        physical: u64,
        bytes: u64,
        flags: PteFlags,
        ram_end: u64,
    ) -> Result<Status, ZapError> {
        let Some(process) = self.all.get_mut(&pid) else { return Ok(Status::VM_EINVAL_MMAP_SPACE_UNALLOCATED) };
        let Some(end) = logical.checked_add(bytes).filter(|&end| end <= layout::USER_END) else {
            return Ok(Status::VM_EINVAL_MMAP_SPACE_UNALLOCATED);
        };
        let range = || (logical..end).step_by(PAGE_SIZE as usize);
        if range().any(|page| !process.pages.contains_key(&page)) {
            return Ok(Status::VM_EINVAL_MMAP_SPACE_UNALLOCATED);
        }
        let in_ram = match crate::memory_model::kernel_memory::physical_region(frames, physical, bytes, ram_end) {
            Ok(in_ram) => in_ram,
            Err(status) => return Ok(status),
        };
        if range().any(|page| process.physical.contains_key(&page)) {
            return Ok(Status::VM_EINVAL_MMAP_ALREADY_MAPPED);
        }
        let mut zapped = Ok(());
        for (i, page) in range().enumerate() {
            let frame = physical + i as u64 * PAGE_SIZE;
            if let Ok(old) = process.space.remap(memory, page, frame, flags) {
                // The page's own protection, without what the CPU set.
                let own =
                    PteFlags::from_bits(old.flags.bits() & (PteFlags::WRITABLE | PteFlags::USER | PteFlags::NO_EXECUTE).bits());
                process.physical.insert(page, (frame, own));
                if in_ram {
                    frames.add_alias(frame, alias_key(pid, page));
                }
                if old.flags.contains(PteFlags::ACCESSED) {
                    zapped = zapped.and(zap_frame(memory, old.gpa));
                }
            }
        }
        zapped.map(|()| Status::OK)
    }

    /// `vm_unmap_physical_memory` for a user address of `pid`: the pages get
    /// their own frames back, zeroed (non-resident data, in DG/UX's words).
    pub fn unmap_physical(
        &mut self,
        memory: &GuestMemoryMmap,
        frames: &mut FrameLedger,
        pid: u64,
        logical: u64,
        bytes: u64,
    ) -> Result<Status, ZapError> {
        let Some(process) = self.all.get_mut(&pid) else { return Ok(Status::VM_EINVAL_MUNMAP_BAD_REGION) };
        let Some(end) = logical.checked_add(bytes).filter(|&end| end <= layout::USER_END) else {
            return Ok(Status::VM_EINVAL_MUNMAP_BAD_REGION);
        };
        let range = || (logical..end).step_by(PAGE_SIZE as usize);
        if range().any(|page| !process.pages.contains_key(&page)) {
            return Ok(Status::VM_EINVAL_MUNMAP_BAD_REGION);
        }
        if range().any(|page| !process.physical.contains_key(&page)) {
            return Ok(Status::VM_EINVAL_MUNMAP_DATA_NOT_MAPPED);
        }
        let mut zapped = Ok(());
        for page in range() {
            let (Some(&own), Some((mapped, flags))) = (process.pages.get(&page), process.physical.remove(&page)) else {
                continue;
            };
            frames.remove_alias(mapped, alias_key(pid, page));
            let _ = fill(memory, own, PAGE_SIZE as usize, 0);
            if let Ok(old) = process.space.remap(memory, page, own, flags)
                && old.flags.contains(PteFlags::ACCESSED)
            {
                zapped = zapped.and(zap_frame(memory, old.gpa));
            }
        }
        zapped.map(|()| Status::OK)
    }

    /// Destroys `pid`: its pages and page tables go back to `frames`. An
    /// error means it was destroyed but a stale translation may remain.
    pub fn destroy(&mut self, memory: &GuestMemoryMmap, frames: &mut FrameLedger, pid: u64) -> Result<Status, ZapError> {
        let Some(process) = self.all.get(&pid) else { return Ok(Status::ESRCH) };
        // A frame hidden, wired or pinned (through any mapping of it) cannot be freed.
        if frames.release_refusal(process.pages.values().copied()).is_some() {
            return Ok(Status::EBUSY);
        }
        let Some(process) = self.all.remove(&pid) else { return Ok(Status::ESRCH) };
        let mut zapped = Ok(());
        // Its physical mappings end with it (DG/UX: "implicitly unmapped by the exit path").
        for (&page, &(mapped, _)) in &process.physical {
            frames.remove_alias(mapped, alias_key(pid, page));
            if process.space.unmap(memory, page).is_some_and(|old| old.flags.contains(PteFlags::ACCESSED)) {
                zapped = zapped.and(zap_frame(memory, mapped));
            }
        }
        for (&page, &frame) in &process.pages {
            if process.space.unmap(memory, page).is_some_and(|old| old.flags.contains(PteFlags::ACCESSED)) {
                zapped = zapped.and(zap_frame(memory, frame));
            }
            // Not hidden, wired or pinned: checked above, under the same lock.
            let _ = frames.release(frame);
        }
        for &table in &process.tables {
            // Page tables are never hidden (the ledger refuses).
            let _ = frames.release(table);
        }
        zapped.map(|()| Status::OK)
    }

    /// Ids of the live processes.
    pub fn ids(&self) -> Vec<u64> {
        self.all.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_model::paging::TablePool;
    use crate::memory_model::ram::GuestRam;
    use vm_memory::{Bytes, GuestAddress};

    fn setup() -> (GuestRam, FrameLedger, AddressSpace) {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let kernel = AddressSpace::new(ram.memory(), &mut TablePool::new()).expect("kernel space");
        let frames = FrameLedger::new(layout::FREE_RAM_GPA, layout::MIN_RAM_SIZE, false);
        (ram, frames, kernel)
    }

    #[test]
    fn processes_map_user_memory_and_give_everything_back() {
        let (ram, mut frames, kernel) = setup();
        let m = ram.memory();
        let free = frames.free_frames();
        let mut processes = Processes::default();
        let pid = processes.create(m, &mut frames, &kernel).expect("create");
        assert_eq!(processes.map(m, &mut frames, pid, 0x1000_0010, 5000, PROT_WRITE), Status::OK);
        let space = processes.get(pid).expect("live").space();
        let t = space.translate(m, 0x1000_1fff).expect("second page");
        assert!(t.flags.contains(PteFlags::USER | PteFlags::WRITABLE | PteFlags::NO_EXECUTE));
        assert_eq!(processes.map(m, &mut frames, pid, 0x1000_1000, 1, 0), Status::EEXIST);
        assert_eq!(processes.map(m, &mut frames, pid, layout::USER_END - 10, 100, 0), Status::EINVAL);
        assert_eq!(processes.map(m, &mut frames, pid, 0, 100, 0), Status::EINVAL, "below USER_START");
        assert_eq!(processes.map(m, &mut frames, pid, u64::MAX - 10, 100, 0), Status::EINVAL);
        assert_eq!(processes.map(m, &mut frames, 99, 0x2000_0000, 1, 0), Status::ESRCH);
        assert_eq!(kernel.translate(m, 0x1000_0000), None);
        assert_eq!(processes.destroy(m, &mut frames, pid), Ok(Status::OK));
        assert_eq!(processes.destroy(m, &mut frames, pid), Ok(Status::ESRCH));
        assert_eq!(frames.free_frames(), free, "pages and page tables are all back");
    }

    #[test]
    fn process_ids_stop_before_their_aliases_would_mix_with_another_owners() {
        let (ram, mut frames, kernel) = setup();
        let m = ram.memory();
        // As if 0xfffd processes had come and gone: ids are not reused.
        let mut processes = Processes { next: MAX_PID - 1, ..Processes::default() };
        let pid = processes.create(m, &mut frames, &kernel).expect("create");
        assert_eq!(pid, MAX_PID);
        let va = 0x1000_0000;
        assert_eq!(processes.map(m, &mut frames, pid, va, PAGE_SIZE, PROT_WRITE), Status::OK);
        let frame = frames.allocate(1, Role::KernelMemory).expect("frame")[0];
        let flags = PteFlags::USER | PteFlags::WRITABLE | PteFlags::NO_EXECUTE;
        let mapped = processes.map_physical(m, &mut frames, pid, va, frame, PAGE_SIZE, flags, layout::MIN_RAM_SIZE);
        assert_eq!(mapped, Ok(Status::OK));
        let aliases: Vec<(u64, (u64, u64))> = frames.all_aliases().map(|(f, key)| (f, alias_owner(key))).collect();
        assert_eq!(aliases, [(frame, (MAX_PID, va))], "the alias names its process, not the kernel");
        assert_eq!(processes.destroy(m, &mut frames, pid), Ok(Status::OK));
        // The next id (0xffff) would alias as a kernel page, 0x10001 as process 1's.
        assert_eq!(processes.create(m, &mut frames, &kernel), Err(Status::ENOSPC));
        assert_eq!(alias_owner(alias_key(1, va)), (1, va));
    }

    #[test]
    fn user_pages_map_physical_memory_and_get_their_own_frames_back() {
        let (ram, mut frames, kernel) = setup();
        let m = ram.memory();
        let free = frames.free_frames();
        let mut processes = Processes::default();
        let pid = processes.create(m, &mut frames, &kernel).expect("create");
        let va = 0x1000_0000;
        assert_eq!(processes.map(m, &mut frames, pid, va, 2 * PAGE_SIZE, PROT_WRITE), Status::OK);
        let own = processes.get(pid).expect("live").space().translate(m, va).expect("mapped").gpa;
        m.write_obj(0x77_u64, GuestAddress(own)).expect("write");
        let [device_a, device_b] = frames.allocate(2, Role::KernelMemory).expect("frames")[..] else { panic!("two") };
        let table = processes.get(pid).expect("live").tables[0];
        let ram_end = layout::MIN_RAM_SIZE;
        let flags = PteFlags::USER | PteFlags::WRITABLE | PteFlags::NO_EXECUTE | PteFlags::CACHE_DISABLE;
        let map = |p: &mut Processes, f: &mut FrameLedger, logical, physical, bytes| {
            p.map_physical(m, f, pid, logical, physical, bytes, flags, ram_end).expect("no zap failure")
        };
        assert_eq!(
            map(&mut processes, &mut frames, va + 2 * PAGE_SIZE, device_a, PAGE_SIZE),
            Status::VM_EINVAL_MMAP_SPACE_UNALLOCATED
        );
        assert_eq!(map(&mut processes, &mut frames, va, table, PAGE_SIZE), Status::VM_EINVAL_MMAP_BAD_REGION, "a page table");
        assert_eq!(map(&mut processes, &mut frames, va, 0x1000, PAGE_SIZE), Status::VM_EINVAL_MMAP_BAD_REGION, "a fixed frame");
        if device_b == device_a + PAGE_SIZE {
            assert_eq!(map(&mut processes, &mut frames, va, device_a, 2 * PAGE_SIZE), Status::OK);
        } else {
            assert_eq!(map(&mut processes, &mut frames, va, device_a, PAGE_SIZE), Status::OK);
        }
        let t = processes.get(pid).expect("live").space().translate(m, va).expect("mapped");
        assert_eq!(t.gpa, device_a);
        assert!(t.flags.contains(PteFlags::CACHE_DISABLE | PteFlags::USER));
        assert_eq!(frames.aliases(device_a).collect::<Vec<_>>(), [alias_key(pid, va)]);
        assert!(frames.may_alias(device_a).is_ok());
        assert_eq!(map(&mut processes, &mut frames, va, device_a, PAGE_SIZE), Status::VM_EINVAL_MMAP_ALREADY_MAPPED);
        let unmap =
            |p: &mut Processes, f: &mut FrameLedger, logical, bytes| p.unmap_physical(m, f, pid, logical, bytes).expect("zap");
        assert_eq!(unmap(&mut processes, &mut frames, va, PAGE_SIZE), Status::OK);
        let t = processes.get(pid).expect("live").space().translate(m, va).expect("mapped");
        assert_eq!(t.gpa, own, "its own frame back");
        assert!(t.flags.contains(PteFlags::WRITABLE) && !t.flags.contains(PteFlags::CACHE_DISABLE));
        assert_eq!(m.read_obj::<u64>(GuestAddress(own)).expect("read"), 0, "zeroed: the old data is discarded");
        assert_eq!(frames.aliases(device_a).count(), 0);
        assert_eq!(unmap(&mut processes, &mut frames, va, PAGE_SIZE), Status::VM_EINVAL_MUNMAP_DATA_NOT_MAPPED);
        assert_eq!(unmap(&mut processes, &mut frames, va + 4 * PAGE_SIZE, PAGE_SIZE), Status::VM_EINVAL_MUNMAP_BAD_REGION);
        assert_eq!(map(&mut processes, &mut frames, va, device_a, PAGE_SIZE), Status::OK);
        assert_eq!(processes.destroy(m, &mut frames, pid), Ok(Status::OK));
        assert_eq!(frames.aliases(device_a).count(), 0, "the exit unmaps");
        assert_eq!(frames.release(device_a), Ok(true));
        assert_eq!(frames.release(device_b), Ok(true));
        assert_eq!(frames.free_frames(), free);
    }

    #[test]
    fn a_process_lists_the_frames_of_its_pages_in_page_order() {
        let (ram, mut frames, kernel) = setup();
        let m = ram.memory();
        let mut processes = Processes::default();
        let pid = processes.create(m, &mut frames, &kernel).expect("create");
        assert_eq!(processes.map(m, &mut frames, pid, 0x1000_0000, 2 * PAGE_SIZE, 0), Status::OK);
        let process = processes.get(pid).expect("live");
        let gpa = |va| process.space().translate(m, va).expect("mapped").gpa;
        assert_eq!(process.frames().collect::<Vec<_>>(), [gpa(0x1000_0000), gpa(0x1000_1000)]);
    }

    #[test]
    fn maps_may_start_at_the_first_user_page_and_end_below_the_aix_regions() {
        let (ram, mut frames, kernel) = setup();
        let m = ram.memory();
        let mut processes = Processes::default();
        let pid = processes.create(m, &mut frames, &kernel).expect("create");
        assert_eq!(processes.map(m, &mut frames, pid, layout::USER_START, 1, 0), Status::OK);
        let last = layout::USER_REGIONS_VA - PAGE_SIZE;
        assert_eq!(processes.map(m, &mut frames, pid, last, PAGE_SIZE, 0), Status::OK);
        let space = processes.get(pid).expect("live").space();
        assert!(space.translate(m, layout::USER_START).is_some() && space.translate(m, last + PAGE_SIZE - 1).is_some());
        // The top of the user half is the AIX as_att64 regions'.
        assert_eq!(processes.map(m, &mut frames, pid, last, 2 * PAGE_SIZE, 0), Status::EINVAL);
        assert_eq!(processes.map(m, &mut frames, pid, layout::USER_END - PAGE_SIZE, PAGE_SIZE, 0), Status::EINVAL);
    }

    #[test]
    fn a_map_needs_its_pages_and_four_frames_to_spare() {
        // `spare` free frames once the process (its root table) exists.
        let attempt = |spare: u64| {
            let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
            let kernel = AddressSpace::new(ram.memory(), &mut TablePool::new()).expect("kernel space");
            let mut frames = FrameLedger::new(layout::MIN_RAM_SIZE - (spare + 1) * PAGE_SIZE, layout::MIN_RAM_SIZE, false);
            let mut processes = Processes::default();
            let pid = processes.create(ram.memory(), &mut frames, &kernel).expect("create");
            assert_eq!(frames.free_frames(), spare);
            (processes.map(ram.memory(), &mut frames, pid, 0x1000_0000, PAGE_SIZE, 0), frames.free_frames())
        };
        assert_eq!(attempt(4), (Status::ENOMEM, 4), "one page and four to spare is five");
        assert_eq!(attempt(5), (Status::OK, 1), "the page and its three new tables");
    }

    #[test]
    fn there_is_a_limit_on_processes() {
        let (ram, mut frames, kernel) = setup();
        let mut processes = Processes::default();
        for _ in 0..MAX_PROCESSES {
            processes.create(ram.memory(), &mut frames, &kernel).expect("create");
        }
        assert_eq!(processes.create(ram.memory(), &mut frames, &kernel), Err(Status::ENOSPC));
        assert_eq!(processes.ids().len(), MAX_PROCESSES);
    }
}
