//! The DG/UX memory_allocation(3K) conformance guest: PASS/FAIL/SKIP per case, no violations by design.
//!
//! One case per answer of the manual page's DIAGNOSTICS that a well-behaved caller
//! can provoke: gets of every alignment, the perhaps gets' `ENOMEM`, every
//! status of `vm_check_access_and_wire_memory`, page rounding and wire counts,
//! the mark routines, physical addresses page by page, and every status of
//! `vm_map_physical_memory` and `vm_unmap_physical_memory`. Misuse that the
//! VMM records as a violation lives in the `dgux-misuse-*` guests instead, so
//! this run ends with no violation and nothing allocated.
//!
//! Prints `PASS: case`, `FAIL: case: why` or `SKIP: case: why` per case and
//! `SUMMARY: N passed, M failed, K skipped` at the end; exits 0 iff nothing
//! failed. Argument `contiguous` (for a VMM run with `--contiguous-frames`)
//! expects the frames of a multi-page allocation to be contiguous instead.
//! The physical-range cases assume the default 64 MiB of RAM.
//!
//! The first three gets are demand gets (wired, unwired, wired), so that
//! `--fail-alloc nth=K` with K ≤ 3 halts the VM at a known get.
#![no_std]
#![no_main]
// A failure carries its message in a fixed buffer (there is no heap); only the
// failure path moves it.
#![allow(clippy::result_large_err)]

use core::hint::black_box;
use core::ptr::{read_volatile, write_volatile};

use kmemvisor_guest::abi::{Status, layout};
use kmemvisor_guest::args;
use kmemvisor_guest::conformance::{Outcome, Tally, Why, expect};
use kmemvisor_guest::dgux::{self, raw};
use kmemvisor_guest::dgux::{
    MAP_PRIVATE, MAP_SHARED, MAX_WIRE_COUNT, PROT_READ, PROT_WRITE, SC_EXECUTE_ACCESS, SC_NO_ACCESS, SC_READ_ACCESS,
    SC_WRITE_ACCESS, VM_BYTE_ALIGNED, VM_DEFAULT_ALIGNMENT, VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS, VM_DOUBLE_WORD_ALIGNED,
    VM_INVALID_MEMORY_PTR, VM_INVALID_PHYSICAL_ADDRESS, VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK, VM_MMAP_WRITE_THROUGH_MASK,
    VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK, VM_PAGE_ALIGNED, VM_WORD_ALIGNED, alignment_bytes,
};
use kmemvisor_guest::ensure;

kmemvisor_firmware::entry!(main);

const PAGE: u64 = layout::PAGE_SIZE;
/// The guest RAM the physical-range cases assume (the VMM's default).
const RAM_END: u64 = layout::DEFAULT_RAM_SIZE;
/// A kernel address no allocation reaches: the last page of the unwired arena.
const UNMAPPED_ARENA: u64 = layout::UNWIRED_ARENA_VA + layout::ARENA_SIZE - PAGE;
/// The last page of the address space: a range from it wraps.
const LAST_PAGE: u64 = 0u64.wrapping_sub(PAGE);
/// More bytes than any guest RAM holds.
const TOO_MUCH: u64 = 0xF000_0000;
/// The kernel-space control flag of map and unmap.
const KERNEL_MAP: u64 = VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK as u64;
/// The kernel-space control flag of unmap.
const KERNEL_UNMAP: u64 = VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK as u64;
/// Read and write, as the map calls take them.
const RW: u64 = (PROT_READ | PROT_WRITE) as u64;
/// MAP_SHARED as the raw map call takes it.
const SHARED: u64 = MAP_SHARED as u64;

/// A constant in the image's read-only data.
static RODATA: u64 = 0x0123_4567_89ab_cdef;

// ---------------------------------------------------------------- reporting

// ---------------------------------------------------------------- memory

/// Wired or unwired.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wired,
    Unwired,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Wired => "wired",
            Kind::Unwired => "unwired",
        }
    }

    fn arena(self) -> u64 {
        match self {
            Kind::Wired => layout::WIRED_ARENA_VA,
            Kind::Unwired => layout::UNWIRED_ARENA_VA,
        }
    }
}

const KINDS: [Kind; 2] = [Kind::Wired, Kind::Unwired];

/// A perhaps get: the status and the pointer.
fn perhaps(kind: Kind, bytes: u64, alignment: u32) -> (Status, u64) {
    match kind {
        Kind::Wired => raw::vm_perhaps_get_wired_memory(bytes, u64::from(alignment)),
        Kind::Unwired => raw::vm_perhaps_get_unwired_memory(bytes, u64::from(alignment)),
    }
}

/// A demand get: the status and the pointer.
fn demand(kind: Kind, bytes: u64, alignment: u32) -> (Status, u64) {
    match kind {
        Kind::Wired => raw::vm_get_wired_memory(bytes, u64::from(alignment)),
        Kind::Unwired => raw::vm_get_unwired_memory(bytes, u64::from(alignment)),
    }
}

/// Releases an allocation of this guest's that nothing uses any more.
fn release(kind: Kind, ptr: u64, bytes: u64) -> Status {
    // SAFETY: every caller passes an allocation it is done with (or one the
    // VMM must refuse, which frees nothing).
    unsafe {
        match kind {
            Kind::Wired => raw::vm_release_wired_memory(ptr, bytes),
            Kind::Unwired => raw::vm_release_unwired_memory(ptr, bytes),
        }
    }
}

/// A live allocation made by a case, released when dropped so that a failing
/// case leaves nothing behind.
struct Block {
    kind: Kind,
    ptr: u64,
    bytes: u64,
}

impl Block {
    fn get(kind: Kind, bytes: u64, alignment: u32) -> Result<Block, Why> {
        let (status, ptr) = perhaps(kind, bytes, alignment);
        ensure!(
            status == Status::OK && ptr != VM_INVALID_MEMORY_PTR,
            "perhaps get {} {bytes}: {} {ptr:#x}",
            kind.name(),
            status.name()
        );
        Ok(Block { kind, ptr, bytes })
    }

    fn page(&self, i: u64) -> u64 {
        self.ptr + i * PAGE
    }

    fn mut_ptr(&self) -> *mut u8 {
        self.ptr as *mut u8
    }

    /// Releases it now, checking the status.
    fn release(self) -> Outcome {
        let status = release(self.kind, self.ptr, self.bytes);
        core::mem::forget(self);
        expect("the release", status, Status::OK)
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        release(self.kind, self.ptr, self.bytes);
    }
}

/// Reads byte `i` at `base`.
fn peek(base: u64, i: u64) -> u8 {
    // SAFETY: callers read only inside live allocations or mapped windows.
    unsafe { read_volatile((base + i) as *const u8) }
}

/// Writes byte `i` at `base`.
fn poke(base: u64, i: u64, value: u8) {
    // SAFETY: callers write only inside live, writable allocations.
    unsafe { write_volatile((base + i) as *mut u8, value) }
}

/// The pattern byte at offset `i` for `seed`.
fn pattern(seed: u8, i: u64) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(seed) | 1
}

fn fill(base: u64, len: u64, seed: u8) {
    (0..len).for_each(|i| poke(base, i, pattern(seed, i)));
}

/// The first offset that does not hold the pattern.
fn holds(base: u64, len: u64, seed: u8) -> Option<u64> {
    (0..len).find(|&i| peek(base, i) != pattern(seed, i))
}

/// The first offset that is not zero.
fn nonzero(base: u64, len: u64) -> Option<u64> {
    (0..len).find(|&i| peek(base, i) != 0)
}

