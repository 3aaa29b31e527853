// The image header (kmemvisor_abi::ImageHeader), byte for byte. The linker
// script puts .kmv_header at IMAGE_VA, the first byte of the image, and checks
// that it is exactly one header long. Every value comes from the ABI crate as a
// `const` operand (see lib.rs).

    .section .kmv_header, "a"
    .balign 8
    .global kmv_image_header
kmv_image_header:
    // magic: IMAGE_MAGIC, "KMEMVSR\0"
    .byte {m0}, {m1}, {m2}, {m3}, {m4}, {m5}, {m6}, {m7}
    // abi_version: ABI_VERSION (major << 16 | minor)
    .quad {abi_version}
    // vectors: the address of vector 0's stub (vectors.s)
    .quad kmv_vectors
kmv_image_header_end:
