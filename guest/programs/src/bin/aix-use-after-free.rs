//! Writes a page-sized, page-aligned xmalloc block, frees it, then reads it: a page fault (#PF) at its address.
#![no_std]
#![no_main]

use kmemvisor_guest::aix::{Heap, xmalloc, xmfree};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// One page: a page-aligned allocation shares its page with no neighbour.
const BYTES: usize = 4096;

fn main() -> u32 {
    let block = xmalloc(BYTES, 12, Heap::KERNEL);
    if block.is_null() {
        println!("aix-use-after-free: xmalloc failed");
        return 1;
    }
    // SAFETY: `block` is a live, writable allocation of BYTES bytes.
    unsafe { core::ptr::write_volatile(block.cast::<u64>(), 0x5eed) };
    // SAFETY: the allocation is given up here; the read below is the point.
    let freed = unsafe { xmfree(block, Heap::KERNEL) };
    println!("aix-use-after-free: freed {block:p} ({freed}), reading it");
    // SAFETY: none: the page was freed and unmapped, so this read is meant to
    // fault; the firmware reports #PF and the VMM ends the VM.
    let value = unsafe { core::ptr::read_volatile(block.cast::<u64>()) };
    println!("aix-use-after-free: the read did not fault (read {value:#x})");
    1
}
