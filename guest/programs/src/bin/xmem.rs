//! The AIX cross-memory services and DMA engine conformance guest (xmattach … xmemdma_pages, device errors): PASS/FAIL/SKIP per case, no violations.
//!
//! One case per answer a well-behaved caller can provoke: `xmattach` and
//! `xmattach64` with every refusal (segment flag, count, 4 GiB, unmapped
//! memory, a bad descriptor pointer) and in process and kernel context;
//! `xmdetach` of forged, zeroed and already-detached descriptors and at
//! interrupt level; `xmemin`/`xmemout` across pages, outside the attached
//! buffer, with bad kernel addresses, from another process and from kernel
//! context, and at interrupt level with resident buffers; `xmempin` and
//! `xmemunpin` and the pin counts they share with `pinu`/`pin`; `xmemdma`
//! hide, unhide, nesting and `XMEM_ACC_CHK` with the real addresses checked
//! against `vm_get_physical_byte_address`; `xmemdma_pages` batches (all or
//! nothing, 1024 pages); frees after `xmdetach`; and the DMA engine: its ID,
//! transfers in every direction into hidden pages, every `ERROR_*` a
//! transfer can end with, garbage register values and all channels at once.
//!
//! Misuse that the VMM records as a violation lives in the `xmem-misuse-*`
//! guests, so this run ends with no violation, nothing attached, hidden,
//! pinned or allocated. A page that a case expects not to be hidden is read
//! directly: were it hidden, this single vCPU would stall and the run would
//! end in a hidden-page deadlock (exit status 75), which the test sees.
//!
//! Prints `PASS: case`, `FAIL: case: why` or `SKIP: case: why` per case and
//! `SUMMARY: N passed, M failed, K skipped` at the end; exits 0 iff nothing
//! failed. Assumes the default 64 MiB of RAM and one vCPU.
#![no_std]
#![no_main]
// A failure carries its message in a fixed buffer (there is no heap); only the
// failure path moves it.
#![allow(clippy::result_large_err)]

use core::ptr::{read_volatile, write_volatile};

use kmemvisor_guest::abi::{Status, layout};
use kmemvisor_guest::aix::{self, Heap, UIO_USERSPACE};
use kmemvisor_guest::conformance::{Outcome, Tally, Why, expect};
use kmemvisor_guest::dgux;
use kmemvisor_guest::dma::{
    DIR_FROM_DEVICE, DIR_MEMORY_TO_MEMORY, DIR_TO_DEVICE, DMA_CHANNELS, DMA_DEVICE_MEMORY, DMA_ENGINE_GPA, DMA_ENGINE_ID,
    DMA_MAX_TRANSFER, DmaEngine, ERROR_BAD_DIRECTION, ERROR_BAD_LENGTH, ERROR_OUTSIDE_DEVICE_MEMORY, ERROR_OUTSIDE_RAM,
    REG_COMPLETED, REG_DESTINATION, REG_DIRECTION, REG_DOORBELL, REG_ERROR, REG_ID, REG_LENGTH, REG_SOURCE, STATUS_DONE,
    STATUS_IDLE,
};
use kmemvisor_guest::ensure;
use kmemvisor_guest::process::{self, PROT_READ, PROT_WRITE, Pid, at_interrupt_level};
use kmemvisor_guest::rng::Rng;
use kmemvisor_guest::xmem::{
    self, SYS_ADSPACE, USER_ADSPACE, XMEM_ACC_CHK, XMEM_HIDE, XMEM_UNHIDE, XMEM_WRITE_ONLY, XMEMDMA_MAX_PAGES, Xmem, raw,
};

kmemvisor_firmware::entry!(main);

const PAGE: u64 = layout::PAGE_SIZE;
const RW: u64 = PROT_READ | PROT_WRITE;
/// Four writable pages, in both processes (different contents).
const UA: u64 = 0x1000_0000;
const UA_PAGES: u64 = 4;
/// One read-only page right after UA's (first process); the page after it is unmapped.
const URO: u64 = UA + UA_PAGES * PAGE;
/// The last page below 4 GiB, and the first above (two mappings of the first process).
const ULOW: u64 = 0xffff_f000;
const UHIGH: u64 = 0x1_0000_0000;
/// 1024 writable pages of the first process, for the largest batch.
const BIG: u64 = 0x4000_0000;
/// A user address mapped nowhere.
const UNMAPPED: u64 = 0x2000_0000;
/// A kernel address nothing maps: the last page of the pageable heap's range.
const KERNEL_UNMAPPED: u64 = layout::KERNEL_HEAP_VA + layout::ARENA_SIZE - PAGE;
/// The guest RAM the device cases assume (the VMM's default).
const RAM_END: u64 = layout::DEFAULT_RAM_SIZE;
/// A value a refused call must leave in a descriptor.
const UNTOUCHED: Xmem = Xmem { handle: 0xee, tag: 0xee, aspace_id: 0xee, base: 0xee, len: 0xee };

/// A descriptor-sized constant in the image's read-only data.
static RODATA: [u64; 5] = [1, 2, 3, 4, 5];

/// The two processes of the cases.
#[derive(Clone, Copy)]
struct Pids {
    /// Maps UA, URO, ULOW, UHIGH and BIG; current unless a case says otherwise.
    first: Pid,
    /// Maps UA only, with other contents.
    second: Pid,
}

// ---------------------------------------------------------------- memory

/// Reads byte `i` at `base`.
fn peek(base: u64, i: u64) -> u8 {
    // SAFETY: callers read only mapped memory of theirs that is not hidden:
    // their own buffers, or user pages of the current process.
    unsafe { read_volatile((base + i) as *const u8) }
}

/// Writes byte `i` at `base`.
fn poke(base: u64, i: u64, value: u8) {
    // SAFETY: callers write only their own buffers or writable user pages of
    // the current process, which nothing references and nothing hides.
    unsafe { write_volatile((base + i) as *mut u8, value) }
}

/// The pattern byte at offset `i` for `seed` (never 0).
fn pattern(seed: u8, i: u64) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(seed.wrapping_mul(17)) | 1
}

fn fill(base: u64, len: u64, seed: u8) {
    (0..len).for_each(|i| poke(base, i, pattern(seed, i)));
}

/// Fails unless `len` bytes at `base` hold the pattern of `seed` from offset `from`.
fn holds(what: &str, base: u64, len: u64, seed: u8, from: u64) -> Outcome {
    if let Some(i) = (0..len).find(|&i| peek(base, i) != pattern(seed, from + i)) {
        return Err(Why::new(format_args!(
            "{what}: byte {i:#x} is {:#x}, expected {:#x}",
            peek(base, i),
            pattern(seed, from + i)
        )));
    }
    Ok(())
}

/// Reads one byte of each page of `[base, base + len)`: were one hidden, the
/// vCPU would stall here for good.
fn readable(base: u64, len: u64) {
    (0..len).step_by(PAGE as usize).for_each(|i| {
        peek(base, i);
    });
}

/// The guest-physical address of `va` (user: of the current process).
fn physical(va: u64, user: bool) -> Result<u64, Why> {
    let mut stored = dgux::VM_INVALID_PHYSICAL_ADDRESS;
    // SAFETY: `stored` is a live local, valid for the 8-byte write.
    let (status, _) = unsafe { dgux::raw::vm_get_physical_byte_address(va, u64::from(user), &mut stored as *mut u64 as u64) };
    ensure!(status == Status::OK && stored != dgux::VM_INVALID_PHYSICAL_ADDRESS, "no physical address for {va:#x}");
    Ok(stored)
}

/// A live `xmalloc` allocation, freed when dropped.
struct Alloc {
    ptr: u64,
    heap: Heap,
}

impl Alloc {
    fn new(size: u64, heap: Heap) -> Result<Alloc, Why> {
        let ptr = aix::xmalloc(size as usize, 12, heap) as u64;
        ensure!(ptr != 0, "xmalloc({size:#x}) failed");
        Ok(Alloc { ptr, heap })
    }
}

impl Drop for Alloc {
    fn drop(&mut self) {
        // SAFETY: the allocation is ours, and its attachments are dropped first
        // (they are declared after it).
        unsafe { aix::xmfree(self.ptr as *mut u8, self.heap) };
    }
}

/// A live attachment, detached when dropped so that a failing case leaves
/// nothing behind. Declare it after the memory it attaches.
struct Attached {
    d: Xmem,
}

impl Attached {
    fn new(addr: u64, count: u64, segflag: u64) -> Result<Attached, Why> {
        let mut d = Xmem::default();
        let result = xmem::xmattach64(addr, count, &mut d, segflag);
        ensure!(result.is_ok(), "xmattach64({addr:#x}, {count:#x}, {segflag}) answered {:?}", result.err().map(Status::name));
        Ok(Attached { d })
    }

