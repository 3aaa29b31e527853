//! The AIX kernel services conformance guest (heaps, pinning, user memory access): PASS/FAIL/SKIP per case, no violations.
//!
//! One case per answer a well-behaved caller can provoke: the process and
//! interrupt-level calls; copies across pages and separate mappings, partial
//! copies, the 4 GiB limit of the plain variants, every outcome of
//! `copyinstr`; `fubyte`/`fuword`/`subyte`/`suword`; `uiomove` in both
//! directions through several iovecs (empty ones included), with user and
//! system segments, and the updates of `resid`, `offset` and `iovdcnt`;
//! `ureadc`/`uwritec`; both boot heaps, `init_heap`, alignments, refusals and
//! frees of foreign pointers; pin counts and their floor, user pinning in a
//! process, and `pincode`. Misuse that the VMM records as a violation lives in
//! the `aix-misuse-*` guests, so this run ends with no violation, nothing
//! allocated and nothing pinned.
//!
//! Prints `PASS: case`, `FAIL: case: why` or `SKIP: case: why` per case and
//! `SUMMARY: N passed, M failed, K skipped` at the end; exits 0 iff nothing
//! failed. Assumes the default 64 MiB of RAM.
#![no_std]
#![no_main]
// A failure carries its message in a fixed buffer (there is no heap); only the
// failure path moves it.
#![allow(clippy::result_large_err)]

use core::cell::UnsafeCell;
use core::fmt::Write as _;
use core::ptr::{read_volatile, write_volatile};

use kmemvisor_guest::abi::{Status, layout};
use kmemvisor_guest::aix::{self, Heap, IoVec, UIO_READ, UIO_SYSSPACE, UIO_USERISPACE, UIO_USERSPACE, UIO_WRITE, Uio, raw};
use kmemvisor_guest::conformance::{Outcome, Tally, Why, expect};
use kmemvisor_guest::console::TruncatingBuffer;
use kmemvisor_guest::ensure;
use kmemvisor_guest::process::{self, PROT_READ, PROT_WRITE, Pid, at_interrupt_level};

kmemvisor_firmware::entry!(main);

const PAGE: u64 = layout::PAGE_SIZE;
const RW: u64 = PROT_READ | PROT_WRITE;
/// Two writable pages (one mapping).
const UA: u64 = 0x1000_0000;
/// One writable page right after [`UA`]'s two (a second mapping); unmapped after it.
const UB: u64 = UA + 2 * PAGE;
/// End of [`UB`]: the first unmapped user byte after the two mappings.
const UB_END: u64 = UB + PAGE;
/// One writable page.
const UW: u64 = 0x1000_7000;
/// One read-only page right after [`UW`].
const URO: u64 = 0x1000_8000;
/// The last page below 4 GiB.
const ULOW: u64 = 0xffff_f000;
/// The first page above 4 GiB (a mapping of its own, right after [`ULOW`]).
const UHIGH: u64 = 0x1_0000_0000;
/// A user address mapped nowhere.
const UNMAPPED: u64 = 0x2000_0000;
/// A kernel address nothing maps: the last page of the pageable heap's range.
const KERNEL_UNMAPPED: u64 = layout::KERNEL_HEAP_VA + layout::ARENA_SIZE - PAGE;
/// More bytes than the guest's RAM, still a positive `int`.
const TOO_MUCH: u64 = 0x7000_0000;
/// What the kernel buffers hold before a copy: bytes a copy must not touch.
const UNTOUCHED: u8 = 0xee;

/// A constant in the image's read-only data.
static RODATA: u64 = 0x0123_4567_89ab_cdef;

/// Page-aligned kernel memory in the image for `init_heap` and pinning.
#[repr(C, align(4096))]
struct Area(UnsafeCell<[u8; 4 * PAGE as usize]>);

// SAFETY: one vCPU runs the cases, and they reach the bytes only through raw
// addresses handed to the VMM or read back after it wrote them.
unsafe impl Sync for Area {}

/// The `init_heap` regions: pages 0–1 one heap, page 2 the smallest heap;
/// page 3 is pinned by the pin cases. Only the VMM and the heap cases touch it.
static AREA: Area = Area(UnsafeCell::new([0; 4 * PAGE as usize]));

/// Many iovecs, for the `UIO_MAXIOV` cases.
struct Iovecs(UnsafeCell<[IoVec; 1024]>);

// SAFETY: one vCPU runs the cases, and only the two `UIO_MAXIOV` cases, one
// after the other, take a reference to the iovecs.
unsafe impl Sync for Iovecs {}

static MANY: Iovecs = Iovecs(UnsafeCell::new([IoVec { base: 0, len: 0 }; 1024]));

// ---------------------------------------------------------------- reporting

/// Fails the case unless the reply is `want` with value `value`.
fn reply(what: &str, (status, got): (Status, u64), want: Status, value: u64) -> Outcome {
    ensure!(status == want && got == value, "{what} answered {} {got:#x}, expected {} {value:#x}", status.name(), want.name());
    Ok(())
}

// ---------------------------------------------------------------- memory

/// Reads byte `i` at `base` (user memory of the current process or kernel memory).
fn peek(base: u64, i: u64) -> u8 {
    // SAFETY: callers read only mapped memory: their own buffers, or user
    // pages of the current process.
    unsafe { read_volatile((base + i) as *const u8) }
}

/// Writes byte `i` at `base`.
fn poke(base: u64, i: u64, value: u8) {
    // SAFETY: callers write only their own buffers or writable user pages of
    // the current process, which nothing else references.
    unsafe { write_volatile((base + i) as *mut u8, value) }
}

/// The pattern byte at offset `i` for `seed` (never 0, never [`UNTOUCHED`]).
fn pattern(seed: u8, i: u64) -> u8 {
    let b = (i as u8).wrapping_mul(31).wrapping_add(seed) | 1;
    if b == UNTOUCHED { 0x11 } else { b }
}

fn fill(base: u64, len: u64, seed: u8) {
    (0..len).for_each(|i| poke(base, i, pattern(seed, i)));
}

fn set(base: u64, len: u64, value: u8) {
    (0..len).for_each(|i| poke(base, i, value));
}

/// Fails unless `len` bytes at `base` hold the pattern of `seed` starting at offset `from`.
fn holds(what: &str, base: u64, len: u64, seed: u8, from: u64) -> Outcome {
    if let Some(i) = (0..len).find(|&i| peek(base, i) != pattern(seed, from + i)) {
        return Err(Why::new(format_args!("{what}: byte {i} is {:#x}, expected {:#x}", peek(base, i), pattern(seed, from + i))));
    }
    Ok(())
}

/// Fails unless `len` bytes at `base` are all `value`.
fn all(what: &str, base: u64, len: u64, value: u8) -> Outcome {
    if let Some(i) = (0..len).find(|&i| peek(base, i) != value) {
        return Err(Why::new(format_args!("{what}: byte {i} is {:#x}, expected {value:#x}", peek(base, i))));
    }
    Ok(())
}

/// A kernel buffer on the stack, preset to [`UNTOUCHED`].
struct Buf([u8; 0x400]);

impl Buf {
    fn new() -> Buf {
        Buf([UNTOUCHED; 0x400])
    }

    fn at(&mut self) -> u64 {
        self.0.as_mut_ptr() as u64
    }
}

/// A user memory access call that writes the kernel buffer or user memory.
fn copy(f: unsafe fn(u64, u64, u64) -> (Status, u64), a: u64, b: u64, count: u64) -> (Status, u64) {
    // SAFETY: every caller passes a kernel buffer of its own of at least
    // `count` bytes and user addresses nothing references.
    unsafe { f(a, b, count) }
}

fn copyinstr(f: unsafe fn(u64, u64, u64, u64) -> (Status, u64), u: u64, k: u64, max: u64, actual: u64) -> (Status, u64) {
    // SAFETY: callers pass a kernel buffer of at least `max` bytes and a live
    // 16-byte `actual` or 0.
    unsafe { f(u, k, max, actual) }
}

fn store(f: unsafe fn(u64, u64) -> (Status, u64), u: u64, v: u64) -> (Status, u64) {
    // SAFETY: user memory that nothing references.
    unsafe { f(u, v) }
}

/// `uiomove` on a uio of the caller's.
fn uiomove(cp: u64, n: u64, rw: u64, uio: &mut Uio) -> (Status, u64) {
    // SAFETY: callers build the uio over iovecs and buffers of their own that
    // stay live across the call, and user buffers that nothing references.
    unsafe { raw::uiomove(cp, n, rw, uio as *mut Uio as u64) }
}

fn uio(iov: &mut [IoVec], resid: u64, segflg: u32) -> Uio {
    Uio { iov: iov.as_mut_ptr() as u64, iovcnt: iov.len() as u32, iovdcnt: 0, offset: 1000, resid, segflg, fmode: 0 }
}

/// Switches to `pid` (0: no process).
fn switch(pid: Pid) -> Outcome {
    // SAFETY: no reference into user memory lives across a switch: the cases
    // reach user memory only through `peek` and `poke` while current.
    let result = unsafe { process::process_switch(pid) };
    ensure!(result.is_ok(), "process_switch({pid}) answered {:?}", result.err().map(Status::name));
    Ok(())
}

