//! Capturing a vCPU's stack when something is reported: the instruction and
//! the return addresses found by following the frame pointers.
//!
//! The guests are built with frame pointers (`guest/.cargo/config.toml`,
//! the C SDK's flags): each frame starts with the caller's RBP, and the
//! return address lies just above it. A function without a frame of its own
//! (a leaf that GCC leaves frameless whatever the flags say, such as the C
//! runtime's service wrappers, or Rust's prebuilt `memcpy`) would hide its
//! caller from that walk: its return address is still at RSP, which is
//! recognised by the direct `call` just before it (`leaf_return`). The frames are read from guest memory through the VMM's own
//! page tables, as the guest could read them, with bounds-checked reads
//! only; the walk stops at the first frame pointer that is zero, misaligned,
//! not canonical, not mapped for the guest, or not above the one before
//! (the stack grows down, so a caller's frame is always higher), and after
//! [`MAX_FRAMES`] addresses.

use crate::memory_model::ram::{GuestMemoryMmap, load_word};

use crate::memory_model::guest_access;
use crate::memory_model::paging::{AddressSpace, PteFlags, Walker, is_canonical};

/// The most addresses captured: the instruction and 15 callers.
pub const MAX_FRAMES: usize = 16;

/// How far into a frameless function the instruction may be: a leaf is short.
const LEAF_MAX: u64 = 4096;

/// The opcode of `call rel32`.
const CALL_REL32: u8 = 0xe8;

/// `rip`, then the return address of each frame from `rbp` on (`rsp`'s
/// first, when the function at `rip` has no frame of its own).
pub fn capture(memory: &GuestMemoryMmap, space: &AddressSpace, rip: u64, rsp: u64, rbp: u64) -> Vec<u64> {
    captured_above(memory, space, rip, rsp, rbp, 0)
}

/// As [`capture`], at most `stack.len()` addresses, into `stack` (the rest
/// of it left as it is); how many: what an allocation keeps, read on every
/// call, so the walk stops early and nothing is allocated.
pub fn capture_into(memory: &GuestMemoryMmap, space: &AddressSpace, rip: u64, rsp: u64, rbp: u64, stack: &mut [u64]) -> usize {
    let max = stack.len().min(MAX_FRAMES);
    capture_above(memory, space, rip, rsp, rbp, 0, &mut stack[..max])
}

/// The stack of a CPU exception at `rip` with the stack pointer `rsp`, from
/// the handler's `rbp`: the handler runs on the stack that faulted, below
/// `rsp`, so its frames (the firmware's vector stub, the report call) are
/// those below `rsp` and are left out; the first frame at or above it is the
/// faulting function's, whose return address leads to its caller.
pub fn capture_exception(memory: &GuestMemoryMmap, space: &AddressSpace, rip: u64, rsp: u64, rbp: u64) -> Vec<u64> {
    captured_above(memory, space, rip, rsp, rbp, rsp)
}

/// [`capture_above`] of up to [`MAX_FRAMES`] addresses, as a vector.
fn captured_above(memory: &GuestMemoryMmap, space: &AddressSpace, rip: u64, rsp: u64, rbp: u64, floor: u64) -> Vec<u64> {
    let mut stack = [0; MAX_FRAMES];
    let n = capture_above(memory, space, rip, rsp, rbp, floor, &mut stack);
    stack[..n].to_vec()
}

/// Writes `rip`, the return address at `rsp` when the function at `rip`
/// has no frame, then the return addresses of the frames from `rbp` on
/// that lie at or above `floor`, into `stack` until it is full; how many.
fn capture_above(
    memory: &GuestMemoryMmap,
    space: &AddressSpace,
    rip: u64,
    rsp: u64,
    rbp: u64,
    floor: u64,
    stack: &mut [u64],
) -> usize {
    let Some(first) = stack.first_mut() else { return 0 };
    *first = rip;
    let mut n = 1;
    let mut reader = Reader::new(memory, space);
    if let Some(slot) = stack.get_mut(1)
        && let Some(ret) = leaf_return(&mut reader, rip, rsp)
    {
        *slot = ret;
        n = 2;
    }
    let mut frame = rbp;
    let mut walked = 0;
    while n < stack.len() && walked < 2 * MAX_FRAMES && frame != 0 && frame.is_multiple_of(8) && is_canonical(frame) {
        walked += 1;
        let Some((caller_frame, ret)) = read_frame(&mut reader, frame) else { break };
        if ret == 0 || !is_canonical(ret) {
            break;
        }
        if frame >= floor {
            stack[n] = ret;
            n += 1;
        }
        if caller_frame <= frame {
            break;
        }
        frame = caller_frame;
    }
    n
}

/// Guest memory as the guest reads it at CPL3, through the VMM's page
/// tables: one walker for the stack and one for code, so that each keeps
/// its last page table (an allocation's origin is read on every call).
struct Reader<'a> {
    memory: &'a GuestMemoryMmap,
    stack: Walker<'a>,
    code: Walker<'a>,
}

