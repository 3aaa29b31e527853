//! One transfer: the checks a bus-master would fail on, the hand-off check
//! that is the point of the device, and the copy.
//!
//! Every guest-RAM access goes through vm-memory on the VMM's own mapping,
//! so a page hidden from the vCPUs is still reachable, and a range is only
//! ever used after `check_range` accepted it.

use std::sync::Mutex;

use crate::memory_model::ram::GuestMemoryMmap;
use kmemvisor_abi::dma::*;
use kmemvisor_abi::layout::PAGE_SIZE;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::{Access, DmaHost};
use crate::checker::ViolationKind;
use crate::memory_model::ledger::TransferRanges;
use crate::sync::lock;

/// Bounce buffer size for RAM-to-RAM copies, so that a 1 MiB transfer does
/// not allocate 1 MiB.
const CHUNK: usize = 64 << 10;

/// The registers of a transfer, as latched at the doorbell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Transfer {
    pub(super) source: u64,
    pub(super) destination: u64,
    pub(super) length: u64,
    pub(super) direction: u64,
}

/// Why a transfer failed; each is one `ERROR_*` code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum TransferError {
    /// Not one of the `DIR_*` values.
    #[error("Direction {0:#x} is not one of the DIR_* values")]
    BadDirection(u64),
    /// 0 or above `DMA_MAX_TRANSFER`.
    #[error("Length {0:#x} is 0 or above {DMA_MAX_TRANSFER:#x}")]
    BadLength(u64),
    /// A guest-physical range wraps or leaves guest RAM.
    #[error("Guest-physical range at {0:#x} is not entirely inside guest RAM")]
    OutsideRam(u64),
    /// A device-memory range leaves device memory.
    #[error("Device-memory range at {0:#x} is not entirely inside the {DMA_DEVICE_MEMORY:#x} bytes of device memory")]
    OutsideDeviceMemory(u64),
    /// A guest page whose frame no device may touch.
    #[error("Guest-physical page {0:#x} is a frame no device may touch")]
    Forbidden(u64),
}

impl TransferError {
    /// The code `REG_ERROR` shows.
    pub(super) fn code(self) -> u64 {
        match self {
            TransferError::BadDirection(_) => ERROR_BAD_DIRECTION,
            TransferError::BadLength(_) => ERROR_BAD_LENGTH,
            TransferError::OutsideRam(_) => ERROR_OUTSIDE_RAM,
            TransferError::OutsideDeviceMemory(_) => ERROR_OUTSIDE_DEVICE_MEMORY,
            TransferError::Forbidden(_) => ERROR_FORBIDDEN,
        }
    }
}

/// A transfer that passed the checks: guest addresses and device offsets
/// known to be in range for `len` bytes.
#[derive(Clone, Copy, Debug)]
enum Plan {
    ToDevice { ram: u64, device: usize },
    FromDevice { device: usize, ram: u64 },
    Within { from: u64, to: u64 },
}

impl Plan {
    /// The guest range the device reads, and the one it writes.
    fn guest_ranges(self) -> (Option<u64>, Option<u64>) {
        match self {
            Plan::ToDevice { ram, .. } => (Some(ram), None),
            Plan::FromDevice { ram, .. } => (None, Some(ram)),
            Plan::Within { from, to } => (Some(from), Some(to)),
        }
    }
}

/// Checks `t`, reports the pages the driver did not hand off, and copies.
pub(super) fn run(host: &dyn DmaHost, access: Access, device_memory: &Mutex<Vec<u8>>, t: &Transfer) -> Result<(), TransferError> {
    let (plan, len) = check(host.memory(), t)?;
    refuse_forbidden(host, access, t, plan, len)?;
    report_unhanded(host, access, t, plan, len);
    copy(host.memory(), &mut lock(device_memory), plan, len)
}

