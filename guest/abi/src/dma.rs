//! The DMA engine: a device with an MMIO register window that copies between
//! guest RAM and its own memory on a host thread, as a bus-master would.
//!
//! A driver maps [`DMA_ENGINE_GPA`] (with `vm_map_physical_memory`) and uses
//! aligned 8-byte loads and stores on the registers below. The engine has
//! [`DMA_CHANNELS`] independent channels, each with the same registers at
//! `channel * DMA_CHANNEL_STRIDE + REG_*`, so that several vCPUs can drive it
//! at once. Addresses are guest-physical (what `xmemdma` returns); device
//! memory (shared by the channels) is addressed by offset. A transfer starts
//! when [`REG_DOORBELL`] is written and completes later, after the configured
//! latency; the driver polls [`REG_STATUS`].

use crate::layout::DEVICE_WINDOW_GPA;

/// Guest-physical address of the register window.
pub const DMA_ENGINE_GPA: u64 = DEVICE_WINDOW_GPA;
/// Size of the register window.
pub const DMA_ENGINE_SIZE: u64 = 0x1000;
/// Number of channels.
pub const DMA_CHANNELS: u64 = 8;
/// Distance between two channels' registers.
pub const DMA_CHANNEL_STRIDE: u64 = 0x100;

/// Read-only: [`DMA_ENGINE_ID`].
pub const REG_ID: u64 = 0x00;
/// Source: a guest-physical address, or a device-memory offset for [`DIR_FROM_DEVICE`].
pub const REG_SOURCE: u64 = 0x08;
/// Destination: a guest-physical address, or a device-memory offset for [`DIR_TO_DEVICE`].
pub const REG_DESTINATION: u64 = 0x10;
/// Bytes to move (1 to [`DMA_MAX_TRANSFER`]).
pub const REG_LENGTH: u64 = 0x18;
/// One of the `DIR_*` values.
pub const REG_DIRECTION: u64 = 0x20;
/// Write any value: start the transfer the registers describe.
pub const REG_DOORBELL: u64 = 0x28;
/// Read-only: one of the `STATUS_*` values.
pub const REG_STATUS: u64 = 0x30;
/// Read-only: why the last transfer failed (`ERROR_*`), 0 otherwise.
pub const REG_ERROR: u64 = 0x38;
/// Read-only: transfers completed since reset.
pub const REG_COMPLETED: u64 = 0x40;
/// Read/write: 1 raises the interrupt [`INTERRUPT_VECTOR`](crate::image::INTERRUPT_VECTOR)
/// on the vCPU that rang the doorbell when the transfer ends; 0 (the default) does not.
pub const REG_INTERRUPT: u64 = 0x48;

/// The value of [`REG_ID`]: "KMVDMA01" in little-endian bytes.
pub const DMA_ENGINE_ID: u64 = u64::from_le_bytes(*b"KMVDMA01");

/// Guest RAM → device memory.
pub const DIR_TO_DEVICE: u64 = 1;
/// Device memory → guest RAM.
pub const DIR_FROM_DEVICE: u64 = 2;
/// Guest RAM → guest RAM.
pub const DIR_MEMORY_TO_MEMORY: u64 = 3;

/// Nothing started yet.
pub const STATUS_IDLE: u64 = 0;
/// A transfer is in flight.
pub const STATUS_BUSY: u64 = 1;
/// The last transfer completed.
pub const STATUS_DONE: u64 = 2;
/// The last transfer failed; [`REG_ERROR`] says why.
pub const STATUS_ERROR: u64 = 3;

/// A guest-physical range lies (partly) outside guest RAM.
pub const ERROR_OUTSIDE_RAM: u64 = 1;
/// The length is 0 or above [`DMA_MAX_TRANSFER`].
pub const ERROR_BAD_LENGTH: u64 = 2;
/// The direction is not one of the `DIR_*` values.
pub const ERROR_BAD_DIRECTION: u64 = 3;
/// The doorbell rang while the channel's transfer was in flight (that
/// transfer completes; the new one is dropped).
pub const ERROR_BUSY: u64 = 4;
/// A device-memory range lies (partly) outside [`DMA_DEVICE_MEMORY`].
pub const ERROR_OUTSIDE_DEVICE_MEMORY: u64 = 5;
/// A guest page of the transfer is a frame no device may touch (a page
/// table, the CPU tables, the boot-info or a vCPU page, the image or a
/// module, free memory): nothing was copied, and a violation is recorded.
pub const ERROR_FORBIDDEN: u64 = 6;

/// Size of the device's own memory.
pub const DMA_DEVICE_MEMORY: u64 = 1 << 20;
/// Largest transfer.
pub const DMA_MAX_TRANSFER: u64 = 1 << 20;
