//! A hostile driver that tries to get past the frame ledger, one attempt per
//! mode (the first guest argument). Each attempt is refused; the guest
//! prints what it was answered and exits 0 if the refusal was exactly the
//! one expected (violations, if any, make the exit status 65).
//!
//! - `table-alias`: maps the free frames the allocator hands out next with
//!   `vm_map_physical_memory`, then creates processes, and looks through
//!   the aliases for a process's top-level page table. None may appear.
//! - `hide-window`: hides the DMA engine's register window with `xmemdma`
//!   (not RAM: `EINVAL` and a violation), then reads a register (no stall).
//! - `remap-unhide`: hides a page, remaps its address to another frame with
//!   `vm_map_physical_memory`, unhides: the first frame comes back, so a
//!   later touch does not stall.
//! - `two-attachments`: A1 hides a page, the address is remapped, A2 hides
//!   it (now the second frame, pinned through its own address: pins follow
//!   the frame), A1 unhides: the second frame stays hidden,
//!   and the DMA engine writes it without a violation.
//! - `alias-free`: hides a wired page through an alias; releasing the wired
//!   memory is `EBUSY` with a violation while the frame is hidden.
//! - `supervisor`: attaches and pins the CPU tables (supervisor-only pages):
//!   `EFAULT` and `EINVAL`, no violation.
//! - `dma-tables`: drives the DMA engine into the kernel's top-level page
//!   table, the GDT, the image and a vCPU page, and out of the IDT: each
//!   transfer fails with `ERROR_FORBIDDEN`, with a violation, and writes
//!   nothing (the guest keeps running on intact tables).
#![no_std]
#![no_main]

use kmemvisor_guest::abi::dma::{DIR_FROM_DEVICE, DIR_MEMORY_TO_MEMORY, ERROR_FORBIDDEN};
use kmemvisor_guest::abi::{Status, layout};
use kmemvisor_guest::dgux::{VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK, VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK, VM_PAGE_ALIGNED, raw};
use kmemvisor_guest::dma::DmaEngine;
use kmemvisor_guest::process::process_create;
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, XMEM_HIDE, XMEM_UNHIDE, Xmem};
use kmemvisor_guest::{aix, args, println};

kmemvisor_firmware::entry!(main);

const PAGE: u64 = 4096;
/// `PROT_READ | PROT_WRITE` and `MAP_SHARED` of `vm_map_physical_memory`.
const READ_WRITE: u64 = 3;
const SHARED: u64 = 1;

fn main() -> u32 {
    let mode = args::args().next().unwrap_or("");
    let ok = match mode {
        "table-alias" => table_alias(),
        "hide-window" => hide_window(),
        "remap-unhide" => remap_unhide(),
        "two-attachments" => two_attachments(),
        "alias-free" => alias_free(),
        "supervisor" => supervisor(),
        "dma-tables" => dma_tables(),
        _ => {
            println!(
                "isolation: which attempt? table-alias, hide-window, remap-unhide, two-attachments, alias-free, supervisor, dma-tables"
            );
            return 2;
        }
    };
    if ok {
        println!("isolation {mode}: refused as expected");
        0
    } else {
        println!("isolation {mode}: NOT refused as expected");
        1
    }
}

fn status<T>(result: Result<T, Status>) -> Status {
    result.err().unwrap_or(Status::OK)
}

/// A fresh page of `wired` or unwired kernel memory.
fn page(wired: bool) -> u64 {
    let (status, va) = if wired {
        raw::vm_get_wired_memory(PAGE, u64::from(VM_PAGE_ALIGNED))
    } else {
        raw::vm_get_unwired_memory(PAGE, u64::from(VM_PAGE_ALIGNED))
    };
    if status != Status::OK {
        println!("isolation: a get failed: {}", status.name());
    }
    va
}

/// The frame under kernel address `va`.
fn frame(va: u64) -> u64 {
    let mut physical = 0u64;
    // SAFETY: `physical` is 8 writable bytes of this stack frame.
    unsafe { raw::vm_get_physical_byte_address(va, 0, &raw mut physical as u64) };
    physical
}

fn map(va: u64, physical: u64, bytes: u64) -> Status {
    let control = u64::from(VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK);
    // SAFETY: `va` is unwired memory of ours that nothing else references.
    unsafe { raw::vm_map_physical_memory(va, physical, bytes, READ_WRITE, SHARED, control) }
}

fn unmap(va: u64, bytes: u64) -> Status {
    // SAFETY: nothing relies on what the mapping showed.
    unsafe { raw::vm_unmap_physical_memory(va, bytes, u64::from(VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK)) }
}

