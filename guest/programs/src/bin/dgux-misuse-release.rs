//! Five bad releases (wrong size, wrong type, not a start, double, still wired): five violations, exit 65.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::dgux::raw::{vm_release_unwired_memory, vm_release_wired_memory};
use kmemvisor_guest::dgux::{
    VM_DEFAULT_ALIGNMENT, VM_PAGE_ALIGNED, vm_get_unwired_memory, vm_get_wired_memory, vm_unwire_memory, vm_wire_memory,
};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// Counts the answers that differ from what was expected.
struct Expect(u32);

impl Expect {
    fn status(&mut self, what: &str, got: Status, want: Status) {
        if got == want {
            println!("dgux-misuse-release: {what}: {}", got.name());
        } else {
            println!("dgux-misuse-release: {what}: got {}, expected {}", got.name(), want.name());
            self.0 += 1;
        }
    }
}

fn main() -> u32 {
    let mut expect = Expect(0);
    let small = vm_get_wired_memory(64, VM_DEFAULT_ALIGNMENT);
    let other = vm_get_unwired_memory(64, VM_DEFAULT_ALIGNMENT);
    let page = vm_get_wired_memory(4096, VM_PAGE_ALIGNED);
    if small.is_null() || other.is_null() || page.is_null() {
        println!("dgux-misuse-release: a get failed");
        return 1;
    }
    let (small, other_addr, page_addr) = (small as u64, other as u64, page as u64);
    println!("dgux-misuse-release: wired {small:#x} (64 bytes), unwired {other_addr:#x} (64 bytes), wired page {page_addr:#x}");

    // SAFETY: the allocations are never used after a release the VMM
    // accepts; the refused ones free nothing.
    unsafe {
        // 1. Wrong size.
        expect.status("wrong size (65 for 64)", vm_release_wired_memory(small, 65), Status::EINVAL);
        // 2. Wrong type: a wired allocation released as unwired.
        expect.status("wired released as unwired", vm_release_unwired_memory(small, 64), Status::EINVAL);
        // 3. Not the start of the allocation.
        expect.status("not the start", vm_release_wired_memory(small + 8, 56), Status::EINVAL);
        // The right release, then the same again.
        expect.status("release", vm_release_wired_memory(small, 64), Status::OK);
        // 4. Double release.
        expect.status("double release", vm_release_wired_memory(small, 64), Status::EINVAL);
        // 5. Released while wired above its initial count.
        expect.status("wire", vm_wire_memory(page, false, 4096), Status::OK);
        expect.status("release while wired", vm_release_wired_memory(page_addr, 4096), Status::EINVAL);
        vm_unwire_memory(page, false, 4096);
        expect.status("release after the unwire", vm_release_wired_memory(page_addr, 4096), Status::OK);
        expect.status("release the unwired one", vm_release_unwired_memory(other_addr, 64), Status::OK);
    }
    if expect.0 > 0 {
        println!("dgux-misuse-release: {} unexpected answers", expect.0);
        return 1;
    }
    println!("dgux-misuse-release: 5 misuses made, each refused");
    0
}
