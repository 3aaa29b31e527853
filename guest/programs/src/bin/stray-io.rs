//! Writes to I/O port 0x80, where no device is, then reads from it: the VMM
//! records a violation for each (the read gets all-ones); exits 0.
#![no_std]
#![no_main]

use core::arch::asm;

use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// The legacy POST-code port; kmemvisor has no device there.
const STRAY_PORT: u16 = 0x80;

fn main() -> u32 {
    // SAFETY: an `out` at CPL3 with IOPL=3 touches no guest memory; the VMM
    // answers a port without a device by recording it and resuming.
    unsafe {
        asm!("out dx, al", in("dx") STRAY_PORT, in("al") 0x42u8, options(nomem, nostack, preserves_flags));
    }
    let read: u8;
    // SAFETY: an `in` at CPL3 with IOPL=3 touches no guest memory; the VMM
    // records it and completes it with all-ones.
    unsafe {
        asm!("in al, dx", in("dx") STRAY_PORT, out("al") read, options(nomem, nostack, preserves_flags));
    }
    println!("stray-io: wrote to port {STRAY_PORT:#x}, read {read:#x} from it and carried on");
    0
}
