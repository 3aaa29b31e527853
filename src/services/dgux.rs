//! The fifteen DG/UX hypercalls: argument decoding with the manual page's widths,
//! and which outcome is a status, which a violation and which a halt.

use kmemvisor_abi::dgux::{
    AbortCode, MAP_SHARED, PROT_EXEC, PROT_WRITE, SC_ACCESS_MODE_MASK, SC_NO_ACCESS, SC_READ_ACCESS, SC_WRITE_ACCESS,
    VM_INVALID_MEMORY_PTR, VM_INVALID_PHYSICAL_ADDRESS, VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK, VM_MMAP_WRITE_THROUGH_MASK,
    VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK,
};
use kmemvisor_abi::layout::PAGE_SIZE;
use kmemvisor_abi::{Service, Status};

use crate::checker::ViolationKind;
use crate::devices::pager::PagerError;
use crate::memory_model::guest_access;
use crate::memory_model::kernel_memory::{GetError, GuestView, KernelMemory, Kind, Marks, ReleaseError};
use crate::memory_model::ledger::{FrameLedger, HandOffEnd};
use crate::memory_model::paging::PteFlags;
use crate::report::ExitCause;
use crate::services::aix::paging::{Evictor, enforce_memory_limit};
use crate::services::{Caller, Outcome, Reply, refuse, zap_failed};
use crate::state::{Kernel, VmState};
use crate::sync::lock;

/// Serves a DG/UX service.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let outcome = serve_one(state, caller, service, args);
    if state.config.memory_limit.is_some() {
        let who = Evictor { vcpu: caller.vcpu, rip: caller.rip, keep: None };
        enforce_memory_limit(state, &mut kernel(state), who);
    }
    outcome
}

/// Brings the pages that are out among the frames a call frees, aliases or
/// stores to through the VMM's view (which the pager does not trap) back
/// in first: the frames of `[start, start + bytes)` — guest-physical, or
/// kernel-virtual when `virtual_range`. A page-in that fails is the call's
/// `VM_EIO`. It runs under the call's own hold of the kernel lock.
fn bring_in(state: &VmState, k: &mut Kernel, start: u64, bytes: u64, virtual_range: bool) -> Result<(), Outcome> {
    if k.frames.pages_out() == 0 {
        return Ok(());
    }
    let first = start - start % PAGE_SIZE;
    let pages = bytes.saturating_add(start - first).div_ceil(PAGE_SIZE);
    let memory = state.ram.memory();
    let frames: Vec<u64> = (0..pages)
        .filter_map(|i| first.checked_add(i * PAGE_SIZE))
        .filter_map(|page| if virtual_range { state.space.translate(memory, page).map(|t| t.gpa) } else { Some(page) })
        .filter(|&frame| k.frames.is_paged_out(frame))
        .collect();
    k.pager.page_in_all(memory, &state.hiding, &mut k.frames, frames).map_err(|error| {
        if !matches!(error, PagerError::Injected(_)) {
            eprintln!("kmemvisor: {error}");
        }
        Reply::status(Status::VM_EIO)
    })
}

fn serve_one(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let [a0, a1, a2, a3, a4, a5] = args;
    match service {
        Service::VmGetWiredMemory => get(state, caller, service, Kind::Wired, true, a0, a1),
        Service::VmGetUnwiredMemory => get(state, caller, service, Kind::Unwired, true, a0, a1),
        Service::VmPerhapsGetWiredMemory => get(state, caller, service, Kind::Wired, false, a0, a1),
        Service::VmPerhapsGetUnwiredMemory => get(state, caller, service, Kind::Unwired, false, a0, a1),
        Service::VmReleaseWiredMemory => release(state, caller, service, Kind::Wired, a0, a1),
        Service::VmReleaseUnwiredMemory => release(state, caller, service, Kind::Unwired, a0, a1),
        Service::VmCheckAccessAndWireMemory => wire(state, caller, service, &args[..4], a3),
        Service::VmWireMemory => wire(state, caller, service, &args[..3], SC_NO_ACCESS),
        Service::VmUnwireMemory => unwire(state, caller, service, &args[..3], Some(SC_NO_ACCESS)),
        Service::VmMarkAndUnwireMemory => unwire(state, caller, service, &args[..4], Some(a3)),
        Service::VmMarkModAndRefAndUnwireMemory => unwire(state, caller, service, &args[..3], Some(SC_WRITE_ACCESS)),
        Service::VmMarkRefAndUnwireMemory => unwire(state, caller, service, &args[..3], Some(SC_READ_ACCESS)),
        Service::VmGetPhysicalByteAddress => physical_address(state, caller, a0, a1, a2),
        Service::VmMapPhysicalMemory => map_physical(state, caller, service, [a0, a1, a2, a3, a4, a5]),
        Service::VmUnmapPhysicalMemory => unmap_physical(state, caller, service, [a0, a1, a2]),
        _ => Reply::status(Status::ENOSYS),
    }
}

fn kernel(state: &VmState) -> std::sync::MutexGuard<'_, Kernel> {
    lock(&state.kernel)
}

fn view(state: &VmState) -> GuestView<'_> {
    GuestView { memory: state.ram.memory(), space: &state.space }
}

/// A `uint32type` argument, or why not.
fn uint32(name: &str, value: u64) -> Result<u64, String> {
    if value > u64::from(u32::MAX) { Err(format!("{name} {value:#x} does not fit its uint32 type")) } else { Ok(value) }
}

fn get(state: &VmState, caller: Caller, service: Service, kind: Kind, demand: bool, bytes: u64, alignment: u64) -> Outcome {
    let stack = caller.origin(state);
    let result = {
        let k = &mut *kernel(state);
        k.dgux.get(view(state), &mut k.frames, kind, demand, bytes, alignment, (caller.vcpu, &stack))
    };
    match result {
        Ok(ptr) => Reply::ok(ptr),
        Err(GetError::Refused(refusal)) => {
            refuse(state, caller, refusal.kind(), service, &[bytes, alignment], refusal.to_string(), Status::EINVAL)
        }
        Err(GetError::OutOfMemory) if demand => {
            let code = match kind {
                Kind::Wired => AbortCode::VmPanicGetWiredMemory,
                Kind::Unwired => AbortCode::VmPanicGetUnwiredMemory,
            };
            let line = format!("sc_panic: {}: {}({bytes}, {alignment}) could not be allocated\n", code.name(), service.name());
            state.console.write(caller.vcpu, line.as_bytes());
            Outcome::Stop(Box::new(ExitCause::DgUxAbort {
                vcpu: caller.vcpu,
                code: code.name(),
                service: service.name(),
                bytes,
                alignment,
            }))
        }
        Err(GetError::OutOfMemory) => Outcome::Reply(Reply { status: Status::ENOMEM, value: VM_INVALID_MEMORY_PTR }),
    }
}

fn release(state: &VmState, caller: Caller, service: Service, kind: Kind, ptr: u64, bytes: u64) -> Outcome {
    let result = {
        let k = &mut *kernel(state);
        if let Err(answer) = bring_in(state, k, ptr, bytes.min(u64::from(u32::MAX)), true) {
            return answer;
        }
        if let Some(a) = k.xmem.overlapping(0, ptr, bytes) {
            let why = format!(
                "release of {bytes} bytes at {ptr:#x}, which are attached for cross-memory (xmattach on vCPU {} at RIP {:#x}): xmdetach first",
                a.origin.vcpu, a.origin.rip
            );
            return refuse(state, caller, ViolationKind::XmemFreeWhileAttached, service, &[ptr, bytes], why, Status::EBUSY);
        }
        k.dgux.release(view(state), &mut k.frames, kind, ptr, bytes)
    };
    match result {
        Ok(()) => Reply::ok(0),
        Err(ReleaseError::Zap(e)) => zap_failed(caller, service, e),
        Err(ReleaseError::Refused(refusal)) => {
            // Held by another subsystem (hidden for DMA, pinned, in a transfer): busy; misuse of DG/UX itself: invalid.
            let status = if refusal.held_elsewhere() { Status::EBUSY } else { Status::EINVAL };
            let message = format!("release of {bytes} bytes of {kind} memory at {ptr:#x}: {refusal}; nothing was released");
            refuse(state, caller, refusal.kind(), service, &[ptr, bytes], message, status)
        }
    }
}

