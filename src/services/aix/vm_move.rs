//! AIX `vm_move`: a `uiomove` whose kernel end is a virtual memory object
//! named by vmid and offset instead of an address, so the object need not
//! be mapped anywhere.
//!
//! The bytes go straight between the object's frames and the uio's
//! buffers, with the uio walk and updates of `uiomove`
//! ([`uaccess`]). A page the object does not have reads as
//! zeros, as a hole of a file does; a write into one makes it (zero-filled,
//! mapped in every region of the object, as `vm_makep` makes a page) and
//! goes on. Bytes written mark their frames modified, as a store does, so
//! `vm_qmodify` sees them. The environment (process only) was checked by
//! [`vmm`](super::vmm).

use kmemvisor_abi::aix::UIO_WRITE;
use kmemvisor_abi::aix_vmm::VM_OBJECT_MAX_SIZE;
use kmemvisor_abi::layout::PAGE_SIZE;
use kmemvisor_abi::{Service, Status};

use crate::memory_model::aix_vmm::VmError;
use crate::services::aix::uaccess::{self, Fault, Kernel, ObjectPage};
use crate::services::aix::vmm::{Call, split};
use crate::services::{Outcome, Reply};
use crate::sync::lock;

/// `limit` as the AIX `int` it is, sign- or zero-extended to 64 bits (the
/// guest library sign-extends, the C SDK zero-extends); `None` for a value
/// that is neither.
fn aix_int(value: u64) -> Option<i32> {
    i32::try_from(value as i64).ok().or_else(|| u32::try_from(value).ok().map(|v| v as i32))
}

/// `vm_move(vmid, offset, limit, rw, uio)`.
pub(super) fn serve(call: &Call, vmid: u64, offset: u64, limit: u64, rw: u64, uio: u64) -> Outcome {
    let Some(limit) = aix_int(limit) else { return Reply::status(Status::EINVAL) };
    let k = &mut *lock(&call.state.kernel);
    if let Err(error) = k.vmm.object(vmid) {
        return call.refused(error);
    }
    // A limit ≤ 0 moves nothing, as AIX documents.
    let Ok(limit) = u64::try_from(limit) else { return Reply::ok(0) };
    if limit == 0 {
        return Reply::ok(0);
    }
    if offset >= VM_OBJECT_MAX_SIZE {
        return Reply::status(Status::EFAULT);
    }
    let mut moved = 0;
    loop {
        let at = offset + moved;
        let step = {
            let Ok(object) = k.vmm.object(vmid) else { return call.refused(VmError::Forged(vmid)) };
            let pages = |off: u64| match object.page(off / PAGE_SIZE) {
                Some((gpa, writable)) => ObjectPage::Frame { gpa, writable },
                None if off < VM_OBJECT_MAX_SIZE => ObjectPage::Hole,
                None => ObjectPage::Outside,
            };
            let kernel = Kernel::Object(&pages, at);
            uaccess::move_uio(call.state, call.caller, Service::VmMove, call.args, &k.processes, kernel, limit - moved, rw, uio)
        };
        let (done, fault) = match step {
            Ok(step) => step,
            // A refused uio (moved is 0 unless the guest changed it meanwhile).
            Err(refused) => return refused,
        };
        if rw == UIO_WRITE && done > 0 {
            let first = at / PAGE_SIZE;
            let written: Vec<u64> = match k.vmm.object(vmid) {
                Ok(object) => object.frames_in(first, (at + done).div_ceil(PAGE_SIZE) - first).collect(),
                Err(_) => Vec::new(),
            };
            for frame in written {
                k.frames.set_modified(frame, true);
            }
        }
        moved += done;
        let Some(Fault::Hole(hole)) = fault else {
            return uaccess::answer(call.state, call.caller, Service::VmMove, call.args, moved, fault);
        };
        let (vmm, mut books) = split(call.state, k);
        match vmm.make_page(&mut books, vmid, hole / PAGE_SIZE, 0) {
            Ok(_) => {}
            Err(VmError::NoFrames) => return Outcome::Reply(Reply { status: Status::ENOMEM, value: moved }),
            Err(error) => return call.refused(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::aix::{PROT_READ, PROT_WRITE, UIO_READ, UIO_SYSSPACE, UIO_USERSPACE, UIO_WRITE, Uio};
    use kmemvisor_abi::aix_vmm::{RDONLY, V_CLIENT, VM_OBJECT_MAX_SIZE};
    use kmemvisor_abi::dgux::{VM_DEFAULT_ALIGNMENT, VM_PAGE_ALIGNED};
    use kmemvisor_abi::layout::PAGE_SIZE;
    use kmemvisor_abi::{Service, Status};

    use crate::memory_model::guest_access;
    use crate::services::aix::uaccess::{decode_uio, encode_uio};
    use crate::state::VmState;
    use crate::testing::{kinds, ok, reply, state, status};

    /// The test process's user buffer: three pages.
    const USER: u64 = 0x1000_0000;

    /// A state with a current process that has [`USER`] mapped, and an
    /// object of `pages` pages; the vmid.
    fn setup(pages: u64) -> (VmState, u64) {
        let s = state();
        let pid = ok(&s, Service::ProcessCreate, &[]);
        ok(&s, Service::ProcessSwitch, &[pid]);
        ok(&s, Service::ProcessMap, &[USER, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE]);
        let vmid = ok(&s, Service::VmsCreate, &[V_CLIENT, 0, pages * PAGE_SIZE, 0, 0]);
        (s, vmid)
    }

    fn user_poke(s: &VmState, va: u64, bytes: &[u8]) {
        let k = s.kernel.lock().expect("lock");
        let space = k.processes.get(1).expect("process").space();
        guest_access::write(s.ram.memory(), space, va, bytes).expect("user write");
    }

    fn user_peek(s: &VmState, va: u64, len: usize) -> Vec<u8> {
        let k = s.kernel.lock().expect("lock");
        guest_access::read(s.ram.memory(), k.processes.get(1).expect("process").space(), va, len).expect("user read")
    }

    fn kernel_poke(s: &VmState, va: u64, bytes: &[u8]) {
        guest_access::write(s.ram.memory(), &s.space, va, bytes).expect("kernel write");
    }

    fn kernel_peek(s: &VmState, va: u64, len: usize) -> Vec<u8> {
        guest_access::read(s.ram.memory(), &s.space, va, len).expect("kernel read")
    }

    /// A uio in kernel memory over `iovs` (base, len) of `segflg`; its address.
    fn uio(s: &VmState, iovs: &[(u64, u64)], segflg: u64) -> u64 {
        let table = ok(s, Service::VmGetWiredMemory, &[PAGE_SIZE, u64::from(VM_PAGE_ALIGNED)]);
        let bytes: Vec<u8> = iovs.iter().flat_map(|&(b, l)| [b.to_le_bytes(), l.to_le_bytes()].concat()).collect();
        kernel_poke(s, table, &bytes);
        let resid = iovs.iter().map(|i| i.1).sum();
        let u = Uio { iov: table, iovcnt: iovs.len() as u32, iovdcnt: 0, offset: 0, resid, segflg: segflg as u32, fmode: 0 };
        kernel_poke(s, table + 2048, &encode_uio(&u));
        table + 2048
    }

    /// The object's bytes at `offset`, through a fresh `vm_att`.
    fn object_bytes(s: &VmState, vmid: u64, offset: u64, len: usize) -> Vec<u8> {
        let handle = ok(s, Service::VmHandle, &[vmid, 0]);
        let base = ok(s, Service::VmAtt, &[handle, 0]);
        let bytes = kernel_peek(s, base + offset, len);
        assert_eq!(status(s, Service::VmDet, &[base]), Status::OK);
        bytes
    }

    fn free_frames(s: &VmState) -> u64 {
        s.kernel.lock().expect("lock").frames.free_frames()
    }

    #[test]
    fn moves_both_ways_across_pages_and_iovecs_and_updates_the_uio() {
        let (s, vmid) = setup(2);
        user_poke(&s, USER + 100, b"hello, object");
        let u = uio(&s, &[(USER + 100, 5), (USER + 105, 8)], UIO_USERSPACE);
        assert_eq!(reply(&s, Service::VmMove, &[vmid, PAGE_SIZE - 6, 100, UIO_WRITE, u]), (Status::OK, 13));
        assert_eq!(object_bytes(&s, vmid, PAGE_SIZE - 6, 13), b"hello, object");
        let after = decode_uio(&kernel_peek(&s, u, 40));
        assert_eq!((after.resid, after.offset, after.iovdcnt), (0, 13, 2));
        assert_eq!(ok(&s, Service::VmQmodify, &[vmid]), 1, "vm_move's stores mark the pages");
        let back = uio(&s, &[(USER + 2 * PAGE_SIZE, 64)], UIO_USERSPACE);
        assert_eq!(reply(&s, Service::VmMove, &[vmid, PAGE_SIZE - 6, 7, UIO_READ, back]), (Status::OK, 7), "the limit");
        assert_eq!(user_peek(&s, USER + 2 * PAGE_SIZE, 7), b"hello, ");
        assert_eq!(decode_uio(&kernel_peek(&s, back, 40)).resid, 57);
        let k = ok(&s, Service::VmGetWiredMemory, &[64, u64::from(VM_DEFAULT_ALIGNMENT)]);
        let sys = uio(&s, &[(k, 64)], UIO_SYSSPACE);
        assert_eq!(reply(&s, Service::VmMove, &[vmid, PAGE_SIZE + 1, 6, UIO_READ, sys]), (Status::OK, 6));
        assert_eq!(kernel_peek(&s, k, 6), b"object");
        assert!(s.checker.violations().is_empty());
        assert_eq!(s.kernel.lock().expect("lock").frames.check(), Ok(()));
    }

    #[test]
    fn a_page_the_object_lacks_reads_as_zeros_and_a_write_makes_it() {
        let (s, vmid) = setup(1);
        let handle = ok(&s, Service::VmHandle, &[vmid, 0]);
        let base = ok(&s, Service::VmAtt, &[handle, 0]);
        user_poke(&s, USER, &[0xee; 16]);
        let (u, written) = (uio(&s, &[(USER, 16)], UIO_USERSPACE), uio(&s, &[(USER, 8)], UIO_USERSPACE));
        let free = free_frames(&s);
        assert_eq!(reply(&s, Service::VmMove, &[vmid, 7 * PAGE_SIZE, 16, UIO_READ, u]), (Status::OK, 16));
        assert_eq!(user_peek(&s, USER, 16), [0; 16], "a hole reads as zeros");
        assert_eq!(free_frames(&s), free, "a read makes no page");
        user_poke(&s, USER, b"new page");
        assert_eq!(reply(&s, Service::VmMove, &[vmid, 5 * PAGE_SIZE - 4, 8, UIO_WRITE, written]), (Status::OK, 8));
        assert_eq!(free_frames(&s), free - 2, "pages 4 and 5 made");
        assert_eq!(kernel_peek(&s, base + 5 * PAGE_SIZE - 6, 12), b"\0\0new page\0\0", "zeros around, in the attached region");
        assert_eq!(status(&s, Service::VmDet, &[base]), Status::OK);
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::OK);
        assert_eq!(free_frames(&s), free + 1, "every page of the object back");
        assert!(s.checker.violations().is_empty());
    }

    #[test]
    fn limits_offsets_keys_and_the_uio_are_checked() {
        let (s, vmid) = setup(2);
        let u = uio(&s, &[(USER, 64)], UIO_USERSPACE);
        for nothing in [0, u64::MAX, 0xffff_ffff, 1 << 31] {
            assert_eq!(reply(&s, Service::VmMove, &[vmid, 0, nothing, UIO_WRITE, u]), (Status::OK, 0), "{nothing:#x}");
        }
        assert_eq!(status(&s, Service::VmMove, &[vmid, 0, 1 << 32, UIO_WRITE, u]), Status::EINVAL, "not an int");
        assert_eq!(reply(&s, Service::VmMove, &[vmid, VM_OBJECT_MAX_SIZE, 8, UIO_READ, u]), (Status::EFAULT, 0));
        assert_eq!(reply(&s, Service::VmMove, &[vmid, u64::MAX, 8, UIO_READ, u]), (Status::EFAULT, 0));
        assert_eq!(reply(&s, Service::VmMove, &[vmid, VM_OBJECT_MAX_SIZE - 10, 64, UIO_WRITE, u]), (Status::EFAULT, 10));
        assert_eq!(status(&s, Service::VmProtectp, &[vmid, 1, 1, RDONLY]), Status::OK);
        let u = uio(&s, &[(USER, 64)], UIO_USERSPACE);
        assert_eq!(reply(&s, Service::VmMove, &[vmid, PAGE_SIZE - 3, 64, UIO_WRITE, u]), (Status::EFAULT, 3), "a read-only page");
        assert_eq!(reply(&s, Service::VmMove, &[vmid, PAGE_SIZE, 64, UIO_READ, u]), (Status::OK, 61), "it reads");
        assert_eq!(status(&s, Service::VmMove, &[vmid, 0, 8, 2, u]), Status::EINVAL, "rw");
        assert_eq!(
            reply(&s, Service::VmMove, &[vmid, 0, 8, UIO_READ, 0x9999_0000]),
            (Status::EFAULT, 0),
            "a user address as the uio"
        );
        assert_eq!(kinds(&s), ["aix.uio-not-in-kernel-memory"]);
        assert_eq!(status(&s, Service::VmMove, &[77, 0, 8, UIO_READ, u]), Status::EINVAL, "a vmid never made");
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::OK);
        assert_eq!(status(&s, Service::VmMove, &[vmid, 0, 8, UIO_READ, u]), Status::EINVAL);
        assert_eq!(status(&s, Service::InterruptEnter, &[]), Status::OK);
        assert_eq!(status(&s, Service::VmMove, &[vmid, 0, 8, UIO_READ, u]), Status::EPERM);
        assert_eq!(kinds(&s)[1..], ["vmm.deleted-object", "vmm.at-interrupt-level"]);
    }

    #[test]
    fn a_user_buffer_mapped_through_a_limited_handle_is_not_written() {
        let (s, vmid) = setup(1);
        let limited = ok(&s, Service::VmHandle, &[vmid, 1]);
        let at = ok(&s, Service::AsAtt64, &[limited, 0]);
        let other = ok(&s, Service::VmsCreate, &[V_CLIENT, 0, PAGE_SIZE, 0, 0]);
        let u = uio(&s, &[(at, 8)], UIO_USERSPACE);
        assert_eq!(reply(&s, Service::VmMove, &[other, 0, 8, UIO_READ, u]), (Status::EFAULT, 0), "read-only for the user");
        assert_eq!(reply(&s, Service::VmMove, &[other, 0, 8, UIO_WRITE, u]), (Status::OK, 8), "but readable");
        assert!(s.checker.violations().is_empty());
    }
}
