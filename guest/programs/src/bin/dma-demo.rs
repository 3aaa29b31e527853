//! A correct DMA driver: hands a process's buffer to the DMA engine with xmattach/xmempin/xmemdma, completes in its interrupt handler, checks the data; no violations.
//!
//! The steps are those of an AIX driver whose `read` entry point has a device
//! fill a user buffer:
//!
//! 1. in the process that owns the buffer (a system call): `xmattach` the
//!    user buffer, `xmempin` it, and `xmemdma(XMEM_HIDE)` each page, which
//!    hands the page to the device and gives its real address. The data
//!    comes from a kernel buffer on the pinned heap, attached and handed off
//!    the same way (the device reads it);
//! 2. program the engine: one memory-to-memory transfer per page, each on a
//!    channel of its own (the pages' frames are not contiguous, so one
//!    transfer cannot span two pages);
//! 3. the completion interrupt: each channel raises one when its transfer
//!    ends (`REG_INTERRUPT`); the handler, which the VMM runs at interrupt
//!    level, acknowledges every finished channel, `xmemdma(XMEM_UNHIDE)`s its
//!    pages, and `xmdetach`es the kernel buffer after the last;
//! 4. back in the process: `xmemunpin` and `xmdetach` the user buffer, and
//!    check it byte for byte.
//!
//! The guest touches no page while it is hidden, so the run ends with no
//! violation and exit status 0.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use kmemvisor_guest::abi::layout;
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::dma::{DIR_MEMORY_TO_MEMORY, DmaEngine, REG_INTERRUPT, STATUS_DONE, STATUS_ERROR};
use kmemvisor_guest::process::{self, PROT_READ, PROT_WRITE};
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, USER_ADSPACE, XMEM_HIDE, XMEM_UNHIDE, Xmem};
use kmemvisor_guest::{interrupts, println, smp};

use kmemvisor_guest::steps::{self, Failed, check};

kmemvisor_firmware::entry!(main);

const PAGE: u64 = layout::PAGE_SIZE;
/// Pages in the buffer.
const PAGES: usize = 4;
/// Bytes in the buffer.
const BYTES: u64 = PAGES as u64 * PAGE;
/// Where the user buffer lives in the process.
const USER_BUFFER: u64 = 0x1000_0000;

