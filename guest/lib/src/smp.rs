//! Running work on the other vCPUs.
//!
//! Only vCPU 0 runs at boot. [`start`] asks the VMM to run `work(argument)` on
//! an idle vCPU, on a fresh stack; the firmware's `kmv_ap_entry` calls it and
//! hands its result to [`vcpu_done`](crate::vcpu_done), after which the vCPU is
//! idle again. [`wait`] blocks until a vCPU is idle and returns that result.

use kmemvisor_abi::{Service, Status};

/// The work a vCPU runs: takes the argument given to [`start`], returns the
/// result [`wait`] gets.
pub type Work = fn(u64) -> u64;

unsafe extern "C" {
    /// The firmware's entry point for started vCPUs (firmware/src/entry.s):
    /// RDI = the [`Work`] function, RSI = its argument. Only its address is used.
    fn kmv_ap_entry();
}

/// Starts `work(argument)` on the idle vCPU `vcpu`.
pub fn start(vcpu: u64, work: Work, argument: u64) -> Result<(), Status> {
    let entry = kmv_ap_entry as *const () as u64;
    let args = [vcpu, entry, work as *const () as u64, argument, 0, 0];
    // SAFETY: no argument is a pointer the VMM dereferences; `entry` is the
    // firmware's entry point for exactly this call, and `work` a function of
    // the type it expects.
    unsafe { crate::call(Service::VcpuStart, args) }.map(drop)
}

/// Waits until `vcpu` is idle; returns what its last work returned.
pub fn wait(vcpu: u64) -> Result<u64, Status> {
    // SAFETY: `vcpu_wait` takes no pointers.
    unsafe { crate::call(Service::VcpuWait, [vcpu, 0, 0, 0, 0, 0]) }
}

/// Lets the other vCPUs run: call it in every loop that waits for another
/// vCPU through memory. Under the VMM's serial schedule (the default) one
/// vCPU runs at a time, so a loop that makes no exit would hold the host
/// until the VMM's spin fallback takes it back, on host time; this call is
/// an exit after which every other runnable vCPU runs before this one.
pub fn relax() {
    // SAFETY: `vcpu_yield` takes no arguments and touches no memory.
    let _ = unsafe { crate::call(Service::VcpuYield, [0; 6]) };
}
