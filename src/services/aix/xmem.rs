//! AIX cross-memory services: `xmattach`, `xmdetach`, `xmemin`, `xmemout`,
//! `xmemdma`, `xmempin`, `xmemunpin` (and the 64 variants, and kmemvisor's
//! batched `xmemdma_pages`).
//!
//! The VMM keeps every attachment ([`attachments`]); the guest's descriptor
//! only names one. `xmemdma` hides pages through [`crate::devices::hiding`]: the page
//! leaves the vCPUs' stage 2 while the device still reaches it.
//!
//! Context rules (the AIX documentation's): `xmattach` only under a process — at
//! interrupt level, or for user memory with no current process, it is a
//! violation; `xmdetach` and `xmemdma` also at interrupt level; `xmemin` and
//! `xmemout` at interrupt level only when both buffers are resident (pinned,
//! on the pinned heap, or DG/UX-wired).

use kmemvisor_abi::aix_vmm::RDONLY;
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use kmemvisor_abi::xmem::{
    SYS_ADSPACE, USER_ADSPACE, XMEM_ACC_CHK, XMEM_HIDE, XMEM_SIZE, XMEM_UNHIDE, XMEM_WRITE_ONLY, XMEMDMA_MAX_PAGES, Xmem,
};
use kmemvisor_abi::{Service, Status};

use crate::checker::ViolationKind;
use crate::devices::hiding::{HideError, HideOrigin, touches};
use crate::memory_model::attachments::{Attachment, HiddenThrough, Named, Origin};
use crate::memory_model::guest_access;
use crate::memory_model::ledger::HandOffEnd;
use crate::memory_model::paging::{AddressSpace, PteFlags, Walker};
use crate::report::ExitCause;
use crate::services::aix::pinning;
use crate::services::aix::uaccess::{self, Region, Side};
use crate::services::{Caller, Outcome, Reply, refuse};
use crate::state::{Kernel, VmState};
use crate::sync::lock;
use crate::trace::Event;

/// Largest byte count of one call (AIX's `int`).
const MAX_COUNT: u64 = i32::MAX as u64;
/// The end of the user addresses plain `xmattach` reaches.
const PLAIN_LIMIT: u64 = 1 << 32;

/// Serves the cross-memory services.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let [a0, a1, a2, a3, a4, _] = args;
    if let Err(answer) = super::paging::bring_all_in(state) {
        return answer;
    }
    match service {
        Service::Xmattach | Service::Xmattach64 => attach(state, caller, service, &args[..4]),
        Service::Xmdetach => detach(state, caller, &args[..1]),
        Service::Xmemin => move_bytes(state, caller, service, &args[..4], Move { attached: a0, kernel: a1, count: a2, dp: a3 }),
        Service::Xmemout => move_bytes(state, caller, service, &args[..4], Move { attached: a1, kernel: a0, count: a2, dp: a3 }),
        Service::Xmemdma | Service::Xmemdma64 => {
            dma(state, caller, service, &args[..3], Pages { xaddr: a1, count: 1, flags: a2, out: 0 })
        }
        Service::XmemdmaPages => dma(state, caller, service, &args[..5], Pages { xaddr: a1, count: a2, flags: a3, out: a4 }),
        Service::Xmempin | Service::Xmemunpin => pin(state, caller, service, &args[..3]),
        _ => Reply::status(Status::ENOSYS),
    }
}

fn origin(caller: Caller, service: Service) -> Origin {
    Origin { service: service.name(), vcpu: caller.vcpu, rip: caller.rip }
}

/// The address space of `pid` (0: the kernel's).
fn space_of<'a>(state: &'a VmState, k: &'a Kernel, pid: u64) -> Option<&'a AddressSpace> {
    if pid == 0 { Some(&state.space) } else { k.processes.get(pid).map(|p| p.space()) }
}

/// The page-aligned pages of `[start, start + len)` with their guest-physical
/// frames, or `None` if one is unmapped, supervisor-only (the CPU tables: the
/// VMM's, never the guest's to attach, pin or hide) or outside what `user` allows.
fn frames(state: &VmState, space: &AddressSpace, start: u64, len: u64, user: bool) -> Option<Vec<(u64, u64)>> {
    let end = start.checked_add(len.max(1))?;
    let allowed =
        |va: u64| if user { (layout::USER_START..layout::USER_END).contains(&va) } else { !layout::is_user_address(va) };
    let mut walker = Walker::new(state.ram.memory(), space);
    let first = start - start % PAGE_SIZE;
    (first..end)
        .step_by(PAGE_SIZE as usize)
        .map(|va| {
            let t = allowed(va).then(|| walker.translate(va)).flatten()?;
            t.flags.contains(PteFlags::USER).then_some((va, t.gpa))
        })
        .collect()
}

