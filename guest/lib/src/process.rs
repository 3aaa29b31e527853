//! Processes (user address spaces) and interrupt level: what the AIX
//! services check their callers' context against.
//!
//! A vCPU is *in process context* after [`process_switch`] to a process: that
//! process's user memory (`USER_START..USER_END`, see
//! [`layout`](crate::abi::layout)) is then directly reachable by the guest
//! code and by the user memory access services. It is *at interrupt level*
//! between [`interrupt_enter`] and [`interrupt_leave`] (which nest);
//! [`at_interrupt_level`] brackets a closure with the two.
//!
//! Every function returns `Ok` or the [`Status`] the VMM answered:
//!
//! | call | refusals |
//! |---|---|
//! | [`process_create`] | `ENOSPC` (too many processes), `ENOMEM` |
//! | [`process_switch`] | `ESRCH` (unknown pid), `EPERM` (at interrupt level) |
//! | [`process_map`] | `EINVAL` (0 bytes, outside the user range), `EEXIST` (mapped already), `ESRCH` (no current process), `ENOMEM` |
//! | [`process_destroy`] | `ESRCH` (unknown pid or 0), `EBUSY` (current on some vCPU, or its memory pinned or DG/UX-wired) |
//! | [`interrupt_enter`] | `EINVAL` (nested too deep) |
//! | [`interrupt_leave`] | `EINVAL` and a violation (not at interrupt level) |

use kmemvisor_abi::{Service, Status};

use crate::hypercall::call;

pub use kmemvisor_abi::aix::{PROT_EXEC, PROT_READ, PROT_WRITE};

/// A process id, as [`process_create`] returns it (1, 2, …); 0 means none.
pub type Pid = u64;

/// Creates a process: an empty user address space sharing the kernel half.
/// Returns its id.
pub fn process_create() -> Result<Pid, Status> {
    // SAFETY: `process_create` takes no pointers.
    unsafe { call(Service::ProcessCreate, [0; 6]) }
}

/// Makes this vCPU run on behalf of process `pid` (its user memory becomes
/// reachable), or of none when `pid` is 0 (user addresses are unmapped again).
///
/// # Safety
///
/// The user memory of the process left becomes unreachable: no reference or
/// pointer into it may be used until the vCPU switches back.
pub unsafe fn process_switch(pid: Pid) -> Result<(), Status> {
    // SAFETY: the caller keeps no live access to the user memory left.
    unsafe { call(Service::ProcessSwitch, [pid, 0, 0, 0, 0, 0]) }.map(drop)
}

/// Maps `bytes` of zeroed user memory at user address `va` (rounded out to
/// whole pages) in the current process. `prot` combines [`PROT_READ`],
/// [`PROT_WRITE`] and [`PROT_EXEC`].
pub fn process_map(va: u64, bytes: u64, prot: u64) -> Result<(), Status> {
    // SAFETY: mapping fresh pages changes no memory the guest uses: the range
    // must not be mapped yet (else `EEXIST`).
    unsafe { call(Service::ProcessMap, [va, bytes, prot, 0, 0, 0]) }.map(drop)
}

/// Destroys process `pid` and frees its memory. It must not be current on
/// any vCPU nor have memory pinned or DG/UX-wired (else `EBUSY`): switch
/// away, unpin and unwire first.
///
/// # Safety
///
/// The process's user memory is gone afterwards.
pub unsafe fn process_destroy(pid: Pid) -> Result<(), Status> {
    // SAFETY: the caller gives the memory up.
    unsafe { call(Service::ProcessDestroy, [pid, 0, 0, 0, 0, 0]) }.map(drop)
}

/// Enters (one more level of) interrupt level on this vCPU; returns the new
/// nesting depth (1 for the first level).
pub fn interrupt_enter() -> Result<u32, Status> {
    // SAFETY: `interrupt_enter` takes no pointers.
    unsafe { call(Service::InterruptEnter, [0; 6]) }.map(|depth| depth as u32)
}

/// Leaves one level of interrupt level; returns the depth left (0 when back
/// in process or kernel context). Leaving without entering is a violation
/// and `EINVAL`.
pub fn interrupt_leave() -> Result<u32, Status> {
    // SAFETY: `interrupt_leave` takes no pointers.
    unsafe { call(Service::InterruptLeave, [0; 6]) }.map(|depth| depth as u32)
}

/// Runs `f` at interrupt level: [`interrupt_enter`] before, [`interrupt_leave`]
/// after, and returns what `f` returned.
///
/// # Panics
///
/// If the VMM refuses to enter (interrupt levels nested too deep) or to
/// leave (`f` left the level itself).
pub fn at_interrupt_level<R>(f: impl FnOnce() -> R) -> R {
    if let Err(status) = interrupt_enter() {
        panic!("interrupt_enter answered {}", status.name());
    }
    let result = f();
    if let Err(status) = interrupt_leave() {
        panic!("interrupt_leave answered {}", status.name());
    }
    result
}
