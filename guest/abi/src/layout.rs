//! The guest's physical and virtual memory layout: the one place it is defined.
//!
//! ```text
//! guest-physical                                   guest-virtual (every mapping U=1: the guest runs at CPL3)
//! 0x0000_0000  null frame, never mapped
//! 0x0000_1000  GDT + TSS  ───────────────────────  SYSTEM_TABLES_VA        (U=0: only the CPU reads it)
//! 0x0000_2000  IDT        ───────────────────────  SYSTEM_TABLES_VA + 4 KiB
//! 0x0000_3000  boot info  ───────────────────────  BOOT_INFO_VA            (read-only)
//! 0x0000_4000  TSS + I/O bitmap (3 frames) ──────  TSS_VA                  (U=0)
//! 0x0001_0000  per-vCPU pages (16) ──────────────  VCPU_PAGES_VA + n * 4 KiB (FS base of vCPU n)
//! 0x0010_0000  page-table pool (VMM-owned, not mapped in the guest)
//! 0x0020_0000  guest image (ELF PT_LOAD) ────────  IMAGE_VA = IMAGE_VA_OFFSET + gpa
//! 0x0080_0000  module slots (8 × 1 MiB) ─────────  MODULES_VA + n * MODULE_SLOT_SIZE (same offset)
//! 0x0100_0000  vCPU stacks (16 × 64 KiB) ────────  STACKS_VA + n * STACK_SLOT, below each a guard
//! 0x0110_0000  free RAM for the VMM's allocators
//! RAM end      at most MAX_RAM_SIZE
//! 0xd000_0000  device window (MMIO devices)
//!
//! user address spaces: USER_START .. USER_END (the canonical low half)
//!   USER_REGIONS_VA    AIX as_att64 / as_seth64 regions (the top 4 GiB)
//! kernel:              KERNEL_START .. (the canonical high half)
//!   WIRED_ARENA_VA     DG/UX wired kernel memory     (ARENA_SIZE)
//!   UNWIRED_ARENA_VA   DG/UX unwired kernel memory   (ARENA_SIZE)
//!   KERNEL_HEAP_VA     AIX kernel_heap (pageable)    (ARENA_SIZE)
//!   PINNED_HEAP_VA     AIX pinned_heap               (ARENA_SIZE)
//!   VM_REGIONS_VA      AIX vm_att / io_att regions   (VM_REGIONS × VM_REGION_SIZE)
//! ```
//!
//! The split between user and kernel addresses is the VMM's bookkeeping: the
//! guest code runs at CPL3 in both, so the U/S bit cannot carry it.

/// Size of a page and of a guest frame.
pub const PAGE_SIZE: u64 = 0x1000;
/// `log2(PAGE_SIZE)`.
pub const PAGE_SHIFT: u32 = 12;

// ---- guest-physical ----