fn read_descriptor(state: &VmState, dp: u64) -> Option<Xmem> {
    let bytes = guest_access::read(state.ram.memory(), &state.space, dp, XMEM_SIZE as usize).ok()?;
    let word = |i: usize| bytes.get(i * 8..i * 8 + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes);
    Some(Xmem { handle: word(0), tag: word(1), aspace_id: word(2), base: word(3), len: word(4) })
}

fn write_descriptor(state: &VmState, dp: u64, d: &Xmem) -> bool {
    let bytes: Vec<u8> = [d.handle, d.tag, d.aspace_id, d.base, d.len].iter().flat_map(|w| w.to_le_bytes()).collect();
    guest_access::write(state.ram.memory(), &state.space, dp, &bytes).is_ok()
}

/// The live attachment a descriptor names, or the answer: EFAULT for an
/// unreadable descriptor, EINVAL for a forged one, a violation for a detached one.
fn named(state: &VmState, k: &Kernel, caller: Caller, service: Service, args: &[u64], dp: u64) -> Result<u64, Outcome> {
    let Some(descriptor) = read_descriptor(state, dp) else { return Err(Reply::status(Status::EFAULT)) };
    match k.xmem.name(&descriptor) {
        Named::Live(handle) => Ok(handle),
        Named::Forged => Err(Reply::status(Status::EINVAL)),
        Named::Detached => {
            let why = format!("the descriptor at {dp:#x} names attachment {} after xmdetach ended it", descriptor.handle);
            Err(refuse(state, caller, ViolationKind::XmemDescriptorAfterDetach, service, args, why, Status::EINVAL))
        }
    }
}

fn attach(state: &VmState, caller: Caller, service: Service, args: &[u64]) -> Outcome {
    let &[addr, count, dp, segflag] = args else { return Reply::status(Status::EINVAL) };
    let context = *lock(&state.contexts[caller.vcpu]);
    let user = segflag == USER_ADSPACE;
    if context.at_interrupt_level() || (user && context.pid == 0) {
        let why = if context.at_interrupt_level() {
            "xmattach only under a process: called at interrupt level".to_string()
        } else {
            "xmattach only under a process: user memory attached with no current process".to_string()
        };
        return refuse(state, caller, ViolationKind::XmemAttachOutsideProcess, service, args, why, Status::EPERM);
    }
    if (!user && segflag != SYS_ADSPACE) || count == 0 || count > MAX_COUNT || addr.checked_add(count).is_none() {
        return Reply::status(Status::EINVAL);
    }
    if user && service == Service::Xmattach && addr + count > PLAIN_LIMIT {
        return Reply::status(Status::EFAULT);
    }
    let pid = if user { context.pid } else { 0 };
    let k = &mut *lock(&state.kernel);
    let Some(space) = space_of(state, k, pid) else { return Reply::status(Status::EFAULT) };
    if frames(state, space, addr, count, user).is_none() {
        return Reply::status(Status::EFAULT);
    }
    let descriptor = k.xmem.next_descriptor(pid, addr, count);
    if !write_descriptor(state, dp, &descriptor) {
        return Reply::status(Status::EFAULT);
    }
    let origin = origin(caller, service);
    k.xmem.attach(Attachment { pid, base: addr, len: count, origin, hidden: Default::default() });
    Reply::ok(0)
}

fn detach(state: &VmState, caller: Caller, args: &[u64]) -> Outcome {
    let dp = args[0];
    let k = &mut *lock(&state.kernel);
    let handle = match named(state, k, caller, Service::Xmdetach, args, dp) {
        Ok(handle) => handle,
        Err(answer) => return answer,
    };
    let hidden: u32 = k.xmem.get(handle).map_or(0, |a| a.hidden.values().map(HiddenThrough::count).sum());
    if hidden > 0 {
        let why = format!("xmdetach while {hidden} xmemdma hide(s) through the attachment are not undone: unhide first");
        return refuse(state, caller, ViolationKind::XmemDetachWhileHidden, Service::Xmdetach, args, why, Status::EBUSY);
    }
    k.xmem.detach(handle);
    // Best effort: the descriptor was readable a moment ago.
    let _ = write_descriptor(state, dp, &Xmem::default());
    Reply::ok(0)
}

/// One `xmemin` or `xmemout`: `count` bytes between `attached` (in the
/// attached buffer) and `kernel`.
struct Move {
    attached: u64,
    kernel: u64,
    count: u64,
    dp: u64,
}

/// Whether every frame of `pages` stays in memory (pinned or wired through
/// any address, or resident by nature).
fn resident(k: &Kernel, pages: &[(u64, u64)]) -> bool {
    pages.iter().all(|&(_, gpa)| k.frames.is_resident(gpa))
}

