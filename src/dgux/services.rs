//! The fifteen DG/UX hypercalls: argument decoding with the seed's widths,
//! and which outcome is a status, which a violation and which a halt.

use kmemvisor_abi::dgux::{
    AbortCode, MAP_SHARED, PROT_EXEC, PROT_WRITE, SC_ACCESS_MODE_MASK, SC_NO_ACCESS, SC_READ_ACCESS, SC_WRITE_ACCESS,
    VM_INVALID_MEMORY_PTR, VM_INVALID_PHYSICAL_ADDRESS, VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK, VM_MMAP_WRITE_THROUGH_MASK,
    VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK,
};
use kmemvisor_abi::layout::PAGE_SIZE;
use kmemvisor_abi::{Service, Status};

use super::kernel_memory::{GetError, KernelMemory, Kind, Marks};
use crate::guest_access;
use crate::hypercall::{Caller, Outcome, Reply, refuse};
use crate::paging::PteFlags;
use crate::report::ExitCause;
use crate::state::VmState;

/// Serves a DG/UX service.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
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
        Service::VmGetPhysicalByteAddress => physical_address(state, a0, a1, a2),
        Service::VmMapPhysicalMemory => map_physical(state, caller, service, [a0, a1, a2, a3, a4, a5]),
        Service::VmUnmapPhysicalMemory => unmap_physical(state, caller, service, [a0, a1, a2]),
        _ => Reply::status(Status::ENOSYS),
    }
}

fn kernel(state: &VmState) -> std::sync::MutexGuard<'_, KernelMemory> {
    state.kernel.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `uint32type` argument, or why not.
fn uint32(name: &str, value: u64) -> Result<u64, String> {
    if value > u64::from(u32::MAX) { Err(format!("{name} {value:#x} does not fit its uint32 type")) } else { Ok(value) }
}

fn get(state: &VmState, caller: Caller, service: Service, kind: Kind, demand: bool, bytes: u64, alignment: u64) -> Outcome {
    let result = kernel(state).get(state.ram.memory(), &state.space, kind, bytes, alignment, (caller.vcpu, caller.rip));
    match result {
        Ok(ptr) => Reply::ok(ptr),
        Err(GetError::Refused(why)) => refuse(state, caller, service, &[bytes, alignment], why, Status::EINVAL),
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
    let result = kernel(state).release(state.ram.memory(), &state.space, kind, ptr, bytes);
    match result {
        Ok(()) => Reply::ok(0),
        Err(e) => {
            let message = format!("release of {bytes} bytes of {kind} memory at {ptr:#x}: {e}; nothing was released");
            refuse(state, caller, service, &[ptr, bytes], message, Status::EINVAL)
        }
    }
}

/// The start, the byte count and whether it is a user address, or why not.
fn region(args: &[u64]) -> Result<(u64, u64, bool), String> {
    Ok((args[0], uint32("the byte count", args[2])?, args[1] != 0))
}

fn wire(state: &VmState, caller: Caller, service: Service, args: &[u64], access: u64) -> Outcome {
    let (start, bytes, user) = match region(args) {
        Ok(region) => region,
        Err(why) => return refuse(state, caller, service, args, why, Status::EINVAL),
    };
    if access & !SC_ACCESS_MODE_MASK != 0 {
        let why = format!("access mode {access:#x} has bits outside SC_ACCESS_MODE_MASK");
        return refuse(state, caller, service, args, why, Status::EINVAL);
    }
    if user {
        // No user address spaces exist yet: every user address is outside one.
        return Reply::status(Status::VM_STATUS_PROCESS_HAS_NO_VM);
    }
    let status = kernel(state).wire(state.ram.memory(), &state.space, start, bytes, access);
    Reply::status(status)
}

fn unwire(state: &VmState, caller: Caller, service: Service, args: &[u64], access: Option<u64>) -> Outcome {
    let (start, bytes, user) = match region(args) {
        Ok(region) => region,
        Err(why) => return refuse(state, caller, service, args, why, Status::EINVAL),
    };
    let access = access.unwrap_or(SC_NO_ACCESS);
    if access & !SC_ACCESS_MODE_MASK != 0 {
        let why = format!("access mode {access:#x} has bits outside SC_ACCESS_MODE_MASK");
        return refuse(state, caller, service, args, why, Status::EINVAL);
    }
    if user {
        let why = format!("user address {start:#x}, but the caller has no user address space");
        return refuse(state, caller, service, args, why, Status::VM_STATUS_PROCESS_HAS_NO_VM);
    }
    let marks = Marks { referenced: access != SC_NO_ACCESS, modified: access & SC_WRITE_ACCESS != 0 };
    match kernel(state).unwire(state.ram.memory(), &state.space, start, bytes, marks) {
        Ok(()) => Reply::ok(0),
        Err(e) => refuse(state, caller, service, args, format!("{e}; nothing was unwired or marked"), Status::EINVAL),
    }
}

fn physical_address(state: &VmState, logical: u64, user: u64, out: u64) -> Outcome {
    let memory = state.ram.memory();
    let physical = match user {
        0 => state.space.translate(memory, logical).map_or(VM_INVALID_PHYSICAL_ADDRESS, |t| t.gpa),
        _ => VM_INVALID_PHYSICAL_ADDRESS,
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
    match refuse(state, caller, service, args, why, Status::OK) {
        stop @ Outcome::Stop(_) => Some(stop),
        _ => None,
    }
}

fn map_physical(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let [logical, physical, bytes, access, sharing, control] = args;
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
    } else if control & VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK == 0 {
        Status::VM_EINVAL_MMAP_SPACE_UNALLOCATED
    } else {
        let mut flags = PteFlags::USER;
        if access & PROT_WRITE != 0 {
            flags = flags | PteFlags::WRITABLE;
        }
        if access & PROT_EXEC == 0 {
            flags = flags | PteFlags::NO_EXECUTE;
        }
        flags = flags | if control & VM_MMAP_WRITE_THROUGH_MASK != 0 { PteFlags::WRITE_THROUGH } else { PteFlags::CACHE_DISABLE };
        let memory = state.ram.memory();
        kernel(state).map_physical(memory, &state.space, logical, physical, bytes, flags, state.ram.size())
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
    } else if control & VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK == 0 {
        Status::VM_EINVAL_MUNMAP_BAD_REGION
    } else {
        kernel(state).unmap_physical(state.ram.memory(), &state.space, logical, bytes)
    };
    Reply::status(status)
}
