//! Loading a guest ELF image, and the guest modules next to it ([`module`]).
//!
//! linux-loader copies the PT_LOAD segments to their physical addresses; before
//! that, this module checks every program header against the layout (a guest
//! image may only occupy the main image's region, `IMAGE_GPA..MODULES_GPA`, a
//! module only the module region above it, each linked at
//! `IMAGE_VA_OFFSET + gpa`, page-aligned, without overlaps), and afterwards it
//! checks the image header the firmware puts at [`layout::IMAGE_VA`].

pub mod module;

use std::io::Cursor;

use crate::memory_model::ram::GuestMemoryMmap;
use kmemvisor_abi::image::{IMAGE_MAGIC, VECTOR_COUNT, VECTOR_STRIDE, header_fields};
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use kmemvisor_abi::{ABI_MAJOR, ABI_VERSION};
use linux_loader::elf::{Elf64_Ehdr, Elf64_Phdr, PF_W, PF_X, PT_LOAD};
use linux_loader::loader::{KernelLoader, elf::Elf};
use vm_memory::{ByteValued, Bytes, GuestAddress};

use crate::memory_model::paging::PteFlags;

pub use module::{Module, ModuleElf, load_module};

const ELFCLASS64: u8 = 2;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;

/// Why a guest image cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The file is not a 64-bit x86 executable ELF.
    #[error("Not a static x86-64 ELF executable: {0}")]
    NotAnExecutable(&'static str),
    /// A program header breaks the layout.
    #[error("Segment at {vaddr:#x} (physical {paddr:#x}, {size} bytes) {problem}")]
    BadSegment {
        /// The segment's virtual address.
        vaddr: u64,
        /// The segment's physical address.
        paddr: u64,
        /// The segment's size in memory.
        size: u64,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// linux-loader could not copy the image.
    #[error("Cannot copy the image into guest memory")]
    Copy(#[source] linux_loader::loader::Error),
    /// The image lacks the firmware's header.
    #[error("The image has no kmemvisor header at {at:#x}: it was not linked with the kmemvisor firmware")]
    NoHeader {
        /// Where the header should be.
        at: u64,
    },
    /// The image was built against another ABI major version.
    #[error("The image was built for ABI {found_major}.{found_minor}; this kmemvisor speaks ABI {ABI_MAJOR}.x")]
    AbiMismatch {
        /// Major version in the image.
        found_major: u64,
        /// Minor version in the image.
        found_minor: u64,
    },
    /// The entry point or the vectors are not in executable code.
    #[error("The {what} at {address:#x} is not in an executable segment")]
    NotExecutable {
        /// `entry point`, `exception vectors` or `module entry`.
        what: &'static str,
        /// The address.
        address: u64,
    },
    /// A module shares pages with the main image or another module.
    #[error("Segment at {vaddr:#x} ({pages} pages) overlaps {other}: each module needs a slot of its own")]
    Overlap {
        /// The segment's virtual address.
        vaddr: u64,
        /// Its pages.
        pages: u64,
        /// `the main image` or ``the module `NAME` loaded before it``.
        other: String,
    },
    /// The module lacks the module runtime's header.
    #[error("The module has no kmemvisor module header at {at:#x}: it was not linked with the kmemvisor module runtime")]
    NoModuleHeader {
        /// Where the header should be.
        at: u64,
    },
}

/// What an ELF is loaded as, which decides where its segments may lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// The main image: `IMAGE_GPA..MODULES_GPA`.
    Image,
    /// A guest module: `MODULES_GPA..IMAGE_GPA_END`.
    Module,
}

impl ObjectKind {
    /// The guest-physical range its segments must lie in.
    fn region(self) -> (u64, u64) {
        match self {
            ObjectKind::Image => (layout::IMAGE_GPA, layout::MODULES_GPA),
            ObjectKind::Module => (layout::MODULES_GPA, layout::IMAGE_GPA_END),
        }
    }

    /// What a segment outside that range is told.
    fn outside(self) -> &'static str {
        match self {
            ObjectKind::Image => {
                "lies outside the main image's region (link with the kmemvisor firmware's linker script; \
                 a module goes with --module)"
            }
            ObjectKind::Module => {
                "lies outside the module region (link with a kmemvisor module linker script, kmemvisor-module-slotN.ld)"
            }
        }
    }
}