    fn detach(mut self) -> Outcome {
        let result = xmem::xmdetach(&mut self.d);
        core::mem::forget(self);
        ensure!(result.is_ok(), "xmdetach answered {:?}", result.err().map(Status::name));
        Ok(())
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = xmem::xmdetach(&mut self.d);
    }
}

/// Switches to `pid` (0: no process).
fn switch(pid: Pid) -> Outcome {
    // SAFETY: no reference into user memory lives across a switch: the cases
    // reach user memory only through `peek` and `poke` while current.
    let result = unsafe { process::process_switch(pid) };
    ensure!(result.is_ok(), "process_switch({pid}) answered {:?}", result.err().map(Status::name));
    Ok(())
}

/// Runs `f` in process `pid`, then switches back to `back`.
fn within(pid: Pid, back: Pid, f: impl FnOnce() -> Outcome) -> Outcome {
    switch(pid)?;
    let outcome = f();
    switch(back)?;
    outcome
}

// ---------------------------------------------------------------- calls

/// Fails the case unless the reply is `want` with value `value`.
fn reply(what: &str, (status, got): (Status, u64), want: Status, value: u64) -> Outcome {
    ensure!(status == want && got == value, "{what} answered {} {got:#x}, expected {} {value:#x}", status.name(), want.name());
    Ok(())
}

fn at(d: &Xmem) -> u64 {
    d as *const Xmem as u64
}

/// `xmattach` (plain or 64) into `dp`, a descriptor of the caller's or an
/// address the VMM must refuse.
fn attach_at(plain: bool, addr: u64, count: u64, dp: u64, segflag: u64) -> Status {
    // SAFETY: callers pass a live descriptor of theirs or an address that is
    // not writable kernel memory (refused, nothing written).
    unsafe { if plain { raw::xmattach(addr, count, dp, segflag) } else { raw::xmattach64(addr, count, dp, segflag) } }.0
}

/// `xmattach`/`xmattach64` that must be refused, checking that the
/// descriptor is left alone.
fn refused(plain: bool, addr: u64, count: u64, segflag: u64, want: Status) -> Outcome {
    let mut d = UNTOUCHED;
    let status = attach_at(plain, addr, count, &mut d as *mut Xmem as u64, segflag);
    let name = if plain { "xmattach" } else { "xmattach64" };
    ensure!(status == want, "{name}({addr:#x}, {count:#x}, {segflag}) answered {}, expected {}", status.name(), want.name());
    ensure!(d == UNTOUCHED, "{name}({addr:#x}, …) was refused but wrote the descriptor");
    Ok(())
}

fn detach_at(dp: u64) -> Status {
    // SAFETY: callers pass a descriptor of theirs or an unreadable address.
    unsafe { raw::xmdetach(dp) }.0
}

/// `xmemin` into a kernel buffer of the caller's (or an address the VMM refuses).
fn xin(uaddr: u64, kaddr: u64, count: u64, d: &Xmem) -> (Status, u64) {
    // SAFETY: callers pass their own kernel buffers of at least `count` bytes
    // or addresses the VMM refuses.
    unsafe { raw::xmemin(uaddr, kaddr, count, at(d)) }
}

/// `xmemout` into attached memory nothing references.
fn xout(kaddr: u64, uaddr: u64, count: u64, d: &Xmem) -> (Status, u64) {
    // SAFETY: the attached memory is reached only through `peek`/`poke`.
    unsafe { raw::xmemout(kaddr, uaddr, count, at(d)) }
}

fn dma(d: &Xmem, xaddr: u64, flags: u64) -> (Status, u64) {
    raw::xmemdma(at(d), xaddr, flags)
}

fn dma64(d: &Xmem, xaddr: u64, flags: u64) -> (Status, u64) {
    raw::xmemdma64(at(d), xaddr, flags)
}

fn batch(d: &Xmem, xaddr: u64, pages: u64, flags: u64, out: u64) -> (Status, u64) {
    // SAFETY: callers pass 0, an array of at least `pages` u64s of theirs, or
    // an address the VMM refuses.
    unsafe { raw::xmemdma_pages(at(d), xaddr, pages, flags, out) }
}

// ---------------------------------------------------------------- processes

/// Creates the two processes and their memory; leaves the first current.
fn processes(t: &mut Tally) -> Option<Pids> {
    let setup = (|| {
        let created = (process::process_create(), process::process_create());
        let (Ok(first), Ok(second)) = created else {
            return Err(Why::new(format_args!("process_create answered {created:?}")));
        };
        switch(second)?;
        ensure!(process::process_map(UA, UA_PAGES * PAGE, RW).is_ok(), "process_map in the second process");
        fill(UA, UA_PAGES * PAGE, 2);
        switch(first)?;
        let maps = [
            (UA, UA_PAGES * PAGE, RW),
            (URO, PAGE, PROT_READ),
            (ULOW, PAGE, RW),
            (UHIGH, PAGE, RW),
            (BIG, XMEMDMA_MAX_PAGES * PAGE, RW),
        ];
        for (va, bytes, prot) in maps {
            let result = process::process_map(va, bytes, prot);
            ensure!(result.is_ok(), "process_map({va:#x}, {bytes:#x}) answered {:?}", result.err().map(Status::name));
        }
        fill(UA, UA_PAGES * PAGE, 1);
        Ok(Pids { first, second })
    })();
    let pids = setup.as_ref().ok().copied();
    t.case("two processes with user memory (the second with other contents)", setup.map(drop));
    pids
}

/// Destroys both processes: nothing attached or pinned is left in them.
fn teardown(t: &mut Tally, pids: Pids) {
    t.case(
        "process_destroy of both processes after their attachments ended",
        (|| {
            switch(0)?;
            for pid in [pids.first, pids.second] {
                // SAFETY: no reference into its user memory lives.
                let destroyed = unsafe { process::process_destroy(pid) };
                ensure!(destroyed.is_ok(), "process_destroy({pid}) answered {destroyed:?}");
            }
            Ok(())
        })(),
    );
}

// ---------------------------------------------------------------- xmattach / xmdetach

