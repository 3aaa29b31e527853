//! The header that marks a guest image as built against the guest firmware.
//!
//! The firmware's linker script places it at the first byte of the image,
//! [`layout::IMAGE_VA`](crate::layout::IMAGE_VA). The VMM checks the magic and
//! the ABI major version before it runs anything, and takes from it where the
//! firmware's exception vectors are, so that it can build the IDT.

/// The bytes that open every kmemvisor guest image.
pub const IMAGE_MAGIC: [u8; 8] = *b"KMEMVSR\0";
/// Number of vectors the firmware provides: the CPU's exceptions 0–31 and
/// [`INTERRUPT_VECTOR`].
pub const VECTOR_COUNT: usize = 33;
/// The vector of device interrupts (the DMA engine's completions): the
/// firmware's stub calls the guest library's handler, then
/// `interrupt_return`, then `iretq`.
pub const INTERRUPT_VECTOR: u64 = 32;
/// Bytes between the entries of consecutive vectors.
pub const VECTOR_STRIDE: u64 = 16;

/// The image header; the firmware's `header.s` must match it byte for byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// [`IMAGE_MAGIC`].
    pub magic: [u8; 8],
    /// The [`ABI_VERSION`](crate::ABI_VERSION) the image was built against.
    pub abi_version: u64,
    /// Guest-virtual address of vector 0's entry; vector `n` is at
    /// `vectors + n * VECTOR_STRIDE`.
    pub vectors: u64,
}

const _: () = assert!(core::mem::offset_of!(ImageHeader, magic) == 0);
const _: () = assert!(core::mem::offset_of!(ImageHeader, abi_version) == 8);
const _: () = assert!(core::mem::offset_of!(ImageHeader, vectors) == 16);
const _: () = assert!(core::mem::size_of::<ImageHeader>() == 24);

/// The three fields that image and module headers share the layout of: the
/// magic, the ABI version, and an address (the vectors, or the entry).
pub fn header_fields(bytes: &[u8; 24]) -> ([u8; 8], u64, u64) {
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&bytes[..8]);
    (magic, word(8), word(16))
}

impl ImageHeader {
    /// Parses the header from the first bytes of an image.
    pub fn parse(bytes: &[u8; 24]) -> ImageHeader {
        let (magic, abi_version, vectors) = header_fields(bytes);
        ImageHeader { magic, abi_version, vectors }
    }
}

/// The values the linker scripts' `@NAME@` placeholders stand for: the image
/// layout, shared by the firmware's script and the C SDK's.
pub const fn linker_script_values() -> [(&'static str, u64); 8] {
    [
        ("PAGE_SIZE", crate::layout::PAGE_SIZE),
        ("IMAGE_VA_OFFSET", crate::layout::IMAGE_VA_OFFSET),
        ("IMAGE_VA", crate::layout::IMAGE_VA),
        ("IMAGE_GPA", crate::layout::IMAGE_GPA),
        // The main image ends where the module region begins.
        ("IMAGE_VA_END", crate::layout::IMAGE_VA_OFFSET + crate::layout::MODULES_GPA),
        ("HEADER_SIZE", core::mem::size_of::<ImageHeader>() as u64),
        ("VECTORS_SIZE", VECTOR_COUNT as u64 * VECTOR_STRIDE),
        ("VECTOR_STRIDE", VECTOR_STRIDE),
    ]
}

/// What is wrong with a linker script template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateError<'a> {
    /// `@NAME@` names no value.
    UnknownPlaceholder(&'a str),
    /// An `@` that opens no placeholder.
    UnclosedPlaceholder,
    /// A value the template never uses (a script that ignores part of the
    /// layout is out of date).
    Unused(&'static str),
    /// The output refused a write.
    Write,
}

/// Writes `template` to `out` with every `@NAME@` replaced by that value of
/// [`linker_script_values`]: the one filler of the firmware's and the C
/// SDK's image linker scripts.
pub fn fill_linker_script<'a>(template: &'a str, out: &mut impl core::fmt::Write) -> Result<(), TemplateError<'a>> {
    fill_template(template, &linker_script_values(), out)
}

/// Writes `template` to `out` with every `@NAME@` replaced by its value in
/// `values` (below 10 in decimal, else in hex); every value must be used.
pub fn fill_template<'a, const N: usize>(
    template: &'a str,
    values: &[(&'static str, u64); N],
    out: &mut impl core::fmt::Write,
) -> Result<(), TemplateError<'a>> {
    let mut used = [false; N];
    let mut rest = template;
    while let Some(at) = rest.find('@') {
        out.write_str(&rest[..at]).map_err(|_| TemplateError::Write)?;
        let after = &rest[at + 1..];
        let end = after.find('@').ok_or(TemplateError::UnclosedPlaceholder)?;
        let name = &after[..end];
        let index = values.iter().position(|(n, _)| *n == name).ok_or(TemplateError::UnknownPlaceholder(name))?;
        used[index] = true;
        let value = values[index].1;
        if value < 10 { write!(out, "{value}") } else { write!(out, "{value:#x}") }.map_err(|_| TemplateError::Write)?;
        rest = &after[end + 1..];
    }
    out.write_str(rest).map_err(|_| TemplateError::Write)?;
    match used.iter().position(|u| !u) {
        Some(unused) => Err(TemplateError::Unused(values[unused].0)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::string::String;

    use super::*;

    #[test]
    fn parse_reads_little_endian_fields() {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&IMAGE_MAGIC);
        bytes[8..16].copy_from_slice(&0x0001_0000u64.to_le_bytes());
        bytes[16..24].copy_from_slice(&0xffff_ffff_8020_0100u64.to_le_bytes());
        let header = ImageHeader::parse(&bytes);
        assert_eq!(header.magic, IMAGE_MAGIC);
        assert_eq!(header.abi_version, 0x0001_0000);
        assert_eq!(header.vectors, 0xffff_ffff_8020_0100);
    }

    #[test]
    fn linker_script_placeholders_are_filled_and_checked() {
        let all: String = linker_script_values().iter().map(|(name, _)| format!("@{name}@ ")).collect();
        let mut out = String::new();
        assert_eq!(fill_linker_script(&all, &mut out), Ok(()));
        assert!(out.starts_with("0x1000 0xffffffff80000000 "), "{out}");
        let mut small = String::new();
        assert_eq!(fill_template("slot @S@, @B@", &[("S", 3), ("B", 16)], &mut small), Ok(()));
        assert_eq!(small, "slot 3, 0x10");
        assert_eq!(fill_linker_script("@PAGE_SIZE@", &mut String::new()), Err(TemplateError::Unused("IMAGE_VA_OFFSET")));
        assert_eq!(fill_linker_script("x @NOPE@", &mut String::new()), Err(TemplateError::UnknownPlaceholder("NOPE")));
        assert_eq!(fill_linker_script("a @PAGE_SIZE", &mut String::new()), Err(TemplateError::UnclosedPlaceholder));
    }
}