/// The GDT.
pub const GDT_GPA: u64 = 0x0000_1000;
/// The IDT (256 16-byte gates fill the frame).
pub const IDT_GPA: u64 = 0x0000_2000;
/// The boot-info page ([`BootInfo`](crate::BootInfo)).
pub const BOOT_INFO_GPA: u64 = 0x0000_3000;
/// The TSS and its I/O permission bitmap (three frames).
pub const TSS_GPA: u64 = 0x0000_4000;
/// Frames of the TSS and its I/O permission bitmap.
pub const TSS_FRAMES: u64 = 3;
/// First per-vCPU page; vCPU `n` has the frame `VCPU_PAGES_GPA + n * PAGE_SIZE`.
pub const VCPU_PAGES_GPA: u64 = 0x0001_0000;
/// Frames the VMM builds page tables in.
pub const PAGE_TABLES_GPA: u64 = 0x0010_0000;
/// Size of the page-table pool (256 tables).
pub const PAGE_TABLES_SIZE: u64 = 0x0010_0000;
/// Lowest guest-physical address of the guest image.
pub const IMAGE_GPA: u64 = 0x0020_0000;
/// End (exclusive) of the image region: the main image and the modules.
pub const IMAGE_GPA_END: u64 = 0x0100_0000;
/// First guest-physical address of the module region, `MODULES_GPA..IMAGE_GPA_END`:
/// the main image must end by here, and guest modules (`kmemvisor run --module`)
/// are loaded above, each linked at a fixed slot so that none needs relocating.
pub const MODULES_GPA: u64 = 0x0080_0000;
/// Size of one module slot; a module larger than this also takes the slots after its own.
pub const MODULE_SLOT_SIZE: u64 = 0x0010_0000;
/// Number of module slots (and most modules one VM loads).
pub const MODULE_SLOTS: usize = ((IMAGE_GPA_END - MODULES_GPA) / MODULE_SLOT_SIZE) as usize;
/// Frames of the vCPU stacks; vCPU `n` uses `STACKS_GPA + n * STACK_SIZE`.
pub const STACKS_GPA: u64 = 0x0100_0000;
/// Size of one vCPU stack.
pub const STACK_SIZE: u64 = 0x0001_0000;
/// First frame that no fixed region uses.
pub const FREE_RAM_GPA: u64 = STACKS_GPA + crate::MAX_VCPUS as u64 * STACK_SIZE;
/// Smallest guest RAM: the fixed regions plus room to allocate.
pub const MIN_RAM_SIZE: u64 = 0x0200_0000;
/// Largest guest RAM: it must end below the device window.
pub const MAX_RAM_SIZE: u64 = 0xc000_0000;
/// Guest RAM size when none is given.
pub const DEFAULT_RAM_SIZE: u64 = 0x0400_0000;
/// Guest-physical base of the MMIO device window.
pub const DEVICE_WINDOW_GPA: u64 = 0xd000_0000;
/// Size of the device window.
pub const DEVICE_WINDOW_SIZE: u64 = 0x1000_0000;

// ---- guest-virtual ----

/// First user address (the page below stays unmapped to catch null pointers).
pub const USER_START: u64 = 0x0000_0000_0001_0000;
/// End (exclusive) of user addresses: the top of the canonical low half.
pub const USER_END: u64 = 0x0000_8000_0000_0000;
/// First kernel address: the bottom of the canonical high half.
pub const KERNEL_START: u64 = 0xffff_8000_0000_0000;
/// Where the VMM places DG/UX wired kernel memory.
pub const WIRED_ARENA_VA: u64 = 0xffff_c000_0000_0000;
/// Where the VMM places DG/UX unwired kernel memory.
pub const UNWIRED_ARENA_VA: u64 = 0xffff_d000_0000_0000;
/// Virtual size of each arena.
pub const ARENA_SIZE: u64 = 1 << 40;
/// Where the VMM places the AIX pageable kernel heap.
pub const KERNEL_HEAP_VA: u64 = 0xffff_e000_0000_0000;
/// Where the VMM places the AIX pinned kernel heap.
pub const PINNED_HEAP_VA: u64 = 0xffff_e800_0000_0000;
/// Where the AIX `vm_att` and `io_att` regions start: [`VM_REGIONS`] fixed
/// slots of [`VM_REGION_SIZE`], each mapping one object or device window.
pub const VM_REGIONS_VA: u64 = 0xffff_f000_0000_0000;
/// Size of one region: an AIX segment (256 MiB).
pub const VM_REGION_SIZE: u64 = 1 << 28;
/// Number of regions; an attach with none free halts the VM (AIX panics).
pub const VM_REGIONS: u64 = 16;

