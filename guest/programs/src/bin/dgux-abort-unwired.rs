//! Asks vm_get_unwired_memory for 0xF000_0000 bytes, more than RAM: the VM halts with VM_PANIC_GET_UNWIRED_MEMORY (exit 74).
#![no_std]
#![no_main]

use kmemvisor_guest::dgux::{VM_PAGE_ALIGNED, vm_get_unwired_memory};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// More bytes than any guest RAM holds.
const BYTES: u32 = 0xF000_0000;

fn main() -> u32 {
    println!("dgux-abort-unwired: vm_get_unwired_memory({BYTES:#x}, VM_PAGE_ALIGNED), expecting VM_PANIC_GET_UNWIRED_MEMORY");
    let ptr = vm_get_unwired_memory(BYTES, VM_PAGE_ALIGNED);
    println!("dgux-abort-unwired: the demand get returned {ptr:p} instead of halting the VM");
    1
}
