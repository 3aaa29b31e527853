//! On 2 vCPUs, vCPU 1 touches a hidden page with loads, stores, rep movs and a compiler copy while the device writes it: each stalls until unhidden, then completes (exit 65, hidden-page violations).
//!
//! vCPU 0 hands a pinned kernel page to the DMA engine (`xmemdma(XMEM_HIDE)`)
//! once per access kind. vCPU 1 announces the access, makes it and stalls in
//! the VMM. Meanwhile vCPU 0 has the device write that round's pattern into
//! the page (memory to memory, from a second hidden page), waits for `DONE`
//! and unhides both. vCPU 1's access then completes against the current
//! contents: a load returns the device's bytes, a store lands after the
//! device's. vCPU 1 checks its loads; vCPU 0 checks, once vCPU 1 is done, that
//! the page holds the device's pattern with vCPU 1's stores on top.
//!
//! The kinds: a byte load, a 2-byte store, an 8-byte load, an 8-byte store,
//! `rep movsb` out of the page, `rep movsq` into it, and a
//! `copy_nonoverlapping` of 256 bytes out of it, as the compiler expands it.
//! Each stall is one `hidden-page` violation, so the run exits 65; the guest
//! itself exits 0 when every access saw and left what it should.
#![no_std]
#![no_main]

use core::arch::asm;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use kmemvisor_guest::abi::layout;
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::dma::{DIR_MEMORY_TO_MEMORY, DmaEngine};
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, XMEM_HIDE, XMEM_UNHIDE, Xmem};
use kmemvisor_guest::{null, println, smp};

use kmemvisor_guest::steps::{self, Failed, check};

kmemvisor_firmware::entry!(main);

const PAGE: u64 = layout::PAGE_SIZE;

/// The access kinds, one round each (rounds count from 1).
const KINDS: [&str; 7] = [
    "byte load",
    "2-byte store",
    "8-byte load",
    "8-byte store",
    "rep movsb out of the page",
    "rep movsq into the page",
    "copy_nonoverlapping out of the page",
];
/// Where each store kind writes, and how many bytes.
const STORE_2: (u64, u64) = (2, 2);
const STORE_8: (u64, u64) = (16, 8);
const MOVSQ: (u64, u64) = (128, 8 * 16);
/// Where each load kind reads.
const LOAD_1: u64 = 0;
const LOAD_8: u64 = 8;
const MOVSB: (u64, u64) = (64, 48);
const COPY: (u64, u64) = (512, 256);
/// What the stores write.
const VALUE_2: u16 = 0xbeef;
const VALUE_8: u64 = 0x1122_3344_5566_7788;
const VALUE_MOVSQ: u64 = 0x0f0e_0d0c_0b0a_0908;
/// Null calls vCPU 0 makes after vCPU 1 announced its access, so that the
/// access is surely stalled before the transfer starts.
const HEAD_START: u32 = 50;

/// The round vCPU 0 opened (the page is hidden).
static ROUND: AtomicU64 = AtomicU64::new(0);
/// The round whose access vCPU 1 is about to make.
static TOUCHING: AtomicU64 = AtomicU64::new(0);
/// The round whose access vCPU 1 finished.
static FINISHED: AtomicU64 = AtomicU64::new(0);

/// The byte the device writes at offset `i` in `round`.
fn pattern(round: u64, i: u64) -> u8 {
    ((i * 7 + round * 29) % 253) as u8
}

/// The pattern's bytes at `at..at + N`.
fn expected<const N: usize>(round: u64, at: u64) -> [u8; N] {
    core::array::from_fn(|i| pattern(round, at + i as u64))
}

/// `rep movsb` of `count` bytes.
///
/// # Safety
///
/// `src` must be readable and `dst` writable for `count` bytes, not overlapping.
unsafe fn rep_movsb(dst: u64, src: u64, count: u64) {
    // SAFETY: the caller vouches for both ranges; DF is clear (the ABI keeps it so).
    unsafe {
        asm!("rep movsb", inout("rcx") count => _, inout("rsi") src => _, inout("rdi") dst => _, options(nostack, preserves_flags));
    }
}