/// vm_get_physical_byte_address into a local: the status, what was stored and
/// the value in rdx.
fn phys(logical: u64, is_user: u64) -> (Status, u64, u64) {
    let mut stored: u64 = 0x5a5a_5a5a;
    // SAFETY: `stored` is a live local, valid for the 8-byte write.
    let (status, value) = unsafe { raw::vm_get_physical_byte_address(logical, is_user, &mut stored as *mut u64 as u64) };
    (status, read_volatile_u64(&stored), value)
}

fn read_volatile_u64(value: &u64) -> u64 {
    // SAFETY: a reference is valid for reads.
    unsafe { read_volatile(value) }
}

/// The physical address of a mapped kernel address, or a failure.
fn frame(logical: u64) -> Result<u64, Why> {
    let (status, stored, value) = phys(logical, 0);
    ensure!(
        status == Status::OK && stored == value && stored != VM_INVALID_PHYSICAL_ADDRESS,
        "phys({logical:#x}): {} stored {stored:#x} value {value:#x}",
        status.name()
    );
    Ok(stored)
}

fn map(logical: u64, physical: u64, bytes: u64, access: u64, sharing: u64, control: u64) -> Status {
    // SAFETY: the cases map only over unwired blocks of their own, and write
    // only through windows that show frames of their own wired blocks.
    unsafe { raw::vm_map_physical_memory(logical, physical, bytes, access, sharing, control) }
}

fn unmap(logical: u64, bytes: u64, control: u64) -> Status {
    // SAFETY: nothing relies on what a window showed once it is unmapped.
    unsafe { raw::vm_unmap_physical_memory(logical, bytes, control) }
}

fn wire(ptr: u64, is_user: u64, bytes: u64, access: u16) -> Status {
    raw::vm_check_access_and_wire_memory(ptr, is_user, bytes, u64::from(access))
}

fn unwire(ptr: u64, bytes: u64) -> Status {
    raw::vm_unwire_memory(ptr, 0, bytes)
}

// ---------------------------------------------------------------- cases

/// The first three gets: demand gets, so `--fail-alloc nth=1..3` halts here.
fn demand_gets(t: &mut Tally) {
    let cases: [(Kind, u64, u32); 3] = [
        (Kind::Wired, 100, VM_DEFAULT_ALIGNMENT),
        (Kind::Unwired, 100, VM_DEFAULT_ALIGNMENT),
        (Kind::Wired, 2 * PAGE, VM_PAGE_ALIGNED),
    ];
    let mut got = [(Kind::Wired, 0u64, 0u64); 3];
    for (i, &(kind, bytes, alignment)) in cases.iter().enumerate() {
        let (status, ptr) = demand(kind, bytes, alignment);
        got[i] = (kind, if status == Status::OK { ptr } else { 0 }, bytes);
        t.case(
            format_args!("vm_get_{}_memory({bytes}, {alignment}): in its arena, zero-filled, writable", kind.name()),
            (|| {
                expect("the get", status, Status::OK)?;
                check_block(kind, ptr, bytes, alignment, i as u8)
            })(),
        );
    }
    for (i, &(kind, ptr, bytes)) in got.iter().enumerate() {
        if ptr != 0 {
            t.case(
                format_args!("vm_release_{}_memory of demand get {}: OK", kind.name(), i + 1),
                expect("the release", release(kind, ptr, bytes), Status::OK),
            );
        }
    }
}

/// In the arena, aligned, zero-filled, holding a pattern written into it.
fn check_block(kind: Kind, ptr: u64, bytes: u64, alignment: u32, seed: u8) -> Outcome {
    let align = alignment_bytes(alignment).unwrap_or(1);
    let arena = kind.arena();
    ensure!(ptr >= arena && ptr + bytes <= arena + layout::ARENA_SIZE, "{ptr:#x} is outside the {} arena", kind.name());
    ensure!(ptr.is_multiple_of(align), "{ptr:#x} is not aligned to {align}");
    if let Some(i) = nonzero(ptr, bytes) {
        return Err(Why::new(format_args!("byte {i} of {ptr:#x} is {:#x}, not zero", peek(ptr, i))));
    }
    fill(ptr, bytes, seed);
    if let Some(i) = holds(ptr, bytes, seed) {
        return Err(Why::new(format_args!("byte {i} of {ptr:#x} did not keep what was written")));
    }
    Ok(())
}

fn alignments(t: &mut Tally) {
    let table: [(&str, u32, u64); 6] = [
        ("VM_BYTE_ALIGNED", VM_BYTE_ALIGNED, 7),
        ("VM_WORD_ALIGNED", VM_WORD_ALIGNED, 4),
        ("VM_DOUBLE_WORD_ALIGNED", VM_DOUBLE_WORD_ALIGNED, 8),
        ("VM_DEFAULT_ALIGNMENT", VM_DEFAULT_ALIGNMENT, 33),
        ("VM_PAGE_ALIGNED", VM_PAGE_ALIGNED, 3 * PAGE),
        ("VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS", VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS, 100),
    ];
    for kind in KINDS {
        for (n, &(name, alignment, bytes)) in table.iter().enumerate() {
            t.case(
                format_args!(
                    "vm_perhaps_get_{}_memory({bytes}, {name}): aligned, in its arena, zero-filled, writable",
                    kind.name()
                ),
                (|| {
                    // A 1-byte neighbour first, so the arena's cursor is not aligned already.
                    let skew = Block::get(kind, 1, VM_BYTE_ALIGNED)?;
                    let block = Block::get(kind, bytes, alignment)?;
                    check_block(kind, block.ptr, bytes, alignment, n as u8)?;
                    if alignment == VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS {
                        ensure!(block.ptr / PAGE == (block.ptr + bytes - 1) / PAGE, "{:#x}+{bytes} crosses a page", block.ptr);
                    }
                    block.release()?;
                    skew.release()
                })(),
            );
        }
    }
}

fn no_page_cross(t: &mut Tally) {
    const SIZES: [u64; 7] = [1000, 3000, 2500, 4096, 8, 4000, 1234];
    const N: usize = 28;
    for kind in KINDS {
        t.case(
            format_args!(
                "VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS, {} {N} gets up to a page between odd neighbours: none crosses a page",
                kind.name()
            ),
            (|| {
                let mut blocks: [Option<Block>; 2 * N] = [const { None }; 2 * N];
                for i in 0..N {
                    let bytes = SIZES[i % SIZES.len()];
                    blocks[2 * i] = Some(Block::get(kind, 3 + i as u64 % 5, VM_BYTE_ALIGNED)?);
                    let block = Block::get(kind, bytes, VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS)?;
                    let p = block.ptr;
                    ensure!(p.is_multiple_of(8), "{p:#x} ({bytes} bytes) is not double-word aligned");
                    ensure!(p / PAGE == (p + bytes - 1) / PAGE, "{p:#x} ({bytes} bytes) crosses a page");
                    blocks[2 * i + 1] = Some(block);
                }
                for block in blocks.into_iter().flatten() {
                    block.release()?;
                }
                Ok(())
            })(),
        );
    }
}

fn reuse_is_zeroed(t: &mut Tally) {
    for (kind, bytes, alignment) in [
        (Kind::Wired, 64, VM_DEFAULT_ALIGNMENT),
        (Kind::Unwired, PAGE, VM_PAGE_ALIGNED),
        (Kind::Wired, 2 * PAGE, VM_PAGE_ALIGNED),
    ] {
        t.case(
            format_args!("a {} get of {bytes} after a written one was released is zero-filled", kind.name()),
            (|| {
                let first = Block::get(kind, bytes, alignment)?;
                fill(first.ptr, bytes, 0xa5);
                first.release()?;
                let second = Block::get(kind, bytes, alignment)?;
                if let Some(i) = nonzero(second.ptr, bytes) {
                    return Err(Why::new(format_args!("byte {i} of {:#x} is {:#x}", second.ptr, peek(second.ptr, i))));
                }
                second.release()
            })(),
        );
    }
}

