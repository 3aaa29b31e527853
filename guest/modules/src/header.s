// The module header (kmemvisor_abi::ModuleHeader), byte for byte. The module
// linker script puts .kmv_module_header at the slot's address, the first byte
// of the module, and checks that it is exactly one header long. Every value
// comes from the ABI crate as a `const` operand (see lib.rs).

    .section .kmv_module_header, "a"
    .balign 8
    .global kmv_module_header
kmv_module_header:
    // magic: MODULE_MAGIC, "KMVMODL\0"
    .byte {m0}, {m1}, {m2}, {m3}, {m4}, {m5}, {m6}, {m7}
    // abi_version: ABI_VERSION (major << 16 | minor)
    .quad {abi_version}
    // entry: the module's entry function, defined by kmemvisor_modules::entry!
    .quad kmv_module_entry
kmv_module_header_end:
