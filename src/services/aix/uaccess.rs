//! AIX user memory access: copyin/copyout, copyinstr, fubyte/fuword,
//! subyte/suword (and their 64 variants), uiomove, ureadc and uwritec.
//!
//! Every byte goes through the VMM's page tables: user addresses through the
//! current process's, kernel addresses through the kernel's. Copies go chunk by
//! chunk, a chunk never crossing a page on either side, one memcpy each. At
//! the first bad user byte the copy stops: what came before it was copied, and
//! the status is EFAULT with the count as the value (the partial-copy rule).

use crate::memory_model::ram::{GuestMemoryMmap, fill};
use kmemvisor_abi::aix::{IoVec, UIO_MAXIOV, UIO_READ, UIO_SYSSPACE, UIO_USERISPACE, UIO_USERSPACE, UIO_WRITE, Uio};
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use kmemvisor_abi::{Service, Status};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use crate::checker::ViolationKind;
use crate::memory_model::paging::{AddressSpace, PteFlags, Walker};
use crate::services::{Caller, Outcome, Reply, refuse};
use crate::state::VmState;
use crate::sync::lock;

/// The end of the addresses the plain (32-bit) variants reach.
const PLAIN_LIMIT: u64 = 1 << 32;

/// Which addresses one side of a copy may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Region {
    /// User addresses below `limit`.
    User { limit: u64 },
    /// Kernel addresses.
    Kernel,
}

/// Where a copy stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// At a bad user byte.
    User(u64),
    /// At a bad kernel byte: a driver bug, recorded as a violation.
    Kernel(u64),
    /// At an offset of a virtual memory object that the copy may not use
    /// (`vm_move`): past the largest object, or a read-only page written.
    Object(u64),
    /// At a page that a virtual memory object does not have, written to
    /// (`vm_move` makes the page and goes on). Read, such a page is zeros.
    Hole(u64),
}

/// A page of a virtual memory object, as a copy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjectPage {
    /// The page's frame, and whether its protect key lets it be written.
    Frame { gpa: u64, writable: bool },
    /// A page the object does not have.
    Hole,
    /// An offset past the largest object.
    Outside,
}

/// The page of a virtual memory object that holds a byte offset.
pub(crate) type ObjectPages<'a> = &'a dyn Fn(u64) -> ObjectPage;

/// How one side of a copy finds the frame behind an address.
enum Lookup<'a> {
    /// Through the page tables of an address space, in a region of it.
    Space { walker: Walker<'a>, region: Region },
    /// Byte offsets in a virtual memory object (`vm_move`).
    Object(ObjectPages<'a>),
}

/// One side of a copy: a range of one address space, or of an object.
pub(crate) struct Side<'a> {
    lookup: Lookup<'a>,
    /// The side is written to.
    write: bool,
}

impl<'a> Side<'a> {
    pub(crate) fn new(memory: &'a GuestMemoryMmap, space: &'a AddressSpace, region: Region, write: bool) -> Side<'a> {
        Side { lookup: Lookup::Space { walker: Walker::new(memory, space), region }, write }
    }

    /// Offsets in a virtual memory object.
    pub(crate) fn object(pages: ObjectPages<'a>, write: bool) -> Side<'a> {
        Side { lookup: Lookup::Object(pages), write }
    }

    /// Whether the side is kernel memory: a bad byte there is a driver bug.
    fn is_kernel(&self) -> bool {
        matches!(self.lookup, Lookup::Space { region: Region::Kernel, .. })
    }

    /// The guest-physical address of `va`, if this side may use it.
    fn gpa(&mut self, va: u64) -> Result<u64, Fault> {
        let (walker, region) = match &mut self.lookup {
            Lookup::Space { walker, region } => (walker, *region),
            Lookup::Object(pages) => {
                return match pages(va) {
                    ObjectPage::Frame { gpa, writable } if writable || !self.write => Ok(gpa + va % PAGE_SIZE),
                    ObjectPage::Frame { .. } | ObjectPage::Outside => Err(Fault::Object(va)),
                    ObjectPage::Hole => Err(Fault::Hole(va)),
                };
            }
        };
        let allowed = match region {
            Region::User { limit } => (layout::USER_START..limit.min(layout::USER_END)).contains(&va),
            Region::Kernel => !layout::is_user_address(va),
        };
        let needed = if self.write { PteFlags::USER | PteFlags::WRITABLE } else { PteFlags::USER };
        let fault = match region {
            Region::User { .. } => Fault::User(va),
            Region::Kernel => Fault::Kernel(va),
        };
        allowed.then(|| walker.translate(va)).flatten().filter(|t| t.flags.contains(needed)).map(|t| t.gpa).ok_or(fault)
    }
}