/// Base of the vCPU stack slots.
pub const STACKS_VA: u64 = 0xffff_ffff_7000_0000;
/// Virtual size of one vCPU's stack slot: a guard of the stack's size, then the stack.
pub const STACK_SLOT: u64 = 2 * STACK_SIZE;
/// Base of the per-vCPU pages.
pub const VCPU_PAGES_VA: u64 = 0xffff_ffff_7f00_0000;
/// Where the GDT frame is mapped; the IDT frame follows.
pub const SYSTEM_TABLES_VA: u64 = 0xffff_ffff_7ff0_0000;
/// Where the boot-info page is mapped (read-only).
pub const BOOT_INFO_VA: u64 = SYSTEM_TABLES_VA + 2 * PAGE_SIZE;
/// Where the TSS frames are mapped (supervisor-only: the CPU reads its I/O bitmap).
pub const TSS_VA: u64 = SYSTEM_TABLES_VA + 3 * PAGE_SIZE;
/// Image virtual address minus image physical address.
pub const IMAGE_VA_OFFSET: u64 = 0xffff_ffff_8000_0000;
/// Guest-virtual address of the first byte of the image (its [`ImageHeader`](crate::ImageHeader)).
pub const IMAGE_VA: u64 = IMAGE_VA_OFFSET + IMAGE_GPA;
/// Guest-virtual address of the module region (the images' offset applies).
pub const MODULES_VA: u64 = IMAGE_VA_OFFSET + MODULES_GPA;

// The regions follow the pinned heap, share one top-level entry and end
// far below the stacks.
const _: () = assert!(PINNED_HEAP_VA + ARENA_SIZE <= VM_REGIONS_VA);
const _: () = assert!(VM_REGIONS * VM_REGION_SIZE <= 1 << 39 && VM_REGIONS_VA.is_multiple_of(1 << 39));
const _: () = assert!(VM_REGIONS_VA + VM_REGIONS * VM_REGION_SIZE <= STACKS_VA);
// The user regions are the top of the user half.
const _: () = assert!(USER_REGIONS_VA > USER_START && USER_REGIONS_VA.is_multiple_of(VM_REGION_SIZE));
// The system pages do not run into each other or into the image.
const _: () = assert!(BOOT_INFO_VA + PAGE_SIZE <= TSS_VA);
const _: () = assert!(TSS_VA + TSS_FRAMES * PAGE_SIZE <= IMAGE_VA);
// The module slots tile the top of the image region exactly.
const _: () = assert!(IMAGE_GPA < MODULES_GPA && MODULES_GPA.is_multiple_of(MODULE_SLOT_SIZE));
const _: () = assert!(MODULES_GPA + MODULE_SLOTS as u64 * MODULE_SLOT_SIZE == IMAGE_GPA_END);

/// Guest-physical address of module slot `n` (0 ≤ n < [`MODULE_SLOTS`]).
pub const fn module_slot_gpa(n: u64) -> u64 {
    MODULES_GPA + n * MODULE_SLOT_SIZE
}

/// Guest-virtual address of module slot `n`, where a module linked for it starts.
pub const fn module_slot_va(n: u64) -> u64 {
    IMAGE_VA_OFFSET + module_slot_gpa(n)
}

/// Where the AIX `as_att64`/`as_seth64` regions of a process start: the
/// top [`VM_REGIONS`] × [`VM_REGION_SIZE`] of the user half, which
/// `process_map` leaves alone.
pub const USER_REGIONS_VA: u64 = USER_END - VM_REGIONS * VM_REGION_SIZE;

/// Guest-virtual address of a process's `as_att64` region `n` (0 ≤ n < [`VM_REGIONS`]).
pub const fn user_region_va(n: u64) -> u64 {
    USER_REGIONS_VA + n * VM_REGION_SIZE
}

/// Guest-virtual address of `vm_att`/`io_att` region `n` (0 ≤ n < [`VM_REGIONS`]).
pub const fn vm_region_va(n: u64) -> u64 {
    VM_REGIONS_VA + n * VM_REGION_SIZE
}

/// Guest-virtual address of vCPU `n`'s page.
pub const fn vcpu_page_va(n: u64) -> u64 {
    VCPU_PAGES_VA + n * PAGE_SIZE
}

/// Guest-physical address of vCPU `n`'s page.
pub const fn vcpu_page_gpa(n: u64) -> u64 {
    VCPU_PAGES_GPA + n * PAGE_SIZE
}