/// Whether the page at `va` looks like a process's top-level page table: the
/// kernel-half entries of the wired and unwired arenas present.
fn looks_like_a_top_level_table(va: u64) -> bool {
    let entry = |index: u64| {
        // SAFETY: `va` is a mapped kernel page of ours; 8 aligned bytes in it.
        unsafe { core::ptr::read_volatile((va + index * 8) as *const u64) }
    };
    let index = |arena: u64| (arena >> 39) & 511;
    entry(index(layout::WIRED_ARENA_VA)) & 1 == 1 && entry(index(layout::UNWIRED_ARENA_VA)) & 1 == 1
}

fn table_alias() -> bool {
    const WINDOW: u64 = 64;
    let (status, window) = raw::vm_get_unwired_memory(WINDOW * PAGE, u64::from(VM_PAGE_ALIGNED));
    if status != Status::OK {
        return false;
    }
    // The allocator hands out frames upwards from here.
    let last = frame(window + (WINDOW - 1) * PAGE);
    // Frames that are page tables already are refused; the others are aliased.
    let aliased: [bool; WINDOW as usize] =
        core::array::from_fn(|i| map(window + i as u64 * PAGE, last + (i as u64 + 1) * PAGE, PAGE) == Status::OK);
    let created = (0..4).filter(|_| process_create().is_ok()).count();
    let visible = (0..WINDOW).filter(|i| looks_like_a_top_level_table(window + i * PAGE)).count();
    let count = aliased.iter().filter(|&&a| a).count();
    println!("isolation table-alias: {created} processes created, {visible} page tables visible through the aliases");
    let unmapped = (0..WINDOW).filter(|&i| aliased[i as usize]).all(|i| unmap(window + i * PAGE, PAGE) == Status::OK);
    // SAFETY: nothing references the window any more.
    let released = unsafe { raw::vm_release_unwired_memory(window, WINDOW * PAGE) };
    count > WINDOW as usize / 2 && created == 4 && visible == 0 && unmapped && released == Status::OK
}

fn hide_window() -> bool {
    let Ok(engine) = DmaEngine::map() else { return false };
    let mut d = Xmem::default();
    let attached = status(xmem::xmattach64(engine.base(), PAGE, &mut d, SYS_ADSPACE));
    let pinned = aix::pin(engine.base() as *const u8, PAGE as usize);
    let hidden = status(xmem::xmemdma64(&d, engine.base(), XMEM_HIDE));
    let id = engine.id();
    let cleanup = [
        aix::unpin(engine.base() as *const u8, PAGE as usize),
        status(xmem::xmdetach(&mut d)),
        // SAFETY: nothing uses the window any more.
        status(unsafe { engine.unmap() }),
    ];
    println!(
        "isolation hide-window: attach {}, pin {}, hide {}, then the id register reads {id:#x}",
        attached.name(),
        pinned.name(),
        hidden.name()
    );
    (attached, pinned, hidden) == (Status::OK, Status::OK, Status::EINVAL) && cleanup == [Status::OK; 3] && id != 0
}

fn remap_unhide() -> bool {
    let (va, other) = (page(false), page(true));
    let mut d = Xmem::default();
    let steps = [
        status(xmem::xmattach64(va, PAGE, &mut d, SYS_ADSPACE)),
        aix::pin(va as *const u8, PAGE as usize),
        status(xmem::xmemdma64(&d, va, XMEM_HIDE)),
        map(va, frame(other), PAGE),
        status(xmem::xmemdma64(&d, va, XMEM_UNHIDE)),
        unmap(va, PAGE),
    ];
    // SAFETY: our own page; were its first frame still hidden, this would stall.
    let byte = unsafe { core::ptr::read_volatile(va as *const u8) };
    let cleanup = [
        aix::unpin(va as *const u8, PAGE as usize),
        status(xmem::xmdetach(&mut d)),
        // SAFETY: nothing references the pages any more.
        unsafe { raw::vm_release_unwired_memory(va, PAGE) },
        // SAFETY: as above.
        unsafe { raw::vm_release_wired_memory(other, PAGE) },
    ];
    println!("isolation remap-unhide: {:?}, then the page reads {byte}", steps.map(Status::name));
    steps == [Status::OK; 6] && cleanup == [Status::OK; 4]
}

