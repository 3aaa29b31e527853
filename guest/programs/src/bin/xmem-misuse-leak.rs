//! Exits with a user buffer still attached, pinned and one page hidden: three violations at exit, exit 65.
//!
//! A driver that forgets its completion path: the attachment (`xmattach`),
//! the hidden page (`xmemdma(XMEM_HIDE)`) and the pin (`xmempin`) are each
//! reported when the guest exits.
#![no_std]
#![no_main]

use kmemvisor_guest::println;
use kmemvisor_guest::process::{PROT_READ, PROT_WRITE, process_create, process_map, process_switch};
use kmemvisor_guest::xmem::{self, USER_ADSPACE, XMEM_HIDE, Xmem};

kmemvisor_firmware::entry!(main);

const USER: u64 = 0x1000_0000;

fn main() -> u32 {
    let Ok(pid) = process_create() else {
        println!("xmem-misuse-leak: process_create failed");
        return 1;
    };
    let mut d = Xmem::default();
    // SAFETY: nothing references user memory yet.
    let real = unsafe { process_switch(pid) }
        .and_then(|()| process_map(USER, 2 * 4096, PROT_READ | PROT_WRITE))
        .and_then(|()| xmem::xmattach(USER, 2 * 4096, &mut d, USER_ADSPACE))
        .and_then(|()| xmem::xmempin(USER + 4096, 16, &d))
        .and_then(|()| xmem::xmemdma(&d, USER + 4096, XMEM_HIDE));
    match real {
        Ok(real) => {
            println!(
                "xmem-misuse-leak: process {pid}: user buffer {USER:#x} attached, page {:#x} pinned and hidden (real {real:#x})",
                USER + 4096
            );
            println!("xmem-misuse-leak: exiting without xmemdma(XMEM_UNHIDE), xmemunpin or xmdetach");
            0
        }
        Err(status) => {
            println!("xmem-misuse-leak: setup failed: {}", status.name());
            1
        }
    }
}
