//! Capturing a vCPU's stack when something is reported: the instruction and
//! the return addresses found by following the frame pointers.
//!
//! The guests are built with frame pointers (`guest/.cargo/config.toml`):
//! each frame starts with the caller's RBP, and the return address lies just
//! above it. The frames are read from guest memory through the VMM's own
//! page tables, as the guest could read them, with bounds-checked reads
//! only; the walk stops at the first frame pointer that is zero, misaligned,
//! not canonical, not mapped for the guest, or not above the one before
//! (the stack grows down, so a caller's frame is always higher), and after
//! [`MAX_FRAMES`] addresses.

use vm_memory::GuestMemoryMmap;

use crate::memory_model::guest_access;
use crate::memory_model::paging::{AddressSpace, is_canonical};

/// The most addresses captured: the instruction and 15 callers.
pub const MAX_FRAMES: usize = 16;

/// `rip`, then the return address of each frame from `rbp` on.
pub fn capture(memory: &GuestMemoryMmap, space: &AddressSpace, rip: u64, rbp: u64) -> Vec<u64> {
    capture_above(memory, space, rip, rbp, 0)
}

/// The stack of a CPU exception at `rip` with the stack pointer `rsp`, from
/// the handler's `rbp`: the handler runs on the stack that faulted, below
/// `rsp`, so its frames (the firmware's vector stub, the report call) are
/// those below `rsp` and are left out; the first frame at or above it is the
/// faulting function's, whose return address leads to its caller.
pub fn capture_exception(memory: &GuestMemoryMmap, space: &AddressSpace, rip: u64, rsp: u64, rbp: u64) -> Vec<u64> {
    capture_above(memory, space, rip, rbp, rsp)
}

/// `rip`, then the return addresses of the frames from `rbp` on that lie at
/// or above `floor`.
fn capture_above(memory: &GuestMemoryMmap, space: &AddressSpace, rip: u64, rbp: u64, floor: u64) -> Vec<u64> {
    let mut stack = vec![rip];
    let mut frame = rbp;
    let mut walked = 0;
    while stack.len() < MAX_FRAMES && walked < 2 * MAX_FRAMES && frame != 0 && frame.is_multiple_of(8) && is_canonical(frame) {
        walked += 1;
        let Some((caller_frame, ret)) = read_frame(memory, space, frame) else { break };
        if ret == 0 || !is_canonical(ret) {
            break;
        }
        if frame >= floor {
            stack.push(ret);
        }
        if caller_frame <= frame {
            break;
        }
        frame = caller_frame;
    }
    stack
}

