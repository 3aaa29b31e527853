//! The AIX virtual memory manager conformance guest (objects, regions, device windows): PASS/FAIL per case, no violations.
//!
//! One case per answer a well-behaved caller can provoke: `vms_create` of
//! every size and type and its refusals; `vm_handle`; `vm_att` into region
//! after region, the same frames seen through two regions, real stores
//! through them; `vm_qmodify` from the CPU's dirty bits; `vm_release` and
//! `vm_releasep` (zeros afterwards, clean again) and their refusals;
//! `vm_protectp` (read-only, then writable again) through unlimited and
//! limited handles; `vm_makep` (poison, kept pages, `EFBIG`); `vm_cflush`;
//! `io_att` of the DMA engine's registers (its ID read through the region)
//! and `io_det`; the `as_*64` services in a process (attach, set, get with
//! and without a hold, put, detach, the refusals, the regions a destroyed
//! process leaves); `vm_move` both ways, through holes, into user buffers,
//! and its refusals; `getadsp` and the 32-bit `as_*` forms, also on a
//! process that is not current; `vms_delete`. Misuse the VMM records as a violation lives
//! in the `aix-vmm-misuse`, `aix-vmm-protect` and `aix-vmm-halt` guests, so
//! this run ends with no violation.
//!
//! Prints `PASS: case` or `FAIL: case: why` per case and `SUMMARY: N passed,
//! M failed, K skipped` at the end; exits 0 iff nothing failed.
#![no_std]
#![no_main]
// A failure carries its message in a fixed buffer (there is no heap); only the
// failure path moves it.
#![allow(clippy::result_large_err)]

use core::ptr::{read_volatile, write_volatile};

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::abi::dma::{DMA_ENGINE_GPA, DMA_ENGINE_ID, REG_ID};
use kmemvisor_guest::abi::layout::{self, PAGE_SIZE, USER_REGIONS_VA, VM_REGION_SIZE, VM_REGIONS, user_region_va, vm_region_va};
use kmemvisor_guest::aix::{IoVec, UIO_READ, UIO_SYSSPACE, UIO_USERSPACE, UIO_WRITE, Uio};
use kmemvisor_guest::aix_vmm::{
    self, AdSpace, D_NOWAIT, D_REMOTE, FILEKEY, INVLSID, RDONLY, V_CLIENT, V_INTRSEG, V_LARGE, VM_KEY_LIMITED, VM_KEY_UNLIMITED,
    VM_MAKEP_POISON, VM_MAX_PAGING_BUFS, VM_MAX_PAGING_DEVICES, VmHandle, VmId, io_handle, raw,
};
use kmemvisor_guest::conformance::{Outcome, Tally};
use kmemvisor_guest::ensure;
use kmemvisor_guest::process::{self, PROT_READ, PROT_WRITE};

kmemvisor_firmware::entry!(main);

/// Pages of the largest object (one 256 MiB region).
const MAX_PAGES: u64 = VM_REGION_SIZE / PAGE_SIZE;

/// Fails the case unless the reply is `want` with value `value`.
fn reply(what: &str, (status, got): (Status, u64), want: Status, value: u64) -> Outcome {
    ensure!(status == want && got == value, "{what} answered {} {got:#x}, expected {} {value:#x}", status.name(), want.name());
    Ok(())
}

/// Fails the case unless the status is `want`.
fn status(what: &str, (status, _): (Status, u64), want: Status) -> Outcome {
    ensure!(status == want, "{what} answered {}, expected {}", status.name(), want.name());
    Ok(())
}

fn peek(at: u64) -> u8 {
    // SAFETY: callers read mapped region memory they attached.
    unsafe { read_volatile(at as *const u8) }
}

fn poke(at: u64, value: u8) {
    // SAFETY: callers write writable region memory they attached and nothing else references.
    unsafe { write_volatile(at as *mut u8, value) }
}

/// A new object of `pages` pages.
fn create(pages: u64) -> Result<VmId, kmemvisor_guest::conformance::Why> {
    let mut vmid = VmId(0);
    let got = aix_vmm::vms_create(&mut vmid, V_CLIENT, 0x4711, pages * PAGE_SIZE, 0, 0);
    ensure!(got == Status::OK, "vms_create of {pages} pages answered {}", got.name());
    Ok(vmid)
}

/// `vm_att` of `vmid` with `key`: the region's base.
fn attach(vmid: VmId, key: u64) -> Result<u64, kmemvisor_guest::conformance::Why> {
    let handle = aix_vmm::vm_handle(vmid, key);
    ensure!(handle != VmHandle::INVALID, "vm_handle refused vmid {}", vmid.0);
    let at = aix_vmm::vm_att(handle, 0) as u64;
    ensure!(at != 0, "vm_att refused handle {:#x}", handle.0);
    Ok(at)
}

fn detach(at: u64) {
    // SAFETY: the cases keep no reference into a region they detach.
    unsafe { aix_vmm::vm_det(at as *const u8) };
}

/// The sum of the `n` bytes at `at`: 0 only if all are zeros.
fn sum(at: u64, n: u64) -> u64 {
    (0..n).map(|i| u64::from(peek(at + i))).sum()
}