/// A loaded segment, to be mapped page by page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First guest-virtual address (page aligned).
    pub va: u64,
    /// First guest-physical address (page aligned).
    pub gpa: u64,
    /// Pages it covers.
    pub pages: u64,
    /// Page-table flags from the ELF permissions.
    pub flags: PteFlags,
}

impl Segment {
    /// The first address after it.
    pub fn end(&self) -> u64 {
        self.va + self.pages * PAGE_SIZE
    }

    /// Whether `va` lies in it.
    pub fn contains(&self, va: u64) -> bool {
        va >= self.va && va < self.end()
    }

    /// Whether it is code: executable.
    pub fn is_code(&self) -> bool {
        !self.flags.contains(PteFlags::NO_EXECUTE)
    }

    /// Whether it shares a page with `other`.
    fn overlaps(&self, other: &Segment) -> bool {
        self.gpa < other.gpa + other.pages * PAGE_SIZE && other.gpa < self.gpa + self.pages * PAGE_SIZE
    }
}

/// Whether `[va, va + len)` lies in one executable segment of `segments`.
fn executable(segments: &[Segment], va: u64, len: u64) -> bool {
    segments.iter().any(|s| s.is_code() && va >= s.va && va.saturating_add(len) <= s.end())
}

/// A loaded image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The ELF entry point (vCPU 0 starts here).
    pub entry: u64,
    /// The address of the firmware's exception vector 0.
    pub vectors: u64,
    /// The PT_LOAD segments.
    pub segments: Vec<Segment>,
}

fn read<T: ByteValued + Default>(elf: &[u8], offset: u64) -> Option<T> {
    let mut value = T::default();
    let start = usize::try_from(offset).ok()?;
    let bytes = elf.get(start..start.checked_add(std::mem::size_of::<T>())?)?;
    value.as_mut_slice().copy_from_slice(bytes);
    Some(value)
}

/// Checks the program headers of `elf`, loaded as `kind`, and returns its segments.
pub fn segments(elf: &[u8], kind: ObjectKind) -> Result<(Elf64_Ehdr, Vec<Segment>), LoaderError> {
    let ehdr: Elf64_Ehdr = read(elf, 0).ok_or(LoaderError::NotAnExecutable("shorter than an ELF header"))?;
    if ehdr.e_ident[..4] != *b"\x7fELF" {
        return Err(LoaderError::NotAnExecutable("no ELF magic"));
    }
    if ehdr.e_ident[4] != ELFCLASS64 || ehdr.e_machine != EM_X86_64 {
        return Err(LoaderError::NotAnExecutable("not a 64-bit x86 ELF"));
    }
    if ehdr.e_type != ET_EXEC {
        return Err(LoaderError::NotAnExecutable("not ET_EXEC (link it static, not PIE)"));
    }
    if usize::from(ehdr.e_phentsize) != std::mem::size_of::<Elf64_Phdr>() {
        return Err(LoaderError::NotAnExecutable("unexpected program header size"));
    }
    let mut segments: Vec<Segment> = Vec::new();
    for i in 0..u64::from(ehdr.e_phnum) {
        let offset = ehdr.e_phoff.checked_add(i * std::mem::size_of::<Elf64_Phdr>() as u64);
        let phdr: Elf64_Phdr = offset
            .and_then(|o| read(elf, o))
            .ok_or(LoaderError::NotAnExecutable("program headers beyond the end of the file"))?;
        // linux-loader reads nothing but PT_LOAD and PT_NOTE headers, and of a
        // PT_NOTE only reads the file: only PT_LOAD segments write guest memory.
        if phdr.p_type != PT_LOAD {
            continue;
        }
        // Every PT_LOAD is checked, even an empty one: linux-loader copies
        // `p_filesz` bytes from `p_offset` to `p_paddr` whatever `p_memsz` says,
        // so a segment that skipped these checks could write anywhere.
        let bad = |problem| LoaderError::BadSegment { vaddr: phdr.p_vaddr, paddr: phdr.p_paddr, size: phdr.p_memsz, problem };
        if phdr.p_filesz > phdr.p_memsz {
            return Err(bad("has more bytes in the file (p_filesz) than in memory (p_memsz)"));
        }
        if phdr.p_offset.checked_add(phdr.p_filesz).is_none_or(|end| end > elf.len() as u64) {
            return Err(bad("has file contents beyond the end of the file"));
        }
        // With p_filesz <= p_memsz, the bytes copied lie in `p_paddr..end`.
        let end = phdr.p_paddr.checked_add(phdr.p_memsz).ok_or(bad("wraps around"))?;
        let (region_start, region_end) = kind.region();
        if phdr.p_paddr < region_start || end > region_end {
            return Err(bad(kind.outside()));
        }
        if phdr.p_vaddr != phdr.p_paddr.wrapping_add(layout::IMAGE_VA_OFFSET) {
            return Err(bad("is not linked at IMAGE_VA_OFFSET + its physical address"));
        }
        if !phdr.p_paddr.is_multiple_of(PAGE_SIZE) {
            return Err(bad("does not start on a page boundary"));
        }
        if phdr.p_memsz == 0 {
            // Checked above to copy nothing (p_filesz is 0 too) and to lie in
            // the region; it occupies no page, so it is no segment to map.
            continue;
        }
        let pages = end.div_ceil(PAGE_SIZE) - phdr.p_paddr / PAGE_SIZE;
        let mut flags = PteFlags::USER;
        if phdr.p_flags & PF_W != 0 {
            flags = flags | PteFlags::WRITABLE;
        }
        if phdr.p_flags & PF_X == 0 {
            flags = flags | PteFlags::NO_EXECUTE;
        }
        let segment = Segment { va: phdr.p_vaddr, gpa: phdr.p_paddr, pages, flags };
        if segments.iter().any(|s| s.overlaps(&segment)) {
            return Err(bad("shares pages with another segment"));
        }
        segments.push(segment);
    }
    if segments.is_empty() {
        return Err(LoaderError::NotAnExecutable("no loadable segment"));
    }
    Ok((ehdr, segments))
}

