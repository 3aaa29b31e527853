//! Every invariant of the memory model, checked against a whole VM state:
//! the frame ledger's own ([`FrameLedger::check`]), and that what the guest
//! can reach through the page tables agrees with the ledger. The property
//! tests (src/services/properties.rs) and the `hypercalls` libFuzzer target
//! (fuzz/) run it after every call.
//!
//! What is checked, beyond the ledger's own invariants:
//! 1. every frame that holds a table of an address space (the kernel's or a
//!    process's) is a page table in the ledger, and no user-accessible leaf
//!    maps a page-table frame;
//! 2. the guest's aliases (`vm_map_physical_memory`) agree with the page
//!    tables both ways: each alias the ledger records is a leaf that maps
//!    that frame, and each leaf that maps a free frame is a recorded alias —
//!    free RAM reachable otherwise would be memory the allocator may hand
//!    to someone else, or turn into a page table;
//! 3. the ledger's hides agree with the cross-memory attachments' books, and
//!    every hidden frame is trapped from the vCPUs where hiding works.
//!
//! Hidden frames are not checked to be pinned: the services let a driver
//! unpin a hidden page (`OK`, with a `dma.unpin-during-transfer` violation
//! when a queued or running transfer touches it, docs/VIOLATIONS.md), so
//! "hides ⊆ pinned" is a rule for drivers, not an invariant of the model.
//!
//! [`FrameLedger::check`]: crate::memory_model::ledger::FrameLedger::check

use std::collections::{BTreeMap, BTreeSet};

use kmemvisor_abi::layout::PAGE_SIZE;

use crate::memory_model::ledger::Role;
use crate::memory_model::paging::{AddressSpace, PteFlags};
use crate::memory_model::processes::alias_owner;
use crate::state::VmState;
use crate::sync::lock;