fn creation(t: &mut Tally) {
    t.case(
        "vms_create of 0, 1 byte, 3 pages and V_LARGE pages; vms_delete of each",
        (|| {
            for (kind, size) in [(V_CLIENT, 0), (V_CLIENT | V_INTRSEG, 1), (V_CLIENT, 3 * PAGE_SIZE), (V_CLIENT | V_LARGE, 2)] {
                let (got, vmid) = raw::vms_create(kind, 0, size, 0, 0);
                ensure!(
                    got == Status::OK && vmid != 0 && vmid != INVLSID,
                    "vms_create({kind:#x}, {size}) answered {} {vmid:#x}",
                    got.name()
                );
                status("vms_delete", raw::vms_delete(vmid), Status::OK)?;
            }
            Ok(())
        })(),
    );
    t.case(
        "vms_create refusals: no V_CLIENT, unknown bits, past 256 MiB: EINVAL; more than RAM: ENOMEM",
        (|| {
            reply("no V_CLIENT", raw::vms_create(0, 0, PAGE_SIZE, 0, 0), Status::EINVAL, 0)?;
            reply("unknown bit", raw::vms_create(V_CLIENT | 1 << 9, 0, PAGE_SIZE, 0, 0), Status::EINVAL, 0)?;
            reply("too large", raw::vms_create(V_CLIENT, 0, VM_REGION_SIZE + 1, 0, 0), Status::EINVAL, 0)?;
            reply("too many pages", raw::vms_create(V_CLIENT | V_LARGE, 0, MAX_PAGES + 1, 0, 0), Status::EINVAL, 0)?;
            reply("more than RAM", raw::vms_create(V_CLIENT, 0, VM_REGION_SIZE, 0, 0), Status::ENOMEM, 0)
        })(),
    );
    t.case(
        "vm_handle of a vmid never made, or key 2: EINVAL and INVLSID from the typed call",
        (|| {
            reply("vm_handle", raw::vm_handle(INVLSID, 0), Status::EINVAL, 0)?;
            reply("vm_handle", raw::vm_handle(0, 0), Status::EINVAL, 0)?;
            let vmid = create(1)?;
            reply("vm_handle key 2", raw::vm_handle(vmid.0, 2), Status::EINVAL, 0)?;
            ensure!(aix_vmm::vm_handle(VmId(12345), 0) == VmHandle::INVALID, "a handle for no object");
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)?;
            reply("vms_delete of a vmid never made", raw::vms_delete(9999), Status::EINVAL, 0)
        })(),
    );
}

