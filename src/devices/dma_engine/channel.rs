//! One channel's registers, and the decoding of a window offset into a
//! channel and a register, with every way a driver can misuse the window.

use std::fmt;

use kmemvisor_abi::dma::*;

use super::transfer::Transfer;
use crate::checker::ViolationKind;

/// A register of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Register {
    Id,
    Source,
    Destination,
    Length,
    Direction,
    Doorbell,
    Status,
    Error,
    Completed,
    Interrupt,
}

impl Register {
    fn at(offset: u64) -> Option<Register> {
        Some(match offset {
            REG_ID => Register::Id,
            REG_SOURCE => Register::Source,
            REG_DESTINATION => Register::Destination,
            REG_LENGTH => Register::Length,
            REG_DIRECTION => Register::Direction,
            REG_DOORBELL => Register::Doorbell,
            REG_STATUS => Register::Status,
            REG_ERROR => Register::Error,
            REG_COMPLETED => Register::Completed,
            REG_INTERRUPT => Register::Interrupt,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Register::Id => "REG_ID",
            Register::Source => "REG_SOURCE",
            Register::Destination => "REG_DESTINATION",
            Register::Length => "REG_LENGTH",
            Register::Direction => "REG_DIRECTION",
            Register::Doorbell => "REG_DOORBELL",
            Register::Status => "REG_STATUS",
            Register::Error => "REG_ERROR",
            Register::Completed => "REG_COMPLETED",
            Register::Interrupt => "REG_INTERRUPT",
        }
    }

    fn read_only(self) -> bool {
        matches!(self, Register::Id | Register::Status | Register::Error | Register::Completed)
    }
}

/// A load or a store (with the value stored), for decoding and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Load,
    Store(u64),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Load => f.write_str("load"),
            Op::Store(value) => write!(f, "store of {value:#x}"),
        }
    }
}

/// Why an access to the register window is misuse; the message is the violation's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum MmioMisuse {
    /// Not an 8-byte access.
    #[error("DMA engine {op} of {size} bytes at offset {offset:#x}: the registers take 8-byte loads and stores only")]
    BadSize { op: Op, offset: u64, size: usize },
    /// Not 8-byte aligned.
    #[error("DMA engine {op} at offset {offset:#x}, which is not 8-byte aligned")]
    Unaligned { op: Op, offset: u64 },
    /// Beyond the last channel's registers.
    #[error(
        "DMA engine {op} at offset {offset:#x}, past the last channel (the {DMA_CHANNELS} channels end at {end:#x})",
        end = DMA_CHANNELS * DMA_CHANNEL_STRIDE
    )]
    PastChannels { op: Op, offset: u64 },
    /// Inside a channel but at no register.
    #[error("DMA engine {op} at offset {offset:#x}: channel {channel} has no register at {register:#x}")]
    UnknownRegister { op: Op, offset: u64, channel: usize, register: u64 },
    /// A store to a register the driver may only read.
    #[error("DMA engine {op} to the read-only register {name} of channel {channel}")]
    ReadOnly { op: Op, channel: usize, name: &'static str },
}

impl MmioMisuse {
    /// The rule the access broke.
    pub(super) fn kind(&self) -> ViolationKind {
        match self {
            MmioMisuse::BadSize { .. } => ViolationKind::DmaRegisterAccessSize,
            MmioMisuse::Unaligned { .. } => ViolationKind::DmaRegisterUnaligned,
            MmioMisuse::PastChannels { .. } => ViolationKind::DmaRegisterPastChannels,
            MmioMisuse::UnknownRegister { .. } => ViolationKind::DmaUnknownRegister,
            MmioMisuse::ReadOnly { .. } => ViolationKind::DmaReadOnlyRegisterStore,
        }
    }
}

/// The channel and register an access at `offset` of `size` bytes reaches,
/// checked in the order a reader would: size, alignment, range, register,
/// and for stores whether the register is writable.
pub(super) fn decode(offset: u64, size: usize, op: Op) -> Result<(usize, Register), MmioMisuse> {
    if size != 8 {
        return Err(MmioMisuse::BadSize { op, offset, size });
    }
    if !offset.is_multiple_of(8) {
        return Err(MmioMisuse::Unaligned { op, offset });
    }
    let channel = offset / DMA_CHANNEL_STRIDE;
    if channel >= DMA_CHANNELS {
        return Err(MmioMisuse::PastChannels { op, offset });
    }
    // Below DMA_CHANNELS, so it fits any usize.
    let channel = channel as usize;
    let register = offset % DMA_CHANNEL_STRIDE;
    let Some(reg) = Register::at(register) else {
        return Err(MmioMisuse::UnknownRegister { op, offset, channel, register });
    };
    if matches!(op, Op::Store(_)) && reg.read_only() {
        return Err(MmioMisuse::ReadOnly { op, channel, name: reg.name() });
    }
    Ok((channel, reg))
}

/// A channel's registers and the state the driver sees through them.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Channel {
    source: u64,
    destination: u64,
    length: u64,
    direction: u64,
    status: u64,
    error: u64,
    completed: u64,
    // The doorbell rang again while a transfer was in flight: that transfer
    // finishes, then the channel reports ERROR_BUSY so the driver learns its
    // second request was dropped.
    rung_while_busy: bool,
    // A transfer ended and the driver has not read STATUS since.
    unacknowledged: bool,
    // REG_INTERRUPT: raise the completion interrupt.
    interrupt: bool,
}

