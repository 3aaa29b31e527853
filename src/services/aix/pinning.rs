//! AIX memory pinning: `pin`, `unpin`, `pinu`, `unpinu`, `pincode`, `unpincode`.
//!
//! Pin counts are VMM-side and the frames': a call pins the frames its pages
//! map now, so a pin made through one address (a `vm_map_physical_memory`
//! alias, say) holds the frame for every other address of it. A frame's
//! count starts at its initial value — 1 for the frames of the `pinned_heap`,
//! which are pinned from birth, 0 for every other — and may never go below
//! it: "unpin below zero is an error" (`EINVAL`, nothing changes), not a
//! violation. Every call is all or nothing. Pinned frames — above 0, the
//! pinned heap's included — may not exceed [`PIN_LIMIT_PERCENT`] of guest
//! RAM (`ENOMEM`). A page that maps device registers (the DMA engine's
//! window) is resident by nature: pinning or unpinning it counts nothing;
//! a page that maps free RAM is no one's memory: pinning it is `EINVAL`.
//!
//! Context rules (the AIX documentation's "only under a process"): pinning user memory at
//! interrupt level, or unpinning it there, is a violation (`EPERM`); kernel
//! memory may be unpinned at interrupt level.
//!
//! A page still pinned above its initial count when the guest exits is a
//! violation. Memory whose frame is pinned cannot be freed (`vm_release_*`,
//! `xmfree`: a violation, `EBUSY`), and a process with a pinned frame cannot
//! be destroyed (`EBUSY`).

use kmemvisor_abi::aix::{UIO_SYSSPACE, UIO_USERISPACE, UIO_USERSPACE};
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use kmemvisor_abi::{Service, Status};

use crate::checker::{Violation, ViolationKind};
use crate::memory_model::kernel_memory::page_span;
use crate::memory_model::ledger::{LedgerError, Owner};
use crate::memory_model::paging::PteFlags;
use crate::memory_model::pins::{KERNEL, MAX_PIN_LENGTH, Origin, PIN_LIMIT_PERCENT};
use crate::services::{Caller, Outcome, Reply, refuse};
use crate::state::{Kernel, VmState};
use crate::sync::lock;

/// Serves the pinning services.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let [a0, a1, a2, ..] = args;
    let origin = Origin { service: service.name(), vcpu: caller.vcpu, rip: caller.rip };
    // A page is pinned in memory: one that is out comes in first.
    if let Err(answer) = super::paging::bring_all_in(state) {
        return answer;
    }
    match service {
        Service::Pin => Reply::status(kernel_range(state, a0, a1, Change::Pin(origin))),
        Service::Unpin => Reply::status(kernel_range(state, a0, a1, Change::Unpin(origin))),
        Service::Pinu | Service::Unpinu => {
            let change = if service == Service::Pinu { Change::Pin(origin) } else { Change::Unpin(origin) };
            match a2 {
                UIO_SYSSPACE => Reply::status(kernel_range(state, a0, a1, change)),
                UIO_USERSPACE | UIO_USERISPACE => user_range(state, caller, service, &args[..3], change),
                _ => Reply::status(Status::EINVAL),
            }
        }
        Service::Pincode => Reply::status(code(state, a0, Change::Pin(origin))),
        Service::Unpincode => Reply::status(code(state, a0, Change::Unpin(origin))),
        _ => Reply::status(Status::ENOSYS),
    }
}

/// A pin or an unpin, with the call that makes it.
#[derive(Clone, Copy, Debug)]
enum Change {
    Pin(Origin),
    Unpin(Origin),
}

/// The most pages that may be pinned.
fn limit(state: &VmState) -> u64 {
    state.ram.frames() / 100 * PIN_LIMIT_PERCENT
}

