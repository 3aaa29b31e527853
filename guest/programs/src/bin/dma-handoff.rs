//! A driver that has the DMA engine fill one page, the AIX way or the DG/UX
//! way, correctly or with one hand-off mistake; the mode is the first guest
//! argument. The guest exits 0 when every call answered as expected; the
//! violations (device time is counted in exits, so with the default
//! `--dma-latency 1` the transfer is still queued at the driver's next call)
//! make it 65:
//!
//! - `aix-correct`: xmattach, xmemdma(XMEM_HIDE), doorbell, wait,
//!   xmemdma(XMEM_UNHIDE): no violation.
//! - `aix-unhide-early`: unhides right after the doorbell: the unhide is a
//!   violation, and the transfer then writes a page not handed off (two).
//! - `dgux-correct`: as memory_allocation(3K) says — wire with
//!   vm_check_access_and_wire_memory, vm_get_physical_byte_address, doorbell,
//!   wait, vm_mark_and_unwire_memory with SC_WRITE_ACCESS: no violation.
//! - `dgux-unwire-early`: unwires (marking modified) right after the
//!   doorbell: the unwire and the transfer's write are violations (two).
//! - `dgux-no-modify`: unwires after the completion with vm_unwire_memory,
//!   which marks nothing: new buffer data can be lost (one).
//! - `dgux-unwired-target`: DMA into unwired memory (one).
//! - `dgux-release-early`: releases DG/UX wired memory right after the
//!   doorbell: `EBUSY`, nothing released (one); released after the wait.
//! - `dgux-double-fetch`: a receive driver reads the length the device
//!   writes at the start of its wired buffer to check it, makes two calls,
//!   and reads it again to use it, all before the transfer is complete: the
//!   device's write lands between the two reads (with the default latency,
//!   at the first call), a double fetch (one).
//! - `dgux-fetch-after-completion`: the same driver, waiting for the
//!   completion before its two reads: no violation.
//! - `irq-no-handler`: asks for the completion interrupt (`REG_INTERRUPT`)
//!   without registering a handler: the interrupt is dropped with a
//!   violation (one); polling still sees the transfer done.
//! - `irq-return-outside`: `interrupt_return` with no handler running:
//!   `EINVAL` (one).
//! - `irq-stuck`: the completion handler never returns: the vCPU stays at
//!   interrupt level and the run ends on `--timeout` (exit status 71).
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::abi::dgux::{SC_WRITE_ACCESS, VM_PAGE_ALIGNED};
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::dgux::raw;
use kmemvisor_guest::dma::{DIR_FROM_DEVICE, DIR_TO_DEVICE, DmaEngine};
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, XMEM_HIDE, XMEM_UNHIDE, Xmem};
use kmemvisor_guest::{args, println};

kmemvisor_firmware::entry!(main);

const PAGE: u64 = 4096;

fn main() -> u32 {
    let mode = args::args().next().unwrap_or("");
    let result = match mode {
        "aix-correct" => aix_flow(false),
        "aix-unhide-early" => aix_flow(true),
        "dgux-correct" => dgux_flow(Mistake::None),
        "dgux-unwire-early" => dgux_flow(Mistake::UnwireEarly),
        "dgux-no-modify" => dgux_flow(Mistake::NoModify),
        "dgux-unwired-target" => dgux_flow(Mistake::Unwired),
        "dgux-release-early" => release_early(),
        "dgux-double-fetch" => receive(true),
        "dgux-fetch-after-completion" => receive(false),
        "irq-no-handler" => irq_no_handler(),
        "irq-stuck" => irq_stuck(),
        "irq-return-outside" => {
            // SAFETY: `interrupt_return` takes no arguments; outside a handler it is refused.
            let status = unsafe { kmemvisor_guest::hypercall::call(kmemvisor_guest::abi::Service::InterruptReturn, [0; 6]) };
            expect("interrupt_return outside a handler", status.err().unwrap_or(Status::OK), Status::EINVAL)
        }
        _ => {
            println!(
                "dma-handoff: which mode? aix-correct, aix-unhide-early, dgux-correct, dgux-unwire-early, dgux-no-modify, \
                 dgux-unwired-target, dgux-release-early, dgux-double-fetch, dgux-fetch-after-completion, irq-no-handler, \
                 irq-return-outside, irq-stuck"
            );
            return 2;
        }
    };
    match result {
        Ok(()) => {
            println!("dma-handoff: {mode}: every call answered as expected");
            0
        }
        Err(what) => {
            println!("dma-handoff: {mode}: {what}");
            1
        }
    }
}

