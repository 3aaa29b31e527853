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

#[cfg(test)]
mod tests {
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
}
