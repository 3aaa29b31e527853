//! AIX memory management: `init_heap`, `xmalloc`, `xmfree`.
//!
//! Two heaps exist from boot: the pageable `kernel_heap` ([`KERNEL_HEAP`]) and
//! the `pinned_heap` ([`PINNED_HEAP`]), whose pages are pinned from birth.
//! Both are page-backed kernel memory exactly like the DG/UX arenas (see
//! [`KernelMemory`](crate::memory_model::kernel_memory::KernelMemory)): each page gets
//! its own zeroed frame when first used, and a page left without a live
//! allocation is unmapped, so that a use after free faults.
//!
//! `init_heap` makes a heap over a region of kernel memory the caller owns
//! (memory it got from another allocator, or its own data). Its bookkeeping is
//! VMM-side — a first-fit [`Arena`] over the region and a table of live
//! allocations — so the region's bytes are only handed out, never used for
//! metadata. Its pages stay the caller's: freeing never unmaps them.
//!
//! Each heap remembers its most recent frees ([`RECENT_FREES`]): freeing one
//! of them again is a double free (a violation); any other pointer the heap
//! does not know is AIX's error return, `EINVAL`, without a violation.

use std::collections::BTreeMap;

use kmemvisor_abi::aix::XMALLOC_MAX_ALIGN_LOG2;
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use kmemvisor_abi::{Service, Status};

use crate::checker::ViolationKind;
use crate::memory_model::arena::Arena;
use crate::memory_model::heaps::{Allocation, AreaHeap, Backing, Heap, MAX_HEAP_SIZE, MAX_HEAPS, MIN_HEAP_SIZE, RecentFrees};
use crate::memory_model::kernel_memory::{GetError, GuestView, ReleaseError, ReleaseRefusal, zero_range};
use crate::memory_model::paging::PteFlags;
use crate::services::{Caller, Outcome, Reply, refuse, zap_failed};
use crate::state::VmState;
use crate::sync::lock;

/// Serves `init_heap`, `xmalloc` and `xmfree`.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let [a0, a1, a2, ..] = args;
    match service {
        Service::InitHeap => init_heap(state, a0, a1, a2).into(),
        Service::Xmalloc => xmalloc(state, caller, a0, a1, a2).into(),
        Service::Xmfree => xmfree(state, caller, a0, a1),
        _ => Reply::status(Status::ENOSYS),
    }
}

fn view(state: &VmState) -> GuestView<'_> {
    GuestView { memory: state.ram.memory(), space: &state.space }
}

fn init_heap(state: &VmState, area: u64, size: u64, flags: u64) -> Result<u64, Status> {
    if flags != 0 || !(MIN_HEAP_SIZE..=MAX_HEAP_SIZE).contains(&size) || !area.is_multiple_of(8) || area < layout::KERNEL_START {
        return Err(Status::EINVAL);
    }
    let end = area.checked_add(size).ok_or(Status::EINVAL)?;
    let memory = state.ram.memory();
    let k = &mut *lock(&state.kernel);
    // At most a million pages; the walk stops at the first bad one.
    let wanted = PteFlags::USER | PteFlags::WRITABLE;
    let mut page = area - area % PAGE_SIZE;
    while page < end {
        if state.space.translate(memory, page).is_none_or(|t| !t.flags.contains(wanted)) {
            return Err(Status::EINVAL);
        }
        page = match page.checked_add(PAGE_SIZE) {
            Some(next) => next,
            None => break,
        };
    }
    let heaps = &mut k.aix.heaps;
    if heaps.overlaps(area, end) {
        return Err(Status::EINVAL);
    }
    if heaps.regions.len() >= MAX_HEAPS {
        return Err(Status::ENOMEM);
    }
    let handle = heaps.next;
    heaps.next += 1;
    heaps.regions.insert(area, end);
    let backing = Backing::Area(AreaHeap { start: area, arena: Arena::new(area, size), allocations: BTreeMap::new() });
    heaps.heaps.insert(handle, Heap { backing, recent: RecentFrees::default() });
    Ok(handle)
}