fn perhaps_gets(t: &mut Tally) {
    for kind in KINDS {
        t.case(
            format_args!(
                "vm_perhaps_get_{}_memory({TOO_MUCH:#x}, VM_PAGE_ALIGNED): ENOMEM and VM_INVALID_MEMORY_PTR",
                kind.name()
            ),
            (|| {
                let (status, ptr) = perhaps(kind, TOO_MUCH, VM_PAGE_ALIGNED);
                if status == Status::OK {
                    release(kind, ptr, TOO_MUCH);
                }
                expect("the get", status, Status::ENOMEM)?;
                ensure!(ptr == VM_INVALID_MEMORY_PTR, "the pointer is {ptr:#x}");
                Ok(())
            })(),
        );
        t.case(
            format_args!("the typed vm_perhaps_get_{}_memory returns null when memory runs out", kind.name()),
            (|| {
                let ptr = match kind {
                    Kind::Wired => dgux::vm_perhaps_get_wired_memory(TOO_MUCH as u32, VM_PAGE_ALIGNED),
                    Kind::Unwired => dgux::vm_perhaps_get_unwired_memory(TOO_MUCH as u32, VM_PAGE_ALIGNED),
                };
                if !ptr.is_null() {
                    release(kind, ptr as u64, TOO_MUCH);
                }
                ensure!(ptr.is_null(), "got {ptr:p}");
                Ok(())
            })(),
        );
        t.case(
            format_args!("after ENOMEM a small {} perhaps get succeeds", kind.name()),
            (|| {
                let block = Block::get(kind, 256, VM_DEFAULT_ALIGNMENT)?;
                check_block(kind, block.ptr, 256, VM_DEFAULT_ALIGNMENT, 9)?;
                block.release()
            })(),
        );
    }
}

fn check_access(t: &mut Tally) {
    let stack = black_box([0u8; 64]);
    let stack_va = stack.as_ptr() as u64;
    let rodata = &RODATA as *const u64 as u64;
    let text = main as *const () as u64;

    t.case(
        "vm_check_access_and_wire_memory: OK on an unwired block (READ|WRITE), and the unwire is OK",
        (|| {
            let block = Block::get(Kind::Unwired, 2 * PAGE, VM_PAGE_ALIGNED)?;
            expect("the wire", wire(block.ptr, 0, 2 * PAGE, SC_READ_ACCESS | SC_WRITE_ACCESS), Status::OK)?;
            expect("the unwire", unwire(block.ptr, 2 * PAGE), Status::OK)?;
            block.release()
        })(),
    );
    t.case(
        "vm_check_access_and_wire_memory: OK on a wired block (WRITE), and the unwire is OK",
        (|| {
            let block = Block::get(Kind::Wired, 64, VM_DEFAULT_ALIGNMENT)?;
            expect("the wire", wire(block.ptr, 0, 64, SC_WRITE_ACCESS), Status::OK)?;
            expect("the unwire", unwire(block.ptr, 64), Status::OK)?;
            block.release()
        })(),
    );
    t.case(
        "vm_check_access_and_wire_memory: 0 bytes is OK, even at an unmapped address",
        expect("the wire", wire(UNMAPPED_ARENA, 0, 0, SC_READ_ACCESS), Status::OK),
    );
    t.case(
        "vm_check_access_and_wire_memory: a user address is VM_STATUS_PROCESS_HAS_NO_VM",
        (|| {
            let block = Block::get(Kind::Unwired, PAGE, VM_PAGE_ALIGNED)?;
            expect("the wire", wire(block.ptr, 1, PAGE, SC_READ_ACCESS), Status::VM_STATUS_PROCESS_HAS_NO_VM)?;
            // Nothing was wired: the release is accepted.
            block.release()
        })(),
    );
    t.case(
        "vm_check_access_and_wire_memory: the user check comes before the 0-byte OK",
        expect("the wire", wire(UNMAPPED_ARENA, 1, 0, SC_READ_ACCESS), Status::VM_STATUS_PROCESS_HAS_NO_VM),
    );
    t.case(
        "vm_check_access_and_wire_memory: an unmapped arena page is VM_EFAULT_INVALID_ADDRESS",
        expect("the wire", wire(UNMAPPED_ARENA, 0, 16, SC_READ_ACCESS), Status::VM_EFAULT_INVALID_ADDRESS),
    );
    t.case(
        "vm_check_access_and_wire_memory: the stack guard page below the stack is VM_EFAULT_INVALID_ADDRESS",
        expect("the wire", wire(layout::stack_bottom(0) - PAGE, 0, 2 * PAGE, SC_READ_ACCESS), Status::VM_EFAULT_INVALID_ADDRESS),
    );
    t.case(
        "vm_check_access_and_wire_memory: a range wrapping past the top is VM_EFAULT_INVALID_ADDRESS",
        expect("the wire", wire(LAST_PAGE, 0, 2 * PAGE, SC_READ_ACCESS), Status::VM_EFAULT_INVALID_ADDRESS),
    );
    t.case(
        "vm_check_access_and_wire_memory: WRITE on .rodata is VM_EFAULT_ACCESS_DENIED",
        expect("the wire", wire(rodata, 0, 8, SC_WRITE_ACCESS), Status::VM_EFAULT_ACCESS_DENIED),
    );
    t.case(
        "vm_check_access_and_wire_memory: READ on .rodata is OK",
        expect("the wire", wire(rodata, 0, 8, SC_READ_ACCESS), Status::OK),
    );
    t.case(
        "vm_check_access_and_wire_memory: WRITE on .text is VM_EFAULT_ACCESS_DENIED",
        expect("the wire", wire(text, 0, 16, SC_WRITE_ACCESS), Status::VM_EFAULT_ACCESS_DENIED),
    );
    t.case(
        "vm_check_access_and_wire_memory: EXECUTE on .text is OK",
        expect("the wire", wire(text, 0, 16, SC_EXECUTE_ACCESS), Status::OK),
    );
    t.case(
        "vm_check_access_and_wire_memory: WRITE on the stack is OK",
        expect("the wire", wire(stack_va, 0, 64, SC_WRITE_ACCESS), Status::OK),
    );
    t.case(
        "vm_check_access_and_wire_memory: EXECUTE on the stack is VM_EFAULT_ACCESS_DENIED",
        expect("the wire", wire(stack_va, 0, 64, SC_EXECUTE_ACCESS), Status::VM_EFAULT_ACCESS_DENIED),
    );
    t.case(
        "vm_check_access_and_wire_memory: WRITE on the read-only boot-info page is VM_EFAULT_ACCESS_DENIED",
        expect("the wire", wire(layout::BOOT_INFO_VA, 0, 8, SC_WRITE_ACCESS), Status::VM_EFAULT_ACCESS_DENIED),
    );
    t.case(
        "vm_check_access_and_wire_memory: READ on the supervisor-only TSS is VM_EFAULT_ACCESS_DENIED",
        expect("the wire", wire(layout::TSS_VA, 0, 8, SC_READ_ACCESS), Status::VM_EFAULT_ACCESS_DENIED),
    );
    t.case(
        "vm_check_access_and_wire_memory: EXECUTE on an arena page is VM_EFAULT_ACCESS_DENIED and wires nothing",
        (|| {
            let block = Block::get(Kind::Wired, PAGE, VM_PAGE_ALIGNED)?;
            expect("the wire", wire(block.ptr, 0, PAGE, SC_EXECUTE_ACCESS), Status::VM_EFAULT_ACCESS_DENIED)?;
            // Still at its initial count: the release is accepted.
            block.release()
        })(),
    );
    // The top page of vCPU 0's stack, then the guard of vCPU 1's slot.
    let top = layout::stack_top(0) - PAGE;
    t.case(
        "vm_check_access_and_wire_memory: the top stack page and the guard above it is VM_EFAULT_INVALID_ADDRESS",
        expect("the wire", wire(top, 0, 2 * PAGE, SC_READ_ACCESS), Status::VM_EFAULT_INVALID_ADDRESS),
    );
    t.case(
        "vm_check_access_and_wire_memory: an unwired page at MAX_WIRE_COUNT is VM_EFAULT_UNWIRE_AND_VALIDATE_REGIONS",
        (|| {
            let block = Block::get(Kind::Unwired, 2 * PAGE, VM_PAGE_ALIGNED)?;
            let page = block.ptr;
            let mut wired = 0;
            while wired < MAX_WIRE_COUNT {
                if wire(page, 0, 1, SC_NO_ACCESS) != Status::OK {
                    break;
                }
                wired += 1;
            }
            let outcome = (|| {
                ensure!(wired == MAX_WIRE_COUNT, "wire {} of {MAX_WIRE_COUNT} failed", wired + 1);
                expect("one more wire", wire(page, 0, 1, SC_READ_ACCESS), Status::VM_EFAULT_UNWIRE_AND_VALIDATE_REGIONS)?;
                // Both pages: refused as a whole, so the second stays at 0.
                expect(
                    "a wire of both pages",
                    wire(page, 0, 2 * PAGE, SC_READ_ACCESS),
                    Status::VM_EFAULT_UNWIRE_AND_VALIDATE_REGIONS,
                )?;
                expect("vm_wire_memory", raw::vm_wire_memory(page, 0, 1), Status::VM_EFAULT_UNWIRE_AND_VALIDATE_REGIONS)
            })();
            let mut unwired = 0;
            while unwired < wired && unwire(page, 1) == Status::OK {
                unwired += 1;
            }
            outcome?;
            ensure!(unwired == wired, "unwire {} of {wired} failed", unwired + 1);
            block.release()
        })(),
    );
    t.skip("vm_check_access_and_wire_memory: VM_EIO", "needs --fail-pagein: the dgux-pagein guest checks it");
}

