//! For `kmemvisor bench`: args `floor COUNT`, `null COUNT` or `dgux LIVE BLOCKS`.
//!
//! - `floor COUNT`: raw exits to the null device port;
//! - `null COUNT`: null hypercalls;
//! - `dgux LIVE BLOCKS`: LIVE 64-byte wired allocations first (kept), then
//!   BLOCKS rounds of three blocks timed with the TSC — BLOCK null calls,
//!   BLOCK/2 × (get 64 wired bytes + release), BLOCK/2 × (`vm_wire_memory` +
//!   `vm_unwire_memory` of one page) — and one line
//!   `bench-cycles: null=N getrel=N wire=N`, each the mean TSC cycles per
//!   call. Interleaving the blocks makes the three see the same host.
//!
//! Every allocation is released before the guest exits 0.
#![no_std]
#![no_main]

use core::arch::asm;

use kmemvisor_guest::abi::{NULL_DEVICE_PORT, Status};
use kmemvisor_guest::dgux::raw;
use kmemvisor_guest::dgux::{VM_DEFAULT_ALIGNMENT, VM_PAGE_ALIGNED};
use kmemvisor_guest::{args, null, println};

kmemvisor_firmware::entry!(main);

/// Exit status for arguments the guest does not understand.
const BAD_ARGS: u32 = 2;
/// Bytes of each small allocation.
const SMALL: u64 = 64;
/// One page.
const PAGE: u64 = 4096;

fn main() -> u32 {
    let mut words = args();
    let mode = words.next();
    let numbers: [Option<Result<u64, _>>; 3] = [words.next(), words.next(), words.next()].map(|w| w.map(str::parse::<u64>));
    let (count, live) = match (mode, &numbers) {
        (Some("floor" | "null"), [Some(Ok(count)), None, None]) => (*count, 0),
        (Some("dgux"), [Some(Ok(live)), Some(Ok(blocks)), None]) => (*blocks, *live),
        _ => return usage(),
    };
    match mode.unwrap_or_default() {
        "floor" => floor(count),
        "null" => {
            for _ in 0..count {
                if null().is_err() {
                    println!("bench: a null call failed");
                    return 1;
                }
            }
            0
        }
        _ => dgux(count, live),
    }
}

fn floor(count: u64) -> u32 {
    for _ in 0..count {
        // SAFETY: a write to the null device port touches no guest memory; the
        // VMM discards it and resumes.
        unsafe {
            asm!(
                "out dx, al",
                in("dx") NULL_DEVICE_PORT,
                in("al") 0u8,
                options(nomem, nostack, preserves_flags),
            );
        }
    }
    0
}

/// Calls per timed block.
const BLOCK: u64 = 100;

/// LIVE small wired allocations, then BLOCKS timed rounds, then every release.
fn dgux(blocks: u64, live: u64) -> u32 {
    let mut failed = false;
    // The LIVE allocations form a chain: each stores the previous one's
    // address in its first word, so no table is needed however many there are.
    let mut head = 0u64;
    let mut made = 0u64;
    while made < live {
        let (status, ptr) = raw::vm_perhaps_get_wired_memory(SMALL, u64::from(VM_DEFAULT_ALIGNMENT));
        if status != Status::OK {
            println!("bench: live allocation {made} failed: {}", status.name());
            failed = true;
            break;
        }
        // SAFETY: `ptr` is a fresh, writable, 8-byte-aligned allocation of SMALL bytes.
        unsafe { (ptr as *mut u64).write(head) };
        head = ptr;
        made += 1;
    }
    if !failed {
        failed = timed_rounds(blocks);
    }
    while head != 0 {
        // SAFETY: `head` is a live allocation of the chain; its first word
        // holds the next one's address. It is not used after the release.
        let next = unsafe { (head as *const u64).read() };
        // SAFETY: as above.
        if unsafe { raw::vm_release_wired_memory(head, SMALL) } != Status::OK {
            println!("bench: a live allocation's release failed");
            failed = true;
        }
        head = next;
    }
    u32::from(failed)
}

/// The TSC (CPL3 may read it: the VMM leaves CR4.TSD clear).
fn tsc() -> u64 {
    // SAFETY: rdtsc reads a counter and touches no memory.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Cycles `f` takes.
fn timed(f: impl FnOnce() -> bool, cycles: &mut u64) -> bool {
    let start = tsc();
    let failed = f();
    *cycles += tsc().wrapping_sub(start);
    failed
}

/// BLOCKS rounds of the three timed blocks; prints the cycles per call.
fn timed_rounds(blocks: u64) -> bool {
    let (status, page) = raw::vm_perhaps_get_wired_memory(PAGE, u64::from(VM_PAGE_ALIGNED));
    if status != Status::OK {
        println!("bench: the page's get failed: {}", status.name());
        return true;
    }
    let mut cycles = [0u64; 3];
    let mut failed = false;
    for _ in 0..blocks {
        failed |= timed(|| (0..BLOCK).any(|_| null().is_err()), &mut cycles[0]);
        failed |= timed(|| (0..BLOCK / 2).any(|_| !get_release()), &mut cycles[1]);
        let wire = || raw::vm_wire_memory(page, 0, PAGE) == Status::OK && raw::vm_unwire_memory(page, 0, PAGE) == Status::OK;
        failed |= timed(|| (0..BLOCK / 2).any(|_| !wire()), &mut cycles[2]);
        if failed {
            println!("bench: a call failed");
            break;
        }
    }
    let calls = (blocks * BLOCK).max(1);
    println!("bench-cycles: null={} getrel={} wire={}", cycles[0] / calls, cycles[1] / calls, cycles[2] / calls);
    // SAFETY: the page is not used after this.
    failed | (unsafe { raw::vm_release_wired_memory(page, PAGE) } != Status::OK)
}

/// One get of 64 wired bytes and its release; whether both succeeded.
fn get_release() -> bool {
    let (status, ptr) = raw::vm_perhaps_get_wired_memory(SMALL, u64::from(VM_DEFAULT_ALIGNMENT));
    // SAFETY: the allocation is not used.
    status == Status::OK && unsafe { raw::vm_release_wired_memory(ptr, SMALL) } == Status::OK
}

fn usage() -> u32 {
    println!("usage: bench floor|null COUNT | dgux LIVE BLOCKS");
    BAD_ARGS
}