/// `rep movsq` of `count` quadwords.
///
/// # Safety
///
/// As for [`rep_movsb`], for `8 * count` bytes.
unsafe fn rep_movsq(dst: u64, src: u64, count: u64) {
    // SAFETY: as in `rep_movsb`.
    unsafe {
        asm!("rep movsq", inout("rcx") count => _, inout("rsi") src => _, inout("rdi") dst => _, options(nostack, preserves_flags));
    }
}

/// vCPU 1's access of `round` to the page at `page`; `Err` when a load saw
/// something else than the device's bytes.
fn access(page: u64, round: u64) -> Result<(), &'static str> {
    // Every access below is to `page`, a mapped, writable kernel page that
    // vCPU 0 reads only after FINISHED; while it is hidden the access waits in
    // the VMM, nothing more.
    match round {
        1 => {
            // SAFETY: an access to `page` (above).
            let got = unsafe { read_volatile((page + LOAD_1) as *const u8) };
            (got == pattern(round, LOAD_1)).then_some(()).ok_or("the byte load")
        }
        2 => {
            // SAFETY: an access to `page` (above).
            unsafe { write_volatile((page + STORE_2.0) as *mut u16, VALUE_2) };
            Ok(())
        }
        3 => {
            // SAFETY: an access to `page` (above).
            let got = unsafe { read_volatile((page + LOAD_8) as *const u64) };
            (got == u64::from_le_bytes(expected(round, LOAD_8))).then_some(()).ok_or("the 8-byte load")
        }
        4 => {
            // SAFETY: an access to `page` (above).
            unsafe { write_volatile((page + STORE_8.0) as *mut u64, VALUE_8) };
            Ok(())
        }
        5 => {
            let mut local = [0u8; MOVSB.1 as usize];
            // SAFETY: an access to `page` (above); `local` is ours.
            unsafe { rep_movsb(local.as_mut_ptr() as u64, page + MOVSB.0, MOVSB.1) };
            (local == expected::<{ MOVSB.1 as usize }>(round, MOVSB.0)).then_some(()).ok_or("rep movsb")
        }
        6 => {
            let local = [VALUE_MOVSQ; (MOVSQ.1 / 8) as usize];
            // SAFETY: an access to `page` (above); `local` is ours.
            unsafe { rep_movsq(page + MOVSQ.0, local.as_ptr() as u64, MOVSQ.1 / 8) };
            Ok(())
        }
        _ => {
            let mut local = [0u8; COPY.1 as usize];
            // SAFETY: an access to `page` (above); `local` is ours.
            unsafe { core::ptr::copy_nonoverlapping((page + COPY.0) as *const u8, local.as_mut_ptr(), COPY.1 as usize) };
            (local == expected::<{ COPY.1 as usize }>(round, COPY.0)).then_some(()).ok_or("copy_nonoverlapping")
        }
    }
}

/// vCPU 1: one access per round; returns the number of wrong loads.
fn toucher(page: u64) -> u64 {
    let mut wrong = 0;
    for round in 1..=KINDS.len() as u64 {
        while ROUND.load(Ordering::Acquire) != round {
            smp::relax();
        }
        TOUCHING.store(round, Ordering::Release);
        if let Err(what) = access(page, round) {
            println!("xmem-touch: round {round}: {what} did not see the device's data");
            wrong += 1;
        }
        FINISHED.store(round, Ordering::Release);
    }
    wrong
}

/// What the page must hold after `round`: the device's pattern with vCPU 1's
/// store of that round on top, if any. `None` where a store landed.
fn stored(round: u64, i: u64) -> u8 {
    let within = |(at, len): (u64, u64)| (at..at + len).contains(&i);
    match round {
        2 if within(STORE_2) => VALUE_2.to_le_bytes()[(i - STORE_2.0) as usize],
        4 if within(STORE_8) => VALUE_8.to_le_bytes()[(i - STORE_8.0) as usize],
        6 if within(MOVSQ) => VALUE_MOVSQ.to_le_bytes()[((i - MOVSQ.0) % 8) as usize],
        _ => pattern(round, i),
    }
}

