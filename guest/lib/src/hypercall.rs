//! The hypercall: one `out dx, eax` to [`HYPERCALL_PORT`].
//!
//! `rax` carries the service number in and the [`Status`] out, `rdx` the port
//! in and the call's value out; the six arguments travel in `rdi`, `rsi`, `rcx`,
//! `r8`, `r9`, `r10` and come back unchanged, as do every other register and
//! the flags.

use core::arch::asm;

use kmemvisor_abi::{ARG_COUNT, HYPERCALL_PORT, Service, Status};

/// Makes hypercall `number` with `args` and returns the raw `(rax, rdx)` reply:
/// the status code and the value. Nothing is checked: guests that probe the
/// VMM with garbage use this.
///
/// # Safety
///
/// The VMM reads and, for some services, writes guest memory at the addresses
/// in `args`: every argument a service treats as a pointer must be valid for
/// what that service does with it. Services that end the VM or the vCPU's work
/// do not return.
pub unsafe fn hypercall(number: u64, args: [u64; ARG_COUNT]) -> (u64, u64) {
    let status: u64;
    let value: u64;
    // SAFETY: `out` is allowed at CPL3 with IOPL=3. The VMM changes only rax and
    // rdx (declared as outputs) and the memory the caller vouched for (no
    // `nomem`); it preserves the flags and uses no stack of ours.
    unsafe {
        asm!(
            "out dx, eax",
            inout("rax") number => status,
            inout("rdx") u64::from(HYPERCALL_PORT) => value,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rcx") args[2],
            in("r8") args[3],
            in("r9") args[4],
            in("r10") args[5],
            options(nostack, preserves_flags),
        );
    }
    (status, value)
}

/// Makes the call `service` with `args`: `Ok(value)` when the VMM answers
/// [`Status::OK`], `Err(status)` otherwise.
///
/// # Panics
///
/// If the VMM answers with a code that is no [`Status`]: it broke the ABI.
///
/// # Safety
///
/// As for [`hypercall()`]: pointer arguments must be valid for the service.
pub unsafe fn call(service: Service, args: [u64; ARG_COUNT]) -> Result<u64, Status> {
    // SAFETY: the caller vouches for the arguments.
    match unsafe { call_status(service, args) } {
        (Status::OK, value) => Ok(value),
        (status, _) => Err(status),
    }
}

/// Makes the call `service` with `args` and returns the status and the value
/// as the VMM put them in `rax` and `rdx`, whatever the status.
///
/// # Panics
///
/// If the VMM answers with a code that is no [`Status`]: it broke the ABI.
///
/// # Safety
///
/// As for [`hypercall()`]: pointer arguments must be valid for the service.
pub unsafe fn call_status(service: Service, args: [u64; ARG_COUNT]) -> (Status, u64) {
    // SAFETY: the caller vouches for the arguments.
    let (status, value) = unsafe { hypercall(service.number(), args) };
    parse_reply(status, value).unwrap_or_else(|code| panic!("{} answered {code:#x}, which is not a status", service.name()))
}

/// Reads a reply: `Ok((status, value))`, or `Err(code)` when `status` is no
/// status at all.
pub fn parse_reply(status: u64, value: u64) -> Result<(Status, u64), u64> {
    Ok((Status::try_from(status)?, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_into_value_status_or_garbage() {
        assert_eq!(parse_reply(0, 42), Ok((Status::OK, 42)));
        assert_eq!(parse_reply(Status::EFAULT.code(), 42), Ok((Status::EFAULT, 42)));
        assert_eq!(parse_reply(6, 0), Err(6), "6 is no status");
        assert_eq!(parse_reply(u64::MAX, 0), Err(u64::MAX));
    }
}
