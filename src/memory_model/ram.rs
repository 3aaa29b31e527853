//! Guest RAM: one memfd, mapped twice.
//!
//! The *VMM view* is what vm-memory sees: every copy the VMM makes and every
//! transfer of the DMA device goes through it. The *CPU view* is what KVM's
//! memslot points at, so it is what the vCPUs reach through stage 2. Both map
//! the same file, so they always hold the same bytes; but a page can be taken
//! out of the CPU view alone (`MADV_DONTNEED` drops its host page-table entry,
//! and KVM's MMU notifier drops the guest's) and trapped there with
//! userfaultfd, while the device keeps writing it through the VMM view — that is
//! how `xmemdma` hides a page (src/hiding).
//!
//! The CPU view sits right after the VMM view in one reservation, so the CPU
//! address of a guest-physical address is its VMM address plus the RAM size.
//!
//! Every page the VMM writes is recorded ([`WrittenPages`]): vm-memory marks
//! it on each write through the VMM view, and the two writes that bypass
//! vm-memory (a page-table entry swapped in place, a page punched out of the
//! memfd) mark it themselves. KVM's dirty log sees the vCPUs' writes only;
//! with this record a snapshot reset knows every page an iteration changed.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kmemvisor_abi::layout::{MAX_RAM_SIZE, MIN_RAM_SIZE, PAGE_SIZE};
use vm_memory::bitmap::{AtomicBitmap, Bitmap, NewBitmap, RefSlice, WithBitmapSlice};
use vm_memory::mmap::{MmapRegionBuilder, MmapRegionError};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

/// Guest memory as the VMM reaches it: vm-memory's mmap backend, recording
/// the pages written through it.
pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<WrittenPages>;
type GuestRegionMmap = vm_memory::GuestRegionMmap<WrittenPages>;

/// The pages of guest RAM the VMM wrote, one bit per page, shared by every
/// holder (the memory map and the hiding of pages; a clone is the same record).
#[derive(Clone, Debug, Default)]
pub struct WrittenPages(Arc<AtomicBitmap>);

impl<'a> WithBitmapSlice<'a> for WrittenPages {
    type S = RefSlice<'a, AtomicBitmap>;
}

impl Bitmap for WrittenPages {
    fn mark_dirty(&self, offset: usize, len: usize) {
        self.0.mark_dirty(offset, len);
    }

    fn dirty_at(&self, offset: usize) -> bool {
        self.0.dirty_at(offset)
    }

    fn slice_at(&self, offset: usize) -> RefSlice<'_, AtomicBitmap> {
        RefSlice::new(&self.0, offset)
    }
}

impl NewBitmap for WrittenPages {
    fn with_len(len: usize) -> Self {
        WrittenPages(Arc::new(AtomicBitmap::with_len(len)))
    }
}

impl WrittenPages {
    /// Records that the VMM wrote `len` bytes from guest-physical `gpa`
    /// other than through vm-memory.
    pub fn mark(&self, gpa: u64, len: u64) {
        self.0.mark_dirty(gpa as usize, len as usize);
    }

    /// The pages written since the last call, one bit a page as in KVM's
    /// dirty log ([`page_numbers`] names them); the record starts empty again.
    pub fn take(&self) -> Vec<u64> {
        self.0.get_and_reset()
    }
}

/// The pages a bitmap of one bit a page (bit `b` of word `w` is page
/// `64·w + b`, as in KVM's dirty log) names, in order.
pub fn page_numbers(words: &[u64]) -> Vec<u64> {
    let mut pages = Vec::new();
    for (n, &word) in words.iter().enumerate() {
        let mut rest = word;
        while rest != 0 {
            pages.push(n as u64 * 64 + u64::from(rest.trailing_zeros()));
            rest &= rest - 1;
        }
    }
    pages
}

