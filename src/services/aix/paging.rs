//! AIX paging devices and page-outs: `vm_mount`, `vm_umount`, `vm_write`,
//! `vm_writep`, `vms_iowait`.
//!
//! The devices and the transfers are the pager's (src/devices/pager); this
//! module decodes the arguments and answers as AIX documents. A page-out is
//! complete when its call returns (the pager's transfers are synchronous),
//! so `vms_iowait` never sleeps: it answers `EIO` if a page-out of the
//! object failed since the last wait. kmemvisor's choices where AIX is
//! silent (docs/ABI.md): a strategy pointer of 0 or an `nbufstr` of 0 is
//! `EINVAL`; pages go to the first device mounted that is still mounted, and
//! `vm_write`/`vm_writep` with no device mounted answer `ENODEV`;
//! `vm_umount` brings every page that is out on the device back in first,
//! and answers `EIO` (the device stays) if one cannot be read.

use kmemvisor_abi::aix_vmm::{D_NOWAIT, D_REMOTE};
use kmemvisor_abi::layout::PAGE_SIZE;
use kmemvisor_abi::{Service, Status};

use crate::checker::{Violation, ViolationKind};
use crate::devices::pager::{MountRefusal, PagerError};
use crate::memory_model::aix_vmm::VmError;
use crate::memory_model::ledger::DeviceWrite;
use crate::memory_model::paging::PteFlags;
use crate::memory_model::ram::zap_frame;
use crate::services::aix::vmm::{Call, int, object_range, pages, split};
use crate::services::{Outcome, Reply};
use crate::state::{Kernel, VmState};
use crate::sync::lock;

/// Serves the paging services.
pub(super) fn serve(call: &Call, args: &[u64]) -> Outcome {
    let [a0, a1, a2, ..] = *args else { return Reply::status(Status::EINVAL) };
    match call.service {
        Service::VmMount => mount(call, a0, a1, a2),
        Service::VmUmount => unmount(call, a0, a1),
        Service::VmWrite => write_range(call, a0, a1),
        Service::VmWritep => match pages(a1, a2) {
            Some((first, count)) => write_pages(call, a0, first, count),
            None => Reply::status(Status::EINVAL),
        },
        Service::VmsIowait => {
            let k = &mut *lock(&call.state.kernel);
            match k.vmm.object(a0) {
                Ok(_) if k.pager.take_failed_write(a0) => Reply::status(Status::EIO),
                Ok(_) => Reply::ok(0),
                Err(error) => call.refused(error),
            }
        }
        _ => Reply::status(Status::ENOSYS),
    }
}

/// Tells a real host I/O error: it is no fault of the guest's, which gets
/// its error return, but whoever runs kmemvisor must know.
fn tell(error: &PagerError) {
    eprintln!("kmemvisor: {error}");
}

/// `vm_mount(type, strategy, nbufstr)`.
fn mount(call: &Call, kind: u64, strategy: u64, nbufstr: u64) -> Outcome {
    if kind != D_REMOTE || strategy == 0 || int(nbufstr).is_none_or(|n| n == 0) {
        return Reply::status(Status::EINVAL);
    }
    let k = &mut *lock(&call.state.kernel);
    match k.pager.mount(strategy, nbufstr) {
        Ok(Ok(_)) => Reply::ok(0),
        Ok(Err(MountRefusal::Duplicate)) => Reply::status(Status::EINVAL),
        Ok(Err(MountRefusal::NoRoom)) => Reply::status(Status::ENOMEM),
        Err(error) => {
            tell(&error);
            Reply::status(Status::ENOMEM)
        }
    }
}

/// `vm_umount(type, strategy)`: every page out on the device comes back in
/// first (AIX waits for the device's I/O; its pages must not be lost).
fn unmount(call: &Call, kind: u64, strategy: u64) -> Outcome {
    if kind & !D_NOWAIT != D_REMOTE {
        return Reply::status(Status::EINVAL);
    }
    let k = &mut *lock(&call.state.kernel);
    let Some(id) = k.pager.device_of(strategy) else { return Reply::status(Status::EINVAL) };
    let out = k.frames.backed_by(id).into_iter().filter(|&(_, out)| out).map(|(frame, _)| frame);
    let out: Vec<u64> = out.collect();
    if let Err(error) = k.pager.page_in_all(call.state.ram.memory(), &call.state.hiding, &mut k.frames, out) {
        if !matches!(error, PagerError::Injected(_)) {
            tell(&error);
        }
        return Reply::status(Status::EIO);
    }
    k.pager.unmount(&mut k.frames, id);
    Reply::ok(0)
}