fn move_bytes(state: &VmState, caller: Caller, service: Service, args: &[u64], m: Move) -> Outcome {
    if m.count > MAX_COUNT {
        return Reply::status(Status::EINVAL);
    }
    let k = &*lock(&state.kernel);
    let handle = match named(state, k, caller, service, args, m.dp) {
        Ok(handle) => handle,
        Err(answer) => return answer,
    };
    let Some(a) = k.xmem.get(handle) else { return Reply::status(Status::EINVAL) };
    if !a.contains(m.attached, m.count) {
        return Reply::status(Status::EFAULT);
    }
    if m.count == 0 {
        return Reply::ok(0);
    }
    let Some(space) = space_of(state, k, a.pid) else { return Reply::status(Status::EFAULT) };
    let user = a.pid != 0;
    let Some(attached) = frames(state, space, m.attached, m.count, user) else { return Reply::status(Status::EFAULT) };
    // AIX answers a bad buffer on either side with an error return (XMEM_FAIL).
    let Some(kernel) = frames(state, &state.space, m.kernel, m.count, false) else { return Reply::status(Status::EFAULT) };
    if lock(&state.contexts[caller.vcpu]).at_interrupt_level() && !(resident(k, &attached) && resident(k, &kernel)) {
        let why = format!("{} at interrupt level with a buffer that is not resident (pin it first)", service.name());
        return refuse(state, caller, ViolationKind::XmemCopyNotResidentAtInterruptLevel, service, args, why, Status::EPERM);
    }
    if let Some(&(va, gpa)) = attached.iter().chain(&kernel).find(|&&(_, gpa)| k.frames.hides(gpa) > 0) {
        let why = format!("{} touched {va:#x} (guest-physical {gpa:#x}) while it is hidden for DMA", service.name());
        if let stop @ Outcome::Stop(_) =
            refuse(state, caller, ViolationKind::XmemCopyTouchesHiddenPage, service, args, why, Status::OK)
        {
            return stop;
        }
    }
    let memory = state.ram.memory();
    let attached_region = if user { Region::User { limit: layout::USER_END } } else { Region::Kernel };
    let into_kernel = service == Service::Xmemin;
    let mut attached_side = Side::new(memory, space, attached_region, !into_kernel);
    let mut kernel_side = Side::new(memory, &state.space, Region::Kernel, into_kernel);
    let (done, fault) = if into_kernel {
        uaccess::copy(memory, &mut attached_side, m.attached, &mut kernel_side, m.kernel, m.count)
    } else {
        uaccess::copy(memory, &mut kernel_side, m.kernel, &mut attached_side, m.attached, m.count)
    };
    uaccess::answer(state, caller, service, args, done, fault)
}

/// The pages one `xmemdma` call covers.
struct Pages {
    xaddr: u64,
    count: u64,
    flags: u64,
    /// Where each page's real address goes (0: nowhere).
    out: u64,
}