/// The checks in the ABI's order; the first failure wins.
fn check(memory: &GuestMemoryMmap, t: &Transfer) -> Result<(Plan, usize), TransferError> {
    if !matches!(t.direction, DIR_TO_DEVICE | DIR_FROM_DEVICE | DIR_MEMORY_TO_MEMORY) {
        return Err(TransferError::BadDirection(t.direction));
    }
    let len = match usize::try_from(t.length) {
        Ok(len) if t.length != 0 && t.length <= DMA_MAX_TRANSFER => len,
        _ => return Err(TransferError::BadLength(t.length)),
    };
    let ram = |gpa: u64| {
        let inside = gpa.checked_add(t.length).is_some() && memory.check_range(GuestAddress(gpa), len);
        if inside { Ok(gpa) } else { Err(TransferError::OutsideRam(gpa)) }
    };
    let device = |offset: u64| match (offset.checked_add(t.length), usize::try_from(offset)) {
        (Some(end), Ok(offset)) if end <= DMA_DEVICE_MEMORY => Ok(offset),
        _ => Err(TransferError::OutsideDeviceMemory(offset)),
    };
    // Guest ranges before the device range, so a transfer wrong on both
    // sides reports the guest side, which is the one that can corrupt.
    let plan = match t.direction {
        DIR_TO_DEVICE => {
            let ram = ram(t.source)?;
            Plan::ToDevice { ram, device: device(t.destination)? }
        }
        DIR_FROM_DEVICE => {
            let ram = ram(t.destination)?;
            Plan::FromDevice { device: device(t.source)?, ram }
        }
        _ => Plan::Within { from: ram(t.source)?, to: ram(t.destination)? },
    };
    Ok((plan, len))
}

/// The guest-physical ranges a transfer will read and write, if it passes
/// the checks (none if it fails them: it touches nothing).
pub(super) fn touched(memory: &GuestMemoryMmap, t: &Transfer) -> TransferRanges {
    let Ok((plan, len)) = check(memory, t) else { return TransferRanges::default() };
    let (read, written) = plan.guest_ranges();
    let range = |start: Option<u64>| start.map(|start| start..start + len as u64);
    TransferRanges { reads: range(read), writes: range(written) }
}

/// The guest pages of `[start, start + len)`; the checks guarantee that it
/// does not wrap and that `len > 0`.
fn pages_of(start: u64, len: usize) -> impl Iterator<Item = u64> + Clone {
    let first_page = start & !(PAGE_SIZE - 1);
    let last_page = (start + len as u64 - 1) & !(PAGE_SIZE - 1);
    (first_page..=last_page).step_by(PAGE_SIZE as usize)
}

/// Refuses, before anything is copied, a transfer that would touch a frame
/// no device may touch (a page table, the CPU tables, the image, …): one
/// violation, and the channel reports `ERROR_FORBIDDEN`.
fn refuse_forbidden(host: &dyn DmaHost, access: Access, t: &Transfer, plan: Plan, len: usize) -> Result<(), TransferError> {
    let (read, written) = plan.guest_ranges();
    for (start, verb) in [(written, "write"), (read, "read")] {
        let Some(start) = start else { continue };
        if let Some((page, why)) = pages_of(start, len).find_map(|page| host.refusal(page).map(|why| (page, why))) {
            let message = format!(
                "DMA {verb}s page {page:#x}, which no device may touch ({why}): the transfer is refused and nothing was copied"
            );
            let args = [t.source, t.destination, t.length, t.direction];
            host.violation(ViolationKind::DmaForbiddenFrame, access, &args, message);
            return Err(TransferError::Forbidden(page));
        }
    }
    Ok(())
}

/// Records one violation per side (read, written) of the transfer that
/// touches pages the driver did not hand off. The transfer goes ahead, as a
/// real bus-master's would: the violation is the report.
fn report_unhanded(host: &dyn DmaHost, access: Access, t: &Transfer, plan: Plan, len: usize) {
    let (read, written) = plan.guest_ranges();
    let sides = [(written, "to", "writes"), (read, "from", "reads")];
    for (start, word, verb) in sides {
        let Some(start) = start else { continue };
        let pages = pages_of(start, len);
        let total = pages.clone().count();
        let mut missing = pages.filter(|&page| !host.handed_off(page));
        let Some(first) = missing.next() else { continue };
        let count = 1 + missing.count();
        let message = format!(
            "DMA {word} a page the driver did not hand off: page {first:#x} and {others} other(s), \
             {count} of the {total} page(s) the transfer {verb}, are not handed off to the device",
            others = count - 1
        );
        let args = [t.source, t.destination, t.length, t.direction];
        host.violation(ViolationKind::DmaPageNotHandedOff, access, &args, message);
    }
}