/// Whose addresses a call means: `Some(None)` the kernel's, `Some(Some(pid))`
/// the caller's current process's, `None` a user address without a process.
fn owner(state: &VmState, caller: Caller, user: bool) -> Option<Option<u64>> {
    if !user {
        return Some(None);
    }
    match crate::sync::lock(&state.contexts[caller.vcpu]).pid {
        0 => None,
        pid => Some(Some(pid)),
    }
}

/// The start, the byte count and whether it is a user address, or why not.
fn region(args: &[u64]) -> Result<(u64, u64, bool), String> {
    Ok((args[0], uint32("the byte count", args[2])?, args[1] != 0))
}

fn wire(state: &VmState, caller: Caller, service: Service, args: &[u64], access: u64) -> Outcome {
    let (start, bytes, user) = match region(args) {
        Ok(region) => region,
        Err(why) => return refuse(state, caller, ViolationKind::DgUxUint32Overflow, service, args, why, Status::EINVAL),
    };
    if access & !SC_ACCESS_MODE_MASK != 0 {
        let why = format!("access mode {access:#x} has bits outside SC_ACCESS_MODE_MASK");
        return refuse(state, caller, ViolationKind::DgUxAccessModeReservedBits, service, args, why, Status::EINVAL);
    }
    let k = &mut *kernel(state);
    let pager = &mut k.pager;
    // A page that is out comes in; a failed read is the call's VM_EIO.
    let page_in_fails =
        |frames: &mut FrameLedger, frame: u64| match pager.page_in_to_wire(state.ram.memory(), &state.hiding, frames, frame) {
            Ok(()) => false,
            Err(PagerError::Injected(_)) => true,
            Err(error) => {
                eprintln!("kmemvisor: {error}");
                true
            }
        };
    let status = match owner(state, caller, user) {
        None => Status::VM_STATUS_PROCESS_HAS_NO_VM,
        Some(None) => KernelMemory::wire(view(state), &mut k.frames, None, start, bytes, access, page_in_fails),
        Some(Some(pid)) => match k.processes.get(pid) {
            Some(process) => {
                let view = GuestView { memory: state.ram.memory(), space: process.space() };
                KernelMemory::wire(view, &mut k.frames, Some(pid), start, bytes, access, page_in_fails)
            }
            None => Status::VM_STATUS_PROCESS_HAS_NO_VM,
        },
    };
    Reply::status(status)
}

fn unwire(state: &VmState, caller: Caller, service: Service, args: &[u64], access: Option<u64>) -> Outcome {
    let (start, bytes, user) = match region(args) {
        Ok(region) => region,
        Err(why) => return refuse(state, caller, ViolationKind::DgUxUint32Overflow, service, args, why, Status::EINVAL),
    };
    let access = access.unwrap_or(SC_NO_ACCESS);
    if access & !SC_ACCESS_MODE_MASK != 0 {
        let why = format!("access mode {access:#x} has bits outside SC_ACCESS_MODE_MASK");
        return refuse(state, caller, ViolationKind::DgUxAccessModeReservedBits, service, args, why, Status::EINVAL);
    }
    let marks = Marks { referenced: access != SC_NO_ACCESS, modified: access & SC_WRITE_ACCESS != 0 };
    let k = &mut *kernel(state);
    let result = match owner(state, caller, user) {
        None => None,
        Some(None) => Some(k.dgux.unwire(view(state), &mut k.frames, None, start, bytes, marks)),
        Some(Some(pid)) => k.processes.get(pid).map(|process| {
            let view = GuestView { memory: state.ram.memory(), space: process.space() };
            k.dgux.unwire(view, &mut k.frames, Some(pid), start, bytes, marks)
        }),
    };
    let Some(result) = result else {
        let why = format!("user address {start:#x}, but the caller has no user address space");
        let kind = ViolationKind::DgUxUserAddressWithoutProcess;
        return refuse(state, caller, kind, service, args, why, Status::VM_STATUS_PROCESS_HAS_NO_VM);
    };
    match result {
        Ok(unwired) => {
            // The call's origin, kept only when a device write stays unaccounted for.
            let unmarked_write = !marks.modified && unwired.iter().any(|&(_, frame)| k.frames.device_write(frame).is_some());
            let end = unmarked_write.then(|| HandOffEnd { service, origin: k.dgux.origins.intern(&caller.origin(state)) });
            for (kind, message) in dma_findings(&mut k.frames, service, &unwired, end) {
                state.record_violation(caller.violation(state, kind, service.name(), args, message));
            }
            Reply::ok(0)
        }
        Err(e) => {
            let message = format!("{e}; nothing was unwired or marked");
            refuse(state, caller, e.kind(), service, args, message, Status::EINVAL)
        }
    }
}

/// What an unwire of `unwired` (page, frame) pairs did wrong with the DMA
/// engine, each with its kind: it ended the hand-off of a frame a queued or
/// running transfer touches, or it did not mark modified a frame the device
/// wrote. `end` is the unwire, when it left a device write unmarked.
fn dma_findings(
    frames: &mut FrameLedger,
    service: Service,
    unwired: &[(u64, u64)],
    end: Option<HandOffEnd>,
) -> Vec<(ViolationKind, String)> {
    let mut findings = Vec::new();
    if let Some(&(page, frame)) = unwired.iter().find(|&&(_, frame)| frames.transfers_on(frame) > 0) {
        let message = format!(
            "{} unwires page {page:#x} (frame {frame:#x}) while a DMA transfer that touches it is queued or running: \
             the device may still read or write it after the hand-off ended; wait for the transfer to complete",
            service.name()
        );
        findings.push((ViolationKind::DmaUnwireDuringTransfer, message));
    }
    // A write marked modified is accounted for and forgotten; an unmarked
    // one remembers this unwire (a lost modification names it), and a
    // later unwire is not blamed again.
    let written: Vec<(u64, u64)> = match end {
        None => {
            for &(_, frame) in unwired {
                frames.take_device_write(frame);
            }
            Vec::new()
        }
        Some(end) => unwired.iter().copied().filter(|&(_, frame)| frames.end_unmarked(frame, end).is_some()).collect(),
    };
    if let Some(&(page, frame)) = written.first() {
        let message = format!(
            "{} unwires page {page:#x} (frame {frame:#x}) and {} other page(s) that the DMA engine wrote without marking \
             them modified: DMA transfers do not set the referenced or modified bits, and failure to appropriately set \
             the reference and/or modified bits can cause new buffer data to be lost (unwire with \
             vm_mark_and_unwire_memory and SC_WRITE_ACCESS)",
            service.name(),
            written.len() - 1
        );
        findings.push((ViolationKind::DmaUnwireWithoutModifiedMark, message));
    }
    findings
}

fn physical_address(state: &VmState, caller: Caller, logical: u64, user: u64, out: u64) -> Outcome {
    let memory = state.ram.memory();
    let physical = {
        let k = &mut *kernel(state);
        if let Err(answer) = bring_in(state, k, out, 8, true) {
            return answer;
        }
        let space = match owner(state, caller, user != 0) {
            Some(None) => Some(&state.space),
            Some(Some(pid)) if kmemvisor_abi::layout::is_user_address(logical) => k.processes.get(pid).map(|p| p.space()),
            Some(Some(_)) | None => None,
        };
        space.and_then(|space| space.translate(memory, logical)).map_or(VM_INVALID_PHYSICAL_ADDRESS, |t| t.gpa)
    };
    match guest_access::write(memory, &state.space, out, &physical.to_le_bytes()) {
        Ok(()) => Reply::ok(physical),
        Err(_) => Reply::status(Status::EFAULT),
    }
}

