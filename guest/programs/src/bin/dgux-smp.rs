//! On every vCPU, 500 rounds of DG/UX get → write → wire/unwire → check → release of varying sizes and alignments.
//!
//! Each worker draws its sizes, alignments and kinds from its own generator
//! (seeded with its vCPU number), so a run on one vCPU is the same every time.
//! Every fourth round uses a demand get, the others perhaps gets; with the
//! argument `perhaps` all gets are perhaps gets, so that `--fail-alloc` makes
//! them fail with `ENOMEM` (counted, not an error) instead of halting the VM.
//!
//! Only allocations that own their pages (page-aligned, a whole number of
//! pages) are wired: a release is refused while any of its pages is wired, and
//! a small allocation may share its page with another vCPU's.
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};

use kmemvisor_guest::abi::{Status, layout};
use kmemvisor_guest::dgux::raw;
use kmemvisor_guest::dgux::{
    SC_READ_ACCESS, SC_WRITE_ACCESS, VM_BYTE_ALIGNED, VM_DEFAULT_ALIGNMENT, VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS,
    VM_DOUBLE_WORD_ALIGNED, VM_PAGE_ALIGNED, VM_WORD_ALIGNED, alignment_bytes,
};
use kmemvisor_guest::rng::Rng;
use kmemvisor_guest::{args, println, smp, vcpu_count, vcpu_id};

kmemvisor_firmware::entry!(main);

/// Rounds per worker.
const ROUNDS: u64 = 500;
/// Mixed into every worker's seed.
const SEED: u64 = 0x6467_7578_736d_7021;
const PAGE: u64 = layout::PAGE_SIZE;
/// The worker's argument bit that asks for perhaps gets only.
const PERHAPS_ONLY: u64 = 1 << 32;

/// What a worker found: errors and gets refused with ENOMEM.
#[derive(Default)]
struct Counts {
    errors: u64,
    enomem: u64,
}

impl Counts {
    fn pack(&self) -> u64 {
        (self.errors << 32) | self.enomem
    }

    fn unpack(value: u64) -> Counts {
        Counts { errors: value >> 32, enomem: value & 0xffff_ffff }
    }
}

fn byte(seed: u64, i: u64) -> u8 {
    (seed.wrapping_add(i.wrapping_mul(0x9e37_79b9)) >> 8) as u8
}

/// One round; `Err` says what went wrong.
fn round(rng: &mut Rng, vcpu: u64, n: u64, perhaps_only: bool, counts: &mut Counts) -> Result<(), &'static str> {
    const ALIGNMENTS: [u32; 6] = [
        VM_BYTE_ALIGNED,
        VM_WORD_ALIGNED,
        VM_DOUBLE_WORD_ALIGNED,
        VM_DEFAULT_ALIGNMENT,
        VM_PAGE_ALIGNED,
        VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS,
    ];
    let wired = rng.below(2) == 0;
    let alignment = ALIGNMENTS[rng.below(6) as usize];
    let align = alignment_bytes(alignment).unwrap_or(1);
    let bytes = match alignment {
        VM_PAGE_ALIGNED if rng.below(2) == 0 => PAGE * (1 + rng.below(3)),
        VM_PAGE_ALIGNED => PAGE * (1 + rng.below(2)) + rng.below(PAGE),
        VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS => 8 + rng.below(PAGE - 7),
        _ => align + rng.below(700),
    };
    let demand = !perhaps_only && n.is_multiple_of(4);
    let (arena, (status, ptr)) = match (wired, demand) {
        (true, true) => (layout::WIRED_ARENA_VA, raw::vm_get_wired_memory(bytes, u64::from(alignment))),
        (true, false) => (layout::WIRED_ARENA_VA, raw::vm_perhaps_get_wired_memory(bytes, u64::from(alignment))),
        (false, true) => (layout::UNWIRED_ARENA_VA, raw::vm_get_unwired_memory(bytes, u64::from(alignment))),
        (false, false) => (layout::UNWIRED_ARENA_VA, raw::vm_perhaps_get_unwired_memory(bytes, u64::from(alignment))),
    };
    match status {
        Status::OK => {}
        Status::ENOMEM if !demand => {
            counts.enomem += 1;
            return Ok(());
        }
        _ => return Err("a get failed"),
    }
    let mut result = Ok(());
    if ptr < arena || ptr + bytes > arena + layout::ARENA_SIZE || !ptr.is_multiple_of(align) {
        result = Err("a get returned a pointer outside its arena or misaligned");
    } else if alignment == VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS && ptr / PAGE != (ptr + bytes - 1) / PAGE {
        result = Err("a NO_PAGE_CROSS allocation crosses a page");
    }
    if result.is_ok() {
        result = exercise(ptr, bytes, vcpu << 40 | n, alignment == VM_PAGE_ALIGNED && bytes.is_multiple_of(PAGE), n);
    }
    // SAFETY: the allocation is not used after this.
    let released =
        unsafe { if wired { raw::vm_release_wired_memory(ptr, bytes) } else { raw::vm_release_unwired_memory(ptr, bytes) } };
    result?;
    if released != Status::OK {
        return Err("a release was refused");
    }
    Ok(())
}