fn wire_memory(t: &mut Tally) {
    let stack = black_box([0u8; 16]);
    t.case(
        "vm_wire_memory: OK on an unwired block, and the unwire is OK",
        (|| {
            let block = Block::get(Kind::Unwired, 300, VM_DEFAULT_ALIGNMENT)?;
            expect("the wire", raw::vm_wire_memory(block.ptr, 0, 300), Status::OK)?;
            expect("the unwire", unwire(block.ptr, 300), Status::OK)?;
            block.release()
        })(),
    );
    t.case(
        "vm_wire_memory: a user address is VM_STATUS_PROCESS_HAS_NO_VM",
        expect("the wire", raw::vm_wire_memory(stack.as_ptr() as u64, 1, 16), Status::VM_STATUS_PROCESS_HAS_NO_VM),
    );
    t.case(
        "vm_wire_memory: an unmapped page is VM_EFAULT_INVALID_ADDRESS",
        expect("the wire", raw::vm_wire_memory(UNMAPPED_ARENA, 0, 1), Status::VM_EFAULT_INVALID_ADDRESS),
    );
    t.case(
        "vm_wire_memory and vm_unwire_memory: image and stack are always resident (OK, no count)",
        (|| {
            let image = &RODATA as *const u64 as u64;
            expect("wire the stack", raw::vm_wire_memory(stack.as_ptr() as u64, 0, 16), Status::OK)?;
            expect("unwire the stack", unwire(stack.as_ptr() as u64, 16), Status::OK)?;
            expect("unwire the stack again", unwire(stack.as_ptr() as u64, 16), Status::OK)?;
            expect("unwire the image, never wired", unwire(image, 8), Status::OK)
        })(),
    );
    t.case(
        "the typed wrappers: vm_wire_memory and vm_check_access_and_wire_memory OK, vm_unwire_memory twice",
        (|| {
            let block = Block::get(Kind::Unwired, PAGE, VM_PAGE_ALIGNED)?;
            expect("vm_wire_memory", dgux::vm_wire_memory(block.mut_ptr(), false, 10), Status::OK)?;
            expect(
                "vm_check_access_and_wire_memory",
                dgux::vm_check_access_and_wire_memory(block.mut_ptr(), false, 10, SC_READ_ACCESS),
                Status::OK,
            )?;
            dgux::vm_unwire_memory(block.mut_ptr(), false, 10);
            dgux::vm_unwire_memory(block.mut_ptr(), false, 10);
            block.release()
        })(),
    );
}

fn rounding_and_counts(t: &mut Tally) {
    t.case(
        "rounding: a 2-byte wire across a page boundary wires both pages",
        (|| {
            let block = Block::get(Kind::Unwired, 2 * PAGE, VM_PAGE_ALIGNED)?;
            expect("the wire", wire(block.ptr + PAGE - 1, 0, 2, SC_READ_ACCESS), Status::OK)?;
            // Each page is above its floor, so each 1-byte unwire is accepted.
            expect("unwire page 0", unwire(block.page(0) + 17, 1), Status::OK)?;
            expect("unwire page 1", unwire(block.page(1) + PAGE - 1, 1), Status::OK)?;
            block.release()
        })(),
    );
    t.case(
        "rounding: an unwire of [start+10, end-2) rounds out to both pages",
        (|| {
            let block = Block::get(Kind::Unwired, 2 * PAGE, VM_PAGE_ALIGNED)?;
            expect("the wire", wire(block.ptr, 0, 2 * PAGE, SC_READ_ACCESS), Status::OK)?;
            expect("the unwire", unwire(block.ptr + 10, 2 * PAGE - 12), Status::OK)?;
            // Both back at 0, or this release would be refused.
            block.release()
        })(),
    );
    t.case(
        "rounding: a 1-byte wire at a page's last byte wires only that page",
        (|| {
            let block = Block::get(Kind::Unwired, 2 * PAGE, VM_PAGE_ALIGNED)?;
            expect("the wire", wire(block.ptr + PAGE - 1, 0, 1, SC_READ_ACCESS), Status::OK)?;
            expect("unwire page 0", unwire(block.ptr, PAGE), Status::OK)?;
            block.release()
        })(),
    );
    t.case(
        "wire counts: three wires of a wired block need three unwires, then the release is OK",
        (|| {
            let block = Block::get(Kind::Wired, PAGE, VM_PAGE_ALIGNED)?;
            for n in 1..=3 {
                expect("a wire", wire(block.ptr, 0, PAGE, SC_READ_ACCESS), Status::OK)
                    .map_err(|e| Why::new(format_args!("wire {n}: {}", e.as_str())))?;
            }
            for n in 1..=3 {
                expect("an unwire", unwire(block.ptr, PAGE), Status::OK)
                    .map_err(|e| Why::new(format_args!("unwire {n}: {}", e.as_str())))?;
            }
            block.release()
        })(),
    );
    t.case(
        "wire counts: small blocks sharing a page share its count",
        (|| {
            let a = Block::get(Kind::Unwired, 64, VM_DEFAULT_ALIGNMENT)?;
            let b = Block::get(Kind::Unwired, 64, VM_DEFAULT_ALIGNMENT)?;
            ensure!(
                a.ptr / PAGE == b.ptr / PAGE || b.ptr % PAGE < 64,
                "the two blocks do not share a page: {:#x} {:#x}",
                a.ptr,
                b.ptr
            );
            expect("wire a", wire(a.ptr, 0, 64, SC_READ_ACCESS), Status::OK)?;
            expect("wire b", wire(b.ptr, 0, 64, SC_READ_ACCESS), Status::OK)?;
            if a.ptr / PAGE == b.ptr / PAGE {
                // Two wires of one page: unwiring through a twice is fine.
                expect("unwire through a", unwire(a.ptr, 64), Status::OK)?;
                expect("unwire through a again", unwire(a.ptr, 64), Status::OK)?;
            } else {
                expect("unwire a", unwire(a.ptr, 64), Status::OK)?;
                expect("unwire b", unwire(b.ptr, 64), Status::OK)?;
            }
            b.release()?;
            a.release()
        })(),
    );
}