/// Bytes left in the page of `va`.
fn page_rest(va: u64) -> u64 {
    PAGE_SIZE - va % PAGE_SIZE
}

/// Copies `len` bytes from `from_va` on `from` to `to_va` on `to`; the bytes
/// copied, and where it stopped if it did. A hole of an object read reads
/// as zeros; one written stops the copy.
pub(crate) fn copy(
    memory: &GuestMemoryMmap,
    from: &mut Side,
    from_va: u64,
    to: &mut Side,
    to_va: u64,
    len: u64,
) -> (u64, Option<Fault>) {
    let mut done = 0;
    while done < len {
        let (Some(src), Some(dst)) = (from_va.checked_add(done), to_va.checked_add(done)) else {
            return (done, Some(if from.is_kernel() { Fault::Kernel(to_va) } else { Fault::User(from_va) }));
        };
        let chunk = (len - done).min(page_rest(src)).min(page_rest(dst));
        let (src_gpa, dst_gpa) = match (from.gpa(src), to.gpa(dst)) {
            (Ok(s), Ok(d)) => (Some(s), d),
            (Err(Fault::Hole(_)), Ok(d)) => (None, d),
            (Err(Fault::Hole(_)), Err(fault)) | (Err(fault), _) | (_, Err(fault)) => return (done, Some(fault)),
        };
        let copied = match src_gpa {
            Some(src_gpa) => memory
                .get_slice(GuestAddress(src_gpa), chunk as usize)
                .and_then(|s| memory.get_slice(GuestAddress(dst_gpa), chunk as usize).map(|d| s.copy_to_volatile_slice(d)))
                .is_ok(),
            // What a page an object does not have reads as.
            None => fill(memory, dst_gpa, chunk as usize, 0),
        };
        if !copied {
            return (done, Some(Fault::Kernel(src)));
        }
        done += chunk;
    }
    (done, None)
}

/// Reads `bytes` from `va` on `side`, or writes them there if the side is
/// written to; across pages, and all or nothing: every page is translated
/// before the first byte moves.
fn small(memory: &GuestMemoryMmap, side: &mut Side, va: u64, bytes: &mut [u8]) -> Result<(), Fault> {
    let mut chunks = Vec::with_capacity(2);
    let mut done = 0usize;
    while done < bytes.len() {
        let at = va.checked_add(done as u64).ok_or(Fault::User(va))?;
        let chunk = ((bytes.len() - done) as u64).min(page_rest(at)) as usize;
        chunks.push((GuestAddress(side.gpa(at)?), done, chunk, at));
        done += chunk;
    }
    for (gpa, from, len, at) in chunks {
        let result = if side.write {
            memory.write_slice(&bytes[from..from + len], gpa)
        } else {
            memory.read_slice(&mut bytes[from..from + len], gpa)
        };
        result.map_err(|_| Fault::User(at))?;
    }
    Ok(())
}

/// The current process of the caller, or how to answer: a violation at
/// interrupt level, EFAULT without a process.
fn process_context(state: &VmState, caller: Caller, service: Service, args: &[u64]) -> Result<u64, Outcome> {
    let context = *lock(&state.contexts[caller.vcpu]);
    if context.at_interrupt_level() {
        let why = format!("{} at interrupt level: user memory may be touched only in process context", service.name());
        return Err(refuse(state, caller, ViolationKind::AixUserAccessAtInterruptLevel, service, args, why, Status::EFAULT));
    }
    if context.pid == 0 { Err(Reply::status(Status::EFAULT)) } else { Ok(context.pid) }
}

/// Answers a finished transfer of `done` bytes.
pub(crate) fn answer(
    state: &VmState,
    caller: Caller,
    service: Service,
    args: &[u64],
    done: u64,
    fault: Option<Fault>,
) -> Outcome {
    match fault {
        None => Reply::ok(done),
        Some(Fault::User(_) | Fault::Object(_) | Fault::Hole(_)) => Outcome::Reply(Reply { status: Status::EFAULT, value: done }),
        Some(Fault::Kernel(at)) => {
            let why = format!("kernel address {at:#x} is not mapped (writable) kernel memory; {done} bytes were copied");
            match refuse(state, caller, ViolationKind::AixKernelBufferUnmapped, service, args, why, Status::EFAULT) {
                Outcome::Reply(reply) => Outcome::Reply(Reply { value: done, ..reply }),
                stop => stop,
            }
        }
    }
}