/// `vm_write(vaddr, nbytes, force)`: the object pages that the range of a
/// region (the kernel's, or the current process's) maps. `force` changes
/// nothing: every page-out is made at once.
fn write_range(call: &Call, vaddr: u64, nbytes: u64) -> Outcome {
    let range = object_range(&lock(&call.state.kernel), call.pid, vaddr, nbytes);
    match range {
        Ok((vmid, first, count)) => write_pages(call, vmid, first, count),
        Err(status) => Reply::status(status),
    }
}

/// Writes the modified pages of `[first, first + count)` of `vmid` to the
/// paging device and leaves them in, clean and unreferenced, as AIX does:
/// the clock takes them first, without a write, when `--memory-limit`
/// needs frames. Pinned, hidden or in-transfer pages are not written (they
/// stay modified). Frames that follow each other go out together, one
/// write per run. A failed write leaves its run modified, and makes the
/// next `vms_iowait` answer `EIO`.
fn write_pages(call: &Call, vmid: u64, first: u64, count: u64) -> Outcome {
    let k = &mut *lock(&call.state.kernel);
    if let Err(error) = k.vmm.object(vmid) {
        return call.refused(error);
    }
    if k.pager.target().is_none() {
        return Reply::status(Status::ENODEV);
    }
    let mut frames = {
        let (vmm, mut books) = split(call.state, k);
        match vmm.settle(&mut books, vmid, first, count) {
            Ok(frames) => frames,
            Err(error) => return call.refused(error),
        }
    };
    k.frames.retain_write_back(&mut frames);
    frames.sort_unstable();
    for (start, pages) in runs(&frames) {
        if let Err(error) = k.pager.write_back_run(call.state.ram.memory(), &mut k.frames, start, pages) {
            tell(&error);
            k.pager.write_failed(vmid);
        }
    }
    Reply::ok(0)
}

/// The runs of contiguous frames of `frames` (sorted, distinct), each as
/// its first frame and length in pages.
fn runs(frames: &[u64]) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &frame in frames {
        match runs.last_mut() {
            Some((start, pages)) if *start + *pages * PAGE_SIZE == frame => *pages += 1,
            _ => runs.push((frame, 1)),
        }
    }
    runs
}

/// Drops the pages of `frames` that are out, whose contents a release or a
/// delete throws away; a failure to give one back to the vCPUs is the
/// answer to `error`'s call.
pub(super) fn discard_out(call: &Call, k: &mut Kernel, frames: &[u64]) -> Result<(), Outcome> {
    for &frame in frames {
        if k.frames.is_paged_out(frame)
            && let Err(error) = k.pager.discard(&call.state.hiding, &mut k.frames, frame)
        {
            tell(&error);
            return Err(call.refused(VmError::Busy(crate::memory_model::ledger::LedgerError::PagedOut(frame))));
        }
    }
    Ok(())
}

/// Brings every page that is out back in, before a service that reaches
/// guest memory through the VMM's own view — a copy, a pin, a hand-off to a
/// device — which the pager does not trap: without this the VMM would read
/// a page that is out as zeros, or pin it out. Blunt (every page, not just
/// the service's) but rare: only runs that page have pages out, and
/// `--memory-limit` takes the unpinned ones out again after the call. A
/// page-in that fails is the call's `EIO`.
pub fn bring_all_in(state: &VmState) -> Result<(), Outcome> {
    let k = &mut *lock(&state.kernel);
    if k.frames.pages_out() == 0 {
        return Ok(());
    }
    let out = k.frames.frames_out();
    k.pager.page_in_all(state.ram.memory(), &state.hiding, &mut k.frames, out).map_err(|error| {
        if !matches!(error, PagerError::Injected(_)) {
            tell(&error);
        }
        Reply::status(Status::EIO)
    })
}

/// Who made the pager evict: a service's caller, or a vCPU's touch.
#[derive(Clone, Copy, Debug)]
pub struct Evictor {
    /// The vCPU.
    pub vcpu: usize,
    /// Its RIP (0 when the vCPU waits inside KVM_RUN for a page-in).
    pub rip: u64,
    /// A frame just brought in that must stay (its touch has not completed yet).
    pub keep: Option<u64>,
}

/// A page the pager's clock passes over.
#[derive(Clone, Copy, Debug)]
enum Pageable {
    /// Page `pno` of the AIX virtual memory object `vmid`.
    Object { vmid: u64, pno: u64 },
    /// The DG/UX kernel unwired memory page at `va`.
    Unwired { va: u64 },
}

impl Pageable {
    /// What it is, for a message.
    fn describe(self) -> String {
        match self {
            Pageable::Object { vmid, pno } => format!("page {pno} of object {vmid}"),
            Pageable::Unwired { va } => format!("the DG/UX unwired memory page {va:#x}"),
        }
    }