fn xmalloc(state: &VmState, caller: Caller, size: u64, align_log2: u64, heap: u64) -> Result<u64, Status> {
    if size == 0 || size > u64::from(u32::MAX) || align_log2 > XMALLOC_MAX_ALIGN_LOG2 {
        return Err(Status::EINVAL);
    }
    let align = 1u64 << align_log2;
    let stack = caller.origin(state);
    let k = &mut *lock(&state.kernel);
    let Some(h) = k.aix.heaps.heaps.get_mut(&heap) else { return Err(Status::EINVAL) };
    match &mut h.backing {
        Backing::Boot(region) => {
            match k.dgux.allocate(view(state), &mut k.frames, *region, false, size, align, false, (caller.vcpu, &stack)) {
                Ok(ptr) => Ok(ptr),
                Err(GetError::OutOfMemory) => Err(Status::ENOMEM),
                Err(GetError::Refused(_)) => Err(Status::EINVAL),
            }
        }
        Backing::Area(area) => {
            if k.dgux.inject_failure() {
                return Err(Status::ENOMEM);
            }
            let ptr = area.arena.allocate(size, align, false).ok_or(Status::ENOMEM)?;
            if !zero_range(state.ram.memory(), &state.space, ptr, size) {
                area.arena.release(ptr, size);
                return Err(Status::ENOMEM);
            }
            let vcpu = u16::try_from(caller.vcpu).unwrap_or(u16::MAX);
            let origin = k.dgux.origins.intern(&stack);
            area.allocations.insert(ptr, Allocation { origin, bytes: size as u32, vcpu });
            Ok(ptr)
        }
    }
}