impl<'a> Reader<'a> {
    fn new(memory: &'a GuestMemoryMmap, space: &'a AddressSpace) -> Reader<'a> {
        Reader { memory, stack: Walker::new(memory, space), code: Walker::new(memory, space) }
    }

    /// The 8-aligned stack word at `va`, if the guest may read it: one
    /// load, where [`Reader::read`]'s copy costs several times as much (the
    /// words of an origin are read on every get).
    fn stack_word(&mut self, va: u64) -> Option<u64> {
        let t = self.stack.translate(va).filter(|t| t.flags.contains(PteFlags::USER))?;
        load_word(self.memory, t.gpa)
    }

    /// `N` bytes at `va` (`code`: through the code walker), if the guest may read them all.
    fn read<const N: usize>(&mut self, va: u64, code: bool) -> Option<[u8; N]> {
        let walker = if code { &mut self.code } else { &mut self.stack };
        let mut out = [0u8; N];
        guest_access::read_into(self.memory, |address| walker.translate(address), va, &mut out).ok()?;
        Some(out)
    }
}

/// The return address at `rsp` if the function at `rip` has pushed nothing:
/// the word there follows a direct `call` to an address at or before `rip`
/// and less than `LEAF_MAX` before it. In a function with a frame, the word
/// at RSP is a local or a saved register, which is not such an address.
fn leaf_return(reader: &mut Reader<'_>, rip: u64, rsp: u64) -> Option<u64> {
    let ret = if rsp.is_multiple_of(8) { reader.stack_word(rsp)? } else { u64::from_le_bytes(reader.read::<8>(rsp, false)?) };
    // Most words at RSP are locals, far from any code: their bytes are not read.
    if !within_call_reach(ret, rip) {
        return None;
    }
    let [opcode, offset @ ..] = reader.read::<5>(ret.checked_sub(5)?, true)?;
    let target = ret.wrapping_add_signed(i64::from(i32::from_le_bytes(offset)));
    (opcode == CALL_REL32 && target <= rip && rip - target < LEAF_MAX).then_some(ret)
}

/// Whether a `call rel32` that returns to `ret` can have a target at most
/// `LEAF_MAX` bytes before `rip`: its target is `ret` plus a 32-bit signed
/// displacement (modulo 2^64), so `rip - ret`, taken as signed, lies in
/// [-2^31, 2^31 - 1 + LEAF_MAX - 1].
fn within_call_reach(ret: u64, rip: u64) -> bool {
    let distance = rip.wrapping_sub(ret) as i64;
    (i64::from(i32::MIN)..i64::from(i32::MAX) + LEAF_MAX as i64).contains(&distance)
}

