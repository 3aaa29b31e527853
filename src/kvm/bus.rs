//! The I/O port bus: which device answers which port.

use kmemvisor_abi::{HYPERCALL_PORT, NULL_DEVICE_PORT};

/// A device on the port bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortDevice {
    /// The hypercall doorbell.
    Hypercall,
    /// Discards writes: the raw exit floor for `kmemvisor bench`.
    Null,
}

/// Port ranges and their devices.
#[derive(Debug)]
pub struct PortBus {
    ranges: Vec<(u16, u16, PortDevice)>,
}

impl Default for PortBus {
    fn default() -> PortBus {
        PortBus { ranges: vec![(HYPERCALL_PORT, 1, PortDevice::Hypercall), (NULL_DEVICE_PORT, 1, PortDevice::Null)] }
    }
}

impl PortBus {
    /// The device at `port`, if any.
    pub fn device(&self, port: u16) -> Option<PortDevice> {
        self.ranges
            .iter()
            .find(|&&(base, len, _)| port >= base && u32::from(port) < u32::from(base) + u32::from(len))
            .map(|&(_, _, device)| device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_map_to_their_devices_and_nothing_else() {
        let bus = PortBus::default();
        assert_eq!(bus.device(HYPERCALL_PORT), Some(PortDevice::Hypercall));
        assert_eq!(bus.device(NULL_DEVICE_PORT), Some(PortDevice::Null));
        for port in [0, 0x80, HYPERCALL_PORT - 1, NULL_DEVICE_PORT + 1, u16::MAX] {
            assert_eq!(bus.device(port), None, "{port:#x}");
        }
    }
}
