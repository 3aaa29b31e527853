//! AIX `as_att64`, `as_det64`, `as_seth64`, `as_geth64`, `as_getsrval64`
//! and `as_puth64`: objects in the current process's address space.
//!
//! A process's regions are the top 4 GiB of its user half
//! ([`USER_REGIONS_VA`](kmemvisor_abi::layout::USER_REGIONS_VA)), sixteen
//! 256 MiB slots that `process_map` leaves alone. Every service acts on the
//! calling vCPU's current process, as AIX's act on the current address
//! space; with none (kernel context) there is no user address space and the
//! address is out of range (`EINVAL`). The environment (process only) was
//! checked by [`vmm`](super::vmm).

use kmemvisor_abi::layout::VM_REGION_SIZE;
use kmemvisor_abi::{Service, Status};

use crate::checker::ViolationKind;
use crate::memory_model::aix_vmm::{self, Mapping, Place, VmError, place_of};
use crate::services::aix::vmm::{Call, split};
use crate::services::{Outcome, Reply};
use crate::sync::lock;

/// Serves the `as_*64` services.
pub(super) fn serve(call: &Call, a0: u64, a1: u64) -> Outcome {
    if call.pid == 0 {
        return Reply::status(Status::EINVAL);
    }
    match call.service {
        Service::AsAtt64 => attach(call, a0, a1),
        Service::AsDet64 => detach(call, a0),
        Service::AsSeth64 => set(call, a0, a1),
        Service::AsGeth64 | Service::AsGetsrval64 => get(call, a0),
        Service::AsPuth64 => put(call, a0, a1),
        _ => Reply::status(Status::ENOSYS),
    }
}

/// The current process's region that holds `addr`.
fn user_place(call: &Call, addr: u64) -> Option<Place> {
    place_of(call.pid, addr).filter(|place| place.pid != 0)
}

/// `as_att64(vmhandle, offset)`: a free region of the current process;
/// none left is `ENOMEM`, as AIX documents (no halt, unlike `vm_att`).
fn attach(call: &Call, handle: u64, offset: u64) -> Outcome {
    let k = &mut *lock(&call.state.kernel);
    let (vmid, key) = match call.live_handle(&k.vmm, handle) {
        Ok(named) => named,
        Err(answer) => return answer,
    };
    let Some(place) = k.vmm.free_place(call.pid) else { return Reply::status(Status::ENOMEM) };
    let (vmm, mut books) = split(call.state, k);
    match vmm.attach(&mut books, place, Mapping::Object { vmid, key }) {
        Ok(base) => Reply::ok(base + offset % VM_REGION_SIZE),
        Err(error) => call.refused(error),
    }
}

/// `as_det64(addr64)`: `EINVAL` for an address in no mapped region.
fn detach(call: &Call, addr: u64) -> Outcome {
    let k = &mut *lock(&call.state.kernel);
    let Some(place) = user_place(call, addr).filter(|&p| k.vmm.region(p).is_some()) else {
        return Reply::status(Status::EINVAL);
    };
    let (vmm, mut books) = split(call.state, k);
    match vmm.detach(&mut books, place) {
        Ok(_) => Reply::ok(0),
        Err(error) => call.refused(error),
    }
}

/// `as_seth64(addr64, vmhandle)`: the region holding `addr64`, whatever it
/// mapped before.
fn set(call: &Call, addr: u64, handle: u64) -> Outcome {
    let k = &mut *lock(&call.state.kernel);
    let Some(place) = user_place(call, addr) else { return Reply::status(Status::EINVAL) };
    let (vmid, key) = match call.live_handle(&k.vmm, handle) {
        Ok(named) => named,
        Err(answer) => return answer,
    };
    let (vmm, mut books) = split(call.state, k);
    let replaced = match vmm.region(place) {
        Some(_) => vmm.detach(&mut books, place).map(drop),
        None => Ok(()),
    };
    match replaced.and_then(|()| vmm.attach(&mut books, place, Mapping::Object { vmid, key })) {
        Ok(_) => Reply::ok(0),
        Err(error) => call.refused(error),
    }
}

