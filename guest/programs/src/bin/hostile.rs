//! Makes 100,000 calls with random service numbers and arguments; checks every reply is a status.
//!
//! Random calls into the DG/UX group (`0x600..`) may succeed or be recorded
//! as violations; both are fine. The guest keeps itself intact: the only
//! service that writes through a pointer argument,
//! `vm_get_physical_byte_address`, gets an unmappable or arena address there,
//! never one of the image or the stack, and what random perhaps gets allocate
//! is released before the guest exits, so nothing is left allocated.
#![no_std]
#![no_main]

use core::arch::asm;

use kmemvisor_guest::abi::{HYPERCALL_PORT, Service, Status, layout};
use kmemvisor_guest::dgux::raw;
use kmemvisor_guest::rng::Rng;
use kmemvisor_guest::{println, vcpu_count, vcpu_id};

kmemvisor_firmware::entry!(main);

/// Calls made.
const CALLS: u64 = 100_000;
/// The PRNG seed: the run is the same every time.
const SEED: u64 = 0x6b6d_656d_7669_736f;

/// Addresses around the regions of the layout (some mapped, some not).
const NEAR: &[u64] = &[
    0,
    layout::USER_START,
    layout::USER_END,
    layout::KERNEL_START,
    layout::STACKS_VA,
    layout::VCPU_PAGES_VA,
    layout::SYSTEM_TABLES_VA,
    layout::BOOT_INFO_VA,
    layout::IMAGE_VA,
    layout::IMAGE_VA_OFFSET + layout::IMAGE_GPA_END,
    layout::DEVICE_WINDOW_GPA,
];

/// Addresses no page table can map: the null page and non-canonical ones.
const UNMAPPABLE: &[u64] = &[
    0,
    8,
    layout::PAGE_SIZE,
    0x0000_8000_0000_0000,
    0x0000_ffff_ffff_f000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_7fff_ffff_ffff,
];

fn service_number(rng: &mut Rng) -> u64 {
    match rng.below(3) {
        0 => rng.next_u64(),
        1 => rng.below(0x800),
        _ => rng.pick(Service::ALL).number(),
    }
}

fn argument(rng: &mut Rng) -> u64 {
    match rng.below(8) {
        0 | 1 => rng.next_u64(),
        2 => rng.below(0x100),
        3 => 0,
        4 => u64::MAX,
        5 => rng.pick(UNMAPPABLE) ^ (rng.below(0x1000) & !7),
        _ => rng.pick(NEAR).wrapping_add(rng.below(0x4000)).wrapping_sub(0x2000),
    }
}

/// Makes the arguments harmless where the service would act on them for real:
/// the console must not print memory, and no other vCPU may run a random entry.
fn defuse(number: u64, args: &mut [u64; 6], rng: &mut Rng) {
    match Service::try_from(number) {
        Ok(Service::ConsoleWrite) => {
            if rng.below(2) == 0 {
                args[1] = 0;
            } else {
                args[0] = rng.pick(UNMAPPABLE);
                if args[0] < layout::PAGE_SIZE {
                    // Keep the whole range below the first page anyone could map.
                    args[1] %= layout::USER_START - args[0];
                }
            }
        }
        Ok(Service::VcpuStart) if args[0] < vcpu_count() && args[0] != vcpu_id() => {
            args[0] = vcpu_count() + (args[0] & 0xffff);
        }
        Ok(Service::VmGetPhysicalByteAddress) => {
            // The VMM stores 8 bytes there: never into our image or stack.
            args[2] = match rng.below(3) {
                0 => rng.pick(UNMAPPABLE),
                1 => layout::WIRED_ARENA_VA + (rng.below(0x10_0000) & !7),
                _ => layout::UNWIRED_ARENA_VA + (rng.below(0x10_0000) & !7),
            };
        }
        _ => {}
    }
}

/// Most allocations of random perhaps gets kept until the end; more are
/// released at once.
const KEPT: usize = 128;

/// What random perhaps gets allocated: released before the guest exits.
struct Allocations {
    kept: [(u64, u64, bool); KEPT],
    len: usize,
    total: u64,
}