/// Lowest address of vCPU `n`'s stack; the guard page range lies just below.
pub const fn stack_bottom(n: u64) -> u64 {
    STACKS_VA + n * STACK_SLOT + (STACK_SLOT - STACK_SIZE)
}

/// The initial stack pointer of vCPU `n` (16-byte aligned).
pub const fn stack_top(n: u64) -> u64 {
    STACKS_VA + (n + 1) * STACK_SLOT
}

/// Guest-physical address of vCPU `n`'s stack frames.
pub const fn stack_gpa(n: u64) -> u64 {
    STACKS_GPA + n * STACK_SIZE
}

/// Whether `va` is in a user address range.
pub const fn is_user_address(va: u64) -> bool {
    va >= USER_START && va < USER_END
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_VCPUS;

    #[test]
    fn physical_regions_are_ordered_page_aligned_and_disjoint() {
        let last_vcpu_page_end = vcpu_page_gpa(MAX_VCPUS as u64);
        let bounds = [
            GDT_GPA,
            IDT_GPA,
            BOOT_INFO_GPA,
            TSS_GPA,
            TSS_GPA + TSS_FRAMES * PAGE_SIZE,
            VCPU_PAGES_GPA,
            last_vcpu_page_end,
            PAGE_TABLES_GPA,
            PAGE_TABLES_GPA + PAGE_TABLES_SIZE,
            IMAGE_GPA,
            MODULES_GPA,
            module_slot_gpa(MODULE_SLOTS as u64 - 1),
            IMAGE_GPA_END,
            STACKS_GPA,
            FREE_RAM_GPA,
            MIN_RAM_SIZE,
            MAX_RAM_SIZE,
            DEVICE_WINDOW_GPA,
        ];
        for pair in bounds.windows(2) {
            assert!(pair[0] <= pair[1], "{:#x} > {:#x}", pair[0], pair[1]);
        }
        for b in bounds {
            assert_eq!(b % PAGE_SIZE, 0, "{b:#x}");
        }
    }

    #[test]
    fn stacks_have_guards_and_do_not_touch_each_other() {
        for n in 0..MAX_VCPUS as u64 {
            assert_eq!(stack_top(n) - stack_bottom(n), STACK_SIZE);
            assert_eq!(stack_top(n) % 16, 0);
            if n > 0 {
                assert_eq!(stack_bottom(n) - stack_top(n - 1), STACK_SLOT - STACK_SIZE);
            }
        }
        assert!(stack_top(MAX_VCPUS as u64 - 1) <= VCPU_PAGES_VA);
    }

    #[test]
    fn virtual_regions_are_kernel_and_ordered() {
        let regions = [
            KERNEL_START,
            WIRED_ARENA_VA,
            WIRED_ARENA_VA + ARENA_SIZE,
            UNWIRED_ARENA_VA,
            UNWIRED_ARENA_VA + ARENA_SIZE,
            KERNEL_HEAP_VA,
            KERNEL_HEAP_VA + ARENA_SIZE,
            PINNED_HEAP_VA,
            PINNED_HEAP_VA + ARENA_SIZE,
            vm_region_va(0),
            vm_region_va(VM_REGIONS),
            STACKS_VA,
            VCPU_PAGES_VA,
            SYSTEM_TABLES_VA,
            IMAGE_VA,
        ];
        for pair in regions.windows(2) {
            assert!(pair[0] <= pair[1]);
        }
        for va in regions {
            assert!(va >= KERNEL_START && !is_user_address(va));
        }
        assert!(vcpu_page_va(MAX_VCPUS as u64) <= SYSTEM_TABLES_VA);
    }

    #[test]
    fn user_range_is_the_canonical_low_half_minus_the_null_region() {
        assert!(!is_user_address(0));
        assert!(!is_user_address(USER_START - 1));
        assert!(is_user_address(USER_START));
        assert!(is_user_address(USER_END - 1));
        assert!(!is_user_address(USER_END));
        assert!(!is_user_address(KERNEL_START));
    }
}