impl Channel {
    /// What a load of `reg` returns; a load of STATUS after a transfer
    /// ended acknowledges its completion.
    pub(super) fn read(&mut self, reg: Register) -> u64 {
        if reg == Register::Status && self.status != STATUS_BUSY {
            self.unacknowledged = false;
        }
        match reg {
            Register::Id => DMA_ENGINE_ID,
            Register::Source => self.source,
            Register::Destination => self.destination,
            Register::Length => self.length,
            Register::Direction => self.direction,
            // The doorbell has no state; it reads as 0 rather than as misuse
            // because nothing the driver could learn from it is wrong.
            Register::Doorbell => 0,
            Register::Status => self.status,
            Register::Error => self.error,
            Register::Completed => self.completed,
            Register::Interrupt => u64::from(self.interrupt),
        }
    }

    /// A store of `value` to a writable register other than the doorbell.
    pub(super) fn write(&mut self, reg: Register, value: u64) {
        match reg {
            Register::Source => self.source = value,
            Register::Destination => self.destination = value,
            Register::Length => self.length = value,
            Register::Direction => self.direction = value,
            // Only bit 0 means something; the others read back as 0.
            Register::Interrupt => self.interrupt = value & 1 != 0,
            Register::Id | Register::Doorbell | Register::Status | Register::Error | Register::Completed => {}
        }
    }

    /// Rings the doorbell: the transfer the registers describe, latched so
    /// later stores do not change it, or `None` if one is already in flight.
    pub(super) fn ring(&mut self) -> Option<Transfer> {
        if self.status == STATUS_BUSY {
            self.rung_while_busy = true;
            return None;
        }
        self.status = STATUS_BUSY;
        self.error = 0;
        Some(Transfer { source: self.source, destination: self.destination, length: self.length, direction: self.direction })
    }

    /// Whether a transfer's end raises the completion interrupt.
    pub(super) fn interrupts(&self) -> bool {
        self.interrupt
    }

    /// Whether a transfer ended that the driver has not looked at (STATUS).
    pub(super) fn unacknowledged(&self) -> bool {
        self.unacknowledged
    }

    /// Ends the transfer in flight with `result` (an `ERROR_*` code on failure).
    pub(super) fn finish(&mut self, result: Result<(), u64>) {
        // The data of a successful transfer moved even if the doorbell rang
        // again meanwhile, so it still counts.
        if result.is_ok() {
            self.completed = self.completed.wrapping_add(1);
        }
        let result = if std::mem::take(&mut self.rung_while_busy) { Err(ERROR_BUSY) } else { result };
        self.unacknowledged = true;
        (self.status, self.error) = match result {
            Ok(()) => (STATUS_DONE, 0),
            Err(code) => (STATUS_ERROR, code),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_finds_channel_and_register() {
        assert_eq!(decode(3 * DMA_CHANNEL_STRIDE + REG_LENGTH, 8, Op::Load), Ok((3, Register::Length)));
        assert_eq!(decode(7 * DMA_CHANNEL_STRIDE + REG_DOORBELL, 8, Op::Store(1)), Ok((7, Register::Doorbell)));
    }

    #[test]
    fn decode_checks_size_then_alignment_then_range_then_register() {
        assert!(matches!(decode(0x801, 4, Op::Load), Err(MmioMisuse::BadSize { size: 4, .. })));
        assert!(matches!(decode(0x801, 8, Op::Load), Err(MmioMisuse::Unaligned { offset: 0x801, .. })));
        assert!(matches!(decode(0x800, 8, Op::Load), Err(MmioMisuse::PastChannels { offset: 0x800, .. })));
        assert!(matches!(decode(u64::MAX - 7, 8, Op::Load), Err(MmioMisuse::PastChannels { .. })));
        assert!(matches!(decode(0x150, 8, Op::Load), Err(MmioMisuse::UnknownRegister { channel: 1, register: 0x50, .. })));
        assert_eq!(
            decode(REG_STATUS, 8, Op::Store(5)),
            Err(MmioMisuse::ReadOnly { op: Op::Store(5), channel: 0, name: "REG_STATUS" })
        );
    }

    #[test]
    fn ring_latches_and_busy_ring_ends_in_error_busy() {
        let mut c = Channel::default();
        c.write(Register::Length, 16);
        let t = c.ring().expect("idle channel rings");
        c.write(Register::Length, 32);
        assert_eq!(t.length, 16);
        assert_eq!(c.read(Register::Status), STATUS_BUSY);
        assert!(c.ring().is_none());
        c.finish(Ok(()));
        assert_eq!((c.read(Register::Status), c.read(Register::Error)), (STATUS_ERROR, ERROR_BUSY));
        assert_eq!(c.read(Register::Completed), 1);
        c.ring().expect("finished channel rings");
        assert_eq!(c.read(Register::Error), 0);
        c.finish(Err(ERROR_BAD_LENGTH));
        assert_eq!((c.read(Register::Status), c.read(Register::Error)), (STATUS_ERROR, ERROR_BAD_LENGTH));
        assert_eq!(c.read(Register::Completed), 1);
    }
}
