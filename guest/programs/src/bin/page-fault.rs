//! Writes through a pointer to an unmapped user address: a page fault (#PF, vector 14).
#![no_std]
#![no_main]

use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// A canonical user address that nothing maps.
const UNMAPPED: u64 = 0x0000_dead_0000;

fn main() -> u32 {
    println!("page-fault: writing to {UNMAPPED:#x}");
    // SAFETY: none: this write is meant to fault. The address is unmapped, so
    // the CPU raises #PF before anything is written; the firmware reports it
    // and the VMM ends the VM.
    unsafe { core::ptr::write_volatile(UNMAPPED as *mut u64, 0x1234) };
    println!("page-fault: the write did not fault");
    1
}