/// The address field of the header at `gpa` (an image's vectors, a module's
/// entry) once its magic is `magic` and its ABI major is this kmemvisor's;
/// `missing()` when there is no such header.
fn header_address(
    memory: &GuestMemoryMmap,
    gpa: u64,
    magic: [u8; 8],
    missing: impl Fn() -> LoaderError,
) -> Result<u64, LoaderError> {
    let mut raw = [0u8; 24];
    memory.read_slice(&mut raw, GuestAddress(gpa)).map_err(|_| missing())?;
    let (found, abi_version, address) = header_fields(&raw);
    if found != magic {
        return Err(missing());
    }
    if abi_version >> 16 != ABI_VERSION >> 16 {
        return Err(LoaderError::AbiMismatch { found_major: abi_version >> 16, found_minor: abi_version & 0xffff });
    }
    Ok(address)
}

/// Loads `elf` into `memory` and checks its header.
pub fn load(memory: &GuestMemoryMmap, elf: &[u8]) -> Result<Image, LoaderError> {
    let (ehdr, segments) = segments(elf, ObjectKind::Image)?;
    Elf::load(memory, None, &mut Cursor::new(elf), None).map_err(LoaderError::Copy)?;
    let no_header = || LoaderError::NoHeader { at: layout::IMAGE_VA };
    if !segments.iter().any(|s| s.va == layout::IMAGE_VA) {
        return Err(no_header());
    }
    let vectors = header_address(memory, layout::IMAGE_GPA, IMAGE_MAGIC, no_header)?;
    let image = Image { entry: ehdr.e_entry, vectors, segments };
    if !executable(&image.segments, image.entry, 1) {
        return Err(LoaderError::NotExecutable { what: "entry point", address: image.entry });
    }
    if !executable(&image.segments, image.vectors, VECTOR_COUNT as u64 * VECTOR_STRIDE) {
        return Err(LoaderError::NotExecutable { what: "exception vectors", address: image.vectors });
    }
    Ok(image)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::memory_model::ram::GuestRam;

    /// A minimal ELF: header, one program header per segment, then contents.
    pub(crate) fn elf(segments: &[(u64, u64, u32, &[u8])], entry: u64) -> Vec<u8> {
        let phoff = 64u64;
        let data_start = phoff + 56 * segments.len() as u64;
        let mut ehdr = Elf64_Ehdr::default();
        ehdr.e_ident[..4].copy_from_slice(b"\x7fELF");
        ehdr.e_ident[4] = ELFCLASS64;
        ehdr.e_ident[5] = 1;
        ehdr.e_type = ET_EXEC;
        ehdr.e_machine = EM_X86_64;
        ehdr.e_entry = entry;
        ehdr.e_phoff = phoff;
        ehdr.e_ehsize = 64;
        ehdr.e_phentsize = 56;
        ehdr.e_phnum = segments.len() as u16;
        let mut out = ehdr.as_slice().to_vec();
        let mut offset = data_start;
        for &(paddr, memsz, flags, data) in segments {
            let phdr = Elf64_Phdr {
                p_type: PT_LOAD,
                p_flags: flags,
                p_offset: offset,
                p_vaddr: paddr.wrapping_add(layout::IMAGE_VA_OFFSET),
                p_paddr: paddr,
                p_filesz: data.len() as u64,
                p_memsz: memsz,
                p_align: PAGE_SIZE,
            };
            out.extend_from_slice(phdr.as_slice());
            offset += data.len() as u64;
        }
        for &(_, _, _, data) in segments {
            out.extend_from_slice(data);
        }
        out
    }

    pub(crate) fn header(abi: u64, vectors: u64) -> Vec<u8> {
        let mut h = IMAGE_MAGIC.to_vec();
        h.extend_from_slice(&abi.to_le_bytes());
        h.extend_from_slice(&vectors.to_le_bytes());
        h.resize(0x400, 0x90);
        h
    }

    pub(crate) const RX: u32 = 5;
    pub(crate) const RW: u32 = 6;

    #[test]
    fn a_good_image_loads_with_flags_from_its_permissions() {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let text = header(ABI_VERSION, layout::IMAGE_VA + 0x100);
        let data = [7u8; 16];
        let bytes = elf(
            &[(layout::IMAGE_GPA, 0x400, RX, &text), (layout::IMAGE_GPA + 0x1000, 0x2800, RW, &data)],
            layout::IMAGE_VA + 0x300,
        );
        let image = load(ram.memory(), &bytes).expect("loads");
        assert_eq!(image.entry, layout::IMAGE_VA + 0x300);
        assert_eq!(image.vectors, layout::IMAGE_VA + 0x100);
        assert_eq!(image.segments.len(), 2);
        assert!(!image.segments[0].flags.contains(PteFlags::NO_EXECUTE));
        assert!(!image.segments[0].flags.contains(PteFlags::WRITABLE));
        assert!(image.segments[1].flags.contains(PteFlags::WRITABLE | PteFlags::NO_EXECUTE));
        assert_eq!(image.segments[1].pages, 3);
        let mut copied = [0u8; 16];
        ram.memory().read_slice(&mut copied, GuestAddress(layout::IMAGE_GPA + 0x1000)).expect("read");
        assert_eq!(copied, data);
    }

    #[test]
    fn images_that_break_the_layout_are_refused_before_anything_is_copied() {
        let text = header(ABI_VERSION, layout::IMAGE_VA + 0x100);
        type Segments<'a> = &'a [(u64, u64, u32, &'a [u8])];
        let cases: [(Segments, &str); 5] = [
            (&[(0x1000, 0x400, RX, &text)], "outside the main image's region"),
            (&[(layout::MODULES_GPA - 0x1000, 0x2000, RX, &text)], "outside the main image's region"),
            (&[(layout::MODULES_GPA, 0x400, RX, &text)], "a module goes with --module"),
            (&[(layout::IMAGE_GPA + 0x10, 0x400, RX, &text)], "page boundary"),
            (&[(layout::IMAGE_GPA, 0x1400, RX, &text), (layout::IMAGE_GPA + 0x1000, 0x10, RW, &[])], "shares pages"),
        ];
        for (segments, expected) in cases {
            let err = super::segments(&elf(segments, layout::IMAGE_VA), ObjectKind::Image).expect_err(expected).to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    /// Sets `p_memsz` of program header `index` in `bytes` (as built by [`elf`]),
    /// which the builder cannot make smaller than the file contents.
    pub(crate) fn set_memsz(bytes: &mut [u8], index: usize, memsz: u64) {
        let at = 64 + 56 * index + std::mem::offset_of!(Elf64_Phdr, p_memsz);
        bytes[at..at + 8].copy_from_slice(&memsz.to_le_bytes());
    }

    /// Sets `p_offset` of program header `index` in `bytes`.
    fn set_offset(bytes: &mut [u8], index: usize, offset: u64) {
        let at = 64 + 56 * index + std::mem::offset_of!(Elf64_Phdr, p_offset);
        bytes[at..at + 8].copy_from_slice(&offset.to_le_bytes());
    }

    #[test]
    fn an_empty_segment_with_file_contents_is_refused_and_copies_nothing() {
        // linux-loader copies p_filesz bytes even when p_memsz is 0: such a
        // segment aimed at the vCPU pages must be refused before the copy.
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let text = header(ABI_VERSION, layout::IMAGE_VA + 0x100);
        let payload = [0xccu8; 64];
        for target in [layout::VCPU_PAGES_GPA, layout::IMAGE_GPA + 0x1000, layout::MODULES_GPA] {
            let mut bytes = elf(&[(layout::IMAGE_GPA, 0x400, RX, &text), (target, 0, RW, &payload)], layout::IMAGE_VA + 0x300);
            let err = load(ram.memory(), &bytes).expect_err("p_filesz > p_memsz").to_string();
            assert!(err.contains("more bytes in the file (p_filesz) than in memory (p_memsz)"), "{err}");
            assert!(
                err.starts_with(&format!("Segment at {:#x} (physical {target:#x}, 0 bytes)", target + layout::IMAGE_VA_OFFSET)),
                "{err}"
            );
            // A p_memsz below p_filesz is refused the same, not only 0.
            set_memsz(&mut bytes, 1, 63);
            let err = segments(&bytes, ObjectKind::Image).expect_err("p_filesz > p_memsz").to_string();
            assert!(err.contains("more bytes in the file (p_filesz) than in memory (p_memsz)"), "{err}");
            let mut copied = [0u8; 64];
            ram.memory().read_slice(&mut copied, GuestAddress(target)).expect("read");
            assert_eq!(copied, [0u8; 64], "nothing copied to {target:#x}");
        }
    }

    #[test]
    fn empty_segments_are_checked_like_the_others_but_map_no_page() {
        let text = header(ABI_VERSION, layout::IMAGE_VA + 0x100);
        let inside = elf(&[(layout::IMAGE_GPA, 0x400, RX, &text), (layout::IMAGE_GPA + 0x2000, 0, RW, &[])], layout::IMAGE_VA);
        let (_, found) = segments(&inside, ObjectKind::Image).expect("an empty segment in the region is harmless");
        assert_eq!(found.len(), 1, "the empty segment maps no page");
        let outside = elf(&[(layout::IMAGE_GPA, 0x400, RX, &text), (layout::VCPU_PAGES_GPA, 0, RW, &[])], layout::IMAGE_VA);
        let err = segments(&outside, ObjectKind::Image).expect_err("outside").to_string();
        assert!(err.contains("outside the main image's region"), "{err}");
        let mut beyond = inside.clone();
        set_offset(&mut beyond, 1, inside.len() as u64 + 1);
        let err = segments(&beyond, ObjectKind::Image).expect_err("beyond the file").to_string();
        assert!(err.contains("file contents beyond the end of the file"), "{err}");
        let mut wraps = inside;
        set_offset(&mut wraps, 0, u64::MAX - 8);
        let err = segments(&wraps, ObjectKind::Image).expect_err("offset wraps").to_string();
        assert!(err.contains("file contents beyond the end of the file"), "{err}");
    }

    #[test]
    fn headers_and_entry_points_are_checked() {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let mut no_magic = header(ABI_VERSION, layout::IMAGE_VA + 0x100);
        no_magic[0] = b'X';
        let cases = [
            (no_magic, layout::IMAGE_VA + 0x300, "no kmemvisor header"),
            (header(2 << 16, layout::IMAGE_VA + 0x100), layout::IMAGE_VA + 0x300, "ABI 2.0"),
            (header(ABI_VERSION, layout::IMAGE_VA + 0x100), layout::IMAGE_VA + 0x2000, "entry point"),
            (header(ABI_VERSION, layout::IMAGE_VA + 0xf00), layout::IMAGE_VA + 0x300, "exception vectors"),
        ];
        for (text, entry, expected) in cases {
            let bytes = elf(&[(layout::IMAGE_GPA, 0x400, RX, &text)], entry);
            let err = load(ram.memory(), &bytes).expect_err(expected).to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn garbage_is_not_an_executable() {
        for bytes in [&b""[..], b"\x7fELF", &[0u8; 64], &[0xffu8; 200]] {
            assert!(matches!(segments(bytes, ObjectKind::Image), Err(LoaderError::NotAnExecutable(_))));
        }
        let mut truncated = elf(&[(layout::IMAGE_GPA, 0x400, RX, &[1, 2, 3])], layout::IMAGE_VA);
        truncated.truncate(100);
        assert!(segments(&truncated, ObjectKind::Module).is_err());
    }
}
