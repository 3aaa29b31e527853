//! Loading guest modules: objects linked at a fixed slot of the module region
//! (`MODULES_GPA..IMAGE_GPA_END`), next to the main image.
//!
//! A module's program headers pass the same checks as the image's, against
//! the module region instead, and then two more before anything is copied: it
//! starts at a slot, and it shares no page with the main image or a module
//! loaded before it. After the copy, the module header at its first byte must
//! carry the module magic, this ABI's major version, and an entry function in
//! the module's own code. Each module is a loaded object of its own for
//! `pincode` and `unpincode`.

use std::fmt;
use std::io::Cursor;

use crate::memory_model::ram::GuestMemoryMmap;
use kmemvisor_abi::ModuleHeader;
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use kmemvisor_abi::module::MODULE_MAGIC;
use linux_loader::loader::{KernelLoader, elf::Elf};

use super::{Image, LoaderError, ObjectKind, Segment, executable, header_address, segments};

/// A module to load: its name and its ELF.
#[derive(Clone, PartialEq, Eq)]
pub struct ModuleElf {
    /// The bundled module's name, or the ELF's file name.
    pub name: String,
    /// The ELF.
    pub elf: Vec<u8>,
}

// The ELF is tens of KiB: a Debug of the VM configuration shows its size only.
impl fmt::Debug for ModuleElf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleElf").field("name", &self.name).field("elf_bytes", &self.elf.len()).finish()
    }
}

/// A loaded module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Its name, as in the boot-info module table.
    pub name: String,
    /// Guest-virtual address of its first byte, its header: a slot's address.
    pub base: u64,
    /// Bytes from `base` to the end of its last page.
    pub size: u64,
    /// Its entry function (from the module header), in its code.
    pub entry: u64,
    /// Its PT_LOAD segments.
    pub segments: Vec<Segment>,
}

