//! Creates a process, maps user memory in it, uses it, switches back: user addresses are gone again.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Service;
use kmemvisor_guest::abi::aix::{PROT_READ, PROT_WRITE};
use kmemvisor_guest::{hypercall::call, println};

kmemvisor_firmware::entry!(main);

/// A user address for the test buffer.
const USER_BUFFER: u64 = 0x1000_0000;

fn main() -> u32 {
    // SAFETY: the process services take no pointers the VMM writes through.
    let pid = match unsafe { call(Service::ProcessCreate, [0; 6]) } {
        Ok(pid) => pid,
        Err(status) => {
            println!("process: create failed: {}", status.name());
            return 1;
        }
    };
    // SAFETY: as above.
    let switched = unsafe { call(Service::ProcessSwitch, [pid, 0, 0, 0, 0, 0]) };
    // SAFETY: as above.
    let mapped = unsafe { call(Service::ProcessMap, [USER_BUFFER, 8192, PROT_READ | PROT_WRITE, 0, 0, 0]) };
    if switched.is_err() || mapped.is_err() {
        println!("process: switch or map failed");
        return 1;
    }
    let buffer = USER_BUFFER as *mut u64;
    // SAFETY: the process maps 8 KiB of writable user memory at USER_BUFFER,
    // and this vCPU runs in that process.
    let read = unsafe {
        buffer.write_volatile(0x1234_5678);
        buffer.add(600).write_volatile(0xabcd);
        buffer.read_volatile() + buffer.add(600).read_volatile()
    };
    println!("process {pid}: user memory at {USER_BUFFER:#x} holds what was written: {}", read == 0x1234_5678 + 0xabcd);
    // SAFETY: as above.
    let left = unsafe { call(Service::ProcessSwitch, [0; 6]) };
    println!("process: left process context: {}", left.is_ok());
    println!("process: touching the user address outside the process must fault");
    // SAFETY: deliberately wrong: the address is no longer mapped; the VMM
    // reports the page fault and ends the run.
    unsafe { buffer.read_volatile() as u32 }
}
