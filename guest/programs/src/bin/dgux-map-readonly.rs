//! Maps a wired page's frame read-only over an unwired page, reads it, then writes it: a page fault (#PF).
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::dgux::{
    MAP_SHARED, PROT_READ, VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK, VM_PAGE_ALIGNED, physical_address_of, vm_get_unwired_memory,
    vm_get_wired_memory, vm_map_physical_memory,
};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// What the wired page holds, seen through the mapping.
const MARK: u64 = 0x0dd_c0ffee;

fn main() -> u32 {
    let wired = vm_get_wired_memory(4096, VM_PAGE_ALIGNED);
    let window = vm_get_unwired_memory(4096, VM_PAGE_ALIGNED);
    if wired.is_null() || window.is_null() {
        println!("dgux-map-readonly: a get failed");
        return 1;
    }
    // SAFETY: `wired` is a live, writable page.
    unsafe { core::ptr::write_volatile(wired.cast::<u64>(), MARK) };
    let Some(frame) = physical_address_of(wired) else {
        println!("dgux-map-readonly: the wired page has no physical address");
        return 1;
    };
    // SAFETY: `window` is an unwired page nothing else uses; the mapping shows
    // the frame of our own wired page, read-only.
    let status =
        unsafe { vm_map_physical_memory(window, frame, 4096, PROT_READ, MAP_SHARED, VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK) };
    if status != Status::OK {
        println!("dgux-map-readonly: vm_map_physical_memory answered {}", status.name());
        return 1;
    }
    // SAFETY: the window is mapped readable.
    let seen = unsafe { core::ptr::read_volatile(window.cast::<u64>()) };
    if seen != MARK {
        println!("dgux-map-readonly: the window shows {seen:#x}, not {MARK:#x}");
        return 1;
    }
    println!("dgux-map-readonly: {window:p} shows frame {frame:#x}; writing it");
    // SAFETY: none: the mapping is read-only, so this write is meant to fault.
    unsafe { core::ptr::write_volatile(window.cast::<u64>(), 1) };
    println!("dgux-map-readonly: the write did not fault");
    1
}