fn marks(t: &mut Tally) {
    let modes: [(&str, u16); 4] = [
        ("NO_ACCESS", SC_NO_ACCESS),
        ("READ", SC_READ_ACCESS),
        ("WRITE", SC_WRITE_ACCESS),
        ("READ|WRITE|EXECUTE", SC_READ_ACCESS | SC_WRITE_ACCESS | SC_EXECUTE_ACCESS),
    ];
    for (name, mode) in modes {
        t.case(
            format_args!("vm_mark_and_unwire_memory({name}) after a wire: OK"),
            (|| {
                let block = Block::get(Kind::Unwired, PAGE, VM_PAGE_ALIGNED)?;
                expect("the wire", wire(block.ptr, 0, PAGE, SC_READ_ACCESS), Status::OK)?;
                expect("the mark and unwire", raw::vm_mark_and_unwire_memory(block.ptr, 0, PAGE, u64::from(mode)), Status::OK)?;
                block.release()
            })(),
        );
    }
    t.case(
        "vm_mark_mod_and_ref_and_unwire_memory after a wire: OK",
        (|| {
            let block = Block::get(Kind::Wired, 2 * PAGE, VM_PAGE_ALIGNED)?;
            expect("the wire", wire(block.ptr, 0, 2 * PAGE, SC_READ_ACCESS), Status::OK)?;
            expect(
                "the mark and unwire",
                raw::vm_mark_mod_and_ref_and_unwire_memory(block.ptr + 5, 0, 2 * PAGE - 10),
                Status::OK,
            )?;
            block.release()
        })(),
    );
    t.case(
        "vm_mark_ref_and_unwire_memory after a wire: OK",
        (|| {
            let block = Block::get(Kind::Unwired, 100, VM_DEFAULT_ALIGNMENT)?;
            expect("the wire", wire(block.ptr, 0, 100, SC_READ_ACCESS), Status::OK)?;
            expect("the mark and unwire", raw::vm_mark_ref_and_unwire_memory(block.ptr, 0, 100), Status::OK)?;
            block.release()
        })(),
    );
    t.case(
        "the typed mark routines: wire three times, mark three ways, release",
        (|| {
            let block = Block::get(Kind::Unwired, PAGE, VM_PAGE_ALIGNED)?;
            for _ in 0..3 {
                expect("the wire", wire(block.ptr, 0, PAGE, SC_WRITE_ACCESS), Status::OK)?;
            }
            dgux::vm_mark_and_unwire_memory(block.mut_ptr(), false, PAGE as u32, SC_WRITE_ACCESS);
            dgux::vm_mark_mod_and_ref_and_unwire_memory(block.mut_ptr(), false, PAGE as u32);
            dgux::vm_mark_ref_and_unwire_memory(block.mut_ptr(), false, PAGE as u32);
            block.release()
        })(),
    );
}

fn physical(t: &mut Tally, contiguous: bool) {
    const PAGES: u64 = 4;
    t.case(
        format_args!("vm_get_physical_byte_address: each page of a {PAGES}-page wired block is a distinct free-RAM frame"),
        (|| {
            let block = Block::get(Kind::Wired, PAGES * PAGE, VM_PAGE_ALIGNED)?;
            let mut frames = [0u64; PAGES as usize];
            for i in 0..PAGES {
                let f = frame(block.page(i))?;
                ensure!(f % PAGE == 0, "page {i} is at {f:#x}, not page aligned");
                ensure!((layout::FREE_RAM_GPA..RAM_END).contains(&f), "page {i} is at {f:#x}, outside free RAM");
                ensure!(!frames[..i as usize].contains(&f), "page {i} shares frame {f:#x}");
                frames[i as usize] = f;
            }
            block.release()
        })(),
    );
    t.case(
        "vm_get_physical_byte_address: the offset within the page is kept",
        (|| {
            let block = Block::get(Kind::Unwired, 2 * PAGE, VM_PAGE_ALIGNED)?;
            for offset in [0, 1, 123, PAGE - 1, PAGE + 7] {
                let base = frame(block.ptr + offset - offset % PAGE)?;
                let f = frame(block.ptr + offset)?;
                ensure!(f == base + offset % PAGE, "offset {offset}: {f:#x} for page frame {base:#x}");
            }
            block.release()
        })(),
    );
    let name = if contiguous {
        "with --contiguous-frames the pages of a block are contiguous"
    } else {
        "the pages of a block are not physically contiguous"
    };
    t.case(
        format_args!("vm_get_physical_byte_address: {name}"),
        (|| {
            for kind in KINDS {
                let block = Block::get(kind, PAGES * PAGE, VM_PAGE_ALIGNED)?;
                for i in 0..PAGES - 1 {
                    let (a, b) = (frame(block.page(i))?, frame(block.page(i + 1))?);
                    ensure!((b == a + PAGE) == contiguous, "{} pages {i} and {} are at {a:#x} and {b:#x}", kind.name(), i + 1);
                }
                block.release()?;
            }
            Ok(())
        })(),
    );
    t.case(
        "vm_get_physical_byte_address: the value in rdx is what was stored",
        (|| {
            let block = Block::get(Kind::Wired, 16, VM_DEFAULT_ALIGNMENT)?;
            let (status, stored, value) = phys(block.ptr, 0);
            expect("the call", status, Status::OK)?;
            ensure!(stored == value, "stored {stored:#x}, value {value:#x}");
            block.release()
        })(),
    );
    t.case(
        "vm_get_physical_byte_address: an image address is its load address",
        (|| {
            let va = &RODATA as *const u64 as u64;
            let f = frame(va)?;
            ensure!(f == va - layout::IMAGE_VA_OFFSET, "{va:#x} is at {f:#x}");
            Ok(())
        })(),
    );
    t.case(
        "vm_get_physical_byte_address: the boot-info page is BOOT_INFO_GPA",
        (|| {
            let f = frame(layout::BOOT_INFO_VA + 8)?;
            ensure!(f == layout::BOOT_INFO_GPA + 8, "{f:#x}");
            Ok(())
        })(),
    );
    t.case(
        "vm_get_physical_byte_address: a stack address is in vCPU 0's stack frames",
        (|| {
            let local = black_box(7u64);
            let va = &local as *const u64 as u64;
            let f = frame(va)?;
            ensure!(f == layout::stack_gpa(0) + (va - layout::stack_bottom(0)), "{va:#x} is at {f:#x}");
            Ok(())
        })(),
    );
    t.case(
        "vm_get_physical_byte_address: an unmapped address stores VM_INVALID_PHYSICAL_ADDRESS (OK)",
        (|| {
            let (status, stored, _) = phys(UNMAPPED_ARENA, 0);
            expect("the call", status, Status::OK)?;
            ensure!(stored == VM_INVALID_PHYSICAL_ADDRESS, "stored {stored:#x}");
            let typed = dgux::physical_address_of(UNMAPPED_ARENA as *const u8);
            ensure!(typed.is_none(), "physical_address_of gave {typed:x?}");
            Ok(())
        })(),
    );
    t.case(
        "vm_get_physical_byte_address: a user address stores VM_INVALID_PHYSICAL_ADDRESS (OK)",
        (|| {
            let block = Block::get(Kind::Wired, 16, VM_DEFAULT_ALIGNMENT)?;
            let (status, stored, _) = phys(block.ptr, 1);
            expect("the call", status, Status::OK)?;
            ensure!(stored == VM_INVALID_PHYSICAL_ADDRESS, "stored {stored:#x}");
            block.release()
        })(),
    );
    t.case(
        "vm_get_physical_byte_address: an unmapped or read-only result pointer is EFAULT, nothing stored",
        (|| {
            let block = Block::get(Kind::Wired, 16, VM_DEFAULT_ALIGNMENT)?;
            let rodata = &RODATA as *const u64 as u64;
            for target in [0, UNMAPPED_ARENA, rodata, layout::BOOT_INFO_VA] {
                // SAFETY: none of these is writable, so the VMM must not store.
                let (status, _) = unsafe { raw::vm_get_physical_byte_address(block.ptr, 0, target) };
                expect("the call", status, Status::EFAULT)
                    .map_err(|e| Why::new(format_args!("pointer {target:#x}: {}", e.as_str())))?;
            }
            // SAFETY: RODATA is a live static; a volatile read sees any store.
            let value = unsafe { read_volatile(&RODATA) };
            ensure!(value == 0x0123_4567_89ab_cdef, "RODATA became {value:#x}");
            block.release()
        })(),
    );
    t.case(
        "vm_get_physical_byte_address: the result can go into arena memory",
        (|| {
            let block = Block::get(Kind::Unwired, 64, VM_DEFAULT_ALIGNMENT)?;
            let target = Block::get(Kind::Wired, 8, VM_DEFAULT_ALIGNMENT)?;
            let f = frame(block.ptr)?;
            // SAFETY: `target` is a live, writable 8-byte block of ours.
            unsafe { dgux::vm_get_physical_byte_address(block.mut_ptr(), false, target.ptr as *mut u64) };
            // SAFETY: as above; it is 8-byte aligned.
            let stored = unsafe { read_volatile(target.ptr as *const u64) };
            ensure!(stored == f, "stored {stored:#x}, expected {f:#x}");
            target.release()?;
            block.release()
        })(),
    );
}