/// The saved RBP and the return address of the frame at `frame`.
fn read_frame(memory: &GuestMemoryMmap, space: &AddressSpace, frame: u64) -> Option<(u64, u64)> {
    let bytes = guest_access::read(memory, space, frame, 16).ok()?;
    let word = |at: usize| bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    Some((word(0)?, word(8)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_model::paging::{PteFlags, TablePool};
    use crate::memory_model::ram::GuestRam;
    use vm_memory::{Bytes, GuestAddress};

    const STACK_VA: u64 = 0xffff_c000_0000_0000;
    const STACK_GPA: u64 = 0x50_0000;

    fn words(memory: &GuestMemoryMmap, at: u64, values: &[u64]) {
        for (i, v) in values.iter().enumerate() {
            memory.write_obj(*v, GuestAddress(STACK_GPA + at - STACK_VA + 8 * i as u64)).expect("write");
        }
    }

    fn setup(flags: PteFlags) -> (GuestRam, AddressSpace) {
        let ram = GuestRam::new(kmemvisor_abi::layout::MIN_RAM_SIZE).expect("ram");
        let mut pool = TablePool::new();
        let space = AddressSpace::new(ram.memory(), &mut pool).expect("space");
        space.map(ram.memory(), &mut pool, STACK_VA, STACK_GPA, flags).expect("map");
        (ram, space)
    }

    #[test]
    fn the_walk_follows_rbp_to_the_outermost_frame() {
        let (ram, space) = setup(PteFlags::USER | PteFlags::WRITABLE);
        let m = ram.memory();
        // Three frames: each holds the next frame pointer and a return address; the last ends with 0.
        words(m, STACK_VA + 0x100, &[STACK_VA + 0x200, 0xffff_ffff_8020_1111]);
        words(m, STACK_VA + 0x200, &[STACK_VA + 0x300, 0xffff_ffff_8020_2222]);
        words(m, STACK_VA + 0x300, &[0, 0xffff_ffff_8020_3333]);
        let stack = capture(m, &space, 0xffff_ffff_8020_0000, STACK_VA + 0x100);
        assert_eq!(stack, vec![0xffff_ffff_8020_0000, 0xffff_ffff_8020_1111, 0xffff_ffff_8020_2222, 0xffff_ffff_8020_3333]);
    }

    #[test]
    fn an_exception_leaves_out_the_frames_of_its_handler() {
        let (ram, space) = setup(PteFlags::USER | PteFlags::WRITABLE);
        let m = ram.memory();
        // The handler's two frames lie below the faulting RSP (0x300), the faulting function's above it.
        words(m, STACK_VA + 0x100, &[STACK_VA + 0x200, 0xffff_ffff_8020_1111]);
        words(m, STACK_VA + 0x200, &[STACK_VA + 0x380, 0xffff_ffff_8020_2222]);
        words(m, STACK_VA + 0x380, &[0, 0xffff_ffff_8020_3333]);
        let stack = capture_exception(m, &space, 0xffff_ffff_8020_0000, STACK_VA + 0x300, STACK_VA + 0x100);
        assert_eq!(stack, vec![0xffff_ffff_8020_0000, 0xffff_ffff_8020_3333]);
    }

    #[test]
    fn bad_frame_pointers_end_the_walk() {
        let (ram, space) = setup(PteFlags::USER | PteFlags::WRITABLE);
        let m = ram.memory();
        // A loop (a frame pointing at itself), a frame pointing down, a non-canonical return.
        words(m, STACK_VA + 0x100, &[STACK_VA + 0x100, 0x1111]);
        assert_eq!(capture(m, &space, 1, STACK_VA + 0x100), vec![1, 0x1111]);
        words(m, STACK_VA + 0x200, &[STACK_VA + 0x180, 0x2222]);
        assert_eq!(capture(m, &space, 1, STACK_VA + 0x200), vec![1, 0x2222]);
        words(m, STACK_VA + 0x300, &[STACK_VA + 0x400, 0x8000_0000_0000_0000]);
        assert_eq!(capture(m, &space, 1, STACK_VA + 0x300), vec![1]);
        // Unmapped, misaligned, non-canonical, zero.
        for rbp in [STACK_VA + 0x1000, STACK_VA + 0x104, 0x8000_0000_0000_0000, 0] {
            assert_eq!(capture(m, &space, 1, rbp), vec![1], "rbp {rbp:#x}");
        }
        // A frame whose second word crosses into an unmapped page.
        assert_eq!(capture(m, &space, 1, STACK_VA + 0xff8), vec![1]);
    }

    #[test]
    fn the_walk_stops_after_max_frames_and_reads_only_guest_pages() {
        let (ram, space) = setup(PteFlags::USER | PteFlags::WRITABLE);
        let m = ram.memory();
        for i in 0..64u64 {
            words(m, STACK_VA + 0x10 * i, &[STACK_VA + 0x10 * (i + 1), 0x1000 + i]);
        }
        assert_eq!(capture(m, &space, 1, STACK_VA).len(), MAX_FRAMES);
        let (ram, space) = setup(PteFlags::WRITABLE);
        words(ram.memory(), STACK_VA, &[STACK_VA + 0x10, 0x1000]);
        assert_eq!(capture(ram.memory(), &space, 1, STACK_VA), vec![1], "a page the guest cannot read is not read");
    }
}