fn expect(what: &'static str, status: Status, expected: Status) -> Result<(), &'static str> {
    if status == expected { Ok(()) } else { Err(what) }
}

/// The device fills `bytes` at guest-physical `real` from its memory.
fn start(engine: DmaEngine, real: u64) {
    // SAFETY: the caller hands the page to the device (or, in the buggy
    // modes, deliberately does not); the guest reads it only afterwards.
    unsafe { engine.start(engine.channel(0), 0, real, PAGE, DIR_FROM_DEVICE) };
}

fn aix_flow(unhide_early: bool) -> Result<(), &'static str> {
    let engine = DmaEngine::map().map_err(|_| "mapping the DMA engine")?;
    let page = aix::xmalloc(PAGE as usize, 12, Heap::PINNED) as u64;
    if page == 0 {
        return Err("xmalloc");
    }
    let mut d = Xmem::default();
    xmem::xmattach(page, PAGE, &mut d, SYS_ADSPACE).map_err(|_| "xmattach")?;
    let real = xmem::xmemdma(&d, page, XMEM_HIDE).map_err(|_| "xmemdma(XMEM_HIDE)")?;
    start(engine, real);
    if unhide_early {
        xmem::xmemdma(&d, page, XMEM_UNHIDE).map_err(|_| "the early unhide")?;
    }
    engine.wait(engine.channel(0)).map_err(|_| "the transfer")?;
    if !unhide_early {
        xmem::xmemdma(&d, page, XMEM_UNHIDE).map_err(|_| "xmemdma(XMEM_UNHIDE)")?;
    }
    xmem::xmdetach(&mut d).map_err(|_| "xmdetach")?;
    // SAFETY: detached, unhidden and unused.
    if unsafe { aix::xmfree(page as *mut u8, Heap::PINNED) } != 0 {
        return Err("xmfree");
    }
    // SAFETY: no transfer runs.
    unsafe { engine.unmap() }.map_err(|_| "unmapping the DMA engine")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mistake {
    None,
    UnwireEarly,
    NoModify,
    Unwired,
}

fn dgux_flow(mistake: Mistake) -> Result<(), &'static str> {
    let engine = DmaEngine::map().map_err(|_| "mapping the DMA engine")?;
    let (status, page) = raw::vm_get_unwired_memory(PAGE, u64::from(VM_PAGE_ALIGNED));
    expect("vm_get_unwired_memory", status, Status::OK)?;
    let write = SC_WRITE_ACCESS;
    if mistake != Mistake::Unwired {
        expect("wiring", raw::vm_check_access_and_wire_memory(page, 0, PAGE, write), Status::OK)?;
    }
    let real = kmemvisor_guest::dgux::physical_address_of(page as *const u8).ok_or("vm_get_physical_byte_address")?;
    start(engine, real);
    if mistake == Mistake::UnwireEarly {
        expect("the early unwire", raw::vm_mark_and_unwire_memory(page, 0, PAGE, write), Status::OK)?;
    }
    engine.wait(engine.channel(0)).map_err(|_| "the transfer")?;
    match mistake {
        Mistake::None => expect("vm_mark_and_unwire_memory", raw::vm_mark_and_unwire_memory(page, 0, PAGE, write), Status::OK)?,
        Mistake::NoModify => expect("vm_unwire_memory", raw::vm_unwire_memory(page, 0, PAGE), Status::OK)?,
        Mistake::UnwireEarly | Mistake::Unwired => {}
    }
    // SAFETY: unwired and unused; no transfer runs.
    expect("the release", unsafe { raw::vm_release_unwired_memory(page, PAGE) }, Status::OK)?;
    // SAFETY: no transfer runs.
    unsafe { engine.unmap() }.map_err(|_| "unmapping the DMA engine")
}

fn release_early() -> Result<(), &'static str> {
    let engine = DmaEngine::map().map_err(|_| "mapping the DMA engine")?;
    let (status, page) = raw::vm_get_wired_memory(PAGE, u64::from(VM_PAGE_ALIGNED));
    expect("vm_get_wired_memory", status, Status::OK)?;
    let real = kmemvisor_guest::dgux::physical_address_of(page as *const u8).ok_or("vm_get_physical_byte_address")?;
    start(engine, real);
    // SAFETY: refused while the transfer is queued: nothing is released.
    expect("the early release (EBUSY)", unsafe { raw::vm_release_wired_memory(page, PAGE) }, Status::EBUSY)?;
    engine.wait(engine.channel(0)).map_err(|_| "the transfer")?;
    // SAFETY: the transfer is over and the page unused.
    expect("the release", unsafe { raw::vm_release_wired_memory(page, PAGE) }, Status::OK)?;
    // SAFETY: no transfer runs.
    unsafe { engine.unmap() }.map_err(|_| "unmapping the DMA engine")
}

