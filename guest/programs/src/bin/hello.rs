//! Prints a greeting with the vCPU and the ABI version, then exits 0.
#![no_std]
#![no_main]

use kmemvisor_guest::{abi_version, println, vcpu_count, vcpu_id};

kmemvisor_firmware::entry!(main);

fn main() -> u32 {
    let version = abi_version().unwrap_or(0);
    println!("Hello from kmemvisor: vCPU {} of {}, ABI v{}.{}", vcpu_id(), vcpu_count(), version >> 16, version & 0xffff);
    0
}
