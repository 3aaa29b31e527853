//! The CPU state the VMM gives every vCPU: descriptor tables and registers.
//!
//! The guest runs in 64-bit mode at CPL3 with IOPL 3 (docs/ENVIRONMENT.md: CPL0 guest
//! code is emulated on this host, CPL3 runs natively; IOPL 3 lets CPL3 make the
//! `out` of a hypercall). There is no CPL0 code at all: the IDT's gates lead to
//! the firmware's vectors through the *user* code segment, so an exception is
//! delivered at CPL3 on the current stack, without a stack switch.
//!
//! The TSS matters for one thing: its I/O permission bitmap. KVM on PVM hosts
//! runs CPL3 guest code with the hardware IOPL at 0 whatever the guest's RFLAGS
//! say, so the CPU checks the bitmap for every `out`; an all-zero bitmap lets
//! every port through there, while VMX/SVM honour IOPL 3 and never look at it.

use kmemvisor_abi::image::{VECTOR_COUNT, VECTOR_STRIDE};
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

/// GDT selector of the 64-bit user code segment (index 1, RPL 3).
pub const USER_CODE_SELECTOR: u16 = 0x08 | 3;
/// GDT selector of the user data segment (index 2, RPL 3).
pub const USER_DATA_SELECTOR: u16 = 0x10 | 3;
/// GDT selector of the TSS (index 3; a 16-byte descriptor).
pub const TSS_SELECTOR: u16 = 0x18;
/// Bytes of the GDT: null, code, data, and the two halves of the TSS descriptor.
const GDT_SIZE: u64 = 5 * 8;
/// Bytes of a 64-bit TSS without its I/O bitmap.
const TSS_SIZE: u64 = 104;
/// Bytes of an I/O permission bitmap for all 65,536 ports, plus the all-ones
/// byte the CPU requires after it.
const IO_BITMAP_SIZE: u64 = 65536 / 8 + 1;
/// The TSS limit: its last byte, the bitmap's terminator.
const TSS_LIMIT: u64 = TSS_SIZE + IO_BITMAP_SIZE - 1;
const _: () = assert!(TSS_LIMIT < layout::TSS_FRAMES * PAGE_SIZE);

/// Access rights of the code segment: present, DPL 3, code, readable, accessed.
const CODE_ACCESS: u64 = 0xfb;
/// Access rights of the data segment: present, DPL 3, data, writable, accessed.
const DATA_ACCESS: u64 = 0xf3;
/// Flags of the code segment: granularity 4 KiB, long mode.
const CODE_FLAGS: u64 = 0xa;
/// Flags of the data segment: granularity 4 KiB, 32-bit.
const DATA_FLAGS: u64 = 0xc;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;
/// RFLAGS: the always-one bit and IOPL 3; interrupts off.
pub const INITIAL_RFLAGS: u64 = 0x2 | (3 << 12);

/// Vectors whose gate CPL3 may invoke with `int3` / `into`.
const USER_INVOCABLE_VECTORS: [usize; 2] = [3, 4];

fn segment_descriptor(access: u64, flags: u64) -> u64 {
    // Base 0, limit 0xfffff: only access rights and flags matter in 64-bit mode.
    0xffff | (access << 40) | (0xf << 48) | (flags << 52)
}

/// The GDT frame, placed at [`layout::GDT_GPA`] and mapped at
/// [`layout::SYSTEM_TABLES_VA`].
pub fn gdt_frame() -> Vec<u8> {
    let mut frame = vec![0u8; PAGE_SIZE as usize];
    let tss_base = layout::TSS_VA;
    let tss_low = (TSS_LIMIT & 0xffff)
        | ((tss_base & 0xff_ffff) << 16)
        | (((TSS_LIMIT >> 16) & 0xf) << 48)
        | (0x89 << 40) // present, available 64-bit TSS
        | (((tss_base >> 24) & 0xff) << 56);
    let entries =
        [0, segment_descriptor(CODE_ACCESS, CODE_FLAGS), segment_descriptor(DATA_ACCESS, DATA_FLAGS), tss_low, tss_base >> 32];
    for (i, entry) in entries.iter().enumerate() {
        frame[i * 8..i * 8 + 8].copy_from_slice(&entry.to_le_bytes());
    }
    frame
}