fn main() -> u32 {
    steps::exit_code("xmem-touch", run())
}

fn run() -> Result<(), Failed> {
    // Two pinned pages: the one vCPU 1 touches and the device's source.
    let page = aix::xmalloc(PAGE as usize, 12, Heap::PINNED) as u64;
    let source = aix::xmalloc(PAGE as usize, 12, Heap::PINNED) as u64;
    if page == 0 || source == 0 {
        return Err(Failed("xmalloc", 0));
    }
    let engine = check("mapping the DMA engine", DmaEngine::map())?;
    let channel = engine.channel(0);
    let mut target = Xmem::default();
    check("xmattach of the page", xmem::xmattach(page, PAGE, &mut target, SYS_ADSPACE))?;
    let mut from = Xmem::default();
    check("xmattach of the source", xmem::xmattach(source, PAGE, &mut from, SYS_ADSPACE))?;
    println!("xmem-touch: page {page:#x}, source {source:#x}; {} access kinds", KINDS.len());
    check("starting vCPU 1", smp::start(1, toucher, page))?;

    let mut wrong_pages = 0;
    for (round, kind) in (1..).zip(KINDS) {
        for i in 0..PAGE {
            // SAFETY: the source is ours and not hidden now.
            unsafe { write_volatile((source + i) as *mut u8, pattern(round, i)) };
        }
        let to = check("xmemdma(XMEM_HIDE) of the page", xmem::xmemdma(&target, page, XMEM_HIDE))?;
        let real_source = check("xmemdma(XMEM_HIDE) of the source", xmem::xmemdma(&from, source, XMEM_HIDE))?;
        ROUND.store(round, Ordering::Release);
        while TOUCHING.load(Ordering::Acquire) != round {
            smp::relax();
        }
        for _ in 0..HEAD_START {
            let _ = null();
        }
        // SAFETY: both pages are handed off; vCPU 1's access waits in the VMM.
        let done = unsafe { engine.transfer(channel, real_source, to, PAGE, DIR_MEMORY_TO_MEMORY) };
        done.map_err(|code| Failed("the transfer", code))?;
        check("xmemdma(XMEM_UNHIDE) of the page", xmem::xmemdma(&target, page, XMEM_UNHIDE))?;
        check("xmemdma(XMEM_UNHIDE) of the source", xmem::xmemdma(&from, source, XMEM_UNHIDE))?;
        while FINISHED.load(Ordering::Acquire) != round {
            smp::relax();
        }
        // SAFETY: the page is ours, unhidden, and vCPU 1 is done with it.
        let bad = (0..PAGE).find(|&i| unsafe { read_volatile((page + i) as *const u8) } != stored(round, i));
        match bad {
            None => println!("xmem-touch: round {round}: {kind}: completed after the unhide"),
            Some(i) => {
                println!("xmem-touch: round {round}: {kind}: the page is wrong at offset {i:#x}");
                wrong_pages += 1;
            }
        }
    }
    let wrong_loads = check("waiting for vCPU 1", smp::wait(1))?;

    check("xmdetach of the page", xmem::xmdetach(&mut target))?;
    check("xmdetach of the source", xmem::xmdetach(&mut from))?;
    // SAFETY: no transfer runs and nothing uses the window any more.
    check("unmapping the DMA engine", unsafe { engine.unmap() })?;
    // SAFETY: both blocks are detached and unused.
    let freed = unsafe { (aix::xmfree(page as *mut u8, Heap::PINNED), aix::xmfree(source as *mut u8, Heap::PINNED)) };
    if freed != (0, 0) {
        return Err(Failed("xmfree", 0));
    }
    if wrong_loads + wrong_pages > 0 {
        return Err(Failed("the checks (wrong loads, wrong pages)", wrong_loads << 32 | wrong_pages));
    }
    println!("xmem-touch: {} accesses: every load saw the device's data and every store landed on it", KINDS.len());
    Ok(())
}