/// One more pin or one less on the frame of each of `pages` (page, frame)
/// of `pid` (0: kernel pages), all or none.
fn apply(state: &VmState, k: &mut Kernel, pid: u64, pages: &[(u64, u64)], change: Change) -> Status {
    let result = match change {
        Change::Pin(origin) => {
            let frames: Vec<(u64, Owner)> = pages.iter().map(|&(va, gpa)| (gpa, Owner { pid, va })).collect();
            k.frames.pin(&frames, origin, limit(state))
        }
        Change::Unpin(origin) => {
            let frames: Vec<u64> = pages.iter().map(|&(_, gpa)| gpa).collect();
            let unpinned = k.frames.unpin(&frames);
            if unpinned.is_ok() {
                unpinned_in_transfer(state, k, pages, origin);
            }
            unpinned
        }
    };
    match result {
        Ok(()) => Status::OK,
        Err(LedgerError::PinLimit(_)) => Status::ENOMEM,
        Err(_) => Status::EINVAL,
    }
}

/// An unpin that left a frame a queued or running DMA transfer touches
/// without a pin: the device may still read or write memory that can now
/// be paged out. A violation of the call, which still happens.
fn unpinned_in_transfer(state: &VmState, k: &Kernel, pages: &[(u64, u64)], origin: Origin) {
    let Some(&(va, frame)) = pages.iter().find(|&&(_, gpa)| !k.frames.is_pinned(gpa) && k.frames.transfers_on(gpa) > 0) else {
        return;
    };
    let message = format!(
        "{} unpins page {va:#x} (frame {frame:#x}) while a DMA transfer that touches it is queued or running: the device may \
         still read or write it; wait for the transfer to complete",
        origin.service
    );
    let kind = ViolationKind::DmaUnpinDuringTransfer;
    state.record_violation(Violation::new(kind, origin.service, &[va], origin.vcpu, origin.rip, message));
}

/// One more pin (`pin`) or one less on the frame of each of `pages` (page,
/// frame) of `pid` (0: kernel pages), all or none, made by `origin`:
/// `xmempin` and `xmemunpin`.
pub(crate) fn pin_pages(state: &VmState, k: &mut Kernel, pid: u64, pages: &[(u64, u64)], origin: Origin, pin: bool) -> Status {
    apply(state, k, pid, pages, if pin { Change::Pin(origin) } else { Change::Unpin(origin) })
}

/// The pages of `[addr, addr + length)`, or `EINVAL` for a length of 0 or
/// above `MAX_PIN_LENGTH` or a range that wraps.
fn span(addr: u64, length: u64) -> Result<(u64, u64), Status> {
    if length == 0 || length > MAX_PIN_LENGTH {
        return Err(Status::EINVAL);
    }
    page_span(addr, length).ok_or(Status::EINVAL)
}

/// The pages of `[first, end)` with the frames `frame` says they map now,
/// or `None` at the first that maps none.
fn mapped_pages(first: u64, end: u64, frame: impl Fn(u64) -> Option<u64>) -> Option<Vec<(u64, u64)>> {
    // At most MAX_PIN_LENGTH / PAGE_SIZE + 1 pages; stops at the first unmapped one.
    (first..end).step_by(PAGE_SIZE as usize).map(|page| Some((page, frame(page)?))).collect()
}

/// `pin`, `unpin` and the `UIO_SYSSPACE` forms of `pinu` and `unpinu`.
fn kernel_range(state: &VmState, addr: u64, length: u64, change: Change) -> Status {
    let (first, end) = match span(addr, length) {
        Ok(span) => span,
        Err(status) => return status,
    };
    if first < layout::KERNEL_START {
        return Status::EINVAL;
    }
    let memory = state.ram.memory();
    let k = &mut *lock(&state.kernel);
    // Supervisor-only pages (the CPU tables) are the VMM's, not the guest's to pin.
    let guest_page = |page| state.space.translate(memory, page).filter(|t| t.flags.contains(PteFlags::USER)).map(|t| t.gpa);
    let Some(pages) = mapped_pages(first, end, guest_page) else {
        return Status::EINVAL;
    };
    apply(state, k, KERNEL, &pages, change)
}