/// Loads `module` into `memory` next to `image` and the modules `loaded`
/// before it, after checking that it fits; then checks its header.
pub fn load_module(
    memory: &GuestMemoryMmap,
    module: &ModuleElf,
    image: &Image,
    loaded: &[Module],
) -> Result<Module, LoaderError> {
    let (_, segments) = segments(&module.elf, ObjectKind::Module)?;
    let others = std::iter::once(("the main image".to_owned(), &image.segments))
        .chain(loaded.iter().map(|m| (format!("the module `{}` loaded before it", m.name), &m.segments)));
    for (other, theirs) in others {
        if let Some(s) = segments.iter().find(|s| theirs.iter().any(|t| s.overlaps(t))) {
            return Err(LoaderError::Overlap { vaddr: s.va, pages: s.pages, other });
        }
    }
    // `segments` refuses an ELF without a loadable segment.
    let first = segments.iter().min_by_key(|s| s.gpa).copied().ok_or(LoaderError::NotAnExecutable("no loadable segment"))?;
    if !(first.gpa - layout::MODULES_GPA).is_multiple_of(layout::MODULE_SLOT_SIZE) {
        return Err(LoaderError::BadSegment {
            vaddr: first.va,
            paddr: first.gpa,
            size: first.pages * PAGE_SIZE,
            problem: "does not start a module slot (layout::module_slot_gpa): the module header must open one",
        });
    }
    Elf::load(memory, None, &mut Cursor::new(&module.elf), None).map_err(LoaderError::Copy)?;

    let no_header = || LoaderError::NoModuleHeader { at: first.va };
    if !first.is_code() || first.pages * PAGE_SIZE < size_of::<ModuleHeader>() as u64 {
        return Err(no_header());
    }
    let entry = header_address(memory, first.gpa, MODULE_MAGIC, no_header)?;
    if !executable(&segments, entry, 1) {
        return Err(LoaderError::NotExecutable { what: "module entry", address: entry });
    }
    let end = segments.iter().map(Segment::end).max().unwrap_or(first.va);
    Ok(Module { name: module.name.clone(), base: first.va, size: end - first.va, entry, segments })
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::ABI_VERSION;
    use kmemvisor_abi::layout::{IMAGE_VA_OFFSET, module_slot_gpa, module_slot_va};
    use vm_memory::{Bytes, GuestAddress};

    use super::*;
    use crate::loader::tests::{RW, RX, elf};
    use crate::memory_model::ram::GuestRam;

    fn header(magic: [u8; 8], abi: u64, entry: u64) -> Vec<u8> {
        let mut h = magic.to_vec();
        h.extend_from_slice(&abi.to_le_bytes());
        h.extend_from_slice(&entry.to_le_bytes());
        h.resize(0x400, 0x90);
        h
    }

    /// A module at `slot`: a page of code (header, entry at +0x40) and two pages of data.
    fn module(name: &str, slot: u64) -> ModuleElf {
        let text = header(MODULE_MAGIC, ABI_VERSION, module_slot_va(slot) + 0x40);
        let gpa = module_slot_gpa(slot);
        ModuleElf { name: name.into(), elf: elf(&[(gpa, 0x400, RX, &text), (gpa + 0x1000, 0x1800, RW, &[])], 0) }
    }

    fn setup() -> (GuestRam, Image) {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let text = crate::loader::tests::header(ABI_VERSION, layout::IMAGE_VA + 0x100);
        let image = crate::loader::load(ram.memory(), &elf(&[(layout::IMAGE_GPA, 0x400, RX, &text)], layout::IMAGE_VA + 0x300))
            .expect("image");
        (ram, image)
    }

    #[test]
    fn a_module_loads_at_its_slot_with_its_own_segments() {
        let (ram, image) = setup();
        let first = load_module(ram.memory(), &module("a", 0), &image, &[]).expect("slot 0");
        assert_eq!((first.base, first.size, first.entry), (module_slot_va(0), 3 * PAGE_SIZE, module_slot_va(0) + 0x40));
        assert_eq!(first.segments.len(), 2);
        assert!(first.segments[0].is_code() && !first.segments[1].is_code());
        let second = load_module(ram.memory(), &module("b", 3), &image, std::slice::from_ref(&first)).expect("slot 3");
        assert_eq!(second.base, module_slot_va(3));
        let mut magic = [0u8; 8];
        ram.memory().read_slice(&mut magic, GuestAddress(module_slot_gpa(3))).expect("read");
        assert_eq!(magic, MODULE_MAGIC, "copied");
    }

    #[test]
    fn overlapping_modules_are_refused_before_anything_is_copied() {
        let (ram, image) = setup();
        let first = load_module(ram.memory(), &module("a", 1), &image, &[]).expect("slot 1");
        let mut clash = module("b", 1);
        clash.elf[0x40 + 56 * 2..].fill(0xab); // different contents, same pages
        let err = load_module(ram.memory(), &clash, &image, std::slice::from_ref(&first)).expect_err("same slot");
        assert!(err.to_string().contains("overlaps the module `a` loaded before it"), "{err}");
        let mut magic = [0u8; 8];
        ram.memory().read_slice(&mut magic, GuestAddress(module_slot_gpa(1))).expect("read");
        assert_eq!(magic, MODULE_MAGIC, "the first module is intact");
    }

    #[test]
    fn an_empty_module_segment_cannot_overwrite_the_image() {
        // p_memsz 0 with file contents: linux-loader would copy them over the
        // image's code after the overlap check, which sees no pages in it.
        let (ram, image) = setup();
        let mut bad = module("m", 0);
        let gpa = module_slot_gpa(0);
        let text = header(MODULE_MAGIC, ABI_VERSION, module_slot_va(0) + 0x40);
        bad.elf = elf(&[(gpa, 0x400, RX, &text), (layout::IMAGE_GPA, 0, RW, &[0xcc; 32])], 0);
        let err = load_module(ram.memory(), &bad, &image, &[]).expect_err("p_memsz 0").to_string();
        assert!(err.contains("more bytes in the file (p_filesz) than in memory (p_memsz)"), "{err}");
        let mut magic = [0u8; 8];
        ram.memory().read_slice(&mut magic, GuestAddress(layout::IMAGE_GPA)).expect("read");
        assert_eq!(magic, kmemvisor_abi::image::IMAGE_MAGIC, "the image is intact");
        let mut magic = [0u8; 8];
        ram.memory().read_slice(&mut magic, GuestAddress(gpa)).expect("read");
        assert_eq!(magic, [0; 8], "nothing of the module was copied");
    }

    #[test]
    fn modules_outside_their_region_or_off_a_slot_are_refused() {
        let (ram, image) = setup();
        let text = header(MODULE_MAGIC, ABI_VERSION, module_slot_va(0) + 0x1040);
        let cases: [(u64, &str); 3] = [
            (layout::IMAGE_GPA + 0x10_0000, "outside the module region"),
            (layout::IMAGE_GPA_END - 0x1000, "outside the module region"),
            (module_slot_gpa(0) + 0x1000, "does not start a module slot"),
        ];
        for (gpa, expected) in cases {
            let bytes = elf(&[(gpa, if gpa == layout::IMAGE_GPA_END - 0x1000 { 0x2000 } else { 0x400 }, RX, &text)], 0);
            let err = load_module(ram.memory(), &ModuleElf { name: "m".into(), elf: bytes }, &image, &[]).expect_err(expected);
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn module_headers_are_checked() {
        let (ram, image) = setup();
        let va = module_slot_va(2);
        let cases = [
            (header(*b"KMEMVSR\0", ABI_VERSION, va + 0x40), "no kmemvisor module header"),
            (header(MODULE_MAGIC, 9 << 16, va + 0x40), "ABI 9.0"),
            (header(MODULE_MAGIC, ABI_VERSION, va + 0x1000), "module entry"),
            (header(MODULE_MAGIC, ABI_VERSION, 0), "module entry"),
        ];
        for (text, expected) in cases {
            let gpa = va - IMAGE_VA_OFFSET;
            let module = ModuleElf { name: "m".into(), elf: elf(&[(gpa, 0x400, RX, &text), (gpa + 0x1000, 8, RW, &[])], 0) };
            let err = load_module(ram.memory(), &module, &image, &[]).expect_err(expected);
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}
