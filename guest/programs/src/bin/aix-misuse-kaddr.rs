//! copyin to an unmapped kernel address: one violation (EFAULT, nothing copied), exit 65.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::{Status, layout};
use kmemvisor_guest::aix::raw;
use kmemvisor_guest::println;
use kmemvisor_guest::process::{PROT_READ, PROT_WRITE, process_create, process_destroy, process_map, process_switch};

kmemvisor_firmware::entry!(main);

/// The user buffer.
const USER: u64 = 0x1000_0000;
/// A kernel address nothing maps: the last page of the pageable heap's range.
const BAD_KADDR: u64 = layout::KERNEL_HEAP_VA + layout::ARENA_SIZE - layout::PAGE_SIZE;

fn main() -> u32 {
    let Ok(pid) = process_create() else {
        println!("aix-misuse-kaddr: process_create failed");
        return 1;
    };
    // SAFETY: nothing references user memory yet.
    if unsafe { process_switch(pid) }.is_err() || process_map(USER, 4096, PROT_READ | PROT_WRITE).is_err() {
        println!("aix-misuse-kaddr: process setup failed");
        return 1;
    }
    println!("aix-misuse-kaddr: copyin({USER:#x}, {BAD_KADDR:#x}, 16)");
    // SAFETY: deliberately wrong: the kernel address is unmapped; the VMM
    // refuses it and writes nothing.
    let (status, copied) = unsafe { raw::copyin(USER, BAD_KADDR, 16) };
    println!("aix-misuse-kaddr: copyin answered {} with {copied} bytes copied", status.name());
    // SAFETY: no reference into the process's memory lives.
    let cleaned = unsafe { process_switch(0).and_then(|()| process_destroy(pid)) };
    if (status, copied) != (Status::EFAULT, 0) || cleaned.is_err() {
        println!("aix-misuse-kaddr: expected EFAULT and 0 bytes, and a clean teardown");
        return 1;
    }
    println!("aix-misuse-kaddr: 1 misuse made");
    0
}
