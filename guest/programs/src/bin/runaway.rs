//! Prints one line, then spins forever without an exit: for testing --timeout.
#![no_std]
#![no_main]

use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

fn main() -> u32 {
    println!("spinning forever");
    loop {
        core::hint::spin_loop();
    }
}
