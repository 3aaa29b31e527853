//! For `kmemvisor bench`: args `MODE COUNT`, MODE `floor` (raw exits) or `null` (null hypercalls).
#![no_std]
#![no_main]

use core::arch::asm;

use kmemvisor_guest::abi::NULL_DEVICE_PORT;
use kmemvisor_guest::{args, null, println};

kmemvisor_firmware::entry!(main);

/// Exit status for arguments the guest does not understand.
const BAD_ARGS: u32 = 2;

fn main() -> u32 {
    let mut words = args();
    let (mode, count) = match (words.next(), words.next().map(str::parse::<u64>), words.next()) {
        (Some(mode), Some(Ok(count)), None) => (mode, count),
        _ => return usage(),
    };
    match mode {
        "floor" => {
            for _ in 0..count {
                // SAFETY: a write to the null device port touches no guest
                // memory; the VMM discards it and resumes.
                unsafe {
                    asm!(
                        "out dx, al",
                        in("dx") NULL_DEVICE_PORT,
                        in("al") 0u8,
                        options(nomem, nostack, preserves_flags),
                    );
                }
            }
        }
        "null" => {
            for _ in 0..count {
                if null().is_err() {
                    println!("bench: a null call failed");
                    return 1;
                }
            }
        }
        _ => return usage(),
    }
    0
}

fn usage() -> u32 {
    println!("usage: bench floor|null COUNT");
    BAD_ARGS
}