fn regions(t: &mut Tally) {
    t.case(
        "vm_att: zeroed pages, offsets inside the region, two regions on one object share its frames",
        (|| {
            let vmid = create(2)?;
            let handle = aix_vmm::vm_handle(vmid, VM_KEY_UNLIMITED);
            let (got, at) = raw::vm_att(handle.0, 5 * VM_REGION_SIZE + PAGE_SIZE + 3);
            ensure!(got == Status::OK, "vm_att answered {}", got.name());
            let base = at - PAGE_SIZE - 3;
            ensure!(
                base.is_multiple_of(VM_REGION_SIZE) && (vm_region_va(0)..vm_region_va(layout::VM_REGIONS)).contains(&base),
                "region {base:#x}"
            );
            ensure!(sum(base, 2 * PAGE_SIZE) == 0, "a new object reads as zeros");
            let other = attach(vmid, VM_KEY_UNLIMITED)?;
            ensure!(other != base, "a second region");
            poke(base + PAGE_SIZE + 7, 0x5a);
            ensure!(peek(other + PAGE_SIZE + 7) == 0x5a, "the store shows through the other region");
            detach(other + 100);
            detach(base);
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
    t.case(
        "vm_qmodify: clean, then modified by a store, and it stays so",
        (|| {
            let vmid = create(2)?;
            let base = attach(vmid, VM_KEY_UNLIMITED)?;
            ensure!(!aix_vmm::vm_qmodify(vmid), "a new object is clean");
            ensure!(sum(base, 2 * PAGE_SIZE) == 0, "reads are not stores");
            ensure!(!aix_vmm::vm_qmodify(vmid), "a read leaves it clean");
            poke(base + PAGE_SIZE, 1);
            ensure!(aix_vmm::vm_qmodify(vmid), "a store marks it");
            detach(base);
            ensure!(aix_vmm::vm_qmodify(vmid), "still marked after vm_det");
            reply("vm_qmodify of a vmid never made", raw::vm_qmodify(INVLSID), Status::EINVAL, 0)?;
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
    t.case(
        "vm_release and vm_releasep: the pages read as zeros and are clean again",
        (|| {
            let vmid = create(3)?;
            let base = attach(vmid, VM_KEY_UNLIMITED)?;
            (0..3 * PAGE_SIZE).step_by(64).for_each(|i| poke(base + i, 0x77));
            // SAFETY: no reference into the pages is held.
            status("vm_release", unsafe { raw::vm_release(base + PAGE_SIZE + 10, 20) }, Status::OK)?;
            ensure!(sum(base + PAGE_SIZE, PAGE_SIZE) == 0, "page 1 reads as zeros");
            ensure!(peek(base) == 0x77 && peek(base + 2 * PAGE_SIZE) == 0x77, "pages 0 and 2 keep their data");
            // SAFETY: as above.
            status("vm_releasep", unsafe { raw::vm_releasep(vmid.0, 0, MAX_PAGES) }, Status::OK)?;
            ensure!(sum(base, 3 * PAGE_SIZE) == 0, "every page reads as zeros");
            ensure!(!aix_vmm::vm_qmodify(vmid), "released pages are clean");
            detach(base);
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
    t.case(
        "vm_release refusals: a limited handle EACCES; negative, past the region, unmapped, 0 bytes",
        (|| {
            let vmid = create(1)?;
            let base = attach(vmid, VM_KEY_UNLIMITED)?;
            let limited = attach(vmid, VM_KEY_LIMITED)?;
            // SAFETY: none of these releases anything the cases reference.
            unsafe {
                status("limited", raw::vm_release(limited, 8), Status::EACCES)?;
                status("negative", raw::vm_release(base, u64::MAX), Status::EINVAL)?;
                status("past the region", raw::vm_release(base + VM_REGION_SIZE - 8, 16), Status::EINVAL)?;
                status("no region", raw::vm_release(layout::KERNEL_HEAP_VA, 8), Status::EINVAL)?;
                status("0 bytes", raw::vm_release(base, 0), Status::OK)?;
                status("vm_releasep negative", raw::vm_releasep(vmid.0, u64::MAX, 1), Status::EINVAL)?;
                status("vm_releasep past the object", raw::vm_releasep(vmid.0, MAX_PAGES, 1), Status::EINVAL)?;
                status("vm_releasep never made", raw::vm_releasep(INVLSID, 0, 1), Status::EINVAL)?;
            }
            detach(limited);
            detach(base);
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
}

fn protection(t: &mut Tally) {
    t.case(
        "vm_protectp: RDONLY pages stay readable, FILEKEY makes them writable again; limited handles read only",
        (|| {
            let vmid = create(2)?;
            let base = attach(vmid, VM_KEY_UNLIMITED)?;
            poke(base + PAGE_SIZE, 9);
            status("RDONLY", raw::vm_protectp(vmid.0, 0, 2, RDONLY), Status::OK)?;
            ensure!(peek(base + PAGE_SIZE) == 9, "a read-only page reads");
            status("FILEKEY", raw::vm_protectp(vmid.0, 1, 1, FILEKEY), Status::OK)?;
            poke(base + PAGE_SIZE, 10);
            ensure!(peek(base + PAGE_SIZE) == 10, "writable again: no stale read-only translation");
            let limited = attach(vmid, VM_KEY_LIMITED)?;
            ensure!(peek(limited + PAGE_SIZE) == 10, "a limited handle reads");
            status("key 2", raw::vm_protectp(vmid.0, 0, 1, 2), Status::EINVAL)?;
            status("negative", raw::vm_protectp(vmid.0, u64::MAX, 1, RDONLY), Status::EINVAL)?;
            status("past the object", raw::vm_protectp(vmid.0, 0, MAX_PAGES + 1, RDONLY), Status::EINVAL)?;
            status("never made", raw::vm_protectp(INVLSID, 0, 1, RDONLY), Status::EINVAL)?;
            detach(limited);
            detach(base);
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
    t.case(
        "vm_makep: a new page holds the poison in every region, an existing page keeps its data, EFBIG past 256 MiB",
        (|| {
            let vmid = create(1)?;
            let base = attach(vmid, VM_KEY_UNLIMITED)?;
            poke(base, 3);
            status("existing", raw::vm_makep(vmid.0, 0), Status::OK)?;
            ensure!(peek(base) == 3, "an existing page keeps its data");
            status("new", raw::vm_makep(vmid.0, 40), Status::OK)?;
            ensure!(peek(base + 40 * PAGE_SIZE + 17) == VM_MAKEP_POISON, "a new page is poisoned");
            poke(base + 40 * PAGE_SIZE, 4);
            let other = attach(vmid, VM_KEY_UNLIMITED)?;
            ensure!(peek(other + 40 * PAGE_SIZE) == 4, "the new page is the object's");
            status("EFBIG", raw::vm_makep(vmid.0, MAX_PAGES), Status::EFBIG)?;
            status("negative", raw::vm_makep(vmid.0, u64::MAX), Status::EINVAL)?;
            status("never made", raw::vm_makep(INVLSID, 0), Status::EINVAL)?;
            detach(other);
            detach(base);
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
    t.case(
        "vm_cflush of kernel memory, of 0 and of negative byte counts: nothing to do",
        (|| {
            status("kernel", raw::vm_cflush(layout::KERNEL_HEAP_VA, 4096), Status::OK)?;
            status("0 bytes", raw::vm_cflush(0x1000, 0), Status::OK)?;
            status("negative", raw::vm_cflush(0x1000, u64::MAX), Status::OK)?;
            status("more than an int", raw::vm_cflush(layout::KERNEL_HEAP_VA, 1 << 31), Status::EINVAL)?;
            aix_vmm::vm_cflush(main as *const u8, 64);
            Ok(())
        })(),
    );
}

fn devices(t: &mut Tally) {
    t.case(
        "io_att of the DMA engine's register page: its ID reads through the region; io_det",
        (|| {
            let at = aix_vmm::io_att(io_handle(DMA_ENGINE_GPA, 1), REG_ID) as u64;
            ensure!(at != 0 && at % VM_REGION_SIZE == REG_ID, "io_att answered {at:#x}");
            // SAFETY: the register page is mapped at `at`; REG_ID is an 8-byte register.
            let id = unsafe { read_volatile(at as *const u64) };
            ensure!(id == DMA_ENGINE_ID, "ID {id:#x}");
            // SAFETY: nothing references the region afterwards.
            status("io_det", unsafe { raw::io_det(at) }, Status::OK)
        })(),
    );
    t.case(
        "vm_att, vm_det, io_att, io_det and vm_cflush serve interrupt level",
        (|| {
            let vmid = create(1)?;
            let handle = aix_vmm::vm_handle(vmid, VM_KEY_UNLIMITED);
            let _ = kmemvisor_guest::process::interrupt_enter();
            let at = raw::vm_att(handle.0, 0);
            let io = raw::io_att(io_handle(DMA_ENGINE_GPA, 1), 0);
            let flush = raw::vm_cflush(at.1, 8);
            // SAFETY: nothing references either region.
            let (det, io_det) = unsafe { (raw::vm_det(at.1), raw::io_det(io.1)) };
            let _ = kmemvisor_guest::process::interrupt_leave();
            for (what, got) in [("vm_att", at), ("io_att", io), ("vm_cflush", flush), ("vm_det", det), ("io_det", io_det)] {
                status(what, got, Status::OK)?;
            }
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
}

/// Makes `pid` the current process (0: none).
fn switch(pid: u64) -> Outcome {
    // SAFETY: the cases keep no reference into another process's user memory.
    let switched = unsafe { process::process_switch(pid) };
    ensure!(switched.is_ok(), "process_switch({pid}) failed");
    Ok(())
}

fn address_spaces(t: &mut Tally) {
    let Ok(pid) = process::process_create() else {
        t.case("process_create", Err(kmemvisor_guest::conformance::Why::new(format_args!("no process"))));
        return;
    };
    t.case(
        "as_att64 and as_det64: the object at the top of the current process's user half, the same bytes as vm_att's",
        (|| {
            switch(pid)?;
            let vmid = create(2)?;
            let handle = aix_vmm::vm_handle(vmid, VM_KEY_UNLIMITED);
            let at = aix_vmm::as_att64(handle, 0x123);
            ensure!(at == USER_REGIONS_VA + 0x123, "as_att64 answered {at:#x}");
            poke(at - 0x123 + PAGE_SIZE, 0x42);
            let kernel = attach(vmid, VM_KEY_UNLIMITED)?;
            ensure!(peek(kernel + PAGE_SIZE) == 0x42, "the kernel region sees the store");
            detach(kernel);
            // SAFETY: nothing references the region afterwards.
            unsafe {
                status("as_det64", raw::as_det64(at), Status::OK)?;
                status("as_det64 again", raw::as_det64(at), Status::EINVAL)?;
            }
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)?;
            switch(0)
        })(),
    );
    t.case(
        "as_seth64 replaces a region's object; as_geth64 holds it until as_puth64, as_getsrval64 holds nothing",
        (|| {
            switch(pid)?;
            let (first, second) = (create(1)?, create(1)?);
            let (h1, h2) = (aix_vmm::vm_handle(first, VM_KEY_UNLIMITED), aix_vmm::vm_handle(second, VM_KEY_LIMITED));
            let at = user_region_va(5) + 10;
            // SAFETY: the region maps nothing the cases reference.
            unsafe {
                status("as_seth64", raw::as_seth64(at, h1.0), Status::OK)?;
                poke(user_region_va(5), 7);
                status("as_seth64 again", raw::as_seth64(at, h2.0), Status::OK)?;
            }
            ensure!(peek(user_region_va(5)) == 0, "the second object is mapped now");
            ensure!(aix_vmm::as_geth64(at) == h2, "as_geth64 names the second object with its key");
            ensure!(aix_vmm::as_getsrval64(at + 4096) == h2, "as_getsrval64 too");
            // SAFETY: as above.
            unsafe { status("as_det64", raw::as_det64(at), Status::OK)? };
            status("as_puth64", raw::as_puth64(at, h2.0), Status::OK)?;
            status("vms_delete of the first", raw::vms_delete(first.0), Status::OK)?;
            status("vms_delete of the second", raw::vms_delete(second.0), Status::OK)?;
            switch(0)
        })(),
    );
    t.case(
        "as_* refusals: no current process, addresses outside the regions or unmapped: EINVAL; no free region: ENOMEM",
        (|| {
            let vmid = create(1)?;
            let handle = aix_vmm::vm_handle(vmid, VM_KEY_UNLIMITED).0;
            reply("as_att64 with no process", raw::as_att64(handle, 0), Status::EINVAL, 0)?;
            switch(pid)?;
            reply("as_geth64 unmapped", raw::as_geth64(USER_REGIONS_VA), Status::EINVAL, 0)?;
            reply("as_getsrval64 outside", raw::as_getsrval64(0x1000_0000), Status::EINVAL, 0)?;
            status("as_puth64 outside", raw::as_puth64(0x1000_0000, handle), Status::EINVAL)?;
            // SAFETY: each is refused: nothing is unmapped.
            unsafe {
                status("as_det64 outside", raw::as_det64(0x1000_0000), Status::EINVAL)?;
                status("as_seth64 outside", raw::as_seth64(vm_region_va(0), handle), Status::EINVAL)?;
            }
            ensure!(
                process::process_map(USER_REGIONS_VA, PAGE_SIZE, PROT_READ | PROT_WRITE) == Err(Status::EINVAL),
                "process_map there"
            );
            for n in 0..VM_REGIONS {
                reply("as_att64", raw::as_att64(handle, 0), Status::OK, user_region_va(n))?;
            }
            reply("as_att64 with no free region", raw::as_att64(handle, 0), Status::ENOMEM, 0)?;
            for n in 0..VM_REGIONS {
                // SAFETY: nothing references the regions.
                unsafe { status("as_det64", raw::as_det64(user_region_va(n)), Status::OK)? };
            }
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)?;
            switch(0)
        })(),
    );
    address_spaces_32(t, pid);
    t.case(
        "process_destroy detaches the process's regions and drops its holds",
        (|| {
            let vmid = create(1)?;
            switch(pid)?;
            let at = aix_vmm::as_att64(aix_vmm::vm_handle(vmid, VM_KEY_UNLIMITED), 0);
            ensure!(at != 0 && aix_vmm::as_geth64(at) != VmHandle::INVALID, "attached and held");
            switch(0)?;
            // SAFETY: nothing references the process's memory.
            let destroyed = unsafe { process::process_destroy(pid) };
            ensure!(destroyed.is_ok(), "process_destroy failed");
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
}

/// A uio over `iov` in the caller's memory, of `segflg`.
fn uio(iov: &mut [IoVec], segflg: u64) -> Uio {
    let resid = iov.iter().map(|i| i.len).sum();
    Uio { iov: iov.as_mut_ptr() as u64, iovcnt: iov.len() as u32, iovdcnt: 0, offset: 0, resid, segflg: segflg as u32, fmode: 0 }
}

/// `vm_move` on a uio of the caller's.
fn vm_move(vmid: VmId, offset: u64, limit: u64, rw: u64, uio: &mut Uio) -> (Status, u64) {
    // SAFETY: the uio, its iovecs and buffers are the caller's live memory;
    // no reference into the object is held across the call.
    unsafe { raw::vm_move(vmid.0, offset, limit, rw, uio as *mut Uio as u64) }
}

fn moves(t: &mut Tally) {
    t.case(
        "vm_move: UIO_WRITE from two iovecs into an object across a page boundary, UIO_READ back; the uio updated; modified",
        (|| {
            let vmid = create(2)?;
            let (mut head, mut tail) = (*b"hello, ", *b"object");
            let mut iov = [IoVec { base: head.as_mut_ptr() as u64, len: 7 }, IoVec { base: tail.as_mut_ptr() as u64, len: 6 }];
            let mut u = uio(&mut iov, UIO_SYSSPACE);
            ensure!(!aix_vmm::vm_qmodify(vmid), "a new object is clean");
            reply("vm_move UIO_WRITE", vm_move(vmid, PAGE_SIZE - 5, 100, UIO_WRITE, &mut u), Status::OK, 13)?;
            ensure!(
                u.resid == 0 && u.offset == 13 && u.iovdcnt == 2,
                "uio resid {} offset {} iovdcnt {}",
                u.resid,
                u.offset,
                u.iovdcnt
            );
            ensure!(aix_vmm::vm_qmodify(vmid), "vm_move's stores mark the object modified");
            let base = attach(vmid, VM_KEY_UNLIMITED)?;
            ensure!(peek(base + PAGE_SIZE - 5) == b'h' && peek(base + PAGE_SIZE + 7) == b't', "the bytes are in the object");
            detach(base);
            let mut back = [0u8; 16];
            let mut iov = [IoVec { base: back.as_mut_ptr() as u64, len: 16 }];
            let mut u = uio(&mut iov, UIO_SYSSPACE);
            let (got, n) = vm_move(vmid, PAGE_SIZE - 5, 9, UIO_READ, &mut u);
            ensure!(got == Status::OK && n == 9 && &back[..9] == b"hello, ob" && u.resid == 7, "read back {} {n}", got.name());
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
    t.case(
        "vm_move: a page the object lacks reads as zeros; a write makes it, zero-filled, in the region that maps the object",
        (|| {
            let vmid = create(1)?;
            let base = attach(vmid, VM_KEY_UNLIMITED)?;
            let mut buffer = [0xeeu8; 8];
            let mut iov = [IoVec { base: buffer.as_mut_ptr() as u64, len: 8 }];
            let mut u = uio(&mut iov, UIO_SYSSPACE);
            reply("vm_move of a hole", vm_move(vmid, 9 * PAGE_SIZE, 8, UIO_READ, &mut u), Status::OK, 8)?;
            ensure!(buffer == [0; 8], "a hole reads as zeros");
            buffer = *b"new page";
            let mut iov = [IoVec { base: buffer.as_mut_ptr() as u64, len: 8 }];
            let mut u = uio(&mut iov, UIO_SYSSPACE);
            reply("vm_move into a hole", vm_move(vmid, 6 * PAGE_SIZE - 4, 8, UIO_WRITE, &mut u), Status::OK, 8)?;
            let at = base + 6 * PAGE_SIZE;
            ensure!(
                peek(at - 5) == 0 && peek(at - 4) == b'n' && peek(at + 3) == b'e' && peek(at + 4) == 0,
                "zeros around the bytes"
            );
            detach(base);
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
    t.case(
        "vm_move refusals: limit 0 or negative moves nothing; past 256 MiB and into a RDONLY page EFAULT; rw, limit and vmid EINVAL",
        (|| {
            let vmid = create(2)?;
            let mut buffer = [7u8; 16];
            let mut iov = [IoVec { base: buffer.as_mut_ptr() as u64, len: 16 }];
            let mut u = uio(&mut iov, UIO_SYSSPACE);
            for nothing in [0, u64::MAX, 0x8000_0000] {
                reply("limit 0 or negative", vm_move(vmid, 0, nothing, UIO_WRITE, &mut u), Status::OK, 0)?;
            }
            reply("offset 256 MiB", vm_move(vmid, VM_REGION_SIZE, 8, UIO_READ, &mut u), Status::EFAULT, 0)?;
            reply("across 256 MiB", vm_move(vmid, VM_REGION_SIZE - 3, 8, UIO_WRITE, &mut u), Status::EFAULT, 3)?;
            status("RDONLY", raw::vm_protectp(vmid.0, 1, 1, RDONLY), Status::OK)?;
            reply("into a RDONLY page", vm_move(vmid, PAGE_SIZE - 2, 8, UIO_WRITE, &mut u), Status::EFAULT, 2)?;
            reply("from a RDONLY page", vm_move(vmid, PAGE_SIZE, 4, UIO_READ, &mut u), Status::OK, 4)?;
            reply("rw 2", vm_move(vmid, 0, 8, 2, &mut u), Status::EINVAL, 0)?;
            reply("limit not an int", vm_move(vmid, 0, 1 << 32, UIO_READ, &mut u), Status::EINVAL, 0)?;
            reply("a vmid never made", vm_move(VmId(INVLSID), 0, 8, UIO_READ, &mut u), Status::EINVAL, 0)?;
            u.segflg = 9;
            reply("segflg 9", vm_move(vmid, 0, 8, UIO_READ, &mut u), Status::EINVAL, 0)?;
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
    t.case(
        "vm_move with no free frame for a page the object lacks: ENOMEM",
        (|| {
            // Take every free frame with objects, the largest that fit first.
            let mut taken = [0u64; 64];
            let (mut count, mut pages) = (0, MAX_PAGES / 2);
            while pages > 0 && count < taken.len() {
                match raw::vms_create(V_CLIENT | V_LARGE, 0, pages, 0, 0) {
                    (Status::OK, vmid) => {
                        taken[count] = vmid;
                        count += 1;
                    }
                    _ => pages /= 2,
                }
            }
            let vmid = taken[0];
            let mut buffer = [1u8; 8];
            let mut iov = [IoVec { base: buffer.as_mut_ptr() as u64, len: 8 }];
            let mut u = uio(&mut iov, UIO_SYSSPACE);
            let got = vm_move(VmId(vmid), MAX_PAGES / 2 * PAGE_SIZE, 8, UIO_WRITE, &mut u);
            for &vmid in &taken[..count] {
                status("vms_delete", raw::vms_delete(vmid), Status::OK)?;
            }
            ensure!(pages == 0, "{count} objects did not take every frame");
            reply("vm_move", got, Status::ENOMEM, 0)
        })(),
    );
}

fn address_spaces_32(t: &mut Tally, pid: u64) {
    t.case(
        "getadsp: no current process EINVAL and null; the current process's pointer otherwise",
        (|| {
            reply("getadsp with no process", raw::getadsp(), Status::EINVAL, 0)?;
            ensure!(aix_vmm::getadsp() == AdSpace::NULL, "null from the typed call");
            switch(pid)?;
            let adsp = aix_vmm::getadsp();
            ensure!(adsp != AdSpace::NULL, "getadsp in a process");
            reply("getadsp again", raw::getadsp(), Status::OK, adsp.0)?;
            switch(0)
        })(),
    );
    t.case(
        "as_att, as_getsrval, as_geth, as_det, as_puth on the process getadsp named, from kernel context; the *64 forms share the regions",
        (|| {
            switch(pid)?;
            let adsp = aix_vmm::getadsp();
            let vmid = create(1)?;
            let handle = aix_vmm::vm_handle(vmid, VM_KEY_UNLIMITED);
            let at = aix_vmm::as_att(adsp, handle, 0x10) as u64;
            ensure!(at == USER_REGIONS_VA + 0x10, "as_att answered {at:#x}");
            poke(USER_REGIONS_VA, 0x33);
            switch(0)?;
            ensure!(aix_vmm::as_getsrval(adsp, at as *const u8) == handle, "as_getsrval from kernel context");
            ensure!(aix_vmm::as_geth(adsp, at as *const u8) == handle, "as_geth");
            reply("as_geth64 with no process", raw::as_geth64(at), Status::EINVAL, 0)?;
            // SAFETY: nothing references the region afterwards.
            unsafe {
                status("as_det", raw::as_det(adsp.0, at), Status::OK)?;
                status("as_det again", raw::as_det(adsp.0, at), Status::EINVAL)?;
            }
            status("as_puth", raw::as_puth(adsp.0, handle.0), Status::OK)?;
            switch(pid)?;
            let again = aix_vmm::as_att64(handle, 0);
            ensure!(again == USER_REGIONS_VA && peek(again) == 0x33, "as_att64 takes the freed region: the same object");
            ensure!(aix_vmm::as_geth(adsp, again as *const u8) == handle, "as_geth of an as_att64 region");
            // SAFETY: as above.
            unsafe { status("as_det64", raw::as_det64(again), Status::OK)? };
            aix_vmm::as_puth(adsp, handle);
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)?;
            switch(0)
        })(),
    );
    t.case(
        "as_seth replaces a region's object; as_att with no free region ENOMEM and null; as_getsrval at interrupt level",
        (|| {
            switch(pid)?;
            let adsp = aix_vmm::getadsp();
            switch(0)?;
            let (first, second) = (create(1)?, create(1)?);
            let (h1, h2) = (aix_vmm::vm_handle(first, VM_KEY_UNLIMITED), aix_vmm::vm_handle(second, VM_KEY_UNLIMITED));
            let at = user_region_va(4);
            // SAFETY: the region maps nothing the cases reference.
            unsafe {
                aix_vmm::as_seth(adsp, h1, at as *const u8);
                aix_vmm::as_seth(adsp, h2, (at + 8) as *const u8);
            }
            ensure!(aix_vmm::as_getsrval(adsp, at as *const u8) == h2, "the second object is mapped");
            status("vms_delete of the replaced object", raw::vms_delete(first.0), Status::OK)?;
            for n in 0..VM_REGIONS {
                if n != 4 {
                    reply("as_att", raw::as_att(adsp.0, h2.0, 0), Status::OK, user_region_va(n))?;
                }
            }
            reply("as_att with no free region", raw::as_att(adsp.0, h2.0, 0), Status::ENOMEM, 0)?;
            ensure!(aix_vmm::as_att(adsp, h2, 0).is_null(), "null from the typed call");
            let _ = kmemvisor_guest::process::interrupt_enter();
            let srval = raw::as_getsrval(adsp.0, at);
            let _ = kmemvisor_guest::process::interrupt_leave();
            reply("as_getsrval at interrupt level", srval, Status::OK, h2.0)?;
            for n in 0..VM_REGIONS {
                // SAFETY: nothing references the regions.
                unsafe { status("as_det", raw::as_det(adsp.0, user_region_va(n)), Status::OK)? };
            }
            status("vms_delete", raw::vms_delete(second.0), Status::OK)
        })(),
    );
    t.case(
        "vm_move to and from user buffers of the current process; a buffer mapped through a limited handle is not written: EFAULT",
        (|| {
            switch(pid)?;
            let vmid = create(1)?;
            let user = 0x2000_0000;
            ensure!(process::process_map(user, PAGE_SIZE, PROT_READ | PROT_WRITE).is_ok(), "process_map");
            poke(user, b'u');
            let mut iov = [IoVec { base: user, len: 1 }];
            let mut u = uio(&mut iov, UIO_USERSPACE);
            reply("vm_move from user memory", vm_move(vmid, 3, 1, UIO_WRITE, &mut u), Status::OK, 1)?;
            let limited = aix_vmm::as_att64(aix_vmm::vm_handle(vmid, VM_KEY_LIMITED), 0);
            ensure!(peek(limited + 3) == b'u', "the object holds the byte");
            let mut iov = [IoVec { base: limited, len: 4 }];
            let mut u = uio(&mut iov, UIO_USERSPACE);
            reply("vm_move into a read-only user buffer", vm_move(vmid, 0, 4, UIO_READ, &mut u), Status::EFAULT, 0)?;
            // SAFETY: nothing references the region afterwards.
            unsafe { status("as_det64", raw::as_det64(limited), Status::OK)? };
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)?;
            switch(0)
        })(),
    );
}

/// The strategy routine that names the paging device of the paging cases.
const STRATEGY: u64 = 0xffff_c000_0010_0000;

/// A sign-extended -1: a negative AIX `int`.
const NEGATIVE: u64 = u64::MAX;

/// The byte at offset `i` of page `page` of the paging cases' pattern.
fn pattern(page: u64, i: u64) -> u8 {
    (page * 7 + i * 13 % 251) as u8
}

/// Fills pages `pages` of the object at `at` with the pattern.
fn fill(at: u64, pages: core::ops::Range<u64>) {
    for page in pages {
        for i in 0..PAGE_SIZE {
            poke(at + page * PAGE_SIZE + i, pattern(page, i));
        }
    }
}

/// Checks pages `pages` of the object at `at` hold the pattern, byte for byte.
fn holds_pattern(at: u64, pages: core::ops::Range<u64>) -> Outcome {
    for page in pages {
        for i in 0..PAGE_SIZE {
            let got = peek(at + page * PAGE_SIZE + i);
            ensure!(got == pattern(page, i), "page {page} byte {i} reads {got:#x}, expected {:#x}", pattern(page, i));
        }
    }
    Ok(())
}

fn paging(t: &mut Tally) {
    t.case(
        "vm_mount and vm_umount: D_REMOTE only, a strategy once, 1 to 4096 bufs, at most 16 devices; vm_umount of one not mounted: EINVAL",
        (|| {
            status("type 0", raw::vm_mount(0, STRATEGY, 8), Status::EINVAL)?;
            status("null strategy", raw::vm_mount(D_REMOTE, 0, 8), Status::EINVAL)?;
            status("no bufs", raw::vm_mount(D_REMOTE, STRATEGY, 0), Status::EINVAL)?;
            status("negative bufs", raw::vm_mount(D_REMOTE, STRATEGY, NEGATIVE), Status::EINVAL)?;
            status("too many bufs", raw::vm_mount(D_REMOTE, STRATEGY, VM_MAX_PAGING_BUFS + 1), Status::ENOMEM)?;
            status("vm_mount", raw::vm_mount(D_REMOTE, STRATEGY, VM_MAX_PAGING_BUFS), Status::OK)?;
            status("vm_mount again", raw::vm_mount(D_REMOTE, STRATEGY, 8), Status::EINVAL)?;
            for n in 1..VM_MAX_PAGING_DEVICES as u64 {
                status("vm_mount", raw::vm_mount(D_REMOTE, STRATEGY + n, 1), Status::OK)?;
            }
            status("one device too many", raw::vm_mount(D_REMOTE, STRATEGY + 99, 1), Status::ENOMEM)?;
            status("vm_umount not mounted", raw::vm_umount(D_REMOTE, STRATEGY + 99), Status::EINVAL)?;
            status("vm_umount type 0", raw::vm_umount(0, STRATEGY), Status::EINVAL)?;
            status("vm_umount D_NOWAIT", raw::vm_umount(D_REMOTE | D_NOWAIT, STRATEGY), Status::OK)?;
            for n in 1..VM_MAX_PAGING_DEVICES as u64 {
                status("vm_umount", raw::vm_umount(D_REMOTE, STRATEGY + n), Status::OK)?;
            }
            status("vm_umount twice", raw::vm_umount(D_REMOTE, STRATEGY), Status::EINVAL)
        })(),
    );
    t.case(
        "vm_writep and vm_write write the modified pages to the device and leave them in, clean, byte for byte; vms_iowait: 0",
        (|| {
            let vmid = create(4)?;
            let at = attach(vmid, VM_KEY_UNLIMITED)?;
            fill(at, 0..4);
            ensure!(aix_vmm::vm_mount(D_REMOTE, STRATEGY, 8) == Status::OK, "vm_mount refused");
            status("vm_writep", raw::vm_writep(vmid.0, 0, 2), Status::OK)?;
            // Pages 2 and 3: the range ends one byte into page 3.
            ensure!(
                aix_vmm::vm_write((at + 2 * PAGE_SIZE) as *const u8, PAGE_SIZE as i32 + 1, 1) == Status::OK,
                "vm_write refused"
            );
            status("vms_iowait", raw::vms_iowait(vmid.0), Status::OK)?;
            ensure!(!aix_vmm::vm_qmodify(vmid), "pages written out are clean");
            holds_pattern(at, 0..4)?;
            // Nothing modified: nothing to write, every page stays in.
            status("vm_writep of clean pages", raw::vm_writep(vmid.0, 0, 4), Status::OK)?;
            holds_pattern(at, 0..4)?;
            detach(at);
            status("vm_umount", raw::vm_umount(D_REMOTE, STRATEGY), Status::OK)?;
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
    t.case(
        "vm_write and vm_writep refusals: ENODEV with no device; EINVAL negative, past the region or the largest object, unmapped, an I/O region, a vmid never made; EACCES through a limited handle; vms_iowait of a vmid never made: EINVAL",
        (|| {
            let vmid = create(1)?;
            status("no device", raw::vm_writep(vmid.0, 0, 1), Status::ENODEV)?;
            ensure!(aix_vmm::vm_mount(D_REMOTE, STRATEGY, 8) == Status::OK, "vm_mount refused");
            status("negative first", raw::vm_writep(vmid.0, NEGATIVE, 1), Status::EINVAL)?;
            status("negative count", raw::vm_writep(vmid.0, 0, NEGATIVE), Status::EINVAL)?;
            status("past the largest object", raw::vm_writep(vmid.0, MAX_PAGES, 1), Status::EINVAL)?;
            status("vmid never made", raw::vm_writep(9999, 0, 1), Status::EINVAL)?;
            let limited = attach(vmid, VM_KEY_LIMITED)?;
            status("limited handle", raw::vm_write(limited, 1, 0), Status::EACCES)?;
            detach(limited);
            let at = attach(vmid, VM_KEY_UNLIMITED)?;
            status("negative length", raw::vm_write(at, NEGATIVE, 0), Status::EINVAL)?;
            status("past the region", raw::vm_write(at + VM_REGION_SIZE - 1, 2, 0), Status::EINVAL)?;
            detach(at);
            status("unmapped", raw::vm_write(at, 1, 0), Status::EINVAL)?;
            let io = raw::io_att(io_handle(DMA_ENGINE_GPA, 1), 0).1;
            status("an I/O region", raw::vm_write(io, 1, 0), Status::EINVAL)?;
            // SAFETY: nothing references the device window's region.
            unsafe { raw::io_det(io) };
            status("vms_iowait of a vmid never made", raw::vms_iowait(9999), Status::EINVAL)?;
            status("vm_umount", raw::vm_umount(D_REMOTE, STRATEGY), Status::OK)?;
            status("vms_delete", raw::vms_delete(vmid.0), Status::OK)
        })(),
    );
    t.case(
        "vm_umount drops the device's copies; vm_releasep and vms_delete drop pages written to a device",
        (|| {
            let vmid = create(3)?;
            let at = attach(vmid, VM_KEY_UNLIMITED)?;
            fill(at, 0..3);
            ensure!(aix_vmm::vm_mount(D_REMOTE, STRATEGY, 8) == Status::OK, "vm_mount refused");
            status("vm_writep", raw::vm_writep(vmid.0, 0, 3), Status::OK)?;
            // SAFETY: nothing references page 0's contents.
            status("vm_releasep of a page written out", unsafe { raw::vm_releasep(vmid.0, 0, 1) }, Status::OK)?;
            status("vm_umount", raw::vm_umount(D_REMOTE, STRATEGY), Status::OK)?;
            ensure!(sum(at, PAGE_SIZE) == 0, "a released page reads as zeros");
            holds_pattern(at, 1..3)?;
            ensure!(aix_vmm::vm_mount(D_REMOTE, STRATEGY, 8) == Status::OK, "vm_mount refused");
            poke(at + PAGE_SIZE, 1);
            status("vm_writep", raw::vm_writep(vmid.0, 1, 1), Status::OK)?;
            detach(at);
            status("vms_delete of an object with a page written out", raw::vms_delete(vmid.0), Status::OK)?;
            status("vm_umount", raw::vm_umount(D_REMOTE, STRATEGY), Status::OK)
        })(),
    );
}

fn main() -> u32 {
    let mut t = Tally::default();
    creation(&mut t);
    regions(&mut t);
    protection(&mut t);
    devices(&mut t);
    moves(&mut t);
    address_spaces(&mut t);
    paging(&mut t);
    t.finish()
}