/// Reports reserved control-flag bits; the call goes on.
fn reserved_bits(state: &VmState, caller: Caller, service: Service, args: &[u64], flags: u64, known: u64) -> Option<Outcome> {
    if flags & !known == 0 {
        return None;
    }
    let why = format!("control flags {flags:#x} set reserved bits {:#x}", flags & !known);
    match refuse(state, caller, ViolationKind::DgUxReservedControlBits, service, args, why, Status::OK) {
        stop @ Outcome::Stop(_) => Some(stop),
        _ => None,
    }
}

fn map_physical(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let [logical, physical, bytes, access, sharing, control] = args;
    if let Err(answer) = bring_in(state, &mut kernel(state), physical, bytes.min(u64::from(u32::MAX)), false) {
        return answer;
    }
    let known = VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK | VM_MMAP_WRITE_THROUGH_MASK;
    if let Some(stop) = reserved_bits(state, caller, service, &args, control, known) {
        return stop;
    }
    let status = if sharing != MAP_SHARED {
        Status::VM_EINVAL_MMAP_UNSUPPORTED
    } else if bytes == 0 || bytes % PAGE_SIZE != 0 || bytes > u64::from(u32::MAX) {
        Status::VM_EINVAL_MMAP_BYTES_NOT_MULTIPLE
    } else if logical % PAGE_SIZE != 0 || physical % PAGE_SIZE != 0 {
        Status::VM_EINVAL_MMAP_BAD_ADDR_BOUNDARY
    } else {
        let mut flags = PteFlags::USER;
        if access & PROT_WRITE != 0 {
            flags = flags | PteFlags::WRITABLE;
        }
        if access & PROT_EXEC == 0 {
            flags = flags | PteFlags::NO_EXECUTE;
        }
        flags = flags | if control & VM_MMAP_WRITE_THROUGH_MASK != 0 { PteFlags::WRITE_THROUGH } else { PteFlags::CACHE_DISABLE };
        let ram_end = state.ram.size();
        let k = &mut *kernel(state);
        // Control bit 0 clear: a user address, of the caller's current
        // process ("called by either user or kernel processes").
        let mapped = if control & VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK != 0 {
            k.dgux.map_physical(view(state), &mut k.frames, logical, physical, bytes, flags, ram_end)
        } else {
            let pid = lock(&state.contexts[caller.vcpu]).pid;
            k.processes.map_physical(state.ram.memory(), &mut k.frames, pid, logical, physical, bytes, flags, ram_end)
        };
        match mapped {
            Ok(status) => status,
            Err(e) => return zap_failed(caller, service, e),
        }
    };
    Reply::status(status)
}