/// The fixture of the map cases: two two-page wired blocks with patterns, a two-page
/// unwired window with a pattern, and their frames. Each block is two
/// pages, so that the frames after `f1` and `f2` are never page tables, which the VMM
/// refuses to map: with --contiguous-frames it is the block's own second
/// frame, otherwise a free frame between scattered ones.
struct MapFixture {
    w1: Block,
    w2: Block,
    window: Block,
    f1: u64,
    f2: u64,
    own: u64,
}

impl MapFixture {
    fn new() -> Result<MapFixture, Why> {
        let w1 = Block::get(Kind::Wired, 2 * PAGE, VM_PAGE_ALIGNED)?;
        let w2 = Block::get(Kind::Wired, 2 * PAGE, VM_PAGE_ALIGNED)?;
        let window = Block::get(Kind::Unwired, 2 * PAGE, VM_PAGE_ALIGNED)?;
        fill(w1.ptr, PAGE, 0x11);
        fill(w2.ptr, PAGE, 0x22);
        fill(window.ptr, 2 * PAGE, 0x33);
        let (f1, f2, own) = (frame(w1.ptr)?, frame(w2.ptr)?, frame(window.ptr)?);
        Ok(MapFixture { w1, w2, window, f1, f2, own })
    }

    /// Nothing changed: the window is still its own, holding its pattern.
    fn unchanged(&self) -> Outcome {
        let now = frame(self.window.ptr)?;
        ensure!(now == self.own, "the window moved from frame {:#x} to {now:#x}", self.own);
        ensure!(holds(self.window.ptr, 2 * PAGE, 0x33).is_none(), "the window's contents changed");
        Ok(())
    }

    fn release(self) -> Outcome {
        let MapFixture { w1, w2, window, .. } = self;
        window.release()?;
        w2.release()?;
        w1.release()
    }
}

