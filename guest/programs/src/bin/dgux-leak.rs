//! Exits with a wired and an unwired page still allocated, the unwired one wired above its floor and both marked: exit 65.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::dgux::raw;
use kmemvisor_guest::dgux::{SC_READ_ACCESS, VM_PAGE_ALIGNED, vm_get_unwired_memory, vm_get_wired_memory, vm_wire_memory};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

fn main() -> u32 {
    let wired = vm_get_wired_memory(4096, VM_PAGE_ALIGNED);
    let unwired = vm_get_unwired_memory(4096, VM_PAGE_ALIGNED);
    if wired.is_null() || unwired.is_null() {
        println!("dgux-leak: a get failed");
        return 1;
    }
    // The wired page: wired once more, then unwired with a read marked:
    // back at its initial count 1, referenced, not modified.
    let w =
        [vm_wire_memory(wired, false, 4096), raw::vm_mark_and_unwire_memory(wired as u64, 0, 4096, u64::from(SC_READ_ACCESS))];
    // The unwired page: wired twice, unwired once marked referenced and
    // modified: count 1 above its initial 0.
    let u = [
        vm_wire_memory(unwired, false, 4096),
        vm_wire_memory(unwired, false, 100),
        raw::vm_mark_mod_and_ref_and_unwire_memory(unwired as u64, 0, 4096),
    ];
    if w.iter().chain(&u).any(|&s| s != Status::OK) {
        println!("dgux-leak: a wire or unwire failed: {w:?} {u:?}");
        return 1;
    }
    println!("dgux-leak: leaving wired {wired:p} and unwired {unwired:p} (wired once above its floor)");
    0
}
