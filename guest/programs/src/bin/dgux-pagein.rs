//! Wires unwired memory while page-ins fail on purpose (run with `--fail-pagein nth=1`): VM_EIO, then success.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::dgux::{
    SC_READ_ACCESS, VM_PAGE_ALIGNED, vm_check_access_and_wire_memory, vm_get_unwired_memory, vm_release_unwired_memory,
    vm_unwire_memory, vm_wire_memory,
};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// One page.
const PAGE: u32 = 4096;

/// Prints a PASS or FAIL line; whether it passed.
fn case(name: &str, got: Status, expected: Status) -> bool {
    if got == expected {
        println!("PASS: {name}");
    } else {
        println!("FAIL: {name}: {} instead of {}", got.name(), expected.name());
    }
    got == expected
}

fn main() -> u32 {
    let page = vm_get_unwired_memory(PAGE, VM_PAGE_ALIGNED);
    // The first page-in of the run fails: the manual page's "bad I/O status".
    let first = vm_check_access_and_wire_memory(page, false, PAGE, SC_READ_ACCESS);
    let second = vm_wire_memory(page, false, PAGE);
    let passed = u32::from(case("vm_check_access_and_wire_memory: a page that cannot come in is VM_EIO", first, Status::VM_EIO))
        + u32::from(case("vm_wire_memory: the next page-in succeeds", second, Status::OK));
    for _ in [first, second].iter().filter(|&&s| s == Status::OK) {
        vm_unwire_memory(page, false, PAGE);
    }
    // SAFETY: `page` came from vm_get_unwired_memory with PAGE bytes and is not used after this.
    unsafe { vm_release_unwired_memory(page, PAGE) };
    println!("SUMMARY: {passed} passed, {} failed, 0 skipped", 2 - passed);
    u32::from(passed != 2)
}