fn copy(memory: &GuestMemoryMmap, device: &mut [u8], plan: Plan, len: usize) -> Result<(), TransferError> {
    // vm-memory only fails here if RAM changed under the checks.
    let ram_error = |gpa: u64| move |_| TransferError::OutsideRam(gpa);
    let device_range = |offset: usize| offset..offset.saturating_add(len);
    match plan {
        // Device memory is itself the buffer, so these need no bounce buffer.
        Plan::ToDevice { ram, device: offset } => {
            let buf = device.get_mut(device_range(offset)).ok_or(TransferError::OutsideDeviceMemory(offset as u64))?;
            memory.read_slice(buf, GuestAddress(ram)).map_err(ram_error(ram))
        }
        Plan::FromDevice { device: offset, ram } => {
            let buf = device.get(device_range(offset)).ok_or(TransferError::OutsideDeviceMemory(offset as u64))?;
            memory.write_slice(buf, GuestAddress(ram)).map_err(ram_error(ram))
        }
        Plan::Within { from, to } => copy_within(memory, from, to, len).map_err(ram_error(from)),
    }
}

/// A memmove inside guest RAM: when the destination overlaps the source from
/// above, copying front to back would read bytes already overwritten, so the
/// chunks then go back to front.
fn copy_within(memory: &GuestMemoryMmap, from: u64, to: u64, len: usize) -> Result<(), vm_memory::GuestMemoryError> {
    let overlap = from < to + len as u64 && to < from + len as u64;
    if !overlap {
        // One copy, straight between the two places (guest RAM is one region).
        let source = memory.get_slice(GuestAddress(from), len)?;
        source.copy_to_volatile_slice(memory.get_slice(GuestAddress(to), len)?);
        return Ok(());
    }
    let mut buf = vec![0u8; len.min(CHUNK)];
    let chunks = (0..len).step_by(CHUNK).map(|at| (at as u64, (len - at).min(CHUNK)));
    let backwards = to > from && to - from < len as u64;
    let mut move_chunk = |(at, n): (u64, usize)| -> Result<(), vm_memory::GuestMemoryError> {
        let chunk = &mut buf[..n];
        memory.read_slice(chunk, GuestAddress(from + at))?;
        memory.write_slice(chunk, GuestAddress(to + at))
    };
    if backwards { chunks.rev().try_for_each(&mut move_chunk) } else { chunks.into_iter().try_for_each(&mut move_chunk) }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ACCESS, TestHost};
    use super::*;

    fn device_memory() -> Mutex<Vec<u8>> {
        Mutex::new(vec![0; DMA_DEVICE_MEMORY as usize])
    }

    fn run_on(
        host: &TestHost,
        dev: &Mutex<Vec<u8>>,
        source: u64,
        destination: u64,
        length: u64,
        direction: u64,
    ) -> Result<(), u64> {
        run(host, ACCESS, dev, &Transfer { source, destination, length, direction }).map_err(TransferError::code)
    }

    #[test]
    fn to_device_then_from_device_moves_the_bytes() {
        let host = TestHost::handing_off_all();
        let dev = device_memory();
        host.fill_pattern(0x1_0000, 0x3000, 7);
        assert_eq!(run_on(&host, &dev, 0x1_0000 + 5, 0x100, 0x2ffb, DIR_TO_DEVICE), Ok(()));
        assert_eq!(lock(&dev)[0x100..0x100 + 0x2ffb], host.bytes(0x1_0005, 0x2ffb)[..]);
        assert_eq!(lock(&dev)[0xff], 0);
        assert_eq!(run_on(&host, &dev, 0x100, 0x8_0003, 0x2ffb, DIR_FROM_DEVICE), Ok(()));
        assert_eq!(host.bytes(0x8_0003, 0x2ffb), host.bytes(0x1_0005, 0x2ffb));
        assert_eq!(host.bytes(0x8_0000, 3), vec![0; 3]);
        assert!(host.messages().is_empty(), "{:?}", host.messages());
    }

    #[test]
    fn memory_to_memory_moves_the_bytes_like_memmove() {
        let host = TestHost::handing_off_all();
        let dev = device_memory();
        let len = 3 * CHUNK as u64 + 17;
        host.fill_pattern(0x1_0000, len, 3);
        let original = host.bytes(0x1_0000, len);
        assert_eq!(run_on(&host, &dev, 0x1_0000, 0x10_0000, len, DIR_MEMORY_TO_MEMORY), Ok(()));
        assert_eq!(host.bytes(0x10_0000, len), original);
        // Overlapping upwards, then downwards.
        assert_eq!(run_on(&host, &dev, 0x10_0000, 0x10_0000 + 100, len, DIR_MEMORY_TO_MEMORY), Ok(()));
        assert_eq!(host.bytes(0x10_0000 + 100, len), original);
        assert_eq!(run_on(&host, &dev, 0x10_0000 + 100, 0x10_0000 + 1, len, DIR_MEMORY_TO_MEMORY), Ok(()));
        assert_eq!(host.bytes(0x10_0000 + 1, len), original);
        assert!(lock(&dev).iter().all(|&b| b == 0));
    }

    #[test]
    fn each_check_has_its_code_in_order() {
        let host = TestHost::handing_off_all();
        let dev = device_memory();
        let ram = 2 << 20;
        assert_eq!(run_on(&host, &dev, 0, 0, 0, 0), Err(ERROR_BAD_DIRECTION));
        assert_eq!(run_on(&host, &dev, 0, 0, 0, 4), Err(ERROR_BAD_DIRECTION));
        assert_eq!(run_on(&host, &dev, u64::MAX, u64::MAX, 0, DIR_TO_DEVICE), Err(ERROR_BAD_LENGTH));
        assert_eq!(run_on(&host, &dev, 0, 0, DMA_MAX_TRANSFER + 1, DIR_TO_DEVICE), Err(ERROR_BAD_LENGTH));
        assert_eq!(run_on(&host, &dev, ram - 8, u64::MAX, 9, DIR_TO_DEVICE), Err(ERROR_OUTSIDE_RAM));
        assert_eq!(run_on(&host, &dev, u64::MAX - 3, 0, 16, DIR_TO_DEVICE), Err(ERROR_OUTSIDE_RAM));
        assert_eq!(run_on(&host, &dev, 0, ram, 1, DIR_FROM_DEVICE), Err(ERROR_OUTSIDE_RAM));
        assert_eq!(run_on(&host, &dev, 0, ram - 1, 2, DIR_MEMORY_TO_MEMORY), Err(ERROR_OUTSIDE_RAM));
        assert_eq!(run_on(&host, &dev, ram, 0, 2, DIR_MEMORY_TO_MEMORY), Err(ERROR_OUTSIDE_RAM));
        assert_eq!(run_on(&host, &dev, 0, DMA_DEVICE_MEMORY - 1, 2, DIR_TO_DEVICE), Err(ERROR_OUTSIDE_DEVICE_MEMORY));
        assert_eq!(run_on(&host, &dev, u64::MAX, 0, 2, DIR_FROM_DEVICE), Err(ERROR_OUTSIDE_DEVICE_MEMORY));
        assert_eq!(run_on(&host, &dev, 0, DMA_DEVICE_MEMORY - 1, 1, DIR_TO_DEVICE), Ok(()));
        assert_eq!(run_on(&host, &dev, 0, 0, DMA_MAX_TRANSFER, DIR_TO_DEVICE), Ok(()));
        assert!(host.messages().is_empty(), "{:?}", host.messages());
    }

    #[test]
    fn a_failed_check_touches_nothing() {
        let host = TestHost::new();
        let dev = device_memory();
        host.fill_pattern(0, 2 << 20, 1);
        let before = host.bytes(0, 2 << 20);
        lock(&dev).fill(0xaa);
        // The source side is fine; only the destination leaves RAM.
        assert_eq!(run_on(&host, &dev, 0x1000, (2 << 20) - 0x800, 0x1000, DIR_MEMORY_TO_MEMORY), Err(ERROR_OUTSIDE_RAM));
        assert_eq!(run_on(&host, &dev, 0x2000, (2 << 20) - 0x800, 0x1000, DIR_FROM_DEVICE), Err(ERROR_OUTSIDE_RAM));
        assert_eq!(
            run_on(&host, &dev, 0x1000, DMA_DEVICE_MEMORY - 0x800, 0x1000, DIR_TO_DEVICE),
            Err(ERROR_OUTSIDE_DEVICE_MEMORY)
        );
        assert_eq!(host.bytes(0, 2 << 20), before);
        assert!(lock(&dev).iter().all(|&b| b == 0xaa));
        assert!(host.messages().is_empty(), "a failed transfer touches no page: {:?}", host.messages());
    }

    #[test]
    fn pages_not_handed_off_are_one_violation_per_side() {
        let host = TestHost::new();
        let dev = device_memory();
        // Writes 0x4800..0x7800: pages 0x4000..=0x7000; 0x5000 is handed off.
        host.hand_off(0x5000);
        assert_eq!(run_on(&host, &dev, 0, 0x4800, 0x3000, DIR_FROM_DEVICE), Ok(()));
        let messages = host.messages();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("DMA to a page the driver did not hand off"), "{}", messages[0]);
        assert!(messages[0].contains("page 0x4000 and 2 other(s), 3 of the 4 page(s)"), "{}", messages[0]);
        let recorded = host.recorded();
        assert_eq!((recorded[0].0, recorded[0].1), (ACCESS.vcpu, ACCESS.rip));
        assert_eq!(recorded[0].2, vec![0, 0x4800, 0x3000, DIR_FROM_DEVICE]);
        assert_eq!(recorded[0].4.as_str(), "dma.page-not-handed-off");

        let host = TestHost::new();
        host.fill_pattern(0x9000, 0x10, 9);
        assert_eq!(run_on(&host, &dev, 0x9000, 0, 0x10, DIR_TO_DEVICE), Ok(()));
        assert_eq!(host.messages().len(), 1);
        assert!(host.messages()[0].contains("DMA from a page the driver did not hand off"), "{:?}", host.messages());
        assert!(host.messages()[0].contains("page 0x9000 and 0 other(s)"), "{:?}", host.messages());
        // The transfer went ahead regardless.
        assert_eq!(lock(&dev)[..0x10], host.bytes(0x9000, 0x10)[..]);

        let host = TestHost::new();
        assert_eq!(run_on(&host, &dev, 0x1000, 0x2000, 1, DIR_MEMORY_TO_MEMORY), Ok(()));
        let messages = host.messages();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("DMA to a page the driver did not hand off: page 0x2000"), "{}", messages[0]);
        assert!(messages[1].starts_with("DMA from a page the driver did not hand off: page 0x1000"), "{}", messages[1]);
    }

    #[test]
    fn a_transfer_touching_a_forbidden_frame_is_refused_whole_and_copies_nothing() {
        let host = TestHost::handing_off_all();
        let dev = device_memory();
        host.fill_pattern(0x3000, 0x2000, 1);
        host.forbid(0x9000);
        let before = host.bytes(0x8000, 0x2000);
        // The write side crosses into the forbidden page only at its end.
        assert_eq!(run_on(&host, &dev, 0x3000, 0x8800, 0x1000, DIR_MEMORY_TO_MEMORY), Err(ERROR_FORBIDDEN));
        assert_eq!(run_on(&host, &dev, 0, 0x9ff8, 8, DIR_FROM_DEVICE), Err(ERROR_FORBIDDEN));
        assert_eq!(run_on(&host, &dev, 0x9000, 0, 8, DIR_TO_DEVICE), Err(ERROR_FORBIDDEN), "reading one is refused too");
        assert_eq!(host.bytes(0x8000, 0x2000), before, "nothing of a refused transfer lands");
        assert_eq!(lock(&dev)[..8], [0; 8], "nor in device memory");
        let messages = host.messages();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(
            messages[0].starts_with("DMA writes page 0x9000, which no device may touch (page 0x9000, a page table)"),
            "{}",
            messages[0]
        );
        assert!(messages[2].starts_with("DMA reads page 0x9000, which"), "{}", messages[2]);
        assert!(host.kinds().iter().all(|k| k.as_str() == "dma.forbidden-frame"), "{:?}", host.kinds());
    }

    #[test]
    fn handed_off_pages_are_no_violation() {
        let host = TestHost::new();
        let dev = device_memory();
        for page in [0x3000, 0x4000, 0x7000] {
            host.hand_off(page);
        }
        assert_eq!(run_on(&host, &dev, 0x3000, 0x7000, 0x1000, DIR_MEMORY_TO_MEMORY), Ok(()));
        assert_eq!(run_on(&host, &dev, 0x3ff0, 0, 0x20, DIR_TO_DEVICE), Ok(()));
        assert_eq!(run_on(&host, &dev, 0, 0x7fff, 1, DIR_FROM_DEVICE), Ok(()));
        assert!(host.messages().is_empty(), "{:?}", host.messages());
    }
}