/// The TSS frames, placed at [`layout::TSS_GPA`] and mapped at [`layout::TSS_VA`]:
/// no stacks (there is no privilege change), and an I/O bitmap that allows
/// every port (see the module documentation).
pub fn tss_frames() -> Vec<u8> {
    let mut frames = vec![0u8; (layout::TSS_FRAMES * PAGE_SIZE) as usize];
    frames[102..104].copy_from_slice(&(TSS_SIZE as u16).to_le_bytes());
    frames[TSS_LIMIT as usize] = 0xff;
    frames
}

/// The IDT frame: gate `n` leads to `vectors + n * VECTOR_STRIDE` in the user
/// code segment.
pub fn idt_frame(vectors: u64) -> Vec<u8> {
    let mut frame = vec![0u8; PAGE_SIZE as usize];
    for n in 0..VECTOR_COUNT {
        let target = vectors + n as u64 * VECTOR_STRIDE;
        let dpl: u64 = if USER_INVOCABLE_VECTORS.contains(&n) { 3 } else { 0 };
        let low = (target & 0xffff)
            | ((USER_CODE_SELECTOR as u64) << 16)
            | ((0x8e | (dpl << 5)) << 40) // present, 64-bit interrupt gate
            | (((target >> 16) & 0xffff) << 48);
        let high = target >> 32;
        frame[n * 16..n * 16 + 8].copy_from_slice(&low.to_le_bytes());
        frame[n * 16 + 8..n * 16 + 16].copy_from_slice(&high.to_le_bytes());
    }
    frame
}