fn attaching(t: &mut Tally, pids: Pids) {
    t.case(
        "xmattach of a user buffer under its process: the descriptor names it; xmdetach zeroes its handle",
        (|| {
            let mut d = UNTOUCHED;
            let result = xmem::xmattach(UA + 0x10, 3 * PAGE, &mut d, USER_ADSPACE);
            ensure!(result.is_ok(), "xmattach answered {result:?}");
            ensure!(
                d.handle != 0 && d.aspace_id == pids.first && d.base == UA + 0x10 && d.len == 3 * PAGE,
                "descriptor {d:x?}, process {}",
                pids.first
            );
            let result = xmem::xmdetach(&mut d);
            ensure!(result.is_ok(), "xmdetach answered {result:?}");
            ensure!(d.handle == 0, "the handle is {:#x} after xmdetach", d.handle);
            Ok(())
        })(),
    );
    t.case(
        "xmattach SYS_ADSPACE of kernel memory, in process and in kernel context: aspace_id 0",
        (|| {
            let block = Alloc::new(2 * PAGE, Heap::KERNEL)?;
            let a = Attached::new(block.ptr + 8, 2 * PAGE - 8, SYS_ADSPACE)?;
            ensure!(a.d.handle != 0 && a.d.aspace_id == 0 && a.d.base == block.ptr + 8, "descriptor {:x?}", a.d);
            let b = within(0, pids.first, || {
                let mut d = Xmem::default();
                ensure!(xmem::xmattach(block.ptr, 16, &mut d, SYS_ADSPACE).is_ok(), "xmattach without a process");
                ensure!(d.aspace_id == 0, "descriptor {d:x?}");
                ensure!(xmem::xmdetach(&mut d).is_ok(), "xmdetach without a process");
                Ok(())
            });
            a.detach()?;
            b
        })(),
    );
    t.case(
        "two attachments of one buffer have different handles and tags and detach apart",
        (|| {
            let a = Attached::new(UA, PAGE, USER_ADSPACE)?;
            let b = Attached::new(UA, PAGE, USER_ADSPACE)?;
            ensure!(a.d.handle != b.d.handle && a.d.tag != b.d.tag, "{:x?} and {:x?}", a.d, b.d);
            a.detach()?;
            let mut k = [0u8; 16];
            reply("xmemin through the second", xin(UA, k.as_mut_ptr() as u64, 16, &b.d), Status::OK, 16)?;
            b.detach()
        })(),
    );
    t.case(
        "xmattach reaches user memory up to 4 GiB; xmattach64 beyond: above and across 4 GiB plain xmattach is EFAULT",
        (|| {
            let mut d = Xmem::default();
            let dp = &mut d as *mut Xmem as u64;
            expect("xmattach of the page ending at 4 GiB", attach_at(true, ULOW, PAGE, dp, USER_ADSPACE), Status::OK)?;
            expect("its xmdetach", detach_at(dp), Status::OK)?;
            refused(true, UHIGH, 16, USER_ADSPACE, Status::EFAULT)?;
            refused(true, UHIGH - 8, 16, USER_ADSPACE, Status::EFAULT)?;
            for (addr, what) in [(UHIGH, "above"), (UHIGH - 8, "across")] {
                expect(what, attach_at(false, addr, 16, dp, USER_ADSPACE), Status::OK)?;
                ensure!(d.base == addr && d.len == 16, "descriptor {d:x?}");
                expect("xmdetach", detach_at(dp), Status::OK)?;
            }
            Ok(())
        })(),
    );
    t.case(
        "xmattach with a segflag other than USER_ADSPACE or SYS_ADSPACE: EINVAL",
        (|| {
            for segflag in [2, 3, 0x100, u64::MAX] {
                refused(false, UA, 16, segflag, Status::EINVAL)?;
                refused(true, UA, 16, segflag, Status::EINVAL)?;
            }
            Ok(())
        })(),
    );
    t.case(
        "xmattach of 0 bytes, above i32::MAX bytes or a wrapping range: EINVAL; i32::MAX bytes pass that check",
        (|| {
            let k = Alloc::new(PAGE, Heap::KERNEL)?;
            refused(false, UA, 0, USER_ADSPACE, Status::EINVAL)?;
            refused(false, k.ptr, 0, SYS_ADSPACE, Status::EINVAL)?;
            refused(false, UA, 1 << 31, USER_ADSPACE, Status::EINVAL)?;
            refused(false, k.ptr, u64::MAX, SYS_ADSPACE, Status::EINVAL)?;
            refused(false, u64::MAX - 8, 16, SYS_ADSPACE, Status::EINVAL)?;
            refused(false, UA, i32::MAX as u64, USER_ADSPACE, Status::EFAULT)
        })(),
    );
    t.case(
        "xmattach of user memory the process does not map, or of a kernel address as user memory: EFAULT",
        (|| {
            let k = Alloc::new(PAGE, Heap::KERNEL)?;
            refused(false, UNMAPPED, 16, USER_ADSPACE, Status::EFAULT)?;
            refused(false, URO, 2 * PAGE, USER_ADSPACE, Status::EFAULT)?;
            refused(false, k.ptr, 16, USER_ADSPACE, Status::EFAULT)?;
            refused(false, layout::USER_END - 8, 8, USER_ADSPACE, Status::EFAULT)
        })(),
    );
    t.case(
        "xmattach SYS_ADSPACE of unmapped kernel memory or of a user address: EFAULT",
        (|| {
            refused(false, KERNEL_UNMAPPED, 16, SYS_ADSPACE, Status::EFAULT)?;
            refused(false, UA, 16, SYS_ADSPACE, Status::EFAULT)
        })(),
    );
    t.case(
        "xmattach with dp unmapped, read-only, a user address or 0: EFAULT",
        (|| {
            let rodata = RODATA.as_ptr() as u64;
            for (dp, what) in [(KERNEL_UNMAPPED, "unmapped"), (rodata, "read-only data"), (UA, "a user address"), (0, "0")] {
                expect(what, attach_at(false, UA, 16, dp, USER_ADSPACE), Status::EFAULT)?;
            }
            ensure!(RODATA == [1, 2, 3, 4, 5], "the read-only descriptor changed");
            Ok(())
        })(),
    );
    t.case(
        "xmdetach of an unreadable descriptor (unmapped, a user address, 0): EFAULT",
        (|| {
            for dp in [KERNEL_UNMAPPED, UA, 0] {
                expect("xmdetach", detach_at(dp), Status::EFAULT)?;
            }
            Ok(())
        })(),
    );
    t.case(
        "xmdetach of a descriptor that never named an attachment (zeroed, garbage, tag or handle changed): EINVAL",
        (|| {
            let a = Attached::new(UA, PAGE, USER_ADSPACE)?;
            let b = Attached::new(UA + PAGE, PAGE, USER_ADSPACE)?;
            let forged = [
                Xmem::default(),
                UNTOUCHED,
                Xmem { tag: a.d.tag ^ 1, ..a.d },
                Xmem { handle: a.d.handle + 1000, ..a.d },
                Xmem { handle: b.d.handle, ..a.d },
                Xmem { handle: 0, ..a.d },
            ];
            for mut d in forged {
                expect("xmdetach", detach_at(&mut d as *mut Xmem as u64), Status::EINVAL)?;
                reply("xmemin", xin(UA, 0, 0, &d), Status::EINVAL, 0)?;
                expect("xmemdma", dma(&d, UA, XMEM_ACC_CHK).0, Status::EINVAL)?;
                expect("xmempin", raw::xmempin(UA, 16, at(&d)).0, Status::EINVAL)?;
            }
            // Both attachments are still live.
            b.detach()?;
            a.detach()
        })(),
    );
    t.case(
        "xmdetach twice through one descriptor: the second is EINVAL (its handle was zeroed)",
        (|| {
            let mut d = Xmem::default();
            ensure!(xmem::xmattach(UA, PAGE, &mut d, USER_ADSPACE).is_ok(), "xmattach");
            ensure!(xmem::xmdetach(&mut d).is_ok(), "xmdetach");
            ensure!(xmem::xmdetach(&mut d) == Err(Status::EINVAL), "the second xmdetach");
            Ok(())
        })(),
    );
    t.case(
        "a copy of a live descriptor names the same attachment (xmemin, xmdetach through it)",
        (|| {
            let mut original = Xmem::default();
            ensure!(xmem::xmattach(UA, PAGE, &mut original, USER_ADSPACE).is_ok(), "xmattach");
            let mut copy = original;
            let mut k = [0u8; 32];
            reply("xmemin through the copy", xin(UA + 8, k.as_mut_ptr() as u64, 32, &copy), Status::OK, 32)?;
            holds("the bytes", k.as_ptr() as u64, 32, 1, 8)?;
            ensure!(xmem::xmdetach(&mut copy).is_ok(), "xmdetach through the copy");
            // The original is stale now: using it would be a violation.
            Ok(())
        })(),
    );
    t.case(
        "xmdetach at interrupt level: OK",
        (|| {
            let mut a = Attached::new(UA, PAGE, USER_ADSPACE)?;
            let result = at_interrupt_level(|| xmem::xmdetach(&mut a.d));
            ensure!(result.is_ok(), "xmdetach answered {result:?}");
            core::mem::forget(a);
            Ok(())
        })(),
    );
    t.case(
        "after xmdetach the memory frees: xmfree, vm_release_wired_memory, process_destroy",
        (|| {
            let block = aix::xmalloc(PAGE as usize, 12, Heap::KERNEL) as u64;
            let wired = dgux::vm_perhaps_get_wired_memory(PAGE as u32, dgux::VM_PAGE_ALIGNED) as u64;
            ensure!(block != 0 && wired != 0, "allocations failed");
            Attached::new(block, PAGE, SYS_ADSPACE)?.detach()?;
            Attached::new(wired, 64, SYS_ADSPACE)?.detach()?;
            // SAFETY: both are detached and unused.
            let freed = unsafe { aix::raw::xmfree(block, Heap::KERNEL.0).0 };
            expect("xmfree", freed, Status::OK)?;
            // SAFETY: as above.
            expect("vm_release_wired_memory", unsafe { dgux::raw::vm_release_wired_memory(wired, PAGE) }, Status::OK)?;
            let pid = process::process_create().map_err(|s| Why::new(format_args!("process_create: {}", s.name())))?;
            within(pid, pids.first, || {
                ensure!(process::process_map(UA, PAGE, RW).is_ok(), "process_map");
                Attached::new(UA, PAGE, USER_ADSPACE)?.detach()
            })?;
            // SAFETY: not current anywhere, nothing references its memory.
            let destroyed = unsafe { process::process_destroy(pid) };
            ensure!(destroyed.is_ok(), "process_destroy answered {destroyed:?}");
            Ok(())
        })(),
    );
}

// ---------------------------------------------------------------- xmemin / xmemout

