//! AIX `as_att64`, `as_det64`, `as_seth64`, `as_geth64`, `as_getsrval64`
//! and `as_puth64`, and their 32-bit forms `as_att`, `as_det`, `as_seth`,
//! `as_geth`, `as_getsrval` and `as_puth` with `getadsp`: objects in a
//! process's address space.
//!
//! A process's regions are the top 4 GiB of its user half
//! ([`USER_REGIONS_VA`](kmemvisor_abi::layout::USER_REGIONS_VA)), sixteen
//! 256 MiB slots that `process_map` leaves alone. The `*64` services act on
//! the calling vCPU's current process, as AIX's act on the current address
//! space; with none (kernel context) there is no user address space and the
//! address is out of range (`EINVAL`). The 32-bit forms act on the process
//! that their address-space pointer (`getadsp`'s) names, current or not,
//! on the same regions and holds: the two forms are two doors to one set of
//! books. AIX gives `as_seth`, `as_geth`, `as_getsrval` and `as_puth` no
//! error return, so their misuse is a violation. The environment (process
//! only, but `as_getsrval` also at interrupt level) was checked by
//! [`vmm`](super::vmm).

use kmemvisor_abi::aix_vmm::{ADSPACE_PID_MASK, ADSPACE_TAG, adspace};
use kmemvisor_abi::layout::VM_REGION_SIZE;
use kmemvisor_abi::{Service, Status};

use crate::checker::ViolationKind;
use crate::memory_model::aix_vmm::{self, Mapping, Place, VmError, place_of};
use crate::services::aix::vmm::{Call, split};
use crate::services::{Outcome, Reply};
use crate::state::Kernel;
use crate::sync::lock;

/// Serves the `as_*64` services, the 32-bit `as_*` services and `getadsp`.
pub(super) fn serve(call: &Call, args: [u64; 3]) -> Outcome {
    let [a0, a1, a2] = args;
    match call.service {
        Service::Getadsp if call.pid == 0 => Reply::status(Status::EINVAL),
        Service::Getadsp => Reply::ok(adspace(call.pid)),
        Service::AsAtt | Service::AsDet | Service::AsSeth | Service::AsGeth | Service::AsGetsrval | Service::AsPuth => {
            let k = &mut *lock(&call.state.kernel);
            let pid = match named_space(call, k, a0) {
                Ok(pid) => pid,
                Err(answer) => return answer,
            };
            let space = Space { pid, wide: false };
            match call.service {
                Service::AsAtt => attach(call, k, space, a1, a2),
                Service::AsDet => detach(call, k, space, a1),
                Service::AsSeth => set(call, k, space, a2, a1),
                Service::AsGeth | Service::AsGetsrval => get(call, k, space, a1),
                _ => put_named(call, k, pid, a1),
            }
        }
        _ if call.pid == 0 => Reply::status(Status::EINVAL),
        service => {
            let k = &mut *lock(&call.state.kernel);
            let space = Space { pid: call.pid, wide: true };
            match service {
                Service::AsAtt64 => attach(call, k, space, a0, a1),
                Service::AsDet64 => detach(call, k, space, a0),
                Service::AsSeth64 => set(call, k, space, a0, a1),
                Service::AsGeth64 | Service::AsGetsrval64 => get(call, k, space, a0),
                Service::AsPuth64 => put_at(call, k, call.pid, a0, a1),
                _ => Reply::status(Status::ENOSYS),
            }
        }
    }
}

/// The address space a service acts on.
#[derive(Clone, Copy)]
struct Space {
    /// Its process.
    pid: u64,
    /// A `*64` service, whose refusals AIX documents; the 32-bit forms
    /// `as_seth`, `as_geth` and `as_getsrval` have no error return.
    wide: bool,
}

/// The live process an address-space pointer names, or the violation a
/// pointer `getadsp` never returned (or one of a destroyed process) is:
/// AIX would follow it.
fn named_space(call: &Call, k: &Kernel, adspacep: u64) -> Result<u64, Outcome> {
    let pid = adspacep & ADSPACE_PID_MASK;
    if adspacep & !ADSPACE_PID_MASK == ADSPACE_TAG && k.processes.get(pid).is_some() {
        return Ok(pid);
    }
    let why = format!(
        "{}: {adspacep:#x} is not the address-space pointer of a live process (getadsp returns it while the process is current)",
        call.service.name()
    );
    Err(call.refuse(ViolationKind::VmmBadAdspace, why, Status::EINVAL))
}

