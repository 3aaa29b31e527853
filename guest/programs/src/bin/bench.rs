//! For `kmemvisor bench`: args `MODE COUNT [LIVE]`, MODE `floor`, `null`, `wired-getrel`, `wire-unwire` or `prefill`.
//!
//! - `floor COUNT`: raw exits to the null device port;
//! - `null COUNT`: null hypercalls;
//! - `wired-getrel COUNT [LIVE]`: LIVE 64-byte wired allocations first (kept),
//!   then COUNT × (get 64 wired bytes + release them);
//! - `wire-unwire COUNT [LIVE]`: LIVE allocations first, then COUNT ×
//!   (`vm_wire_memory` + `vm_unwire_memory`) on the page of one page-aligned
//!   wired allocation;
//! - `prefill LIVE`: only the LIVE allocations (and their release), the
//!   baseline to subtract from the two above.
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
        (Some("wired-getrel" | "wire-unwire"), [Some(Ok(count)), None, None]) => (*count, 0),
        (Some("wired-getrel" | "wire-unwire"), [Some(Ok(count)), Some(Ok(live)), None]) => (*count, *live),
        (Some("prefill"), [Some(Ok(live)), None, None]) => (0, *live),
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
        mode => dgux(mode, count, live),
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

/// The DG/UX modes: LIVE small wired allocations, then the mode's loop, then
/// every release.
fn dgux(mode: &str, count: u64, live: u64) -> u32 {
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
        failed = match mode {
            "wired-getrel" => getrel(count),
            "wire-unwire" => wire_unwire(count),
            _ => false,
        };
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

/// COUNT × (get 64 wired bytes + release); whether anything failed.
fn getrel(count: u64) -> bool {
    for _ in 0..count {
        let (status, ptr) = raw::vm_perhaps_get_wired_memory(SMALL, u64::from(VM_DEFAULT_ALIGNMENT));
        // SAFETY: the allocation is not used.
        if status != Status::OK || unsafe { raw::vm_release_wired_memory(ptr, SMALL) } != Status::OK {
            println!("bench: a get or release failed: {}", status.name());
            return true;
        }
    }
    false
}

/// COUNT × (wire + unwire) of one page-aligned wired page; whether anything failed.
fn wire_unwire(count: u64) -> bool {
    let (status, page) = raw::vm_perhaps_get_wired_memory(PAGE, u64::from(VM_PAGE_ALIGNED));
    if status != Status::OK {
        println!("bench: the page's get failed: {}", status.name());
        return true;
    }
    let mut failed = false;
    for _ in 0..count {
        if raw::vm_wire_memory(page, 0, PAGE) != Status::OK || raw::vm_unwire_memory(page, 0, PAGE) != Status::OK {
            println!("bench: a wire or unwire failed");
            failed = true;
            break;
        }
    }
    // SAFETY: the page is not used after this.
    failed | (unsafe { raw::vm_release_wired_memory(page, PAGE) } != Status::OK)
}

fn usage() -> u32 {
    println!("usage: bench floor|null COUNT | wired-getrel|wire-unwire COUNT [LIVE] | prefill LIVE");
    BAD_ARGS
}