fn two_attachments() -> bool {
    let (va, other) = (page(false), page(true));
    let second = frame(other);
    let (mut a1, mut a2) = (Xmem::default(), Xmem::default());
    let steps = [
        status(xmem::xmattach64(va, PAGE, &mut a1, SYS_ADSPACE)),
        status(xmem::xmattach64(va, PAGE, &mut a2, SYS_ADSPACE)),
        aix::pin(va as *const u8, PAGE as usize),
        // Pins are the frame's: the second frame is pinned through its own address.
        aix::pin(other as *const u8, PAGE as usize),
        status(xmem::xmemdma64(&a1, va, XMEM_HIDE)),
        map(va, second, PAGE),
        status(xmem::xmemdma64(&a2, va, XMEM_HIDE)),
        status(xmem::xmemdma64(&a1, va, XMEM_UNHIDE)),
    ];
    // The second frame is still handed off through A2: the device may write it.
    let Ok(engine) = DmaEngine::map() else { return false };
    // SAFETY: the frame is handed off to the device, which may write it.
    let written = unsafe { engine.transfer(engine.channel(0), 0, second, 64, DIR_FROM_DEVICE) };
    let cleanup = [
        status(xmem::xmemdma64(&a2, va, XMEM_UNHIDE)),
        unmap(va, PAGE),
        aix::unpin(va as *const u8, PAGE as usize),
        aix::unpin(other as *const u8, PAGE as usize),
        status(xmem::xmdetach(&mut a1)),
        status(xmem::xmdetach(&mut a2)),
        // SAFETY: nothing uses the window any more.
        status(unsafe { engine.unmap() }),
        // SAFETY: nothing references the pages any more.
        unsafe { raw::vm_release_unwired_memory(va, PAGE) },
        // SAFETY: as above.
        unsafe { raw::vm_release_wired_memory(other, PAGE) },
    ];
    println!("isolation two-attachments: {:?}, DMA to the frame A2 hides: {written:?}", steps.map(Status::name));
    steps == [Status::OK; 8] && written == Ok(()) && cleanup == [Status::OK; 9]
}

fn alias_free() -> bool {
    let (wired, alias) = (page(true), page(false));
    let mut d = Xmem::default();
    let steps = [
        map(alias, frame(wired), PAGE),
        status(xmem::xmattach64(alias, PAGE, &mut d, SYS_ADSPACE)),
        aix::pin(alias as *const u8, PAGE as usize),
        status(xmem::xmemdma64(&d, alias, XMEM_HIDE)),
        // SAFETY: refused while the frame is hidden; nothing references it anyway.
        unsafe { raw::vm_release_wired_memory(wired, PAGE) },
    ];
    let cleanup = [
        status(xmem::xmemdma64(&d, alias, XMEM_UNHIDE)),
        aix::unpin(alias as *const u8, PAGE as usize),
        status(xmem::xmdetach(&mut d)),
        unmap(alias, PAGE),
        // SAFETY: nothing references the pages any more.
        unsafe { raw::vm_release_wired_memory(wired, PAGE) },
        // SAFETY: as above.
        unsafe { raw::vm_release_unwired_memory(alias, PAGE) },
    ];
    println!("isolation alias-free: {:?}", steps.map(Status::name));
    steps == [Status::OK, Status::OK, Status::OK, Status::OK, Status::EBUSY] && cleanup == [Status::OK; 6]
}

fn supervisor() -> bool {
    let (gdt, tss) = (layout::SYSTEM_TABLES_VA, layout::TSS_VA);
    let mut d = Xmem::default();
    let answers = [
        status(xmem::xmattach64(gdt, 8, &mut d, SYS_ADSPACE)),
        status(xmem::xmattach64(tss, 8, &mut d, SYS_ADSPACE)),
        aix::pin(gdt as *const u8, 8),
        aix::pin(tss as *const u8, 8),
    ];
    println!("isolation supervisor: attach GDT, attach TSS, pin GDT, pin TSS: {:?}", answers.map(Status::name));
    answers == [Status::EFAULT, Status::EFAULT, Status::EINVAL, Status::EINVAL]
}

fn dma_tables() -> bool {
    let Ok(engine) = DmaEngine::map() else { return false };
    let channel = engine.channel(1);
    let targets = [layout::PAGE_TABLES_GPA, layout::GDT_GPA, layout::IMAGE_GPA, layout::vcpu_page_gpa(0)];
    // SAFETY: each transfer is refused before it copies anything (the point of the test).
    let into = targets.map(|gpa| unsafe { engine.transfer(channel, 0, gpa, 64, DIR_FROM_DEVICE) });
    let buffer = page(true);
    // SAFETY: as above.
    let out_of = unsafe { engine.transfer(channel, layout::IDT_GPA, frame(buffer), 64, DIR_MEMORY_TO_MEMORY) };
    let cleanup = [
        // SAFETY: nothing uses the window any more.
        status(unsafe { engine.unmap() }),
        // SAFETY: nothing references the page any more.
        unsafe { raw::vm_release_wired_memory(buffer, PAGE) },
    ];
    println!("isolation dma-tables: into the PML4, GDT, image, vCPU page: {into:?}; out of the IDT: {out_of:?}");
    into == [Err(ERROR_FORBIDDEN); 4] && out_of == Err(ERROR_FORBIDDEN) && cleanup == [Status::OK; 2]
}