fn copies(t: &mut Tally, pids: Pids) {
    t.case(
        "xmemout then xmemin across the pages of a user attachment: the bytes round-trip, nothing around them moves",
        (|| {
            fill(UA, UA_PAGES * PAGE, 1);
            let out = Alloc::new(3 * PAGE, Heap::KERNEL)?;
            let back = Alloc::new(3 * PAGE, Heap::KERNEL)?;
            let a = Attached::new(UA, UA_PAGES * PAGE, USER_ADSPACE)?;
            let (at_user, count) = (UA + 0x900, 0x2100);
            fill(out.ptr, count, 3);
            reply("xmemout", xout(out.ptr, at_user, count, &a.d), Status::OK, count)?;
            holds("user memory", at_user, count, 3, 0)?;
            holds("the byte before", at_user - 1, 1, 1, 0x8ff)?;
            holds("the byte after", at_user + count, 1, 1, 0x900 + count)?;
            reply("xmemin", xin(at_user, back.ptr, count, &a.d), Status::OK, count)?;
            holds("kernel buffer", back.ptr, count, 3, 0)?;
            ensure!(peek(back.ptr, count) == 0, "xmemin wrote past the count");
            fill(UA, UA_PAGES * PAGE, 1);
            a.detach()
        })(),
    );
    t.case(
        "xmemin/xmemout of 0 bytes: OK; of more than i32::MAX bytes: EINVAL",
        (|| {
            let a = Attached::new(UA, PAGE, USER_ADSPACE)?;
            let mut k = [0u8; 8];
            let kaddr = k.as_mut_ptr() as u64;
            reply("xmemin of 0", xin(UA, kaddr, 0, &a.d), Status::OK, 0)?;
            reply("xmemout of 0", xout(kaddr, UA, 0, &a.d), Status::OK, 0)?;
            expect("xmemin of 2^31", xin(UA, kaddr, 1 << 31, &a.d).0, Status::EINVAL)?;
            expect("xmemout of 2^31", xout(kaddr, UA, 1 << 31, &a.d).0, Status::EINVAL)?;
            a.detach()
        })(),
    );
    t.case(
        "xmemin/xmemout outside the attached buffer (before, past its end, wrapping): EFAULT, user memory untouched",
        (|| {
            fill(UA, UA_PAGES * PAGE, 1);
            let a = Attached::new(UA + PAGE, 2 * PAGE, USER_ADSPACE)?;
            let mut k = [0x77u8; 64];
            let kaddr = k.as_mut_ptr() as u64;
            for (uaddr, count) in [(UA + PAGE - 1, 2), (UA, 8), (UA + 3 * PAGE - 8, 9), (UA + 3 * PAGE, 1), (u64::MAX - 4, 8)] {
                expect("xmemin", xin(uaddr, kaddr, count, &a.d).0, Status::EFAULT)?;
                expect("xmemout", xout(kaddr, uaddr, count, &a.d).0, Status::EFAULT)?;
            }
            holds("user memory", UA, UA_PAGES * PAGE, 1, 0)?;
            a.detach()
        })(),
    );
    t.case(
        "xmemin/xmemout with a kernel buffer that is unmapped or a user address: EFAULT",
        (|| {
            let a = Attached::new(UA, PAGE, USER_ADSPACE)?;
            for kaddr in [KERNEL_UNMAPPED, UA + PAGE, 0] {
                expect("xmemin", xin(UA, kaddr, 16, &a.d).0, Status::EFAULT)?;
                expect("xmemout", xout(kaddr, UA, 16, &a.d).0, Status::EFAULT)?;
            }
            a.detach()
        })(),
    );
    t.case(
        "xmemout running into a read-only page of the attached buffer: EFAULT, the bytes before it copied (value)",
        (|| {
            fill(UA, UA_PAGES * PAGE, 1);
            let a = Attached::new(URO - PAGE, 2 * PAGE, USER_ADSPACE)?;
            let mut k = [0u8; 0x100];
            fill(k.as_mut_ptr() as u64, 0x100, 4);
            reply("xmemout", xout(k.as_ptr() as u64, URO - 0x80, 0x100, &a.d), Status::EFAULT, 0x80)?;
            holds("the writable bytes", URO - 0x80, 0x80, 4, 0)?;
            ensure!(peek(URO, 0) == 0, "the read-only page changed");
            reply("xmemin from the read-only page", xin(URO, k.as_mut_ptr() as u64, 16, &a.d), Status::OK, 16)?;
            fill(UA, UA_PAGES * PAGE, 1);
            a.detach()
        })(),
    );
    t.case(
        "xmemin/xmemout reach the attached process's memory from another process and from kernel context",
        (|| {
            fill(UA, UA_PAGES * PAGE, 1);
            let a = Attached::new(UA, UA_PAGES * PAGE, USER_ADSPACE)?;
            let mut k = [0u8; 64];
            let kaddr = k.as_mut_ptr() as u64;
            let mut data = [0u8; 32];
            fill(data.as_mut_ptr() as u64, 32, 5);
            let from_second = within(pids.second, pids.first, || {
                reply("xmemin", xin(UA + 0x10, kaddr, 64, &a.d), Status::OK, 64)?;
                holds("the first process's bytes", kaddr, 64, 1, 0x10)?;
                reply("xmemout", xout(data.as_ptr() as u64, UA + PAGE, 32, &a.d), Status::OK, 32)?;
                holds("the second process's own page", UA + PAGE, 32, 2, PAGE)
            });
            let from_kernel = within(0, pids.first, || {
                reply("xmemin", xin(UA + PAGE, kaddr, 32, &a.d), Status::OK, 32)?;
                holds("what xmemout wrote", kaddr, 32, 5, 0)
            });
            from_second?;
            from_kernel?;
            holds("the first process's page", UA + PAGE, 32, 5, 0)?;
            fill(UA, UA_PAGES * PAGE, 1);
            a.detach()
        })(),
    );
    t.case(
        "xmemin/xmemout of a SYS_ADSPACE attachment move kernel bytes",
        (|| {
            let block = Alloc::new(2 * PAGE, Heap::KERNEL)?;
            fill(block.ptr, 2 * PAGE, 6);
            let a = Attached::new(block.ptr + 0x100, PAGE, SYS_ADSPACE)?;
            let mut k = [0u8; 0x200];
            let kaddr = k.as_mut_ptr() as u64;
            reply("xmemin", xin(block.ptr + PAGE - 0x80, kaddr, 0x100, &a.d), Status::OK, 0x100)?;
            holds("kernel buffer", kaddr, 0x100, 6, PAGE - 0x80)?;
            fill(kaddr, 0x200, 7);
            reply("xmemout", xout(kaddr, block.ptr + 0x100, 0x200, &a.d), Status::OK, 0x200)?;
            holds("attached memory", block.ptr + 0x100, 0x200, 7, 0)?;
            expect("outside", xin(block.ptr, kaddr, 8, &a.d).0, Status::EFAULT)?;
            a.detach()
        })(),
    );
    t.case(
        "xmemin/xmemout at interrupt level with resident buffers: xmempin'd user memory; pinned-heap, pin()ned kernel_heap, DG/UX-wired or stack kernel memory",
        (|| {
            fill(UA, UA_PAGES * PAGE, 1);
            let a = Attached::new(UA, 2 * PAGE, USER_ADSPACE)?;
            ensure!(xmem::xmempin(UA, 2 * PAGE, &a.d).is_ok(), "xmempin");
            let pinned = Alloc::new(64, Heap::PINNED)?;
            let pageable = Alloc::new(64, Heap::KERNEL)?;
            expect("pin of the kernel_heap buffer", aix::pin(pageable.ptr as *const u8, 64), Status::OK)?;
            // The stacks and the image are always resident, like wired memory.
            let mut stack = [0u8; 64];
            let stack_at = stack.as_mut_ptr() as u64;
            let wired = dgux::vm_perhaps_get_wired_memory(64, dgux::VM_DEFAULT_ALIGNMENT) as u64;
            ensure!(wired != 0, "vm_perhaps_get_wired_memory");
            let outcome = at_interrupt_level(|| {
                let buffers = [(pinned.ptr, "pinned heap"), (pageable.ptr, "pinned kernel_heap"), (wired, "wired memory"), (stack_at, "stack")];
                for (kaddr, what) in buffers {
                    reply(what, xin(UA + PAGE - 32, kaddr, 64, &a.d), Status::OK, 64)?;
                    holds(what, kaddr, 64, 1, PAGE - 32)?;
                    fill(kaddr, 64, 8);
                    reply(what, xout(kaddr, UA + 8, 64, &a.d), Status::OK, 64)?;
                }
                Ok(())
            });
            let unpinned = (xmem::xmemunpin(UA, 2 * PAGE, &a.d), aix::unpin(pageable.ptr as *const u8, 64));
            // SAFETY: the wired block is ours and unused.
            unsafe { dgux::vm_release_wired_memory(wired as *mut u8, 64) };
            outcome?;
            ensure!(unpinned == (Ok(()), Status::OK), "unpinning answered {unpinned:?}");
            holds("user memory", UA + 8, 64, 8, 0)?;
            fill(UA, UA_PAGES * PAGE, 1);
            a.detach()
        })(),
    );
    t.case(
        "xmemin/xmemout at interrupt level of a SYS_ADSPACE attachment on the pinned heap",
        (|| {
            let block = Alloc::new(PAGE, Heap::PINNED)?;
            let buffer = Alloc::new(PAGE, Heap::PINNED)?;
            fill(block.ptr, PAGE, 9);
            let a = Attached::new(block.ptr, PAGE, SYS_ADSPACE)?;
            let moved = at_interrupt_level(|| (xin(block.ptr, buffer.ptr, PAGE, &a.d), xout(buffer.ptr, block.ptr, 16, &a.d)));
            reply("xmemin", moved.0, Status::OK, PAGE)?;
            reply("xmemout", moved.1, Status::OK, 16)?;
            holds("kernel buffer", buffer.ptr, PAGE, 9, 0)?;
            a.detach()
        })(),
    );
}

