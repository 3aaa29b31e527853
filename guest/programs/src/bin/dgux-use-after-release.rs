//! Writes a page-aligned wired page, releases it, then reads it: a page fault (#PF) at its address.
#![no_std]
#![no_main]

use kmemvisor_guest::dgux::{VM_PAGE_ALIGNED, vm_get_wired_memory, vm_release_wired_memory};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// One page: a page-aligned allocation shares its page with no neighbour.
const BYTES: u32 = 4096;

fn main() -> u32 {
    let page = vm_get_wired_memory(BYTES, VM_PAGE_ALIGNED);
    if page.is_null() {
        println!("dgux-use-after-release: the get failed");
        return 1;
    }
    // SAFETY: `page` is a live, writable allocation of BYTES bytes.
    unsafe { core::ptr::write_volatile(page.cast::<u64>(), 0x5eed) };
    // SAFETY: the allocation is given up here; the read below is the point.
    unsafe { vm_release_wired_memory(page, BYTES) };
    println!("dgux-use-after-release: released {page:p}, reading it");
    // SAFETY: none: the page was released and unmapped, so this read is meant
    // to fault; the firmware reports #PF and the VMM ends the VM.
    let value = unsafe { core::ptr::read_volatile(page.cast::<u64>()) };
    println!("dgux-use-after-release: the read did not fault (read {value:#x})");
    1
}