fn unmap_physical(state: &VmState, caller: Caller, service: Service, args: [u64; 3]) -> Outcome {
    let [logical, bytes, control] = args;
    if let Some(stop) = reserved_bits(state, caller, service, &args, control, VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK) {
        return stop;
    }
    let status = if bytes % PAGE_SIZE != 0 || bytes > u64::from(u32::MAX) {
        Status::VM_EINVAL_MUNMAP_BYTES_NOT_MULTIPLE
    } else if logical % PAGE_SIZE != 0 {
        Status::VM_EINVAL_MUNMAP_BAD_ADDR_BOUNDARY
    } else if bytes == 0 {
        Status::OK
    } else {
        let k = &mut *kernel(state);
        let unmapped = if control & VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK != 0 {
            k.dgux.unmap_physical(view(state), &mut k.frames, logical, bytes)
        } else {
            let pid = lock(&state.contexts[caller.vcpu]).pid;
            k.processes.unmap_physical(state.ram.memory(), &mut k.frames, pid, logical, bytes)
        };
        match unmapped {
            Ok(status) => status,
            Err(e) => return zap_failed(caller, service, e),
        }
    };
    Reply::status(status)
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::dgux::*;
    use kmemvisor_abi::layout::{self, PAGE_SIZE};
    use kmemvisor_abi::{Service, Status};
    use vm_memory::{Bytes, GuestAddress};

    use crate::checker::ViolationKind;
    use crate::memory_model::paging::PteFlags;
    use crate::report::ExitCause;
    use crate::services::{Outcome, Reply};
    use crate::state::{VmConfig, VmState};
    use crate::testing::{call, kinds, state, state_with, status, violations};

    fn get(s: &VmState, service: Service, bytes: u64, alignment: u32) -> u64 {
        match call(s, service, &[bytes, u64::from(alignment)]) {
            Outcome::Reply(Reply { status: Status::OK, value }) => value,
            other => panic!("get of {bytes} failed: {other:?}"),
        }
    }

    fn report(s: &VmState) -> crate::memory_model::kernel_memory::DgUxReport {
        let k = s.kernel.lock().expect("lock");
        k.dgux.report(&k.frames, k.pager.counts().injected_pagein_failures)
    }

    #[test]
    fn every_alignment_is_honoured_and_no_page_cross_never_crosses() {
        let s = state();
        for (alignment, align) in [
            (VM_BYTE_ALIGNED, 1),
            (VM_WORD_ALIGNED, 4),
            (VM_DOUBLE_WORD_ALIGNED, 8),
            (VM_DEFAULT_ALIGNMENT, 8),
            (VM_PAGE_ALIGNED, 4096),
        ] {
            let _ = get(&s, Service::VmPerhapsGetWiredMemory, 5, VM_BYTE_ALIGNED);
            let p = get(&s, Service::VmPerhapsGetWiredMemory, align.max(24), alignment);
            assert_eq!(p % align, 0, "alignment {alignment}");
            assert!((layout::WIRED_ARENA_VA..layout::WIRED_ARENA_VA + layout::ARENA_SIZE).contains(&p));
        }
        for bytes in [8, 100, 4000, 4096] {
            let p = get(&s, Service::VmPerhapsGetUnwiredMemory, bytes, VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS);
            assert_eq!(p / PAGE_SIZE, (p + bytes - 1) / PAGE_SIZE, "{bytes} bytes at {p:#x} crosses a page");
            assert!(p >= layout::UNWIRED_ARENA_VA);
        }
        assert!(violations(&s).is_empty());
    }

    #[test]
    fn bad_gets_are_refused_with_a_violation_and_no_memory() {
        let s = state();
        for (bytes, alignment) in [
            (0, VM_BYTE_ALIGNED),
            (100, VM_PAGE_ALIGNED),
            (2, VM_WORD_ALIGNED),
            (4097, VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS),
            (16, 6),
            (1 << 32, VM_BYTE_ALIGNED),
        ] {
            let reply = call(&s, Service::VmGetWiredMemory, &[bytes, u64::from(alignment)]);
            assert_eq!(
                reply,
                Outcome::Reply(Reply { status: Status::EINVAL, value: VM_INVALID_MEMORY_PTR }),
                "{bytes} {alignment}"
            );
        }
        assert_eq!(
            kinds(&s),
            [
                "dgux.get-zero-bytes",
                "dgux.get-smaller-than-alignment",
                "dgux.get-smaller-than-alignment",
                "dgux.no-page-cross-too-large",
                "dgux.bad-alignment",
                "dgux.uint32-overflow"
            ]
        );
        assert_eq!(report(&s).live_allocations, 0);
    }

    #[test]
    fn running_out_halts_demand_gets_and_fails_perhaps_gets() {
        let s = state();
        let huge = 0xf000_0000;
        let reply = call(&s, Service::VmPerhapsGetUnwiredMemory, &[huge, u64::from(VM_PAGE_ALIGNED)]);
        assert_eq!(reply, Outcome::Reply(Reply { status: Status::ENOMEM, value: VM_INVALID_MEMORY_PTR }));
        let Outcome::Stop(cause) = call(&s, Service::VmGetWiredMemory, &[huge, u64::from(VM_PAGE_ALIGNED)]) else {
            panic!("a demand get that cannot be met must halt")
        };
        assert!(matches!(*cause, ExitCause::DgUxAbort { code: "VM_PANIC_GET_WIRED_MEMORY", .. }), "{cause:?}");
        assert!(violations(&s).is_empty(), "running out is not misuse");
        // The largest size a uint32_t holds is a size, not an overflow.
        let largest = call(&s, Service::VmPerhapsGetWiredMemory, &[u64::from(u32::MAX), u64::from(VM_BYTE_ALIGNED)]);
        assert_eq!(largest, Outcome::Reply(Reply { status: Status::ENOMEM, value: VM_INVALID_MEMORY_PTR }));
        assert!(violations(&s).is_empty(), "{:?}", kinds(&s));
    }

    #[test]
    fn injected_failures_follow_the_spec() {
        let fail_alloc = crate::memory_model::inject::FailSpec { nth: Some(2), ..Default::default() };
        let s = state_with(VmConfig { fail_alloc, ..VmConfig::default() });
        get(&s, Service::VmPerhapsGetWiredMemory, 64, VM_DEFAULT_ALIGNMENT);
        let second = call(&s, Service::VmPerhapsGetWiredMemory, &[64, u64::from(VM_DEFAULT_ALIGNMENT)]);
        assert_eq!(second, Outcome::Reply(Reply { status: Status::ENOMEM, value: 0 }));
        get(&s, Service::VmPerhapsGetWiredMemory, 64, VM_DEFAULT_ALIGNMENT);
        assert_eq!(report(&s).injected_failures, 1);
    }

    #[test]
    fn leaks_tell_dgux_allocations_from_xmalloc_ones() {
        let s = state();
        let wired = get(&s, Service::VmGetWiredMemory, 64, VM_DEFAULT_ALIGNMENT);
        let heap = crate::testing::ok(&s, Service::Xmalloc, &[32, 3, kmemvisor_abi::aix::KERNEL_HEAP]);
        let leaks = {
            let k = s.kernel.lock().expect("lock");
            k.dgux.leaks(&k.frames)
        };
        let seen: Vec<(u64, ViolationKind, &str)> = leaks.iter().map(|l| (l.address, l.kind, l.service)).collect();
        assert_eq!(
            seen,
            [(wired, ViolationKind::LeakDgUxAllocation, "vm_get_wired_memory"), (heap, ViolationKind::LeakXmalloc, "xmalloc")]
        );
        assert_eq!(leaks[0].message, format!("64 bytes of wired memory at {wired:#x} are still allocated at exit"));
        assert!(leaks[1].message.starts_with("xmalloc of 32 bytes from the kernel_heap at"), "{}", leaks[1].message);
    }

    #[test]
    fn releases_must_match_the_get_exactly() {
        let s = state();
        let p = get(&s, Service::VmGetWiredMemory, 64, VM_DEFAULT_ALIGNMENT);
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[p, 65]), Status::EINVAL);
        assert_eq!(status(&s, Service::VmReleaseUnwiredMemory, &[p, 64]), Status::EINVAL);
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[p + 8, 56]), Status::EINVAL);
        let v = violations(&s);
        assert!(v[0].contains("expected the 64 bytes"), "{}", v[0]);
        assert!(v[1].contains("allocated as wired"), "{}", v[1]);
        assert!(v[2].contains("not at its start"), "{}", v[2]);
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[p, 64]), Status::OK);
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[p, 64]), Status::EINVAL, "double release");
        assert!(violations(&s)[3].contains("no live allocation"));
        assert_eq!(
            kinds(&s),
            ["dgux.release-size-mismatch", "dgux.release-wrong-type", "dgux.release-not-start", "dgux.release-no-allocation"]
        );
    }

    #[test]
    fn released_pages_are_unmapped_but_shared_pages_stay() {
        let s = state();
        let m = s.ram.memory();
        let page = get(&s, Service::VmGetWiredMemory, 4096, VM_PAGE_ALIGNED);
        let a = get(&s, Service::VmGetWiredMemory, 32, VM_DEFAULT_ALIGNMENT);
        let b = get(&s, Service::VmGetWiredMemory, 32, VM_DEFAULT_ALIGNMENT);
        assert_eq!(a / PAGE_SIZE, b / PAGE_SIZE);
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[page, 4096]), Status::OK);
        assert_eq!(s.space.translate(m, page), None);
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[a, 32]), Status::OK);
        assert!(s.space.translate(m, b).is_some(), "b still lives on the page");
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[b, 32]), Status::OK);
        assert_eq!(s.space.translate(m, b), None);
    }

    #[test]
    fn only_an_allocations_own_wiring_blocks_its_release() {
        let s = state();
        let a = get(&s, Service::VmGetUnwiredMemory, 32, VM_DEFAULT_ALIGNMENT);
        let b = get(&s, Service::VmGetUnwiredMemory, 32, VM_DEFAULT_ALIGNMENT);
        assert_eq!(status(&s, Service::VmWireMemory, &[b, 0, 32]), Status::OK);
        assert_eq!(status(&s, Service::VmReleaseUnwiredMemory, &[a, 32]), Status::OK, "b's wiring is not a's");
        assert_eq!(status(&s, Service::VmReleaseUnwiredMemory, &[b, 32]), Status::EINVAL, "b is alone on its wired page now");
        assert!(violations(&s)[0].contains("still wired"));
        assert_eq!(status(&s, Service::VmUnwireMemory, &[b, 0, 32]), Status::OK);
        assert_eq!(status(&s, Service::VmReleaseUnwiredMemory, &[b, 32]), Status::OK);
    }

    #[test]
    fn wire_counts_round_to_pages_and_never_go_below_their_floor() {
        let s = state();
        let wired = get(&s, Service::VmGetWiredMemory, 2 * 4096, VM_PAGE_ALIGNED);
        let unwired = get(&s, Service::VmGetUnwiredMemory, 2 * 4096, VM_PAGE_ALIGNED);
        // Wired memory starts at 1: unwiring it straight away goes below.
        assert_eq!(status(&s, Service::VmUnwireMemory, &[wired, 0, 1]), Status::EINVAL);
        // Unwired memory starts at 0: one wire of a byte range crossing the page boundary wires both pages.
        assert_eq!(status(&s, Service::VmWireMemory, &[unwired + 4000, 0, 200]), Status::OK);
        assert_eq!(status(&s, Service::VmUnwireMemory, &[unwired + 4096, 0, 1]), Status::OK);
        assert_eq!(status(&s, Service::VmUnwireMemory, &[unwired, 0, 8192]), Status::EINVAL, "page 2 is back at 0");
        assert_eq!(status(&s, Service::VmUnwireMemory, &[unwired, 0, 1]), Status::OK);
        assert_eq!(violations(&s).len(), 2);
        assert!(violations(&s)[0].contains("below its initial count 1"));
        assert_eq!(status(&s, Service::VmUnwireMemory, &[wired, 1, 1]), Status::VM_STATUS_PROCESS_HAS_NO_VM);
        assert_eq!(status(&s, Service::VmUnwireMemory, &[0x5000, 0, 1]), Status::EINVAL);
    }

    #[test]
    fn check_access_answers_each_status() {
        let s = state();
        let unwired = get(&s, Service::VmGetUnwiredMemory, 4096, VM_PAGE_ALIGNED);
        let check = |start, user, bytes, access| status(&s, Service::VmCheckAccessAndWireMemory, &[start, user, bytes, access]);
        assert_eq!(check(unwired, 0, 100, SC_WRITE_ACCESS), Status::OK);
        assert_eq!(check(unwired, 1, 100, SC_READ_ACCESS), Status::VM_STATUS_PROCESS_HAS_NO_VM);
        assert_eq!(check(unwired, 0, 2 * 4096, SC_READ_ACCESS), Status::VM_EFAULT_INVALID_ADDRESS);
        assert_eq!(check(u64::MAX - 10, 0, 100, SC_READ_ACCESS), Status::VM_EFAULT_INVALID_ADDRESS);
        assert_eq!(check(s.image.entry, 0, 1, SC_WRITE_ACCESS), Status::VM_EFAULT_ACCESS_DENIED, "code is read-only");
        assert_eq!(check(s.image.entry, 0, 1, SC_READ_ACCESS), Status::OK, "and readable");
        assert_eq!(check(unwired, 0, 1, SC_EXECUTE_ACCESS), Status::VM_EFAULT_ACCESS_DENIED, "data is no-execute");
        assert_eq!(check(layout::SYSTEM_TABLES_VA, 0, 1, SC_READ_ACCESS), Status::VM_EFAULT_ACCESS_DENIED);
        assert_eq!(check(unwired, 0, 1, 8), Status::EINVAL);
        assert_eq!(check(unwired, 0, 0, SC_READ_ACCESS), Status::OK, "nothing to wire");
        for _ in 1..MAX_WIRE_COUNT {
            assert_eq!(check(unwired, 0, 1, SC_NO_ACCESS), Status::OK);
        }
        assert_eq!(check(unwired, 0, 1, SC_READ_ACCESS), Status::VM_EFAULT_UNWIRE_AND_VALIDATE_REGIONS);
    }

    #[test]
    fn injected_page_in_failures_answer_vm_eio_and_wire_nothing() {
        let pagein = crate::memory_model::inject::FailSpec { nth: Some(2), ..Default::default() };
        let s = state_with(VmConfig { fail_pagein: pagein, ..VmConfig::default() });
        let p = get(&s, Service::VmGetUnwiredMemory, 2 * 4096, VM_PAGE_ALIGNED);
        let wired = get(&s, Service::VmGetWiredMemory, 4096, VM_PAGE_ALIGNED);
        let check = |start, bytes| status(&s, Service::VmCheckAccessAndWireMemory, &[start, 0, bytes, SC_READ_ACCESS]);
        assert_eq!(check(wired, 1), Status::OK, "wired memory is resident: no page-in");
        assert_eq!(check(p, 1), Status::OK, "page-in 1");
        assert_eq!(check(p, 2 * 4096), Status::VM_EIO, "page-in 2 (the second page) fails");
        assert_eq!(status(&s, Service::VmUnwireMemory, &[p + 4096, 0, 1]), Status::EINVAL, "nothing was wired");
        assert_eq!(check(p, 2 * 4096), Status::OK);
        assert_eq!(report(&s).injected_pagein_failures, 1);
    }

    #[test]
    fn marks_are_set_only_when_the_unwire_is_valid() {
        let s = state();
        let p = get(&s, Service::VmGetUnwiredMemory, 3 * 4096, VM_PAGE_ALIGNED);
        for i in 0..3 {
            assert_eq!(status(&s, Service::VmWireMemory, &[p + i * 4096, 0, 1]), Status::OK);
        }
        assert_eq!(status(&s, Service::VmMarkRefAndUnwireMemory, &[p, 0, 1]), Status::OK);
        assert_eq!(status(&s, Service::VmMarkModAndRefAndUnwireMemory, &[p + 4096, 0, 1]), Status::OK);
        assert_eq!(status(&s, Service::VmMarkAndUnwireMemory, &[p + 8192, 0, 1, SC_READ_ACCESS]), Status::OK);
        assert_eq!(status(&s, Service::VmMarkModAndRefAndUnwireMemory, &[p, 0, 1]), Status::EINVAL, "below the floor");
        let pages = report(&s).pages;
        let marks: Vec<(bool, bool)> = pages.iter().map(|p| (p.referenced, p.modified)).collect();
        assert_eq!(marks, [(true, false), (true, true), (true, false)]);
    }

    #[test]
    fn physical_addresses_are_per_page_and_not_contiguous_by_default() {
        for (contiguous_frames, expect_contiguous) in [(false, false), (true, true)] {
            let s = state_with(VmConfig { contiguous_frames, ..VmConfig::default() });
            let p = get(&s, Service::VmGetWiredMemory, 4 * 4096, VM_PAGE_ALIGNED);
            let out = get(&s, Service::VmGetWiredMemory, 8, VM_DEFAULT_ALIGNMENT);
            let physical: Vec<u64> = (0..4)
                .map(|i| match call(&s, Service::VmGetPhysicalByteAddress, &[p + i * 4096 + 5, 0, out]) {
                    Outcome::Reply(Reply { status: Status::OK, value }) => value,
                    other => panic!("{other:?}"),
                })
                .collect();
            let stored: u64 =
                s.ram.memory().read_obj(GuestAddress(s.space.translate(s.ram.memory(), out).expect("out").gpa)).expect("read");
            assert_eq!(stored, physical[3], "the address is stored at the pointer too");
            assert!(physical.iter().all(|a| a % 4096 == 5 && *a >= layout::FREE_RAM_GPA));
            let contiguous = physical.windows(2).all(|w| w[1] == w[0] + 4096);
            assert_eq!(contiguous, expect_contiguous, "{physical:x?}");
        }
        let s = state();
        let out = get(&s, Service::VmGetWiredMemory, 8, VM_DEFAULT_ALIGNMENT);
        let invalid = call(&s, Service::VmGetPhysicalByteAddress, &[0xdead_0000, 0, out]);
        assert_eq!(invalid, Outcome::Reply(Reply { status: Status::OK, value: VM_INVALID_PHYSICAL_ADDRESS }));
        assert_eq!(status(&s, Service::VmGetPhysicalByteAddress, &[out, 0, 0x10]), Status::EFAULT);
        assert_eq!(status(&s, Service::VmGetPhysicalByteAddress, &[out, 0, s.image.entry]), Status::EFAULT, "code is read-only");
    }

    #[test]
    fn map_physical_checks_in_the_manual_pages_order_and_sets_cache_bits() {
        let s = state();
        let m = s.ram.memory();
        let data = get(&s, Service::VmGetUnwiredMemory, 2 * 4096, VM_PAGE_ALIGNED);
        let wired = get(&s, Service::VmGetWiredMemory, 4096, VM_PAGE_ALIGNED);
        let frame = s.space.translate(m, wired).expect("wired").gpa;
        let kernel = VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK;
        let map = |l, p, n, sharing, control| {
            status(&s, Service::VmMapPhysicalMemory, &[l, p, n, PROT_READ | PROT_WRITE, sharing, control])
        };
        assert_eq!(map(data, frame, 4096, MAP_PRIVATE, kernel), Status::VM_EINVAL_MMAP_UNSUPPORTED);
        assert_eq!(
            map(data + 1, frame, 100, MAP_PRIVATE, kernel),
            Status::VM_EINVAL_MMAP_UNSUPPORTED,
            "sharing is checked first"
        );
        assert_eq!(map(data, frame, 0, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_BYTES_NOT_MULTIPLE);
        assert_eq!(map(data, frame, 100, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_BYTES_NOT_MULTIPLE);
        assert_eq!(map(data + 8, frame, 4096, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_BAD_ADDR_BOUNDARY);
        assert_eq!(map(data, frame + 8, 4096, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_BAD_ADDR_BOUNDARY);
        assert_eq!(map(data, frame, 4096, MAP_SHARED, 0), Status::VM_EINVAL_MMAP_SPACE_UNALLOCATED, "user address");
        assert_eq!(map(0xdead_0000, frame, 4096, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_SPACE_UNALLOCATED);
        assert_eq!(map(wired, frame, 4096, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_ADDRESS_NOT_DATA);
        assert_eq!(map(layout::stack_bottom(0), frame, 4096, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_ADDRESS_NOT_DATA);
        assert_eq!(map(data, frame, 3 * 4096, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_BAD_REGION);
        assert_eq!(
            map(data, layout::PAGE_TABLES_GPA, 4096, MAP_SHARED, kernel),
            Status::VM_EINVAL_MMAP_BAD_REGION,
            "VMM-owned frames"
        );
        assert_eq!(map(data, s.ram.size(), 4096, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_BAD_REGION, "beyond RAM");
        let window = kmemvisor_abi::dma::DMA_ENGINE_GPA;
        assert_eq!(
            map(data, window + 4096, 4096, MAP_SHARED, kernel),
            Status::VM_EINVAL_MMAP_BAD_REGION,
            "past the engine's page"
        );
        assert_eq!(map(data, window, 2 * 4096, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_BAD_REGION, "more than the page");
        let table =
            (layout::FREE_RAM_GPA..s.ram.size()).step_by(4096).find(|&f| s.kernel.lock().expect("lock").frames.is_table(f));
        let table = table.expect("the arenas' page tables come from the frame allocator");
        assert_eq!(map(data, table, 4096, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_BAD_REGION, "a page table");
        assert!(violations(&s).is_empty(), "every refusal so far is a status");

        // Cache-inhibit by default, write-through on request: read the PTEs back.
        assert_eq!(map(data, frame, 4096, MAP_SHARED, kernel), Status::OK);
        assert_eq!(map(data + 4096, frame, 4096, MAP_SHARED, kernel | VM_MMAP_WRITE_THROUGH_MASK), Status::OK);
        let (first, second) = (s.space.translate(m, data).expect("mapped"), s.space.translate(m, data + 4096).expect("mapped"));
        assert_eq!((first.gpa, second.gpa), (frame, frame));
        assert!(first.flags.contains(PteFlags::CACHE_DISABLE) && !first.flags.contains(PteFlags::WRITE_THROUGH));
        assert!(second.flags.contains(PteFlags::WRITE_THROUGH) && !second.flags.contains(PteFlags::CACHE_DISABLE));
        assert!(first.flags.contains(PteFlags::WRITABLE | PteFlags::NO_EXECUTE));
        assert_eq!(map(data, frame, 4096, MAP_SHARED, kernel), Status::VM_EINVAL_MMAP_ALREADY_MAPPED);
        assert_eq!(map(data, frame, 4096, MAP_SHARED, kernel | 4), Status::VM_EINVAL_MMAP_ALREADY_MAPPED);
        assert_eq!(kinds(&s), ["dgux.reserved-control-bits"], "reserved control bits are a violation");
    }

    #[test]
    fn unmap_physical_checks_in_the_manual_pages_order_and_restores_zeroed_pages() {
        let s = state();
        let m = s.ram.memory();
        let data = get(&s, Service::VmGetUnwiredMemory, 2 * 4096, VM_PAGE_ALIGNED);
        let wired = get(&s, Service::VmGetWiredMemory, 2 * 4096, VM_PAGE_ALIGNED);
        let own = s.space.translate(m, data).expect("own").gpa;
        m.write_obj(0x5a5a_u64, GuestAddress(own)).expect("write");
        let frame = s.space.translate(m, wired).expect("wired").gpa;
        let kernel = VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK;
        let unmap = |l, n, control| status(&s, Service::VmUnmapPhysicalMemory, &[l, n, control]);
        assert_eq!(unmap(data, 100, kernel), Status::VM_EINVAL_MUNMAP_BYTES_NOT_MULTIPLE);
        assert_eq!(unmap(data + 8, 4096, kernel), Status::VM_EINVAL_MUNMAP_BAD_ADDR_BOUNDARY);
        assert_eq!(unmap(data, 4096, 0), Status::VM_EINVAL_MUNMAP_BAD_REGION, "user address");
        assert_eq!(unmap(data, 3 * 4096, kernel), Status::VM_EINVAL_MUNMAP_BAD_REGION);
        assert_eq!(unmap(wired, 4096, kernel), Status::VM_EINVAL_MUNMAP_BAD_REGION);
        assert_eq!(unmap(data, 4096, kernel), Status::VM_EINVAL_MUNMAP_DATA_NOT_MAPPED);
        assert_eq!(unmap(data, 0, kernel), Status::OK);
        assert_eq!(
            unmap(u64::MAX - 4095, 4096, kernel),
            Status::VM_EINVAL_MUNMAP_BAD_REGION,
            "the top page of the address space"
        );
        let map = status(&s, Service::VmMapPhysicalMemory, &[data, frame, 2 * 4096, PROT_READ, MAP_SHARED, 1]);
        assert_eq!(map, Status::OK);
        assert!(!s.space.translate(m, data).expect("mapped").flags.contains(PteFlags::WRITABLE), "no PROT_WRITE");
        assert_eq!(s.space.translate(m, data + 4096).expect("mapped").gpa, frame + 4096, "page by page from the frame on");
        assert_eq!(unmap(data + 4096, 4096, kernel), Status::OK, "a part may be unmapped");
        assert_eq!(unmap(data, 2 * 4096, kernel), Status::VM_EINVAL_MUNMAP_DATA_NOT_MAPPED);
        assert_eq!(unmap(data, 4096, kernel), Status::OK);
        let back = s.space.translate(m, data).expect("own again");
        assert_eq!(back.gpa, own);
        assert_eq!(m.read_obj::<u64>(GuestAddress(own)).expect("read"), 0, "the old contents are discarded");
        assert!(violations(&s).is_empty());
    }

    #[test]
    fn user_addresses_are_the_current_processs() {
        use crate::testing::ok;
        use kmemvisor_abi::aix::{PROT_READ, PROT_WRITE};
        let s = state();
        let user = 0x1000_0000;
        assert_eq!(
            status(&s, Service::VmCheckAccessAndWireMemory, &[user, 1, 10, SC_READ_ACCESS]),
            Status::VM_STATUS_PROCESS_HAS_NO_VM
        );
        let pid = ok(&s, Service::ProcessCreate, &[]);
        ok(&s, Service::ProcessSwitch, &[pid]);
        ok(&s, Service::ProcessMap, &[user, 2 * 4096, PROT_READ | PROT_WRITE]);
        ok(&s, Service::ProcessMap, &[user + 0x10_0000, 4096, PROT_READ]);
        let check = |start, bytes, access| status(&s, Service::VmCheckAccessAndWireMemory, &[start, 1, bytes, access]);
        assert_eq!(check(user + 4000, 200, SC_WRITE_ACCESS), Status::OK, "both pages");
        assert_eq!(check(user + 0x10_0000, 1, SC_WRITE_ACCESS), Status::VM_EFAULT_ACCESS_DENIED, "read-only user page");
        assert_eq!(check(user + 3 * 4096, 1, SC_READ_ACCESS), Status::VM_EFAULT_INVALID_ADDRESS);
        assert_eq!(check(layout::IMAGE_VA, 1, SC_READ_ACCESS), Status::VM_EFAULT_INVALID_ADDRESS, "not a user address");
        let out = get(&s, Service::VmGetWiredMemory, 8, VM_DEFAULT_ALIGNMENT);
        let Outcome::Reply(Reply { status: Status::OK, value: physical }) =
            call(&s, Service::VmGetPhysicalByteAddress, &[user + 5, 1, out])
        else {
            panic!("the physical address of a user page")
        };
        assert!(physical % 4096 == 5 && physical >= layout::FREE_RAM_GPA);
        let kernel_as_user = call(&s, Service::VmGetPhysicalByteAddress, &[layout::IMAGE_VA, 1, out]);
        assert_eq!(kernel_as_user, Outcome::Reply(Reply { status: Status::OK, value: VM_INVALID_PHYSICAL_ADDRESS }));
        assert_eq!(status(&s, Service::ProcessSwitch, &[0]), Status::OK);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::EBUSY, "its pages are wired");
        let leaks = {
            let k = s.kernel.lock().expect("lock");
            k.dgux.leaks(&k.frames)
        };
        assert_eq!(leaks.iter().filter(|l| l.message.contains(&format!("of process {pid}"))).count(), 2);
        ok(&s, Service::ProcessSwitch, &[pid]);
        assert_eq!(status(&s, Service::VmMarkModAndRefAndUnwireMemory, &[user, 1, 2 * 4096]), Status::OK);
        assert_eq!(status(&s, Service::VmUnwireMemory, &[user, 1, 1]), Status::EINVAL, "below 0");
        assert!(violations(&s)[0].contains("below its initial count 0"));
        let marked = report(&s).pages.into_iter().filter(|p| p.pid == pid && p.referenced && p.modified).count();
        assert_eq!(marked, 2);
        ok(&s, Service::ProcessSwitch, &[0]);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::OK);
        assert!(report(&s).pages.iter().all(|p| p.pid != pid), "a destroyed process's pages are forgotten");
    }

    #[test]
    fn leaks_are_listed_at_exit() {
        let s = state();
        let p = get(&s, Service::VmGetUnwiredMemory, 4096, VM_PAGE_ALIGNED);
        assert_eq!(status(&s, Service::VmWireMemory, &[p, 0, 1]), Status::OK);
        let leaks = {
            let k = s.kernel.lock().expect("lock");
            k.dgux.leaks(&k.frames)
        };
        assert_eq!(leaks.len(), 2);
        assert_eq!(leaks[0].service, "vm_get_unwired_memory");
        assert_eq!(leaks[0].rip, 0x1234, "the RIP of the get");
        assert!(leaks[1].message.contains("still wired at exit"));
        let q = get(&s, Service::VmPerhapsGetWiredMemory, 8, VM_DEFAULT_ALIGNMENT);
        let leaks = {
            let k = s.kernel.lock().expect("lock");
            k.dgux.leaks(&k.frames)
        };
        assert!(leaks.iter().any(|l| l.service == "vm_perhaps_get_wired_memory" && l.address == q), "{leaks:?}");
    }

    /// Maps the frame under `owner` at `alias` (a page of an unwired allocation) with `vm_map_physical_memory`.
    fn alias(s: &VmState, alias: u64, owner_frame: u64) {
        let args = [alias, owner_frame, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK];
        assert_eq!(status(s, Service::VmMapPhysicalMemory, &args), Status::OK);
    }

    fn frame_of(s: &VmState, va: u64) -> u64 {
        s.space.translate(s.ram.memory(), va).expect("mapped").gpa
    }

    fn check_ledger(s: &VmState) {
        assert_eq!(s.kernel.lock().expect("lock").frames.check(), Ok(()));
    }

    #[test]
    fn a_frame_wired_through_an_alias_is_not_released_and_its_marks_show_on_the_owner() {
        let s = state();
        let owner = get(&s, Service::VmGetWiredMemory, 4096, VM_PAGE_ALIGNED);
        let frame = frame_of(&s, owner);
        let data = get(&s, Service::VmGetUnwiredMemory, 4096, VM_PAGE_ALIGNED);
        alias(&s, data, frame);
        assert_eq!(status(&s, Service::VmWireMemory, &[data, 0, 1]), Status::OK, "wired through the alias");
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[owner, 4096]), Status::EINVAL);
        let v = violations(&s);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains(&format!("page {owner:#x} is still wired: wire count 2, initial 1")), "{}", v[0]);
        assert!(v[0].contains("nothing was released"), "{}", v[0]);
        assert_eq!(frame_of(&s, owner), frame, "nothing was freed");
        assert_eq!(s.kernel.lock().expect("lock").frames.role(frame), Some(crate::memory_model::ledger::Role::KernelMemory));
        let leaks = {
            let k = s.kernel.lock().expect("lock");
            k.dgux.leaks(&k.frames)
        };
        assert!(
            leaks.iter().any(|l| l.address == owner && l.message.contains("still wired at exit: wire count 2, initial 1")),
            "{leaks:?}"
        );
        // Unwired and marked through the alias: the owner's page shows the marks.
        assert_eq!(status(&s, Service::VmMarkModAndRefAndUnwireMemory, &[data, 0, 1]), Status::OK);
        let page = report(&s).pages.into_iter().find(|p| p.va == format!("{owner:#x}")).expect("the owner's page is reported");
        assert_eq!((page.wire_count, page.initial_wire_count, page.referenced, page.modified), (1, 1, true, true));
        assert_eq!(page.gpa, format!("{frame:#x}"));
        assert_eq!(
            status(&s, Service::VmUnwireMemory, &[owner, 0, 1]),
            Status::EINVAL,
            "back at its floor, whatever the address"
        );
        check_ledger(&s);
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[owner, 4096]), Status::OK);
        check_ledger(&s);
    }

    #[test]
    fn a_frame_pinned_through_an_alias_is_not_released() {
        use kmemvisor_abi::aix::KERNEL_HEAP;
        let s = state();
        let owner = get(&s, Service::VmGetUnwiredMemory, 4096, VM_PAGE_ALIGNED);
        let block = crate::testing::ok(&s, Service::Xmalloc, &[4096, 12, KERNEL_HEAP]);
        let (data, data2) = (
            get(&s, Service::VmGetUnwiredMemory, 4096, VM_PAGE_ALIGNED),
            get(&s, Service::VmGetUnwiredMemory, 4096, VM_PAGE_ALIGNED),
        );
        alias(&s, data, frame_of(&s, owner));
        alias(&s, data2, frame_of(&s, block));
        assert_eq!(status(&s, Service::Pin, &[data, 1]), Status::OK);
        assert_eq!(status(&s, Service::Pin, &[data2 + 8, 8]), Status::OK);
        assert_eq!(status(&s, Service::VmReleaseUnwiredMemory, &[owner, 4096]), Status::EBUSY);
        assert_eq!(status(&s, Service::Xmfree, &[block, KERNEL_HEAP]), Status::EBUSY);
        let v = violations(&s);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains(&format!("page {owner:#x} is still pinned: 1 pin(s) above its initial count")), "{}", v[0]);
        assert!(
            v[1].contains(&format!("xmfree of {block:#x} from heap {KERNEL_HEAP}: page {block:#x} is still pinned")),
            "{}",
            v[1]
        );
        let leaks = {
            let k = s.kernel.lock().expect("lock");
            k.aix.leaks(&k.frames, &k.dgux.origins)
        };
        assert_eq!(leaks.len(), 2, "{leaks:?}");
        assert!(leaks.iter().all(|l| l.service == "pin" && l.message.contains("still pinned at exit: pin count 1, initial 0")));
        assert_eq!((leaks[0].address, leaks[1].address), (owner.min(block), owner.max(block)), "named by the owner's page");
        // Unpinned through the owner's address: the pins were the frame's.
        assert_eq!(status(&s, Service::Unpin, &[owner, 1]), Status::OK);
        assert_eq!(status(&s, Service::Unpin, &[block, 1]), Status::OK);
        assert_eq!(status(&s, Service::Unpin, &[data, 1]), Status::EINVAL, "unpinned already");
        check_ledger(&s);
        assert_eq!(status(&s, Service::VmReleaseUnwiredMemory, &[owner, 4096]), Status::OK);
        assert_eq!(status(&s, Service::Xmfree, &[block, KERNEL_HEAP]), Status::OK);
        check_ledger(&s);
    }

    #[test]
    fn a_process_page_wired_or_pinned_through_a_kernel_alias_keeps_the_process() {
        use crate::testing::ok;
        use kmemvisor_abi::aix::{PROT_READ, PROT_WRITE};
        let s = state();
        let user = 0x1000_0000;
        let pid = ok(&s, Service::ProcessCreate, &[]);
        ok(&s, Service::ProcessSwitch, &[pid]);
        ok(&s, Service::ProcessMap, &[user, 4096, PROT_READ | PROT_WRITE]);
        let frame = {
            let k = s.kernel.lock().expect("lock");
            k.processes.get(pid).expect("live").space().translate(s.ram.memory(), user).expect("mapped").gpa
        };
        ok(&s, Service::ProcessSwitch, &[0]);
        let data = get(&s, Service::VmGetUnwiredMemory, 4096, VM_PAGE_ALIGNED);
        alias(&s, data, frame);
        assert_eq!(status(&s, Service::VmWireMemory, &[data, 0, 1]), Status::OK);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::EBUSY, "wired through the kernel alias");
        let leaks = {
            let k = s.kernel.lock().expect("lock");
            k.dgux.leaks(&k.frames)
        };
        assert!(
            leaks
                .iter()
                .any(|l| l.message == format!("user page {user:#x} of process {pid} is still wired at exit: wire count 1"))
        );
        assert_eq!(status(&s, Service::VmUnwireMemory, &[data, 0, 1]), Status::OK);
        assert_eq!(status(&s, Service::Pin, &[data, 1]), Status::OK);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::EBUSY, "pinned through the kernel alias");
        assert_eq!(status(&s, Service::Unpin, &[data, 1]), Status::OK);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::OK);
        check_ledger(&s);
    }

    #[test]
    fn device_registers_are_resident_by_nature() {
        use kmemvisor_abi::dma::DMA_ENGINE_GPA;
        let s = state();
        let data = get(&s, Service::VmGetUnwiredMemory, 4096, VM_PAGE_ALIGNED);
        alias(&s, data, DMA_ENGINE_GPA);
        assert_eq!(status(&s, Service::VmCheckAccessAndWireMemory, &[data, 0, 8, SC_WRITE_ACCESS]), Status::OK);
        assert_eq!(status(&s, Service::VmMarkModAndRefAndUnwireMemory, &[data, 0, 8]), Status::OK);
        assert_eq!(status(&s, Service::VmUnwireMemory, &[data, 0, 8]), Status::OK, "nothing is counted");
        assert_eq!(status(&s, Service::Pin, &[data, 8]), Status::OK);
        assert_eq!(status(&s, Service::Unpin, &[data, 8]), Status::OK);
        assert_eq!(status(&s, Service::Unpin, &[data, 8]), Status::OK, "nothing is counted");
        assert!(report(&s).pages.is_empty());
        assert!(violations(&s).is_empty());
        check_ledger(&s);
    }

    #[test]
    fn a_release_names_the_allocation_a_pointer_is_inside_and_no_other() {
        let s = state();
        let p = get(&s, Service::VmPerhapsGetWiredMemory, 64, VM_DEFAULT_ALIGNMENT);
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[p + 8, 64]), Status::EINVAL);
        assert!(violations(&s)[0].contains(&format!("inside the allocation of 64 bytes at {p:#x}")), "{:?}", violations(&s));
        // Its end is outside it.
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[p + 64, 64]), Status::EINVAL);
        assert!(violations(&s)[1].contains("no live allocation starts there"), "{:?}", violations(&s));
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[p, 64]), Status::OK);
    }

    #[test]
    fn xmfree_of_dgux_memory_frees_nothing() {
        let s = state();
        let p = get(&s, Service::VmPerhapsGetWiredMemory, 64, VM_DEFAULT_ALIGNMENT);
        let kernel_heap = 1;
        assert_ne!(status(&s, Service::Xmfree, &[p, kernel_heap]), Status::OK);
        assert_eq!(report(&s).live_allocations, 1, "still live");
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[p, 64]), Status::OK);
    }

    #[test]
    fn an_unwire_below_the_floor_names_the_first_page_below_it() {
        let s = state();
        let p = get(&s, Service::VmPerhapsGetWiredMemory, 2 * PAGE_SIZE, VM_PAGE_ALIGNED);
        // Page 2 is wired once more: only page 1 would go below its initial count.
        assert_eq!(status(&s, Service::VmWireMemory, &[p + PAGE_SIZE, 0, PAGE_SIZE]), Status::OK);
        assert_eq!(status(&s, Service::VmUnwireMemory, &[p, 0, 2 * PAGE_SIZE]), Status::EINVAL);
        assert!(violations(&s)[0].starts_with(&format!("unwiring page {p:#x} ")), "{:?}", violations(&s));
        // Now page 2 alone: it is named, not the range's first page.
        assert_eq!(status(&s, Service::VmUnwireMemory, &[p + PAGE_SIZE, 0, PAGE_SIZE]), Status::OK);
        assert_eq!(status(&s, Service::VmWireMemory, &[p, 0, PAGE_SIZE]), Status::OK);
        assert_eq!(status(&s, Service::VmUnwireMemory, &[p, 0, 2 * PAGE_SIZE]), Status::EINVAL);
        assert!(violations(&s)[1].starts_with(&format!("unwiring page {:#x} ", p + PAGE_SIZE)), "{:?}", violations(&s));
    }

    #[test]
    fn a_get_keeps_frames_for_page_tables_in_reserve() {
        // A get of N pages needs N - 2 + 4 free frames (its first and last
        // page may be backed already; 4 are kept for page tables).
        let pages = 8;
        for (free, expected) in [(pages + 1, Status::ENOMEM), (pages + 2, Status::OK)] {
            let s = state();
            // Warm the arena's page tables up first, so that the get needs only its own frames.
            let warm = get(&s, Service::VmPerhapsGetWiredMemory, PAGE_SIZE, VM_PAGE_ALIGNED);
            assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[warm, PAGE_SIZE]), Status::OK);
            {
                let mut k = s.kernel.lock().expect("lock");
                let spare = k.frames.free_frames() - free;
                k.frames.allocate(spare, crate::memory_model::ledger::Role::KernelMemory).expect("frames to spare");
                assert_eq!(k.frames.free_frames(), free);
            }
            let got = status(&s, Service::VmPerhapsGetWiredMemory, &[pages * PAGE_SIZE, u64::from(VM_PAGE_ALIGNED)]);
            assert_eq!(got, expected, "{free} free frames");
        }
    }

    #[test]
    fn an_unwire_over_free_ram_names_the_page_that_maps_it() {
        use kmemvisor_abi::aix::{PROT_READ, PROT_WRITE};
        let s = state();
        let w = get(&s, Service::VmPerhapsGetUnwiredMemory, 2 * PAGE_SIZE, VM_PAGE_ALIGNED);
        let free = (layout::FREE_RAM_GPA..s.ram.size())
            .step_by(PAGE_SIZE as usize)
            .find(|&f| s.kernel.lock().expect("lock").frames.role(f) == Some(crate::memory_model::ledger::Role::Free))
            .expect("a free frame");
        let args = [w + PAGE_SIZE, free, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK];
        assert_eq!(status(&s, Service::VmMapPhysicalMemory, &args), Status::OK);
        assert_eq!(status(&s, Service::VmWireMemory, &[w, 0, PAGE_SIZE]), Status::OK);
        assert_eq!(status(&s, Service::VmUnwireMemory, &[w, 0, 2 * PAGE_SIZE]), Status::EINVAL);
        assert_eq!(violations(&s), [format!("page {:#x} is not allocated memory; nothing was unwired or marked", w + PAGE_SIZE)]);
    }
}
