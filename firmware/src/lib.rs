//! The kmemvisor guest firmware: everything between the VMM and a guest
//! program's `main`.
//!
//! Boot path of a guest image built with it:
//!
//! 1. The linker script (generated from `kmemvisor.ld.in` by `build.rs`) puts
//!    the [`ImageHeader`](kmemvisor_abi::ImageHeader) (`header.s`) at
//!    `IMAGE_VA`, then code, read-only data and data in three segments.
//! 2. The VMM checks the header, maps the segments, builds an IDT whose gate
//!    `n` is stub `n` of `vectors.s`, and starts vCPU 0 at `_start`
//!    (`entry.s`) at CPL3 with RSP at the top of its stack.
//! 3. `_start` calls [`kmv_boot`], which runs the program's `main` (named by
//!    [`entry!`]) and passes its result to `exit`.
//! 4. Other vCPUs start at `kmv_ap_entry` when the program asks
//!    (`kmemvisor_guest::smp::start`); [`kmv_ap_main`] runs the work and
//!    reports its result with `vcpu_done`.
//! 5. A CPU exception lands in a vector stub, which reports it with
//!    `Service::Exception`; a panic is reported by the [panic handler](panic)
//!    with `Service::Panic`. Neither returns.
#![no_std]

use core::arch::global_asm;
use core::panic::PanicInfo;

use kmemvisor_abi::image::{IMAGE_MAGIC, VECTOR_STRIDE};
use kmemvisor_abi::{ABI_VERSION, HYPERCALL_PORT, Service};
use kmemvisor_guest::smp::Work;

global_asm!(
    include_str!("header.s"),
    m0 = const IMAGE_MAGIC[0],
    m1 = const IMAGE_MAGIC[1],
    m2 = const IMAGE_MAGIC[2],
    m3 = const IMAGE_MAGIC[3],
    m4 = const IMAGE_MAGIC[4],
    m5 = const IMAGE_MAGIC[5],
    m6 = const IMAGE_MAGIC[6],
    m7 = const IMAGE_MAGIC[7],
    abi_version = const ABI_VERSION,
);

global_asm!(
    include_str!("entry.s"),
    boot = sym kmv_boot,
    ap_main = sym kmv_ap_main,
);

global_asm!(
    include_str!("vectors.s"),
    stride = const VECTOR_STRIDE,
    exception = const Service::Exception.number(),
    interrupt_return = const Service::InterruptReturn.number(),
    port = const HYPERCALL_PORT,
    dispatch = sym kmemvisor_guest::interrupts::kmv_interrupt_dispatch,
);

pub use kmemvisor_guest::panic::PANIC_MESSAGE_MAX;

unsafe extern "C" {
    /// The program's main, defined by [`entry!`].
    fn kmv_main() -> u32;
}

/// Names the program's main function: `kmemvisor_firmware::entry!(main);` with
/// `fn main() -> u32`. vCPU 0 runs it at boot; its result becomes the exit
/// status of the `kmemvisor` process.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The program's main as the firmware calls it.
        #[unsafe(no_mangle)]
        pub extern "C" fn kmv_main() -> u32 {
            let main: fn() -> u32 = $main;
            main()
        }
    };
}

/// vCPU 0's Rust entry, called by `_start`: runs the program, then exits with
/// its result.
pub extern "C" fn kmv_boot() -> ! {
    // SAFETY: every guest program defines kmv_main with `entry!`, with this
    // signature; it is an ordinary Rust function.
    let code = unsafe { kmv_main() };
    kmemvisor_guest::exit(code)
}

/// A started vCPU's Rust entry, called by `kmv_ap_entry` with the registers the
/// VMM set from `Service::VcpuStart`: runs `function(argument)` and reports the
/// result with `vcpu_done`.
pub extern "C" fn kmv_ap_main(function: usize, argument: u64) -> ! {
    // SAFETY: `function` is the `Work` that `kmemvisor_guest::smp::start` passed
    // as a number to the VMM, which hands it back unchanged; it has the same
    // size as usize and is not null.
    let work: Work = unsafe { core::mem::transmute::<usize, Work>(function) };
    kmemvisor_guest::vcpu_done(work(argument))
}

/// Reports a panic to the VMM: the message (cut to [`PANIC_MESSAGE_MAX`]
/// bytes) and file:line:column. The VMM ends the VM.
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    kmemvisor_guest::panic::report(info)
}