// ---------------------------------------------------------------- xmempin / xmemunpin

fn pinning(t: &mut Tally, pids: Pids) {
    t.case(
        "xmempin/xmemunpin: counts nest page by page; an unpin below zero is EINVAL",
        (|| {
            let a = Attached::new(UA, 2 * PAGE, USER_ADSPACE)?;
            for _ in 0..2 {
                ensure!(xmem::xmempin(UA, 2 * PAGE, &a.d).is_ok(), "xmempin");
            }
            for _ in 0..2 {
                ensure!(xmem::xmemunpin(UA + 100, 2 * PAGE - 100, &a.d).is_ok(), "xmemunpin");
            }
            ensure!(xmem::xmemunpin(UA, 1, &a.d) == Err(Status::EINVAL), "an unpin below zero");
            ensure!(xmem::xmempin(UA + PAGE - 1, 2, &a.d).is_ok(), "xmempin across the two pages");
            ensure!(xmem::xmemunpin(UA, 1, &a.d).is_ok(), "xmemunpin of the first page");
            ensure!(xmem::xmemunpin(UA + PAGE, 1, &a.d).is_ok(), "xmemunpin of the second page");
            ensure!(xmem::xmemunpin(UA + PAGE, 1, &a.d) == Err(Status::EINVAL), "again");
            a.detach()
        })(),
    );
    t.case(
        "xmempin/xmemunpin outside the attached buffer: EFAULT; of 0 or more than i32::MAX bytes: EINVAL",
        (|| {
            let a = Attached::new(UA + PAGE, PAGE, USER_ADSPACE)?;
            for (uaddr, count) in [(UA, 16), (UA + PAGE - 1, 2), (UA + 2 * PAGE - 8, 9), (UA + 2 * PAGE, 1)] {
                expect("xmempin", raw::xmempin(uaddr, count, at(&a.d)).0, Status::EFAULT)?;
                expect("xmemunpin", raw::xmemunpin(uaddr, count, at(&a.d)).0, Status::EFAULT)?;
            }
            for count in [0, 1 << 31] {
                expect("xmempin", raw::xmempin(UA + PAGE, count, at(&a.d)).0, Status::EINVAL)?;
                expect("xmemunpin", raw::xmemunpin(UA + PAGE, count, at(&a.d)).0, Status::EINVAL)?;
            }
            a.detach()
        })(),
    );
    t.case(
        "xmempin pins the attached process's pages whatever process is current; pinu/unpinu share the count",
        (|| {
            let a = Attached::new(UA, PAGE, USER_ADSPACE)?;
            within(pids.second, pids.first, || {
                ensure!(xmem::xmempin(UA, 16, &a.d).is_ok(), "xmempin from the second process");
                expect("unpinu of the second process's own page", aix::unpinu(UA as *const u8, 16, UIO_USERSPACE), Status::EINVAL)
            })?;
            expect("unpinu in the first process", aix::unpinu(UA as *const u8, 16, UIO_USERSPACE), Status::OK)?;
            ensure!(xmem::xmemunpin(UA, 16, &a.d) == Err(Status::EINVAL), "xmemunpin after the unpinu");
            expect("pinu", aix::pinu(UA as *const u8, 16, UIO_USERSPACE), Status::OK)?;
            ensure!(xmem::xmemunpin(UA, 16, &a.d).is_ok(), "xmemunpin of the pinu");
            a.detach()
        })(),
    );
    t.case(
        "xmempin of a SYS_ADSPACE attachment pins kernel pages: unpin sees the count",
        (|| {
            let block = Alloc::new(PAGE, Heap::KERNEL)?;
            let a = Attached::new(block.ptr, PAGE, SYS_ADSPACE)?;
            ensure!(xmem::xmempin(block.ptr, 16, &a.d).is_ok(), "xmempin");
            expect("unpin", aix::unpin(block.ptr as *const u8, 16), Status::OK)?;
            ensure!(xmem::xmemunpin(block.ptr, 16, &a.d) == Err(Status::EINVAL), "xmemunpin below zero");
            a.detach()
        })(),
    );
}

// ---------------------------------------------------------------- xmemdma

