//! Reading guest-virtual memory on the guest's behalf.
//!
//! Every pointer a guest passes is translated through the VMM's own page
//! tables, page by page, and must be mapped for CPL3 — exactly what the guest
//! itself could read. Nothing outside guest RAM is ever touched: vm-memory
//! bounds-checks every frame.

use crate::memory_model::ram::GuestMemoryMmap;
use kmemvisor_abi::layout::PAGE_SIZE;
use vm_memory::{Bytes, GuestAddress};

use crate::memory_model::paging::{AddressSpace, PteFlags, Translation};

/// The guest pointer does not lead to readable guest memory.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("Guest address {address:#x} is not mapped for the guest")]
pub struct BadAddress {
    /// The first address that failed.
    pub address: u64,
}

/// Writes `bytes` at guest-virtual `va` of `space`, which must be mapped
/// writable for the guest; nothing is written unless all of it is.
pub fn write(memory: &GuestMemoryMmap, space: &AddressSpace, va: u64, bytes: &[u8]) -> Result<(), BadAddress> {
    let wanted = PteFlags::USER | PteFlags::WRITABLE;
    let mut chunks = Vec::new();
    let mut done = 0usize;
    while done < bytes.len() {
        let address = va.checked_add(done as u64).ok_or(BadAddress { address: va })?;
        let translation = space.translate(memory, address).filter(|t| t.flags.contains(wanted)).ok_or(BadAddress { address })?;
        let chunk = ((PAGE_SIZE - address % PAGE_SIZE) as usize).min(bytes.len() - done);
        chunks.push((translation.gpa, done, chunk));
        done += chunk;
    }
    for (gpa, from, len) in chunks {
        memory.write_slice(&bytes[from..from + len], GuestAddress(gpa)).map_err(|_| BadAddress { address: va })?;
    }
    Ok(())
}

/// Reads `len` bytes at guest-virtual `va` of `space`.
pub fn read(memory: &GuestMemoryMmap, space: &AddressSpace, va: u64, len: usize) -> Result<Vec<u8>, BadAddress> {
    let mut out = vec![0u8; len];
    read_into(memory, |address| space.translate(memory, address), va, &mut out)?;
    Ok(out)
}

/// Fills `out` from guest-virtual `va` on, each page translated by
/// `translate` (an [`AddressSpace`]'s walk, or a [`Walker`](crate::memory_model::paging::Walker)
/// that keeps its last table) and mapped for the guest.
pub fn read_into(
    memory: &GuestMemoryMmap,
    mut translate: impl FnMut(u64) -> Option<Translation>,
    va: u64,
    out: &mut [u8],
) -> Result<(), BadAddress> {
    let mut done = 0usize;
    while done < out.len() {
        let address = va.checked_add(done as u64).ok_or(BadAddress { address: va })?;
        let translation = translate(address).filter(|t| t.flags.contains(PteFlags::USER)).ok_or(BadAddress { address })?;
        let chunk = ((PAGE_SIZE - address % PAGE_SIZE) as usize).min(out.len() - done);
        memory.read_slice(&mut out[done..done + chunk], GuestAddress(translation.gpa)).map_err(|_| BadAddress { address })?;
        done += chunk;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_model::paging::TablePool;
    use crate::memory_model::ram::GuestRam;
    use kmemvisor_abi::layout;

    #[test]
    fn reads_cross_pages_and_stop_at_unmapped_or_supervisor_pages() {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let m = ram.memory();
        let mut pool = TablePool::new();
        let space = AddressSpace::new(m, &mut pool).expect("space");
        let va = 0x40_0000;
        // Two virtually adjacent pages on frames that are not adjacent.
        space.map(m, &mut pool, va, 0x50_0000, PteFlags::USER).expect("map");
        space.map(m, &mut pool, va + PAGE_SIZE, 0x30_0000, PteFlags::USER).expect("map");
        space.map(m, &mut pool, va + 2 * PAGE_SIZE, 0x60_0000, PteFlags::empty()).expect("map");
        m.write_slice(b"abc", GuestAddress(0x50_0ffd)).expect("write");
        m.write_slice(b"def", GuestAddress(0x30_0000)).expect("write");
        assert_eq!(read(m, &space, va + 0xffd, 6).expect("read"), b"abcdef");
        assert_eq!(read(m, &space, va + 2 * PAGE_SIZE - 1, 2), Err(BadAddress { address: va + 2 * PAGE_SIZE }));
        assert_eq!(read(m, &space, 0x1000, 1), Err(BadAddress { address: 0x1000 }));
        assert_eq!(read(m, &space, u64::MAX, 2), Err(BadAddress { address: u64::MAX }));
        assert_eq!(read(m, &space, 0x1000, 0).expect("empty read"), b"");
    }

    #[test]
    fn writes_need_writable_guest_pages_and_are_all_or_nothing() {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let m = ram.memory();
        let mut pool = TablePool::new();
        let space = AddressSpace::new(m, &mut pool).expect("space");
        let va = 0x40_0000;
        space.map(m, &mut pool, va, 0x50_0000, PteFlags::USER | PteFlags::WRITABLE).expect("map");
        space.map(m, &mut pool, va + PAGE_SIZE, 0x30_0000, PteFlags::USER).expect("map");
        write(m, &space, va + 8, b"data").expect("writable");
        assert_eq!(read(m, &space, va + 8, 4).expect("read"), b"data");
        assert_eq!(write(m, &space, va + PAGE_SIZE - 2, b"span"), Err(BadAddress { address: va + PAGE_SIZE }));
        assert_eq!(read(m, &space, va + PAGE_SIZE - 2, 2).expect("read"), [0, 0], "nothing of a refused write lands");
        assert!(write(m, &space, 0, b"x").is_err());
    }

    #[test]
    fn a_write_across_pages_lands_in_each_page_s_own_frame() {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let m = ram.memory();
        let mut pool = TablePool::new();
        let space = AddressSpace::new(m, &mut pool).expect("space");
        let va = 0x40_0000;
        let flags = PteFlags::USER | PteFlags::WRITABLE;
        space.map(m, &mut pool, va, 0x50_0000, flags).expect("map");
        space.map(m, &mut pool, va + PAGE_SIZE, 0x30_0000, flags).expect("map");
        write(m, &space, va + 0xffd, b"abcdef").expect("write");
        let mut first = [0u8; 3];
        let mut second = [0u8; 3];
        m.read_slice(&mut first, GuestAddress(0x50_0ffd)).expect("read");
        m.read_slice(&mut second, GuestAddress(0x30_0000)).expect("read");
        assert_eq!((&first, &second), (b"abc", b"def"));
        let mut beyond = [0u8; 3];
        m.read_slice(&mut beyond, GuestAddress(0x50_1000)).expect("read");
        assert_eq!(beyond, [0; 3], "nothing spills into the frame after the first");
    }
}