/// Zero-filled? Write a pattern, wire (if the allocation owns its pages),
/// check, unwire.
fn exercise(ptr: u64, bytes: u64, seed: u64, own_pages: bool, n: u64) -> Result<(), &'static str> {
    let read = |i: u64| {
        // SAFETY: `ptr..ptr + bytes` is a live allocation of ours, and `i < bytes`.
        unsafe { read_volatile((ptr + i) as *const u8) }
    };
    if (0..bytes).any(|i| read(i) != 0) {
        return Err("a fresh allocation is not zero-filled");
    }
    for i in 0..bytes {
        // SAFETY: `ptr..ptr + bytes` is a live, writable allocation of ours.
        unsafe { write_volatile((ptr + i) as *mut u8, byte(seed, i)) };
    }
    if own_pages {
        let status = raw::vm_check_access_and_wire_memory(ptr, 0, bytes, u64::from(SC_READ_ACCESS | SC_WRITE_ACCESS));
        if status != Status::OK {
            return Err("a wire failed");
        }
    }
    let intact = (0..bytes).all(|i| read(i) == byte(seed, i));
    if own_pages {
        let status = if n.is_multiple_of(2) {
            raw::vm_unwire_memory(ptr, 0, bytes)
        } else {
            raw::vm_mark_and_unwire_memory(ptr, 0, bytes, u64::from(SC_WRITE_ACCESS))
        };
        if status != Status::OK {
            return Err("an unwire failed");
        }
    }
    if !intact {
        return Err("an allocation did not keep its pattern");
    }
    Ok(())
}

/// The work of one vCPU: ROUNDS rounds; returns its packed [`Counts`].
fn worker(argument: u64) -> u64 {
    let vcpu = vcpu_id();
    let perhaps_only = argument & PERHAPS_ONLY != 0;
    let mut rng = Rng::new(SEED ^ (vcpu + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut counts = Counts::default();
    for n in 0..ROUNDS {
        if let Err(what) = round(&mut rng, vcpu, n, perhaps_only, &mut counts) {
            counts.errors += 1;
            if counts.errors <= 5 {
                println!("dgux-smp: vCPU {vcpu} round {n}: {what}");
            }
        }
    }
    println!("dgux-smp: vCPU {vcpu}: {ROUNDS} rounds, {} errors, {} gets refused with ENOMEM", counts.errors, counts.enomem);
    counts.pack()
}

fn main() -> u32 {
    let argument = if args().any(|a| a == "perhaps") { PERHAPS_ONLY } else { 0 };
    let n = vcpu_count();
    let mut started = 0;
    for k in 1..n {
        match smp::start(k, worker, argument) {
            Ok(()) => started += 1,
            Err(status) => {
                println!("dgux-smp: starting vCPU {k} failed: {}", status.name());
                break;
            }
        }
    }
    let mut total = Counts::unpack(worker(argument));
    let mut failed = false;
    for k in 1..=started {
        match smp::wait(k) {
            Ok(value) => {
                let c = Counts::unpack(value);
                total.errors += c.errors;
                total.enomem += c.enomem;
            }
            Err(status) => {
                println!("dgux-smp: waiting for vCPU {k} failed: {}", status.name());
                failed = true;
            }
        }
    }
    println!("dgux-smp: {n} vCPUs, {} rounds, {} errors, {} gets refused with ENOMEM", n * ROUNDS, total.errors, total.enomem);
    u32::from(failed || total.errors > 0 || started + 1 != n)
}