fn segment(selector: u16, type_: u8, long: bool, base: u64) -> kvm_segment {
    kvm_segment {
        base,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 3,
        db: u8::from(!long),
        s: 1,
        l: u8::from(long),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// The special registers of vCPU `vcpu`, given the PML4 of its address space.
pub fn initial_sregs(mut sregs: kvm_sregs, vcpu: u64, cr3: u64) -> kvm_sregs {
    let code = segment(USER_CODE_SELECTOR, 0xb, true, 0);
    let data = segment(USER_DATA_SELECTOR, 0x3, false, 0);
    sregs.cs = code;
    (sregs.ds, sregs.es, sregs.ss, sregs.gs) = (data, data, data, data);
    sregs.fs = segment(USER_DATA_SELECTOR, 0x3, false, layout::vcpu_page_va(vcpu));
    sregs.tr = kvm_segment {
        base: layout::TSS_VA,
        limit: TSS_LIMIT as u32,
        selector: TSS_SELECTOR,
        type_: 0xb, // busy 64-bit TSS
        present: 1,
        s: 0,
        dpl: 0,
        db: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    sregs.ldt = kvm_segment { unusable: 1, type_: 0x2, present: 1, ..Default::default() };
    sregs.gdt.base = layout::SYSTEM_TABLES_VA;
    sregs.gdt.limit = (GDT_SIZE - 1) as u16;
    sregs.idt.base = layout::SYSTEM_TABLES_VA + PAGE_SIZE;
    sregs.idt.limit = (VECTOR_COUNT as u64 * 16 - 1) as u16;
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    sregs.cr3 = cr3;
    sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    sregs.efer = EFER_LME | EFER_LMA | EFER_NXE;
    sregs
}

/// General registers to start executing `rip` on `stack_top` with two arguments.
pub fn start_regs(rip: u64, stack_top: u64, arg0: u64, arg1: u64) -> kvm_regs {
    kvm_regs { rip, rsp: stack_top, rdi: arg0, rsi: arg1, rflags: INITIAL_RFLAGS, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qword(frame: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(frame[at..at + 8].try_into().expect("8 bytes"))
    }

    #[test]
    fn gdt_segments_are_64_bit_user_code_and_user_data() {
        let gdt = gdt_frame();
        assert_eq!(qword(&gdt, 0), 0);
        let code = qword(&gdt, 8);
        assert_eq!((code >> 40) & 0xff, 0xfb, "present, DPL 3, code");
        assert_eq!((code >> 53) & 1, 1, "L bit");
        assert_eq!((code >> 54) & 1, 0, "D must be 0 with L");
        let data = qword(&gdt, 16);
        assert_eq!((data >> 45) & 3, 3, "DPL 3");
    }

    #[test]
    fn tss_descriptor_covers_the_tss_and_its_io_bitmap() {
        let gdt = gdt_frame();
        let (low, high) = (qword(&gdt, 24), qword(&gdt, 32));
        let base = ((low >> 16) & 0xff_ffff) | (((low >> 56) & 0xff) << 24) | (high << 32);
        assert_eq!(base, layout::TSS_VA);
        let limit = (low & 0xffff) | (((low >> 48) & 0xf) << 16);
        assert_eq!(limit, TSS_SIZE + 8192);
        assert_eq!((low >> 40) & 0x9f, 0x89);
    }

    #[test]
    fn the_io_bitmap_allows_every_port_and_is_terminated() {
        let tss = tss_frames();
        let base = u16::from_le_bytes([tss[102], tss[103]]) as usize;
        assert_eq!(base as u64, TSS_SIZE);
        for port in [0usize, 0x80, kmemvisor_abi::HYPERCALL_PORT as usize, 0xffff] {
            assert_eq!(tss[base + port / 8] & (1 << (port % 8)), 0, "port {port:#x}");
        }
        assert_eq!(tss[base + 8192], 0xff);
    }

    #[test]
    fn idt_gates_lead_to_the_vectors_through_user_code() {
        let vectors = 0xffff_ffff_8020_1230;
        let idt = idt_frame(vectors);
        for n in 0..VECTOR_COUNT {
            let (low, high) = (qword(&idt, n * 16), qword(&idt, n * 16 + 8));
            let target = (low & 0xffff) | (((low >> 48) & 0xffff) << 16) | (high << 32);
            assert_eq!(target, vectors + n as u64 * VECTOR_STRIDE, "vector {n}");
            assert_eq!((low >> 16) & 0xffff, USER_CODE_SELECTOR as u64);
            assert_eq!((low >> 40) & 0x8f, 0x8e, "present interrupt gate");
            let dpl = (low >> 45) & 3;
            assert_eq!(dpl == 3, n == 3 || n == 4, "vector {n} dpl {dpl}");
        }
        assert!(idt[VECTOR_COUNT * 16..].iter().all(|&b| b == 0));
    }

    #[test]
    fn sregs_enter_long_mode_at_cpl3_with_the_vcpu_page_in_fs() {
        let s = initial_sregs(kvm_sregs::default(), 5, 0x10_0000);
        assert_eq!(s.cs.dpl, 3);
        assert_eq!(s.cs.l, 1);
        assert_eq!(s.ss.selector & 3, 3);
        assert_eq!(s.fs.base, layout::vcpu_page_va(5));
        assert_eq!(s.cr3, 0x10_0000);
        assert_ne!(s.cr0 & CR0_PG, 0);
        assert_ne!(s.efer & EFER_LMA, 0);
        assert_ne!(s.efer & EFER_NXE, 0);
        assert_eq!(s.tr.selector, TSS_SELECTOR);
    }

    #[test]
    fn start_regs_allow_port_io_and_keep_interrupts_off() {
        let r = start_regs(0x1000, 0x2000, 7, 8);
        assert_eq!((r.rflags >> 12) & 3, 3, "IOPL 3");
        assert_eq!(r.rflags & (1 << 9), 0, "IF clear");
        assert_eq!((r.rip, r.rsp, r.rdi, r.rsi), (0x1000, 0x2000, 7, 8));
    }
}