/// Runs `f` with no current process, then switches back to `pid`.
fn outside(pid: Pid, f: impl FnOnce() -> Outcome) -> Outcome {
    switch(0)?;
    let outcome = f();
    switch(pid)?;
    outcome
}

fn xmfree(ptr: u64, heap: u64) -> Status {
    // SAFETY: callers free only allocations they no longer use (or pointers
    // the VMM must refuse, which frees nothing).
    unsafe { raw::xmfree(ptr, heap) }.0
}

/// A live `xmalloc` allocation, freed when dropped so that a failing case
/// leaves nothing behind.
struct Alloc {
    ptr: u64,
    heap: u64,
}

impl Alloc {
    fn new(size: u64, align_log2: u64, heap: u64) -> Result<Alloc, Why> {
        let (status, ptr) = raw::xmalloc(size, align_log2, heap);
        ensure!(status == Status::OK && ptr != 0, "xmalloc({size}, {align_log2}, {heap}): {} {ptr:#x}", status.name());
        Ok(Alloc { ptr, heap })
    }

    fn free(self) -> Outcome {
        let status = xmfree(self.ptr, self.heap);
        core::mem::forget(self);
        expect("xmfree", status, Status::OK)
    }
}

impl Drop for Alloc {
    fn drop(&mut self) {
        xmfree(self.ptr, self.heap);
    }
}

// ---------------------------------------------------------------- processes

/// Creates the process the user-memory cases run in and maps its memory.
/// Leaves this vCPU in it; returns its id (0 when it could not be set up).
fn processes(t: &mut Tally) -> Pid {
    t.case(
        "process_map without a current process: ESRCH",
        expect("map", process::process_map(UA, PAGE, RW).err().unwrap_or(Status::OK), Status::ESRCH),
    );
    t.case(
        "process_switch to an unknown process: ESRCH",
        // SAFETY: refused: nothing changes.
        expect("switch", unsafe { process::process_switch(9999) }.err().unwrap_or(Status::OK), Status::ESRCH),
    );
    let pid = match process::process_create() {
        Ok(pid) => pid,
        Err(status) => {
            t.case("process_create", Err(Why::new(format_args!("answered {}", status.name()))));
            return 0;
        }
    };
    t.case(
        "process_create: a pid",
        (|| {
            ensure!(pid > 0, "pid {pid}");
            Ok(())
        })(),
    );
    let setup = (|| {
        switch(pid)?;
        for (va, bytes, prot) in
            [(UA, 2 * PAGE, RW), (UB, PAGE, RW), (UW, PAGE, RW), (URO, PAGE, PROT_READ), (ULOW, PAGE, RW), (UHIGH, PAGE, RW)]
        {
            let result = process::process_map(va, bytes, prot);
            ensure!(result.is_ok(), "process_map({va:#x}, {bytes:#x}, {prot}) answered {:?}", result.err().map(Status::name));
        }
        Ok(())
    })();
    let ok = setup.is_ok();
    t.case("process_switch and process_map: user memory of six pages in five mappings", setup);
    if !ok {
        return 0;
    }
    t.case(
        "user memory is directly reachable after process_switch, zero-filled",
        (|| {
            all("fresh page", UA, 2 * PAGE, 0)?;
            all("read-only page", URO, PAGE, 0)?;
            poke(UB, 5, 0x42);
            ensure!(peek(UB, 5) == 0x42, "a write did not stick");
            poke(UB, 5, 0);
            Ok(())
        })(),
    );
    let map_err = |va, bytes, prot| process::process_map(va, bytes, prot).err().unwrap_or(Status::OK);
    t.case("process_map over a mapped page: EEXIST", expect("map", map_err(UA + PAGE + 100, 1, RW), Status::EEXIST));
    t.case("process_map of 0 bytes: EINVAL", expect("map", map_err(0x3000_0000, 0, RW), Status::EINVAL));
    t.case("process_map below USER_START: EINVAL", expect("map", map_err(layout::USER_START - PAGE, PAGE, RW), Status::EINVAL));
    t.case("process_map across USER_END: EINVAL", expect("map", map_err(layout::USER_END - PAGE, 2 * PAGE, RW), Status::EINVAL));
    t.case("process_map of a kernel address: EINVAL", expect("map", map_err(layout::KERNEL_HEAP_VA, PAGE, RW), Status::EINVAL));
    t.case(
        "process_destroy of the current process: EBUSY",
        // SAFETY: refused: nothing changes.
        expect("destroy", unsafe { process::process_destroy(pid) }.err().unwrap_or(Status::OK), Status::EBUSY),
    );
    t.case(
        "process_destroy of an unknown process: ESRCH",
        // SAFETY: refused: nothing changes.
        expect("destroy", unsafe { process::process_destroy(9999) }.err().unwrap_or(Status::OK), Status::ESRCH),
    );
    t.case(
        "interrupt_enter and interrupt_leave nest and return the depth",
        (|| {
            let depths =
                [process::interrupt_enter(), process::interrupt_enter(), process::interrupt_leave(), process::interrupt_leave()];
            ensure!(depths == [Ok(1), Ok(2), Ok(1), Ok(0)], "{depths:?}");
            Ok(())
        })(),
    );
    t.case(
        "process_switch at interrupt level: EPERM, the process stays current",
        (|| {
            // SAFETY: refused: nothing changes.
            let switched = at_interrupt_level(|| unsafe { process::process_switch(0) });
            ensure!(switched == Err(Status::EPERM), "{switched:?}");
            ensure!(peek(UA, 0) == 0, "user memory still reachable");
            Ok(())
        })(),
    );
    pid
}

/// Destroys the process at the end.
fn teardown(t: &mut Tally, pid: Pid) {
    t.case(
        "process_switch(0) and process_destroy",
        (|| {
            switch(0)?;
            // SAFETY: no reference into its user memory lives.
            let destroyed = unsafe { process::process_destroy(pid) };
            ensure!(destroyed.is_ok(), "{destroyed:?}");
            // SAFETY: refused: nothing changes.
            let again = unsafe { process::process_switch(pid) };
            ensure!(again == Err(Status::ESRCH), "switch to the destroyed process: {again:?}");
            Ok(())
        })(),
    );
}

// ---------------------------------------------------------------- copyin / copyout

