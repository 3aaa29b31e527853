//! Panics with a fixed message: the VMM reports the message and file:line.
#![no_std]
#![no_main]

kmemvisor_firmware::entry!(main);

fn main() -> u32 {
    panic!("deliberate panic from the panic guest");
}
