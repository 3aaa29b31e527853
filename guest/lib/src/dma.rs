//! A small driver for the DMA engine (see [`abi::dma`](crate::abi::dma)): a
//! device behind an MMIO window that copies between guest RAM and its own
//! memory on a host thread, as a bus-master would.
//!
//! [`DmaEngine::map`] maps the register window once, with the DG/UX services
//! (an unwired page, then `vm_map_physical_memory` of [`DMA_ENGINE_GPA`] over
//! it), and every later call, from any vCPU, returns the same handle. Each of
//! the [`DMA_CHANNELS`] channels runs one transfer at a time:
//!
//! ```no_run
//! use kmemvisor_guest::dma::{DIR_FROM_DEVICE, DmaEngine};
//! use kmemvisor_guest::xmem::{self, XMEM_HIDE, XMEM_UNHIDE, Xmem};
//!
//! /// Has the device fill the attached, pinned page at `page` from its memory.
//! fn fill(buffer: &Xmem, page: u64, device_offset: u64) -> Result<(), u64> {
//!     let engine = DmaEngine::map().map_err(|status| status.code())?;
//!     let real = xmem::xmemdma(buffer, page, XMEM_HIDE).map_err(|status| status.code())?;
//!     let ch = engine.channel(0);
//!     // SAFETY: the page is handed off, and nothing reads it until the
//!     // transfer is done.
//!     unsafe { engine.start(ch, device_offset, real, 4096, DIR_FROM_DEVICE) };
//!     let done = engine.wait(ch); // polls STATUS: Ok, or the ERROR_* code
//!     xmem::xmemdma(buffer, page, XMEM_UNHIDE).map_err(|status| status.code())?;
//!     done
//! }
//! ```
//!
//! Every register access is an aligned 8-byte volatile load or store, one
//! MMIO exit each (tens of µs): [`DmaEngine::wait`] polls, so it costs one
//! exit per poll. The device checks that every guest page it reads or writes
//! was handed off with `xmemdma(XMEM_HIDE)`; a transfer that touches any other
//! page still happens, and is a violation.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use kmemvisor_abi::Status;

use crate::dgux::{self, MAP_SHARED, PROT_READ, PROT_WRITE, VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK, VM_PAGE_ALIGNED};

pub use kmemvisor_abi::dma::{
    DIR_FROM_DEVICE, DIR_MEMORY_TO_MEMORY, DIR_TO_DEVICE, DMA_CHANNEL_STRIDE, DMA_CHANNELS, DMA_DEVICE_MEMORY, DMA_ENGINE_GPA,
    DMA_ENGINE_ID, DMA_ENGINE_SIZE, DMA_MAX_TRANSFER, ERROR_BAD_DIRECTION, ERROR_BAD_LENGTH, ERROR_BUSY,
    ERROR_OUTSIDE_DEVICE_MEMORY, ERROR_OUTSIDE_RAM, REG_COMPLETED, REG_DESTINATION, REG_DIRECTION, REG_DOORBELL, REG_ERROR,
    REG_ID, REG_INTERRUPT, REG_LENGTH, REG_SOURCE, REG_STATUS, STATUS_BUSY, STATUS_DONE, STATUS_ERROR, STATUS_IDLE,
};

/// Where the window is mapped: 0 while unmapped, [`MAPPING`] while one vCPU
/// maps it, the kernel address of the mapping after.
static WINDOW: AtomicU64 = AtomicU64::new(0);
/// [`WINDOW`] while a vCPU is mapping the window.
const MAPPING: u64 = 1;

/// The mapped register window. Cheap to copy; every copy names the same
/// mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaEngine {
    base: u64,
}

/// One channel of the engine, `0..DMA_CHANNELS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel(u64);

impl Channel {
    /// The channel's number.
    pub fn index(self) -> u64 {
        self.0
    }
}