/// Serves the user memory access services.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let pid = match service {
        Service::Uiomove | Service::Ureadc | Service::Uwritec => None,
        _ => match process_context(state, caller, service, &args) {
            Ok(pid) => Some(pid),
            Err(outcome) => return outcome,
        },
    };
    if let Err(answer) = super::paging::bring_all_in(state) {
        return answer;
    }
    let kernel = lock(&state.kernel);
    let memory = state.ram.memory();
    let user_space = pid.and_then(|pid| kernel.processes.get(pid)).map(|p| p.space());
    let limit = match service {
        Service::Copyin
        | Service::Copyout
        | Service::Copyinstr
        | Service::Fubyte
        | Service::Fuword
        | Service::Subyte
        | Service::Suword => PLAIN_LIMIT,
        _ => layout::USER_END,
    };
    let user = Region::User { limit };
    let [a0, a1, a2, a3, ..] = args;
    match (service, user_space) {
        (Service::Copyin | Service::Copyin64, Some(space)) => {
            let (mut from, mut to) =
                (Side::new(memory, space, user, false), Side::new(memory, &state.space, Region::Kernel, true));
            let (done, fault) = copy(memory, &mut from, a0, &mut to, a1, a2);
            answer(state, caller, service, &args, done, fault)
        }
        (Service::Copyout | Service::Copyout64, Some(space)) => {
            let (mut from, mut to) =
                (Side::new(memory, &state.space, Region::Kernel, false), Side::new(memory, space, user, true));
            let (done, fault) = copy(memory, &mut from, a0, &mut to, a1, a2);
            answer(state, caller, service, &args, done, fault)
        }
        (Service::Copyinstr | Service::Copyinstr64, Some(space)) => copyinstr(state, caller, service, &args, space, user),
        (Service::Fubyte | Service::Fubyte64 | Service::Fuword | Service::Fuword64, Some(space)) => {
            let mut bytes = [0u8; 4];
            let width = if matches!(service, Service::Fubyte | Service::Fubyte64) { 1 } else { 4 };
            match small(memory, &mut Side::new(memory, space, user, false), a0, &mut bytes[..width]) {
                Ok(()) => Reply::ok(u64::from(u32::from_le_bytes(bytes))),
                Err(_) => Reply::status(Status::EFAULT),
            }
        }
        (Service::Subyte | Service::Subyte64 | Service::Suword | Service::Suword64, Some(space)) => {
            let width = if matches!(service, Service::Subyte | Service::Subyte64) { 1 } else { 4 };
            let mut bytes = (a1 as u32).to_le_bytes();
            match small(memory, &mut Side::new(memory, space, user, true), a0, &mut bytes[..width]) {
                Ok(()) => Reply::ok(0),
                Err(_) => Reply::status(Status::EFAULT),
            }
        }
        (Service::Uiomove, _) => uiomove(state, caller, service, &args, &kernel.processes, Kernel::Guest(a0), a1, a2, a3),
        (Service::Ureadc, _) => {
            let mut byte = [a0 as u8];
            match uiomove(state, caller, service, &args, &kernel.processes, Kernel::Byte(&mut byte), 1, UIO_READ, a1) {
                // Nowhere to put the character: resid 0 or every iovec used up.
                Outcome::Reply(Reply { status: Status::OK, value: 0 }) => Reply::status(Status::ENOSPC),
                other => other,
            }
        }
        (Service::Uwritec, _) => {
            let mut byte = [0u8];
            match uiomove(state, caller, service, &args, &kernel.processes, Kernel::Byte(&mut byte), 1, UIO_WRITE, a0) {
                Outcome::Reply(Reply { status: Status::OK, value: 0 }) => Reply::status(Status::ENOENT),
                Outcome::Reply(Reply { status: Status::OK, .. }) => Reply::ok(u64::from(byte[0])),
                other => other,
            }
        }
        // The process was destroyed under a stale context: nothing of it is mapped.
        (_, None) => Reply::status(Status::EFAULT),
        _ => Reply::status(Status::ENOSYS),
    }
}