fn dma(state: &VmState, caller: Caller, service: Service, args: &[u64], p: Pages) -> Outcome {
    let check_only = p.flags == XMEM_ACC_CHK || p.flags == XMEM_ACC_CHK | XMEM_WRITE_ONLY;
    let batch = service == Service::XmemdmaPages;
    if !(p.flags == XMEM_HIDE || p.flags == XMEM_UNHIDE || (check_only && !batch)) {
        return Reply::status(Status::EINVAL);
    }
    if p.count == 0 || p.count > XMEMDMA_MAX_PAGES {
        return Reply::status(Status::EINVAL);
    }
    let k = &mut *lock(&state.kernel);
    let handle = match named(state, k, caller, service, args, args[0]) {
        Ok(handle) => handle,
        Err(answer) => return answer,
    };
    let Some(a) = k.xmem.get(handle) else { return Reply::status(Status::EINVAL) };
    let first = p.xaddr - p.xaddr % PAGE_SIZE;
    let span = (p.count - 1) * PAGE_SIZE;
    // Each page must share a byte with the buffer: its first page holds xaddr, its last the last page's start.
    if !a.contains(p.xaddr, 1) || (p.count > 1 && !a.contains(first + span, 1)) {
        return Reply::status(Status::EFAULT);
    }
    let user = a.pid != 0;
    let Some(space) = space_of(state, k, a.pid) else { return Reply::status(Status::EFAULT) };
    let Some(pages) = frames(state, space, first, span + 1, user) else { return Reply::status(Status::EFAULT) };
    let real = pages[0].1 + p.xaddr % PAGE_SIZE;
    if service == Service::Xmemdma && real >= 1 << 32 {
        return Reply::status(Status::EINVAL);
    }
    if check_only {
        let writable =
            Walker::new(state.ram.memory(), space).translate(first).is_some_and(|t| t.flags.contains(PteFlags::WRITABLE));
        return if p.flags & XMEM_WRITE_ONLY != 0 && !writable { Reply::status(Status::EFAULT) } else { Reply::ok(real) };
    }
    let pid = a.pid;
    // An unhide names the frames its hides took, whatever the addresses map now:
    // hides follow the frame, and a remap must not redirect an unhide.
    let gpas: Vec<u64> = if p.flags == XMEM_HIDE {
        if let Some(&(va, _)) = pages.iter().find(|&&(_, gpa)| !k.frames.is_pinned(gpa)) {
            let why =
                format!("xmemdma hides {va:#x}, a page that is not pinned: pin it (xmempin, pinu) before handing it to a device");
            return refuse(state, caller, ViolationKind::XmemHideUnpinnedPage, service, args, why, Status::EINVAL);
        }
        pages.iter().map(|&(_, gpa)| gpa).collect()
    } else {
        match pages.iter().map(|&(va, _)| a.hidden.get(&va).and_then(|h| h.frames.last().copied()).ok_or(va)).collect() {
            Ok(gpas) => gpas,
            Err(va) => {
                let why =
                    format!("xmemdma XMEM_UNHIDE of {va:#x}, a page not hidden through this descriptor (unhide without hide)");
                return refuse(state, caller, ViolationKind::XmemUnhideWithoutHide, service, args, why, Status::EINVAL);
            }
        }
    };
    if p.out != 0 {
        let bytes: Vec<u8> = gpas.iter().flat_map(|gpa| gpa.to_le_bytes()).collect();
        if guest_access::write(state.ram.memory(), &state.space, p.out, &bytes).is_err() {
            return Reply::status(Status::EFAULT);
        }
    }
    let changed = if p.flags == XMEM_HIDE {
        let first_hides = match k.frames.hide(&gpas) {
            Ok(first_hides) => first_hides,
            Err(e) => {
                let why = format!("xmemdma cannot hand {first:#x} to a device: {e}; no device may touch it");
                return refuse(state, caller, ViolationKind::XmemHideForbiddenFrame, service, args, why, Status::EINVAL);
            }
        };
        state.note_trap_used();
        let what =
            if pid == 0 { format!("kernel address {first:#x}") } else { format!("user address {first:#x} of process {pid}") };
        let hide_origin = HideOrigin { what, vcpu: caller.vcpu, rip: caller.rip };
        state.hiding.hide(&first_hides, &hide_origin).map(|_| ()).inspect_err(|_| {
            // All or nothing: the ledger gives back what it just counted.
            let _ = k.frames.unhide(&gpas);
        })
    } else {
        // Touches already made are recorded before the pages come back. With
        // one vCPU there are none: the only vCPU is the one unhiding.
        if state.config.vcpus > 1
            && let Err(why) = touches::record_touches(state)
        {
            return refuse(state, caller, ViolationKind::XmemHidingFailed, service, args, why, Status::EPERM);
        }
        match k.frames.unhide(&gpas) {
            Ok(last_hides) => {
                // AIX: the last unhide sets the modified bit, unless the
                // page's storage key is read-only. Object pages only: their
                // marks are what the pager trusts.
                // A device write to a page marked so is accounted for; one
                // to a page left clean remembers this call, which a lost
                // modification names.
                let mut end = None;
                for &frame in &last_hides {
                    if k.vmm.key_of_frame(frame).is_some_and(|key| key != RDONLY) {
                        k.frames.set_modified(frame, true);
                        k.frames.take_device_write(frame);
                    } else if k.frames.device_write(frame).is_some() {
                        let end = *end
                            .get_or_insert_with(|| HandOffEnd { service, origin: k.dgux.origins.intern(&caller.origin(state)) });
                        k.frames.end_unmarked(frame, end);
                    }
                }
                if let Some(frame) = k.frames.first_in_transfer(last_hides.iter().copied()) {
                    let va = pages.iter().zip(&gpas).find(|&(_, &gpa)| gpa == frame).map_or(first, |(&(va, _), _)| va);
                    let message = format!(
                        "xmemdma XMEM_UNHIDE of {va:#x} (frame {frame:#x}) while a DMA transfer that touches it is queued \
                         or running: the device may still read or write the page after it was handed back; wait for the \
                         transfer to complete before unhiding"
                    );
                    let kind = ViolationKind::DmaUnhideDuringTransfer;
                    state.record_violation(caller.violation(state, kind, service.name(), args, message));
                }
                state.hiding.unhide(&last_hides).map(|released| {
                    for stall in &released {
                        if let Some(vcpu) = stall.vcpu {
                            state.trace(Event::Release { vcpu, page: stall.page });
                            state.vcpus.release_stall(vcpu);
                        }
                    }
                })
            }
            Err(e) => {
                let why = format!("xmemdma XMEM_UNHIDE: {e}, although this descriptor hid it");
                return refuse(state, caller, ViolationKind::XmemUnhideNotHidden, service, args, why, Status::EINVAL);
            }
        }
    };
    match changed {
        // Not the driver's doing: the host does not let hiding work. The run
        // stops once, as a setup problem, instead of a violation here and
        // follow-on ones at every later touch and unhide.
        Err(HideError::Unavailable(why)) => {
            return Outcome::Stop(Box::new(ExitCause::UserfaultfdNotPermitted { vcpu: caller.vcpu, why }));
        }
        Err(e) => return refuse(state, caller, ViolationKind::XmemHidingFailed, service, args, e.to_string(), Status::EPERM),
        Ok(()) => {}
    }
    state.trace(Event::Hide { vcpu: caller.vcpu, hide: p.flags == XMEM_HIDE, frames: gpas.clone() });
    let origin = origin(caller, service);
    if let Some(a) = k.xmem.get_mut(handle) {
        for (&(va, _), &gpa) in pages.iter().zip(&gpas) {
            if p.flags == XMEM_HIDE {
                a.hidden.entry(va).or_insert(HiddenThrough { frames: Vec::new(), origin }).frames.push(gpa);
            } else if let Some(h) = a.hidden.get_mut(&va) {
                h.frames.pop();
                if h.frames.is_empty() {
                    a.hidden.remove(&va);
                }
            }
        }
    }
    let real = gpas[0] + p.xaddr % PAGE_SIZE;
    Reply::ok(if batch { p.count } else { real })
}