/// The length at the start of the receive buffer at `page`.
fn length_at(page: u64) -> u64 {
    // SAFETY: the page is wired kernel memory of ours; the device writes it
    // by DMA, which a volatile load reads as it is now.
    unsafe { core::ptr::read_volatile(page as *const u64) }
}

/// A receive: the device fills a wired page; the driver reads the length at
/// its start twice, before the completion (`early`) or after it.
fn receive(early: bool) -> Result<(), &'static str> {
    let engine = DmaEngine::map().map_err(|_| "mapping the DMA engine")?;
    let (status, page) = raw::vm_get_wired_memory(PAGE, u64::from(VM_PAGE_ALIGNED));
    expect("vm_get_wired_memory", status, Status::OK)?;
    let real = kmemvisor_guest::dgux::physical_address_of(page as *const u8).ok_or("vm_get_physical_byte_address")?;
    // The packet the device will deliver, in its memory: length 0x40.
    // SAFETY: the page is ours and no transfer runs.
    unsafe { core::ptr::write_volatile(page as *mut u64, 0x40) };
    // SAFETY: the page is wired, so handed off; the device only reads it.
    unsafe { engine.start(engine.channel(0), real, 0, PAGE, DIR_TO_DEVICE) };
    engine.wait(engine.channel(0)).map_err(|_| "loading the packet")?;
    // SAFETY: as above; the transfer is over.
    unsafe { core::ptr::write_volatile(page as *mut u64, 0) };
    start(engine, real);
    if !early {
        engine.wait(engine.channel(0)).map_err(|_| "the transfer")?;
    }
    let checked = length_at(page);
    // The driver's other work: two calls, two exits of device time.
    let _ = kmemvisor_guest::null();
    let _ = kmemvisor_guest::null();
    let used = length_at(page);
    if early {
        engine.wait(engine.channel(0)).map_err(|_| "the transfer")?;
    }
    println!("dma-handoff: checked length {checked:#x}, used length {used:#x}");
    // SAFETY: the transfer is over and the page unused.
    expect("the release", unsafe { raw::vm_release_wired_memory(page, PAGE) }, Status::OK)?;
    // SAFETY: no transfer runs.
    unsafe { engine.unmap() }.map_err(|_| "unmapping the DMA engine")
}

fn irq_no_handler() -> Result<(), &'static str> {
    let engine = DmaEngine::map().map_err(|_| "mapping the DMA engine")?;
    let (status, page) = raw::vm_get_wired_memory(PAGE, u64::from(VM_PAGE_ALIGNED));
    expect("vm_get_wired_memory", status, Status::OK)?;
    let real = kmemvisor_guest::dgux::physical_address_of(page as *const u8).ok_or("vm_get_physical_byte_address")?;
    // SAFETY: a register store; the page is wired, so handed off.
    unsafe { engine.write_reg(engine.channel(0), kmemvisor_guest::dma::REG_INTERRUPT, 1) };
    start(engine, real);
    engine.wait(engine.channel(0)).map_err(|_| "the transfer")?;
    // SAFETY: the transfer is over and the page unused.
    expect("the release", unsafe { raw::vm_release_wired_memory(page, PAGE) }, Status::OK)?;
    // SAFETY: no transfer runs.
    unsafe { engine.unmap() }.map_err(|_| "unmapping the DMA engine")
}

/// A completion handler that never returns.
fn stuck_handler() {
    println!("dma-handoff: irq-stuck: in the handler, for good");
    loop {
        kmemvisor_guest::smp::relax();
    }
}

fn irq_stuck() -> Result<(), &'static str> {
    let engine = DmaEngine::map().map_err(|_| "mapping the DMA engine")?;
    let (status, page) = raw::vm_get_wired_memory(PAGE, u64::from(VM_PAGE_ALIGNED));
    expect("vm_get_wired_memory", status, Status::OK)?;
    let real = kmemvisor_guest::dgux::physical_address_of(page as *const u8).ok_or("vm_get_physical_byte_address")?;
    kmemvisor_guest::interrupts::register(stuck_handler).map_err(|_| "interrupt_register")?;
    // SAFETY: a register store; the page is wired, so handed off.
    unsafe { engine.write_reg(engine.channel(0), kmemvisor_guest::dma::REG_INTERRUPT, 1) };
    start(engine, real);
    loop {
        kmemvisor_guest::smp::relax();
    }
}
