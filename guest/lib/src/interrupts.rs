//! Device interrupts: the DMA engine raises one when a transfer ends on a
//! channel whose `REG_INTERRUPT` is 1 (see [`crate::dma`]).
//!
//! A driver registers one handler with [`register`]; from then on until
//! [`unregister`] the VMM delivers completion interrupts. It injects one at an exit of the vCPU that
//! rang the doorbell, chosen by its schedule, so the moment is the same on
//! every run; the firmware's vector 32 calls the handler, and while it runs
//! the VMM treats the vCPU as being at interrupt level (the AIX context
//! rules apply without `interrupt_enter`). Interrupts do not nest: one that
//! comes while a handler runs waits until it returns. A handler that never
//! returns keeps its vCPU at interrupt level until the run ends.
//!
//! The VMM, not RFLAGS.IF, decides when an interrupt may enter: `sti` and
//! `cli` fault at CPL3 on the PVM flavour of KVM, which runs guest code with
//! the hardware IOPL at 0. A vCPU that must not be interrupted for a while
//! unregisters the handler (a raised interrupt is then a violation).

use core::sync::atomic::{AtomicUsize, Ordering};

use kmemvisor_abi::{Service, Status};

/// The registered handler as an address, 0 for none.
static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Makes `handler` the device-interrupt handler and tells the VMM there is one.
pub fn register(handler: fn()) -> Result<(), Status> {
    HANDLER.store(handler as usize, Ordering::Release);
    // SAFETY: `interrupt_register` takes no pointers.
    unsafe { crate::call(Service::InterruptRegister, [1, 0, 0, 0, 0, 0]) }.map(drop)
}

/// Removes the handler: the VMM then reports an interrupt raised for this
/// guest as one with no handler, and drops it.
pub fn unregister() -> Result<(), Status> {
    HANDLER.store(0, Ordering::Release);
    // SAFETY: as for `register`.
    unsafe { crate::call(Service::InterruptRegister, [0, 0, 0, 0, 0, 0]) }.map(drop)
}

/// Called by the firmware's vector 32 with interrupts off: runs the handler.
#[unsafe(no_mangle)]
pub extern "C" fn kmv_interrupt_dispatch() {
    let handler = HANDLER.load(Ordering::Acquire);
    if handler != 0 {
        // SAFETY: HANDLER only ever holds 0 or a `fn()` stored by `register`.
        let handler: fn() = unsafe { core::mem::transmute::<usize, fn()>(handler) };
        handler();
    }
}