    /// A violation's arguments after the frame.
    fn args(self) -> [u64; 2] {
        match self {
            Pageable::Object { vmid, pno } => [vmid, pno],
            Pageable::Unwired { va } => [va, 0],
        }
    }
}

/// Whether a vCPU reached the DG/UX unwired page at `va` (frame `frame`)
/// since this was last asked: its kernel entry's accessed bit, which is
/// then cleared (its dirty bit folded into the frame's modified mark, the
/// old translation zapped), as the AIX objects' entries are. `None` when
/// `va` no longer maps the frame (a physical mapping replaced it, as the
/// DMA engine's window does): the guest cannot reach the frame, and the
/// pager leaves it alone.
fn take_accessed_unwired(state: &VmState, k: &mut Kernel, frame: u64, va: u64) -> Result<Option<bool>, String> {
    let memory = state.ram.memory();
    let Some(t) = state.space.translate(memory, va).filter(|t| t.gpa - t.gpa % PAGE_SIZE == frame) else { return Ok(None) };
    let used = PteFlags::ACCESSED.union(PteFlags::DIRTY);
    if t.flags.bits() & used.bits() == 0 {
        return Ok(Some(false));
    }
    let old =
        state.space.remap(memory, va, frame, PteFlags::from_bits(t.flags.bits() & !used.bits())).map_err(|e| e.to_string())?;
    if old.flags.contains(PteFlags::DIRTY) {
        k.frames.set_modified(frame, true);
    }
    if old.flags.contains(PteFlags::ACCESSED) {
        zap_frame(memory, frame).map_err(|e| e.to_string())?;
    }
    Ok(Some(old.flags.contains(PteFlags::ACCESSED)))
}

/// `--memory-limit`: while more pageable pages (AIX object pages, DG/UX
/// kernel unwired memory) are in memory than the limit,
/// takes pages out by second chance — the clock goes round the pageable
/// pages by frame from where it stopped; a page a vCPU reached since the
/// hand last passed (an accessed bit, or a fresh page-in) loses that bit and
/// is passed over, the first one that did not goes out. A modified page, or
/// one with no current copy on a mounted device, is written first; a clean
/// one with a copy is taken out without a write — and if the device wrote
/// it meanwhile, unmarked, its data is lost: a violation says so. Pinned,
/// wired, hidden and in-transfer pages are never candidates. Without a
/// paging device nothing is paged.
pub fn enforce_memory_limit(state: &VmState, k: &mut Kernel, who: Evictor) {
    let Some(limit) = k.pager.limit() else { return };
    if k.pager.target().is_none() {
        return;
    }
    let mut excess = k.frames.resident_pageable_pages().saturating_sub(limit);
    if excess == 0 {
        return;
    }
    state.note_trap_used();
    let objects = k.vmm.pages_by_frame().into_iter().map(|(frame, vmid, pno)| (frame, Pageable::Object { vmid, pno }));
    let unwired = k.frames.dgux_unwired().into_iter().map(|(frame, va)| (frame, Pageable::Unwired { va }));
    let mut pages: Vec<(u64, Pageable)> = objects.chain(unwired).collect();
    pages.sort_unstable_by_key(|&(frame, _)| frame);
    let start = pages.iter().position(|&(frame, _)| frame > k.pager.hand()).unwrap_or(0);
    // Two turns: the first may only clear referenced bits.
    let turn = pages.iter().cycle().skip(start).take(2 * pages.len());
    for &(frame, page) in turn {
        if excess == 0 {
            return;
        }
        if Some(frame) == who.keep || k.frames.page_out_refusal(frame).is_some() {
            continue;
        }
        let accessed = match page {
            Pageable::Object { vmid, pno } => {
                let (vmm, mut books) = split(state, k);
                vmm.take_accessed(&mut books, vmid, pno).map_err(|e| e.to_string())
            }
            Pageable::Unwired { va } => match take_accessed_unwired(state, k, frame, va) {
                Ok(None) => continue,
                Ok(Some(accessed)) => Ok(accessed),
                Err(error) => Err(error),
            },
        };
        let referenced = k.frames.marks(frame).referenced;
        match accessed {
            Ok(accessed) if accessed || referenced => {
                k.frames.set_referenced(frame, false);
                continue;
            }
            Ok(_) => {}
            Err(error) => {
                eprintln!("kmemvisor: the pager cannot clear the accessed bits of frame {frame:#x}: {error}");
                return;
            }
        }
        let evicted = if k.frames.marks(frame).modified || !k.pager.has_copy(&k.frames, frame) {
            k.pager.page_out(state.ram.memory(), &state.hiding, &mut k.frames, frame).map(|()| {
                k.pager.advance_hand(frame);
                None
            })
        } else {
            k.pager.evict_clean(&state.hiding, &mut k.frames, frame)
        };
        match evicted {
            Ok(lost) => {
                excess -= 1;
                if let Some(write) = lost {
                    let [a, b] = page.args();
                    state.record_violation(lost_modification(k, who, &page.describe(), &[frame, a, b], frame, write));
                }
            }
            Err(error) => {
                tell(&error);
                return;
            }
        }
    }
}

