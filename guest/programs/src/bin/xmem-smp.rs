//! On 2–8 vCPUs (--vcpus 4), 50 rounds each of hide → DMA on its own channel → unhide, into private pages and into 2 pages all vCPUs hide at once; checksums prove nothing lost or torn; no violations.
//!
//! Each vCPU owns three pinned pages (a source and two destinations), attached
//! once, and its own DMA channel. Two more pages are attached once by vCPU 0
//! and shared: every vCPU hides them in every round, so their hide counts
//! nest up to the number of vCPUs, and each vCPU's device transfers write its
//! own slot of them. A round:
//!
//! 1. fill the source with the round's pattern (it is not hidden now);
//! 2. `xmemdma_pages(XMEM_HIDE)` the three private pages and the two shared
//!    ones (real addresses from the batch);
//! 3. five memory-to-memory transfers on the vCPU's channel: the source to
//!    the first destination, its halves swapped into the second, and its
//!    first two slots into the vCPU's slot of each shared page;
//! 4. `xmemdma_pages(XMEM_UNHIDE)` of both, then check both destinations
//!    against the pattern (FNV-1a checksums).
//!
//! No vCPU touches a shared page while the run goes on: another vCPU may still
//! have it hidden. At the end vCPU 0 checks that each slot of the shared pages
//! holds its vCPU's last pattern. Run with `--vcpus 2` to `--vcpus 8`.
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};

use kmemvisor_guest::abi::{Status, layout};
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::dma::{DIR_MEMORY_TO_MEMORY, DMA_CHANNELS, DmaEngine};
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, XMEM_HIDE, XMEM_UNHIDE, Xmem};
use kmemvisor_guest::{println, smp, vcpu_count, vcpu_id};

kmemvisor_firmware::entry!(main);

const PAGE: u64 = layout::PAGE_SIZE;
/// Rounds per vCPU.
const ROUNDS: u64 = 50;
/// Transfers per round.
const TRANSFERS: u64 = 5;
/// Private pages per vCPU: the source and two destinations.
const PRIVATE: u64 = 3;
/// Shared pages.
const SHARED: u64 = 2;

/// The byte at offset `i` of `vcpu`'s source in `round`.
fn pattern(vcpu: u64, round: u64, i: u64) -> u8 {
    let x = i.wrapping_mul(0x9e37_79b9) ^ round.wrapping_mul(0x85eb_ca6b) ^ (vcpu + 1).wrapping_mul(0xc2b2_ae35);
    (x ^ (x >> 8) ^ (x >> 16) ^ (x >> 24)) as u8
}

/// FNV-1a over the bytes `byte(0..len)`.
fn fnv(len: u64, byte: impl Fn(u64) -> u8) -> u64 {
    (0..len).fold(0xcbf2_9ce4_8422_2325, |hash, i| (hash ^ u64::from(byte(i))).wrapping_mul(0x0100_0000_01b3))
}

/// Reads byte `i` at `base`.
fn peek(base: u64, i: u64) -> u8 {
    // SAFETY: callers read only their own pages, and only while not hidden.
    unsafe { read_volatile((base + i) as *const u8) }
}

/// What every vCPU gets from vCPU 0: the shared pages, attached once.
struct Shared {
    engine: DmaEngine,
    pages: u64,
    xmem: Xmem,
    slot: u64,
}

/// One worker's private pages, attached.
struct Private {
    base: u64,
    xmem: Xmem,
}

impl Private {
    fn new() -> Result<Private, &'static str> {
        let base = aix::xmalloc((PRIVATE * PAGE) as usize, 12, Heap::PINNED) as u64;
        if base == 0 {
            return Err("xmalloc");
        }
        let mut xmem = Xmem::default();
        if xmem::xmattach(base, PRIVATE * PAGE, &mut xmem, SYS_ADSPACE).is_err() {
            // SAFETY: the block is ours and unused.
            unsafe { aix::xmfree(base as *mut u8, Heap::PINNED) };
            return Err("xmattach");
        }
        Ok(Private { base, xmem })
    }

    fn source(&self) -> u64 {
        self.base
    }

    fn destination(&self, n: u64) -> u64 {
        self.base + (1 + n) * PAGE
    }

    fn release(mut self) -> Result<(), &'static str> {
        xmem::xmdetach(&mut self.xmem).map_err(|_| "xmdetach")?;
        // SAFETY: the block is detached and unused.
        match unsafe { aix::xmfree(self.base as *mut u8, Heap::PINNED) } {
            0 => Ok(()),
            _ => Err("xmfree"),
        }
    }
}

