//! DMA into and out of pages the driver did not hand off, and xmemin of a hidden page: three violations, the transfers still happen, exit 65.
//!
//! The device checks every guest page a transfer touches against the pages
//! hidden with `xmemdma(XMEM_HIDE)`; a real bus-master would go ahead, and so
//! does this one, so each mistake is a violation and the data still moves:
//!
//! 1. `DIR_FROM_DEVICE` into a pinned, attached page that was never hidden:
//!    "DMA to a page the driver did not hand off";
//! 2. `DIR_MEMORY_TO_MEMORY` from a kernel page that was never hidden into a
//!    hidden one: "DMA from a page …";
//! 3. `xmemin` through a second attachment from the page still hidden for
//!    the device (the VMM copies it, and reports the touch).
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::dma::{DIR_FROM_DEVICE, DIR_MEMORY_TO_MEMORY, DmaEngine};
use kmemvisor_guest::println;
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, XMEM_ACC_CHK, XMEM_HIDE, XMEM_UNHIDE, Xmem};

use kmemvisor_guest::steps::{self, Failed, check};

kmemvisor_firmware::entry!(main);

const PAGE: u64 = 4096;

fn main() -> u32 {
    steps::exit_code("xmem-misuse-handoff", run())
}

fn run() -> Result<(), Failed> {
    // Three pinned pages: a never-hidden target, a never-hidden source, a hidden target.
    let block = aix::xmalloc(3 * PAGE as usize, 12, Heap::PINNED) as u64;
    if block == 0 {
        return Err(Failed("xmalloc", 0));
    }
    for i in 0..3 * PAGE {
        // SAFETY: the block is ours and nothing hides it yet.
        unsafe { core::ptr::write_volatile((block + i) as *mut u8, (i % 253) as u8) };
    }
    let engine = check("mapping the DMA engine", DmaEngine::map())?;
    let mut d = Xmem::default();
    check("xmattach", xmem::xmattach(block, 3 * PAGE, &mut d, SYS_ADSPACE))?;
    let mut second = Xmem::default();
    check("xmattach (second)", xmem::xmattach(block, 3 * PAGE, &mut second, SYS_ADSPACE))?;
    let unhanded_target = check("xmemdma(XMEM_ACC_CHK)", xmem::xmemdma(&d, block, XMEM_ACC_CHK))?;
    let unhanded_source = check("xmemdma(XMEM_ACC_CHK)", xmem::xmemdma(&d, block + PAGE, XMEM_ACC_CHK))?;
    let hidden = check("xmemdma(XMEM_HIDE)", xmem::xmemdma(&d, block + 2 * PAGE, XMEM_HIDE))?;
    println!(
        "xmem-misuse-handoff: pages {block:#x} (real {unhanded_target:#x}) and {:#x} (real {unhanded_source:#x}) not handed off, {:#x} (real {hidden:#x}) hidden",
        block + PAGE,
        block + 2 * PAGE
    );
    let channel = engine.channel(0);
    // 1: into a page not handed off (device memory is zero from boot).
    // SAFETY: the page is ours; the guest reads it only after the transfer.
    let to = unsafe { engine.transfer(channel, 0, unhanded_target + 16, 32, DIR_FROM_DEVICE) };
    // 2: from a page not handed off into the hidden one.
    // SAFETY: the destination is handed off.
    let from = unsafe { engine.transfer(channel, unhanded_source, hidden, 64, DIR_MEMORY_TO_MEMORY) };
    println!("xmem-misuse-handoff: DMA to the page not handed off: {to:?}; DMA from the page not handed off: {from:?}");
    // 3: the CPU side: xmemin through the second attachment of the hidden page.
    let mut k = [0u8; 64];
    // SAFETY: `k` is a live local buffer of 64 bytes.
    let (status, moved) =
        unsafe { xmem::raw::xmemin(block + 2 * PAGE, k.as_mut_ptr() as u64, 64, &second as *const Xmem as u64) };
    println!("xmem-misuse-handoff: xmemin of the hidden page: {} ({moved} bytes)", status.name());
    check("xmemdma(XMEM_UNHIDE)", xmem::xmemdma(&d, block + 2 * PAGE, XMEM_UNHIDE))?;
    // The transfers happened: zeros landed in the first page, the second page's bytes in the third.
    let read = |i: u64| {
        // SAFETY: the block is ours and nothing is hidden any more.
        unsafe { core::ptr::read_volatile((block + i) as *const u8) }
    };
    let zeroed = (16..48).all(|i| read(i) == 0);
    let copied = (0..64).all(|i| read(2 * PAGE + i) == read(PAGE + i)) && (0..64).all(|i| k[i as usize] == read(PAGE + i));
    println!("xmem-misuse-handoff: the transfers still happened: zeros landed {zeroed}, bytes copied {copied}");
    check("xmdetach", xmem::xmdetach(&mut d))?;
    check("xmdetach (second)", xmem::xmdetach(&mut second))?;
    // SAFETY: no transfer runs and nothing uses the window any more.
    check("unmapping the DMA engine", unsafe { engine.unmap() })?;
    // SAFETY: detached and unused.
    if unsafe { aix::xmfree(block as *mut u8, Heap::PINNED) } != 0 {
        return Err(Failed("xmfree", 0));
    }
    if to.is_err() || from.is_err() || status != Status::OK || !zeroed || !copied {
        return Err(Failed("the checks", 0));
    }
    println!("xmem-misuse-handoff: 3 misuses made");
    Ok(())
}
