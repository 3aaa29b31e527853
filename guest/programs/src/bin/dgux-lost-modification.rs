//! A device's write lost to the pager, the DG/UX way: with `--memory-limit 4K`, DMA into a wired page of unwired memory that is then unwired without the modified mark is evicted as clean and read back old; mode `lost` (default) reports `dma.unwire-without-modified-mark` and `paging.lost-modification`, mode `marked` unwires with the mark and keeps the data.
//!
//! 1. A paging device (`vm_mount`), and three pages of unwired memory, P,
//!    Q and R. P is filled with `0x11`; Q and R are touched: under the
//!    one-page limit the pager writes P out (modified) to make room.
//! 2. The DG/UX hand-off: `vm_check_access_and_wire_memory` of P (its page
//!    comes back in), `vm_get_physical_byte_address`, a transfer from the
//!    device, then the unwire. The seed warns that "failure to
//!    appropriately set the reference and/or modified bits can cause new
//!    buffer data to be lost": mode `lost` unwires with `vm_unwire_memory`,
//!    which marks nothing, so the kernel still thinks P clean, its copy on
//!    the device current; mode `marked` unwires with
//!    `vm_mark_mod_and_ref_and_unwire_memory`.
//! 3. Q and R are touched by turns: P goes out — without a write in mode `lost`.
//! 4. P is read: mode `lost` sees the old `0x11` (the device's data is
//!    gone, as on the real system, and the violation names the transfer and
//!    the unwire); mode `marked` sees the device's data.
//!
//! Exits 0 when the data came back as the mode says (the run's status is 65
//! in mode `lost`: two violations).
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::abi::dgux::{SC_WRITE_ACCESS, VM_PAGE_ALIGNED};
use kmemvisor_guest::aix_vmm::{self, D_REMOTE};
use kmemvisor_guest::dgux::raw;
use kmemvisor_guest::dma::{DIR_FROM_DEVICE, DmaEngine};
use kmemvisor_guest::{args, println};

kmemvisor_firmware::entry!(main);

const PAGE: u64 = 4096;
const STRATEGY: u64 = 0xffff_c000_0030_0000;
/// What P holds before the device writes it.
const OLD: u8 = 0x11;

fn peek(at: u64) -> u8 {
    // SAFETY: callers read a page of their unwired memory.
    unsafe { read_volatile(at as *const u8) }
}

fn check(what: &'static str, status: Status) -> Result<(), &'static str> {
    if status == Status::OK { Ok(()) } else { Err(what) }
}

/// Another page of memory needed: a store to `q`, which the pager may have to bring in.
fn touch(q: u64) {
    // SAFETY: `q` is a page of this guest's unwired memory.
    unsafe { write_volatile(q as *mut u8, peek(q).wrapping_add(1)) };
}

fn run(marked: bool) -> Result<(), &'static str> {
    check("vm_mount", aix_vmm::vm_mount(D_REMOTE, STRATEGY, 8))?;
    let (status, p) = raw::vm_get_unwired_memory(PAGE, u64::from(VM_PAGE_ALIGNED));
    check("vm_get_unwired_memory (P)", status)?;
    for i in 0..PAGE {
        // SAFETY: page P, just allocated.
        unsafe { write_volatile((p + i) as *mut u8, OLD) };
    }
    let (status, q) = raw::vm_get_unwired_memory(PAGE, u64::from(VM_PAGE_ALIGNED));
    check("vm_get_unwired_memory (Q)", status)?;
    let (status, r) = raw::vm_get_unwired_memory(PAGE, u64::from(VM_PAGE_ALIGNED));
    check("vm_get_unwired_memory (R)", status)?;
    touch(q);
    touch(r);
    let engine = DmaEngine::map().map_err(|_| "mapping the DMA engine")?;
    check("vm_check_access_and_wire_memory", raw::vm_check_access_and_wire_memory(p, 0, PAGE, SC_WRITE_ACCESS))?;
    if peek(p) != OLD {
        return Err("P did not come back from the paging device");
    }
    let real = kmemvisor_guest::dgux::physical_address_of(p as *const u8).ok_or("vm_get_physical_byte_address")?;
    // SAFETY: P is wired, handed to the device until the unwire below.
    unsafe { engine.start(engine.channel(0), 0, real, PAGE, DIR_FROM_DEVICE) };
    engine.wait(engine.channel(0)).map_err(|_| "the transfer")?;
    let written = peek(p);
    println!("dgux-lost-modification: the device wrote {written:#04x} into P (it held {OLD:#04x})");
    if marked {
        check("vm_mark_mod_and_ref_and_unwire_memory", raw::vm_mark_mod_and_ref_and_unwire_memory(p, 0, PAGE))?;
    } else {
        check("vm_unwire_memory", raw::vm_unwire_memory(p, 0, PAGE))?;
    }
    // Q and R come in by turns, each taking another page out: P, unwired
    // and untouched, loses its second chance and goes out — clean as far as
    // the kernel knows in mode `lost`.
    for _ in 0..4 {
        touch(q);
        touch(r);
    }
    let after = peek(p);
    println!("dgux-lost-modification: after the pager needed its frame, P reads {after:#04x}");
    // SAFETY: no transfer runs.
    unsafe { engine.unmap() }.map_err(|_| "unmapping the DMA engine")?;
    for page in [p, q, r] {
        // SAFETY: unwired, and no longer used.
        check("vm_release_unwired_memory", unsafe { raw::vm_release_unwired_memory(page, PAGE) })?;
    }
    if written == OLD {
        return Err("the device wrote nothing new");
    }
    match (marked, after) {
        (false, OLD) => println!("dgux-lost-modification: the device's data is lost, as the seed warns"),
        (true, a) if a == written => println!("dgux-lost-modification: marked modified, the device's data is kept"),
        _ => return Err("P did not read as the mode says"),
    }
    Ok(())
}

fn main() -> u32 {
    let marked = match args::args().next().unwrap_or("lost") {
        "lost" => false,
        "marked" => true,
        _ => {
            println!("dgux-lost-modification: which mode? lost, marked");
            return 2;
        }
    };
    match run(marked) {
        Ok(()) => 0,
        Err(what) => {
            println!("dgux-lost-modification: {what} failed");
            1
        }
    }
}
