//! A stale copy of a detached descriptor used with xmdetach, xmemin, xmemdma and xmempin: four violations ("after xmdetach"), exit 65.
//!
//! The descriptor is a receipt: the driver keeps a copy of it (as a driver
//! that stores it in two structures would), detaches through the original,
//! and later uses the copy. The VMM recognises the copy as naming an
//! attachment that `xmdetach` ended: each use is `EINVAL` and a violation.
//! (The original itself had its handle zeroed by `xmdetach`: using it again
//! is a plain `EINVAL`, as for any descriptor that names nothing; the
//! conformance guest `xmem` checks that.)
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::println;
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, XMEM_ACC_CHK, Xmem, raw};

kmemvisor_firmware::entry!(main);

fn main() -> u32 {
    let block = aix::xmalloc(4096, 12, Heap::KERNEL) as u64;
    let mut d = Xmem::default();
    if block == 0 || xmem::xmattach(block, 4096, &mut d, SYS_ADSPACE).is_err() {
        println!("xmem-misuse-descriptor: setup failed");
        return 1;
    }
    let mut stale = d;
    let detached = xmem::xmdetach(&mut d);
    println!("xmem-misuse-descriptor: kernel block {block:#x} attached as handle {}, detached: {detached:?}", stale.handle);
    let mut k = [0u8; 16];
    let answers = [
        xmem::xmdetach(&mut stale).err().unwrap_or(Status::OK),
        // SAFETY: refused: `k` is a live local buffer either way.
        unsafe { raw::xmemin(block, k.as_mut_ptr() as u64, 16, &stale as *const Xmem as u64) }.0,
        xmem::xmemdma(&stale, block, XMEM_ACC_CHK).err().unwrap_or(Status::OK),
        xmem::xmempin(block, 16, &stale).err().unwrap_or(Status::OK),
    ];
    println!(
        "xmem-misuse-descriptor: the stale copy: xmdetach, xmemin, xmemdma, xmempin answered {:?}",
        answers.map(Status::name)
    );
    // SAFETY: detached and unused.
    let freed = unsafe { aix::xmfree(block as *mut u8, Heap::KERNEL) };
    if detached.is_err() || answers != [Status::EINVAL; 4] || freed != 0 {
        return 1;
    }
    println!("xmem-misuse-descriptor: 4 uses after xmdetach, each refused with EINVAL");
    0
}