fn copies(t: &mut Tally, pid: Pid) {
    t.case(
        "copyin across two pages of one mapping",
        (|| {
            fill(UA + 0xf00, 0x200, 1);
            let mut k = Buf::new();
            reply("copyin", copy(raw::copyin, UA + 0xf00, k.at(), 0x200), Status::OK, 0x200)?;
            holds("kernel buffer", k.at(), 0x200, 1, 0)?;
            all("beyond the count", k.at() + 0x200, 0x200, UNTOUCHED)
        })(),
    );
    t.case(
        "copyin across two mappings",
        (|| {
            fill(UB - 0x100, 0x200, 2);
            let mut k = Buf::new();
            reply("copyin", copy(raw::copyin, UB - 0x100, k.at(), 0x200), Status::OK, 0x200)?;
            holds("kernel buffer", k.at(), 0x200, 2, 0)
        })(),
    );
    t.case(
        "copyout across pages and mappings",
        (|| {
            let mut k = Buf::new();
            fill(k.at(), 0x300, 3);
            set(UA + PAGE - 0xa0, 0x140, 0);
            reply("copyout across pages", copy(raw::copyout, k.at(), UA + PAGE - 0x80, 0x100), Status::OK, 0x100)?;
            holds("user memory", UA + PAGE - 0x80, 0x100, 3, 0)?;
            all("before the target", UA + PAGE - 0xa0, 0x20, 0)?;
            all("after the target", UA + PAGE + 0x80, 0x20, 0)?;
            set(UB - 0x1a0, 0x320, 0);
            reply("copyout across mappings", copy(raw::copyout, k.at(), UB - 0x180, 0x300), Status::OK, 0x300)?;
            holds("user memory", UB - 0x180, 0x300, 3, 0)?;
            all("before the target", UB - 0x1a0, 0x20, 0)
        })(),
    );
    t.case(
        "copyin64 and copyout64 across the 4 GiB line and two mappings",
        (|| {
            let mut k = Buf::new();
            fill(k.at(), 0x200, 4);
            reply("copyout64", copy(raw::copyout64, k.at(), UHIGH - 0x100, 0x200), Status::OK, 0x200)?;
            holds("user memory", UHIGH - 0x100, 0x200, 4, 0)?;
            let mut back = Buf::new();
            reply("copyin64", copy(raw::copyin64, UHIGH - 0x100, back.at(), 0x200), Status::OK, 0x200)?;
            holds("kernel buffer", back.at(), 0x200, 4, 0)
        })(),
    );
    t.case(
        "copyin of a range ending exactly at 4 GiB: OK",
        (|| {
            fill(UHIGH - 0x100, 0x100, 5);
            let mut k = Buf::new();
            reply("copyin", copy(raw::copyin, UHIGH - 0x100, k.at(), 0x100), Status::OK, 0x100)?;
            holds("kernel buffer", k.at(), 0x100, 5, 0)?;
            fill(k.at(), 0x100, 6);
            reply("copyout", copy(raw::copyout, k.at(), UHIGH - 0x100, 0x100), Status::OK, 0x100)?;
            holds("user memory", UHIGH - 0x100, 0x100, 6, 0)
        })(),
    );
    t.case(
        "copyin and copyout of a range ending above 4 GiB: EFAULT",
        (|| {
            // Whether the bytes below 4 GiB are copied first is not asked: only
            // the status, and that nothing lands above 4 GiB.
            let mut k = Buf::new();
            poke(UHIGH, 0, 0x5c);
            let (status, _) = copy(raw::copyin, UHIGH - 0x100, k.at(), 0x101);
            expect("copyin", status, Status::EFAULT)?;
            ensure!(k.0[0x100] == UNTOUCHED, "copyin copied the byte above 4 GiB");
            let (status, _) = copy(raw::copyout, k.at(), UHIGH - 0x100, 0x101);
            expect("copyout", status, Status::EFAULT)?;
            all("the byte above 4 GiB", UHIGH, 1, 0x5c)
        })(),
    );
    t.case(
        "copyin and copyout above 4 GiB: EFAULT, nothing copied",
        (|| {
            fill(UHIGH, 0x40, 7);
            let mut k = Buf::new();
            reply("copyin", copy(raw::copyin, UHIGH, k.at(), 0x40), Status::EFAULT, 0)?;
            all("kernel buffer", k.at(), 0x40, UNTOUCHED)?;
            reply("copyout", copy(raw::copyout, k.at(), UHIGH, 0x40), Status::EFAULT, 0)?;
            holds("user memory", UHIGH, 0x40, 7, 0)
        })(),
    );
    t.case(
        "copyin stopping at an unmapped page: EFAULT, the bytes before it copied",
        (|| {
            fill(UB_END - 0x100, 0x100, 8);
            let mut k = Buf::new();
            reply("copyin", copy(raw::copyin64, UB_END - 0x100, k.at(), 0x200), Status::EFAULT, 0x100)?;
            holds("copied part", k.at(), 0x100, 8, 0)?;
            all("the rest", k.at() + 0x100, 0x100, UNTOUCHED)?;
            let mut k = Buf::new();
            reply("plain copyin", copy(raw::copyin, UB_END - 0x80, k.at(), 0x100), Status::EFAULT, 0x80)?;
            holds("copied part", k.at(), 0x80, 8, 0x80)
        })(),
    );
    t.case(
        "copyout stopping at an unmapped page: EFAULT, the bytes before it copied",
        (|| {
            let mut k = Buf::new();
            fill(k.at(), 0x200, 9);
            set(UB_END - 0x100, 0x100, 0);
            reply("copyout", copy(raw::copyout, k.at(), UB_END - 0x80, 0x200), Status::EFAULT, 0x80)?;
            holds("user memory", UB_END - 0x80, 0x80, 9, 0)?;
            all("before it", UB_END - 0x100, 0x80, 0)
        })(),
    );
    t.case(
        "copyout stopping at a read-only page: EFAULT, the bytes before it copied",
        (|| {
            let mut k = Buf::new();
            fill(k.at(), 0x200, 10);
            reply("copyout", copy(raw::copyout, k.at(), URO - 0x100, 0x200), Status::EFAULT, 0x100)?;
            holds("writable part", URO - 0x100, 0x100, 10, 0)?;
            all("read-only page", URO, PAGE, 0)?;
            reply("copyout64", copy(raw::copyout64, k.at(), URO, 0x10), Status::EFAULT, 0)
        })(),
    );
    t.case(
        "copyin from a read-only page: OK",
        (|| {
            let mut k = Buf::new();
            reply("copyin", copy(raw::copyin, URO + 0x10, k.at(), 0x20), Status::OK, 0x20)?;
            all("kernel buffer", k.at(), 0x20, 0)
        })(),
    );
    t.case(
        "copyin from an unmapped user page: EFAULT, nothing copied",
        (|| {
            let mut k = Buf::new();
            reply("copyin", copy(raw::copyin, UNMAPPED, k.at(), 0x10), Status::EFAULT, 0)?;
            reply("copyin64", copy(raw::copyin64, UNMAPPED + 0x123, k.at(), 0x10), Status::EFAULT, 0)?;
            all("kernel buffer", k.at(), 0x10, UNTOUCHED)
        })(),
    );
    t.case(
        "copyin from below USER_START or from a kernel address: EFAULT, nothing copied",
        (|| {
            let mut k = Buf::new();
            let mut source = Buf::new();
            fill(source.at(), 0x10, 11);
            reply("copyin 0x1000", copy(raw::copyin64, 0x1000, k.at(), 0x10), Status::EFAULT, 0)?;
            reply("copyin64 of a kernel address", copy(raw::copyin64, source.at(), k.at(), 0x10), Status::EFAULT, 0)?;
            reply("copyout64 to a kernel address", copy(raw::copyout64, k.at(), source.at(), 0x10), Status::EFAULT, 0)?;
            all("kernel buffer", k.at(), 0x10, UNTOUCHED)?;
            holds("kernel source", source.at(), 0x10, 11, 0)
        })(),
    );
    t.case(
        "copyin64 and copyout64 of a range wrapping 2^64: EFAULT, nothing copied",
        (|| {
            let mut k = Buf::new();
            reply("copyin64", copy(raw::copyin64, u64::MAX - 0xf, k.at(), 0x20), Status::EFAULT, 0)?;
            reply("copyout64", copy(raw::copyout64, k.at(), u64::MAX - 0xf, 0x20), Status::EFAULT, 0)?;
            all("kernel buffer", k.at(), 0x20, UNTOUCHED)
        })(),
    );
    t.case(
        "typed copyin/copyout/copyin64/copyout64 return OK and EFAULT",
        (|| {
            let mut k = [0u8; 16];
            let kp = k.as_mut_ptr();
            fill(UA + 0x100, 16, 12);
            // SAFETY: `k` is a live 16-byte buffer; the user memory is unreferenced.
            let results = unsafe {
                [
                    aix::copyin((UA + 0x100) as *const u8, kp, 16),
                    aix::copyin64(UA + 0x100, kp, 16),
                    aix::copyout(kp, (UA + 0x200) as *mut u8, 16),
                    aix::copyout64(kp, UHIGH + 0x200, 16),
                    aix::copyin(UNMAPPED as *const u8, kp, 16),
                    aix::copyout(kp, UHIGH as *mut u8, 16),
                ]
            };
            let want = [Status::OK, Status::OK, Status::OK, Status::OK, Status::EFAULT, Status::EFAULT];
            ensure!(results == want, "{results:?}");
            holds("user memory", UA + 0x200, 16, 12, 0)?;
            holds("user memory above 4 GiB", UHIGH + 0x200, 16, 12, 0)
        })(),
    );
    t.case(
        "copyin, copyout, fubyte, subyte without a current process: EFAULT",
        outside(pid, || {
            let mut k = Buf::new();
            reply("copyin", copy(raw::copyin, UA, k.at(), 0x10), Status::EFAULT, 0)?;
            reply("copyout64", copy(raw::copyout64, k.at(), UA, 0x10), Status::EFAULT, 0)?;
            all("kernel buffer", k.at(), 0x10, UNTOUCHED)?;
            expect("fubyte", raw::fubyte(UA).0, Status::EFAULT)?;
            expect("subyte64", store(raw::subyte64, UA, 1).0, Status::EFAULT)?;
            let mut actual = 0u64;
            let (status, _) = copyinstr(raw::copyinstr, UA, k.at(), 0x10, &mut actual as *mut u64 as u64);
            expect("copyinstr", status, Status::EFAULT)
        }),
    );
}

// ---------------------------------------------------------------- copyinstr

