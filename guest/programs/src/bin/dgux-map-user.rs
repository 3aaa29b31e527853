//! vm_map_physical_memory of user addresses, as the DG/UX page allows: maps the DMA engine's window and a kernel page over a process's pages; exit 0, no violation.
//!
//! In a process, the driver maps two pages of user memory (`process_map`,
//! DG/UX's valloc), then:
//!
//! 1. maps the DMA engine's register window over the first with control
//!    bit 0 clear (a user address) and reads the engine's id through it;
//! 2. maps the frame of a wired kernel page over the second, and sees the
//!    kernel page's bytes through the user address;
//! 3. checks the refusals: an unmapped user page
//!    (`VM_EINVAL_MMAP_SPACE_UNALLOCATED`), a mapping twice
//!    (`VM_EINVAL_MMAP_ALREADY_MAPPED`), an unmap of a page never mapped
//!    (`VM_EINVAL_MUNMAP_DATA_NOT_MAPPED`);
//! 4. unmaps both: the pages are the process's own again, zero-filled.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::abi::dgux::{MAP_SHARED, PROT_READ, PROT_WRITE, VM_PAGE_ALIGNED};
use kmemvisor_guest::abi::dma::{DMA_ENGINE_GPA, DMA_ENGINE_ID, REG_ID};
use kmemvisor_guest::dgux::raw;
use kmemvisor_guest::println;
use kmemvisor_guest::process;

kmemvisor_firmware::entry!(main);

const PAGE: u64 = 4096;
const USER: u64 = 0x2000_0000;
/// Control flags for a user address: bit 0 clear.
const USER_SPACE: u64 = 0;

fn main() -> u32 {
    match run() {
        Ok(()) => {
            println!("dgux-map-user: every call answered as expected");
            0
        }
        Err(what) => {
            println!("dgux-map-user: {what}");
            1
        }
    }
}

fn expect(what: &'static str, status: Status, expected: Status) -> Result<(), &'static str> {
    if status == expected { Ok(()) } else { Err(what) }
}

fn read(va: u64) -> u64 {
    // SAFETY: callers pass a mapped, readable user address of the current process.
    unsafe { core::ptr::read_volatile(va as *const u64) }
}

fn run() -> Result<(), &'static str> {
    let (status, kernel_page) = raw::vm_get_wired_memory(PAGE, u64::from(VM_PAGE_ALIGNED));
    expect("vm_get_wired_memory", status, Status::OK)?;
    // SAFETY: the page is ours.
    unsafe { core::ptr::write_volatile(kernel_page as *mut u64, 0x5eed_f00d) };
    let frame = kmemvisor_guest::dgux::physical_address_of(kernel_page as *const u8).ok_or("vm_get_physical_byte_address")?;
    let pid = process::process_create().map_err(|_| "process_create")?;
    // SAFETY: nothing references user memory yet.
    unsafe { process::process_switch(pid) }.map_err(|_| "process_switch")?;
    process::process_map(USER, 2 * PAGE, process::PROT_READ | process::PROT_WRITE).map_err(|_| "process_map")?;
    let rw = PROT_READ | PROT_WRITE;
    let shared = MAP_SHARED;
    // SAFETY: the user pages are ours; what they showed is not used again.
    unsafe {
        expect(
            "mapping the engine",
            raw::vm_map_physical_memory(USER, DMA_ENGINE_GPA, PAGE, rw, shared, USER_SPACE),
            Status::OK,
        )?;
        expect(
            "mapping the kernel frame",
            raw::vm_map_physical_memory(USER + PAGE, frame, PAGE, rw, shared, USER_SPACE),
            Status::OK,
        )?;
    }
    let id = read(USER + REG_ID);
    let seen = read(USER + PAGE);
    println!("dgux-map-user: engine id {id:#x} and kernel word {seen:#x} through user addresses");
    if id != DMA_ENGINE_ID || seen != 0x5eed_f00d {
        return Err("the mappings show the wrong things");
    }
    // SAFETY: the calls below are refused and change nothing.
    unsafe {
        let unmapped = raw::vm_map_physical_memory(USER + 4 * PAGE, frame, PAGE, rw, shared, USER_SPACE);
        expect("an unmapped user page", unmapped, Status::VM_EINVAL_MMAP_SPACE_UNALLOCATED)?;
        let twice = raw::vm_map_physical_memory(USER, frame, PAGE, rw, shared, USER_SPACE);
        expect("a second mapping", twice, Status::VM_EINVAL_MMAP_ALREADY_MAPPED)?;
    }
    // SAFETY: nothing uses what the pages showed any more.
    unsafe {
        expect("unmapping", raw::vm_unmap_physical_memory(USER, 2 * PAGE, USER_SPACE), Status::OK)?;
        expect(
            "unmapping again",
            raw::vm_unmap_physical_memory(USER, PAGE, USER_SPACE),
            Status::VM_EINVAL_MUNMAP_DATA_NOT_MAPPED,
        )?;
    }
    if read(USER) != 0 || read(USER + PAGE) != 0 {
        return Err("the pages are not zero-filled after the unmap");
    }
    // SAFETY: no reference into the process's memory lives.
    unsafe { process::process_switch(0) }.map_err(|_| "process_switch back")?;
    // SAFETY: as above.
    unsafe { process::process_destroy(pid) }.map_err(|_| "process_destroy")?;
    // SAFETY: the page is unused.
    expect("the release", unsafe { raw::vm_release_wired_memory(kernel_page, PAGE) }, Status::OK)
}