fn copyinstr(state: &VmState, caller: Caller, service: Service, args: &[u64], space: &AddressSpace, user: Region) -> Outcome {
    let memory = state.ram.memory();
    let [uaddr, kaddr, max, actual] = [args[0], args[1], args[2], args[3]];
    let mut from = Side::new(memory, space, user, false);
    let mut to = Side::new(memory, &state.space, Region::Kernel, true);
    let mut done = 0u64;
    let mut outcome = (Status::ENAMETOOLONG, None);
    while done < max {
        let Some(at) = uaddr.checked_add(done) else {
            outcome = (Status::EFAULT, None);
            break;
        };
        let chunk = (max - done).min(page_rest(at)) as usize;
        let mut bytes = vec![0u8; chunk];
        if small(memory, &mut from, at, &mut bytes).is_err() {
            outcome = (Status::EFAULT, None);
            break;
        }
        let length = bytes.iter().position(|&b| b == 0).map_or(chunk, |nul| nul + 1);
        let target = kaddr.checked_add(done).ok_or(Fault::Kernel(kaddr));
        if let Err(fault) = target.and_then(|k| small(memory, &mut to, k, &mut bytes[..length])) {
            outcome = (Status::EFAULT, Some(fault));
            break;
        }
        done += length as u64;
        if length < chunk || bytes[length - 1] == 0 {
            outcome = (Status::OK, None);
            break;
        }
    }
    if actual != 0 {
        let mut out = done.to_le_bytes();
        if !write_kernel(memory, &state.space, actual, &mut out) {
            outcome = (Status::EFAULT, Some(Fault::Kernel(actual)));
        }
    }
    match outcome {
        (_, Some(fault)) => answer(state, caller, service, args, done, Some(fault)),
        (status, None) => Outcome::Reply(Reply { status, value: done }),
    }
}

/// The kernel end of a `uiomove`: a guest buffer, a byte of the VMM's, or
/// an offset in a virtual memory object (`vm_move`).
pub(crate) enum Kernel<'a> {
    Guest(u64),
    Byte(&'a mut [u8; 1]),
    Object(ObjectPages<'a>, u64),
}

/// Reads `size` bytes of kernel memory at `va` and decodes them.
fn read_kernel<T>(
    memory: &GuestMemoryMmap,
    space: &AddressSpace,
    va: u64,
    decode: impl Fn(&[u8]) -> T,
    size: usize,
) -> Option<T> {
    let mut bytes = vec![0u8; size];
    small(memory, &mut Side::new(memory, space, Region::Kernel, false), va, &mut bytes).ok()?;
    Some(decode(&bytes))
}

/// Writes `bytes` to writable kernel memory at `va`, all or nothing.
fn write_kernel(memory: &GuestMemoryMmap, space: &AddressSpace, va: u64, bytes: &mut [u8]) -> bool {
    small(memory, &mut Side::new(memory, space, Region::Kernel, true), va, bytes).is_ok()
}

fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default())
}

fn half(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default())
}

pub(crate) fn decode_uio(b: &[u8]) -> Uio {
    Uio {
        iov: word(b, 0),
        iovcnt: half(b, 8),
        iovdcnt: half(b, 12),
        offset: word(b, 16),
        resid: word(b, 24),
        segflg: half(b, 32),
        fmode: half(b, 36),
    }
}

pub(crate) fn encode_uio(u: &Uio) -> Vec<u8> {
    let mut b = Vec::with_capacity(40);
    for part in [
        u.iov.to_le_bytes().as_slice(),
        &u.iovcnt.to_le_bytes(),
        &u.iovdcnt.to_le_bytes(),
        &u.offset.to_le_bytes(),
        &u.resid.to_le_bytes(),
        &u.segflg.to_le_bytes(),
        &u.fmode.to_le_bytes(),
    ] {
        b.extend_from_slice(part);
    }
    b
}

#[allow(clippy::too_many_arguments)] // the service's four arguments plus the call's context
fn uiomove(
    state: &VmState,
    caller: Caller,
    service: Service,
    args: &[u64],
    processes: &crate::memory_model::processes::Processes,
    kernel: Kernel,
    n: u64,
    rw: u64,
    uio_va: u64,
) -> Outcome {
    match move_uio(state, caller, service, args, processes, kernel, n, rw, uio_va) {
        Ok((moved, fault)) => answer(state, caller, service, args, moved, fault),
        Err(refused) => refused,
    }
}

