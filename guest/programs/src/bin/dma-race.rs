//! A buggy DMA driver that reads its buffer before unhiding it: with 2 vCPUs a stall and a hidden-page violation (exit 65); argument `deadlock`: 1 vCPU, hidden-page-deadlock (exit 75).
//!
//! The driver hands a user page and a kernel source page to the DMA engine
//! as `dma-demo` does, but its reader does not wait for the completion:
//!
//! - with 2 vCPUs (`kmemvisor run dma-race --vcpus 2`), vCPU 1 runs in the
//!   process and reads the user page while it is hidden. It stalls inside the
//!   VMM (a `hidden-page` violation) until vCPU 0 has waited for the device
//!   and unhidden the page; its read then returns what the device wrote,
//!   which it prints. The guest exits 0, the violation makes it 65;
//! - with the argument `deadlock` (one vCPU), vCPU 0 itself reads the page
//!   after the transfer and before unhiding it. Nobody is left to unhide it:
//!   the run ends with the cause `hidden-page-deadlock`, exit status 75.
#![no_std]
#![no_main]

use core::ptr::read_volatile;
use core::sync::atomic::{AtomicU64, Ordering};

use kmemvisor_guest::abi::layout;
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::dma::{DIR_MEMORY_TO_MEMORY, DmaEngine};
use kmemvisor_guest::process::{self, PROT_READ, PROT_WRITE, Pid};
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, USER_ADSPACE, XMEM_HIDE, XMEM_UNHIDE, Xmem};
use kmemvisor_guest::{args, null, println, smp};

use kmemvisor_guest::steps::{self, Failed, check};

kmemvisor_firmware::entry!(main);

const PAGE: u64 = layout::PAGE_SIZE;
/// The user page the device fills.
const USER_PAGE: u64 = 0x1000_0000;
/// Null calls vCPU 0 makes after vCPU 1 said it is about to read, so that
/// the read is surely stalled before the transfer starts.
const HEAD_START: u32 = 100;

/// Set by vCPU 1 just before it reads the hidden page.
static READING: AtomicU64 = AtomicU64::new(0);

/// The byte the device writes at offset `i`.
fn pattern(i: u64) -> u8 {
    (i as u8).wrapping_mul(7).wrapping_add(0x5a)
}

/// The pattern's first 16 bytes, as two little-endian words.
fn expected_words() -> [u64; 2] {
    [0, 8].map(|at| u64::from_le_bytes(core::array::from_fn(|i| pattern(at + i as u64))))
}

/// Reads the first 16 bytes of the user page: two 8-byte loads.
fn read_words() -> [u64; 2] {
    // SAFETY: the page is mapped in the current process; the loads stall
    // while it is hidden (the bug this guest shows), nothing more.
    [0, 8].map(|at| unsafe { read_volatile((USER_PAGE + at) as *const u64) })
}

/// vCPU 1: joins the process and reads the page while it is hidden.
fn reader(pid: u64) -> u64 {
    // SAFETY: this vCPU holds no user memory reference.
    if unsafe { process::process_switch(pid) }.is_err() {
        println!("dma-race: vCPU 1 could not join process {pid}");
        return 1;
    }
    READING.store(1, Ordering::Release);
    let words = read_words();
    println!("dma-race: vCPU 1 read {:#018x} {:#018x} from the buffer while it was hidden", words[0], words[1]);
    // SAFETY: as above.
    let left = unsafe { process::process_switch(0) };
    u64::from(words != expected_words() || left.is_err())
}

fn main() -> u32 {
    let deadlock = args().any(|a| a == "deadlock");
    steps::exit_code("dma-race", run(deadlock))
}