/// The figures of one worker.
#[derive(Default)]
struct Tally {
    errors: u64,
    checksum: u64,
}

impl Tally {
    fn pack(&self) -> u64 {
        (self.errors << 32) | (self.checksum & 0xffff_ffff)
    }
}

/// One round of `vcpu`; adds the destinations' checksum to `tally`.
fn round(shared: &Shared, private: &Private, vcpu: u64, n: u64, tally: &mut Tally) -> Result<(), &'static str> {
    let engine = shared.engine;
    let channel = engine.channel(vcpu);
    for i in 0..PAGE {
        // SAFETY: the source is this worker's own page, not hidden now.
        unsafe { write_volatile((private.source() + i) as *mut u8, pattern(vcpu, n, i)) };
    }
    let mut mine = [0u64; PRIVATE as usize];
    let mut both = [0u64; SHARED as usize];
    xmem::xmemdma_pages(&private.xmem, private.base, PRIVATE, XMEM_HIDE, &mut mine).map_err(|_| "hiding the private pages")?;
    if let Err(_status) = xmem::xmemdma_pages(&shared.xmem, shared.pages, SHARED, XMEM_HIDE, &mut both) {
        let _ = xmem::xmemdma_pages(&private.xmem, private.base, PRIVATE, XMEM_UNHIDE, &mut []);
        return Err("hiding the shared pages");
    }
    let half = PAGE / 2;
    let slot = shared.slot;
    let transfers = [
        (mine[0], mine[1], PAGE),
        (mine[0] + half, mine[2], half),
        (mine[0], mine[2] + half, half),
        (mine[0], both[0] + vcpu * slot, slot),
        (mine[0] + slot, both[1] + vcpu * slot, slot),
    ];
    let mut failed = None;
    for (source, destination, length) in transfers {
        // SAFETY: every page the transfer touches is hidden (handed off), by
        // this vCPU at least; the slots of the shared pages are this vCPU's.
        if let Err(code) = unsafe { engine.transfer(channel, source, destination, length, DIR_MEMORY_TO_MEMORY) } {
            println!("xmem-smp: vCPU {vcpu} round {n}: a transfer failed with error {code}");
            failed = Some("a transfer");
        }
    }
    let unhidden = (
        xmem::xmemdma_pages(&shared.xmem, shared.pages, SHARED, XMEM_UNHIDE, &mut []),
        xmem::xmemdma_pages(&private.xmem, private.base, PRIVATE, XMEM_UNHIDE, &mut []),
    );
    if unhidden != (Ok(SHARED), Ok(PRIVATE)) {
        return Err("unhiding");
    }
    if let Some(what) = failed {
        return Err(what);
    }
    let want = |d: u64, i: u64| match d {
        0 => pattern(vcpu, n, i),
        _ => pattern(vcpu, n, (i + half) % PAGE),
    };
    for d in 0..2 {
        let got = fnv(PAGE, |i| peek(private.destination(d), i));
        if got != fnv(PAGE, |i| want(d, i)) {
            let at = (0..PAGE).find(|&i| peek(private.destination(d), i) != want(d, i)).unwrap_or(0);
            println!("xmem-smp: vCPU {vcpu} round {n}: destination {d} is wrong from offset {at:#x}");
            return Err("a destination's checksum");
        }
        tally.checksum = tally.checksum.wrapping_add(got);
    }
    Ok(())
}