impl Allocations {
    /// Notes the reply of a call: a perhaps get that succeeded allocated.
    fn note(&mut self, number: u64, args: &[u64; 6], status: u64, value: u64) {
        let wired = match Service::try_from(number) {
            Ok(Service::VmPerhapsGetWiredMemory) => true,
            Ok(Service::VmPerhapsGetUnwiredMemory) => false,
            _ => return,
        };
        if status != Status::OK.code() {
            return;
        }
        self.total += 1;
        if self.len < KEPT {
            self.kept[self.len] = (value, args[0], wired);
            self.len += 1;
        } else {
            release(value, args[0], wired);
        }
    }

    /// Releases everything kept; the number of refused releases.
    fn release_all(&mut self) -> u64 {
        let refused =
            self.kept[..self.len].iter().filter(|&&(ptr, bytes, wired)| release(ptr, bytes, wired) != Status::OK).count();
        self.len = 0;
        refused as u64
    }
}

fn release(ptr: u64, bytes: u64, wired: bool) -> Status {
    // SAFETY: the allocation was never used; nothing refers to it.
    unsafe { if wired { raw::vm_release_wired_memory(ptr, bytes) } else { raw::vm_release_unwired_memory(ptr, bytes) } }
}

/// The hypercall, also checking that the argument registers come back unchanged.
fn call(number: u64, args: [u64; 6]) -> (u64, u64, bool) {
    let (status, value): (u64, u64);
    let (mut a0, mut a1, mut a2, mut a3, mut a4, mut a5) = (args[0], args[1], args[2], args[3], args[4], args[5]);
    // SAFETY: `defuse` leaves no argument that makes the VMM touch memory we
    // use: the console gets a null or non-canonical pointer or no length;
    // vm_get_physical_byte_address stores only to an unmappable or arena
    // address (the arenas hold nothing but never-read random allocations);
    // other services take no pointers they write through, or do not exist.
    unsafe {
        asm!(
            "out dx, eax",
            inout("rax") number => status,
            inout("rdx") u64::from(HYPERCALL_PORT) => value,
            inout("rdi") a0, inout("rsi") a1, inout("rcx") a2,
            inout("r8") a3, inout("r9") a4, inout("r10") a5,
            options(nostack, preserves_flags),
        );
    }
    let out = [a0, a1, a2, a3, a4, a5];
    (status, value, out == args)
}

fn main() -> u32 {
    let mut rng = Rng::new(SEED);
    let mut counts = [0u64; Status::ALL.len()];
    let (mut not_status, mut clobbered) = (0u64, 0u64);
    let mut made = 0u64;
    let mut allocations = Allocations { kept: [(0, 0, false); KEPT], len: 0, total: 0 };
    while made < CALLS {
        let number = service_number(&mut rng);
        if let Ok(service) = Service::try_from(number)
            && !service.returns()
        {
            continue; // exit, panic, exception, vcpu_done end the VM or the vCPU
        }
        let mut args = [0u64; 6];
        args.iter_mut().for_each(|a| *a = argument(&mut rng));
        defuse(number, &mut args, &mut rng);
        let (status, value, preserved) = call(number, args);
        allocations.note(number, &args, status, value);
        made += 1;
        if !preserved {
            clobbered += 1;
        }
        match Status::try_from(status) {
            Ok(s) => counts[Status::ALL.iter().position(|&t| t == s).unwrap_or(0)] += 1,
            Err(code) => {
                if not_status < 10 {
                    println!("hostile: call {number:#x} answered {code:#x}, which is not a status");
                }
                not_status += 1;
            }
        }
    }
    for (status, &count) in Status::ALL.iter().zip(&counts) {
        if count > 0 {
            println!("hostile: {:>6} x {}", count, status.name());
        }
    }
    let refused = allocations.release_all();
    println!("hostile: {} random perhaps gets allocated; all released", allocations.total);
    if refused > 0 {
        println!("hostile: {refused} releases of those allocations were refused");
        return 1;
    }
    if clobbered > 0 {
        println!("hostile: {clobbered} calls changed an argument register");
    }
    if not_status > 0 || clobbered > 0 {
        println!("hostile: {CALLS} calls, {not_status} answered with no status");
        return 1;
    }
    println!("hostile: {CALLS} calls, all answered with a status");
    0
}