/// The user-space forms of `pinu` and `unpinu`, on the current process.
fn user_range(state: &VmState, caller: Caller, service: Service, args: &[u64], change: Change) -> Outcome {
    let context = state.contexts.get(caller.vcpu).map(|c| *lock(c)).unwrap_or_default();
    if context.at_interrupt_level() {
        let (kind, why) = match change {
            Change::Pin(_) => (
                ViolationKind::AixPinuAtInterruptLevel,
                "user pinning only under a process: pinu of user memory at interrupt level",
            ),
            Change::Unpin(_) => (
                ViolationKind::AixUnpinuAtInterruptLevel,
                "unpinning user memory at interrupt level: unpinu of user memory must run under the process",
            ),
        };
        return refuse(state, caller, kind, service, args, why.into(), Status::EPERM);
    }
    let (first, end) = match span(args[0], args[1]) {
        Ok(span) => span,
        Err(status) => return Reply::status(status),
    };
    if context.pid == 0 || first < layout::USER_START || end > layout::USER_END {
        return Reply::status(Status::EFAULT);
    }
    let memory = state.ram.memory();
    let k = &mut *lock(&state.kernel);
    let Some(process) = k.processes.get(context.pid) else { return Reply::status(Status::EFAULT) };
    let Some(pages) = mapped_pages(first, end, |page| process.space().translate(memory, page).map(|t| t.gpa)) else {
        return Reply::status(Status::EFAULT);
    };
    Reply::status(apply(state, k, context.pid, &pages, change))
}