/// `as_geth64(addr64)` and `as_getsrval64(addr64)`: the handle of the object
/// the region holding `addr64` maps; `as_geth64` also holds the object
/// until `as_puth64`. `EINVAL` (AIX's `INVLSID`) for no mapped region.
fn get(call: &Call, addr: u64) -> Outcome {
    let k = &mut *lock(&call.state.kernel);
    let Some((place, Mapping::Object { vmid, key })) = user_place(call, addr).and_then(|p| k.vmm.region(p).map(|m| (p, m)))
    else {
        return Reply::status(Status::EINVAL);
    };
    if call.service == Service::AsGeth64 {
        k.vmm.hold(place, vmid);
    }
    Reply::ok(aix_vmm::handle(vmid, key))
}

/// `as_puth64(addr64, vmhandle)`: ends a hold `as_geth64` took at the same
/// address for the same object, once the region no longer maps it.
fn put(call: &Call, addr: u64, handle: u64) -> Outcome {
    let k = &mut *lock(&call.state.kernel);
    let Some(place) = user_place(call, addr) else { return Reply::status(Status::EINVAL) };
    let (vmid, _) = aix_vmm::decode(handle);
    if !k.vmm.is_held(place, vmid) {
        let why = format!(
            "as_puth64 at {addr:#x} of handle {handle:#x}: no as_geth64 there holds object {vmid} (as_getsrval64 takes no hold)"
        );
        return call.refuse(ViolationKind::VmmPuthWithoutGeth, why, Status::EINVAL);
    }
    if matches!(k.vmm.region(place), Some(Mapping::Object { vmid: v, .. }) if v == vmid) {
        let why = format!("as_puth64 at {addr:#x} while the region still maps object {vmid}: as_det64 first");
        return call.refuse(ViolationKind::VmmPuthWhileAttached, why, Status::EBUSY);
    }
    if !k.vmm.put(place, vmid) {
        return call.refused(VmError::Forged(vmid));
    }
    Reply::ok(0)
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::aix_vmm::V_CLIENT;
    use kmemvisor_abi::layout::{PAGE_SIZE, USER_REGIONS_VA, VM_REGIONS, user_region_va};
    use kmemvisor_abi::{Service, Status};

    use crate::state::VmState;
    use crate::testing::{kinds, ok, reply, state, status};

    /// An object of one page and its unlimited handle.
    fn object(s: &VmState) -> (u64, u64) {
        let vmid = ok(s, Service::VmsCreate, &[V_CLIENT, 0, PAGE_SIZE, 0, 0]);
        (vmid, ok(s, Service::VmHandle, &[vmid, 0]))
    }

    /// A process, current on vCPU 0.
    fn process(s: &VmState) -> u64 {
        let pid = ok(s, Service::ProcessCreate, &[]);
        assert_eq!(status(s, Service::ProcessSwitch, &[pid]), Status::OK);
        pid
    }

    fn user_flags(s: &VmState, pid: u64, va: u64) -> Option<u64> {
        let k = s.kernel.lock().expect("lock");
        k.processes.get(pid).and_then(|p| p.space().translate(s.ram.memory(), va)).map(|t| t.flags.bits())
    }

    #[test]
    fn an_object_in_a_process_is_held_until_its_put_and_put_only_once_detached() {
        let s = state();
        let (vmid, handle) = object(&s);
        let pid = process(&s);
        let at = ok(&s, Service::AsAtt64, &[handle, 0x77]);
        assert_eq!(at, USER_REGIONS_VA + 0x77);
        assert!(user_flags(&s, pid, USER_REGIONS_VA).is_some(), "mapped in the process");
        assert_eq!(reply(&s, Service::AsGetsrval64, &[at]), (Status::OK, handle));
        assert_eq!(status(&s, Service::AsPuth64, &[at, handle]), Status::EINVAL, "as_getsrval64 holds nothing");
        assert_eq!(reply(&s, Service::AsGeth64, &[at + PAGE_SIZE]), (Status::OK, handle));
        assert_eq!(status(&s, Service::AsPuth64, &[at, handle]), Status::EBUSY, "still attached");
        assert_eq!(status(&s, Service::AsDet64, &[at]), Status::OK);
        assert!(user_flags(&s, pid, USER_REGIONS_VA).is_none());
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::EBUSY, "held");
        assert_eq!(status(&s, Service::AsPuth64, &[at, handle]), Status::OK);
        assert_eq!(status(&s, Service::AsPuth64, &[at, handle]), Status::EINVAL, "put once");
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::OK);
        assert_eq!(kinds(&s), ["vmm.puth-without-geth", "vmm.puth-while-attached", "vmm.delete-held", "vmm.puth-without-geth"]);
        assert_eq!(s.kernel.lock().expect("lock").frames.check(), Ok(()));
    }

    #[test]
    fn the_as_services_need_a_process_and_addresses_in_its_regions() {
        let s = state();
        let (_, handle) = object(&s);
        for (service, args) in [(Service::AsAtt64, [handle, 0]), (Service::AsDet64, [USER_REGIONS_VA, 0])] {
            assert_eq!(status(&s, service, &args), Status::EINVAL, "{} with no process", service.name());
        }
        process(&s);
        assert_eq!(status(&s, Service::AsDet64, &[USER_REGIONS_VA]), Status::EINVAL, "nothing mapped");
        assert_eq!(status(&s, Service::AsGeth64, &[USER_REGIONS_VA - 1]), Status::EINVAL, "below the regions");
        assert_eq!(status(&s, Service::AsSeth64, &[u64::MAX, handle]), Status::EINVAL);
        assert_eq!(status(&s, Service::AsAtt64, &[handle + 8, 0]), Status::EINVAL, "a handle of no object");
        assert_eq!(kinds(&s), ["vmm.bad-handle"]);
        for n in 0..VM_REGIONS {
            assert_eq!(reply(&s, Service::AsAtt64, &[handle, 0]), (Status::OK, user_region_va(n)));
        }
        assert_eq!(status(&s, Service::AsAtt64, &[handle, 0]), Status::ENOMEM, "no halt in a process");
        assert_eq!(status(&s, Service::InterruptEnter, &[]), Status::OK);
        assert_eq!(status(&s, Service::AsDet64, &[USER_REGIONS_VA]), Status::EPERM);
        assert_eq!(kinds(&s)[1..], ["vmm.at-interrupt-level"]);
    }

    #[test]
    fn as_seth64_replaces_the_region_and_a_destroyed_process_gives_its_regions_and_holds_back() {
        let s = state();
        let (first, h1) = object(&s);
        let (second, h2) = object(&s);
        let pid = process(&s);
        let at = user_region_va(3) + 5;
        assert_eq!(status(&s, Service::AsSeth64, &[at, h1]), Status::OK);
        assert_eq!(status(&s, Service::AsSeth64, &[at, h2]), Status::OK);
        assert_eq!(status(&s, Service::VmsDelete, &[first]), Status::OK, "the first was replaced");
        assert_eq!(reply(&s, Service::AsGeth64, &[at]), (Status::OK, h2));
        assert_eq!(status(&s, Service::ProcessSwitch, &[0]), Status::OK);
        let free = s.kernel.lock().expect("lock").frames.free_frames();
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::OK);
        assert!(s.kernel.lock().expect("lock").frames.free_frames() > free, "the process's tables went back");
        assert_eq!(status(&s, Service::VmsDelete, &[second]), Status::OK, "detached and no longer held");
        assert!(s.checker.violations().is_empty());
        assert_eq!(s.kernel.lock().expect("lock").frames.check(), Ok(()));
    }
}
