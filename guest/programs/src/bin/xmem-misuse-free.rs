//! Freeing memory while it is attached: xmfree, vm_release_wired_memory, vm_release_unwired_memory and process_destroy refused with EBUSY: four violations, exit 65.
//!
//! A cross-memory attachment keeps its memory alive: the driver must
//! `xmdetach` before the memory goes. Each free below is refused (`EBUSY`, a
//! violation) and frees nothing; after `xmdetach` every one succeeds.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::dgux::{self, VM_PAGE_ALIGNED};
use kmemvisor_guest::println;
use kmemvisor_guest::process::{PROT_READ, PROT_WRITE, process_create, process_destroy, process_map, process_switch};
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, USER_ADSPACE, Xmem};

kmemvisor_firmware::entry!(main);

const USER: u64 = 0x1000_0000;
const PAGE: u64 = 4096;

/// The four frees, raw: their statuses.
fn frees(block: u64, wired: u64, unwired: u64, pid: u64) -> [Status; 4] {
    // SAFETY: each free is either refused (nothing changes) or frees memory
    // this guest no longer uses.
    unsafe {
        [
            aix::raw::xmfree(block, Heap::KERNEL.0).0,
            dgux::raw::vm_release_wired_memory(wired, PAGE),
            dgux::raw::vm_release_unwired_memory(unwired, PAGE),
            process_destroy(pid).err().unwrap_or(Status::OK),
        ]
    }
}

fn main() -> u32 {
    let block = aix::xmalloc(PAGE as usize, 12, Heap::KERNEL) as u64;
    let wired = dgux::vm_perhaps_get_wired_memory(PAGE as u32, VM_PAGE_ALIGNED) as u64;
    let unwired = dgux::vm_perhaps_get_unwired_memory(PAGE as u32, VM_PAGE_ALIGNED) as u64;
    let Ok(pid) = process_create() else {
        println!("xmem-misuse-free: process_create failed");
        return 1;
    };
    let mut d = [Xmem::default(); 4];
    let [dk, dw, du, dp] = &mut d;
    // SAFETY: nothing references user memory yet.
    let attached = unsafe { process_switch(pid) }
        .and_then(|()| process_map(USER, PAGE, PROT_READ | PROT_WRITE))
        .and_then(|()| xmem::xmattach(USER, 16, dp, USER_ADSPACE))
        .and_then(|()| xmem::xmattach(block + 8, 16, dk, SYS_ADSPACE))
        .and_then(|()| xmem::xmattach(wired, PAGE, dw, SYS_ADSPACE))
        .and_then(|()| xmem::xmattach(unwired + PAGE - 1, 1, du, SYS_ADSPACE))
        // SAFETY: no reference into user memory lives.
        .and_then(|()| unsafe { process_switch(0) });
    if block == 0 || wired == 0 || unwired == 0 || attached.is_err() {
        println!("xmem-misuse-free: setup failed: {attached:?}");
        return 1;
    }
    println!(
        "xmem-misuse-free: attached kernel heap block {block:#x}, wired block {wired:#x}, unwired block {unwired:#x}, process {pid}"
    );
    let refused = frees(block, wired, unwired, pid);
    println!(
        "xmem-misuse-free: while attached: xmfree, vm_release_wired_memory, vm_release_unwired_memory, process_destroy: {:?}",
        refused.map(Status::name)
    );
    let detached = d.iter_mut().map(xmem::xmdetach).filter(Result::is_ok).count();
    let freed = frees(block, wired, unwired, pid);
    println!("xmem-misuse-free: after {detached} xmdetach: {:?}", freed.map(Status::name));
    if refused != [Status::EBUSY; 4] || detached != 4 || freed != [Status::OK; 4] {
        return 1;
    }
    println!("xmem-misuse-free: 4 frees of attached memory, each refused");
    0
}
