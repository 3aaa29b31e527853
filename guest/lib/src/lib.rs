//! The kmemvisor guest library: what a guest program calls to talk to the VMM.
//!
//! A guest is a `#![no_std]` program linked with the firmware
//! (`kmemvisor-firmware`), which provides the entry points, the exception
//! vectors and the panic handler. The program itself uses this library:
//!
//! - [`hypercall()`] and [`call`]: the raw and the typed hypercall, one
//!   `out dx, eax` each (see the ABI crate, re-exported as [`abi`]);
//! - one safe wrapper per core service: [`abi_version`], [`null`],
//!   [`console_write`], [`exit`], [`vcpu_done`], [`report_panic`], and the
//!   [`smp`] module for `vcpu_start` / `vcpu_wait`;
//! - [`print!`] and [`println!`], formatted through a fixed stack buffer;
//! - the [`dgux`] module: DG/UX `memory_allocation(3K)`, one function per
//!   service (gets, releases, wiring, marking, physical addresses, mapping);
//! - the [`aix`] module: AIX heaps (`xmalloc`…), pinning (`pin`…) and user
//!   memory access (`copyin`…, `uiomove`…), one function per service;
//! - the [`process`] module: processes (user address spaces) and interrupt
//!   level, the contexts the AIX services check;
//! - [`vcpu_id`] and [`vcpu_count`] from the per-vCPU page (no exit);
//! - the [`fuzz`] module: the fuzzing snapshot point and the iteration's input;
//! - [`args()`], the guest's command line from the boot-info page;
//! - [`modules()`] and [`module_call`]: the guest modules loaded next to the
//!   image (`--module`), from the boot-info page's module table;
//! - [`panic::report`], the body of the firmware's and the module runtime's
//!   panic handlers.
//!
//! The pure parts (buffers, the argument splitter) are unit-tested on the host:
//! `cd guest && cargo test -p kmemvisor-guest --target x86_64-unknown-linux-gnu`.
#![cfg_attr(not(test), no_std)]

pub use kmemvisor_abi as abi;

pub mod aix;
pub mod aix_vmm;
pub mod args;
pub mod conformance;
pub mod console;
pub mod dgux;
pub mod dma;
pub mod fuzz;
pub mod hypercall;
pub mod interrupts;
pub mod module;
pub mod panic;
pub mod process;
pub mod rng;
pub mod smp;
pub mod steps;
pub mod vcpu;
pub mod xmem;

pub use args::{Args, args};
pub use console::console_write;
pub use hypercall::{call, hypercall};
pub use module::{Module, find_module, module_call, modules};
pub use vcpu::{vcpu_count, vcpu_id};

use kmemvisor_abi::{Service, Status};

/// Returns [`abi::ABI_VERSION`] as the VMM knows it: `major << 16 | minor`.
pub fn abi_version() -> Result<u64, Status> {
    // SAFETY: `abi_version` takes no pointers; the VMM touches no guest memory.
    unsafe { call(Service::AbiVersion, [0; 6]) }
}

/// Makes the cheapest call there is: one exit, no work.
pub fn null() -> Result<(), Status> {
    // SAFETY: `null` takes no pointers.
    unsafe { call(Service::Null, [0; 6]) }.map(drop)
}

/// Ends the VM; `code` becomes the exit status of the `kmemvisor` process.
pub fn exit(code: u32) -> ! {
    // SAFETY: `exit` takes no pointers.
    let _ = unsafe { call(Service::Exit, [u64::from(code), 0, 0, 0, 0, 0]) };
    unreachable_call(Service::Exit)
}

/// Ends the work [`smp::start`] started on this vCPU, which becomes idle;
/// [`smp::wait`] returns `result`. The firmware calls this when the work
/// function returns.
pub fn vcpu_done(result: u64) -> ! {
    // SAFETY: `vcpu_done` takes no pointers.
    let _ = unsafe { call(Service::VcpuDone, [result, 0, 0, 0, 0, 0]) };
    unreachable_call(Service::VcpuDone)
}

/// Reports a panic to the VMM, which ends the VM: the message and where it
/// happened. The firmware's panic handler calls this.
pub fn report_panic(message: &[u8], file: &str, line: u32, column: u32) -> ! {
    let args = [
        message.as_ptr() as u64,
        message.len() as u64,
        file.as_ptr() as u64,
        file.len() as u64,
        u64::from(line),
        u64::from(column),
    ];
    // SAFETY: both pointers name live byte ranges of the given lengths; the VMM
    // only reads them. The raw call is used so that an odd reply cannot panic
    // again from inside the panic handler.
    unsafe { hypercall(Service::Panic.number(), args) };
    halt()
}

/// Spins forever: what a vCPU does after a call that should not have returned.
/// (`hlt` is privileged and the guest runs at CPL3.)
pub fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// A service that ends the VM returned: the VMM broke the ABI. Spin rather than
/// panic, since the panic report could be what returned.
fn unreachable_call(_service: Service) -> ! {
    halt()
}