/// The violation for the device's `write` to `frame`, holding `page`,
/// lost by a clean eviction that `who` caused. It names the transfer and
/// the call that ended the hand-off without a modified mark, and is placed
/// at that call: the line a driver author must fix.
pub fn lost_modification(k: &Kernel, who: Evictor, page: &str, args: &[u64], frame: u64, write: DeviceWrite) -> Violation {
    let origins = &k.dgux.origins;
    let transfer = format!("transfer on channel {} rung at {:#x}", write.channel, write.doorbell);
    let end = match write.unmarked_end {
        Some(end) => {
            format!("{} at {:#x} ended the hand-off without marking it modified", end.service.name(), origins.rip(end.origin))
        }
        None => "no call that ended a hand-off marked it modified".to_string(),
    };
    let message = format!(
        "the pager took out {page} (frame {frame:#x}) as clean, without writing it: the DMA engine wrote the frame \
         ({transfer}) after its copy on the paging device was made, and {end} (AIX sets the modified bit at the last \
         XMEM_UNHIDE of a page whose key is not read-only; a DG/UX driver unwires with vm_mark_and_unwire_memory and \
         SC_WRITE_ACCESS). The device's data is lost: the next page-in brings the old data back"
    );
    let kind = ViolationKind::PagingLostModification;
    match write.unmarked_end {
        Some(end) => {
            Violation::new(kind, "pager", args, who.vcpu, origins.rip(end.origin), message).with_stack(origins.stack(end.origin))
        }
        // A touch's vCPU waits inside KVM_RUN: its RIP is filled in when it comes out.
        None if who.rip == 0 => Violation::new(kind, "pager", args, who.vcpu, 0, message).unplaced(),
        None => Violation::new(kind, "pager", args, who.vcpu, who.rip, message),
    }
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::aix_vmm::{D_NOWAIT, D_REMOTE, V_CLIENT, VM_MAX_PAGING_BUFS, VM_MAX_PAGING_DEVICES};
    use kmemvisor_abi::layout::PAGE_SIZE;
    use kmemvisor_abi::{Service, Status};
    use vm_memory::{Bytes, GuestAddress};

    use super::{Evictor, enforce_memory_limit, runs};
    use crate::memory_model::inject::FailSpec;
    use crate::memory_model::ledger::{Backing, DeviceWrite, HandOffEnd, Marks};
    use crate::state::{VmConfig, VmState};
    use crate::sync::lock;
    use crate::testing::{kinds, ok, state, state_with, status};

    const STRATEGY: u64 = 0xffff_c000_0000_1000;

    /// An object of `pages` pages, each filled with its page number + 1 and marked modified; its vmid and frames.
    fn object(s: &VmState, pages: u64) -> (u64, Vec<u64>) {
        let vmid = ok(s, Service::VmsCreate, &[V_CLIENT, 0x9000, pages * PAGE_SIZE, 0, 0]);
        let k = &mut *lock(&s.kernel);
        let frames = k.vmm.frames_in(vmid, 0, pages).expect("frames");
        for (n, &frame) in frames.iter().enumerate() {
            s.ram.memory().write_slice(&[n as u8 + 1; PAGE_SIZE as usize], GuestAddress(frame)).expect("fill");
            k.frames.set_modified(frame, true);
        }
        (vmid, frames)
    }

    fn page(s: &VmState, frame: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; PAGE_SIZE as usize];
        s.ram.memory().read_slice(&mut bytes, GuestAddress(frame)).expect("read");
        bytes
    }

    #[test]
    fn mount_and_unmount_check_their_arguments() {
        let s = state();
        assert_eq!(status(&s, Service::VmMount, &[0, STRATEGY, 8]), Status::EINVAL, "not D_REMOTE");
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, 0, 8]), Status::EINVAL, "no strategy");
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 0]), Status::EINVAL, "no bufs");
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, u64::MAX]), Status::EINVAL, "a negative int");
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, VM_MAX_PAGING_BUFS + 1]), Status::ENOMEM);
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 8]), Status::OK);
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 8]), Status::EINVAL, "in the table already");
        for n in 1..VM_MAX_PAGING_DEVICES as u64 {
            assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY + n, 1]), Status::OK);
        }
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY + 99, 1]), Status::ENOMEM, "the table is full");
        let dir = lock(&s.kernel).pager.dir().to_path_buf();
        assert!(dir.join("paging-device-1").is_file());
        assert_eq!(status(&s, Service::VmUmount, &[D_REMOTE, STRATEGY + 99]), Status::EINVAL, "not in the table");
        assert_eq!(status(&s, Service::VmUmount, &[0, STRATEGY]), Status::EINVAL, "not D_REMOTE");
        assert_eq!(status(&s, Service::VmUmount, &[D_REMOTE | D_NOWAIT, STRATEGY]), Status::OK);
        assert!(!dir.join("paging-device-1").exists(), "its file goes with it");
        drop(s);
        assert!(!dir.exists(), "the temporary paging directory goes with the VM");
    }

    /// The pager's page-out of each of `frames`, as the clock makes it.
    fn page_out(s: &VmState, frames: &[u64]) {
        let k = &mut *lock(&s.kernel);
        for &frame in frames {
            k.pager.page_out(s.ram.memory(), &s.hiding, &mut k.frames, frame).expect("page-out");
        }
    }

    #[test]
    fn vm_writep_writes_the_modified_pages_to_the_file_and_leaves_them_in_clean_and_unreferenced() {
        let s = state();
        let (vmid, frames) = object(&s, 3);
        assert_eq!(status(&s, Service::VmWritep, &[vmid, 0, 3]), Status::ENODEV, "no paging device");
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 8]), Status::OK);
        lock(&s.kernel).frames.set_modified(frames[2], false);
        lock(&s.kernel).frames.set_referenced(frames[0], true);
        assert_eq!(status(&s, Service::VmWritep, &[vmid, 0, u64::MAX]), Status::EINVAL);
        assert_eq!(status(&s, Service::VmWritep, &[vmid + 1, 0, 1]), Status::EINVAL, "a forged vmid");
        assert_eq!(status(&s, Service::VmWritep, &[vmid, 0, 3]), Status::OK);
        {
            let k = lock(&s.kernel);
            let written = Some(Backing { device: 1, out: false });
            assert_eq!((k.frames.backing(frames[0]), k.frames.backing(frames[1])), (written, written), "in, with a copy");
            assert_eq!(k.frames.backing(frames[2]), None, "an unchanged page is not written");
            assert_eq!(k.frames.marks(frames[0]), Marks::default(), "clean, and the clock's first pick");
            assert_eq!((k.pager.counts().page_outs, k.frames.pages_out()), (2, 0));
            assert_eq!(k.frames.check(), Ok(()));
        }
        assert_eq!(page(&s, frames[0]), vec![1; PAGE_SIZE as usize], "still in memory");
        let file = std::fs::read(lock(&s.kernel).pager.dir().join("paging-device-1")).expect("device file");
        let at = frames[1] as usize;
        assert_eq!(&file[at..at + PAGE_SIZE as usize], &[2u8; PAGE_SIZE as usize][..], "the page is in the file");
        assert_eq!(status(&s, Service::VmsIowait, &[vmid]), Status::OK);
        assert_eq!(status(&s, Service::VmUmount, &[D_REMOTE, STRATEGY]), Status::OK);
        assert_eq!(lock(&s.kernel).frames.backing(frames[1]), None, "the device's copies go with it");
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::OK);
        assert!(kinds(&s).is_empty());
    }

    #[test]
    fn a_page_out_frees_the_frame_and_a_page_in_restores_it_byte_for_byte() {
        let s = state();
        let (vmid, frames) = object(&s, 2);
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 8]), Status::OK);
        page_out(&s, &frames);
        {
            let k = lock(&s.kernel);
            assert!(k.frames.is_paged_out(frames[0]) && k.frames.is_paged_out(frames[1]));
            assert_eq!(k.pager.counts().page_outs, 2);
            assert_eq!(k.frames.check(), Ok(()));
        }
        assert_eq!(page(&s, frames[0]), vec![0; PAGE_SIZE as usize], "the host page is punched out");
        {
            let k = &mut *lock(&s.kernel);
            k.pager.page_in(s.ram.memory(), &s.hiding, &mut k.frames, frames[1]).expect("page-in");
            assert!(!k.frames.is_paged_out(frames[1]));
        }
        assert_eq!(page(&s, frames[1]), vec![2; PAGE_SIZE as usize], "byte for byte");
        assert_eq!(status(&s, Service::VmUmount, &[D_REMOTE, STRATEGY]), Status::OK, "brings page 0 in first");
        assert_eq!(page(&s, frames[0]), vec![1; PAGE_SIZE as usize]);
        assert_eq!(lock(&s.kernel).frames.backing(frames[1]), None, "the device's copies go with it");
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::OK);
        assert!(kinds(&s).is_empty());
    }

    #[test]
    fn contiguous_frames_are_written_as_one_run() {
        assert_eq!(runs(&[0x1000, 0x2000, 0x4000, 0x5000, 0x6000, 0x9000]), [(0x1000, 2), (0x4000, 3), (0x9000, 1)]);
        assert_eq!(runs(&[]), []);
        let s = state_with(VmConfig { contiguous_frames: true, ..VmConfig::default() });
        let (vmid, frames) = object(&s, 4);
        assert!(frames.windows(2).all(|w| w[1] == w[0] + PAGE_SIZE), "contiguous: {frames:x?}");
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 8]), Status::OK);
        lock(&s.kernel).frames.set_modified(frames[2], false);
        assert_eq!(status(&s, Service::VmWritep, &[vmid, 0, 4]), Status::OK);
        {
            let k = lock(&s.kernel);
            let copies = frames.iter().map(|&f| k.frames.backing(f).is_some()).collect::<Vec<_>>();
            assert_eq!(copies, [true, true, false, true], "two runs around the unchanged page");
            assert_eq!(k.pager.counts().page_outs, 3);
        }
        let file = std::fs::read(lock(&s.kernel).pager.dir().join("paging-device-1")).expect("device file");
        let at = frames[0] as usize;
        assert_eq!(&file[at..at + 2 * PAGE_SIZE as usize], [[1u8; PAGE_SIZE as usize], [2; PAGE_SIZE as usize]].concat());
        let at = frames[3] as usize;
        assert_eq!(&file[at..at + PAGE_SIZE as usize], &[4u8; PAGE_SIZE as usize][..]);
        for (n, &frame) in frames.iter().enumerate() {
            assert_eq!(page(&s, frame), vec![n as u8 + 1; PAGE_SIZE as usize], "page {n} stays in");
        }
        assert_eq!(lock(&s.kernel).frames.check(), Ok(()));
    }

    #[test]
    fn released_and_deleted_pages_that_are_out_are_dropped_unread() {
        let s = state_with(VmConfig { fail_pagein: FailSpec { nth: Some(1), ..FailSpec::default() }, ..VmConfig::default() });
        let (vmid, frames) = object(&s, 2);
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 8]), Status::OK);
        page_out(&s, &frames);
        assert_eq!(status(&s, Service::VmReleasep, &[vmid, 0, 1]), Status::OK);
        assert_eq!(page(&s, frames[0]), vec![0; PAGE_SIZE as usize]);
        assert_eq!(lock(&s.kernel).frames.backing(frames[0]), None);
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::OK, "page 1 is out: dropped, never read");
        assert_eq!(lock(&s.kernel).pager.counts().page_ins, 0);
        assert_eq!(lock(&s.kernel).frames.check(), Ok(()));
    }

    #[test]
    fn io_errors_are_status_codes_and_leave_no_page_lost() {
        let s = state_with(VmConfig { fail_pagein: FailSpec { nth: Some(1), ..FailSpec::default() }, ..VmConfig::default() });
        let (vmid, frames) = object(&s, 1);
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 8]), Status::OK);
        page_out(&s, &frames);
        assert_eq!(status(&s, Service::VmUmount, &[D_REMOTE, STRATEGY]), Status::EIO, "--fail-pagein: nth=1");
        assert!(lock(&s.kernel).frames.is_paged_out(frames[0]), "still out, still on the device");
        assert_eq!(lock(&s.kernel).pager.counts().injected_pagein_failures, 1);
        // The file is cut short behind the VMM's back: the read is short.
        let path = lock(&s.kernel).pager.dir().join("paging-device-1");
        std::fs::OpenOptions::new().write(true).open(&path).expect("open").set_len(0).expect("truncate");
        assert_eq!(status(&s, Service::VmUmount, &[D_REMOTE, STRATEGY]), Status::EIO, "a real I/O error");
        assert_eq!(lock(&s.kernel).pager.counts().io_errors, 1);
        assert!(lock(&s.kernel).frames.is_paged_out(frames[0]));
        assert_eq!(status(&s, Service::VmsIowait, &[vmid]), Status::OK);
    }

    #[test]
    fn the_memory_limit_evicts_by_second_chance_and_a_clean_eviction_loses_an_unmarked_device_write() {
        let s = state_with(VmConfig { memory_limit: Some(PAGE_SIZE), ..VmConfig::default() });
        let (_, frames) = object(&s, 2);
        let [a, b] = frames[..] else { panic!("two frames") };
        let (a, b) = (a.min(b), a.max(b));
        assert_eq!(lock(&s.kernel).frames.pages_out(), 0, "no paging device: nothing is paged");
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 8]), Status::OK);
        let touch = |page: u64| {
            let k = &mut *lock(&s.kernel);
            k.pager.page_in(s.ram.memory(), &s.hiding, &mut k.frames, page).expect("page-in");
            enforce_memory_limit(&s, k, Evictor { vcpu: 0, rip: 0, keep: Some(page) });
        };
        assert!(lock(&s.kernel).frames.is_paged_out(a), "the clock starts at the lowest frame: a goes, written");
        touch(a);
        assert!(lock(&s.kernel).frames.is_paged_out(b), "a stays for its touch; b goes, written");
        // The device writes a, which is clean with a current copy; no one marks it modified.
        s.ram.memory().write_slice(&[0xee; PAGE_SIZE as usize], GuestAddress(a)).expect("device write");
        {
            let k = &mut *lock(&s.kernel);
            let doorbell = 0x40_1000;
            k.frames.device_wrote(&(a..a + PAGE_SIZE), DeviceWrite { channel: 3, doorbell, unmarked_end: None });
            let end = HandOffEnd { service: Service::Xmemdma64, origin: k.dgux.origins.intern(&[0x40_2000, 0x40_3000]) };
            assert!(k.frames.end_unmarked(a, end).is_some());
        }
        touch(b);
        {
            let k = lock(&s.kernel);
            assert!(k.frames.is_paged_out(a), "a's second chance went on the first turn; taken out on the second");
            assert_eq!((k.pager.counts().page_outs, k.pager.counts().clean_evictions), (2, 1), "a went clean: no write");
        }
        assert_eq!(kinds(&s), ["paging.lost-modification"]);
        let v = &s.checker.violations()[0];
        assert_eq!(
            v.message,
            format!(
                "the pager took out page 0 of object 1 (frame {a:#x}) as clean, without writing it: the DMA engine wrote \
                 the frame (transfer on channel 3 rung at 0x401000) after its copy on the paging device was made, and \
                 xmemdma64 at 0x402000 ended the hand-off without marking it modified (AIX sets the modified bit at the \
                 last XMEM_UNHIDE of a page whose key is not read-only; a DG/UX driver unwires with \
                 vm_mark_and_unwire_memory and SC_WRITE_ACCESS). The device's data is lost: the next page-in brings \
                 the old data back"
            )
        );
        assert_eq!((v.rip.as_str(), &v.stack[..]), ("0x402000", &[0x40_2000, 0x40_3000][..]), "placed at the unhide");
        assert_eq!(lock(&s.kernel).frames.device_write(a), None, "reported once");
        touch(a);
        assert_eq!(page(&s, a), vec![1; PAGE_SIZE as usize], "the old data is back: the device's is lost");
        assert_eq!(lock(&s.kernel).frames.check(), Ok(()));
    }

    /// A page of DG/UX unwired memory, filled with `fill` through the VMM and marked modified; its address and frame.
    fn unwired_page(s: &VmState, fill: u8) -> (u64, u64) {
        let va = ok(s, Service::VmGetUnwiredMemory, &[PAGE_SIZE, u64::from(kmemvisor_abi::dgux::VM_PAGE_ALIGNED)]);
        let k = &mut *lock(&s.kernel);
        let frame = s.space.translate(s.ram.memory(), va).expect("mapped").gpa;
        k.pager.page_in_all(s.ram.memory(), &s.hiding, &mut k.frames, [frame]).expect("in");
        s.ram.memory().write_slice(&[fill; PAGE_SIZE as usize], GuestAddress(frame)).expect("fill");
        k.frames.set_modified(frame, true);
        (va, frame)
    }

    #[test]
    fn dgux_unwired_memory_pages_wired_memory_never_and_an_unmarked_unwire_loses_the_device_write() {
        let s = state_with(VmConfig { memory_limit: Some(PAGE_SIZE), ..VmConfig::default() });
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 8]), Status::OK);
        let wired = ok(&s, Service::VmGetWiredMemory, &[PAGE_SIZE, u64::from(kmemvisor_abi::dgux::VM_PAGE_ALIGNED)]);
        let (a, frame_a) = unwired_page(&s, 0x11);
        let (b, frame_b) = unwired_page(&s, 0x22);
        let wired_frame = s.space.translate(s.ram.memory(), wired).expect("mapped").gpa;
        // Over the limit of one page, the modified page a goes out, written; wired memory never does.
        let out = |frame: u64| lock(&s.kernel).frames.is_paged_out(frame);
        assert_eq!((out(frame_a), out(frame_b), out(wired_frame)), (true, false, false));
        // The driver wires a (its page comes in), the device writes it, the driver unwires without the mark.
        assert_eq!(status(&s, Service::VmWireMemory, &[a, 0, PAGE_SIZE]), Status::OK);
        assert_eq!(page(&s, frame_a), vec![0x11; PAGE_SIZE as usize], "paged in byte for byte");
        assert!(!out(frame_a), "wired: in, and never taken");
        {
            let k = &mut *lock(&s.kernel);
            s.ram.memory().write_slice(&[0xee; PAGE_SIZE as usize], GuestAddress(frame_a)).expect("device write");
            let doorbell = 0x40_1000;
            k.frames.device_wrote(&(frame_a..frame_a + PAGE_SIZE), DeviceWrite { channel: 1, doorbell, unmarked_end: None });
        }
        assert_eq!(status(&s, Service::VmUnwireMemory, &[a, 0, PAGE_SIZE]), Status::OK);
        // b went out for a's wire; b's wire brings it back, and a goes: clean, with a copy, taken without a write.
        assert!(out(frame_b));
        assert_eq!(status(&s, Service::VmWireMemory, &[b, 0, PAGE_SIZE]), Status::OK);
        assert!(out(frame_a) && !out(frame_b));
        assert_eq!(kinds(&s), ["dma.unwire-without-modified-mark", "paging.lost-modification"]);
        let v = &s.checker.violations()[1];
        assert!(
            v.message
                .starts_with(&format!("the pager took out the DG/UX unwired memory page {a:#x} (frame {frame_a:#x}) as clean")),
            "{}",
            v.message
        );
        assert!(v.message.contains("(transfer on channel 1 rung at 0x401000)"), "{}", v.message);
        assert!(v.message.contains(" and vm_unwire_memory at 0x"), "{}", v.message);
        assert_eq!(status(&s, Service::VmWireMemory, &[a, 0, PAGE_SIZE]), Status::OK);
        assert_eq!(page(&s, frame_a), vec![0x11; PAGE_SIZE as usize], "the old data is back: the device's is lost");
        assert_eq!(lock(&s.kernel).frames.check(), Ok(()));
    }

    #[test]
    fn a_wire_whose_page_in_fails_answers_vm_eio_and_leaves_the_page_out() {
        let s = state_with(VmConfig {
            memory_limit: Some(PAGE_SIZE),
            fail_pagein: FailSpec { nth: Some(1), ..FailSpec::default() },
            ..VmConfig::default()
        });
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 8]), Status::OK);
        let (a, frame_a) = unwired_page(&s, 0x11);
        unwired_page(&s, 0x22);
        assert!(lock(&s.kernel).frames.is_paged_out(frame_a));
        assert_eq!(status(&s, Service::VmWireMemory, &[a, 0, PAGE_SIZE]), Status::VM_EIO, "--fail-pagein nth=1");
        assert!(lock(&s.kernel).frames.is_paged_out(frame_a), "still out, unwired");
        assert_eq!(lock(&s.kernel).frames.counts(frame_a).map(|c| c.wires), Some(0));
        assert_eq!(status(&s, Service::VmWireMemory, &[a, 0, PAGE_SIZE]), Status::OK);
        assert_eq!(page(&s, frame_a), vec![0x11; PAGE_SIZE as usize]);
    }

    #[test]
    fn a_pin_or_a_copy_through_the_vmm_brings_pages_that_are_out_in_first() {
        let s = state();
        let (vmid, frames) = object(&s, 1);
        let handle = ok(&s, Service::VmHandle, &[vmid, 0]);
        let at = ok(&s, Service::VmAtt, &[handle, 0]);
        assert_eq!(status(&s, Service::VmMount, &[D_REMOTE, STRATEGY, 8]), Status::OK);
        page_out(&s, &frames);
        assert!(lock(&s.kernel).frames.is_paged_out(frames[0]));
        assert_eq!(status(&s, Service::Pin, &[at, PAGE_SIZE]), Status::OK);
        let k = lock(&s.kernel);
        assert!(!k.frames.is_paged_out(frames[0]), "a pinned page is in");
        assert_eq!(k.frames.check(), Ok(()));
        drop(k);
        assert_eq!(page(&s, frames[0]), vec![1; PAGE_SIZE as usize]);
        assert_eq!(status(&s, Service::Unpin, &[at, PAGE_SIZE]), Status::OK);
    }
}