/// What went wrong creating guest RAM.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The size is outside what the layout allows.
    #[error("Guest RAM of {size} bytes is not a multiple of 2 MiB between {min} and {max} bytes", min = MIN_RAM_SIZE, max = MAX_RAM_SIZE)]
    BadSize {
        /// The size asked for.
        size: u64,
    },
    /// memfd_create or ftruncate failed.
    #[error("Cannot create the memfd that backs guest RAM")]
    Memfd(#[source] std::io::Error),
    /// vm-memory refused the mapping.
    #[error("Cannot map guest RAM")]
    Map(#[source] MmapRegionError),
    /// The two views could not be mapped.
    #[error("Cannot map guest RAM")]
    Reserve(#[source] std::io::Error),
    /// vm-memory refused the region.
    #[error("Cannot build the guest memory map")]
    Region,
}

/// Guest RAM from guest-physical 0 up to `size`.
#[derive(Debug)]
pub struct GuestRam {
    memory: GuestMemoryMmap,
    written: WrittenPages,
    size: u64,
    /// Start of the reservation holding both views (VMM view first).
    base: usize,
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // SAFETY: `base` is the reservation of 2 × size bytes this GuestRam
        // mapped and owns; vm-memory's region was built over a raw pointer
        // and does not unmap it, and nothing borrows it past `self`.
        unsafe { libc::munmap(self.base as *mut libc::c_void, 2 * self.size as usize) };
    }
}

impl GuestRam {
    /// Checks that the layout allows `size` bytes of RAM.
    pub fn check_size(size: u64) -> Result<(), MemoryError> {
        if !(MIN_RAM_SIZE..=MAX_RAM_SIZE).contains(&size) || !size.is_multiple_of(2 << 20) {
            return Err(MemoryError::BadSize { size });
        }
        Ok(())
    }

    /// Creates `size` bytes of zeroed RAM backed by a fresh memfd.
    pub fn new(size: u64) -> Result<GuestRam, MemoryError> {
        GuestRam::check_size(size)?;
        // SAFETY: the name is a valid NUL-terminated string; the returned fd is checked.
        let fd = unsafe { libc::memfd_create(c"kmemvisor-guest-ram".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(MemoryError::Memfd(std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(size).map_err(MemoryError::Memfd)?;
        let len = size as usize;
        // SAFETY: a fresh anonymous reservation at an address the kernel picks; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(MemoryError::Reserve(std::io::Error::last_os_error()));
        }
        // Unmaps the reservation if a later step fails.
        let written = WrittenPages::with_len(len);
        let mut ram = GuestRam { memory: GuestMemoryMmap::default(), written: written.clone(), size, base: base as usize };
        for view in [0, len] {
            // SAFETY: both views replace parts of the reservation made above
            // (MAP_FIXED inside memory this function owns), each `len` bytes
            // of the memfd from offset 0.
            let mapped = unsafe {
                libc::mmap(
                    base.cast::<u8>().add(view).cast(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_NORESERVE,
                    file.as_raw_fd(),
                    0,
                )
            };
            if mapped == libc::MAP_FAILED {
                return Err(MemoryError::Reserve(std::io::Error::last_os_error()));
            }
        }
        // SAFETY: the VMM view is `len` readable and writable bytes that `ram`
        // owns and unmaps only when dropped, after vm-memory's region (a field of it).
        let region = unsafe {
            MmapRegionBuilder::new_with_bitmap(len, written)
                .with_raw_mmap_pointer(base.cast())
                .with_file_offset(FileOffset::new(file, 0))
                .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
                .with_mmap_flags(libc::MAP_SHARED | libc::MAP_NORESERVE)
                .build()
                .map_err(MemoryError::Map)?
        };
        let region = GuestRegionMmap::new(region, GuestAddress(0)).ok_or(MemoryError::Region)?;
        ram.memory = GuestMemoryMmap::from_regions(vec![region]).map_err(|_| MemoryError::Region)?;
        Ok(ram)
    }

    /// Host address of the VMM view (what vm-memory maps).
    pub fn vmm_view(&self) -> u64 {
        self.base as u64
    }

    /// Host address of the CPU view (what KVM's memslot maps).
    pub fn cpu_view(&self) -> u64 {
        (self.base + self.size as usize) as u64
    }

    /// The vm-memory view of guest RAM.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    /// The record of the pages the VMM wrote.
    pub fn written(&self) -> &WrittenPages {
        &self.written
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of 4 KiB frames.
    pub fn frames(&self) -> u64 {
        self.size / PAGE_SIZE
    }

    /// The page-aligned byte ranges of RAM that hold pages, in order: the
    /// rest are holes of the memfd, which read as zeros and were never
    /// written (dropping a view's mapping never makes a hole).
    pub fn populated(&self) -> std::io::Result<Vec<std::ops::Range<u64>>> {
        let Some(file) = self.memory.iter().next().and_then(|r| r.file_offset()) else {
            return Ok(std::iter::once(0..self.size).collect());
        };
        let fd = file.file().as_raw_fd();
        let mut ranges = Vec::new();
        let mut at: i64 = 0;
        let size = self.size as i64;
        while at < size {
            // SAFETY: lseek on the memfd this GuestRam owns; results are checked.
            let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
            if data < 0 {
                let e = std::io::Error::last_os_error();
                // ENXIO: no data at or after `at`.
                if e.raw_os_error() == Some(libc::ENXIO) {
                    break;
                }
                return Err(e);
            }
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
            if hole < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let (start, end) =
                (data as u64 / PAGE_SIZE * PAGE_SIZE, (hole as u64).min(self.size).div_ceil(PAGE_SIZE) * PAGE_SIZE);
            ranges.push(start..end);
            at = end as i64;
        }
        Ok(ranges)
    }
}

/// Drops the stage-2 mappings of the guest frame at `gpa` on every vCPU; the
/// frame's contents stay (they live in the memfd).
///
/// The VMM calls this after it changed or removed a guest page-table entry
/// that pointed at the frame, if the entry had been accessed (otherwise no
/// translation through it can be cached). Writing the entry does not reach KVM: with
/// shadow paging KVM trusts its copy of write-protected guest page tables,
/// and with EPT/NPT the vCPUs may hold the old translation in their TLBs. The
/// MMU notifier behind `MADV_DONTNEED` on the CPU view makes KVM drop every
/// mapping of the frame and flush the TLBs, so the next access walks the real
/// page tables again: a removed page faults, a remapped one reaches its new frame.
///
/// A frame outside RAM (a device window) has nothing to drop. A failure is
/// returned, never ignored: a vCPU could go on using the old translation,
/// so the caller stops the VM.
pub fn zap_frame(memory: &GuestMemoryMmap, gpa: u64) -> Result<(), ZapError> {
    zap_frames(memory, gpa, 1)
}

/// [`zap_frame`] of `pages` frames from `gpa` on, in one call: the part of
/// the range inside RAM.
pub fn zap_frames(memory: &GuestMemoryMmap, gpa: u64, pages: u64) -> Result<(), ZapError> {
    let frame = gpa - gpa % PAGE_SIZE;
    let Some(size) = memory.iter().next().map(|r| r.len()) else { return Ok(()) };
    let end = frame.saturating_add(pages.saturating_mul(PAGE_SIZE)).min(size);
    if let Some(host) = cpu_address(memory, frame).filter(|_| end > frame) {
        // SAFETY: `host` is the start of `end - frame` bytes of the CPU view
        // of guest RAM (the range ends inside RAM); MADV_DONTNEED only drops
        // the page-table entries of those pages (their memfd contents stay)
        // and cannot affect other memory.
        if unsafe { libc::madvise(host as *mut libc::c_void, (end - frame) as usize, libc::MADV_DONTNEED) } != 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(ZapError { frame, errno });
        }
    }
    Ok(())
}

/// A frame whose stage-2 mappings could not be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot drop the stage-2 mappings of guest-physical frame {frame:#x} ({}): a vCPU could keep a stale translation",
    std::io::Error::from_raw_os_error(*errno)
)]
pub struct ZapError {
    /// The frame.
    pub frame: u64,
    /// What madvise said.
    pub errno: i32,
}

/// Sets the `len` bytes of guest RAM from `gpa` (within one region) to
/// `byte` and records them written; false, writing nothing, if they are
/// not all RAM. A fill, not a copy from a page of that byte: half the
/// memory traffic, on paths (every fresh page of a get) where the caches
/// are cold after an exit.
pub fn fill(memory: &GuestMemoryMmap, gpa: u64, len: usize, byte: u8) -> bool {
    let Some(host) = host_range(memory, gpa, len) else { return false };
    // SAFETY: `host_range` checked that the `len` bytes at `host` lie in
    // guest RAM's mapping, alive as long as `memory`; they are plain memory
    // shared with the vCPUs and the device, which vm-memory's own writes
    // also store to with non-atomic copies.
    unsafe { std::ptr::write_bytes(host, byte, len) };
    mark_written(memory, gpa, len as u64);
    true
}

/// Records in RAM's [`WrittenPages`] that the VMM wrote `len` bytes from
/// guest-physical `gpa` past vm-memory (a fill, a page-table entry).
pub fn mark_written(memory: &GuestMemoryMmap, gpa: u64, len: u64) {
    if let Some(region) = memory.iter().next() {
        region.bitmap().mark_dirty(gpa as usize, len as usize);
    }
}

/// The VMM-view host address of the `len` bytes of guest RAM from
/// guest-physical `gpa`, if they all lie in RAM's one region (which
/// starts at guest-physical 0); taken from the region directly, past
/// vm-memory's iterator of slices, for the word and page accesses of every
/// get and release.
fn host_range(memory: &GuestMemoryMmap, gpa: u64, len: usize) -> Option<*mut u8> {
    let region = memory.iter().next()?;
    let end = gpa.checked_add(u64::try_from(len).ok()?)?;
    (region.start_addr() == GuestAddress(0) && end <= region.len()).then(|| region.as_ptr().wrapping_add(gpa as usize))
}

/// The 8-byte word of guest RAM at guest-physical `gpa` (8-aligned), to be
/// read and written atomically: a page-table entry, which vCPUs update with
/// locked read-modify-writes, or a word of a stack. Reached from RAM's one
/// region directly: vm-memory's `Bytes` calls take a word through their
/// iterator of slices and permission checks, and a page-table walk or a
/// stack's origin takes several words on every get and release. A write
/// through it is recorded by the caller ([`mark_written`]).
pub fn word(memory: &GuestMemoryMmap, gpa: u64) -> Option<&AtomicU64> {
    let host = host_range(memory, gpa, 8).filter(|_| gpa.is_multiple_of(8))?;
    // SAFETY: the region maps guest RAM from guest-physical 0 and starts on
    // a page boundary, so `host` is 8-byte aligned; its 8 bytes lie in the
    // mapping (`host_range`), which lives as long as `memory` is borrowed;
    // every access the VMM makes through the returned reference is atomic.
    Some(unsafe { AtomicU64::from_ptr(host.cast::<u64>()) })
}

/// The word at `gpa`, as [`word`] reaches it.
pub fn load_word(memory: &GuestMemoryMmap, gpa: u64) -> Option<u64> {
    word(memory, gpa).map(|w| w.load(Ordering::Relaxed))
}

/// The CPU-view host address of guest-physical `gpa`, for memory made by
/// [`GuestRam::new`] (the only memory with a memfd behind it); `None` for any
/// other memory or an address outside RAM.
pub fn cpu_address(memory: &GuestMemoryMmap, gpa: u64) -> Option<u64> {
    let region = memory.iter().next()?;
    region.file_offset()?;
    let size = region.len();
    if gpa >= size {
        return None;
    }
    Some(region.as_ptr() as u64 + size + gpa)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn bitmaps_name_pages_from_the_first_word_s_lowest_bit() {
        assert_eq!(page_numbers(&[0b1001, 0, 1 << 63, 2]), vec![0, 3, 191, 193]);
        assert_eq!(page_numbers(&[]), Vec::<u64>::new());
    }

    #[test]
    fn a_fill_sets_only_its_bytes_records_them_and_refuses_what_is_not_ram() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let memory = ram.memory();
        memory.write_slice(&[0xaa; 3 * PAGE_SIZE as usize], GuestAddress(4 * PAGE_SIZE)).expect("fill");
        let _ = ram.written().take();
        assert!(fill(memory, 5 * PAGE_SIZE - 8, PAGE_SIZE as usize, 0));
        assert!(fill(memory, 6 * PAGE_SIZE - 8, 4, 0x5c));
        let mut bytes = [0u8; 3 * PAGE_SIZE as usize];
        memory.read_slice(&mut bytes, GuestAddress(4 * PAGE_SIZE)).expect("read");
        let zeroed = PAGE_SIZE as usize - 8..2 * PAGE_SIZE as usize - 8;
        assert!(bytes[zeroed.clone()].iter().all(|&b| b == 0));
        assert_eq!(bytes[zeroed.end..zeroed.end + 5], [0x5c, 0x5c, 0x5c, 0x5c, 0xaa]);
        assert!(bytes[..zeroed.start].iter().chain(&bytes[zeroed.end + 4..]).all(|&b| b == 0xaa));
        assert_eq!(page_numbers(&ram.written().take()), vec![4, 5]);
        assert!(!fill(memory, MIN_RAM_SIZE - 8, 16, 0), "past the end of RAM");
        assert!(!fill(memory, MIN_RAM_SIZE, 1, 0));
        assert_eq!(page_numbers(&ram.written().take()), Vec::<u64>::new(), "nothing written");
    }

    #[test]
    fn every_vmm_write_is_recorded_once() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let memory = ram.memory();
        memory.write_obj(1u64, GuestAddress(3 * PAGE_SIZE + 8)).expect("write");
        memory.store(2u64, GuestAddress(5 * PAGE_SIZE), std::sync::atomic::Ordering::Relaxed).expect("store");
        memory.write_slice(&[7u8; 16], GuestAddress(8 * PAGE_SIZE - 8)).expect("write across a page boundary");
        let source = memory.get_slice(GuestAddress(0), 8).expect("source");
        source.copy_to_volatile_slice(memory.get_slice(GuestAddress(10 * PAGE_SIZE), 8).expect("destination"));
        ram.written().mark(12 * PAGE_SIZE, PAGE_SIZE);
        let _: u64 = memory.read_obj(GuestAddress(20 * PAGE_SIZE)).expect("a read is no write");
        assert_eq!(page_numbers(&ram.written().take()), vec![3, 5, 7, 8, 10, 12]);
        assert_eq!(page_numbers(&ram.written().take()), Vec::<u64>::new(), "taken: the record starts empty");
    }

    #[test]
    fn a_word_is_an_aligned_word_of_ram_and_nothing_else() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let memory = ram.memory();
        memory.write_obj(0x1122_3344_5566_7788u64, GuestAddress(MIN_RAM_SIZE - 8)).expect("last word");
        assert_eq!(load_word(memory, MIN_RAM_SIZE - 8), Some(0x1122_3344_5566_7788));
        word(memory, 0x1000).expect("word").store(7, Ordering::Relaxed);
        assert_eq!(memory.read_obj::<u64>(GuestAddress(0x1000)).expect("read"), 7, "the same bytes as vm-memory's");
        for gpa in [0x1004, MIN_RAM_SIZE, MIN_RAM_SIZE - 4, u64::MAX - 7] {
            assert_eq!(load_word(memory, gpa), None, "{gpa:#x}");
        }
        assert_eq!(
            page_numbers(&ram.written().take()),
            vec![(MIN_RAM_SIZE - 8) / PAGE_SIZE],
            "its writes are the caller's to record"
        );
    }

    #[test]
    fn ram_outside_the_layout_is_refused() {
        assert!(matches!(GuestRam::new(MIN_RAM_SIZE - (2 << 20)), Err(MemoryError::BadSize { .. })));
        assert!(matches!(GuestRam::new(MAX_RAM_SIZE + (2 << 20)), Err(MemoryError::BadSize { .. })));
        assert!(matches!(GuestRam::new(MIN_RAM_SIZE + 4096), Err(MemoryError::BadSize { .. })));
    }

    #[test]
    fn ram_starts_zeroed_and_keeps_what_is_written() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        assert_eq!(ram.frames(), MIN_RAM_SIZE / PAGE_SIZE);
        let at = GuestAddress(MIN_RAM_SIZE - 8);
        assert_eq!(ram.memory().read_obj::<u64>(at).expect("read"), 0);
        ram.memory().write_obj(0x1122_3344_5566_7788u64, at).expect("write");
        assert_eq!(ram.memory().read_obj::<u64>(at).expect("read"), 0x1122_3344_5566_7788);
        assert!(ram.memory().read_obj::<u64>(GuestAddress(MIN_RAM_SIZE)).is_err());
    }

    /// Whether this process still maps any page of the file with inode `ino`.
    fn mapped(ino: u64) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        maps.lines().any(|line| line.split_whitespace().nth(4) == Some(ino.to_string().as_str()))
    }

    /// Whether the host page-table entry of the page at `host` is present (bit 63 of its pagemap entry).
    fn present(host: u64) -> bool {
        use std::os::unix::fs::FileExt;
        let pagemap = File::open("/proc/self/pagemap").expect("pagemap");
        let mut entry = [0u8; 8];
        pagemap.read_exact_at(&mut entry, host / PAGE_SIZE * 8).expect("pagemap entry");
        u64::from_ne_bytes(entry) >> 63 == 1
    }

    #[test]
    fn zapping_a_frame_drops_its_cpu_view_mapping_only() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let cpu = cpu_address(ram.memory(), 0x40_0000).expect("in RAM");
        let next = cpu + PAGE_SIZE;
        // SAFETY: `cpu` and `next` are aligned pages of the CPU view, alive with `ram`.
        unsafe {
            std::ptr::write_volatile(cpu as *mut u64, 1);
            std::ptr::write_volatile(next as *mut u64, 2);
        }
        assert!(present(cpu) && present(next));
        assert_eq!(zap_frame(ram.memory(), 0x40_0ff8), Ok(()));
        assert!(!present(cpu), "the frame's mapping is gone");
        assert!(present(next), "the next frame's is not");
        assert_eq!(ram.memory().read_obj::<u64>(GuestAddress(0x40_0000)).expect("read"), 1);
    }

    #[test]
    fn dropping_ram_unmaps_both_views() {
        use std::os::unix::fs::MetadataExt;
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let region = ram.memory().iter().next().expect("one region");
        // The memfd is this RAM's own: no other mapping in the process shares its inode.
        let ino = region.file_offset().expect("memfd").file().metadata().expect("fstat").ino();
        assert!(mapped(ino));
        drop(ram);
        assert!(!mapped(ino), "no page of either view is left mapped");
    }

    #[test]
    fn zapping_a_frame_keeps_its_contents() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let at = GuestAddress(0x40_0010);
        ram.memory().write_obj(0xfeed_u64, at).expect("write");
        assert_eq!(zap_frame(ram.memory(), 0x40_0010), Ok(()));
        assert_eq!(ram.memory().read_obj::<u64>(at).expect("read"), 0xfeed);
        assert_eq!(zap_frame(ram.memory(), u64::MAX - 5), Ok(()), "outside RAM: nothing to drop");
    }

    #[test]
    fn both_views_hold_the_same_bytes() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        ram.memory().write_obj(0x5a5a_u64, GuestAddress(0x1238)).expect("write");
        let cpu = cpu_address(ram.memory(), 0x1238).expect("in RAM");
        assert_eq!(cpu, ram.cpu_view() + 0x1238);
        // SAFETY: `cpu` is 8 aligned bytes inside the CPU view, alive with `ram`.
        assert_eq!(unsafe { std::ptr::read_volatile(cpu as *const u64) }, 0x5a5a);
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(cpu as *mut u64, 0x7777) };
        assert_eq!(ram.memory().read_obj::<u64>(GuestAddress(0x1238)).expect("read"), 0x7777);
        assert_eq!(cpu_address(ram.memory(), MIN_RAM_SIZE), None);
        let anonymous = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("memory");
        assert_eq!(cpu_address(&anonymous, 0), None, "only memfd-backed RAM has a CPU view");
    }
}
