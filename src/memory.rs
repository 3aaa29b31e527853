//! Guest RAM: one memfd, mapped shared, seen through vm-memory.
//!
//! The memfd (rather than anonymous memory) is what later lets the VMM hide a
//! page from the guest while keeping its contents: a second mapping of the same
//! file stays reachable for the VMM's own copies and the DMA device while the
//! guest's mapping of the page is zapped (see ENVIRONMENT.md on userfaultfd).

use std::fs::File;
use std::os::fd::FromRawFd;

use kmemvisor_abi::layout::{MAX_RAM_SIZE, MIN_RAM_SIZE, PAGE_SIZE};
use vm_memory::mmap::{MmapRegionBuilder, MmapRegionError};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestRegionMmap};

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
    /// mmap failed.
    #[error("Cannot map guest RAM")]
    Map(#[source] MmapRegionError),
    /// vm-memory refused the region.
    #[error("Cannot build the guest memory map")]
    Region,
}

/// Guest RAM from guest-physical 0 up to `size`.
#[derive(Debug)]
pub struct GuestRam {
    memory: GuestMemoryMmap,
    size: u64,
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
        let region = MmapRegionBuilder::new(size as usize)
            .with_file_offset(FileOffset::new(file, 0))
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_SHARED | libc::MAP_NORESERVE)
            .build()
            .map_err(MemoryError::Map)?;
        let region = GuestRegionMmap::new(region, GuestAddress(0)).ok_or(MemoryError::Region)?;
        let memory = GuestMemoryMmap::from_regions(vec![region]).map_err(|_| MemoryError::Region)?;
        Ok(GuestRam { memory, size })
    }

    /// The vm-memory view of guest RAM.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of 4 KiB frames.
    pub fn frames(&self) -> u64 {
        self.size / PAGE_SIZE
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
/// MMU notifier behind `MADV_DONTNEED` makes KVM drop every mapping of the
/// frame and flush the TLBs, so the next access walks the real page tables
/// again: a removed page faults, a remapped one reaches its new frame.
pub fn zap_frame(memory: &GuestMemoryMmap, gpa: u64) {
    let gpa = gpa - gpa % PAGE_SIZE;
    if let Ok(host) = memory.get_host_address(GuestAddress(gpa)) {
        // SAFETY: `host` is the start of one page of guest RAM's own shared
        // mapping; MADV_DONTNEED only drops the page-table entries of that
        // page (its memfd contents stay) and cannot affect other memory.
        unsafe { libc::madvise(host.cast(), PAGE_SIZE as usize, libc::MADV_DONTNEED) };
    }
}

/// Parses a size such as `64M`, `64MiB`, `1G` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| format!("`{text}` is not a size (try 64M or 1G)"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("`{unit}` is not a size unit (use K, M or G)")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("64X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert!(parse_size("18446744073709551615G").is_err());
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

    #[test]
    fn zapping_a_frame_keeps_its_contents() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let at = GuestAddress(0x40_0010);
        ram.memory().write_obj(0xfeed_u64, at).expect("write");
        zap_frame(ram.memory(), 0x40_0010);
        assert_eq!(ram.memory().read_obj::<u64>(at).expect("read"), 0xfeed);
        zap_frame(ram.memory(), u64::MAX - 5);
    }
}
