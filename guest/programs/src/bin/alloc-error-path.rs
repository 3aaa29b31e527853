//! A driver's open path that gets two buffers; under `--fail-alloc rate=P` the second get may fail. `leak`: that error path returns without releasing the first (leak.dgux-allocation at exit); `correct`: it releases it. Either way it exits 0.
//!
//! The seeded bug of `kmemvisor bench`'s fuzz part "a leak on an error path
//! under --fail-alloc": a campaign's runs draw their failures from their
//! seeds, so some take the error path.
#![no_std]
#![no_main]

use kmemvisor_guest::dgux::{VM_DEFAULT_ALIGNMENT, vm_perhaps_get_wired_memory, vm_release_wired_memory};
use kmemvisor_guest::{args, fuzz, println};

kmemvisor_firmware::entry!(main);

/// Bytes of each buffer.
const BUFFER: u32 = 256;

fn main() -> u32 {
    let leak = match args::args().next() {
        Some("leak") => true,
        Some("correct") => false,
        _ => {
            println!("usage: alloc-error-path leak|correct");
            return 2;
        }
    };
    if fuzz::snapshot().is_err() {
        println!("alloc-error-path: fuzz_snapshot failed");
        return 1;
    }
    let alignment = VM_DEFAULT_ALIGNMENT;
    let commands = vm_perhaps_get_wired_memory(BUFFER, alignment);
    if commands.is_null() {
        println!("alloc-error-path: no command buffer: open fails");
        return 0;
    }
    let replies = vm_perhaps_get_wired_memory(BUFFER, alignment);
    if replies.is_null() {
        println!("alloc-error-path: no reply buffer: open fails");
        if !leak {
            // SAFETY: `commands` is this function's own allocation, not used after this.
            unsafe { vm_release_wired_memory(commands, BUFFER) };
        }
        return 0;
    }
    // The device would run here; then the close path gives both back.
    // SAFETY: both are this function's own allocations, not used after this.
    unsafe {
        vm_release_wired_memory(replies, BUFFER);
        vm_release_wired_memory(commands, BUFFER);
    }
    0
}