fn run(deadlock: bool) -> Result<(), Failed> {
    let pid: Pid = check("process_create", process::process_create())?;
    // SAFETY: nothing references user memory yet.
    check("process_switch", unsafe { process::process_switch(pid) })?;
    check("process_map", process::process_map(USER_PAGE, PAGE, PROT_READ | PROT_WRITE))?;
    let source = aix::xmalloc(PAGE as usize, 12, Heap::PINNED) as u64;
    if source == 0 {
        return Err(Failed("xmalloc", 0));
    }
    for i in 0..PAGE {
        // SAFETY: the allocation is ours and a page long.
        unsafe { core::ptr::write_volatile((source + i) as *mut u8, pattern(i)) };
    }
    let engine = check("mapping the DMA engine", DmaEngine::map())?;
    let mut user = Xmem::default();
    check("xmattach", xmem::xmattach(USER_PAGE, PAGE, &mut user, USER_ADSPACE))?;
    check("xmempin", xmem::xmempin(USER_PAGE, PAGE, &user))?;
    let mut kernel = Xmem::default();
    check("xmattach of the source", xmem::xmattach(source, PAGE, &mut kernel, SYS_ADSPACE))?;
    let to = check("xmemdma(XMEM_HIDE)", xmem::xmemdma(&user, USER_PAGE, XMEM_HIDE))?;
    let from = check("xmemdma(XMEM_HIDE) of the source", xmem::xmemdma(&kernel, source, XMEM_HIDE))?;
    println!("dma-race: user page {USER_PAGE:#x} hidden (real {to:#x}); the device copies from real {from:#x}");

    let channel = engine.channel(0);
    if deadlock {
        // SAFETY: both pages are handed off.
        let done = unsafe { engine.transfer(channel, from, to, PAGE, DIR_MEMORY_TO_MEMORY) };
        done.map_err(|code| Failed("the transfer", code))?;
        println!("dma-race: transfer done; reading the buffer before unhiding it, and no other vCPU can unhide it");
        let words = read_words();
        // Not reached: the run ends in a hidden-page deadlock, and the vCPU
        // must not run on (not even once the VMM releases it to stop).
        println!("dma-race: read {:#018x} {:#018x}: the vCPU ran on past the hidden page", words[0], words[1]);
        return Err(Failed("the deadlock", 0));
    }

    check("starting vCPU 1", smp::start(1, reader, pid))?;
    while READING.load(Ordering::Acquire) == 0 {
        smp::relax();
    }
    for _ in 0..HEAD_START {
        let _ = null();
    }
    // SAFETY: both pages are handed off; vCPU 1's read waits in the VMM.
    let done = unsafe { engine.transfer(channel, from, to, PAGE, DIR_MEMORY_TO_MEMORY) };
    done.map_err(|code| Failed("the transfer", code))?;
    check("xmemdma(XMEM_UNHIDE)", xmem::xmemdma(&user, USER_PAGE, XMEM_UNHIDE))?;
    check("xmemdma(XMEM_UNHIDE) of the source", xmem::xmemdma(&kernel, source, XMEM_UNHIDE))?;
    println!("dma-race: vCPU 0: transfer done, page unhidden");
    let reader_failed = check("waiting for vCPU 1", smp::wait(1))?;
    let [a, b] = expected_words();
    println!("dma-race: the device wrote {a:#018x} {b:#018x}; vCPU 1 saw it: {}", reader_failed == 0);

    check("xmemunpin", xmem::xmemunpin(USER_PAGE, PAGE, &user))?;
    check("xmdetach", xmem::xmdetach(&mut user))?;
    check("xmdetach of the source", xmem::xmdetach(&mut kernel))?;
    // SAFETY: the transfers are done and nothing uses the window any more.
    check("unmapping the DMA engine", unsafe { engine.unmap() })?;
    // SAFETY: the source is detached and unused.
    if unsafe { aix::xmfree(source as *mut u8, Heap::PINNED) } != 0 {
        return Err(Failed("xmfree", 0));
    }
    // SAFETY: no reference into the process's memory lives.
    check("process_switch back", unsafe { process::process_switch(0) })?;
    // SAFETY: as above; vCPU 1 left the process.
    check("process_destroy", unsafe { process::process_destroy(pid) })?;
    if reader_failed != 0 {
        return Err(Failed("vCPU 1's read", reader_failed));
    }
    Ok(())
}