fn hiding(t: &mut Tally) {
    t.case(
        "xmemdma XMEM_HIDE of a pinned user page: its real address (frame + offset); XMEM_UNHIDE returns it; the page reads again",
        (|| {
            let a = Attached::new(UA, UA_PAGES * PAGE, USER_ADSPACE)?;
            ensure!(xmem::xmempin(UA, UA_PAGES * PAGE, &a.d).is_ok(), "xmempin");
            let xaddr = UA + PAGE + 0x123;
            let frame = physical(xaddr, true)?;
            let hidden = dma(&a.d, xaddr, XMEM_HIDE);
            let unhidden = dma(&a.d, xaddr, XMEM_UNHIDE);
            let typed = (xmem::xmemdma(&a.d, UA, XMEM_HIDE), xmem::xmemdma(&a.d, UA, XMEM_UNHIDE));
            readable(UA, UA_PAGES * PAGE);
            ensure!(xmem::xmemunpin(UA, UA_PAGES * PAGE, &a.d).is_ok(), "xmemunpin");
            reply("XMEM_HIDE", hidden, Status::OK, frame)?;
            reply("XMEM_UNHIDE", unhidden, Status::OK, frame)?;
            let first = physical(UA, true)?;
            ensure!(typed == (Ok(first), Ok(first)), "typed {typed:x?}, frame {first:#x}");
            a.detach()
        })(),
    );
    t.case(
        "xmemdma64 hides nest: two XMEM_HIDEs take two XMEM_UNHIDEs, then xmdetach is OK",
        (|| {
            let a = Attached::new(UA, 2 * PAGE, USER_ADSPACE)?;
            ensure!(xmem::xmempin(UA, 2 * PAGE, &a.d).is_ok(), "xmempin");
            let frame = physical(UA + PAGE, true)?;
            let replies = [
                dma64(&a.d, UA + PAGE, XMEM_HIDE),
                dma(&a.d, UA + PAGE + 8, XMEM_HIDE),
                dma64(&a.d, UA + PAGE + 16, XMEM_UNHIDE),
                dma64(&a.d, UA + PAGE, XMEM_UNHIDE),
            ];
            readable(UA, 2 * PAGE);
            ensure!(xmem::xmemunpin(UA, 2 * PAGE, &a.d).is_ok(), "xmemunpin");
            let want = [frame, frame + 8, frame + 16, frame].map(|v| (Status::OK, v));
            ensure!(replies == want, "{replies:x?}, expected {want:x?}");
            a.detach()
        })(),
    );
    t.case(
        "xmemdma XMEM_ACC_CHK and XMEM_ACC_CHK|XMEM_WRITE_ONLY: the real address of a page pinned or not, nothing hidden",
        (|| {
            let a = Attached::new(UA, UA_PAGES * PAGE, USER_ADSPACE)?;
            let frame = physical(UA + 2 * PAGE + 0x40, true)?;
            for flags in [XMEM_ACC_CHK, XMEM_ACC_CHK | XMEM_WRITE_ONLY] {
                reply("xmemdma", dma(&a.d, UA + 2 * PAGE + 0x40, flags), Status::OK, frame)?;
                reply("xmemdma64", dma64(&a.d, UA + 2 * PAGE + 0x40, flags), Status::OK, frame)?;
            }
            readable(UA + 2 * PAGE, PAGE);
            // Nothing is hidden: the attachment detaches (EBUSY otherwise).
            a.detach()
        })(),
    );
    t.case(
        "xmemdma XMEM_ACC_CHK|XMEM_WRITE_ONLY of a read-only page: EFAULT; XMEM_ACC_CHK: its real address",
        (|| {
            let a = Attached::new(URO, PAGE, USER_ADSPACE)?;
            let frame = physical(URO + 8, true)?;
            reply("XMEM_ACC_CHK", dma(&a.d, URO + 8, XMEM_ACC_CHK), Status::OK, frame)?;
            expect("XMEM_ACC_CHK|XMEM_WRITE_ONLY", dma(&a.d, URO + 8, XMEM_ACC_CHK | XMEM_WRITE_ONLY).0, Status::EFAULT)?;
            a.detach()
        })(),
    );
    t.case(
        "xmemdma with flags other than XMEM_HIDE, XMEM_UNHIDE, XMEM_ACC_CHK(|XMEM_WRITE_ONLY): EINVAL",
        (|| {
            let a = Attached::new(UA, PAGE, USER_ADSPACE)?;
            for flags in [3, XMEM_WRITE_ONLY, XMEM_UNHIDE | XMEM_WRITE_ONLY, 7, 8, u64::MAX] {
                expect("xmemdma", dma(&a.d, UA, flags).0, Status::EINVAL)?;
                expect("xmemdma64", dma64(&a.d, UA, flags).0, Status::EINVAL)?;
            }
            a.detach()
        })(),
    );
    t.case(
        "xmemdma outside the attached buffer: EFAULT",
        (|| {
            let a = Attached::new(UA + 0x100, PAGE, USER_ADSPACE)?;
            ensure!(xmem::xmempin(UA + 0x100, PAGE, &a.d).is_ok(), "xmempin");
            for xaddr in [UA + 0xff, UA + PAGE + 0x100, UNMAPPED, 0] {
                for flags in [XMEM_HIDE, XMEM_UNHIDE, XMEM_ACC_CHK] {
                    expect("xmemdma", dma(&a.d, xaddr, flags).0, Status::EFAULT)?;
                }
            }
            ensure!(xmem::xmemunpin(UA + 0x100, PAGE, &a.d).is_ok(), "xmemunpin");
            a.detach()
        })(),
    );
    t.case(
        "xmemdma of kernel memory on the pinned heap (pinned from birth): the frame's address, hide and unhide",
        (|| {
            let block = Alloc::new(2 * PAGE, Heap::PINNED)?;
            let a = Attached::new(block.ptr, 2 * PAGE, SYS_ADSPACE)?;
            let frame = physical(block.ptr + PAGE + 0x10, false)?;
            let replies = [dma(&a.d, block.ptr + PAGE + 0x10, XMEM_HIDE), dma(&a.d, block.ptr + PAGE + 0x10, XMEM_UNHIDE)];
            readable(block.ptr, 2 * PAGE);
            ensure!(replies == [(Status::OK, frame); 2], "{replies:x?}, frame {frame:#x}");
            a.detach()
        })(),
    );
    t.case(
        "xmemdma XMEM_HIDE and XMEM_UNHIDE at interrupt level: OK",
        (|| {
            let a = Attached::new(UA, PAGE, USER_ADSPACE)?;
            ensure!(xmem::xmempin(UA, PAGE, &a.d).is_ok(), "xmempin");
            let replies = at_interrupt_level(|| [dma(&a.d, UA, XMEM_HIDE), dma(&a.d, UA, XMEM_UNHIDE)]);
            readable(UA, PAGE);
            ensure!(xmem::xmemunpin(UA, PAGE, &a.d).is_ok(), "xmemunpin");
            ensure!(replies.iter().all(|r| r.0 == Status::OK), "{replies:x?}");
            a.detach()
        })(),
    );
}

// ---------------------------------------------------------------- xmemdma_pages

fn batches(t: &mut Tally) {
    t.case(
        "xmemdma_pages hides and unhides 3 pages from xaddr's page; the real addresses are the pages' frames",
        (|| {
            let a = Attached::new(UA, UA_PAGES * PAGE, USER_ADSPACE)?;
            ensure!(xmem::xmempin(UA, UA_PAGES * PAGE, &a.d).is_ok(), "xmempin");
            let mut frames = [0u64; 3];
            for (i, frame) in frames.iter_mut().enumerate() {
                *frame = physical(UA + PAGE + i as u64 * PAGE, true)?;
            }
            let mut out = [0u64; 4];
            let hidden = xmem::xmemdma_pages(&a.d, UA + PAGE + 0x80, 3, XMEM_HIDE, &mut out);
            let mut back = [0u64; 3];
            let unhidden = xmem::xmemdma_pages(&a.d, UA + PAGE, 3, XMEM_UNHIDE, &mut back);
            readable(UA, UA_PAGES * PAGE);
            ensure!(xmem::xmemunpin(UA, UA_PAGES * PAGE, &a.d).is_ok(), "xmemunpin");
            ensure!(hidden == Ok(3) && unhidden == Ok(3), "hide {hidden:?}, unhide {unhidden:?}");
            ensure!(out[..3] == frames && out[3] == 0, "real addresses {out:x?}, frames {frames:x?}");
            ensure!(back == frames, "on unhide {back:x?}");
            a.detach()
        })(),
    );
    t.case(
        "xmemdma_pages without real_addrs (0): OK",
        (|| {
            let a = Attached::new(UA, 2 * PAGE, USER_ADSPACE)?;
            ensure!(xmem::xmempin(UA, 2 * PAGE, &a.d).is_ok(), "xmempin");
            let replies = [batch(&a.d, UA, 2, XMEM_HIDE, 0), batch(&a.d, UA, 2, XMEM_UNHIDE, 0)];
            readable(UA, 2 * PAGE);
            ensure!(xmem::xmemunpin(UA, 2 * PAGE, &a.d).is_ok(), "xmemunpin");
            ensure!(replies == [(Status::OK, 2); 2], "{replies:x?}");
            a.detach()
        })(),
    );
    t.case(
        "xmemdma_pages of 0 or more than 1024 pages, or with flags other than hide/unhide: EINVAL",
        (|| {
            let a = Attached::new(UA, PAGE, USER_ADSPACE)?;
            ensure!(xmem::xmempin(UA, PAGE, &a.d).is_ok(), "xmempin");
            let mut out = [0u64; 2];
            let out_at = out.as_mut_ptr() as u64;
            let refusals = [
                batch(&a.d, UA, 0, XMEM_HIDE, out_at).0,
                batch(&a.d, UA, XMEMDMA_MAX_PAGES + 1, XMEM_HIDE, 0).0,
                batch(&a.d, UA, 1, XMEM_ACC_CHK, out_at).0,
                batch(&a.d, UA, 1, XMEM_ACC_CHK | XMEM_WRITE_ONLY, out_at).0,
                batch(&a.d, UA, 1, 8, out_at).0,
            ];
            readable(UA, PAGE);
            ensure!(xmem::xmemunpin(UA, PAGE, &a.d).is_ok(), "xmemunpin");
            ensure!(refusals == [Status::EINVAL; 5], "{refusals:?}");
            ensure!(out == [0, 0], "refused calls wrote real addresses: {out:x?}");
            let typed = xmem::xmemdma_pages(&a.d, UA, 2, XMEM_HIDE, &mut out[..1]);
            ensure!(typed == Err(Status::EINVAL), "a real_addrs shorter than the pages: {typed:?}");
            a.detach()
        })(),
    );
    t.case(
        "xmemdma_pages running past the attached buffer, or with an unwritable real_addrs: EFAULT, no page hidden",
        (|| {
            let a = Attached::new(UA, 2 * PAGE, USER_ADSPACE)?;
            ensure!(xmem::xmempin(UA, 2 * PAGE, &a.d).is_ok(), "xmempin");
            let mut out = [0u64; 3];
            let out_at = out.as_mut_ptr() as u64;
            let refusals = [
                batch(&a.d, UA, 3, XMEM_HIDE, out_at).0,
                batch(&a.d, UA + PAGE, 2, XMEM_HIDE, out_at).0,
                batch(&a.d, UA, 2, XMEM_HIDE, KERNEL_UNMAPPED).0,
                batch(&a.d, UA, 2, XMEM_HIDE, RODATA.as_ptr() as u64).0,
            ];
            // Were any page hidden, this read would never return.
            readable(UA, 2 * PAGE);
            ensure!(xmem::xmemunpin(UA, 2 * PAGE, &a.d).is_ok(), "xmemunpin");
            ensure!(refusals == [Status::EFAULT; 4], "{refusals:?}");
            a.detach()
        })(),
    );
    t.case(
        "xmemdma_pages of 1024 pages (4 MiB) at once",
        (|| {
            let bytes = XMEMDMA_MAX_PAGES * PAGE;
            let a = Attached::new(BIG, bytes, USER_ADSPACE)?;
            ensure!(xmem::xmempin(BIG, bytes, &a.d).is_ok(), "xmempin of 4 MiB");
            let mut out = [0u64; XMEMDMA_MAX_PAGES as usize];
            let hidden = xmem::xmemdma_pages(&a.d, BIG, XMEMDMA_MAX_PAGES, XMEM_HIDE, &mut out);
            let unhidden = xmem::xmemdma_pages(&a.d, BIG, XMEMDMA_MAX_PAGES, XMEM_UNHIDE, &mut []);
            readable(BIG, bytes);
            ensure!(xmem::xmemunpin(BIG, bytes, &a.d).is_ok(), "xmemunpin");
            ensure!(hidden == Ok(XMEMDMA_MAX_PAGES) && unhidden == Ok(XMEMDMA_MAX_PAGES), "{hidden:?} {unhidden:?}");
            let last = physical(BIG + bytes - PAGE, true)?;
            ensure!(out[0] == physical(BIG, true)? && out[1023] == last, "first {:#x}, last {:#x}", out[0], out[1023]);
            ensure!(out.iter().all(|&r| r.is_multiple_of(PAGE) && r < RAM_END), "an address outside RAM");
            a.detach()
        })(),
    );
}

