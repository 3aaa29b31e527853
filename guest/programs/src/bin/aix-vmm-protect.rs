//! Stores to an object page that vm_protectp made read-only: a page fault (#PF) at its address (exit status 68).
#![no_std]
#![no_main]

use kmemvisor_guest::aix_vmm::{RDONLY, V_CLIENT, VM_KEY_UNLIMITED, VmHandle, VmId, vm_att, vm_handle, vm_protectp, vms_create};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

fn main() -> u32 {
    let mut vmid = VmId(0);
    let created = vms_create(&mut vmid, V_CLIENT, 0, 4096, 0, 0);
    let handle = vm_handle(vmid, VM_KEY_UNLIMITED);
    let page = vm_att(handle, 0);
    if created.code() != 0 || handle == VmHandle::INVALID || page.is_null() {
        println!("aix-vmm-protect: setup failed");
        return 1;
    }
    // SAFETY: the page is mapped writable; the store also makes a cached
    // writable translation that vm_protectp must drop.
    unsafe { core::ptr::write_volatile(page, 1) };
    let protected = vm_protectp(vmid, 0, 1, RDONLY);
    // SAFETY: a read of a read-only page is allowed.
    let value = unsafe { core::ptr::read_volatile(page) };
    println!("aix-vmm-protect: page {page:p} read-only ({}), reads {value}; storing to it", protected.name());
    // SAFETY: none: the store is meant to fault; the firmware reports #PF and the VMM ends the VM.
    unsafe { core::ptr::write_volatile(page, 2) };
    println!("aix-vmm-protect: the store did not fault");
    1
}
