//! Attaches one object with vm_att until no region is left: the seventeenth attach halts the VM, as AIX panics (exit status 76).
#![no_std]
#![no_main]

use kmemvisor_guest::abi::layout::VM_REGIONS;
use kmemvisor_guest::aix_vmm::{V_CLIENT, VM_KEY_UNLIMITED, VmId, vm_att, vm_handle, vms_create};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

fn main() -> u32 {
    let mut vmid = VmId(0);
    let _ = vms_create(&mut vmid, V_CLIENT, 0, 4096, 0, 0);
    let handle = vm_handle(vmid, VM_KEY_UNLIMITED);
    for n in 0..VM_REGIONS {
        let at = vm_att(handle, 0);
        println!("aix-vmm-halt: region {n} at {at:p}");
    }
    println!("aix-vmm-halt: one more vm_att");
    let at = vm_att(handle, 0);
    println!("aix-vmm-halt: the VM did not halt ({at:p})");
    1
}
