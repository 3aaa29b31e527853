//! Two flag misuses: access bits outside SC_ACCESS_MODE_MASK (EINVAL) and a reserved map control bit (then mapped): exit 65.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::dgux::raw::vm_check_access_and_wire_memory;
use kmemvisor_guest::dgux::{
    MAP_SHARED, PROT_READ, PROT_WRITE, VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK, VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK,
    VM_PAGE_ALIGNED, physical_address_of, vm_get_unwired_memory, vm_get_wired_memory, vm_map_physical_memory,
    vm_release_unwired_memory, vm_release_wired_memory, vm_unmap_physical_memory,
};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// An access bit above SC_ACCESS_MODE_MASK.
const BAD_ACCESS: u64 = 1 << 3;
/// The lowest reserved control bit of vm_map_physical_memory.
const RESERVED_CONTROL: u32 = 1 << 2;

fn main() -> u32 {
    let wired = vm_get_wired_memory(4096, VM_PAGE_ALIGNED);
    let window = vm_get_unwired_memory(4096, VM_PAGE_ALIGNED);
    if wired.is_null() || window.is_null() {
        println!("dgux-misuse-flags: a get failed");
        return 1;
    }
    println!("dgux-misuse-flags: wired page {wired:p}, unwired page {window:p}");
    let mut wrong = 0;
    // 1. Access bits outside the mask: EINVAL, nothing wired.
    let status = vm_check_access_and_wire_memory(window as u64, 0, 4096, BAD_ACCESS);
    println!("dgux-misuse-flags: access {BAD_ACCESS:#x}: {}", status.name());
    wrong += u32::from(status != Status::EINVAL);
    // 2. A reserved control bit: a violation, and the call goes on.
    let Some(frame) = physical_address_of(wired) else {
        println!("dgux-misuse-flags: the wired page has no physical address");
        return 1;
    };
    let control = VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK | RESERVED_CONTROL;
    // SAFETY: the window is an unwired page nothing else uses; it shows our own
    // wired page's frame and is unmapped again below.
    let status = unsafe { vm_map_physical_memory(window, frame, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, control) };
    println!("dgux-misuse-flags: map with control {control:#x}: {}", status.name());
    wrong += u32::from(status != Status::OK);
    if status == Status::OK {
        // SAFETY: the window was mapped just above; nothing uses it.
        let status = unsafe { vm_unmap_physical_memory(window, 4096, VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK) };
        wrong += u32::from(status != Status::OK);
    }
    // SAFETY: neither allocation is used again.
    unsafe {
        vm_release_unwired_memory(window, 4096);
        vm_release_wired_memory(wired, 4096);
    }
    if wrong > 0 {
        println!("dgux-misuse-flags: {wrong} unexpected answers");
        return 1;
    }
    println!("dgux-misuse-flags: 2 misuses made");
    0
}
