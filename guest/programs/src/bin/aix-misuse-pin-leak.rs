//! Pins a kernel page and a user page and exits with them pinned: two violations at exit, exit 65.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::aix::{UIO_USERSPACE, pin, pinu};
use kmemvisor_guest::println;
use kmemvisor_guest::process::{PROT_READ, PROT_WRITE, process_create, process_map, process_switch};

kmemvisor_firmware::entry!(main);

/// The user page left pinned.
const USER: u64 = 0x1000_0000;

/// One page of image data, page-aligned, left pinned.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

static PAGE: Page = Page([0; 4096]);

fn main() -> u32 {
    let kernel = PAGE.0.as_ptr();
    let Ok(pid) = process_create() else {
        println!("aix-misuse-pin-leak: process_create failed");
        return 1;
    };
    // SAFETY: nothing references user memory.
    if unsafe { process_switch(pid) }.is_err() || process_map(USER, 4096, PROT_READ | PROT_WRITE).is_err() {
        println!("aix-misuse-pin-leak: process setup failed");
        return 1;
    }
    let pinned = (pin(kernel, 4096), pin(kernel, 16), pinu(USER as *const u8, 8, UIO_USERSPACE));
    println!("aix-misuse-pin-leak: kernel page {kernel:p} pinned twice, user page {USER:#x} of process {pid} once: {pinned:?}");
    if pinned != (Status::OK, Status::OK, Status::OK) {
        return 1;
    }
    println!("aix-misuse-pin-leak: exiting with both pinned (the process stays current)");
    0
}