/// Moves up to `n` bytes between `kernel` and the buffers of the uio at
/// `uio_va` and writes the uio back: the bytes moved and where it stopped
/// if it did, or the answer to a refused uio.
#[allow(clippy::too_many_arguments)] // the service's four arguments plus the call's context
pub(crate) fn move_uio(
    state: &VmState,
    caller: Caller,
    service: Service,
    args: &[u64],
    processes: &crate::memory_model::processes::Processes,
    mut kernel: Kernel,
    n: u64,
    rw: u64,
    uio_va: u64,
) -> Result<(u64, Option<Fault>), Outcome> {
    let memory = state.ram.memory();
    let bad_kernel = |what: &str| {
        let why = format!("the {what} at {uio_va:#x} is not in writable kernel memory");
        refuse(state, caller, ViolationKind::AixUioNotInKernelMemory, service, args, why, Status::EFAULT)
    };
    let Some(mut uio) = read_kernel(memory, &state.space, uio_va, decode_uio, 40) else { return Err(bad_kernel("uio")) };
    if rw != UIO_READ && rw != UIO_WRITE || uio.iovcnt > UIO_MAXIOV {
        return Err(Reply::status(Status::EINVAL));
    }
    let buffers = match u64::from(uio.segflg) {
        UIO_SYSSPACE => Some(&state.space),
        UIO_USERSPACE | UIO_USERISPACE => match process_context(state, caller, service, args) {
            Ok(pid) => processes.get(pid).map(|p| p.space()),
            Err(outcome) => return Err(outcome),
        },
        _ => return Err(Reply::status(Status::EINVAL)),
    };
    let Some(buffer_space) = buffers else { return Err(Reply::status(Status::EFAULT)) };
    if lock(&state.contexts[caller.vcpu]).at_interrupt_level() {
        let why = format!("{} at interrupt level", service.name());
        return Err(refuse(state, caller, ViolationKind::AixUiomoveAtInterruptLevel, service, args, why, Status::EFAULT));
    }
    let region = if u64::from(uio.segflg) == UIO_SYSSPACE { Region::Kernel } else { Region::User { limit: layout::USER_END } };
    let total = n.min(uio.resid);
    let mut moved = 0u64;
    let mut fault = None;
    while moved < total && uio.iovdcnt < uio.iovcnt {
        let Some(iov_va) = uio.iov.checked_add(u64::from(uio.iovdcnt) * 16) else { return Err(bad_kernel("iovec")) };
        let Some(mut iov) = read_kernel(memory, &state.space, iov_va, |b| IoVec { base: word(b, 0), len: word(b, 8) }, 16) else {
            return Err(bad_kernel("iovec"));
        };
        let chunk = iov.len.min(total - moved);
        // The copy between the kernel end at `at` (the bytes before were moved) and the iovec.
        let through = |mut kside: Side, at: u64| {
            let at = at.wrapping_add(moved);
            let mut buffer = Side::new(memory, buffer_space, region, rw == UIO_READ);
            if rw == UIO_READ {
                copy(memory, &mut kside, at, &mut buffer, iov.base, chunk)
            } else {
                copy(memory, &mut buffer, iov.base, &mut kside, at, chunk)
            }
        };
        let (done, stopped) = match &mut kernel {
            Kernel::Guest(cp) => through(Side::new(memory, &state.space, Region::Kernel, rw == UIO_WRITE), *cp),
            Kernel::Object(pages, offset) => through(Side::object(*pages, rw == UIO_WRITE), *offset),
            Kernel::Byte(byte) => {
                let mut buffer = Side::new(memory, buffer_space, region, rw == UIO_READ);
                match (chunk, small(memory, &mut buffer, iov.base, &mut byte[..])) {
                    (0, _) => (0, None),
                    (_, Ok(())) => (1, None),
                    (_, Err(fault)) => (0, Some(fault)),
                }
            }
        };
        iov.base = iov.base.wrapping_add(done);
        iov.len -= done;
        uio.offset = uio.offset.wrapping_add(done);
        uio.resid -= done;
        moved += done;
        if iov.len == 0 {
            uio.iovdcnt += 1;
        }
        let mut encoded = [iov.base.to_le_bytes(), iov.len.to_le_bytes()].concat();
        if !write_kernel(memory, &state.space, iov_va, &mut encoded) {
            return Err(bad_kernel("iovec"));
        }
        if stopped.is_some() {
            fault = stopped;
            break;
        }
    }
    if !write_kernel(memory, &state.space, uio_va, &mut encode_uio(&uio)) {
        return Err(bad_kernel("uio"));
    }
    Ok((moved, fault))
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::aix::{IoVec, PROT_READ, PROT_WRITE, UIO_MAXIOV, UIO_READ, UIO_SYSSPACE, UIO_USERSPACE, UIO_WRITE, Uio};
    use kmemvisor_abi::dgux::{VM_DEFAULT_ALIGNMENT, VM_PAGE_ALIGNED};
    use kmemvisor_abi::{Service, Status};
    use vm_memory::{Bytes, GuestAddress};

    use super::encode_uio;
    use crate::state::VmState;
    use crate::testing;

    const USER: u64 = 0x1000_0000;
    const HIGH_USER: u64 = 0x1_2000_0000;

    struct Vm {
        state: VmState,
    }

    impl Vm {
        fn new() -> Vm {
            let vm = Vm { state: testing::state() };
            let pid = vm.ok(Service::ProcessCreate, &[]);
            vm.ok(Service::ProcessSwitch, &[pid]);
            vm.ok(Service::ProcessMap, &[USER, 3 * 4096, PROT_READ | PROT_WRITE]);
            vm.ok(Service::ProcessMap, &[HIGH_USER, 4096, PROT_READ | PROT_WRITE]);
            vm
        }

        fn reply(&self, service: Service, args: &[u64]) -> (Status, u64) {
            testing::reply(&self.state, service, args)
        }

        fn ok(&self, service: Service, args: &[u64]) -> u64 {
            testing::ok(&self.state, service, args)
        }

        /// A kernel buffer of `bytes`.
        fn kernel_buffer(&self, bytes: u64) -> u64 {
            self.ok(
                Service::VmGetWiredMemory,
                &[bytes, u64::from(if bytes >= 4096 { VM_PAGE_ALIGNED } else { VM_DEFAULT_ALIGNMENT })],
            )
        }

        fn space_of(&self, va: u64) -> u64 {
            let kernel = self.state.kernel.lock().expect("lock");
            let pid = self.state.contexts[0].lock().expect("context").pid;
            let space = if kmemvisor_abi::layout::is_user_address(va) {
                kernel.processes.get(pid).expect("process").space()
            } else {
                &self.state.space
            };
            space.translate(self.state.ram.memory(), va).expect("mapped").gpa
        }

        fn poke(&self, va: u64, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                let gpa = self.space_of(va + i as u64);
                self.state.ram.memory().write_obj(*b, GuestAddress(gpa)).expect("write");
            }
        }

        fn peek(&self, va: u64, len: usize) -> Vec<u8> {
            (0..len)
                .map(|i| self.state.ram.memory().read_obj(GuestAddress(self.space_of(va + i as u64))).expect("read"))
                .collect()
        }

        fn violations(&self) -> usize {
            self.state.checker.violations().len()
        }
    }

    #[test]
    fn copies_cross_pages_and_stop_at_the_first_bad_user_byte() {
        let vm = Vm::new();
        let pattern: Vec<u8> = (0..6000u32).map(|i| (i * 7) as u8).collect();
        vm.poke(USER + 100, &pattern);
        let k = vm.kernel_buffer(8192);
        assert_eq!(vm.reply(Service::Copyin, &[USER + 100, k, 6000]), (Status::OK, 6000));
        assert_eq!(vm.peek(k, 6000), pattern);
        assert_eq!(vm.reply(Service::Copyout, &[k, USER + 6000, 6000]), (Status::OK, 6000));
        assert_eq!(vm.peek(USER + 6000, 6000), pattern);
        // The mapping ends at USER + 12 KiB: a copy over its end copies up to it.
        assert_eq!(vm.reply(Service::Copyin64, &[USER + 3 * 4096 - 10, k, 100]), (Status::EFAULT, 10));
        assert_eq!(vm.reply(Service::Copyout64, &[k, USER + 3 * 4096 - 5, 100]), (Status::EFAULT, 5));
        assert_eq!(vm.reply(Service::Copyin, &[u64::MAX - 3, k, 10]), (Status::EFAULT, 0), "wrapping");
        assert_eq!(vm.violations(), 0);
    }

    #[test]
    fn plain_variants_reach_only_32_bit_user_addresses() {
        let vm = Vm::new();
        let k = vm.kernel_buffer(64);
        assert_eq!(vm.reply(Service::Copyin, &[HIGH_USER, k, 8]).0, Status::EFAULT);
        assert_eq!(vm.reply(Service::Copyin64, &[HIGH_USER, k, 8]), (Status::OK, 8));
        assert_eq!(vm.reply(Service::Fubyte, &[HIGH_USER]).0, Status::EFAULT);
        assert_eq!(vm.reply(Service::Subyte64, &[HIGH_USER, 0x1ab]), (Status::OK, 0));
        assert_eq!(vm.reply(Service::Fubyte64, &[HIGH_USER]), (Status::OK, 0xab));
    }

    #[test]
    fn fetch_and_store_words_and_bytes() {
        let vm = Vm::new();
        assert_eq!(vm.reply(Service::Suword, &[USER + 4094, 0xdead_beef]), (Status::OK, 0), "across a page");
        assert_eq!(vm.reply(Service::Fuword, &[USER + 4094]), (Status::OK, 0xdead_beef));
        assert_eq!(vm.reply(Service::Fubyte, &[USER + 4095]), (Status::OK, 0xbe));
        assert_eq!(vm.reply(Service::Fuword64, &[USER + 3 * 4096 - 2]).0, Status::EFAULT);
        vm.poke(USER + 3 * 4096 - 2, &[1, 2]);
        assert_eq!(vm.reply(Service::Suword64, &[USER + 3 * 4096 - 2, 0xffff_ffff]).0, Status::EFAULT);
        assert_eq!(vm.peek(USER + 3 * 4096 - 2, 2), [1, 2], "a store across the end of the mapping stores nothing");
        assert_eq!(vm.reply(Service::Subyte, &[0x10, 1]).0, Status::EFAULT, "below the user range");
    }

    #[test]
    fn copyinstr_has_three_outcomes() {
        let vm = Vm::new();
        let (k, actual) = (vm.kernel_buffer(4096), vm.kernel_buffer(8));
        vm.poke(USER + 4090, b"hello, world\0");
        assert_eq!(vm.reply(Service::Copyinstr, &[USER + 4090, k, 100, actual]), (Status::OK, 13));
        assert_eq!(vm.peek(k, 13), b"hello, world\0");
        assert_eq!(u64::from_le_bytes(vm.peek(actual, 8).try_into().expect("8")), 13);
        assert_eq!(vm.reply(Service::Copyinstr, &[USER + 4090, k, 5, actual]), (Status::ENAMETOOLONG, 5));
        vm.poke(USER + 3 * 4096 - 3, b"abc");
        assert_eq!(vm.reply(Service::Copyinstr64, &[USER + 3 * 4096 - 3, k, 100, 0]), (Status::EFAULT, 3));
    }

    #[test]
    fn context_rules_are_enforced() {
        let vm = Vm::new();
        let k = vm.kernel_buffer(64);
        assert_eq!(vm.reply(Service::Copyin, &[USER, 0xdead_0000_0000_0000, 8]).0, Status::EFAULT);
        assert_eq!(vm.violations(), 1, "a bad kernel address is a driver bug");
        vm.ok(Service::InterruptEnter, &[]);
        assert_eq!(vm.reply(Service::Copyin, &[USER, k, 8]), (Status::EFAULT, 0));
        assert_eq!(vm.reply(Service::Fubyte, &[USER]).0, Status::EFAULT);
        assert_eq!(vm.violations(), 3, "user memory at interrupt level");
        vm.ok(Service::InterruptLeave, &[]);
        vm.ok(Service::ProcessSwitch, &[0]);
        assert_eq!(vm.reply(Service::Copyin, &[USER, k, 8]), (Status::EFAULT, 0), "no process: no user memory");
        assert_eq!(vm.violations(), 3);
        assert_eq!(
            testing::kinds(&vm.state),
            ["aix.kernel-buffer-unmapped", "aix.user-access-at-interrupt-level", "aix.user-access-at-interrupt-level"]
        );
    }

    fn uio(vm: &Vm, iovs: &[(u64, u64)], segflg: u64) -> u64 {
        let table = vm.kernel_buffer(16 * iovs.len().max(1) as u64);
        let bytes: Vec<u8> = iovs.iter().flat_map(|&(b, l)| [b.to_le_bytes(), l.to_le_bytes()].concat()).collect();
        vm.poke(table, &bytes);
        let total = iovs.iter().map(|i| i.1).sum();
        let u = Uio {
            iov: table,
            iovcnt: iovs.len() as u32,
            iovdcnt: 0,
            offset: 1000,
            resid: total,
            segflg: segflg as u32,
            fmode: 0,
        };
        let at = vm.kernel_buffer(40);
        vm.poke(at, &encode_uio(&u));
        at
    }

    fn read_uio(vm: &Vm, at: u64) -> Uio {
        super::decode_uio(&vm.peek(at, 40))
    }

    #[test]
    fn uiomove_scatters_and_gathers_and_updates_the_uio() {
        let vm = Vm::new();
        let k = vm.kernel_buffer(64);
        vm.poke(k, b"0123456789abcdef");
        let u = uio(&vm, &[(USER + 4090, 10), (USER, 0), (USER + 8000, 6)], UIO_USERSPACE);
        assert_eq!(vm.reply(Service::Uiomove, &[k, 12, UIO_READ, u]), (Status::OK, 12));
        assert_eq!(vm.peek(USER + 4090, 10), b"0123456789");
        assert_eq!(vm.peek(USER + 8000, 2), b"ab");
        let after = read_uio(&vm, u);
        assert_eq!((after.resid, after.offset, after.iovdcnt), (4, 1012, 2));
        let iov2 = vm.peek(after.iov + 32, 16);
        assert_eq!(
            IoVec {
                base: u64::from_le_bytes(iov2[..8].try_into().expect("8")),
                len: u64::from_le_bytes(iov2[8..].try_into().expect("8"))
            },
            IoVec { base: USER + 8002, len: 4 }
        );
        // The rest back into the kernel buffer, one character at a time.
        vm.poke(USER + 8002, b"WXYZ");
        assert_eq!(vm.reply(Service::Uwritec, &[u]), (Status::OK, u64::from(b'W')));
        assert_eq!(vm.reply(Service::Uiomove, &[k + 32, 100, UIO_WRITE, u]), (Status::OK, 3));
        assert_eq!(vm.peek(k + 32, 3), b"XYZ");
        assert_eq!(vm.reply(Service::Uwritec, &[u]).0, Status::ENOENT, "resid is 0");
        assert_eq!(read_uio(&vm, u).resid, 0);
    }

    #[test]
    fn uiomove_of_system_memory_needs_no_process_and_bad_uios_are_refused() {
        let vm = Vm::new();
        vm.ok(Service::ProcessSwitch, &[0]);
        let (k, target) = (vm.kernel_buffer(64), vm.kernel_buffer(64));
        let u = uio(&vm, &[(target, 8)], UIO_SYSSPACE);
        assert_eq!(vm.reply(Service::Ureadc, &[u64::from(b'q'), u]), (Status::OK, 1));
        assert_eq!(vm.peek(target, 1), b"q");
        let full = uio(&vm, &[(target, 0)], UIO_SYSSPACE);
        assert_eq!(vm.reply(Service::Ureadc, &[u64::from(b'q'), full]).0, Status::ENOSPC, "no room");
        assert_eq!(vm.reply(Service::Uiomove, &[k, 8, 7, u]).0, Status::EINVAL, "bad rw");
        let user = uio(&vm, &[(USER, 8)], UIO_USERSPACE);
        assert_eq!(vm.reply(Service::Uiomove, &[k, 8, UIO_READ, user]), (Status::EFAULT, 0), "no process");
        let bad_seg = uio(&vm, &[(target, 8)], 9);
        assert_eq!(vm.reply(Service::Uiomove, &[k, 8, UIO_READ, bad_seg]).0, Status::EINVAL);
        let huge = uio(&vm, &[(target, 8)], UIO_SYSSPACE);
        let mut forged = read_uio(&vm, huge);
        forged.iovcnt = UIO_MAXIOV + 1;
        vm.poke(huge, &encode_uio(&forged));
        assert_eq!(vm.reply(Service::Uiomove, &[k, 8, UIO_READ, huge]).0, Status::EINVAL);
        assert_eq!(vm.violations(), 0);
        assert_eq!(vm.reply(Service::Uiomove, &[k, 8, UIO_READ, 0xdead_0000]).0, Status::EFAULT);
        assert_eq!(vm.violations(), 1, "a uio outside kernel memory is a driver bug");
        let wild = uio(&vm, &[(target, 8)], UIO_SYSSPACE);
        let mut forged = read_uio(&vm, wild);
        forged.iov = u64::MAX - 8;
        vm.poke(wild, &encode_uio(&forged));
        assert_eq!(vm.reply(Service::Uiomove, &[k, 8, UIO_READ, wild]).0, Status::EFAULT);
    }
}