impl DmaEngine {
    /// Maps the register window, or returns the mapping made already. Fails
    /// with the status of the DG/UX get (`ENOMEM`) or of
    /// `vm_map_physical_memory`.
    pub fn map() -> Result<DmaEngine, Status> {
        loop {
            match WINDOW.compare_exchange(0, MAPPING, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let mapped = map_window();
                    WINDOW.store(*mapped.as_ref().unwrap_or(&0), Ordering::Release);
                    return mapped.map(|base| DmaEngine { base });
                }
                Err(MAPPING) => crate::smp::relax(),
                Err(base) => return Ok(DmaEngine { base }),
            }
        }
    }

    /// Unmaps the window and releases the page it was mapped over, so that
    /// the guest exits with nothing allocated; the next [`map`](Self::map)
    /// maps it again.
    ///
    /// # Safety
    ///
    /// No vCPU may use a handle of this mapping afterwards, nor may a
    /// transfer be left running that the driver still waits for.
    pub unsafe fn unmap(self) -> Result<(), Status> {
        let bytes = DMA_ENGINE_SIZE;
        // SAFETY: the caller guarantees that nothing uses the window any more.
        let status = unsafe { dgux::raw::vm_unmap_physical_memory(self.base, bytes, u64::from(KERNEL_UNMAP)) };
        if status != Status::OK {
            return Err(status);
        }
        // SAFETY: the page was ours alone, and nothing uses it.
        let status = unsafe { dgux::raw::vm_release_unwired_memory(self.base, bytes) };
        WINDOW.store(0, Ordering::Release);
        if status != Status::OK {
            return Err(status);
        }
        Ok(())
    }

    /// The kernel address the window is mapped at.
    pub fn base(self) -> u64 {
        self.base
    }

    /// Channel `n`.
    ///
    /// # Panics
    ///
    /// If `n` is not below [`DMA_CHANNELS`].
    pub fn channel(self, n: u64) -> Channel {
        assert!(n < DMA_CHANNELS, "DMA channel {n} does not exist (the engine has {DMA_CHANNELS})");
        Channel(n)
    }

    /// The engine's identification, [`DMA_ENGINE_ID`] ("KMVDMA01").
    pub fn id(self) -> u64 {
        self.read_reg(Channel(0), REG_ID)
    }

    /// The address of register `reg` of `channel`.
    ///
    /// # Panics
    ///
    /// If `reg` is not an 8-byte-aligned offset below [`DMA_CHANNEL_STRIDE`].
    // Register accesses are inlined into the driver: the VMM names the
    // function and line of the access (a doorbell's is a DMA violation's
    // site), which should be the driver's, not this library's.
    #[inline(always)]
    fn register(self, channel: Channel, reg: u64) -> u64 {
        assert!(reg < DMA_CHANNEL_STRIDE && reg.is_multiple_of(8), "no DMA register at offset {reg:#x}");
        self.base + channel.0 * DMA_CHANNEL_STRIDE + reg
    }

    /// Reads register `reg` (a `REG_*` offset) of `channel`: one 8-byte load.
    #[inline(always)]
    pub fn read_reg(self, channel: Channel, reg: u64) -> u64 {
        // SAFETY: the address lies in the mapped register window, 8-byte
        // aligned; a load of a register has no side effect on memory.
        unsafe { read_volatile(self.register(channel, reg) as *const u64) }
    }

    /// Writes `value` to register `reg` of `channel`: one 8-byte store.
    ///
    /// # Safety
    ///
    /// A store to [`REG_DOORBELL`] starts the transfer the channel's
    /// registers describe: the device then writes its destination, which
    /// must be memory handed off for it (see [`start`](Self::start)).
    #[inline(always)]
    pub unsafe fn write_reg(self, channel: Channel, reg: u64, value: u64) {
        // SAFETY: the address lies in the mapped register window, 8-byte
        // aligned; the caller vouches for what the store starts.
        unsafe { write_volatile(self.register(channel, reg) as *mut u64, value) }
    }

    /// Starts a transfer of `length` bytes on `channel` in `direction`
    /// ([`DIR_TO_DEVICE`], [`DIR_FROM_DEVICE`], [`DIR_MEMORY_TO_MEMORY`]).
    /// `source` and `destination` are guest-physical addresses (what
    /// `xmemdma` returns), or device-memory offsets on the device's side.
    /// Writes SOURCE, DESTINATION, LENGTH, DIRECTION, then DOORBELL.
    ///
    /// # Safety
    ///
    /// The device writes `length` bytes at `destination` later, on its own
    /// thread: that memory must be handed off (hidden) and nothing may rely
    /// on its contents until the transfer is done.
    #[inline(always)]
    pub unsafe fn start(self, channel: Channel, source: u64, destination: u64, length: u64, direction: u64) {
        // SAFETY: the caller vouches for the transfer.
        unsafe {
            self.write_reg(channel, REG_SOURCE, source);
            self.write_reg(channel, REG_DESTINATION, destination);
            self.write_reg(channel, REG_LENGTH, length);
            self.write_reg(channel, REG_DIRECTION, direction);
            self.write_reg(channel, REG_DOORBELL, 1);
        }
    }

    /// The channel's status: one of the `STATUS_*` values.
    pub fn status(self, channel: Channel) -> u64 {
        self.read_reg(channel, REG_STATUS)
    }

    /// Why the channel's last transfer failed (`ERROR_*`), 0 otherwise.
    pub fn error(self, channel: Channel) -> u64 {
        self.read_reg(channel, REG_ERROR)
    }

    /// The transfers the channel completed since reset.
    pub fn completed(self, channel: Channel) -> u64 {
        self.read_reg(channel, REG_COMPLETED)
    }

    /// Polls the channel until its transfer is done (`Ok`) or failed
    /// (`Err` with the `ERROR_*` code). Spins forever on a channel that never
    /// started one.
    pub fn wait(self, channel: Channel) -> Result<(), u64> {
        loop {
            match self.status(channel) {
                STATUS_DONE => return Ok(()),
                STATUS_ERROR => return Err(self.error(channel)),
                _ => core::hint::spin_loop(),
            }
        }
    }

    /// [`start`](Self::start), then [`wait`](Self::wait).
    ///
    /// # Safety
    ///
    /// As for [`start`](Self::start).
    pub unsafe fn transfer(
        self,
        channel: Channel,
        source: u64,
        destination: u64,
        length: u64,
        direction: u64,
    ) -> Result<(), u64> {
        // SAFETY: the caller vouches for the transfer.
        unsafe { self.start(channel, source, destination, length, direction) };
        self.wait(channel)
    }
}

/// The kernel-space control flag of `vm_unmap_physical_memory`.
const KERNEL_UNMAP: u32 = dgux::VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK;

/// Gets an unwired page and maps the register window over it.
fn map_window() -> Result<u64, Status> {
    let bytes = DMA_ENGINE_SIZE;
    let (status, page) = dgux::raw::vm_perhaps_get_unwired_memory(bytes, u64::from(VM_PAGE_ALIGNED));
    if status != Status::OK {
        return Err(status);
    }
    let access = u64::from(PROT_READ | PROT_WRITE);
    let control = u64::from(VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK);
    // SAFETY: the page is a fresh unwired allocation of ours that nothing
    // references; from now on it shows the device's registers.
    let status =
        unsafe { dgux::raw::vm_map_physical_memory(page, DMA_ENGINE_GPA, bytes, access, MAP_SHARED as u32 as u64, control) };
    if status != Status::OK {
        // SAFETY: the page is ours and unused.
        unsafe { dgux::raw::vm_release_unwired_memory(page, bytes) };
        return Err(status);
    }
    Ok(page)
}
