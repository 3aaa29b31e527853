//! Recurses until the stack runs into its guard page: the #PF cannot be delivered, so a triple fault.
#![no_std]
#![no_main]

use core::hint::black_box;

use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// Uses a page of stack per call and never stops (unless black_box lies).
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 4096];
    frame[0] = depth as u8;
    black_box(&mut frame);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + u64::from(frame[1])
}

fn main() -> u32 {
    println!("triple-fault: recursing into the stack guard page");
    let depth = recurse(0);
    println!("triple-fault: the recursion ended at depth {depth}");
    1
}
