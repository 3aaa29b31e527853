//! Six bad unwires (below the floor of wired and unwired pages, a user address, an unmapped page, …): exit 65.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::{Status, layout};
use kmemvisor_guest::dgux::raw::{vm_mark_ref_and_unwire_memory, vm_unwire_memory};
use kmemvisor_guest::dgux::{
    VM_PAGE_ALIGNED, vm_get_unwired_memory, vm_get_wired_memory, vm_release_unwired_memory, vm_release_wired_memory,
    vm_wire_memory,
};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

/// Counts the answers that differ from what was expected.
struct Expect(u32);

impl Expect {
    fn status(&mut self, what: &str, got: Status, want: Status) {
        if got == want {
            println!("dgux-misuse-unwire: {what}: {}", got.name());
        } else {
            println!("dgux-misuse-unwire: {what}: got {}, expected {}", got.name(), want.name());
            self.0 += 1;
        }
    }
}

/// An arena address no allocation reaches: the last page of the unwired arena.
const UNMAPPED: u64 = layout::UNWIRED_ARENA_VA + layout::ARENA_SIZE - layout::PAGE_SIZE;

fn main() -> u32 {
    let mut expect = Expect(0);
    let wired = vm_get_wired_memory(4096, VM_PAGE_ALIGNED);
    let unwired = vm_get_unwired_memory(4096, VM_PAGE_ALIGNED);
    let pair = vm_get_unwired_memory(8192, VM_PAGE_ALIGNED);
    if wired.is_null() || unwired.is_null() || pair.is_null() {
        println!("dgux-misuse-unwire: a get failed");
        return 1;
    }
    let (w, u, p) = (wired as u64, unwired as u64, pair as u64);
    println!("dgux-misuse-unwire: wired page {w:#x}, unwired page {u:#x}, unwired pair {p:#x}");

    // 1. A wired page at its initial count, 1.
    expect.status("wired page below its floor", vm_unwire_memory(w, 0, 4096), Status::EINVAL);
    // 2. An unwired page at its initial count, 0.
    expect.status("unwired page below its floor", vm_unwire_memory(u, 0, 4096), Status::EINVAL);
    // 3. A user address: there are no user address spaces.
    expect.status("user address", vm_unwire_memory(u, 1, 4096), Status::VM_STATUS_PROCESS_HAS_NO_VM);
    // 4. An unmapped page.
    expect.status("unmapped page", vm_unwire_memory(UNMAPPED, 0, 4096), Status::EINVAL);
    // 5. Two pages, only the first wired: refused as a whole, nothing changes…
    expect.status("wire the first of two", vm_wire_memory(pair, false, 1), Status::OK);
    expect.status("unwire both (the second at its floor)", vm_unwire_memory(p, 0, 8192), Status::EINVAL);
    // …so the first page is still wired and this unwire is fine.
    expect.status("unwire the first", vm_unwire_memory(p + 100, 0, 1), Status::OK);
    // 6. A mark routine below the floor: refused, nothing marked.
    expect.status("mark_ref_and_unwire below the floor", vm_mark_ref_and_unwire_memory(u, 0, 4096), Status::EINVAL);

    // SAFETY: the three allocations are not used again.
    unsafe {
        vm_release_wired_memory(wired, 4096);
        vm_release_unwired_memory(unwired, 4096);
        vm_release_unwired_memory(pair, 8192);
    }
    if expect.0 > 0 {
        println!("dgux-misuse-unwire: {} unexpected answers", expect.0);
        return 1;
    }
    println!("dgux-misuse-unwire: 6 misuses made, each refused");
    0
}