/// The work of one vCPU; `argument` points to vCPU 0's [`Shared`].
fn worker(argument: u64) -> u64 {
    // SAFETY: vCPU 0 keeps the `Shared` alive and unchanged until it has
    // waited for every worker.
    let shared = unsafe { &*(argument as *const Shared) };
    let vcpu = vcpu_id();
    let mut tally = Tally::default();
    let private = match Private::new() {
        Ok(private) => private,
        Err(what) => {
            println!("xmem-smp: vCPU {vcpu}: {what} failed");
            tally.errors = 1;
            return tally.pack();
        }
    };
    for n in 0..ROUNDS {
        if let Err(what) = round(shared, &private, vcpu, n, &mut tally) {
            tally.errors += 1;
            if tally.errors <= 5 {
                println!("xmem-smp: vCPU {vcpu} round {n}: {what}");
            }
        }
    }
    if let Err(what) = private.release() {
        println!("xmem-smp: vCPU {vcpu}: {what} failed");
        tally.errors += 1;
    }
    println!("xmem-smp: vCPU {vcpu}: {ROUNDS} rounds, {} errors, checksum {:#010x}", tally.errors, tally.checksum & 0xffff_ffff);
    tally.pack()
}

fn main() -> u32 {
    let n = vcpu_count();
    if !(2..=DMA_CHANNELS).contains(&n) {
        println!("xmem-smp: needs 2 to {DMA_CHANNELS} vCPUs (--vcpus), has {n}");
        return 1;
    }
    let engine = match DmaEngine::map() {
        Ok(engine) => engine,
        Err(status) => {
            println!("xmem-smp: mapping the DMA engine failed: {}", status.name());
            return 1;
        }
    };
    let pages = aix::xmalloc((SHARED * PAGE) as usize, 12, Heap::PINNED) as u64;
    let mut shared = Shared { engine, pages, xmem: Xmem::default(), slot: (PAGE / n) & !7 };
    if pages == 0 || xmem::xmattach(pages, SHARED * PAGE, &mut shared.xmem, SYS_ADSPACE).is_err() {
        println!("xmem-smp: setting up the shared pages failed");
        return 1;
    }
    let argument = &shared as *const Shared as u64;
    let mut started = 0;
    for k in 1..n {
        match smp::start(k, worker, argument) {
            Ok(()) => started += 1,
            Err(status) => {
                println!("xmem-smp: starting vCPU {k} failed: {}", status.name());
                break;
            }
        }
    }
    let own = worker(argument);
    let mut errors = own >> 32;
    let mut checksum = own & 0xffff_ffff;
    for k in 1..=started {
        match smp::wait(k) {
            Ok(value) => {
                errors += value >> 32;
                checksum = checksum.wrapping_add(value & 0xffff_ffff);
            }
            Err(status) => {
                println!("xmem-smp: waiting for vCPU {k} failed: {}", status.name());
                errors += 1;
            }
        }
    }
    // Every slot of the shared pages holds its vCPU's last pattern.
    let slot = shared.slot;
    for v in 0..n {
        for p in 0..SHARED {
            let at = pages + p * PAGE + v * slot;
            let want = |i: u64| pattern(v, ROUNDS - 1, p * slot + i);
            if fnv(slot, |i| peek(at, i)) != fnv(slot, want) {
                println!("xmem-smp: shared page {p}, slot of vCPU {v}: not the last round's data");
                errors += 1;
            }
        }
    }
    let detached = xmem::xmdetach(&mut shared.xmem);
    // SAFETY: the shared pages are detached and no worker runs.
    let freed = unsafe { aix::xmfree(pages as *mut u8, Heap::PINNED) };
    // SAFETY: no transfer runs and nothing uses the window any more.
    let unmapped = unsafe { engine.unmap() };
    if detached.is_err() || freed != 0 || unmapped.is_err() || started + 1 != n {
        println!(
            "xmem-smp: cleaning up failed: xmdetach {:?}, xmfree {freed}, unmap {:?}",
            detached.map_err(Status::name),
            unmapped.map_err(Status::name)
        );
        errors += 1;
    }
    let transfers = n * ROUNDS * TRANSFERS;
    let bytes = n * ROUNDS * (2 * PAGE + 2 * slot);
    println!(
        "xmem-smp: {n} vCPUs x {ROUNDS} rounds: {transfers} transfers, {bytes} bytes, shared pages hidden by up to {n} vCPUs at once, {errors} errors, checksum {:#010x}",
        checksum & 0xffff_ffff
    );
    u32::from(errors > 0)
}