/// The region of `pid` that holds `addr`.
fn user_place(pid: u64, addr: u64) -> Option<Place> {
    place_of(pid, addr).filter(|place| place.pid != 0)
}

/// The answer to an address in no region (or no mapped region) of the
/// space: `EINVAL`, a violation for the 32-bit forms that have no error return.
fn no_region(call: &Call, space: Space, addr: u64, mapped: bool) -> Outcome {
    if space.wide || call.service == Service::AsDet {
        return Reply::status(Status::EINVAL);
    }
    let what = if mapped { "no region that maps an object" } else { "none of the 16 regions" };
    let why = format!("{}: {addr:#x} lies in {what} of process {}; AIX gives it no error return", call.service.name(), space.pid);
    call.refuse(ViolationKind::VmmUnmappedAddress, why, Status::EINVAL)
}

/// `as_att64(vmhandle, offset)` and `as_att(adspacep, vmhandle, offset)`: a
/// free region of the space; none left is `ENOMEM`, as AIX documents (AIX's
/// `as_att` returns null: no halt, unlike `vm_att`).
fn attach(call: &Call, k: &mut Kernel, space: Space, handle: u64, offset: u64) -> Outcome {
    let (vmid, key) = match call.live_handle(&k.vmm, handle) {
        Ok(named) => named,
        Err(answer) => return answer,
    };
    let Some(place) = k.vmm.free_place(space.pid) else { return Reply::status(Status::ENOMEM) };
    let (vmm, mut books) = split(call.state, k);
    match vmm.attach(&mut books, place, Mapping::Object { vmid, key }) {
        Ok(base) => Reply::ok(base + offset % VM_REGION_SIZE),
        Err(error) => call.refused(error),
    }
}

/// `as_det64(addr64)` and `as_det(adspacep, eaddr)`: `EINVAL` for an
/// address in no mapped region.
fn detach(call: &Call, k: &mut Kernel, space: Space, addr: u64) -> Outcome {
    let Some(place) = user_place(space.pid, addr).filter(|&p| k.vmm.region(p).is_some()) else {
        return no_region(call, space, addr, true);
    };
    let (vmm, mut books) = split(call.state, k);
    match vmm.detach(&mut books, place) {
        Ok(_) => Reply::ok(0),
        Err(error) => call.refused(error),
    }
}

