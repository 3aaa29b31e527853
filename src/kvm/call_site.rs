//! The RIP of a hypercall's `out`.
//!
//! Where RIP points at `KVM_EXIT_IO` depends on the KVM flavour
//! (`docs/ABI.md`, *RIP after the exit*): past the `out` on kvm_pvm, at it on
//! VMX/SVM. A violation names the `out` itself, whose line is the call's.
//! The flavour is told once per run, from the first hypercall whose RIP has
//! the `out dx, eax` opcode (`0xEF`) just before it (past) or at it (at), and
//! holds for every later call; until then RIP is taken as it is. Only the
//! first calls read guest memory (two bytes); the rest subtract a constant.

use std::sync::OnceLock;

use crate::memory_model::ram::GuestMemoryMmap;

use crate::memory_model::guest_access;
use crate::memory_model::paging::AddressSpace;

/// The opcode of `out dx, eax`, the one-byte instruction of a hypercall.
const OUT_DX_EAX: u8 = 0xef;

/// Whether RIP at a port-I/O exit points past the `out`, once told.
#[derive(Clone, Debug, Default)]
pub struct CallSite {
    past_out: OnceLock<bool>,
}

impl CallSite {
    /// The RIP of the `out` of a hypercall that exited at `rip`, read in
    /// `space` when the flavour is not told yet.
    pub fn of(&self, memory: &GuestMemoryMmap, space: &AddressSpace, rip: u64) -> u64 {
        let past = match self.past_out.get() {
            Some(&past) => past,
            None => match told(memory, space, rip) {
                Some(past) => *self.past_out.get_or_init(|| past),
                None => false,
            },
        };
        if past { rip.wrapping_sub(1) } else { rip }
    }

    /// Whether RIP at a port-I/O exit is past the instruction, as told by
    /// a hypercall so far (not told: taken as at it).
    pub fn past_port_io(&self) -> bool {
        self.past_out.get() == Some(&true)
    }
}

/// Past (`true`) or at (`false`) the `out`, from the bytes around `rip`;
/// `None` when neither is an `out dx, eax` or they cannot be read.
fn told(memory: &GuestMemoryMmap, space: &AddressSpace, rip: u64) -> Option<bool> {
    let bytes = guest_access::read(memory, space, rip.checked_sub(1)?, 2).ok()?;
    match (bytes.first(), bytes.get(1)) {
        (Some(&OUT_DX_EAX), _) => Some(true),
        (_, Some(&OUT_DX_EAX)) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_model::paging::{PteFlags, TablePool};
    use crate::memory_model::ram::GuestRam;
    use kmemvisor_abi::layout;
    use vm_memory::{Bytes, GuestAddress};

    const CODE_VA: u64 = 0xffff_ffff_8020_0000;
    const CODE_GPA: u64 = 0x50_0000;

    fn code(bytes: &[u8]) -> (GuestRam, AddressSpace) {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let mut pool = TablePool::new();
        let space = AddressSpace::new(ram.memory(), &mut pool).expect("space");
        space.map(ram.memory(), &mut pool, CODE_VA, CODE_GPA, PteFlags::USER).expect("map");
        ram.memory().write_slice(bytes, GuestAddress(CODE_GPA)).expect("write");
        (ram, space)
    }

    #[test]
    fn a_rip_past_the_out_is_moved_back_onto_it_for_the_whole_run() {
        // mov edx, 0xb00; out dx, eax; ret
        let (ram, space) = code(&[0xba, 0x00, 0x0b, 0x00, 0x00, 0xef, 0xc3]);
        let site = CallSite::default();
        assert_eq!(site.of(ram.memory(), &space, CODE_VA + 6), CODE_VA + 5);
        assert_eq!(site.past_out.get(), Some(&true));
        assert_eq!(site.of(ram.memory(), &space, CODE_VA + 0x100), CODE_VA + 0xff, "told once, then the same for every call");
    }

    #[test]
    fn a_rip_at_the_out_is_kept() {
        let (ram, space) = code(&[0xba, 0x00, 0x0b, 0x00, 0x00, 0xef, 0xc3]);
        let site = CallSite::default();
        assert_eq!(site.of(ram.memory(), &space, CODE_VA + 5), CODE_VA + 5);
        assert_eq!(site.past_out.get(), Some(&false));
    }

    #[test]
    fn rips_that_tell_nothing_are_kept_and_decide_nothing() {
        let (ram, space) = code(&[0x90, 0x90, 0x90]);
        let site = CallSite::default();
        for rip in [CODE_VA + 1, 0, 0x1000, u64::MAX, CODE_VA + 0x1000] {
            assert_eq!(site.of(ram.memory(), &space, rip), rip);
        }
        assert_eq!(site.past_out.get(), None);
    }
}