// ---------------------------------------------------------------- the DMA engine

/// Pages handed off to the device for a case: a user attachment of UA's
/// pages (pinned) and a kernel attachment of a pinned-heap block, all
/// hidden; [`Handoff::finish`] unhides, unpins and detaches them.
struct Handoff {
    user: Attached,
    kernel: Attached,
    /// Real addresses of the user pages and of the kernel pages.
    user_real: [u64; 2],
    kernel_real: [u64; 2],
}

impl Handoff {
    fn new(block: &Alloc) -> Result<Handoff, Why> {
        let user = Attached::new(UA, 2 * PAGE, USER_ADSPACE)?;
        let kernel = Attached::new(block.ptr, 2 * PAGE, SYS_ADSPACE)?;
        ensure!(xmem::xmempin(UA, 2 * PAGE, &user.d).is_ok(), "xmempin");
        let mut user_real = [0; 2];
        let mut kernel_real = [0; 2];
        let hid = (
            xmem::xmemdma_pages(&user.d, UA, 2, XMEM_HIDE, &mut user_real),
            xmem::xmemdma_pages(&kernel.d, block.ptr, 2, XMEM_HIDE, &mut kernel_real),
        );
        ensure!(hid == (Ok(2), Ok(2)), "hiding answered {hid:?}");
        Ok(Handoff { user, kernel, user_real, kernel_real })
    }

    fn finish(self) -> Outcome {
        let back = (
            xmem::xmemdma_pages(&self.user.d, UA, 2, XMEM_UNHIDE, &mut []),
            xmem::xmemdma_pages(&self.kernel.d, self.kernel.d.base, 2, XMEM_UNHIDE, &mut []),
            xmem::xmemunpin(UA, 2 * PAGE, &self.user.d),
        );
        ensure!(back == (Ok(2), Ok(2), Ok(())), "unhiding answered {back:?}");
        self.user.detach()?;
        self.kernel.detach()
    }
}

/// Runs a transfer on `channel` and waits for it.
fn transfer(e: DmaEngine, channel: u64, source: u64, destination: u64, length: u64, direction: u64) -> Result<(), u64> {
    // SAFETY: every case writes only pages it handed off (or addresses the
    // device refuses, which it does not touch).
    unsafe { e.transfer(e.channel(channel), source, destination, length, direction) }
}

/// Fails unless the transfer ends with `want` (`Ok` or an `ERROR_*` code).
fn ends(what: &str, got: Result<(), u64>, want: Result<(), u64>) -> Outcome {
    ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    Ok(())
}

