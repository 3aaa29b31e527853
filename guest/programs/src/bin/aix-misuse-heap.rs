//! A double xmfree and an xmalloc left live at exit: two violations, exit 65.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::aix::{Heap, raw, xmalloc};
use kmemvisor_guest::println;

kmemvisor_firmware::entry!(main);

fn main() -> u32 {
    let freed = xmalloc(64, 3, Heap::KERNEL);
    let leaked = xmalloc(100, 4, Heap::PINNED);
    if freed.is_null() || leaked.is_null() {
        println!("aix-misuse-heap: an xmalloc failed");
        return 1;
    }
    println!("aix-misuse-heap: freeing {freed:p} twice, leaving {leaked:p} (100 bytes, pinned_heap) allocated");
    // SAFETY: the allocation is not used after the first free; the second is
    // the misuse, refused without freeing anything.
    let (first, second) = unsafe { (raw::xmfree(freed as u64, Heap::KERNEL.0).0, raw::xmfree(freed as u64, Heap::KERNEL.0).0) };
    println!("aix-misuse-heap: xmfree: {}, again: {}", first.name(), second.name());
    if (first, second) != (Status::OK, Status::EINVAL) {
        println!("aix-misuse-heap: expected OK, then EINVAL");
        return 1;
    }
    println!("aix-misuse-heap: 2 misuses made (the leak counts at exit)");
    0
}