fn pin(state: &VmState, caller: Caller, service: Service, args: &[u64]) -> Outcome {
    let &[uaddr, count, dp] = args else { return Reply::status(Status::EINVAL) };
    if count == 0 || count > MAX_COUNT {
        return Reply::status(Status::EINVAL);
    }
    let k = &mut *lock(&state.kernel);
    let handle = match named(state, k, caller, service, args, dp) {
        Ok(handle) => handle,
        Err(answer) => return answer,
    };
    let Some(a) = k.xmem.get(handle) else { return Reply::status(Status::EINVAL) };
    if !a.contains(uaddr, count) {
        return Reply::status(Status::EFAULT);
    }
    let (pid, user) = (a.pid, a.pid != 0);
    let Some(space) = space_of(state, k, pid) else { return Reply::status(Status::EFAULT) };
    let Some(pages) = frames(state, space, uaddr, count, user) else { return Reply::status(Status::EFAULT) };
    let origin = crate::memory_model::pins::Origin { service: service.name(), vcpu: caller.vcpu, rip: caller.rip };
    Reply::status(pinning::pin_pages(state, k, pid, &pages, origin, service == Service::Xmempin))
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::aix::{KERNEL_HEAP, PROT_READ, PROT_WRITE};
    use kmemvisor_abi::dgux::VM_PAGE_ALIGNED;
    use kmemvisor_abi::layout::PAGE_SIZE;
    use kmemvisor_abi::xmem::{SYS_ADSPACE, USER_ADSPACE, XMEM_ACC_CHK, XMEM_HIDE, XMEM_UNHIDE, XMEM_WRITE_ONLY};
    use kmemvisor_abi::{Service, Status};

    use super::read_descriptor;
    use crate::memory_model::guest_access;
    use crate::state::VmState;
    use crate::testing::{kinds, ok, reply, state, status, violations};

    const USER: u64 = 0x1000_0000;

    /// Wired kernel memory: `bytes` rounded up to pages.
    fn wired(s: &VmState, bytes: u64) -> u64 {
        ok(s, Service::VmGetWiredMemory, &[bytes.next_multiple_of(PAGE_SIZE), u64::from(VM_PAGE_ALIGNED)])
    }

    fn poke(s: &VmState, va: u64, bytes: &[u8]) {
        guest_access::write(s.ram.memory(), &s.space, va, bytes).expect("kernel write");
    }

    fn peek(s: &VmState, va: u64, len: usize) -> Vec<u8> {
        guest_access::read(s.ram.memory(), &s.space, va, len).expect("kernel read")
    }

    /// A process with `pages` writable user pages at USER, current on vCPU 0.
    fn process(s: &VmState, pages: u64) -> u64 {
        let pid = ok(s, Service::ProcessCreate, &[]);
        assert_eq!(status(s, Service::ProcessSwitch, &[pid]), Status::OK);
        assert_eq!(status(s, Service::ProcessMap, &[USER, pages * PAGE_SIZE, PROT_READ | PROT_WRITE]), Status::OK);
        pid
    }

    /// How many times the frame at `gpa` is hidden, as the ledger says.
    fn hides(s: &VmState, gpa: u64) -> u32 {
        s.kernel.lock().expect("lock").frames.hides(gpa)
    }

    /// The guest-physical frame of user page `va` of `pid`.
    fn frame(s: &VmState, pid: u64, va: u64) -> u64 {
        let k = s.kernel.lock().expect("lock");
        k.processes.get(pid).expect("process").space().translate(s.ram.memory(), va).expect("mapped").gpa
    }

    #[test]
    fn xmattach_checks_its_context_and_arguments() {
        let s = state();
        let dp = wired(&s, 64);
        let kbuf = wired(&s, 2 * PAGE_SIZE);
        assert_eq!(status(&s, Service::Xmattach64, &[USER, 8, dp, USER_ADSPACE]), Status::EPERM, "no process");
        assert!(violations(&s)[0].contains("only under a process"));
        assert_eq!(status(&s, Service::Xmattach64, &[kbuf, 8, dp, SYS_ADSPACE]), Status::OK, "kernel memory needs none");
        process(&s, 2);
        for (addr, count, segflag, expected) in [
            (USER, 8, 7, Status::EINVAL),
            (USER, 0, USER_ADSPACE, Status::EINVAL),
            (USER, 1 << 31, USER_ADSPACE, Status::EINVAL),
            (u64::MAX - 4, 8, USER_ADSPACE, Status::EINVAL),
            (USER, 3 * PAGE_SIZE, USER_ADSPACE, Status::EFAULT),
            (kbuf, 8, USER_ADSPACE, Status::EFAULT),
            (USER, 8, SYS_ADSPACE, Status::EFAULT),
        ] {
            assert_eq!(status(&s, Service::Xmattach64, &[addr, count, dp, segflag]), expected, "{addr:#x} {count} {segflag}");
        }
        assert_eq!(status(&s, Service::Xmattach64, &[USER, 8, USER, USER_ADSPACE]), Status::EFAULT, "dp is user memory");
        assert_eq!(status(&s, Service::Xmattach64, &[USER, 8, 0, USER_ADSPACE]), Status::EFAULT);
        assert_eq!(status(&s, Service::Xmattach64, &[USER, 2 * PAGE_SIZE, dp, USER_ADSPACE]), Status::OK);
        let d = read_descriptor(&s, dp).expect("descriptor");
        assert!(d.handle != 0 && d.aspace_id != 0 && d.base == USER && d.len == 2 * PAGE_SIZE, "{d:?}");
        let high = 0x1_0000_0000;
        assert_eq!(status(&s, Service::ProcessMap, &[high, PAGE_SIZE, PROT_WRITE]), Status::OK);
        assert_eq!(status(&s, Service::Xmattach, &[high, 8, dp, USER_ADSPACE]), Status::EFAULT, "plain: 32-bit addresses");
        assert_eq!(status(&s, Service::Xmattach64, &[high, 8, dp, USER_ADSPACE]), Status::OK);
        assert_eq!(ok(&s, Service::InterruptEnter, &[]), 1);
        assert_eq!(status(&s, Service::Xmattach64, &[USER, 8, dp, USER_ADSPACE]), Status::EPERM);
        assert_eq!(violations(&s).len(), 2);
        assert!(violations(&s)[1].contains("interrupt level"));
        assert_eq!(kinds(&s), ["xmem.attach-outside-process", "xmem.attach-outside-process"], "one rule, two ways to break it");
    }

    #[test]
    fn forged_and_stale_descriptors_are_refused() {
        let s = state();
        let dp = wired(&s, 64);
        let kbuf = wired(&s, PAGE_SIZE);
        assert_eq!(status(&s, Service::Xmdetach, &[dp]), Status::EINVAL, "never attached");
        assert_eq!(status(&s, Service::Xmdetach, &[0]), Status::EFAULT);
        assert_eq!(status(&s, Service::Xmattach64, &[kbuf, 64, dp, SYS_ADSPACE]), Status::OK);
        let copy = wired(&s, 64);
        poke(&s, copy, &peek(&s, dp, 40));
        let mut forged = peek(&s, dp, 40);
        forged[8] ^= 1;
        let fake = wired(&s, 64);
        poke(&s, fake, &forged);
        assert_eq!(status(&s, Service::Xmemin, &[kbuf, kbuf, 8, fake]), Status::EINVAL, "wrong tag");
        assert!(violations(&s).is_empty(), "a forged descriptor is refused, not reported");
        assert_eq!(ok(&s, Service::InterruptEnter, &[]), 1);
        assert_eq!(status(&s, Service::Xmdetach, &[dp]), Status::OK, "detach works at interrupt level");
        assert_eq!(read_descriptor(&s, dp).expect("descriptor").handle, 0, "the descriptor is cleared");
        assert_eq!(status(&s, Service::Xmdetach, &[dp]), Status::EINVAL);
        assert_eq!(status(&s, Service::Xmdetach, &[copy]), Status::EINVAL, "a copy of the detached descriptor");
        let v = violations(&s);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("after xmdetach"), "{}", v[0]);
    }

    #[test]
    fn xmemin_and_xmemout_reach_the_attached_process_from_another() {
        let s = state();
        let dp = wired(&s, 64);
        let kbuf = ok(&s, Service::Xmalloc, &[2 * PAGE_SIZE, 12, KERNEL_HEAP]);
        let pid = process(&s, 2);
        assert_eq!(status(&s, Service::Xmattach64, &[USER, 2 * PAGE_SIZE, dp, USER_ADSPACE]), Status::OK);
        let other = process(&s, 1);
        assert_ne!(pid, other);
        let text: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        poke(&s, kbuf, &text);
        let across = USER + PAGE_SIZE - 100;
        assert_eq!(reply(&s, Service::Xmemout, &[kbuf, across, 300, dp]), (Status::OK, 300));
        let gpa = frame(&s, pid, USER + PAGE_SIZE);
        let mut landed = [0u8; 200];
        vm_memory::Bytes::read_slice(s.ram.memory(), &mut landed, vm_memory::GuestAddress(gpa)).expect("read");
        assert_eq!(&landed[..], &text[100..], "in the attached process, not the current one");
        assert_eq!(reply(&s, Service::Xmemin, &[across, kbuf + PAGE_SIZE, 300, dp]), (Status::OK, 300));
        assert_eq!(peek(&s, kbuf + PAGE_SIZE, 300), text);
        assert_eq!(status(&s, Service::Xmemin, &[USER + 2 * PAGE_SIZE - 8, kbuf, 9, dp]), Status::EFAULT, "past the buffer");
        assert_eq!(status(&s, Service::Xmemin, &[USER - 1, kbuf, 2, dp]), Status::EFAULT, "before it");
        assert_eq!(status(&s, Service::Xmemin, &[USER, kbuf, 1 << 31, dp]), Status::EINVAL);
        assert_eq!(status(&s, Service::Xmemin, &[USER, USER, 8, dp]), Status::EFAULT, "the kernel side is user memory");
        assert_eq!(reply(&s, Service::Xmemin, &[USER, kbuf, 0, dp]), (Status::OK, 0));
        // At interrupt level only resident buffers: the kernel_heap page and the user pages are not pinned yet.
        assert_eq!(ok(&s, Service::InterruptEnter, &[]), 1);
        assert_eq!(status(&s, Service::Xmemin, &[USER, kbuf, 8, dp]), Status::EPERM);
        assert!(violations(&s)[0].contains("not resident"));
        assert_eq!(ok(&s, Service::InterruptLeave, &[]), 0);
        assert_eq!(status(&s, Service::Xmempin, &[USER, 8, dp]), Status::OK);
        assert_eq!(status(&s, Service::Pin, &[kbuf, 8]), Status::OK);
        assert_eq!(ok(&s, Service::InterruptEnter, &[]), 1);
        assert_eq!(reply(&s, Service::Xmemin, &[USER, kbuf, 8, dp]), (Status::OK, 8));
        assert_eq!(violations(&s).len(), 1);
    }

    #[test]
    fn without_userfaultfd_a_hide_stops_the_run_once_as_a_setup_problem() {
        let mut s = state();
        s.hiding = crate::devices::hiding::Hiding::without_userfaultfd(&s.ram);
        let dp = wired(&s, 64);
        process(&s, 1);
        assert_eq!(status(&s, Service::Xmattach64, &[USER, PAGE_SIZE, dp, USER_ADSPACE]), Status::OK);
        assert_eq!(status(&s, Service::Xmempin, &[USER, PAGE_SIZE, dp]), Status::OK);
        let outcome = crate::testing::call(&s, Service::Xmemdma64, &[dp, USER, XMEM_HIDE]);
        let crate::services::Outcome::Stop(cause) = outcome else { panic!("not a stop: {outcome:?}") };
        assert!(matches!(*cause, crate::report::ExitCause::UserfaultfdNotPermitted { vcpu: 0, .. }), "{cause:?}");
        assert_eq!(cause.exit_status(0), crate::report::status::NO_USERFAULTFD);
        assert!(violations(&s).is_empty(), "a setup problem, not a violation");
        assert_eq!(hides(&s, frame(&s, 1, USER)), 0, "the ledger gave the hide back");
    }

    #[test]
    fn xmemdma_hides_pinned_pages_and_unhides_them_with_a_count() {
        let s = state();
        let dp = wired(&s, 64);
        let out = wired(&s, 64);
        let pid = process(&s, 3);
        assert_eq!(status(&s, Service::Xmattach64, &[USER, 3 * PAGE_SIZE, dp, USER_ADSPACE]), Status::OK);
        let gpa = frame(&s, pid, USER + PAGE_SIZE);
        let xaddr = USER + PAGE_SIZE + 0x10;
        assert_eq!(status(&s, Service::Xmemdma64, &[dp, xaddr, XMEM_HIDE]), Status::EINVAL, "not pinned");
        assert!(violations(&s)[0].contains("not pinned"));
        assert_eq!(reply(&s, Service::Xmemdma64, &[dp, xaddr, XMEM_ACC_CHK]), (Status::OK, gpa + 0x10));
        assert_eq!(reply(&s, Service::Xmemdma, &[dp, xaddr, XMEM_ACC_CHK | XMEM_WRITE_ONLY]), (Status::OK, gpa + 0x10));
        assert_eq!(hides(&s, gpa), 0, "a check hides nothing");
        assert_eq!(status(&s, Service::Xmemdma64, &[dp, xaddr, 8]), Status::EINVAL);
        assert_eq!(status(&s, Service::Xmemdma64, &[dp, USER + 3 * PAGE_SIZE, XMEM_HIDE]), Status::EFAULT);
        assert_eq!(status(&s, Service::Xmempin, &[USER, 3 * PAGE_SIZE, dp]), Status::OK);
        assert_eq!(reply(&s, Service::Xmemdma64, &[dp, xaddr, XMEM_HIDE]), (Status::OK, gpa + 0x10));
        assert_eq!(reply(&s, Service::Xmemdma, &[dp, xaddr, XMEM_HIDE]), (Status::OK, gpa + 0x10));
        assert_eq!(hides(&s, gpa), 2);
        assert_eq!(status(&s, Service::Xmdetach, &[dp]), Status::EBUSY, "pages are hidden");
        assert_eq!(reply(&s, Service::Xmemdma64, &[dp, xaddr, XMEM_UNHIDE]), (Status::OK, gpa + 0x10));
        assert_eq!(reply(&s, Service::Xmemdma64, &[dp, xaddr, XMEM_UNHIDE]), (Status::OK, gpa + 0x10));
        assert_eq!(hides(&s, gpa), 0);
        assert_eq!(status(&s, Service::Xmemdma64, &[dp, xaddr, XMEM_UNHIDE]), Status::EINVAL, "unhide without hide");
        // A batch is all or nothing, and reports every page's real address.
        assert_eq!(status(&s, Service::Xmemunpin, &[USER + 2 * PAGE_SIZE, 1, dp]), Status::OK);
        assert_eq!(status(&s, Service::XmemdmaPages, &[dp, USER, 3, XMEM_HIDE, out]), Status::EINVAL, "page 3 is unpinned");
        assert_eq!(hides(&s, frame(&s, pid, USER)), 0);
        for bad in [0, 1025] {
            assert_eq!(status(&s, Service::XmemdmaPages, &[dp, USER, bad, XMEM_HIDE, out]), Status::EINVAL);
        }
        assert_eq!(status(&s, Service::XmemdmaPages, &[dp, USER, 4, XMEM_HIDE, out]), Status::EFAULT, "past the buffer");
        assert_eq!(status(&s, Service::XmemdmaPages, &[dp, USER, 2, XMEM_HIDE, USER]), Status::EFAULT, "bad out array");
        assert_eq!(reply(&s, Service::XmemdmaPages, &[dp, USER, 2, XMEM_HIDE, out]), (Status::OK, 2));
        let addresses = peek(&s, out, 16);
        assert_eq!(addresses[..8], frame(&s, pid, USER).to_le_bytes());
        assert_eq!(addresses[8..], gpa.to_le_bytes());
        assert_eq!(hides(&s, gpa), 1);
        let leaks = s.kernel.lock().expect("lock").xmem.leaks();
        assert_eq!(leaks.len(), 3, "the attachment and two hidden pages: {leaks:?}");
        assert_eq!(ok(&s, Service::InterruptEnter, &[]), 1);
        assert_eq!(reply(&s, Service::XmemdmaPages, &[dp, USER, 2, XMEM_UNHIDE, 0]), (Status::OK, 2));
        assert_eq!(status(&s, Service::Xmdetach, &[dp]), Status::OK);
        assert!(s.kernel.lock().expect("lock").xmem.leaks().is_empty());
        assert_eq!(violations(&s).len(), 4, "{:?}", violations(&s));
    }

    #[test]
    fn attached_memory_cannot_be_freed() {
        let s = state();
        let dp = wired(&s, 64);
        let block = ok(&s, Service::Xmalloc, &[256, 3, KERNEL_HEAP]);
        let dgux = wired(&s, 128);
        assert_eq!(status(&s, Service::Xmattach64, &[block + 16, 8, dp, SYS_ADSPACE]), Status::OK);
        let dp2 = wired(&s, 64);
        assert_eq!(status(&s, Service::Xmattach64, &[dgux, 128, dp2, SYS_ADSPACE]), Status::OK);
        let pid = process(&s, 1);
        let dp3 = wired(&s, 64);
        assert_eq!(status(&s, Service::Xmattach64, &[USER, 8, dp3, USER_ADSPACE]), Status::OK);
        assert_eq!(status(&s, Service::ProcessSwitch, &[0]), Status::OK);
        assert_eq!(status(&s, Service::Xmfree, &[block, KERNEL_HEAP]), Status::EBUSY);
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[dgux, PAGE_SIZE]), Status::EBUSY);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::EBUSY);
        let v = violations(&s);
        assert_eq!(v.len(), 3);
        assert!(v.iter().all(|m| m.contains("xmdetach first")), "{v:?}");
        for d in [dp, dp2, dp3] {
            assert_eq!(status(&s, Service::Xmdetach, &[d]), Status::OK);
        }
        assert_eq!(status(&s, Service::Xmfree, &[block, KERNEL_HEAP]), Status::OK);
        assert_eq!(status(&s, Service::VmReleaseWiredMemory, &[dgux, PAGE_SIZE]), Status::OK);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::OK);
    }
}
