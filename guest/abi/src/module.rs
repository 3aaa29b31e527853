//! Guest modules: objects loaded next to the main image (`kmemvisor run GUEST
//! --module NAME`), each with a module header at its first byte and a row in
//! the boot-info page's module table.
//!
//! A module is linked at a fixed slot of the module region
//! ([`layout::module_slot_va`](crate::layout::module_slot_va)), so the VMM
//! copies it without relocating anything. It has no `_start` and no exception
//! vectors: the main image calls its one entry function, an
//! `extern "C" fn(u64) -> u64`, whose address the header gives. `pincode` and
//! `unpincode` work per loaded object: the main image or one module.

/// The bytes that open every kmemvisor guest module.
pub const MODULE_MAGIC: [u8; 8] = *b"KMVMODL\0";
/// Most bytes of a module's name in the module table; a longer name is cut
/// at a character boundary.
pub const MODULE_NAME_MAX: usize = 32;

/// The module header; the module runtime's `header.s` must match it byte for byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleHeader {
    /// [`MODULE_MAGIC`].
    pub magic: [u8; 8],
    /// The [`ABI_VERSION`](crate::ABI_VERSION) the module was built against.
    pub abi_version: u64,
    /// Guest-virtual address of the module's entry function,
    /// `extern "C" fn(u64) -> u64`.
    pub entry: u64,
}

const _: () = assert!(core::mem::offset_of!(ModuleHeader, magic) == 0);
const _: () = assert!(core::mem::offset_of!(ModuleHeader, abi_version) == 8);
const _: () = assert!(core::mem::offset_of!(ModuleHeader, entry) == 16);
const _: () = assert!(core::mem::size_of::<ModuleHeader>() == 24);

impl ModuleHeader {
    /// Parses the header from the first bytes of a module.
    pub fn parse(bytes: &[u8; 24]) -> ModuleHeader {
        let (magic, abi_version, entry) = crate::image::header_fields(bytes);
        ModuleHeader { magic, abi_version, entry }
    }
}

/// One row of the boot-info page's module table: a loaded module.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Guest-virtual address of the module's first byte (its header).
    pub base: u64,
    /// Bytes from `base` to the end of the module's last page.
    pub size: u64,
    /// Guest-virtual address of its entry function (the header's `entry`).
    pub entry: u64,
    /// Bytes of `name` in use.
    pub name_len: u64,
    /// The module's name (UTF-8): the bundled name or the ELF's file name.
    pub name: [u8; MODULE_NAME_MAX],
}

const _: () = assert!(core::mem::offset_of!(ModuleInfo, base) == 0);
const _: () = assert!(core::mem::offset_of!(ModuleInfo, size) == 8);
const _: () = assert!(core::mem::offset_of!(ModuleInfo, entry) == 16);
const _: () = assert!(core::mem::offset_of!(ModuleInfo, name_len) == 24);
const _: () = assert!(core::mem::offset_of!(ModuleInfo, name) == 32);
const _: () = assert!(core::mem::size_of::<ModuleInfo>() == 64);

impl ModuleInfo {
    /// The row of a module, with `name` cut to [`MODULE_NAME_MAX`] bytes at a
    /// character boundary.
    pub fn new(name: &str, base: u64, size: u64, entry: u64) -> ModuleInfo {
        let mut len = name.len().min(MODULE_NAME_MAX);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0u8; MODULE_NAME_MAX];
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        ModuleInfo { base, size, entry, name_len: len as u64, name: bytes }
    }

    /// The name; a length beyond the buffer is clamped, and bytes from the
    /// first invalid UTF-8 sequence on are dropped.
    pub fn name(&self) -> &str {
        let len = usize::try_from(self.name_len).unwrap_or(usize::MAX).min(MODULE_NAME_MAX);
        let bytes = &self.name[..len];
        match core::str::from_utf8(bytes) {
            Ok(name) => name,
            // The prefix up to valid_up_to() is valid UTF-8 by definition.
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// The row as it lies in the boot-info page (little-endian).
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        for (i, word) in [self.base, self.size, self.entry, self.name_len].into_iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        out[32..].copy_from_slice(&self.name);
        out
    }
}

/// The values the module linker script's `@NAME@` placeholders stand for,
/// for a module linked at `slot`: shared by the module runtime's scripts and
/// the C SDK's (filled with [`fill_template`](crate::image::fill_template)).
pub const fn linker_script_values(slot: u64) -> [(&'static str, u64); 7] {
    use crate::layout;
    [
        ("SLOT", slot),
        ("PAGE_SIZE", layout::PAGE_SIZE),
        ("IMAGE_VA_OFFSET", layout::IMAGE_VA_OFFSET),
        ("MODULE_VA", layout::module_slot_va(slot)),
        ("MODULE_GPA", layout::module_slot_gpa(slot)),
        ("MODULES_VA_END", layout::IMAGE_VA_OFFSET + layout::IMAGE_GPA_END),
        ("HEADER_SIZE", core::mem::size_of::<ModuleHeader>() as u64),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_little_endian_fields() {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&MODULE_MAGIC);
        bytes[8..16].copy_from_slice(&0x0001_0003u64.to_le_bytes());
        bytes[16..24].copy_from_slice(&0xffff_ffff_8080_0040u64.to_le_bytes());
        let header = ModuleHeader::parse(&bytes);
        assert_eq!(header, ModuleHeader { magic: MODULE_MAGIC, abi_version: 0x0001_0003, entry: 0xffff_ffff_8080_0040 });
    }

    #[test]
    fn names_are_cut_at_a_character_boundary() {
        assert_eq!(ModuleInfo::new("mod-sample", 1, 2, 3).name(), "mod-sample");
        let long = "éééééééééééééééééééé"; // 40 bytes; byte 32 starts a character
        assert_eq!(ModuleInfo::new(long, 0, 0, 0).name(), &long[..32]);
        let odd = "xéééééééééééééééééééé"; // byte 32 falls inside a character
        let info = ModuleInfo::new(odd, 0, 0, 0);
        assert_eq!((info.name_len, info.name()), (31, &odd[..31]));
    }

    #[test]
    fn to_bytes_follows_the_field_offsets() {
        let info = ModuleInfo::new("m", 0x10, 0x20, 0x30);
        let bytes = info.to_bytes();
        assert_eq!(bytes[0], 0x10);
        assert_eq!(bytes[8], 0x20);
        assert_eq!(bytes[16], 0x30);
        assert_eq!(bytes[24], 1);
        assert_eq!(bytes[32], b'm');
        let mut bad = info;
        bad.name_len = u64::MAX;
        bad.name[1] = 0xff;
        assert_eq!(bad.name(), "m", "clamped, cut at invalid UTF-8");
    }
}