fn map_aborts(t: &mut Tally) {
    let fixture = match MapFixture::new() {
        Ok(f) => f,
        Err(e) => return t.case("vm_map_physical_memory: the fixture", Err(e)),
    };
    let (win, f1) = (fixture.window.ptr, fixture.f1);
    let rodata_page = (&RODATA as *const u64 as u64) & !(PAGE - 1);
    let stack = black_box([0u8; 16]);
    let stack_page = (stack.as_ptr() as u64) & !(PAGE - 1);
    let cases: [(&str, [u64; 6], Status); 20] = [
        (
            "MAP_PRIVATE is VM_EINVAL_MMAP_UNSUPPORTED",
            [win, f1, PAGE, RW, MAP_PRIVATE as u64, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_UNSUPPORTED,
        ),
        ("sharing 0 is VM_EINVAL_MMAP_UNSUPPORTED", [win, f1, PAGE, RW, 0, KERNEL_MAP], Status::VM_EINVAL_MMAP_UNSUPPORTED),
        (
            "MAP_PRIVATE is checked before the byte count",
            [win + 8, f1, 100, RW, MAP_PRIVATE as u64, 0],
            Status::VM_EINVAL_MMAP_UNSUPPORTED,
        ),
        (
            "0 bytes is VM_EINVAL_MMAP_BYTES_NOT_MULTIPLE",
            [win, f1, 0, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_BYTES_NOT_MULTIPLE,
        ),
        (
            "100 bytes is VM_EINVAL_MMAP_BYTES_NOT_MULTIPLE",
            [win, f1, 100, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_BYTES_NOT_MULTIPLE,
        ),
        (
            "the byte count is checked before the alignment",
            [win + 8, f1 + 8, PAGE + 1, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_BYTES_NOT_MULTIPLE,
        ),
        (
            "an unaligned logical address is VM_EINVAL_MMAP_BAD_ADDR_BOUNDARY",
            [win + 8, f1, PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_BAD_ADDR_BOUNDARY,
        ),
        (
            "an unaligned physical address is VM_EINVAL_MMAP_BAD_ADDR_BOUNDARY",
            [win, f1 + 8, PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_BAD_ADDR_BOUNDARY,
        ),
        (
            "a user address (control bit 0 clear) is VM_EINVAL_MMAP_SPACE_UNALLOCATED",
            [win, f1, PAGE, RW, SHARED, 0],
            Status::VM_EINVAL_MMAP_SPACE_UNALLOCATED,
        ),
        (
            "an unmapped logical address is VM_EINVAL_MMAP_SPACE_UNALLOCATED",
            [UNMAPPED_ARENA, f1, PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_SPACE_UNALLOCATED,
        ),
        (
            "a wired block is VM_EINVAL_MMAP_ADDRESS_NOT_DATA",
            [fixture.w2.ptr, f1, PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_ADDRESS_NOT_DATA,
        ),
        (
            "an image page is VM_EINVAL_MMAP_ADDRESS_NOT_DATA",
            [rodata_page, f1, PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_ADDRESS_NOT_DATA,
        ),
        (
            "a stack page is VM_EINVAL_MMAP_ADDRESS_NOT_DATA",
            [stack_page, f1, PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_ADDRESS_NOT_DATA,
        ),
        (
            "three pages over a two-page block is VM_EINVAL_MMAP_BAD_REGION",
            [win, f1, 3 * PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_BAD_REGION,
        ),
        (
            "a frame below FREE_RAM_GPA (the image) is VM_EINVAL_MMAP_BAD_REGION",
            [win, layout::IMAGE_GPA, PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_BAD_REGION,
        ),
        ("physical 0 is VM_EINVAL_MMAP_BAD_REGION", [win, 0, PAGE, RW, SHARED, KERNEL_MAP], Status::VM_EINVAL_MMAP_BAD_REGION),
        (
            "a frame past the end of RAM is VM_EINVAL_MMAP_BAD_REGION",
            [win, RAM_END, PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_BAD_REGION,
        ),
        (
            "a range running past the end of RAM is VM_EINVAL_MMAP_BAD_REGION",
            [win, RAM_END - PAGE, 2 * PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_BAD_REGION,
        ),
        (
            "the device window past the DMA engine's registers is VM_EINVAL_MMAP_BAD_REGION",
            [win, layout::DEVICE_WINDOW_GPA + kmemvisor_abi::dma::DMA_ENGINE_SIZE, PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_BAD_REGION,
        ),
        (
            "a range wrapping the physical space is VM_EINVAL_MMAP_BAD_REGION",
            [win, LAST_PAGE, 2 * PAGE, RW, SHARED, KERNEL_MAP],
            Status::VM_EINVAL_MMAP_BAD_REGION,
        ),
    ];
    for (name, a, want) in cases {
        t.case(
            format_args!("vm_map_physical_memory: {name}, nothing changes"),
            (|| {
                expect("the map", map(a[0], a[1], a[2], a[3], a[4], a[5]), want)?;
                fixture.unchanged()
            })(),
        );
    }
    t.case(
        "vm_map_physical_memory: a page already mapped is VM_EINVAL_MMAP_ALREADY_MAPPED, nothing changes",
        (|| {
            expect("the first map", map(win, f1, PAGE, RW, SHARED, KERNEL_MAP), Status::OK)?;
            let outcome = (|| {
                expect(
                    "the same page again",
                    map(win, fixture.f2, PAGE, RW, SHARED, KERNEL_MAP),
                    Status::VM_EINVAL_MMAP_ALREADY_MAPPED,
                )?;
                expect(
                    "both pages",
                    map(win, fixture.f2, 2 * PAGE, RW, SHARED, KERNEL_MAP),
                    Status::VM_EINVAL_MMAP_ALREADY_MAPPED,
                )?;
                let now = frame(win)?;
                ensure!(now == f1, "page 0 moved to {now:#x}");
                let second = frame(win + PAGE)?;
                ensure!(second != fixture.f2 + PAGE, "page 1 was mapped");
                ensure!(holds_at(win + PAGE, PAGE, 0x33, PAGE), "page 1 changed");
                Ok(())
            })();
            let undo = expect("the unmap", unmap(win, PAGE, KERNEL_UNMAP), Status::OK);
            outcome?;
            undo
        })(),
    );
    if let Err(e) = fixture.release() {
        t.case("vm_map_physical_memory: the fixture's release", Err(e));
    }
}

/// Whether `len` bytes at `base` hold the pattern `seed` as written from
/// `base - offset`.
fn holds_at(base: u64, len: u64, seed: u8, offset: u64) -> bool {
    (0..len).all(|i| peek(base, i) == pattern(seed, offset + i))
}

fn map_ok(t: &mut Tally) {
    let fixture = match MapFixture::new() {
        Ok(f) => f,
        Err(e) => return t.case("vm_map_physical_memory: the fixture", Err(e)),
    };
    let (win, f1, f2) = (fixture.window.ptr, fixture.f1, fixture.f2);
    t.case(
        "vm_map_physical_memory: OK; the page translates to the frame and shows its data",
        (|| {
            expect("the map", map(win, f1, PAGE, RW, SHARED, KERNEL_MAP), Status::OK)?;
            let now = frame(win)?;
            ensure!(now == f1, "the window is at {now:#x}, not {f1:#x}");
            ensure!(holds(win, PAGE, 0x11).is_none(), "the window does not show the wired page's data");
            Ok(())
        })(),
    );
    t.case(
        "vm_map_physical_memory: writes through the window land in the wired block",
        (|| {
            fill(win, 512, 0x44);
            ensure!(holds(fixture.w1.ptr, 512, 0x44).is_none(), "the wired block does not see the writes");
            ensure!(holds_at(fixture.w1.ptr + 512, PAGE - 512, 0x11, 512), "the rest of the wired block changed");
            Ok(())
        })(),
    );
    t.case(
        "vm_map_physical_memory: the second page of the window is still its own",
        (|| {
            let second = frame(win + PAGE)?;
            ensure!(second != f1 + PAGE, "page 1 moved");
            ensure!(holds_at(win + PAGE, PAGE, 0x33, PAGE), "page 1 changed");
            Ok(())
        })(),
    );
    t.case(
        "vm_unmap_physical_memory: OK; the page is the block's own again, zero-filled",
        (|| {
            expect("the unmap", unmap(win, PAGE, KERNEL_UNMAP), Status::OK)?;
            let now = frame(win)?;
            ensure!(now != f1, "the window still translates to {f1:#x}");
            if let Some(i) = nonzero(win, PAGE) {
                return Err(Why::new(format_args!("byte {i} is {:#x}", peek(win, i))));
            }
            ensure!(holds(fixture.w1.ptr, 512, 0x44).is_none(), "the wired block lost what was written through the window");
            Ok(())
        })(),
    );
    t.case(
        "vm_map_physical_memory: VM_MMAP_WRITE_THROUGH_MASK maps too, and data flows",
        (|| {
            let control = KERNEL_MAP | u64::from(VM_MMAP_WRITE_THROUGH_MASK);
            expect("the map", map(win + PAGE, f2, PAGE, RW, SHARED, control), Status::OK)?;
            let outcome = (|| {
                ensure!(frame(win + PAGE)? == f2, "page 1 does not translate to {f2:#x}");
                ensure!(holds(win + PAGE, PAGE, 0x22).is_none(), "the window does not show the data");
                fill(win + PAGE, 64, 0x55);
                ensure!(holds(fixture.w2.ptr, 64, 0x55).is_none(), "the wired block does not see the writes");
                Ok(())
            })();
            let undo = expect("the unmap", unmap(win + PAGE, PAGE, KERNEL_UNMAP), Status::OK);
            outcome?;
            undo
        })(),
    );
    t.case(
        "vm_map_physical_memory: a read-only mapping (PROT_READ) shows the data",
        (|| {
            expect("the map", map(win, f2, PAGE, u64::from(PROT_READ), SHARED, KERNEL_MAP), Status::OK)?;
            let seen = holds(win, 64, 0x55).is_none();
            let undo = expect("the unmap", unmap(win, PAGE, KERNEL_UNMAP), Status::OK);
            ensure!(seen, "the window does not show the data");
            undo
        })(),
    );
    t.case(
        "vm_map_physical_memory: two pages, then a partial unmap of the second",
        (|| {
            // Only read through the second page: the frame after f1 is not ours.
            expect("the map", map(win, f1, 2 * PAGE, u64::from(PROT_READ), SHARED, KERNEL_MAP), Status::OK)?;
            let outcome = (|| {
                ensure!(
                    frame(win)? == f1 && frame(win + PAGE)? == f1 + PAGE,
                    "the window does not translate to {f1:#x} and the frame after"
                );
                expect("unmap page 1", unmap(win + PAGE, PAGE, KERNEL_UNMAP), Status::OK)?;
                ensure!(frame(win)? == f1, "page 0 lost its mapping");
                ensure!(frame(win + PAGE)? != f1 + PAGE, "page 1 is still mapped");
                ensure!(nonzero(win + PAGE, PAGE).is_none(), "page 1 is not zero-filled");
                Ok(())
            })();
            let undo = expect("unmap page 0", unmap(win, PAGE, KERNEL_UNMAP), Status::OK);
            outcome?;
            undo
        })(),
    );
    t.case(
        "vm_unmap_physical_memory: 0 bytes is OK and changes nothing",
        expect("the unmap", unmap(win, 0, KERNEL_UNMAP), Status::OK),
    );
    if let Err(e) = fixture.release() {
        t.case("vm_map_physical_memory: the fixture's release", Err(e));
    }
}

fn unmap_aborts(t: &mut Tally) {
    let fixture = match MapFixture::new() {
        Ok(f) => f,
        Err(e) => return t.case("vm_unmap_physical_memory: the fixture", Err(e)),
    };
    let (win, f1) = (fixture.window.ptr, fixture.f1);
    let image = (&RODATA as *const u64 as u64) & !(PAGE - 1);
    // Page 0 of the window is mapped during these cases.
    if let Err(e) = expect("the map", map(win, f1, PAGE, RW, SHARED, KERNEL_MAP), Status::OK) {
        t.case("vm_unmap_physical_memory: the fixture's map", Err(e));
        let _ = fixture.release();
        return;
    }
    let cases: [(&str, [u64; 3], Status); 10] = [
        (
            "100 bytes is VM_EINVAL_MUNMAP_BYTES_NOT_MULTIPLE",
            [win, 100, KERNEL_UNMAP],
            Status::VM_EINVAL_MUNMAP_BYTES_NOT_MULTIPLE,
        ),
        (
            "the byte count is checked before the alignment",
            [win + 8, PAGE + 1, KERNEL_UNMAP],
            Status::VM_EINVAL_MUNMAP_BYTES_NOT_MULTIPLE,
        ),
        (
            "an unaligned address is VM_EINVAL_MUNMAP_BAD_ADDR_BOUNDARY",
            [win + 8, PAGE, KERNEL_UNMAP],
            Status::VM_EINVAL_MUNMAP_BAD_ADDR_BOUNDARY,
        ),
        (
            "a user address (control bit 0 clear) is VM_EINVAL_MUNMAP_BAD_REGION",
            [win, PAGE, 0],
            Status::VM_EINVAL_MUNMAP_BAD_REGION,
        ),
        (
            "a wired block is VM_EINVAL_MUNMAP_BAD_REGION",
            [fixture.w1.ptr, PAGE, KERNEL_UNMAP],
            Status::VM_EINVAL_MUNMAP_BAD_REGION,
        ),
        ("an image page is VM_EINVAL_MUNMAP_BAD_REGION", [image, PAGE, KERNEL_UNMAP], Status::VM_EINVAL_MUNMAP_BAD_REGION),
        (
            "three pages of a two-page block is VM_EINVAL_MUNMAP_BAD_REGION",
            [win, 3 * PAGE, KERNEL_UNMAP],
            Status::VM_EINVAL_MUNMAP_BAD_REGION,
        ),
        (
            "a wrapping range is VM_EINVAL_MUNMAP_BAD_REGION",
            [LAST_PAGE, 2 * PAGE, KERNEL_UNMAP],
            Status::VM_EINVAL_MUNMAP_BAD_REGION,
        ),
        (
            "a page never mapped is VM_EINVAL_MUNMAP_DATA_NOT_MAPPED",
            [win + PAGE, PAGE, KERNEL_UNMAP],
            Status::VM_EINVAL_MUNMAP_DATA_NOT_MAPPED,
        ),
        (
            "two pages, one not mapped, is VM_EINVAL_MUNMAP_DATA_NOT_MAPPED",
            [win, 2 * PAGE, KERNEL_UNMAP],
            Status::VM_EINVAL_MUNMAP_DATA_NOT_MAPPED,
        ),
    ];
    for (name, a, want) in cases {
        t.case(
            format_args!("vm_unmap_physical_memory: {name}, nothing changes"),
            (|| {
                expect("the unmap", unmap(a[0], a[1], a[2]), want)?;
                let now = frame(win)?;
                ensure!(now == f1, "page 0 is at {now:#x}, no longer at {f1:#x}");
                ensure!(holds_at(win + PAGE, PAGE, 0x33, PAGE), "page 1 changed");
                Ok(())
            })(),
        );
    }
    t.case(
        "vm_unmap_physical_memory: OK, then the same page again is VM_EINVAL_MUNMAP_DATA_NOT_MAPPED",
        (|| {
            expect("the unmap", unmap(win, PAGE, KERNEL_UNMAP), Status::OK)?;
            expect("the second unmap", unmap(win, PAGE, KERNEL_UNMAP), Status::VM_EINVAL_MUNMAP_DATA_NOT_MAPPED)
        })(),
    );
    t.case(
        "the typed map and unmap: OK both ways",
        (|| {
            // SAFETY: the window is ours and nothing holds references into it.
            let status = unsafe {
                dgux::vm_map_physical_memory(
                    fixture.window.mut_ptr(),
                    f1,
                    PAGE as u32,
                    PROT_READ | PROT_WRITE,
                    MAP_SHARED,
                    VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK,
                )
            };
            expect("the map", status, Status::OK)?;
            // SAFETY: as above.
            let status = unsafe {
                dgux::vm_unmap_physical_memory(fixture.window.mut_ptr(), PAGE as u32, VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK)
            };
            expect("the unmap", status, Status::OK)
        })(),
    );
    if let Err(e) = fixture.release() {
        t.case("vm_unmap_physical_memory: the fixture's release", Err(e));
    }
}

fn typed_gets(t: &mut Tally) {
    t.case(
        "the typed gets and releases: four kinds of get, each released",
        (|| {
            let a = dgux::vm_get_wired_memory(48, VM_DEFAULT_ALIGNMENT);
            let b = dgux::vm_get_unwired_memory(48, VM_DEFAULT_ALIGNMENT);
            let c = dgux::vm_perhaps_get_wired_memory(48, VM_DEFAULT_ALIGNMENT);
            let d = dgux::vm_perhaps_get_unwired_memory(48, VM_DEFAULT_ALIGNMENT);
            let all_live = ![a, b, c, d].iter().any(|p| p.is_null());
            // SAFETY: none of them is used after this.
            unsafe {
                for (p, wired) in [(a, true), (b, false), (c, true), (d, false)] {
                    if !p.is_null() {
                        if wired {
                            dgux::vm_release_wired_memory(p, 48);
                        } else {
                            dgux::vm_release_unwired_memory(p, 48);
                        }
                    }
                }
            }
            ensure!(all_live, "a get returned null: {a:p} {b:p} {c:p} {d:p}");
            ensure!(
                a as u64 >= layout::WIRED_ARENA_VA && (b as u64) >= layout::UNWIRED_ARENA_VA,
                "{a:p} {b:p} outside their arenas"
            );
            Ok(())
        })(),
    );
}

fn main() -> u32 {
    let contiguous = args().any(|a| a == "contiguous");
    let mut t = Tally::default();
    demand_gets(&mut t);
    alignments(&mut t);
    no_page_cross(&mut t);
    reuse_is_zeroed(&mut t);
    perhaps_gets(&mut t);
    typed_gets(&mut t);
    check_access(&mut t);
    wire_memory(&mut t);
    rounding_and_counts(&mut t);
    marks(&mut t);
    physical(&mut t, contiguous);
    map_aborts(&mut t);
    map_ok(&mut t);
    unmap_aborts(&mut t);
    t.finish()
}
