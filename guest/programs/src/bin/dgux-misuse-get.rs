//! Seven refused gets (0 bytes, fewer than the alignment, unknown alignment, NO_PAGE_CROSS over a page, over u32::MAX): exit 65.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::dgux::raw::{
    vm_get_unwired_memory, vm_get_wired_memory, vm_perhaps_get_unwired_memory, vm_perhaps_get_wired_memory,
};
use kmemvisor_guest::dgux::{
    VM_DEFAULT_ALIGNMENT, VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS, VM_INVALID_MEMORY_PTR, VM_PAGE_ALIGNED, VM_WORD_ALIGNED,
};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// An alignment code no constant has.
const UNKNOWN_ALIGNMENT: u32 = 6;

fn main() -> u32 {
    let (default, page, word, npc) = (
        u64::from(VM_DEFAULT_ALIGNMENT),
        u64::from(VM_PAGE_ALIGNED),
        u64::from(VM_WORD_ALIGNED),
        u64::from(VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS),
    );
    let cases: [(&str, (Status, u64)); 7] = [
        ("perhaps wired, 0 bytes", vm_perhaps_get_wired_memory(0, default)),
        ("demand wired, 2 bytes word-aligned", vm_get_wired_memory(2, word)),
        ("perhaps unwired, 100 bytes page-aligned", vm_perhaps_get_unwired_memory(100, page)),
        ("perhaps wired, unknown alignment 6", vm_perhaps_get_wired_memory(64, u64::from(UNKNOWN_ALIGNMENT))),
        ("perhaps unwired, 4097 bytes NO_PAGE_CROSS", vm_perhaps_get_unwired_memory(4097, npc)),
        ("perhaps wired, 2^32 bytes", vm_perhaps_get_wired_memory(1 << 32, default)),
        ("demand unwired, 2^32 + 64 bytes", vm_get_unwired_memory((1 << 32) + 64, default)),
    ];
    let mut wrong = 0;
    for (what, (status, value)) in cases {
        if status == Status::EINVAL && value == VM_INVALID_MEMORY_PTR {
            println!("dgux-misuse-get: {what}: EINVAL");
        } else {
            println!("dgux-misuse-get: {what}: got {} and {value:#x}, expected EINVAL and 0", status.name());
            wrong += 1;
        }
    }
    if wrong > 0 {
        println!("dgux-misuse-get: {wrong} unexpected answers");
        return 1;
    }
    println!("dgux-misuse-get: 7 bad gets made, each refused");
    0
}