fn strings(t: &mut Tally) {
    /// Writes `s` at `va`.
    fn put(va: u64, s: &[u8]) {
        for (i, &b) in s.iter().enumerate() {
            poke(va, i as u64, b);
        }
    }
    /// What lies past the stored length: the VMM must not write it.
    const PAST: u64 = 0x5a5a_5a5a_5a5a_5a5a;
    t.case(
        "copyinstr of a string across two pages: OK, length with the NUL",
        (|| {
            put(UA + PAGE - 3, b"hello\0");
            let mut k = Buf::new();
            let mut actual = [0u64, PAST];
            let at = actual.as_mut_ptr() as u64;
            reply("copyinstr", copyinstr(raw::copyinstr, UA + PAGE - 3, k.at(), 64, at), Status::OK, 6)?;
            // SAFETY: `actual` is live; the VMM wrote it during the call.
            let stored = unsafe { read_volatile(&actual) };
            ensure!(stored[0] == 6, "*actual_ptr = {:#x}", stored[0]);
            ensure!(stored[1] == PAST, "the store went past 8 bytes: {:#x}", stored[1]);
            ensure!(k.0[..6] == *b"hello\0", "copied {:?}", &k.0[..6]);
            all("beyond the NUL", k.at() + 6, 10, UNTOUCHED)
        })(),
    );
    t.case(
        "copyinstr with max exactly the length: OK",
        (|| {
            let mut k = Buf::new();
            let mut actual = [0u64, PAST];
            reply("copyinstr", copyinstr(raw::copyinstr, UA + PAGE - 3, k.at(), 6, actual.as_mut_ptr() as u64), Status::OK, 6)?;
            ensure!(k.0[..6] == *b"hello\0", "copied {:?}", &k.0[..6]);
            Ok(())
        })(),
    );
    t.case(
        "copyinstr without a NUL within max: ENAMETOOLONG, max bytes copied, *actual_ptr = max",
        (|| {
            let mut k = Buf::new();
            let mut actual = [0u64, PAST];
            let (status, _) = copyinstr(raw::copyinstr, UA + PAGE - 3, k.at(), 5, actual.as_mut_ptr() as u64);
            expect("copyinstr", status, Status::ENAMETOOLONG)?;
            // SAFETY: `actual` is live; the VMM wrote it during the call.
            let stored = unsafe { read_volatile(&actual[0]) };
            ensure!(stored == 5, "*actual_ptr = {stored:#x}");
            ensure!(k.0[..5] == *b"hello", "copied {:?}", &k.0[..5]);
            all("beyond max", k.at() + 5, 10, UNTOUCHED)
        })(),
    );
    t.case(
        "copyinstr running into an unmapped page: EFAULT, *actual_ptr = bytes copied",
        (|| {
            put(UB_END - 3, b"abc");
            let mut k = Buf::new();
            let mut actual = [0u64, PAST];
            let (status, _) = copyinstr(raw::copyinstr64, UB_END - 3, k.at(), 64, actual.as_mut_ptr() as u64);
            expect("copyinstr64", status, Status::EFAULT)?;
            // SAFETY: `actual` is live; the VMM wrote it during the call.
            let stored = unsafe { read_volatile(&actual[0]) };
            ensure!(stored == 3, "*actual_ptr = {stored:#x}");
            ensure!(k.0[..3] == *b"abc", "copied {:?}", &k.0[..3]);
            all("beyond the fault", k.at() + 3, 10, UNTOUCHED)
        })(),
    );
    t.case(
        "copyinstr with actual_ptr 0: OK, nothing stored",
        (|| {
            let mut k = Buf::new();
            reply("copyinstr", copyinstr(raw::copyinstr, UA + PAGE - 3, k.at(), 64, 0), Status::OK, 6)?;
            ensure!(k.0[..6] == *b"hello\0", "copied {:?}", &k.0[..6]);
            Ok(())
        })(),
    );
    t.case(
        "copyinstr64 above 4 GiB: OK; plain copyinstr there: EFAULT",
        (|| {
            put(UHIGH + 0x10, b"high\0");
            let mut k = Buf::new();
            reply("copyinstr64", copyinstr(raw::copyinstr64, UHIGH + 0x10, k.at(), 64, 0), Status::OK, 5)?;
            ensure!(k.0[..5] == *b"high\0", "copied {:?}", &k.0[..5]);
            let mut k = Buf::new();
            let (status, _) = copyinstr(raw::copyinstr, UHIGH + 0x10, k.at(), 64, 0);
            expect("copyinstr", status, Status::EFAULT)?;
            all("kernel buffer", k.at(), 5, UNTOUCHED)
        })(),
    );
    t.case(
        "copyinstr of an empty string: OK, length 1",
        (|| {
            put(UA + 0x300, b"\0");
            let mut k = Buf::new();
            reply("copyinstr", copyinstr(raw::copyinstr, UA + 0x300, k.at(), 64, 0), Status::OK, 1)?;
            ensure!(k.0[0] == 0, "copied {:#x}", k.0[0]);
            Ok(())
        })(),
    );
    t.case(
        "typed copyinstr/copyinstr64: the three outcomes and *actual",
        (|| {
            let mut k = [UNTOUCHED; 64];
            let kp = k.as_mut_ptr();
            let mut lengths = [0u32; 3];
            let [a, b, c] = &mut lengths;
            // SAFETY: `k` is a live 64-byte buffer.
            let results = unsafe {
                [
                    aix::copyinstr((UA + PAGE - 3) as *const u8, kp, 64, Some(a)),
                    aix::copyinstr64(UA + PAGE - 3, kp, 3, Some(b)),
                    aix::copyinstr64(UB_END - 3, kp, 64, Some(c)),
                    aix::copyinstr((UA + PAGE - 3) as *const u8, kp, 64, None),
                ]
            };
            let want = [Status::OK, Status::ENAMETOOLONG, Status::EFAULT, Status::OK];
            ensure!(results == want && lengths == [6, 3, 3], "{results:?} {lengths:?}");
            Ok(())
        })(),
    );
}

// ---------------------------------------------------------------- fu / su

fn fetch_store(t: &mut Tally) {
    t.case(
        "fubyte and fubyte64: the byte, 0xff included",
        (|| {
            poke(UA, 0x10, 0xff);
            poke(UA, 0x11, 0x7e);
            reply("fubyte", raw::fubyte(UA + 0x10), Status::OK, 0xff)?;
            reply("fubyte64", raw::fubyte64(UA + 0x11), Status::OK, 0x7e)?;
            let typed = (aix::fubyte((UA + 0x10) as *const u8), aix::fubyte64(UA + 0x11));
            ensure!(typed == (0xff, 0x7e), "typed {typed:?}");
            Ok(())
        })(),
    );
    t.case(
        "fuword and fuword64: the 32-bit word, across a page too",
        (|| {
            for (i, b) in [0x78u8, 0x56, 0x34, 0x12].into_iter().enumerate() {
                poke(UA + 0x20, i as u64, b);
                poke(UA + PAGE - 2, i as u64, b);
            }
            reply("fuword", raw::fuword(UA + 0x20), Status::OK, 0x1234_5678)?;
            reply("fuword across pages", raw::fuword(UA + PAGE - 2), Status::OK, 0x1234_5678)?;
            reply("fuword64", raw::fuword64(UA + 0x20), Status::OK, 0x1234_5678)?;
            ensure!(aix::fuword((UA + 0x20) as *const u8) == 0x1234_5678, "typed fuword");
            set(UA + 0x24, 4, 0xff);
            reply("fuword of all ones", raw::fuword(UA + 0x24), Status::OK, 0xffff_ffff)?;
            ensure!(aix::fuword64(UA + 0x24) == -1, "typed fuword of all ones");
            Ok(())
        })(),
    );
    t.case(
        "fubyte/fuword of a bad address: EFAULT, typed -1",
        (|| {
            expect("fubyte unmapped", raw::fubyte(UNMAPPED).0, Status::EFAULT)?;
            expect("fuword64 unmapped", raw::fuword64(UNMAPPED).0, Status::EFAULT)?;
            expect("fuword across into an unmapped page", raw::fuword(UB_END - 2).0, Status::EFAULT)?;
            expect("fubyte64 of a kernel address", raw::fubyte64(&RODATA as *const u64 as u64).0, Status::EFAULT)?;
            let typed = (aix::fubyte(UNMAPPED as *const u8), aix::fuword(UNMAPPED as *const u8), aix::fubyte64(0));
            ensure!(typed == (-1, -1, -1), "typed {typed:?}");
            Ok(())
        })(),
    );
    t.case(
        "fubyte/fuword and the 4 GiB limit of the plain variants",
        (|| {
            poke(ULOW, PAGE - 1, 0x33);
            reply("fubyte of the last byte below 4 GiB", raw::fubyte(UHIGH - 1), Status::OK, 0x33)?;
            expect("fuword across 4 GiB", raw::fuword(UHIGH - 2).0, Status::EFAULT)?;
            expect("fubyte above 4 GiB", raw::fubyte(UHIGH).0, Status::EFAULT)?;
            poke(UHIGH, 0, 0x44);
            reply("fubyte64 above 4 GiB", raw::fubyte64(UHIGH), Status::OK, 0x44)?;
            let (status, _) = raw::fuword64(UHIGH - 2);
            expect("fuword64 across 4 GiB", status, Status::OK)
        })(),
    );
    t.case(
        "subyte and suword store; subyte64 and suword64 above 4 GiB",
        (|| {
            reply("subyte", store(raw::subyte, UA + 0x30, 0x5a), Status::OK, 0)?;
            ensure!(peek(UA, 0x30) == 0x5a, "subyte stored {:#x}", peek(UA, 0x30));
            reply("suword across pages", store(raw::suword, UA + PAGE - 1, 0xdead_beef), Status::OK, 0)?;
            let word = u32::from_le_bytes([0, 1, 2, 3].map(|i| peek(UA + PAGE - 1, i)));
            ensure!(word == 0xdead_beef, "suword stored {word:#x}");
            reply("subyte64", store(raw::subyte64, UHIGH + 0x30, 0xa5), Status::OK, 0)?;
            reply("suword64", store(raw::suword64, UHIGH + 0x34, 0x0102_0304), Status::OK, 0)?;
            ensure!(peek(UHIGH, 0x30) == 0xa5 && peek(UHIGH, 0x34) == 4 && peek(UHIGH, 0x37) == 1, "stores above 4 GiB");
            // SAFETY: the user memory is unreferenced.
            let typed = unsafe {
                [aix::subyte((UA + 0x31) as *mut u8, 7), aix::suword((UA + 0x38) as *mut u8, 9), aix::subyte64(UA + 0x32, 8)]
            };
            ensure!(typed == [0, 0, 0] && peek(UA, 0x31) == 7 && peek(UA, 0x38) == 9 && peek(UA, 0x32) == 8, "typed {typed:?}");
            Ok(())
        })(),
    );
    t.case(
        "subyte/suword to bad addresses: EFAULT, typed -1",
        (|| {
            poke(UHIGH, 0x40, 0);
            expect("subyte to a read-only page", store(raw::subyte, URO, 1).0, Status::EFAULT)?;
            expect("suword64 to a read-only page", store(raw::suword64, URO + 8, 1).0, Status::EFAULT)?;
            expect("subyte above 4 GiB", store(raw::subyte, UHIGH + 0x40, 1).0, Status::EFAULT)?;
            expect("suword across 4 GiB", store(raw::suword, UHIGH - 2, 1).0, Status::EFAULT)?;
            expect("subyte64 unmapped", store(raw::subyte64, UNMAPPED, 1).0, Status::EFAULT)?;
            expect("suword into an unmapped page", store(raw::suword, UB_END - 2, 1).0, Status::EFAULT)?;
            all("read-only page", URO, 16, 0)?;
            ensure!(peek(UHIGH, 0x40) == 0, "subyte above 4 GiB stored");
            // SAFETY: the stores are refused.
            let typed = unsafe { [aix::subyte(URO as *mut u8, 1), aix::suword64(UNMAPPED, 1)] };
            ensure!(typed == [-1, -1], "typed {typed:?}");
            Ok(())
        })(),
    );
}