/// `pincode` and `unpincode`: every page of every segment of the loaded
/// object whose code contains `function`.
///
/// The loaded objects are the main image and each module loaded with
/// `--module`; their pages never overlap (the loader refuses that), so a
/// function names exactly one. Each object has its own `pincode` count:
/// `unpincode` of a function undoes a `pincode` of the same object, and
/// pins or unpins that object's pages only.
fn code(state: &VmState, function: u64, change: Change) -> Status {
    let found = state.objects().enumerate().find(|(_, segments)| segments.iter().any(|s| s.is_code() && s.contains(function)));
    let Some((object, segments)) = found else {
        return Status::EINVAL;
    };
    let mut pages: Vec<u64> = segments.iter().flat_map(|s| (0..s.pages).map(move |i| s.va + i * PAGE_SIZE)).collect();
    pages.sort_unstable();
    pages.dedup();
    let memory = state.ram.memory();
    let Some(pages) = pages.iter().map(|&va| state.space.translate(memory, va).map(|t| (va, t.gpa))).collect::<Option<Vec<_>>>()
    else {
        return Status::EINVAL;
    };
    let k = &mut *lock(&state.kernel);
    let outstanding = k.aix.pins.code_pins.get(&object).copied().unwrap_or(0);
    if matches!(change, Change::Unpin(_)) && outstanding == 0 {
        return Status::EINVAL;
    }
    let status = apply(state, k, KERNEL, &pages, change);
    if status == Status::OK {
        match change {
            Change::Pin(_) => {
                k.aix.pins.code_pins.insert(object, outstanding + 1);
            }
            Change::Unpin(_) if outstanding == 1 => {
                k.aix.pins.code_pins.remove(&object);
            }
            Change::Unpin(_) => {
                k.aix.pins.code_pins.insert(object, outstanding - 1);
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::aix::{KERNEL_HEAP, PINNED_HEAP, PROT_WRITE, UIO_SYSSPACE, UIO_USERISPACE, UIO_USERSPACE};
    use kmemvisor_abi::dgux::VM_PAGE_ALIGNED;
    use kmemvisor_abi::layout::{self, PAGE_SIZE};
    use kmemvisor_abi::{Service, Status};

    use crate::loader::Segment;
    use crate::memory_model::ledger::TransferRanges;
    use crate::memory_model::paging::PteFlags;
    use crate::state::VmState;

    use crate::testing::{ok as value, state, state_with_module, status, violations};

    /// Pins above the initial count of the frame `page` of `pid` (0: the kernel) maps now.
    fn count(s: &VmState, pid: u64, page: u64) -> u32 {
        let k = s.kernel.lock().expect("lock");
        let space = if pid == 0 { Some(&s.space) } else { k.processes.get(pid).map(|p| p.space()) };
        space.and_then(|space| space.translate(s.ram.memory(), page)).map_or(0, |t| k.frames.pin_count(t.gpa))
    }

    fn wired(s: &VmState, bytes: u64) -> u64 {
        value(s, Service::VmGetWiredMemory, &[bytes, u64::from(VM_PAGE_ALIGNED)])
    }

    fn leaks(s: &VmState) -> Vec<crate::checker::Leak> {
        let k = s.kernel.lock().expect("lock");
        k.aix.leaks(&k.frames, &k.dgux.origins)
    }

    #[test]
    fn the_last_unpin_of_a_frame_a_transfer_touches_is_caught_at_the_call() {
        let s = state();
        let p = wired(&s, 2 * PAGE_SIZE);
        let frame = |va: u64| s.space.translate(s.ram.memory(), va).expect("mapped").gpa;
        let (first, second) = (frame(p), frame(p + PAGE_SIZE));
        assert_eq!(status(&s, Service::Pin, &[p, 2 * PAGE_SIZE]), Status::OK);
        assert_eq!(status(&s, Service::Pin, &[p, 1]), Status::OK, "the first page twice");
        s.kernel
            .lock()
            .expect("lock")
            .frames
            .begin_transfer(&TransferRanges { reads: Some(first..first + 1), writes: Some(second..second + 1) });
        assert_eq!(status(&s, Service::Unpin, &[p, 2 * PAGE_SIZE]), Status::OK);
        let v = s.checker.violations();
        assert_eq!(crate::testing::kinds(&s), ["dma.unpin-during-transfer"], "the second page lost its last pin");
        assert!(
            v[0].message.starts_with(&format!("unpin unpins page {:#x} (frame {second:#x}) while a DMA transfer", p + PAGE_SIZE))
        );
        s.kernel
            .lock()
            .expect("lock")
            .frames
            .end_transfer(&TransferRanges { reads: Some(first..first + 1), writes: Some(second..second + 1) });
        assert_eq!(status(&s, Service::Unpin, &[p, 1]), Status::OK);
        assert_eq!(s.checker.violations().len(), 1, "no transfer any more");
    }

    #[test]
    fn pin_checks_its_arguments() {
        let s = state();
        let p = wired(&s, 2 * PAGE_SIZE);
        for (addr, length) in [
            (p, 0),
            (p, 1 << 31),
            (p, u64::MAX),
            (u64::MAX - 10, 100),
            (0x1000_0000, 8),
            (layout::USER_START, 8),
            (p, 3 * PAGE_SIZE),
            (layout::KERNEL_HEAP_VA, 1),
        ] {
            for service in [Service::Pin, Service::Unpin] {
                assert_eq!(status(&s, service, &[addr, length]), Status::EINVAL, "{} {addr:#x} {length:#x}", service.name());
            }
            assert_eq!(status(&s, Service::Pinu, &[addr, length, UIO_SYSSPACE]), Status::EINVAL);
        }
        assert_eq!(count(&s, 0, p), 0, "nothing was pinned by a refused call");
        assert!(violations(&s).is_empty());
    }

    #[test]
    fn pin_counts_are_per_page_and_never_go_below_zero() {
        let s = state();
        let p = wired(&s, 3 * PAGE_SIZE);
        assert_eq!(status(&s, Service::Unpin, &[p, 1]), Status::EINVAL, "unpin below zero");
        assert_eq!(status(&s, Service::Pin, &[p + PAGE_SIZE - 1, 2]), Status::OK, "two pages");
        assert_eq!(status(&s, Service::Pin, &[p + PAGE_SIZE, 10]), Status::OK);
        assert_eq!((count(&s, 0, p), count(&s, 0, p + PAGE_SIZE), count(&s, 0, p + 2 * PAGE_SIZE)), (1, 2, 0));
        assert_eq!(status(&s, Service::Unpin, &[p, 3 * PAGE_SIZE]), Status::EINVAL, "page 3 is at 0: nothing changes");
        assert_eq!((count(&s, 0, p), count(&s, 0, p + PAGE_SIZE)), (1, 2));
        assert_eq!(status(&s, Service::Unpin, &[p, 2 * PAGE_SIZE]), Status::OK);
        assert_eq!(status(&s, Service::Unpinu, &[p + PAGE_SIZE, 1, UIO_SYSSPACE]), Status::OK);
        assert_eq!((count(&s, 0, p), count(&s, 0, p + PAGE_SIZE)), (0, 0));
        // Kernel memory may be unpinned at interrupt level.
        assert_eq!(status(&s, Service::Pinu, &[p, 1, UIO_SYSSPACE]), Status::OK);
        assert_eq!(value(&s, Service::InterruptEnter, &[]), 1);
        assert_eq!(status(&s, Service::Unpinu, &[p, 1, UIO_SYSSPACE]), Status::OK);
        assert_eq!(status(&s, Service::Pinu, &[p, 1, 3]), Status::EINVAL, "unknown segflag");
        assert!(violations(&s).is_empty(), "{:?}", violations(&s));
        assert!(leaks(&s).is_empty());
    }

    #[test]
    fn pinned_heap_pages_start_pinned_and_keep_their_floor() {
        let s = state();
        let pinned = value(&s, Service::Xmalloc, &[64, 3, PINNED_HEAP]);
        let pageable = value(&s, Service::Xmalloc, &[64, 3, KERNEL_HEAP]);
        assert_eq!(status(&s, Service::Unpin, &[pinned, 64]), Status::EINVAL, "below its initial count of 1");
        assert_eq!(status(&s, Service::Unpin, &[pageable, 64]), Status::EINVAL, "below 0");
        assert_eq!(status(&s, Service::Pin, &[pinned, 64]), Status::OK);
        assert_eq!(status(&s, Service::Pin, &[pageable, 64]), Status::OK);
        let leaked = leaks(&s);
        assert_eq!(leaked.len(), 2);
        assert!(
            leaked.iter().any(|l| l.address == pinned - pinned % PAGE_SIZE && l.message.contains("pin count 2, initial 1")),
            "{leaked:?}"
        );
        assert!(
            leaked
                .iter()
                .all(|l| l.service == "pin" && l.rip == crate::testing::RIP && l.message.contains("still pinned at exit"))
        );
        assert_eq!(status(&s, Service::Unpin, &[pinned, 64]), Status::OK);
        assert_eq!(status(&s, Service::Unpin, &[pinned, 64]), Status::EINVAL);
        assert_eq!(status(&s, Service::Unpin, &[pageable, 64]), Status::OK);
        assert!(leaks(&s).is_empty());
        let k = s.kernel.lock().expect("lock");
        assert_eq!(k.frames.pinned_frames(), 1, "the pinned heap's one frame");
        assert_eq!(k.frames.check(), Ok(()));
    }

    #[test]
    fn user_pinning_needs_a_process_and_process_context() {
        let s = state();
        let va = 0x1000_0000;
        assert_eq!(status(&s, Service::Pinu, &[va, 8, UIO_USERSPACE]), Status::EFAULT, "no current process");
        let pid = value(&s, Service::ProcessCreate, &[]);
        assert_eq!(status(&s, Service::ProcessSwitch, &[pid]), Status::OK);
        assert_eq!(status(&s, Service::ProcessMap, &[va, 2 * PAGE_SIZE, PROT_WRITE]), Status::OK);
        assert_eq!(status(&s, Service::Pinu, &[va, 3 * PAGE_SIZE, UIO_USERSPACE]), Status::EFAULT, "page 3 is unmapped");
        assert_eq!(status(&s, Service::Pinu, &[layout::KERNEL_HEAP_VA, 8, UIO_USERSPACE]), Status::EFAULT, "not user");
        assert_eq!(status(&s, Service::Pinu, &[va, 0, UIO_USERSPACE]), Status::EINVAL);
        assert_eq!(status(&s, Service::Unpinu, &[va, 8, UIO_USERSPACE]), Status::EINVAL, "not pinned");
        assert_eq!(status(&s, Service::Pinu, &[va, 2 * PAGE_SIZE, UIO_USERSPACE]), Status::OK);
        assert_eq!(status(&s, Service::Pinu, &[va, 8, UIO_USERISPACE]), Status::OK);
        assert_eq!((count(&s, pid, va), count(&s, pid, va + PAGE_SIZE), count(&s, 0, va)), (2, 1, 0));
        assert_eq!((count(&s, pid, va), count(&s, pid, va + PAGE_SIZE)), (2, 1));
        assert_eq!(status(&s, Service::Pin, &[va, 8]), Status::EINVAL, "pin is for kernel addresses");
        assert_eq!(status(&s, Service::Pinu, &[va, 8, UIO_SYSSPACE]), Status::EINVAL);
        let leaked = leaks(&s);
        assert_eq!(leaked.len(), 2);
        assert!(leaked[0].message.contains(&format!("of process {pid} is still pinned at exit")), "{}", leaked[0].message);
        assert_eq!(leaked[0].service, "pinu");

        // At interrupt level: violations, and nothing changes.
        assert_eq!(value(&s, Service::InterruptEnter, &[]), 1);
        assert_eq!(status(&s, Service::Pinu, &[va, 8, UIO_USERSPACE]), Status::EPERM);
        assert_eq!(status(&s, Service::Unpinu, &[va, 8, UIO_USERSPACE]), Status::EPERM);
        let v = violations(&s);
        assert_eq!(v.len(), 2);
        assert!(v[0].contains("user pinning only under a process"), "{}", v[0]);
        assert!(v[1].contains("unpinning user memory at interrupt level"), "{}", v[1]);
        assert_eq!(crate::testing::kinds(&s), ["aix.pinu-at-interrupt-level", "aix.unpinu-at-interrupt-level"]);
        assert_eq!(count(&s, pid, va), 2);
        assert_eq!(value(&s, Service::InterruptLeave, &[]), 0);

        assert_eq!(status(&s, Service::Unpinu, &[va, 2 * PAGE_SIZE, UIO_USERSPACE]), Status::OK);
        assert_eq!(status(&s, Service::Unpinu, &[va, 2 * PAGE_SIZE, UIO_USERSPACE]), Status::EINVAL, "page 2 is at 0");
        assert_eq!(status(&s, Service::Unpinu, &[va, 8, UIO_USERISPACE]), Status::OK);
        assert_eq!((count(&s, pid, va), count(&s, pid, va + PAGE_SIZE)), (0, 0));
        assert!(leaks(&s).is_empty());
        // Another process has its own counts for the same address.
        let other = value(&s, Service::ProcessCreate, &[]);
        assert_eq!(status(&s, Service::Pinu, &[va, 8, UIO_USERSPACE]), Status::OK);
        assert_eq!(status(&s, Service::ProcessSwitch, &[other]), Status::OK);
        assert_eq!(status(&s, Service::Unpinu, &[va, 8, UIO_USERSPACE]), Status::EFAULT, "not mapped in this process");
        assert_eq!(status(&s, Service::ProcessMap, &[va, PAGE_SIZE, PROT_WRITE]), Status::OK);
        assert_eq!(status(&s, Service::Unpinu, &[va, 8, UIO_USERSPACE]), Status::EINVAL, "not pinned in this process");
        assert_eq!(count(&s, pid, va), 1);
    }

    #[test]
    fn pincode_pins_the_whole_image_and_unpincode_undoes_it() {
        let s = state();
        let entry = s.image.entry;
        let segments = s.image.segments.clone();
        let data = segments.iter().find(|seg| seg.flags.contains(PteFlags::NO_EXECUTE)).map(|seg| seg.va);
        assert_eq!(status(&s, Service::Unpincode, &[entry]), Status::EINVAL, "not pinned");
        for bad in [0, layout::KERNEL_HEAP_VA, u64::MAX] {
            assert_eq!(status(&s, Service::Pincode, &[bad]), Status::EINVAL);
        }
        if let Some(data) = data {
            assert_eq!(status(&s, Service::Pincode, &[data]), Status::EINVAL, "data is no function");
        }
        assert_eq!(status(&s, Service::Pincode, &[entry]), Status::OK);
        assert_eq!(status(&s, Service::Pincode, &[entry]), Status::OK);
        let pages: u64 = segments.iter().map(|seg| seg.pages).sum();
        for seg in &segments {
            assert_eq!(count(&s, 0, seg.va), 2);
            assert_eq!(count(&s, 0, seg.va + (seg.pages - 1) * PAGE_SIZE), 2);
        }
        assert_eq!(leaks(&s).len() as u64, pages);
        assert!(leaks(&s).iter().all(|l| l.service == "pincode"));
        // An explicit unpin takes a page back to 1; two unpincodes cannot both succeed then.
        assert_eq!(status(&s, Service::Unpin, &[entry, 1]), Status::OK);
        assert_eq!(status(&s, Service::Unpincode, &[entry]), Status::OK);
        assert_eq!(status(&s, Service::Unpincode, &[entry]), Status::EINVAL, "the entry page is at 0 now");
        assert_eq!(status(&s, Service::Pin, &[entry, 1]), Status::OK);
        assert_eq!(status(&s, Service::Unpincode, &[entry]), Status::OK);
        assert_eq!(status(&s, Service::Unpincode, &[entry]), Status::EINVAL, "pincode undone twice");
        assert!(leaks(&s).is_empty());
        assert!(violations(&s).is_empty());
    }

    /// The pages of `segments`.
    fn pages(segments: &[Segment]) -> Vec<u64> {
        segments.iter().flat_map(|seg| (0..seg.pages).map(move |i| seg.va + i * PAGE_SIZE)).collect()
    }

    #[test]
    fn pincode_pins_only_the_loaded_object_that_holds_the_function() {
        let s = state_with_module();
        let (module, image) = (pages(&s.modules[0].segments), pages(&s.image.segments));
        let (in_module, in_image) = (s.modules[0].entry, s.image.entry);
        let counts = |pages: &[u64]| pages.iter().map(|&p| count(&s, 0, p)).collect::<Vec<u32>>();
        let all = |n: u32, pages: &[u64]| vec![n; pages.len()];

        assert_eq!(status(&s, Service::Pincode, &[in_module]), Status::OK);
        assert_eq!((counts(&module), counts(&image)), (all(1, &module), all(0, &image)), "the module's pages only");
        assert_eq!(leaks(&s).len(), module.len());
        assert_eq!(status(&s, Service::Unpincode, &[in_image]), Status::EINVAL, "the image has no pincode of its own");
        assert_eq!(status(&s, Service::Pincode, &[in_image]), Status::OK);
        assert_eq!((counts(&module), counts(&image)), (all(1, &module), all(1, &image)));
        assert_eq!(status(&s, Service::Unpincode, &[in_module]), Status::OK);
        assert_eq!((counts(&module), counts(&image)), (all(0, &module), all(1, &image)), "the image stays pinned");
        assert_eq!(status(&s, Service::Unpincode, &[in_module]), Status::EINVAL, "the module's pincode is undone");
        assert_eq!(status(&s, Service::Unpincode, &[in_image]), Status::OK);
        assert!(leaks(&s).is_empty());

        let data = s.modules[0].segments.iter().find(|seg| !seg.is_code()).expect("mod-sample has data");
        assert_eq!(status(&s, Service::Pincode, &[data.va]), Status::EINVAL, "module data is no function");
        assert_eq!(status(&s, Service::Pincode, &[s.modules[0].base + s.modules[0].size]), Status::EINVAL, "past the module");
        assert!(violations(&s).is_empty());
    }
}