fn xmfree(state: &VmState, caller: Caller, ptr: u64, heap: u64) -> Outcome {
    let args = [ptr, heap];
    let problem = {
        let k = &mut *lock(&state.kernel);
        let Some(h) = k.aix.heaps.heaps.get_mut(&heap) else { return Reply::status(Status::EINVAL) };
        let bytes = match &h.backing {
            Backing::Boot(_) => k.dgux.allocation_bytes(ptr),
            Backing::Area(area) => area.allocations.get(&ptr).map(|a| u64::from(a.bytes)),
        };
        if let Some(a) = bytes.and_then(|bytes| k.xmem.overlapping(0, ptr, bytes)) {
            let why = format!(
                "xmfree of {ptr:#x}, which is attached for cross-memory (xmattach on vCPU {} at RIP {:#x}): xmdetach first",
                a.origin.vcpu, a.origin.rip
            );
            return refuse(state, caller, ViolationKind::XmemFreeWhileAttached, Service::Xmfree, &args, why, Status::EBUSY);
        }
        let Some(h) = k.aix.heaps.heaps.get_mut(&heap) else { return Reply::status(Status::EINVAL) };
        let freed = match &mut h.backing {
            Backing::Boot(region) => match k.dgux.free(view(state), &mut k.frames, *region, ptr) {
                Ok(_) => Ok(()),
                Err(ReleaseError::Refused(refusal @ ReleaseRefusal::StillWired { .. })) => {
                    Err(Some((refusal.kind(), format!("xmfree of {ptr:#x} from heap {heap}: {refusal}"))))
                }
                Err(ReleaseError::Refused(refusal)) if refusal.held_elsewhere() => {
                    let why = format!("xmfree of {ptr:#x} from heap {heap}: {refusal}");
                    return refuse(state, caller, refusal.kind(), Service::Xmfree, &args, why, Status::EBUSY);
                }
                Err(ReleaseError::Zap(e)) => return zap_failed(caller, Service::Xmfree, e),
                Err(ReleaseError::Refused(_)) => Err(None),
            },
            Backing::Area(area) => match area.allocations.remove(&ptr) {
                Some(a) => {
                    area.arena.release(ptr, u64::from(a.bytes));
                    Ok(())
                }
                None => Err(None),
            },
        };
        match freed {
            Ok(()) => {
                h.recent.remember(ptr);
                return Reply::ok(0);
            }
            Err(Some(problem)) => problem,
            Err(None) if h.recent.contains(ptr) => (
                ViolationKind::AixXmfreeDoubleFree,
                format!("double free: {ptr:#x} was allocated from heap {heap} and freed already"),
            ),
            // Not this heap's: AIX's error return, not misuse the VMM reports.
            Err(None) => return Reply::status(Status::EINVAL),
        }
    };
    let (kind, message) = problem;
    refuse(state, caller, kind, Service::Xmfree, &args, message, Status::EINVAL)
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::aix::{KERNEL_HEAP, PINNED_HEAP};
    use kmemvisor_abi::dgux::{VM_DEFAULT_ALIGNMENT, VM_PAGE_ALIGNED};
    use kmemvisor_abi::layout::{self, PAGE_SIZE};
    use kmemvisor_abi::{Service, Status};
    use vm_memory::{Bytes, GuestAddress};

    use crate::memory_model::inject::FailSpec;
    use crate::services::Reply;
    use crate::state::{VmConfig, VmState};
    use crate::testing::{self, state, state_with, status, violations};

    fn call(s: &VmState, service: Service, args: &[u64]) -> Reply {
        let (status, value) = testing::reply(s, service, args);
        Reply { status, value }
    }

    fn xmalloc(s: &VmState, size: u64, align_log2: u64, heap: u64) -> u64 {
        match call(s, Service::Xmalloc, &[size, align_log2, heap]) {
            Reply { status: Status::OK, value } if value != 0 => value,
            other => panic!("xmalloc({size}, {align_log2}, {heap}): {other:?}"),
        }
    }

    fn write(s: &VmState, va: u64, bytes: &[u8]) {
        crate::memory_model::guest_access::write(s.ram.memory(), &s.space, va, bytes).expect("write");
    }

    fn read(s: &VmState, va: u64, len: usize) -> Vec<u8> {
        crate::memory_model::guest_access::read(s.ram.memory(), &s.space, va, len).expect("read")
    }

    /// A wired DG/UX allocation: kernel memory the caller owns.
    fn wired(s: &VmState, bytes: u64) -> u64 {
        match call(s, Service::VmGetWiredMemory, &[bytes, u64::from(VM_PAGE_ALIGNED)]) {
            Reply { status: Status::OK, value } => value,
            other => panic!("wired get: {other:?}"),
        }
    }

    #[test]
    fn boot_heaps_hand_out_aligned_zeroed_memory_in_their_arenas() {
        let s = state();
        for (heap, base) in [(KERNEL_HEAP, layout::KERNEL_HEAP_VA), (PINNED_HEAP, layout::PINNED_HEAP_VA)] {
            for log2 in 0..=12 {
                let _ = xmalloc(&s, 3, 0, heap);
                let p = xmalloc(&s, 100, log2, heap);
                assert_eq!(p % (1 << log2), 0, "align_log2 {log2}");
                assert!((base..base + layout::ARENA_SIZE).contains(&p), "{p:#x}");
                assert_eq!(read(&s, p, 100), vec![0; 100]);
                write(&s, p, &[0xaa; 100]);
            }
            let big = xmalloc(&s, 3 * PAGE_SIZE + 5, 12, heap);
            assert_eq!(read(&s, big, 3 * PAGE_SIZE as usize + 5), vec![0; 3 * PAGE_SIZE as usize + 5]);
        }
        // Reused bytes come back zeroed.
        let p = xmalloc(&s, 64, 3, KERNEL_HEAP);
        write(&s, p, &[0x55; 64]);
        assert_eq!(status(&s, Service::Xmfree, &[p, KERNEL_HEAP]), Status::OK);
        let q = xmalloc(&s, 64, 3, KERNEL_HEAP);
        assert_eq!(read(&s, q, 64), vec![0; 64]);
        assert!(violations(&s).is_empty());
        let k = s.kernel.lock().expect("lock");
        assert_eq!(k.dgux.report(&k.frames, 0).live_allocations, 0, "heap allocations are not DG/UX memory");
    }

    #[test]
    fn bad_xmalloc_requests_return_einval_and_null_without_a_violation() {
        let s = state();
        for args in [
            [0, 3, KERNEL_HEAP],
            [1 << 32, 3, KERNEL_HEAP],
            [8, 13, PINNED_HEAP],
            [8, u64::MAX, 1],
            [8, 3, 0],
            [8, 3, 3],
            [8, 3, u64::MAX],
        ] {
            assert_eq!(call(&s, Service::Xmalloc, &args), Reply { status: Status::EINVAL, value: 0 }, "{args:x?}");
        }
        assert_eq!(call(&s, Service::Xmalloc, &[0xf000_0000, 12, KERNEL_HEAP]), Reply { status: Status::ENOMEM, value: 0 });
        assert!(violations(&s).is_empty());
    }

    #[test]
    fn fail_alloc_counts_xmalloc_as_a_get() {
        let fail_alloc = FailSpec { nth: Some(2), ..FailSpec::default() };
        let s = state_with(VmConfig { fail_alloc, ..VmConfig::default() });
        let area = wired(&s, PAGE_SIZE); // get 1
        assert_eq!(call(&s, Service::Xmalloc, &[8, 3, KERNEL_HEAP]), Reply { status: Status::ENOMEM, value: 0 }); // get 2
        let heap = call(&s, Service::InitHeap, &[area, PAGE_SIZE, 0]).value;
        xmalloc(&s, 8, 3, heap); // get 3
        let fail_alloc = FailSpec { nth: Some(1), ..FailSpec::default() };
        let s = state_with(VmConfig { fail_alloc, ..VmConfig::default() });
        let area = layout::stack_bottom(0);
        let heap = call(&s, Service::InitHeap, &[area, 64, 0]).value;
        assert_eq!(call(&s, Service::Xmalloc, &[8, 3, heap]), Reply { status: Status::ENOMEM, value: 0 }, "init_heap heaps too");
        let k = s.kernel.lock().expect("lock");
        assert_eq!(k.dgux.report(&k.frames, 0).injected_failures, 1);
    }

    #[test]
    fn xmfree_tells_double_frees_from_foreign_pointers() {
        let s = state();
        let p = xmalloc(&s, 40, 3, KERNEL_HEAP);
        let q = xmalloc(&s, 40, 3, PINNED_HEAP);
        let dgux = wired(&s, PAGE_SIZE);
        // Foreign: another heap's, inside an allocation, a DG/UX allocation, wild, unknown heap.
        for (ptr, heap) in
            [(q, KERNEL_HEAP), (p, PINNED_HEAP), (p + 8, KERNEL_HEAP), (dgux, KERNEL_HEAP), (0xdead_0000, KERNEL_HEAP), (p, 7)]
        {
            assert_eq!(status(&s, Service::Xmfree, &[ptr, heap]), Status::EINVAL, "{ptr:#x} {heap}");
        }
        assert!(violations(&s).is_empty(), "an error return, not a violation");
        assert_eq!(status(&s, Service::Xmfree, &[p, KERNEL_HEAP]), Status::OK);
        assert_eq!(status(&s, Service::Xmfree, &[p, KERNEL_HEAP]), Status::EINVAL);
        assert_eq!(status(&s, Service::Xmfree, &[q, PINNED_HEAP]), Status::OK);
        assert_eq!(status(&s, Service::Xmfree, &[q, KERNEL_HEAP]), Status::EINVAL, "freed, but from the other heap");
        let v = violations(&s);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("double free"), "{}", v[0]);
        assert_eq!(testing::kinds(&s), ["aix.xmfree-double-free"]);
        // Freed pages are unmapped: a use after free faults.
        assert_eq!(s.space.translate(s.ram.memory(), p), None);
        // A pointer handed out again is live again.
        let again = xmalloc(&s, 40, 3, KERNEL_HEAP);
        assert_eq!(again, p);
        assert_eq!(status(&s, Service::Xmfree, &[again, KERNEL_HEAP]), Status::OK);
    }

    #[test]
    fn init_heap_checks_its_region() {
        let s = state();
        let area = wired(&s, 2 * PAGE_SIZE);
        let code = s.image.entry;
        let bad = [
            [area, 2 * PAGE_SIZE, 1],        // flags
            [area, 63, 0],                   // too small
            [area + 4, 64, 0],               // not 8-aligned
            [area, 3 * PAGE_SIZE, 0],        // runs past the allocation
            [u64::MAX - 7, 64, 0],           // wraps
            [code - code % 8, 64, 0],        // read-only
            [0x1000_0000, 64, 0],            // a user address
            [layout::KERNEL_HEAP_VA, 64, 0], // unmapped
            [area, 1 << 32, 0],              // beyond a uint32
        ];
        for args in bad {
            assert_eq!(call(&s, Service::InitHeap, &args), Reply { status: Status::EINVAL, value: 0 }, "{args:x?}");
        }
        assert_eq!(call(&s, Service::InitHeap, &[area, PAGE_SIZE, 0]), Reply { status: Status::OK, value: 3 });
        assert_eq!(status(&s, Service::InitHeap, &[area + PAGE_SIZE - 8, 64, 0]), Status::EINVAL, "overlaps heap 3");
        assert_eq!(status(&s, Service::InitHeap, &[area - 8, 64, 0]), Status::EINVAL, "starts outside the allocation");
        assert_eq!(call(&s, Service::InitHeap, &[area + PAGE_SIZE, 64, 0]), Reply { status: Status::OK, value: 4 });
        // A heap over xmalloc'd memory.
        let pinned = xmalloc(&s, 1000, 3, PINNED_HEAP);
        assert_eq!(call(&s, Service::InitHeap, &[pinned, 1000, 0]), Reply { status: Status::OK, value: 5 });
        assert!(violations(&s).is_empty());
    }

    #[test]
    fn init_heap_heaps_allocate_inside_their_region_and_keep_their_pages() {
        let s = state();
        let area = wired(&s, 2 * PAGE_SIZE);
        write(&s, area, &[0xee; 2 * PAGE_SIZE as usize]);
        let heap = call(&s, Service::InitHeap, &[area + 8, 2 * PAGE_SIZE - 8, 0]).value;
        let a = xmalloc(&s, 24, 0, heap);
        assert_eq!(a, area + 8);
        let b = xmalloc(&s, 100, 12, heap);
        assert_eq!(b, area + PAGE_SIZE);
        assert_eq!(read(&s, b, 100), vec![0; 100], "zero-filled");
        assert_eq!(read(&s, b + 100, 4), vec![0xee; 4], "the bytes around are the caller's");
        assert_eq!(call(&s, Service::Xmalloc, &[PAGE_SIZE, 0, heap]), Reply { status: Status::ENOMEM, value: 0 });
        assert_eq!(status(&s, Service::Xmfree, &[a, KERNEL_HEAP]), Status::EINVAL);
        assert_eq!(status(&s, Service::Xmfree, &[a, heap]), Status::OK);
        assert!(s.space.translate(s.ram.memory(), a).is_some(), "the region's pages stay mapped");
        assert_eq!(status(&s, Service::Xmfree, &[a, heap]), Status::EINVAL);
        assert_eq!(violations(&s).len(), 1);
        assert!(violations(&s)[0].contains("double free"));
        // Live allocations are leaks.
        let leaks = {
            let k = s.kernel.lock().expect("lock");
            k.aix.leaks(&k.frames, &k.dgux.origins)
        };
        assert_eq!(leaks.len(), 1);
        assert_eq!((leaks[0].service, leaks[0].address, leaks[0].vcpu, leaks[0].rip), ("xmalloc", b, 0, testing::RIP));
        assert!(leaks[0].message.contains("100 bytes") && leaks[0].message.contains("heap 3"), "{}", leaks[0].message);
        // The region was taken back: the heap can no longer hand it out.
        assert_eq!(status(&s, Service::Xmfree, &[b, heap]), Status::OK);
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[area, 2 * PAGE_SIZE]), Status::OK);
        assert_eq!(call(&s, Service::Xmalloc, &[8, 0, heap]), Reply { status: Status::ENOMEM, value: 0 });
    }

    #[test]
    fn an_allocation_across_pages_is_zeroed_and_nothing_after_it() {
        let s = state();
        let area = wired(&s, 3 * PAGE_SIZE);
        let heap = call(&s, Service::InitHeap, &[area, 3 * PAGE_SIZE, 0]).value;
        write(&s, area, &[0xee; 3 * PAGE_SIZE as usize]);
        let first = xmalloc(&s, PAGE_SIZE + 100, 0, heap);
        let after = xmalloc(&s, 64, 0, heap);
        assert_eq!((first, after), (area, area + PAGE_SIZE + 100));
        assert_eq!(read(&s, first, (PAGE_SIZE + 100) as usize), vec![0; (PAGE_SIZE + 100) as usize]);
        write(&s, after, &[0xab; 64]);
        assert_eq!(status(&s, Service::Xmfree, &[first, heap]), Status::OK);
        assert_eq!(xmalloc(&s, PAGE_SIZE + 100, 0, heap), first, "first fit: the same place");
        assert_eq!(read(&s, first, (PAGE_SIZE + 100) as usize), vec![0; (PAGE_SIZE + 100) as usize]);
        assert_eq!(read(&s, after, 64), vec![0xab; 64], "the zeroing stops at the allocation's end");
    }

    #[test]
    fn boot_heap_leaks_are_reported_with_the_xmalloc_caller() {
        let s = state();
        let p = xmalloc(&s, 77, 4, PINNED_HEAP);
        let q = xmalloc(&s, 5, 0, KERNEL_HEAP);
        assert_eq!(status(&s, Service::Xmfree, &[q, KERNEL_HEAP]), Status::OK);
        let leaks = {
            let k = s.kernel.lock().expect("lock");
            k.dgux.leaks(&k.frames)
        };
        assert_eq!(leaks.len(), 1, "{leaks:?}");
        assert_eq!((leaks[0].service, leaks[0].address, leaks[0].vcpu, leaks[0].rip), ("xmalloc", p, 0, testing::RIP));
        assert!(leaks[0].message.contains("77 bytes") && leaks[0].message.contains("pinned_heap"), "{}", leaks[0].message);
    }

    #[test]
    fn dgux_services_do_not_release_heap_memory() {
        let s = state();
        let p = xmalloc(&s, 64, 3, KERNEL_HEAP);
        assert_eq!(status(&s, Service::VmReleaseUnwiredMemory, &[p, 64]), Status::EINVAL);
        assert!(violations(&s)[0].contains("kernel_heap"), "{:?}", violations(&s));
        let q = call(&s, Service::VmGetUnwiredMemory, &[64, u64::from(VM_DEFAULT_ALIGNMENT)]).value;
        assert_eq!(status(&s, Service::Xmfree, &[q, KERNEL_HEAP]), Status::EINVAL);
        assert_eq!(status(&s, Service::Xmfree, &[p, KERNEL_HEAP]), Status::OK);
        let _ = s.ram.memory().read_obj::<u64>(GuestAddress(0)).expect("guest RAM still fine");
    }
}
