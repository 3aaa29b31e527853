//! A device's write lost to the pager, and reported: with `--memory-limit 4K`, DMA into an object page whose storage key is read-only (so XMEM_UNHIDE sets no modified bit) is evicted as clean and read back old; one violation, `paging.lost-modification`.
//!
//! 1. An object of two pages, attached; page 0 is filled with `0x11`,
//!    written out (`vm_writep`) and read back: clean, its copy on the device.
//! 2. `vm_protectp(RDONLY)` on page 0, then the AIX hand-off: `pin`,
//!    `xmattach`, `xmemdma(XMEM_HIDE)`, a transfer from the device,
//!    `xmemdma(XMEM_UNHIDE)`, `xmdetach`, `unpin`. AIX sets the modified bit
//!    at the last unhide *unless the page has a read-only storage key*: the
//!    kernel still thinks page 0 clean. The guest reads the device's data.
//! 3. The limit is one page: as soon as another page comes in (page 1 is
//!    touched), page 0 — clean, with a copy — goes out without a write.
//! 4. Page 0 is read again: the pager brings back the old `0x11`. The
//!    device's data is gone, as on the real system, and the violation says so.
//!
//! Prints what page 0 held before and after, and exits 0 when the loss
//! showed as described (the run's status is 65: one violation).
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::abi::layout::PAGE_SIZE;
use kmemvisor_guest::aix;
use kmemvisor_guest::aix_vmm::{self, D_REMOTE, RDONLY, V_CLIENT, VM_KEY_UNLIMITED, VmHandle, VmId};
use kmemvisor_guest::dma::{DIR_FROM_DEVICE, DmaEngine};
use kmemvisor_guest::println;
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, XMEM_HIDE, XMEM_UNHIDE, Xmem};

kmemvisor_firmware::entry!(main);

const STRATEGY: u64 = 0xffff_c000_0030_0000;
/// What page 0 holds before the device writes it.
const OLD: u8 = 0x11;

fn peek(at: u64) -> u8 {
    // SAFETY: callers read the attached object's pages.
    unsafe { read_volatile(at as *const u8) }
}

fn check(what: &'static str, status: Status) -> Result<(), &'static str> {
    if status == Status::OK { Ok(()) } else { Err(what) }
}

fn run() -> Result<(), &'static str> {
    check("vm_mount", aix_vmm::vm_mount(D_REMOTE, STRATEGY, 8))?;
    let mut vmid = VmId(0);
    check("vms_create", aix_vmm::vms_create(&mut vmid, V_CLIENT, 0, 2 * PAGE_SIZE, 0, 0))?;
    let handle = aix_vmm::vm_handle(vmid, VM_KEY_UNLIMITED);
    let at = if handle == VmHandle::INVALID { 0 } else { aix_vmm::vm_att(handle, 0) as u64 };
    if at == 0 {
        return Err("vm_att");
    }
    for i in 0..PAGE_SIZE {
        // SAFETY: page 0 of the object, attached writable.
        unsafe { write_volatile((at + i) as *mut u8, OLD) };
    }
    check("vm_writep", aix_vmm::vm_writep(vmid, 0, 1))?;
    if peek(at) != OLD {
        return Err("page 0 did not come back");
    }
    check("vm_protectp", aix_vmm::vm_protectp(vmid, 0, 1, RDONLY))?;
    // The hand-off, as the aix-correct flow of dma-handoff makes it.
    let engine = DmaEngine::map().map_err(|_| "mapping the DMA engine")?;
    check("pin", aix::pin(at as *const u8, PAGE_SIZE as usize))?;
    let mut d = Xmem::default();
    xmem::xmattach(at, PAGE_SIZE, &mut d, SYS_ADSPACE).map_err(|_| "xmattach")?;
    let real = xmem::xmemdma(&d, at, XMEM_HIDE).map_err(|_| "xmemdma(XMEM_HIDE)")?;
    // SAFETY: the page is handed to the device until the unhide below.
    unsafe { engine.start(engine.channel(0), 0, real, PAGE_SIZE, DIR_FROM_DEVICE) };
    engine.wait(engine.channel(0)).map_err(|_| "the transfer")?;
    xmem::xmemdma(&d, at, XMEM_UNHIDE).map_err(|_| "xmemdma(XMEM_UNHIDE)")?;
    xmem::xmdetach(&mut d).map_err(|_| "xmdetach")?;
    let written = peek(at);
    println!("aix-lost-modification: the device wrote {written:#04x} into page 0 (it held {OLD:#04x})");
    check("unpin", aix::unpin(at as *const u8, PAGE_SIZE as usize))?;
    // Page 1 comes in; page 0, clean as far as the kernel knows, goes out unwritten.
    // SAFETY: page 1 of the object, attached writable.
    unsafe { write_volatile((at + PAGE_SIZE) as *mut u8, 1) };
    let after = peek(at);
    println!("aix-lost-modification: after the pager needed its frame, page 0 reads {after:#04x}");
    // SAFETY: no transfer runs.
    unsafe { engine.unmap() }.map_err(|_| "unmapping the DMA engine")?;
    if written == OLD || after != OLD {
        return Err("the device's data was not lost as described");
    }
    Ok(())
}

fn main() -> u32 {
    match run() {
        Ok(()) => {
            println!("aix-lost-modification: the device's data is lost, as on AIX");
            0
        }
        Err(what) => {
            println!("aix-lost-modification: {what} failed");
            1
        }
    }
}