/// The saved RBP and the return address of the frame at `frame` (8-aligned).
fn read_frame(reader: &mut Reader<'_>, frame: u64) -> Option<(u64, u64)> {
    Some((reader.stack_word(frame)?, reader.stack_word(frame.checked_add(8)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_model::paging::{PteFlags, TablePool};
    use crate::memory_model::ram::GuestRam;
    use vm_memory::{Bytes, GuestAddress};

    const STACK_VA: u64 = 0xffff_c000_0000_0000;
    const STACK_GPA: u64 = 0x50_0000;
    const CODE_VA: u64 = 0xffff_ffff_8020_0000;
    const CODE_GPA: u64 = 0x60_0000;

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
        space.map(ram.memory(), &mut pool, CODE_VA, CODE_GPA, PteFlags::USER).expect("map code");
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
        let stack = capture(m, &space, 0xffff_ffff_8020_0000, 0, STACK_VA + 0x100);
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
    fn a_frameless_function_s_return_address_is_taken_from_rsp() {
        let (ram, space) = setup(PteFlags::USER | PteFlags::WRITABLE);
        let m = ram.memory();
        // At CODE_VA + 0x100: `call CODE_VA + 0x800`, returning to CODE_VA + 0x105.
        let call = [0xe8, 0xfb, 0x06, 0x00, 0x00];
        m.write_slice(&call, GuestAddress(CODE_GPA + 0x100)).expect("code");
        let ret = CODE_VA + 0x105;
        words(m, STACK_VA + 0x80, &[ret]);
        words(m, STACK_VA + 0x100, &[0, 0xffff_ffff_8020_3333]);
        let leaf = CODE_VA + 0x810;
        assert_eq!(capture(m, &space, leaf, STACK_VA + 0x80, STACK_VA + 0x100), vec![leaf, ret, 0xffff_ffff_8020_3333]);
        // Not taken: an instruction before the call's target, or too far past it, or a word not after a call.
        for rip in [CODE_VA + 0x7ff, CODE_VA + 0x800 + LEAF_MAX] {
            assert_eq!(capture(m, &space, rip, STACK_VA + 0x80, STACK_VA + 0x100), vec![rip, 0xffff_ffff_8020_3333]);
        }
        words(m, STACK_VA + 0x80, &[ret + 1]);
        assert_eq!(capture(m, &space, leaf, STACK_VA + 0x80, STACK_VA + 0x100), vec![leaf, 0xffff_ffff_8020_3333]);
    }

    #[test]
    fn a_call_reaches_from_2_gib_before_its_return_to_2_gib_after_plus_a_leaf() {
        let ret = 0xffff_c000_0020_0105u64;
        let (lowest, highest) = (ret - (1 << 31), ret + (1 << 31) - 1 + LEAF_MAX - 1);
        for (rip, reach) in [(lowest, true), (lowest - 1, false), (highest, true), (highest + 1, false), (ret, true)] {
            assert_eq!(within_call_reach(ret, rip), reach, "rip {rip:#x}");
        }
        // The target wraps modulo 2^64, as the CPU computes it.
        assert!(within_call_reach(0x10, 0xffff_ffff_ffff_fff0));
        assert!(!within_call_reach(0x10, 0x8000_0000_0000_0000));
        // Every displacement's target, and the leaf's whole reach past it, is within reach.
        for rel in [i32::MIN, -1, 0, i32::MAX] {
            let target = ret.wrapping_add_signed(i64::from(rel));
            for rip in [target, target + LEAF_MAX - 1] {
                assert!(within_call_reach(ret, rip), "rel {rel:#x} rip {rip:#x}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn every_call_that_leaf_return_takes_is_within_reach(ret: u64, rel: i32, past in 0..2 * LEAF_MAX) {
            let target = ret.wrapping_add_signed(i64::from(rel));
            let rip = target.wrapping_add(past);
            let taken = target <= rip && rip - target < LEAF_MAX;
            proptest::prop_assert!(!taken || within_call_reach(ret, rip));
        }
    }

    #[test]
    fn a_return_address_at_an_unaligned_rsp_is_read_as_well() {
        let (ram, space) = setup(PteFlags::USER | PteFlags::WRITABLE);
        let m = ram.memory();
        m.write_slice(&[0xe8, 0xfb, 0x06, 0x00, 0x00], GuestAddress(CODE_GPA + 0x100)).expect("code");
        let ret = CODE_VA + 0x105;
        m.write_obj(ret, GuestAddress(STACK_GPA + 0x84)).expect("return address");
        let leaf = CODE_VA + 0x810;
        assert_eq!(capture(m, &space, leaf, STACK_VA + 0x84, 0), vec![leaf, ret]);
    }

    #[test]
    fn bad_frame_pointers_end_the_walk() {
        let (ram, space) = setup(PteFlags::USER | PteFlags::WRITABLE);
        let m = ram.memory();
        // A loop (a frame pointing at itself), a frame pointing down, a non-canonical return.
        words(m, STACK_VA + 0x100, &[STACK_VA + 0x100, 0x1111]);
        assert_eq!(capture(m, &space, 1, 0, STACK_VA + 0x100), vec![1, 0x1111]);
        words(m, STACK_VA + 0x200, &[STACK_VA + 0x180, 0x2222]);
        assert_eq!(capture(m, &space, 1, 0, STACK_VA + 0x200), vec![1, 0x2222]);
        words(m, STACK_VA + 0x300, &[STACK_VA + 0x400, 0x8000_0000_0000_0000]);
        assert_eq!(capture(m, &space, 1, 0, STACK_VA + 0x300), vec![1]);
        // Unmapped, misaligned, non-canonical, zero.
        for rbp in [STACK_VA + 0x1000, STACK_VA + 0x104, 0x8000_0000_0000_0000, 0] {
            assert_eq!(capture(m, &space, 1, 0, rbp), vec![1], "rbp {rbp:#x}");
        }
        // A frame whose second word crosses into an unmapped page.
        assert_eq!(capture(m, &space, 1, 0, STACK_VA + 0xff8), vec![1]);
    }

    #[test]
    fn the_walk_stops_after_max_frames_and_reads_only_guest_pages() {
        let (ram, space) = setup(PteFlags::USER | PteFlags::WRITABLE);
        let m = ram.memory();
        for i in 0..64u64 {
            words(m, STACK_VA + 0x10 * i, &[STACK_VA + 0x10 * (i + 1), 0x1000 + i]);
        }
        assert_eq!(capture(m, &space, 1, 0, STACK_VA).len(), MAX_FRAMES);
        let (ram, space) = setup(PteFlags::WRITABLE);
        words(ram.memory(), STACK_VA, &[STACK_VA + 0x10, 0x1000]);
        assert_eq!(capture(ram.memory(), &space, 1, 0, STACK_VA), vec![1], "a page the guest cannot read is not read");
    }
}
