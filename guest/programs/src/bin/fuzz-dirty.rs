//! A fuzzing harness that, after its snapshot point, changes all it can — for the check that a snapshot restore leaves nothing of one iteration in the next.
//!
//! Before `fuzz_snapshot` it sets up a process with a user page, a kernel
//! allocation and a partial console line. After it, it reads its input and,
//! from it and its own earlier state, writes: its data and stack pages, the
//! user page, a second process, AIX and DG/UX allocations it never frees, a
//! pin, a cross-memory attachment with a page hidden for DMA, a DMA
//! transfer it never waits for, a registered interrupt handler, another
//! console line; with `--vcpus 2` it also starts vCPU 1. A counter in its
//! data page counts the iterations that ran since the snapshot: if a
//! restore left it behind, the guest says so and exits 3. Otherwise it
//! exits with its first input byte modulo 4 (its leaks make it 65 when
//! that is 0).
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use kmemvisor_guest::abi::layout;
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::dma::{DIR_MEMORY_TO_MEMORY, DmaEngine};
use kmemvisor_guest::process::{self, PROT_READ, PROT_WRITE};
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, XMEM_HIDE, Xmem};
use kmemvisor_guest::{dgux, fuzz, interrupts, print, println, smp, vcpu_count};

kmemvisor_firmware::entry!(main);

const PAGE: u64 = layout::PAGE_SIZE;
const USER_PAGE: u64 = 0x1000_0000;
const SECOND_USER_PAGE: u64 = 0x2000_0000;

/// Iterations that ran past the snapshot point: 0 in every one, if restores work.
static ITERATIONS: AtomicU64 = AtomicU64::new(0);
/// Pages of image data the iteration fills.
static mut SCRATCH: [u8; 3 * PAGE as usize] = [0; 3 * PAGE as usize];

fn on_interrupt() {}

fn work(argument: u64) -> u64 {
    // SAFETY: SCRATCH is only written by vCPU 1 here, by vCPU 0 before it starts vCPU 1.
    unsafe { write_volatile(&raw mut SCRATCH[2 * PAGE as usize] as *mut u64, argument) };
    argument.wrapping_mul(3)
}

fn main() -> u32 {
    let Ok(pid) = process::process_create() else { return 10 };
    // SAFETY: nothing references user memory yet.
    if unsafe { process::process_switch(pid) }.is_err() || process::process_map(USER_PAGE, PAGE, PROT_READ | PROT_WRITE).is_err()
    {
        return 11;
    }
    let kept = aix::xmalloc(PAGE as usize, 12, Heap::PINNED) as u64;
    if kept == 0 {
        return 12;
    }
    print!("fuzz-dirty: set up, ");
    if fuzz::snapshot().is_err() {
        return 13;
    }

    let mut input = [0u8; 64];
    let n = fuzz::input(&mut input).unwrap_or(0);
    let fill = if n > 0 { input[0] } else { 0x5a };
    let before = ITERATIONS.fetch_add(1, Ordering::SeqCst);
    println!("iteration with {n} input bytes, {before} before it");
    if before != 0 {
        return 3;
    }
    // RAM: image data, the stack, the user page, the kept allocation.
    let scratch = &raw mut SCRATCH as *mut u8;
    for i in 0..3 * PAGE as usize {
        // SAFETY: inside SCRATCH; vCPU 1 is not started yet.
        unsafe { write_volatile(scratch.add(i), fill ^ i as u8) };
    }
    let mut on_stack = [fill; 512];
    on_stack[n % 512] ^= 1;
    // SAFETY: a live local; the read keeps the stack writes.
    let _ = unsafe { read_volatile(&on_stack[n % 512]) };
    for i in 0..PAGE {
        // SAFETY: the user page is mapped in the current process; the allocation is ours.
        unsafe {
            write_volatile((USER_PAGE + i) as *mut u8, fill);
            write_volatile((kept + i) as *mut u8, !fill);
        }
    }
    // A second process with a page, and leaks of both kinds.
    let Ok(second) = process::process_create() else { return 20 };
    // SAFETY: no reference into the first process's memory lives past here.
    if unsafe { process::process_switch(second) }.is_err()
        || process::process_map(SECOND_USER_PAGE, PAGE, PROT_READ | PROT_WRITE).is_err()
    {
        return 21;
    }
    // SAFETY: as above.
    if unsafe { process::process_switch(pid) }.is_err() {
        return 22;
    }
    let leaked = aix::xmalloc(64 * fill as usize + 8, 3, Heap::KERNEL);
    let wired = dgux::vm_get_wired_memory(PAGE as u32 * 2, 0);
    if leaked.is_null() || wired.is_null() {
        return 23;
    }
    // SAFETY: the allocation is ours.
    unsafe { write_volatile(wired, fill) };
    // A pin, an attachment with a hidden page, a transfer never waited for.
    let source = aix::xmalloc(PAGE as usize, 12, Heap::PINNED) as u64;
    if source == 0 || aix::pin(kept as *const u8, PAGE as usize).code() != 0 {
        return 24;
    }
    let mut kernel = Xmem::default();
    if xmem::xmattach(kept, PAGE, &mut kernel, SYS_ADSPACE).is_err() {
        return 25;
    }
    let Ok(to) = xmem::xmemdma(&kernel, kept, XMEM_HIDE) else { return 26 };
    let Ok(engine) = DmaEngine::map() else { return 27 };
    let Some(from) = dgux::physical_address_of(source as *const u8) else { return 28 };
    // SAFETY: the destination is hidden for the device; the source is the guest's own allocation.
    unsafe { engine.start(engine.channel(1), from, to, PAGE, DIR_MEMORY_TO_MEMORY) };
    if interrupts::register(on_interrupt).is_err() {
        return 29;
    }
    if vcpu_count() > 1 {
        if smp::start(1, work, u64::from(fill)).is_err() {
            return 30;
        }
        let _ = smp::wait(1);
    }
    // SAFETY: as above.
    let last = unsafe { read_volatile(&raw const SCRATCH[1]) };
    print!("fuzz-dirty: done {last:#x}");
    (fill % 4) as u32
}