// ---------------------------------------------------------------- uiomove

fn check_uio(u: &Uio, iovdcnt: u32, offset: u64, resid: u64) -> Outcome {
    ensure!(
        u.iovdcnt == iovdcnt && u.offset == offset && u.resid == resid,
        "uio: iovdcnt {} offset {} resid {}, expected {iovdcnt} {offset} {resid}",
        u.iovdcnt,
        u.offset,
        u.resid
    );
    Ok(())
}

fn check_iov(iov: &[IoVec], i: usize, base: u64, len: u64) -> Outcome {
    // SAFETY: the VMM wrote the iovecs during the call; read them fresh.
    let v = unsafe { read_volatile(&iov[i]) };
    ensure!(v.base == base && v.len == len, "iov[{i}] = {:#x}+{}, expected {base:#x}+{len}", v.base, v.len);
    Ok(())
}

fn uio_cases(t: &mut Tally, pid: Pid) {
    t.case(
        "uiomove UIO_READ, system space, three iovecs: resid, offset, iovdcnt, iovecs updated",
        (|| {
            let mut src = Buf::new();
            fill(src.at(), 0x40, 20);
            let (mut a, mut b, mut c) = (Buf::new(), Buf::new(), Buf::new());
            let mut iov = [IoVec { base: a.at(), len: 5 }, IoVec { base: b.at(), len: 10 }, IoVec { base: c.at(), len: 10 }];
            let mut u = uio(&mut iov, 25, UIO_SYSSPACE as u32);
            reply("uiomove", uiomove(src.at(), 20, UIO_READ, &mut u), Status::OK, 20)?;
            check_uio(&u, 2, 1020, 5)?;
            check_iov(&iov, 0, a.at() + 5, 0)?;
            check_iov(&iov, 1, b.at() + 10, 0)?;
            check_iov(&iov, 2, c.at() + 5, 5)?;
            holds("iov 0", a.at(), 5, 20, 0)?;
            holds("iov 1", b.at(), 10, 20, 5)?;
            holds("iov 2", c.at(), 5, 20, 15)?;
            all("iov 2 beyond", c.at() + 5, 5, UNTOUCHED)?;
            // n above resid: only resid moves, and iovdcnt passes the last iovec.
            reply("uiomove past resid", uiomove(src.at() + 20, 100, UIO_READ, &mut u), Status::OK, 5)?;
            check_uio(&u, 3, 1025, 0)?;
            holds("iov 2 rest", c.at() + 5, 5, 20, 20)?;
            reply("uiomove with resid 0", uiomove(src.at(), 10, UIO_READ, &mut u), Status::OK, 0)?;
            check_uio(&u, 3, 1025, 0)
        })(),
    );
    t.case(
        "uiomove UIO_WRITE, system space: the uio's buffers into cp",
        (|| {
            let (mut a, mut b) = (Buf::new(), Buf::new());
            fill(a.at(), 3, 21);
            fill(b.at(), 4, 22);
            let mut iov = [IoVec { base: a.at(), len: 3 }, IoVec { base: b.at(), len: 4 }];
            let mut u = uio(&mut iov, 7, UIO_SYSSPACE as u32);
            let mut cp = Buf::new();
            reply("uiomove", uiomove(cp.at(), 7, UIO_WRITE, &mut u), Status::OK, 7)?;
            holds("from iov 0", cp.at(), 3, 21, 0)?;
            holds("from iov 1", cp.at() + 3, 4, 22, 0)?;
            all("beyond", cp.at() + 7, 8, UNTOUCHED)?;
            check_uio(&u, 2, 1007, 0)?;
            check_iov(&iov, 1, b.at() + 4, 0)
        })(),
    );
    t.case(
        "uiomove starts at iovdcnt and stops at n",
        (|| {
            let (mut a, mut b) = (Buf::new(), Buf::new());
            let mut iov = [IoVec { base: a.at(), len: 8 }, IoVec { base: b.at(), len: 8 }];
            let mut u = uio(&mut iov, 16, UIO_SYSSPACE as u32);
            u.iovdcnt = 1;
            let mut src = Buf::new();
            fill(src.at(), 8, 23);
            reply("uiomove", uiomove(src.at(), 3, UIO_READ, &mut u), Status::OK, 3)?;
            all("iov 0 untouched", a.at(), 8, UNTOUCHED)?;
            holds("iov 1", b.at(), 3, 23, 0)?;
            check_iov(&iov, 0, a.at(), 8)?;
            check_iov(&iov, 1, b.at() + 3, 5)?;
            check_uio(&u, 1, 1003, 13)?;
            reply("uiomove of 0 bytes", uiomove(src.at(), 0, UIO_READ, &mut u), Status::OK, 0)?;
            check_uio(&u, 1, 1003, 13)
        })(),
    );
    t.case(
        "uiomove skips empty iovecs",
        (|| {
            let (mut a, mut b, mut c) = (Buf::new(), Buf::new(), Buf::new());
            let mut src = Buf::new();
            fill(src.at(), 0x20, 24);
            let mut iov = [
                IoVec { base: a.at(), len: 0 },
                IoVec { base: b.at(), len: 4 },
                IoVec { base: a.at(), len: 0 },
                IoVec { base: c.at(), len: 8 },
            ];
            let mut u = uio(&mut iov, 12, UIO_SYSSPACE as u32);
            reply("uiomove", uiomove(src.at(), 10, UIO_READ, &mut u), Status::OK, 10)?;
            all("empty iovec", a.at(), 4, UNTOUCHED)?;
            holds("iov 1", b.at(), 4, 24, 0)?;
            holds("iov 3", c.at(), 6, 24, 4)?;
            all("iov 3 beyond", c.at() + 6, 2, UNTOUCHED)?;
            check_iov(&iov, 0, a.at(), 0)?;
            check_iov(&iov, 1, b.at() + 4, 0)?;
            check_iov(&iov, 2, a.at(), 0)?;
            check_iov(&iov, 3, c.at() + 6, 2)?;
            ensure!(u.offset == 1010 && u.resid == 2, "offset {} resid {}", u.offset, u.resid);
            Ok(())
        })(),
    );
    t.case(
        "uiomove counts the empty iovecs it passes in iovdcnt",
        (|| {
            let (mut a, mut b) = (Buf::new(), Buf::new());
            let mut src = Buf::new();
            let mut iov = [
                IoVec { base: a.at(), len: 0 },
                IoVec { base: a.at(), len: 2 },
                IoVec { base: a.at(), len: 0 },
                IoVec { base: b.at(), len: 4 },
            ];
            let mut u = uio(&mut iov, 6, UIO_SYSSPACE as u32);
            reply("uiomove", uiomove(src.at(), 3, UIO_READ, &mut u), Status::OK, 3)?;
            // Iovecs 0–2 are passed (0 and 2 empty, 1 used up); iovec 3 has bytes left.
            ensure!(u.iovdcnt == 3, "iovdcnt {}, expected 3 (empty iovecs passed count as done)", u.iovdcnt);
            Ok(())
        })(),
    );
    t.case(
        "uiomove through UIO_MAXIOV iovecs, 1023 of them empty: OK",
        (|| {
            let mut dst = Buf::new();
            let mut src = Buf::new();
            fill(src.at(), 4, 25);
            // SAFETY: only this case uses MANY, through this one reference.
            let many = unsafe { &mut *MANY.0.get() };
            for v in many.iter_mut() {
                *v = IoVec { base: dst.at(), len: 0 };
            }
            many[1023] = IoVec { base: dst.at(), len: 4 };
            let mut u = uio(many, 4, UIO_SYSSPACE as u32);
            reply("uiomove", uiomove(src.at(), 4, UIO_READ, &mut u), Status::OK, 4)?;
            holds("the last iovec", dst.at(), 4, 25, 0)?;
            ensure!(u.resid == 0 && u.offset == 1004, "resid {} offset {}", u.resid, u.offset);
            Ok(())
        })(),
    );
    t.case(
        "uiomove refusals: iovcnt above UIO_MAXIOV, bad segflg, bad rw: EINVAL, uio unchanged",
        (|| {
            let mut a = Buf::new();
            let mut src = Buf::new();
            // SAFETY: only this case and the one before use MANY.
            let many = unsafe { &mut *MANY.0.get() };
            for v in many.iter_mut() {
                *v = IoVec { base: a.at(), len: 1 };
            }
            let mut u = uio(many, 4, UIO_SYSSPACE as u32);
            u.iovcnt = 1025;
            reply("uiomove with 1025 iovecs", uiomove(src.at(), 4, UIO_READ, &mut u), Status::EINVAL, 0)?;
            let mut iov = [IoVec { base: a.at(), len: 4 }];
            for (segflg, rw, what) in [(3, UIO_READ, "segflg 3"), (UIO_SYSSPACE as u32, 2, "rw 2")] {
                let mut u = uio(&mut iov, 4, segflg);
                let before = u;
                let (status, _) = uiomove(src.at(), 4, rw, &mut u);
                expect(what, status, Status::EINVAL)?;
                ensure!(u == before, "{what}: the uio changed");
            }
            check_iov(&iov, 0, a.at(), 4)?;
            all("buffer", a.at(), 4, UNTOUCHED)
        })(),
    );
    for (segflg, name) in [(UIO_USERSPACE, "UIO_USERSPACE"), (UIO_USERISPACE, "UIO_USERISPACE")] {
        let mut title = TruncatingBuffer::<120>::new();
        let _ = write!(title, "uiomove {name}: both directions, user buffers across pages and mappings");
        t.case(
            core::str::from_utf8(title.as_bytes()).unwrap_or("?"),
            (|| {
                let mut src = Buf::new();
                fill(src.at(), 0x80, 26);
                set(UA + PAGE - 0x20, 0x40, 0);
                set(UB - 0x10, 0x20, 0);
                let mut iov = [
                    IoVec { base: UA + PAGE - 0x20, len: 0x40 },
                    IoVec { base: UNMAPPED, len: 0 },
                    IoVec { base: UB - 0x10, len: 0x20 },
                ];
                let mut u = uio(&mut iov, 0x60, segflg as u32);
                reply("uiomove UIO_READ", uiomove(src.at(), 0x60, UIO_READ, &mut u), Status::OK, 0x60)?;
                holds("user iov 0", UA + PAGE - 0x20, 0x40, 26, 0)?;
                holds("user iov 2", UB - 0x10, 0x20, 26, 0x40)?;
                ensure!(u.resid == 0 && u.offset == 1096, "resid {} offset {}", u.resid, u.offset);
                check_iov(&iov, 2, UB + 0x10, 0)?;
                let mut iov = [IoVec { base: UA + PAGE - 0x20, len: 0x40 }, IoVec { base: UB - 0x10, len: 0x20 }];
                let mut u = uio(&mut iov, 0x60, segflg as u32);
                let mut back = Buf::new();
                reply("uiomove UIO_WRITE", uiomove(back.at(), 0x60, UIO_WRITE, &mut u), Status::OK, 0x60)?;
                holds("kernel buffer", back.at(), 0x60, 26, 0)?;
                check_uio(&u, 2, 1096, 0)
            })(),
        );
    }
    t.case(
        "uiomove stopping at an unmapped user page: EFAULT, the uio updated for what moved",
        (|| {
            let mut src = Buf::new();
            fill(src.at(), 0x20, 27);
            set(UB_END - 4, 4, 0);
            let mut iov = [IoVec { base: UA + 0x400, len: 8 }, IoVec { base: UB_END - 4, len: 8 }];
            let mut u = uio(&mut iov, 16, UIO_USERSPACE as u32);
            reply("uiomove", uiomove(src.at(), 16, UIO_READ, &mut u), Status::EFAULT, 12)?;
            holds("iov 0", UA + 0x400, 8, 27, 0)?;
            holds("iov 1 up to the gap", UB_END - 4, 4, 27, 8)?;
            check_iov(&iov, 0, UA + 0x408, 0)?;
            check_iov(&iov, 1, UB_END, 4)?;
            check_uio(&u, 1, 1012, 4)
        })(),
    );
    t.case(
        "uiomove UIO_WRITE from a read-only user page, UIO_READ into it: EFAULT",
        (|| {
            let mut k = Buf::new();
            let mut iov = [IoVec { base: URO, len: 8 }];
            let mut u = uio(&mut iov, 8, UIO_USERSPACE as u32);
            reply("UIO_WRITE from the read-only page", uiomove(k.at(), 8, UIO_WRITE, &mut u), Status::OK, 8)?;
            let mut iov = [IoVec { base: URO, len: 8 }];
            let mut u = uio(&mut iov, 8, UIO_USERSPACE as u32);
            reply("UIO_READ into the read-only page", uiomove(k.at(), 8, UIO_READ, &mut u), Status::EFAULT, 0)?;
            check_uio(&u, 0, 1000, 8)
        })(),
    );
    t.case(
        "uiomove of user buffers without a current process: EFAULT, nothing moved",
        outside(pid, || {
            let mut k = Buf::new();
            let mut iov = [IoVec { base: UA, len: 8 }];
            let mut u = uio(&mut iov, 8, UIO_USERSPACE as u32);
            reply("uiomove", uiomove(k.at(), 8, UIO_WRITE, &mut u), Status::EFAULT, 0)?;
            all("kernel buffer", k.at(), 8, UNTOUCHED)?;
            check_uio(&u, 0, 1000, 8)
        }),
    );
    t.case(
        "uiomove of system buffers needs no process",
        outside(pid, || {
            let (mut a, mut b) = (Buf::new(), Buf::new());
            fill(a.at(), 8, 28);
            let mut iov = [IoVec { base: b.at(), len: 8 }];
            let mut u = uio(&mut iov, 8, UIO_SYSSPACE as u32);
            reply("uiomove", uiomove(a.at(), 8, UIO_READ, &mut u), Status::OK, 8)?;
            holds("buffer", b.at(), 8, 28, 0)
        }),
    );
    t.case(
        "typed uiomove",
        (|| {
            let mut src = *b"typed!";
            let mut dst = [0u8; 6];
            let mut iov = [IoVec { base: dst.as_mut_ptr() as u64, len: 6 }];
            let mut u = uio(&mut iov, 6, UIO_SYSSPACE as u32);
            // SAFETY: the uio, its iovec and both buffers are live locals.
            let status = unsafe { aix::uiomove(src.as_mut_ptr(), 6, UIO_READ, &mut u) };
            expect("uiomove", status, Status::OK)?;
            // SAFETY: the VMM wrote `dst` during the call.
            let got = unsafe { read_volatile(&dst) };
            ensure!(&got == b"typed!" && u.resid == 0, "{got:?} resid {}", u.resid);
            Ok(())
        })(),
    );
    t.case(
        "ureadc: the character's low byte into the uio, which advances",
        (|| {
            let (mut a, mut b) = (Buf::new(), Buf::new());
            let mut iov = [IoVec { base: a.at(), len: 0 }, IoVec { base: b.at(), len: 2 }];
            let mut u = uio(&mut iov, 2, UIO_SYSSPACE as u32);
            // SAFETY: the uio, its iovecs and buffers are live locals.
            let first = unsafe { aix::ureadc(0x141, &mut u) };
            expect("ureadc", first, Status::OK)?;
            ensure!(peek(b.at(), 0) == 0x41, "stored {:#x}", peek(b.at(), 0));
            check_iov(&iov, 1, b.at() + 1, 1)?;
            ensure!(u.resid == 1 && u.offset == 1001, "resid {} offset {}", u.resid, u.offset);
            // SAFETY: as above.
            let (status, _) = unsafe { raw::ureadc(0xff, &mut u as *mut Uio as u64) };
            expect("raw ureadc", status, Status::OK)?;
            ensure!(peek(b.at(), 1) == 0xff && u.resid == 0, "second byte {:#x} resid {}", peek(b.at(), 1), u.resid);
            Ok(())
        })(),
    );
    t.case(
        "uwritec: one character out of the uio each, ENOENT at resid 0",
        (|| {
            let mut a = Buf::new();
            poke(a.at(), 0, b'Z');
            poke(a.at(), 1, 0xff);
            let mut iov = [IoVec { base: a.at(), len: 2 }];
            let mut u = uio(&mut iov, 2, UIO_SYSSPACE as u32);
            // SAFETY: the uio, its iovec and buffer are live locals.
            let first = unsafe { aix::uwritec(&mut u) };
            ensure!(first == i32::from(b'Z'), "first {first}");
            // SAFETY: as above.
            reply("raw uwritec", unsafe { raw::uwritec(&mut u as *mut Uio as u64) }, Status::OK, 0xff)?;
            ensure!(u.resid == 0 && u.offset == 1002, "resid {} offset {}", u.resid, u.offset);
            // SAFETY: as above.
            let (status, _) = unsafe { raw::uwritec(&mut u as *mut Uio as u64) };
            expect("uwritec at resid 0", status, Status::ENOENT)?;
            // SAFETY: as above.
            let typed = unsafe { aix::uwritec(&mut u) };
            ensure!(typed == -1, "typed uwritec at resid 0: {typed}");
            Ok(())
        })(),
    );
    t.case(
        "ureadc and uwritec on user buffers",
        (|| {
            poke(UA, 0x500, 0x99);
            let mut iov = [IoVec { base: UA + 0x500, len: 1 }, IoVec { base: UHIGH + 0x500, len: 1 }];
            let mut u = uio(&mut iov, 2, UIO_USERSPACE as u32);
            // SAFETY: the uio and iovecs are live locals; the user bytes unreferenced.
            let c = unsafe { aix::uwritec(&mut u) };
            ensure!(c == 0x99, "uwritec {c}");
            // SAFETY: as above.
            let status = unsafe { aix::ureadc(0x66, &mut u) };
            expect("ureadc", status, Status::OK)?;
            ensure!(peek(UHIGH, 0x500) == 0x66 && u.resid == 0, "stored {:#x}", peek(UHIGH, 0x500));
            Ok(())
        })(),
    );
}