/// Checks every invariant; the first broken one, said.
pub fn check(state: &VmState) -> Result<(), String> {
    let k = lock(&state.kernel);
    k.frames.check()?;
    let memory = state.ram.memory();
    let spaces: Vec<(u64, &AddressSpace)> = std::iter::once((0, &state.space))
        .chain(k.processes.ids().into_iter().filter_map(|pid| k.processes.get(pid).map(|p| (pid, p.space()))))
        .collect();
    // (pid, page) → frame of every leaf: the kernel half once, as pid 0.
    let mut leaves = BTreeMap::new();
    for &(pid, space) in &spaces {
        let (tables, mapped) = space.walk(memory);
        if let Some(table) = tables.iter().find(|&&t| k.frames.role(t) != Some(Role::PageTable)) {
            return Err(format!("table {table:#x} of root {:#x} is {:?} in the ledger", space.root(), k.frames.role(*table)));
        }
        for (va, t) in mapped {
            let frame = t.gpa & !(PAGE_SIZE - 1);
            if t.flags.contains(PteFlags::USER) && k.frames.role(frame) == Some(Role::PageTable) {
                return Err(format!("the guest reaches page table {frame:#x} at {va:#x}"));
            }
            let owner = if pid != 0 && va >> 47 == 0 { pid } else { 0 };
            leaves.insert((owner, va), frame);
        }
    }
    let mut aliases = BTreeSet::new();
    for (frame, key) in k.frames.all_aliases() {
        let (pid, va) = alias_owner(key);
        match leaves.get(&(pid, va)) {
            Some(&mapped) if mapped == frame => _ = aliases.insert((pid, va)),
            mapped => {
                return Err(format!(
                    "the ledger has page {va:#x} of process {pid} as an alias of frame {frame:#x}, the page tables map it to {mapped:x?}"
                ));
            }
        }
    }
    if let Some(((pid, va), frame)) =
        leaves.iter().find(|&(at, &frame)| k.frames.role(frame) == Some(Role::Free) && !aliases.contains(at))
    {
        return Err(format!("page {va:#x} of process {pid} maps free frame {frame:#x}, and the ledger has no such alias"));
    }
    let ledger: BTreeMap<u64, u32> = k.frames.hidden().collect();
    let books = k.xmem.hidden_frames();
    if ledger != books {
        return Err(format!("the ledger hides {ledger:x?}, the attachments say {books:x?}"));
    }
    if state.hiding.trap().is_ok()
        && let Some((&frame, _)) = ledger.iter().find(|&(&f, _)| !state.hiding.is_trapped(f))
    {
        return Err(format!("hidden frame {frame:#x} is not trapped from the vCPUs"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kmemvisor_abi::dgux::VM_PAGE_ALIGNED;
    use kmemvisor_abi::{Service, layout};

    use super::*;
    use crate::testing::{ok, state};

    #[test]
    fn a_page_table_the_guest_reaches_is_seen() {
        // Alias a page table behind the ledger's back.
        let state = state();
        let va = ok(&state, Service::VmGetUnwiredMemory, &[PAGE_SIZE, u64::from(VM_PAGE_ALIGNED)]);
        assert_eq!(check(&state), Ok(()));
        let flags = PteFlags::USER | PteFlags::WRITABLE;
        state.space.remap(state.ram.memory(), va, layout::PAGE_TABLES_GPA, flags).expect("remap");
        let broken = check(&state).expect_err("a reachable page table");
        assert!(broken.starts_with("the guest reaches page table 0x100000 at 0xffffd00000000000"), "{broken}");
    }

    #[test]
    fn a_free_frame_the_guest_reaches_without_an_alias_is_seen() {
        let state = state();
        let va = ok(&state, Service::VmGetUnwiredMemory, &[PAGE_SIZE, u64::from(VM_PAGE_ALIGNED)]);
        let free = lock(&state.kernel).frames.allocate(1, Role::KernelMemory).expect("frame")[0];
        assert_eq!(lock(&state.kernel).frames.release(free), Ok(true));
        let flags = PteFlags::USER | PteFlags::WRITABLE;
        state.space.remap(state.ram.memory(), va, free, flags).expect("remap");
        let broken = check(&state).expect_err("a reachable free frame");
        assert_eq!(broken, format!("page {va:#x} of process 0 maps free frame {free:#x}, and the ledger has no such alias"));
        // Recorded as the alias it is, the same mapping is sound.
        lock(&state.kernel).frames.add_alias(free, va);
        assert_eq!(check(&state), Ok(()));
    }

    #[test]
    fn an_alias_the_page_tables_do_not_have_is_seen() {
        let state = state();
        let va = ok(&state, Service::VmGetUnwiredMemory, &[PAGE_SIZE, u64::from(VM_PAGE_ALIGNED)]);
        let elsewhere = lock(&state.kernel).frames.allocate(1, Role::KernelMemory).expect("frame")[0];
        lock(&state.kernel).frames.add_alias(elsewhere, va);
        let broken = check(&state).expect_err("a stale alias");
        assert!(
            broken.starts_with(&format!(
                "the ledger has page {va:#x} of process 0 as an alias of frame {elsewhere:#x}, the page tables map it to Some("
            )),
            "{broken}"
        );
        lock(&state.kernel).frames.remove_alias(elsewhere, va);
        state.space.unmap(state.ram.memory(), va).expect("mapped");
        lock(&state.kernel).frames.add_alias(elsewhere, va);
        assert_eq!(
            check(&state),
            Err(format!(
                "the ledger has page {va:#x} of process 0 as an alias of frame {elsewhere:#x}, the page tables map it to None"
            ))
        );
    }

    #[test]
    fn a_broken_ledger_fails_the_whole_check() {
        let state = state();
        let frame = lock(&state.kernel).frames.allocate(1, Role::PageTable).expect("frame")[0];
        lock(&state.kernel).frames.add_alias(frame, 0xffff_d000_0000_0000);
        let broken = check(&state).expect_err("a table with an alias");
        assert!(broken.starts_with("invariant 1: page table"), "{broken}");
    }
}