/// `as_seth64(addr64, vmhandle)` and `as_seth(adspacep, vmhandle, addr)`:
/// the region holding `addr`, whatever it mapped before.
fn set(call: &Call, k: &mut Kernel, space: Space, addr: u64, handle: u64) -> Outcome {
    let Some(place) = user_place(space.pid, addr) else { return no_region(call, space, addr, false) };
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

/// `as_geth64`, `as_getsrval64`, `as_geth` and `as_getsrval`: the handle of
/// the object the region holding `addr` maps; the `geth` forms also hold
/// the object until its put. For no mapped region: `EINVAL` (AIX's
/// `INVLSID`) from the `*64` forms, a violation from the 32-bit ones.
fn get(call: &Call, k: &mut Kernel, space: Space, addr: u64) -> Outcome {
    let Some((place, Mapping::Object { vmid, key })) = user_place(space.pid, addr).and_then(|p| k.vmm.region(p).map(|m| (p, m)))
    else {
        return no_region(call, space, addr, true);
    };
    if matches!(call.service, Service::AsGeth64 | Service::AsGeth) {
        k.vmm.hold(place, vmid);
    }
    Reply::ok(aix_vmm::handle(vmid, key))
}

/// `as_puth64(addr64, vmhandle)`: ends a hold `as_geth64` (or `as_geth`)
/// took at the same address for the same object, once the region no longer
/// maps it.
fn put_at(call: &Call, k: &mut Kernel, pid: u64, addr: u64, handle: u64) -> Outcome {
    let Some(place) = user_place(pid, addr) else { return Reply::status(Status::EINVAL) };
    let (vmid, _) = aix_vmm::decode(handle);
    if !k.vmm.is_held(place, vmid) {
        let why = format!(
            "as_puth64 at {addr:#x} of handle {handle:#x}: no as_geth64 there holds object {vmid} (as_getsrval64 takes no hold)"
        );
        return call.refuse(ViolationKind::VmmPuthWithoutGeth, why, Status::EINVAL);
    }
    if maps(k, place, vmid) {
        let why = format!("as_puth64 at {addr:#x} while the region still maps object {vmid}: as_det64 first");
        return call.refuse(ViolationKind::VmmPuthWhileAttached, why, Status::EBUSY);
    }
    put(call, k, place, vmid)
}

/// `as_puth(adspacep, vmhandle)`: ends a hold `as_geth` (or `as_geth64`)
/// took in that address space on the handle's object, at a region that no
/// longer maps it. AIX's `as_puth` names no address: any such hold will do.
fn put_named(call: &Call, k: &mut Kernel, pid: u64, handle: u64) -> Outcome {
    let (vmid, _) = aix_vmm::decode(handle);
    let held = k.vmm.held_places(pid, vmid);
    if held.is_empty() {
        let why =
            format!("as_puth of handle {handle:#x}: no as_geth in process {pid} holds object {vmid} (as_getsrval takes no hold)");
        return call.refuse(ViolationKind::VmmPuthWithoutGeth, why, Status::EINVAL);
    }
    let Some(place) = held.into_iter().find(|&place| !maps(k, place, vmid)) else {
        let why = format!("as_puth of handle {handle:#x} while process {pid}'s region still maps object {vmid}: as_det first");
        return call.refuse(ViolationKind::VmmPuthWhileAttached, why, Status::EBUSY);
    };
    put(call, k, place, vmid)
}

/// Whether the region at `place` maps object `vmid`.
fn maps(k: &Kernel, place: Place, vmid: u64) -> bool {
    matches!(k.vmm.region(place), Some(Mapping::Object { vmid: v, .. }) if v == vmid)
}

fn put(call: &Call, k: &mut Kernel, place: Place, vmid: u64) -> Outcome {
    if !k.vmm.put(place, vmid) {
        return call.refused(VmError::Forged(vmid));
    }
    Reply::ok(0)
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::aix_vmm::{V_CLIENT, adspace};
    use kmemvisor_abi::layout::{PAGE_SIZE, USER_REGIONS_VA, VM_REGION_SIZE, VM_REGIONS, user_region_va};
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

    #[test]
    fn getadsp_names_the_current_process_and_the_32_bit_forms_share_the_regions_and_holds() {
        let s = state();
        let (vmid, handle) = object(&s);
        assert_eq!(status(&s, Service::Getadsp, &[]), Status::EINVAL, "no current process");
        let pid = process(&s);
        let adsp = ok(&s, Service::Getadsp, &[]);
        assert_eq!(adsp, adspace(pid));
        let at = ok(&s, Service::AsAtt, &[adsp, handle, 0x1234_5678 + 7 * VM_REGION_SIZE]);
        assert_eq!(at, USER_REGIONS_VA + 0x0234_5678, "the offset's bits inside a region");
        assert!(user_flags(&s, pid, USER_REGIONS_VA).is_some());
        assert_eq!(reply(&s, Service::AsGeth64, &[at]), (Status::OK, handle), "the 64-bit form sees the region");
        assert_eq!(reply(&s, Service::AsGetsrval, &[adsp, at]), (Status::OK, handle));
        assert_eq!(status(&s, Service::AsPuth, &[adsp, handle]), Status::EBUSY, "the as_geth64 hold, still attached");
        assert_eq!(status(&s, Service::AsDet, &[adsp, at]), Status::OK);
        assert_eq!(status(&s, Service::AsDet, &[adsp, at]), Status::EINVAL, "AIX's documented EINVAL: no violation");
        assert_eq!(status(&s, Service::AsPuth, &[adsp, handle]), Status::OK, "as_puth ends as_geth64's hold");
        assert_eq!(status(&s, Service::AsPuth, &[adsp, handle]), Status::EINVAL);
        assert_eq!(status(&s, Service::VmsDelete, &[vmid]), Status::OK);
        assert_eq!(kinds(&s), ["vmm.puth-while-attached", "vmm.puth-without-geth"]);
        assert_eq!(s.kernel.lock().expect("lock").frames.check(), Ok(()));
    }

    #[test]
    fn as_puth_ends_a_hold_of_its_own_process_on_its_own_object_only() {
        let s = state();
        let (_, first) = object(&s);
        let (_, second) = object(&s);
        process(&s);
        let holder = ok(&s, Service::Getadsp, &[]);
        let at = ok(&s, Service::AsAtt64, &[first, 0]);
        assert_eq!(reply(&s, Service::AsGeth64, &[at]), (Status::OK, first));
        assert_eq!(status(&s, Service::AsDet64, &[at]), Status::OK);
        process(&s);
        let other = ok(&s, Service::Getadsp, &[]);
        assert_eq!(status(&s, Service::AsPuth, &[other, first]), Status::EINVAL, "the hold is another process's");
        assert_eq!(status(&s, Service::AsPuth, &[holder, second]), Status::EINVAL, "the hold is on another object");
        assert_eq!(kinds(&s), ["vmm.puth-without-geth"; 2]);
        assert_eq!(status(&s, Service::AsPuth, &[holder, first]), Status::OK);
    }

    #[test]
    fn the_32_bit_forms_reach_a_process_that_is_not_current() {
        let s = state();
        let (_, handle) = object(&s);
        let pid = process(&s);
        let adsp = ok(&s, Service::Getadsp, &[]);
        assert_eq!(status(&s, Service::ProcessSwitch, &[0]), Status::OK);
        let at = user_region_va(9) + 3;
        assert_eq!(status(&s, Service::AsSeth, &[adsp, handle, at]), Status::OK);
        assert!(user_flags(&s, pid, user_region_va(9)).is_some(), "mapped in that process, from kernel context");
        assert_eq!(reply(&s, Service::AsGeth, &[adsp, at]), (Status::OK, handle));
        assert_eq!(status(&s, Service::AsGeth64, &[at]), Status::EINVAL, "the 64-bit form needs a current process");
        assert_eq!(status(&s, Service::InterruptEnter, &[]), Status::OK);
        assert_eq!(reply(&s, Service::AsGetsrval, &[adsp, at]), (Status::OK, handle), "also at interrupt level");
        for (service, args) in [(Service::AsGeth, [adsp, at]), (Service::AsDet, [adsp, at])] {
            assert_eq!(status(&s, service, &args), Status::EPERM, "{}", service.name());
        }
        assert_eq!(status(&s, Service::Getadsp, &[]), Status::EPERM);
        assert_eq!(status(&s, Service::InterruptLeave, &[]), Status::OK);
        assert_eq!(kinds(&s), ["vmm.at-interrupt-level"; 3]);
        assert_eq!(status(&s, Service::AsDet, &[adsp, at]), Status::OK);
        assert_eq!(status(&s, Service::AsPuth, &[adsp, handle]), Status::OK);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::OK);
        assert_eq!(status(&s, Service::AsAtt, &[adsp, handle, 0]), Status::EINVAL, "a destroyed process's pointer");
        assert_eq!(kinds(&s)[3..], ["vmm.bad-adspace"]);
    }

    #[test]
    fn misuse_of_the_32_bit_forms_without_an_error_return_is_a_violation() {
        let s = state();
        let (_, handle) = object(&s);
        process(&s);
        let adsp = ok(&s, Service::Getadsp, &[]);
        for forged in [0, adsp + 1, adsp ^ 1 << 60, 1] {
            assert_eq!(status(&s, Service::AsGetsrval, &[forged, USER_REGIONS_VA]), Status::EINVAL, "{forged:#x}");
        }
        assert_eq!(kinds(&s), ["vmm.bad-adspace"; 4]);
        assert_eq!(status(&s, Service::AsSeth, &[adsp, handle, USER_REGIONS_VA - 1]), Status::EINVAL, "below the regions");
        assert_eq!(status(&s, Service::AsGeth, &[adsp, USER_REGIONS_VA]), Status::EINVAL, "nothing mapped");
        assert_eq!(status(&s, Service::AsGetsrval, &[adsp, 0x1000]), Status::EINVAL);
        assert_eq!(kinds(&s)[4..], ["vmm.unmapped-address"; 3]);
        assert_eq!(status(&s, Service::AsAtt, &[adsp, handle + 2, 0]), Status::EINVAL, "a handle of no object");
        assert_eq!(status(&s, Service::AsSeth, &[adsp, handle + 2, USER_REGIONS_VA]), Status::EINVAL);
        assert_eq!(kinds(&s)[7..], ["vmm.bad-handle"; 2]);
        for n in 0..VM_REGIONS {
            assert_eq!(reply(&s, Service::AsAtt, &[adsp, handle, 0]), (Status::OK, user_region_va(n)));
        }
        assert_eq!(reply(&s, Service::AsAtt, &[adsp, handle, 0]), (Status::ENOMEM, 0), "AIX's null: no halt");
        assert_eq!(status(&s, Service::AsDet, &[adsp, 0x1000]), Status::EINVAL);
        assert_eq!(s.checker.violations().len(), 9);
    }
}