// ---------------------------------------------------------------- heaps

fn heaps(t: &mut Tally) {
    for (heap, base, name) in
        [(Heap::KERNEL, layout::KERNEL_HEAP_VA, "kernel_heap"), (Heap::PINNED, layout::PINNED_HEAP_VA, "pinned_heap")]
    {
        let mut title = TruncatingBuffer::<120>::new();
        let _ = write!(title, "xmalloc from {name}: in its range, every alignment 0..=12, zero-filled, writable");
        t.case(
            core::str::from_utf8(title.as_bytes()).unwrap_or("?"),
            (|| {
                for align in 0..=12u64 {
                    for size in [1, 100, 5000] {
                        let a = Alloc::new(size, align, heap.0)?;
                        ensure!(a.ptr >= base && a.ptr + size <= base + layout::ARENA_SIZE, "{:#x} outside {name}", a.ptr);
                        ensure!(a.ptr.is_multiple_of(1 << align), "{:#x} not aligned to 2^{align}", a.ptr);
                        all("fresh allocation", a.ptr, size, 0)?;
                        fill(a.ptr, size, align as u8);
                        holds("written", a.ptr, size, align as u8, 0)?;
                        a.free()?;
                    }
                }
                Ok(())
            })(),
        );
        let mut title = TruncatingBuffer::<120>::new();
        let _ = write!(title, "xmalloc from {name}: live allocations are disjoint; reused memory is zeroed");
        t.case(
            core::str::from_utf8(title.as_bytes()).unwrap_or("?"),
            (|| {
                let a = Alloc::new(100, 3, heap.0)?;
                let b = Alloc::new(100, 3, heap.0)?;
                ensure!(a.ptr + 100 <= b.ptr || b.ptr + 100 <= a.ptr, "{:#x} and {:#x} overlap", a.ptr, b.ptr);
                fill(a.ptr, 100, 30);
                fill(b.ptr, 100, 31);
                holds("a", a.ptr, 100, 30, 0)?;
                a.free()?;
                let c = Alloc::new(100, 3, heap.0)?;
                all("reallocated", c.ptr, 100, 0)?;
                holds("b", b.ptr, 100, 31, 0)?;
                b.free()?;
                c.free()
            })(),
        );
    }
    t.case(
        "xmalloc refusals: size 0, align_log2 13, unknown heap: EINVAL and 0",
        (|| {
            reply("size 0", raw::xmalloc(0, 3, Heap::KERNEL.0), Status::EINVAL, 0)?;
            reply("align_log2 13", raw::xmalloc(64, 13, Heap::PINNED.0), Status::EINVAL, 0)?;
            reply("heap 99", raw::xmalloc(64, 3, 99), Status::EINVAL, 0)?;
            reply("heap 0", raw::xmalloc(64, 3, 0), Status::EINVAL, 0)?;
            ensure!(aix::xmalloc(0, 3, Heap::KERNEL).is_null(), "typed xmalloc of 0 bytes is not null");
            Ok(())
        })(),
    );
    t.case(
        "xmalloc beyond the guest's memory from pinned_heap: ENOMEM and 0",
        (|| {
            reply("xmalloc", raw::xmalloc(TOO_MUCH, 12, Heap::PINNED.0), Status::ENOMEM, 0)?;
            ensure!(aix::xmalloc(TOO_MUCH as usize, 0, Heap::PINNED).is_null(), "typed xmalloc is not null");
            Ok(())
        })(),
    );
    t.case(
        "xmfree of a pointer not from that heap: EINVAL, the allocation stays",
        (|| {
            let a = Alloc::new(64, 3, Heap::KERNEL.0)?;
            fill(a.ptr, 64, 32);
            expect("xmfree to pinned_heap", xmfree(a.ptr, Heap::PINNED.0), Status::EINVAL)?;
            let local = 0u64;
            expect("xmfree of a stack address", xmfree(&local as *const u64 as u64, Heap::KERNEL.0), Status::EINVAL)?;
            expect("xmfree of a user address", xmfree(UA, Heap::KERNEL.0), Status::EINVAL)?;
            holds("the allocation", a.ptr, 64, 32, 0)?;
            // SAFETY: refused: nothing is freed.
            let typed = unsafe { aix::xmfree(a.ptr as *mut u8, Heap::PINNED) };
            ensure!(typed == -1, "typed xmfree of a foreign pointer: {typed}");
            // SAFETY: the allocation is not used afterwards.
            let freed = unsafe { aix::xmfree(a.ptr as *mut u8, Heap::KERNEL) };
            core::mem::forget(a);
            ensure!(freed == 0, "typed xmfree: {freed}");
            Ok(())
        })(),
    );
    let area = AREA.0.get() as u64;
    // SAFETY: refused calls give nothing up; the successful ones give up
    // pages of AREA that nothing else touches afterwards.
    let init = |a: u64, size: u64, flags: u64| unsafe { raw::init_heap(a, size, flags) };
    t.case(
        "init_heap refusals: flags, size below 64, misaligned, unmapped, read-only, user: EINVAL",
        (|| {
            let cases = [
                (area, 2 * PAGE, 1, "flags 1"),
                (area, 63, 0, "size 63"),
                (area + 4, 2 * PAGE, 0, "area not 8-aligned"),
                (KERNEL_UNMAPPED, PAGE, 0, "an unmapped kernel page"),
                (&RODATA as *const u64 as u64 & !7, 64, 0, "read-only data"),
                (layout::BOOT_INFO_VA, 64, 0, "the read-only boot-info page"),
                (UA, PAGE, 0, "a user address"),
            ];
            for (a, size, flags, what) in cases {
                expect(what, init(a, size, flags).0, Status::EINVAL)?;
            }
            Ok(())
        })(),
    );
    let heap = init(area, 2 * PAGE, 0);
    t.case(
        "init_heap of a writable image region: a new handle",
        (|| {
            ensure!(heap.0 == Status::OK && heap.1 > Heap::PINNED.0, "init_heap: {} {:#x}", heap.0.name(), heap.1);
            Ok(())
        })(),
    );
    if heap.0 == Status::OK {
        let h = heap.1;
        t.case(
            "init_heap over a region that overlaps another: EINVAL",
            (|| {
                expect("inside", init(area + PAGE, 64, 0).0, Status::EINVAL)?;
                expect("straddling the end", init(area + 2 * PAGE - 8, 64, 0).0, Status::EINVAL)
            })(),
        );
        t.case(
            "xmalloc from an init_heap heap: inside its region, aligned, zero-filled",
            (|| {
                let a = Alloc::new(100, 4, h)?;
                ensure!(a.ptr >= area && a.ptr + 100 <= area + 2 * PAGE, "{:#x} outside the region", a.ptr);
                ensure!(a.ptr.is_multiple_of(16), "{:#x} not 16-aligned", a.ptr);
                all("allocation", a.ptr, 100, 0)?;
                fill(a.ptr, 100, 33);
                let b = Alloc::new(1000, 0, h)?;
                ensure!(b.ptr >= area && b.ptr + 1000 <= area + 2 * PAGE, "{:#x} outside the region", b.ptr);
                ensure!(a.ptr + 100 <= b.ptr || b.ptr + 1000 <= a.ptr, "overlap");
                holds("first allocation", a.ptr, 100, 33, 0)?;
                expect("xmfree to kernel_heap", xmfree(a.ptr, Heap::KERNEL.0), Status::EINVAL)?;
                expect("xmfree of a boot-heap pointer to this heap", xmfree(layout::KERNEL_HEAP_VA, h), Status::EINVAL)?;
                a.free()?;
                b.free()
            })(),
        );
        t.case(
            "xmalloc beyond an init_heap heap's region: ENOMEM and 0",
            reply("xmalloc", raw::xmalloc(2 * PAGE + 1, 0, h), Status::ENOMEM, 0),
        );
    }
    t.case(
        "init_heap of the smallest region (64 bytes)",
        (|| {
            let (status, small) = init(area + 2 * PAGE, 64, 0);
            expect("init_heap", status, Status::OK)?;
            let a = Alloc::new(8, 3, small)?;
            ensure!(a.ptr >= area + 2 * PAGE && a.ptr + 8 <= area + 2 * PAGE + 64, "{:#x} outside", a.ptr);
            reply("xmalloc of 65 bytes", raw::xmalloc(65, 0, small), Status::ENOMEM, 0)?;
            a.free()
        })(),
    );
}

