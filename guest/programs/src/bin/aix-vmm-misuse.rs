//! Sixteen misuses of the AIX virtual memory manager services, each refused and recorded as a violation (exit status 65).
//!
//! In order: `vms_delete` of a deleted object, `vm_att` of its handle,
//! `vms_delete` of an attached object, `vm_det` of an address in no region,
//! `io_det` of a `vm_att` region, `io_att` of a window in RAM, `vm_cflush`
//! of a user address, `vm_makep` at interrupt level, `vm_releasep` of a
//! pinned page, `as_puth64` without `as_geth64`, `as_puth64` while the
//! region still maps the object, `vms_delete` of a held object, `vm_move`
//! of the deleted object, `as_att` of a forged address-space pointer,
//! `as_geth` of an address no region maps, and `as_puth` without `as_geth`.
//! Everything is undone before the exit, so nothing else is left.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::aix::{pin, unpin};
use kmemvisor_guest::aix_vmm::{V_CLIENT, VM_KEY_UNLIMITED, io_handle, raw};
use kmemvisor_guest::println;
use kmemvisor_guest::process::{interrupt_enter, interrupt_leave, process_create, process_destroy, process_switch};

kmemvisor_firmware::entry!(main);

/// Says what a call answered; counts the refusals that match.
fn said(what: &str, (status, _): (Status, u64), want: Status, refused: &mut u32) {
    println!("aix-vmm-misuse: {what}: {}", status.name());
    *refused += u32::from(status == want);
}

fn main() -> u32 {
    let mut refused = 0;
    let (_, gone) = raw::vms_create(V_CLIENT, 0, 4096, 0, 0);
    let (_, gone_handle) = raw::vm_handle(gone, VM_KEY_UNLIMITED);
    let _ = raw::vms_delete(gone);
    println!("aix-vmm-misuse: object {gone} deleted");
    said("vms_delete again", raw::vms_delete(gone), Status::EINVAL, &mut refused);
    said("vm_att of its handle", raw::vm_att(gone_handle, 0), Status::EINVAL, &mut refused);

    let (_, vmid) = raw::vms_create(V_CLIENT, 0, 4096, 0, 0);
    let (_, handle) = raw::vm_handle(vmid, VM_KEY_UNLIMITED);
    let (_, at) = raw::vm_att(handle, 0);
    println!("aix-vmm-misuse: object {vmid} attached at {at:#x}");
    said("vms_delete while attached", raw::vms_delete(vmid), Status::EBUSY, &mut refused);
    // SAFETY: the address lies in no region: nothing is unmapped.
    said("vm_det of no region", unsafe { raw::vm_det(at + 0x1000_0000) }, Status::EINVAL, &mut refused);
    // SAFETY: the call is refused: the region stays mapped.
    said("io_det of a vm_att region", unsafe { raw::io_det(at) }, Status::EINVAL, &mut refused);
    said("io_att of RAM", raw::io_att(io_handle(0x0010_0000, 1), 0), Status::EINVAL, &mut refused);
    said("vm_cflush of a user address", raw::vm_cflush(0x1000_0000, 64), Status::EINVAL, &mut refused);
    let _ = interrupt_enter();
    said("vm_makep at interrupt level", raw::vm_makep(vmid, 1), Status::EPERM, &mut refused);
    let _ = interrupt_leave();
    let _ = pin(at as *const u8, 4096);
    // SAFETY: the call is refused: the page keeps its contents.
    said("vm_releasep of a pinned page", unsafe { raw::vm_releasep(vmid, 0, 1) }, Status::EBUSY, &mut refused);
    let _ = unpin(at as *const u8, 4096);

    let pid = process_create().unwrap_or(0);
    // SAFETY: no reference into another process's memory is kept.
    let _ = unsafe { process_switch(pid) };
    let (_, user) = raw::as_att64(handle, 0);
    println!("aix-vmm-misuse: object {vmid} attached in process {pid} at {user:#x}");
    said("as_puth64 without as_geth64", raw::as_puth64(user, handle), Status::EINVAL, &mut refused);
    let _ = raw::as_geth64(user);
    said("as_puth64 while attached", raw::as_puth64(user, handle), Status::EBUSY, &mut refused);
    // SAFETY: nothing references either region any more.
    let _ = unsafe { (raw::as_det64(user), raw::vm_det(at)) };
    said("vms_delete of a held object", raw::vms_delete(vmid), Status::EBUSY, &mut refused);
    let _ = raw::as_puth64(user, handle);
    // SAFETY: the object is deleted: the call is refused before the uio is read.
    said("vm_move of the deleted object", unsafe { raw::vm_move(gone, 0, 8, 0, 0) }, Status::EINVAL, &mut refused);
    let (_, adsp) = raw::getadsp();
    println!("aix-vmm-misuse: process {pid}'s address space is {adsp:#x}");
    said("as_att of a forged address-space pointer", raw::as_att(adsp ^ 1, handle, 0), Status::EINVAL, &mut refused);
    said("as_geth of an address no region maps", raw::as_geth(adsp, user), Status::EINVAL, &mut refused);
    said("as_puth without as_geth", raw::as_puth(adsp, handle), Status::EINVAL, &mut refused);
    let _ = raw::vms_delete(vmid);
    // SAFETY: as above.
    let _ = unsafe { (process_switch(0), process_destroy(pid)) };
    println!("aix-vmm-misuse: {refused} misuses made, each refused");
    if refused == 16 { 0 } else { 1 }
}