fn device(t: &mut Tally) {
    let engine = match DmaEngine::map() {
        Ok(engine) => engine,
        Err(status) => {
            t.case("the DMA engine maps", Err(Why::new(format_args!("DmaEngine::map answered {}", status.name()))));
            return;
        }
    };
    let e = engine;
    t.case(
        "the DMA engine maps over an unwired page; every channel reads KMVDMA01, IDLE, no error, 0 completed",
        (|| {
            ensure!(e.base() >= layout::UNWIRED_ARENA_VA, "mapped at {:#x}", e.base());
            ensure!(physical(e.base(), false)? == DMA_ENGINE_GPA, "the window is not at DMA_ENGINE_GPA");
            for n in 0..DMA_CHANNELS {
                let c = e.channel(n);
                let regs = [e.read_reg(c, REG_ID), e.status(c), e.error(c), e.completed(c)];
                ensure!(regs == [DMA_ENGINE_ID, STATUS_IDLE, 0, 0], "channel {n}: {regs:x?}");
            }
            Ok(())
        })(),
    );
    t.case(
        "DIR_TO_DEVICE from hidden kernel pages, DIR_FROM_DEVICE into hidden user pages: the data arrives; COMPLETED counts",
        (|| {
            let block = Alloc::new(2 * PAGE, Heap::PINNED)?;
            fill(block.ptr, 2 * PAGE, 10);
            fill(UA, 2 * PAGE, 0);
            let h = Handoff::new(&block)?;
            let c = e.channel(1);
            let before = e.completed(c);
            // Device memory 0x1000..0x3000 gets the two kernel pages; then the
            // 0x1000 bytes from 0x1800 go to the second half of user page 0
            // and the first half of user page 1 (one transfer per page: the
            // frames are not contiguous).
            let results = [
                transfer(e, 1, h.kernel_real[0], 0x1000, PAGE, DIR_TO_DEVICE),
                transfer(e, 1, h.kernel_real[1], 0x2000, PAGE, DIR_TO_DEVICE),
                transfer(e, 1, 0x1800, h.user_real[0] + 0x800, 0x800, DIR_FROM_DEVICE),
                transfer(e, 1, 0x2000, h.user_real[1], 0x800, DIR_FROM_DEVICE),
            ];
            let status = e.status(c);
            let completed = e.completed(c) - before;
            h.finish()?;
            ensure!(results == [Ok(()); 4], "{results:?}");
            ensure!(status == STATUS_DONE && completed == 4, "status {status}, {completed} completed");
            holds("user memory before the transfer's bytes", UA, 0x800, 0, 0)?;
            holds("what the device wrote", UA + 0x800, PAGE, 10, 0x800)?;
            holds("user memory after them", UA + 0x1800, 0x800, 0, 0x1800)?;
            fill(UA, UA_PAGES * PAGE, 1);
            Ok(())
        })(),
    );
    t.case(
        "DIR_MEMORY_TO_MEMORY of 100 bytes between hidden pages, at odd offsets",
        (|| {
            let block = Alloc::new(2 * PAGE, Heap::PINNED)?;
            fill(block.ptr, 2 * PAGE, 11);
            fill(UA, 2 * PAGE, 1);
            let h = Handoff::new(&block)?;
            let result = transfer(e, 2, h.kernel_real[1] + 0x333, h.user_real[1] + 0x77, 100, DIR_MEMORY_TO_MEMORY);
            h.finish()?;
            ends("the transfer", result, Ok(()))?;
            holds("before", UA + PAGE, 0x77, 1, PAGE)?;
            holds("the bytes", UA + PAGE + 0x77, 100, 11, PAGE + 0x333)?;
            holds("after", UA + PAGE + 0x77 + 100, 16, 1, PAGE + 0x77 + 100)
        })(),
    );
    t.case(
        "a guest-physical range outside RAM (past its end, in the device window, wrapping): ERROR_OUTSIDE_RAM, nothing copied",
        (|| {
            let block = Alloc::new(2 * PAGE, Heap::PINNED)?;
            fill(block.ptr, 2 * PAGE, 12);
            fill(UA, 2 * PAGE, 1);
            let h = Handoff::new(&block)?;
            let (to, from) = (h.user_real[0], h.kernel_real[0]);
            let results = [
                transfer(e, 3, 0, RAM_END - 8, 16, DIR_FROM_DEVICE),
                transfer(e, 3, RAM_END, 0, 16, DIR_TO_DEVICE),
                transfer(e, 3, DMA_ENGINE_GPA, to, 16, DIR_MEMORY_TO_MEMORY),
                transfer(e, 3, from, u64::MAX - 8, 16, DIR_MEMORY_TO_MEMORY),
                transfer(e, 3, u64::MAX - 8, to, 16, DIR_MEMORY_TO_MEMORY),
            ];
            let error = e.error(e.channel(3));
            h.finish()?;
            ensure!(results == [Err(ERROR_OUTSIDE_RAM); 5], "{results:?}");
            ensure!(error == ERROR_OUTSIDE_RAM, "REG_ERROR {error}");
            holds("the user pages", UA, 2 * PAGE, 1, 0)
        })(),
    );
    t.case(
        "a length of 0 or above DMA_MAX_TRANSFER: ERROR_BAD_LENGTH; a direction not DIR_*: ERROR_BAD_DIRECTION",
        (|| {
            let block = Alloc::new(2 * PAGE, Heap::PINNED)?;
            fill(UA, 2 * PAGE, 1);
            let h = Handoff::new(&block)?;
            let (to, from) = (h.user_real[0], h.kernel_real[0]);
            let lengths = [0, DMA_MAX_TRANSFER + 1, u64::MAX].map(|n| transfer(e, 4, from, to, n, DIR_MEMORY_TO_MEMORY));
            let directions = [0, 4, 0x100, u64::MAX].map(|d| transfer(e, 4, from, to, 16, d));
            h.finish()?;
            ensure!(lengths == [Err(ERROR_BAD_LENGTH); 3], "{lengths:?}");
            ensure!(directions == [Err(ERROR_BAD_DIRECTION); 4], "{directions:?}");
            holds("the user pages", UA, 2 * PAGE, 1, 0)
        })(),
    );
    t.case(
        "a device-memory range past its 1 MiB: ERROR_OUTSIDE_DEVICE_MEMORY",
        (|| {
            let block = Alloc::new(2 * PAGE, Heap::PINNED)?;
            fill(UA, 2 * PAGE, 1);
            let h = Handoff::new(&block)?;
            let (to, from) = (h.user_real[0], h.kernel_real[0]);
            let results = [
                transfer(e, 5, from, DMA_DEVICE_MEMORY - 8, 16, DIR_TO_DEVICE),
                transfer(e, 5, from, DMA_DEVICE_MEMORY, 1, DIR_TO_DEVICE),
                transfer(e, 5, DMA_DEVICE_MEMORY, to, 16, DIR_FROM_DEVICE),
                transfer(e, 5, u64::MAX, to, 16, DIR_FROM_DEVICE),
            ];
            h.finish()?;
            ensure!(results == [Err(ERROR_OUTSIDE_DEVICE_MEMORY); 4], "{results:?}");
            holds("the user pages", UA, 2 * PAGE, 1, 0)
        })(),
    );
    t.case(
        "garbage in the registers: they read back, the transfer fails with an ERROR_* code, and the channel works again",
        (|| {
            let block = Alloc::new(2 * PAGE, Heap::PINNED)?;
            fill(block.ptr, 2 * PAGE, 13);
            fill(UA, 2 * PAGE, 1);
            let h = Handoff::new(&block)?;
            let c = e.channel(6);
            let mut rng = Rng::new(0x6172_6261_6765);
            let mut outcome = Ok(());
            for round in 0..16 {
                let regs = [rng.next_u64(), rng.next_u64(), rng.next_u64(), rng.next_u64() | 1 << 63];
                let direction = if round % 2 == 0 { regs[3] } else { DIR_MEMORY_TO_MEMORY };
                // SAFETY: the values are garbage the device refuses: a
                // direction with bit 63 set, or addresses far outside RAM.
                unsafe {
                    e.write_reg(c, REG_SOURCE, regs[0] | 1 << 62);
                    e.write_reg(c, REG_DESTINATION, regs[1] | 1 << 62);
                    e.write_reg(c, REG_LENGTH, regs[2]);
                    e.write_reg(c, REG_DIRECTION, direction);
                }
                let back = [REG_SOURCE, REG_DESTINATION, REG_LENGTH, REG_DIRECTION].map(|r| e.read_reg(c, r));
                if back != [regs[0] | 1 << 62, regs[1] | 1 << 62, regs[2], direction] {
                    outcome = Err(Why::new(format_args!("round {round}: the registers read back {back:x?}")));
                    break;
                }
                // SAFETY: as above.
                unsafe { e.write_reg(c, REG_DOORBELL, rng.next_u64()) };
                let result = e.wait(c);
                let known = [ERROR_OUTSIDE_RAM, ERROR_BAD_LENGTH, ERROR_BAD_DIRECTION, ERROR_OUTSIDE_DEVICE_MEMORY];
                if !matches!(result, Err(code) if known.contains(&code) && code == e.read_reg(c, REG_ERROR)) {
                    outcome = Err(Why::new(format_args!("round {round}: {result:?}")));
                    break;
                }
            }
            let good = transfer(e, 6, h.kernel_real[0], h.user_real[0], PAGE, DIR_MEMORY_TO_MEMORY);
            let error_after = e.error(c);
            h.finish()?;
            outcome?;
            ends("the transfer after the garbage", good, Ok(()))?;
            ensure!(error_after == 0, "REG_ERROR after a good transfer: {error_after}");
            holds("what the device wrote", UA, PAGE, 13, 0)
        })(),
    );
    t.case(
        "a second doorbell repeats the transfer the registers still describe",
        (|| {
            let block = Alloc::new(2 * PAGE, Heap::PINNED)?;
            fill(block.ptr, 2 * PAGE, 14);
            fill(UA, 2 * PAGE, 1);
            let h = Handoff::new(&block)?;
            let c = e.channel(7);
            let before = e.completed(c);
            let first = transfer(e, 7, h.kernel_real[0], h.user_real[0], 64, DIR_MEMORY_TO_MEMORY);
            // SAFETY: the same transfer into the same handed-off page.
            unsafe { e.write_reg(c, REG_DOORBELL, 0) };
            let second = e.wait(c);
            let counted = e.read_reg(c, REG_COMPLETED) - before;
            h.finish()?;
            ensure!(first == Ok(()) && second == Ok(()) && counted == 2, "{first:?} {second:?}, {counted} completed");
            holds("the bytes", UA, 64, 14, 0)
        })(),
    );
    t.case(
        "all 8 channels run at once, each into its own slice of hidden pages",
        (|| {
            let block = Alloc::new(2 * PAGE, Heap::PINNED)?;
            fill(block.ptr, 2 * PAGE, 15);
            fill(UA, 2 * PAGE, 1);
            let h = Handoff::new(&block)?;
            let slice = 2 * PAGE / DMA_CHANNELS;
            let before: [u64; DMA_CHANNELS as usize] = core::array::from_fn(|n| e.completed(e.channel(n as u64)));
            for n in 0..DMA_CHANNELS {
                let (page, offset) = ((n * slice) / PAGE, (n * slice) % PAGE);
                let (from, to) = (h.kernel_real[page as usize] + offset, h.user_real[page as usize] + offset);
                // SAFETY: both pages are handed off; the slices do not overlap.
                unsafe { e.start(e.channel(n), from, to, slice, DIR_MEMORY_TO_MEMORY) };
            }
            let results: [Result<(), u64>; DMA_CHANNELS as usize] = core::array::from_fn(|n| e.wait(e.channel(n as u64)));
            let counted: [u64; DMA_CHANNELS as usize] = core::array::from_fn(|n| e.completed(e.channel(n as u64)) - before[n]);
            h.finish()?;
            ensure!(results == [Ok(()); DMA_CHANNELS as usize], "{results:?}");
            ensure!(counted == [1; DMA_CHANNELS as usize], "completed {counted:?}");
            holds("the user pages", UA, 2 * PAGE, 15, 0)
        })(),
    );
    t.case(
        "the DMA engine unmaps, and its page is released",
        (|| {
            // SAFETY: every transfer is done and nothing uses the window any more.
            let unmapped = unsafe { engine.unmap() };
            ensure!(unmapped.is_ok(), "unmap answered {unmapped:?}");
            Ok(())
        })(),
    );
}

fn main() -> u32 {
    let mut t = Tally::default();
    let Some(pids) = processes(&mut t) else {
        t.skip("the cross-memory services", "no processes");
        return t.finish();
    };
    attaching(&mut t, pids);
    copies(&mut t, pids);
    pinning(&mut t, pids);
    hiding(&mut t);
    batches(&mut t);
    device(&mut t);
    teardown(&mut t, pids);
    t.finish()
}