// ---------------------------------------------------------------- pinning

fn pinning(t: &mut Tally, pid: Pid) {
    t.case(
        "pin and unpin count per page; unpin at count 0: EINVAL",
        (|| {
            let a = Alloc::new(2 * PAGE, 12, Heap::KERNEL.0)?;
            reply("pin", raw::pin(a.ptr, 2 * PAGE), Status::OK, 0)?;
            reply("pin again (first page)", raw::pin(a.ptr + 10, 1), Status::OK, 0)?;
            reply("unpin both pages", raw::unpin(a.ptr, 2 * PAGE), Status::OK, 0)?;
            expect("unpin the second page at 0", raw::unpin(a.ptr + PAGE, 1).0, Status::EINVAL)?;
            reply("unpin the first page", raw::unpin(a.ptr + PAGE - 1, 1), Status::OK, 0)?;
            expect("unpin the first page at 0", raw::unpin(a.ptr, PAGE).0, Status::EINVAL)?;
            a.free()
        })(),
    );
    t.case(
        "pin refusals: length 0 or above i32::MAX, wrapping, user address, unmapped: EINVAL",
        (|| {
            let mut k = Buf::new();
            expect("length 0", raw::pin(k.at(), 0).0, Status::EINVAL)?;
            expect("length 2^31", raw::pin(k.at(), 1 << 31).0, Status::EINVAL)?;
            expect("wrapping", raw::pin(u64::MAX - PAGE, 3 * PAGE).0, Status::EINVAL)?;
            expect("user address (mapped)", raw::pin(UA, 16).0, Status::EINVAL)?;
            expect("unmapped kernel page", raw::pin(KERNEL_UNMAPPED, 16).0, Status::EINVAL)?;
            expect("unpin length 0", raw::unpin(k.at(), 0).0, Status::EINVAL)?;
            expect("unpin of a user address", raw::unpin(UA, 16).0, Status::EINVAL)?;
            expect("unpin of a page never pinned", raw::unpin(k.at(), 16).0, Status::EINVAL)?;
            let a = Alloc::new(PAGE, 12, Heap::KERNEL.0)?;
            let freed = a.ptr;
            a.free()?;
            expect("pin of a freed, unmapped heap page", raw::pin(freed, 16).0, Status::EINVAL)
        })(),
    );
    t.skip("pin: ENOMEM past 90% of RAM pinned", "needs more mapped kernel memory than this guest maps");
    t.case(
        "pin of the stack, the image's code and data",
        (|| {
            let local = [0u8; 64];
            let code = main as fn() -> u32 as usize as u64;
            let area = AREA.0.get() as u64 + 3 * PAGE;
            for (addr, what) in
                [(local.as_ptr() as u64, "stack"), (code, "code"), (&RODATA as *const u64 as u64, "rodata"), (area, "data")]
            {
                reply(what, raw::pin(addr, 64), Status::OK, 0)?;
                reply(what, raw::unpin(addr, 64), Status::OK, 0)?;
            }
            let typed = (aix::pin(local.as_ptr(), 64), aix::unpin(local.as_ptr(), 64), aix::unpin(local.as_ptr(), 64));
            ensure!(typed == (Status::OK, Status::OK, Status::EINVAL), "typed {typed:?}");
            Ok(())
        })(),
    );
    t.case(
        "pinu/unpinu UIO_SYSSPACE are pin/unpin and share their counts",
        (|| {
            let mut k = Buf::new();
            reply("pinu", raw::pinu(k.at(), 16, UIO_SYSSPACE), Status::OK, 0)?;
            reply("unpin", raw::unpin(k.at(), 16), Status::OK, 0)?;
            expect("unpinu at 0", raw::unpinu(k.at(), 16, UIO_SYSSPACE).0, Status::EINVAL)?;
            reply("pin", raw::pin(k.at(), 16), Status::OK, 0)?;
            reply("unpinu", raw::unpinu(k.at(), 16, UIO_SYSSPACE), Status::OK, 0)?;
            expect("pinu length 0", raw::pinu(k.at(), 0, UIO_SYSSPACE).0, Status::EINVAL)?;
            expect("pinu UIO_SYSSPACE of a user address", raw::pinu(UA, 16, UIO_SYSSPACE).0, Status::EINVAL)
        })(),
    );
    t.case(
        "unpinu of system memory at interrupt level: OK",
        (|| {
            let mut k = Buf::new();
            reply("pinu", raw::pinu(k.at(), 16, UIO_SYSSPACE), Status::OK, 0)?;
            let at = k.at();
            reply("unpinu at interrupt level", at_interrupt_level(|| raw::unpinu(at, 16, UIO_SYSSPACE)), Status::OK, 0)
        })(),
    );
    t.case(
        "pinu/unpinu of user memory in a process, both user segments, counted",
        (|| {
            for segflag in [UIO_USERSPACE, UIO_USERISPACE] {
                reply("pinu", raw::pinu(UA + 0x800, 2 * PAGE, segflag), Status::OK, 0)?;
                reply("pinu the read-only page", raw::pinu(URO, 1, segflag), Status::OK, 0)?;
                reply("pinu above 4 GiB", raw::pinu(UHIGH, 1, segflag), Status::OK, 0)?;
                reply("unpinu", raw::unpinu(UA + 0x800, 2 * PAGE, segflag), Status::OK, 0)?;
                expect("unpinu at 0", raw::unpinu(UA + 0x800, 1, segflag).0, Status::EINVAL)?;
                reply("unpinu the read-only page", raw::unpinu(URO, 1, segflag), Status::OK, 0)?;
                reply("unpinu above 4 GiB", raw::unpinu(UHIGH, 1, segflag), Status::OK, 0)?;
            }
            let typed = (aix::pinu(UA as *const u8, 8, UIO_USERSPACE), aix::unpinu(UA as *const u8, 8, UIO_USERSPACE));
            ensure!(typed == (Status::OK, Status::OK), "typed {typed:?}");
            Ok(())
        })(),
    );
    t.case(
        "pinu/unpinu of unmapped user memory: EFAULT",
        (|| {
            expect("pinu", raw::pinu(UNMAPPED, 16, UIO_USERSPACE).0, Status::EFAULT)?;
            expect("pinu running into an unmapped page", raw::pinu(UB_END - 8, 16, UIO_USERSPACE).0, Status::EFAULT)?;
            expect("unpinu", raw::unpinu(UNMAPPED, 16, UIO_USERSPACE).0, Status::EFAULT)?;
            // The refused pinu pinned nothing: the page before the gap is at 0.
            expect("unpinu of the page before the gap", raw::unpinu(UB_END - 8, 8, UIO_USERSPACE).0, Status::EINVAL)
        })(),
    );
    t.case(
        "pinu/unpinu with an unknown segflag: EINVAL",
        (|| {
            let mut k = Buf::new();
            expect("pinu", raw::pinu(k.at(), 16, 7).0, Status::EINVAL)?;
            expect("unpinu", raw::unpinu(UA, 16, 3).0, Status::EINVAL)
        })(),
    );
    t.case(
        "pinu/unpinu of user memory without a current process: EFAULT",
        outside(pid, || {
            expect("pinu", raw::pinu(UA, 16, UIO_USERSPACE).0, Status::EFAULT)?;
            expect("unpinu", raw::unpinu(UA, 16, UIO_USERISPACE).0, Status::EFAULT)
        }),
    );
    t.case(
        "pincode/unpincode of main; unpincode when not pinned: EINVAL",
        (|| {
            let code = main as fn() -> u32 as usize as u64;
            reply("pincode", raw::pincode(code), Status::OK, 0)?;
            reply("unpincode", raw::unpincode(code), Status::OK, 0)?;
            expect("unpincode again", raw::unpincode(code).0, Status::EINVAL)?;
            let typed = (aix::pincode(code as *const u8), aix::unpincode(code as *const u8));
            ensure!(typed == (Status::OK, Status::OK), "typed {typed:?}");
            Ok(())
        })(),
    );
    t.case(
        "pincode adds to the pages' pin counts: a pin of image data outlives unpincode",
        (|| {
            let code = main as fn() -> u32 as usize as u64;
            let data = AREA.0.get() as u64 + 3 * PAGE;
            reply("pin", raw::pin(data, 16), Status::OK, 0)?;
            reply("pincode", raw::pincode(code), Status::OK, 0)?;
            reply("unpincode", raw::unpincode(code), Status::OK, 0)?;
            reply("unpin", raw::unpin(data, 16), Status::OK, 0)?;
            expect("unpin again", raw::unpin(data, 16).0, Status::EINVAL)
        })(),
    );
    t.case(
        "pincode/unpincode of what is not the image's code: EINVAL",
        (|| {
            let local = 0u64;
            for (addr, what) in [
                (&RODATA as *const u64 as u64, "read-only data"),
                (AREA.0.get() as u64, "data"),
                (&local as *const u64 as u64, "the stack"),
                (0, "0"),
                (UA, "a user address"),
                (layout::KERNEL_HEAP_VA, "the kernel heap"),
            ] {
                expect(what, raw::pincode(addr).0, Status::EINVAL)?;
                expect(what, raw::unpincode(addr).0, Status::EINVAL)?;
            }
            Ok(())
        })(),
    );
}

fn main() -> u32 {
    let mut t = Tally::default();
    heaps(&mut t);
    let pid = processes(&mut t);
    if pid == 0 {
        t.skip("user memory access", "no process");
    } else {
        copies(&mut t, pid);
        strings(&mut t);
        fetch_store(&mut t);
        uio_cases(&mut t, pid);
        pinning(&mut t, pid);
        teardown(&mut t, pid);
    }
    t.finish()
}
