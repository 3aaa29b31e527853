//! xmemdma misuse: hiding a page that is not pinned, unhiding one not hidden, a batch with an unpinned page, xmdetach with a page hidden: four violations, exit 65.
//!
//! Each call is refused and changes nothing:
//!
//! 1. `xmemdma(XMEM_HIDE)` of a page that is not pinned (`EINVAL`);
//! 2. `xmemdma(XMEM_UNHIDE)` of a page that is not hidden (`EINVAL`);
//! 3. `xmemdma_pages(XMEM_HIDE)` of three pages, the last not pinned
//!    (`EINVAL`): the first two are not hidden either (all or nothing: the
//!    guest reads them, which would stall for good were they hidden);
//! 4. `xmdetach` while a page is hidden through the descriptor (`EBUSY`);
//!    then the page is unhidden and the detach succeeds.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::println;
use kmemvisor_guest::process::{PROT_READ, PROT_WRITE, process_create, process_destroy, process_map, process_switch};
use kmemvisor_guest::xmem::{self, USER_ADSPACE, XMEM_HIDE, XMEM_UNHIDE, Xmem};

kmemvisor_firmware::entry!(main);

/// Three writable user pages.
const USER: u64 = 0x1000_0000;
const PAGE: u64 = 4096;

fn status<T>(result: Result<T, Status>) -> Status {
    result.err().unwrap_or(Status::OK)
}

fn main() -> u32 {
    let Ok(pid) = process_create() else {
        println!("xmem-misuse-dma: process_create failed");
        return 1;
    };
    let mut d = Xmem::default();
    // SAFETY: nothing references user memory yet.
    let setup = unsafe { process_switch(pid) }
        .and_then(|()| process_map(USER, 3 * PAGE, PROT_READ | PROT_WRITE))
        .and_then(|()| xmem::xmattach(USER, 3 * PAGE, &mut d, USER_ADSPACE));
    if setup.is_err() {
        println!("xmem-misuse-dma: setup failed: {setup:?}");
        return 1;
    }
    println!("xmem-misuse-dma: process {pid}, user pages {USER:#x}..{:#x} attached", USER + 3 * PAGE);
    let answers = [
        status(xmem::xmemdma(&d, USER + 2 * PAGE, XMEM_HIDE)),
        status(xmem::xmemdma(&d, USER, XMEM_UNHIDE)),
        status(xmem::xmempin(USER, 2 * PAGE, &d)),
        status(xmem::xmemdma_pages(&d, USER, 3, XMEM_HIDE, &mut [])),
    ];
    // SAFETY: mapped and current; were a page hidden, this read would wait forever.
    let first_two =
        unsafe { [core::ptr::read_volatile(USER as *const u8), core::ptr::read_volatile((USER + PAGE) as *const u8)] };
    println!(
        "xmem-misuse-dma: hide of an unpinned page, unhide without hide, xmempin, a batch with an unpinned page: {:?}",
        answers.map(Status::name)
    );
    println!("xmem-misuse-dma: the batch's pinned pages were not hidden: read {first_two:?}");
    let hidden = status(xmem::xmemdma(&d, USER, XMEM_HIDE));
    let busy = status(xmem::xmdetach(&mut d));
    println!("xmem-misuse-dma: xmdetach with a page hidden: {}", busy.name());
    let cleanup = [
        status(xmem::xmemdma(&d, USER, XMEM_UNHIDE)),
        status(xmem::xmemunpin(USER, 2 * PAGE, &d)),
        status(xmem::xmdetach(&mut d)),
        // SAFETY: no reference into the process's memory lives.
        status(unsafe { process_switch(0).and_then(|()| process_destroy(pid)) }),
    ];
    if answers != [Status::EINVAL, Status::EINVAL, Status::OK, Status::EINVAL]
        || hidden != Status::OK
        || busy != Status::EBUSY
        || cleanup != [Status::OK; 4]
    {
        println!("xmem-misuse-dma: unexpected answers; cleanup {:?}", cleanup.map(Status::name));
        return 1;
    }
    println!("xmem-misuse-dma: 4 misuses made, each refused");
    0
}