/// The byte the kernel buffer holds at offset `i` (period 251, so a page put
/// in the wrong place shows).
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// FNV-1a over `bytes` bytes at `base`.
fn checksum(base: u64, bytes: u64) -> u64 {
    (0..bytes).fold(0xcbf2_9ce4_8422_2325, |hash, i| {
        // SAFETY: callers pass mapped memory of theirs that no page of is hidden.
        let byte = unsafe { core::ptr::read_volatile((base + i) as *const u8) };
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() -> u32 {
    steps::exit_code("dma-demo", run())
}

/// What the interrupt handler works on: the addresses of the two
/// descriptors (on `run`'s stack, which outlives the transfers) and of the
/// kernel buffer, set before the first doorbell.
static USER_DESCRIPTOR: AtomicU64 = AtomicU64::new(0);
static KERNEL_DESCRIPTOR: AtomicU64 = AtomicU64::new(0);
static SOURCE: AtomicU64 = AtomicU64::new(0);
/// Bit n: channel n's transfer is done and its pages are unhidden.
static DONE: AtomicU64 = AtomicU64::new(0);
/// Set by the handler when something failed: the value says what.
static FAILED: AtomicU64 = AtomicU64::new(0);
/// Interrupts the handler ran for.
static INTERRUPTS: AtomicU64 = AtomicU64::new(0);

/// The completion interrupt: every channel whose transfer ended is
/// acknowledged (STATUS read) and its pages are handed back; after the last,
/// the kernel buffer is detached. At interrupt level, where AIX wants it.
fn on_completion() {
    INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    let Ok(engine) = DmaEngine::map() else { return };
    // SAFETY: `run` stored the addresses of its descriptors, which live until
    // every channel is done, and nothing else uses them meanwhile.
    let (user, kernel) = unsafe {
        (
            &*(USER_DESCRIPTOR.load(Ordering::Acquire) as *const Xmem),
            &mut *(KERNEL_DESCRIPTOR.load(Ordering::Acquire) as *mut Xmem),
        )
    };
    let source = SOURCE.load(Ordering::Acquire);
    for page in 0..PAGES as u64 {
        if DONE.load(Ordering::Acquire) & (1 << page) != 0 {
            continue;
        }
        // Not rung yet (the interrupt can come while `run` still programs
        // the other channels) or still busy: later.
        match engine.status(engine.channel(page)) {
            STATUS_DONE => {}
            STATUS_ERROR => FAILED.store(1 + page, Ordering::Release),
            _ => continue,
        }
        let offset = page * PAGE;
        let back =
            xmem::xmemdma(user, USER_BUFFER + offset, XMEM_UNHIDE).and(xmem::xmemdma(kernel, source + offset, XMEM_UNHIDE));
        if back.is_err() {
            FAILED.store(100 + page, Ordering::Release);
        }
        DONE.fetch_or(1 << page, Ordering::AcqRel);
    }
    if DONE.load(Ordering::Acquire) == (1 << PAGES) - 1 && xmem::xmdetach(kernel).is_err() {
        FAILED.store(200, Ordering::Release);
    }
}

fn run() -> Result<(), Failed> {
    // The process and its buffer, and the kernel buffer with the data.
    let pid = check("process_create", process::process_create())?;
    // SAFETY: nothing references user memory yet.
    check("process_switch", unsafe { process::process_switch(pid) })?;
    check("process_map", process::process_map(USER_BUFFER, BYTES, PROT_READ | PROT_WRITE))?;
    let source = aix::xmalloc(BYTES as usize, 12, Heap::PINNED) as u64;
    if source == 0 {
        return Err(Failed("xmalloc", 0));
    }
    for i in 0..BYTES {
        // SAFETY: the allocation is ours, BYTES long, and nothing else uses it.
        unsafe { core::ptr::write_volatile((source + i) as *mut u8, pattern(i)) };
    }
    let engine = check("mapping the DMA engine", DmaEngine::map())?;
    let id = engine.id().to_le_bytes();
    println!(
        "dma-demo: engine {} at {:#x}; process {pid}, user buffer {USER_BUFFER:#x}, {PAGES} pages",
        core::str::from_utf8(&id).unwrap_or("?"),
        engine.base()
    );
    println!("dma-demo: kernel source {source:#x} on the pinned heap, checksum {:#018x}", checksum(source, BYTES));

    // 1. Attach, pin and hand off.
    let mut user = Xmem::default();
    check("xmattach of the user buffer", xmem::xmattach(USER_BUFFER, BYTES, &mut user, USER_ADSPACE))?;
    check("xmempin", xmem::xmempin(USER_BUFFER, BYTES, &user))?;
    let mut kernel = Xmem::default();
    check("xmattach of the kernel buffer", xmem::xmattach(source, BYTES, &mut kernel, SYS_ADSPACE))?;
    let mut to = [0u64; PAGES];
    let mut from = [0u64; PAGES];
    for page in 0..PAGES {
        let offset = page as u64 * PAGE;
        to[page] = check("xmemdma(XMEM_HIDE) of a user page", xmem::xmemdma(&user, USER_BUFFER + offset, XMEM_HIDE))?;
        from[page] = check("xmemdma(XMEM_HIDE) of a kernel page", xmem::xmemdma(&kernel, source + offset, XMEM_HIDE))?;
        println!(
            "dma-demo: page {page}: user {:#x} -> real {:#x}, source real {:#x}",
            USER_BUFFER + offset,
            to[page],
            from[page]
        );
    }

    // 2. One transfer per page, each on its own channel, each raising the
    //    completion interrupt.
    USER_DESCRIPTOR.store(&user as *const Xmem as u64, Ordering::Release);
    KERNEL_DESCRIPTOR.store(&mut kernel as *mut Xmem as u64, Ordering::Release);
    SOURCE.store(source, Ordering::Release);
    check("interrupt_register", interrupts::register(on_completion))?;
    for page in 0..PAGES {
        let channel = engine.channel(page as u64);
        // SAFETY: both pages are handed off to the device (hidden), and
        // nothing reads the user page until the transfer is done.
        unsafe {
            engine.write_reg(channel, REG_INTERRUPT, 1);
            engine.start(channel, from[page], to[page], PAGE, DIR_MEMORY_TO_MEMORY);
        }
    }

    // 3. The completion comes in the interrupt handler; this vCPU lets the
    //    others (and the device) run until every channel is handed back.
    while DONE.load(Ordering::Acquire) != (1 << PAGES) - 1 && FAILED.load(Ordering::Acquire) == 0 {
        smp::relax();
    }
    check("interrupt_register (none)", interrupts::unregister())?;
    if FAILED.load(Ordering::Acquire) != 0 {
        return Err(Failed("the completion handler", FAILED.load(Ordering::Acquire)));
    }
    println!(
        "dma-demo: {PAGES} transfers done, {BYTES} bytes moved; pages unhidden at interrupt level, in the handler ({} interrupt(s))",
        INTERRUPTS.load(Ordering::Relaxed)
    );

    // 4. Back in the process: unpin, detach, check.
    check("xmemunpin", xmem::xmemunpin(USER_BUFFER, BYTES, &user))?;
    check("xmdetach of the user buffer", xmem::xmdetach(&mut user))?;
    let wrong = (0..BYTES).find(|&i| {
        // SAFETY: the user buffer is mapped in the current process and no
        // longer hidden.
        unsafe { core::ptr::read_volatile((USER_BUFFER + i) as *const u8) != pattern(i) }
    });
    if let Some(i) = wrong {
        return Err(Failed("the check of the user buffer at this offset", i));
    }
    println!("dma-demo: user buffer matches the source byte for byte, checksum {:#018x}", checksum(USER_BUFFER, BYTES));

    // Give everything back, so that the run ends with nothing left over.
    // SAFETY: the transfers are done and nothing uses the window any more.
    check("unmapping the DMA engine", unsafe { engine.unmap() })?;
    // SAFETY: the source is detached and not used any more.
    if unsafe { aix::xmfree(source as *mut u8, Heap::PINNED) } != 0 {
        return Err(Failed("xmfree", 0));
    }
    // SAFETY: no reference into the process's memory lives.
    check("process_switch back", unsafe { process::process_switch(0) })?;
    // SAFETY: as above.
    check("process_destroy", unsafe { process::process_destroy(pid) })?;
    println!("dma-demo: done: {PAGES} pages, {BYTES} bytes, no page touched while hidden");
    Ok(())
}
