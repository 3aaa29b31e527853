//! Misuse of the DMA engine's registers: a 4-byte load, an unaligned load, a store to a read-only register, a load of no register, a store past the channels, a doorbell while busy: six violations, exit 65. Run with --dma-latency 50.
//!
//! The registers take aligned 8-byte loads and stores only. Each access
//! below is a violation; a bad load reads all-ones and a bad store is
//! ignored. The last rings a channel's doorbell while its transfer is in
//! flight (the run needs `--dma-latency` long enough, e.g. 50ms, for the
//! transfer to still be in flight): the first transfer completes, the
//! second is dropped, and the channel shows `ERROR_BUSY`.
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::dma::{
    DIR_TO_DEVICE, DMA_CHANNEL_STRIDE, DMA_CHANNELS, DmaEngine, ERROR_BUSY, REG_COMPLETED, REG_DOORBELL, REG_SOURCE, REG_STATUS,
    STATUS_BUSY, STATUS_IDLE,
};
use kmemvisor_guest::println;
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, XMEM_HIDE, XMEM_UNHIDE, Xmem};

kmemvisor_firmware::entry!(main);

fn main() -> u32 {
    let engine = match DmaEngine::map() {
        Ok(engine) => engine,
        Err(status) => {
            println!("xmem-misuse-device: mapping the DMA engine failed: {}", status.name());
            return 1;
        }
    };
    let base = engine.base();
    let c = engine.channel(2);
    let at = |reg: u64| base + 2 * DMA_CHANNEL_STRIDE + reg;
    // SAFETY: each access below is inside the mapped register window; the device
    // ignores bad stores and answers bad loads with all-ones.
    let narrow = unsafe { read_volatile(at(REG_SOURCE) as *const u32) };
    // SAFETY: as above.
    let unaligned = unsafe { read_volatile((at(REG_SOURCE) + 4) as *const u64) };
    // SAFETY: as above.
    unsafe { write_volatile(at(REG_STATUS) as *mut u64, 0x1234) };
    // SAFETY: as above.
    let nothing = unsafe { read_volatile(at(0x50) as *const u64) };
    // SAFETY: as above: past the last channel, inside the window's page.
    unsafe { write_volatile((base + DMA_CHANNELS * DMA_CHANNEL_STRIDE) as *mut u64, 0x55) };
    let status = engine.status(c);
    println!(
        "xmem-misuse-device: 4-byte load {narrow:#x}, unaligned load {unaligned:#x}, load of no register {nothing:#x}; status after a store to it: {status}"
    );

    // The doorbell while busy: a transfer to the device from a hidden page.
    let block = aix::xmalloc(4096, 12, Heap::PINNED) as u64;
    let mut d = Xmem::default();
    if block == 0 || xmem::xmattach(block, 4096, &mut d, SYS_ADSPACE).is_err() {
        println!("xmem-misuse-device: setup failed");
        return 1;
    }
    let Ok(real) = xmem::xmemdma(&d, block, XMEM_HIDE) else {
        println!("xmem-misuse-device: xmemdma failed");
        return 1;
    };
    // SAFETY: the page is handed off; the device only reads it.
    unsafe { engine.start(c, real, 0, 4096, DIR_TO_DEVICE) };
    let in_flight = engine.status(c);
    // SAFETY: rings again while the transfer is in flight: dropped.
    unsafe { engine.write_reg(c, REG_DOORBELL, 1) };
    let result = engine.wait(c);
    let completed = engine.read_reg(c, REG_COMPLETED);
    println!("xmem-misuse-device: doorbell while busy (status {in_flight}): {result:?}, {completed} completed");
    let cleaned = (xmem::xmemdma(&d, block, XMEM_UNHIDE).map(drop), xmem::xmdetach(&mut d));
    // SAFETY: detached and unused.
    let freed = unsafe { aix::xmfree(block as *mut u8, Heap::PINNED) };
    // SAFETY: no transfer runs and nothing uses the window any more.
    let unmapped = unsafe { engine.unmap() };
    let expected = narrow == u32::MAX
        && unaligned == u64::MAX
        && nothing == u64::MAX
        && status == STATUS_IDLE
        && in_flight == STATUS_BUSY
        && result == Err(ERROR_BUSY)
        && completed == 1;
    if !expected || cleaned != (Ok(()), Ok(())) || freed != 0 || unmapped != Ok(()) {
        println!("xmem-misuse-device: unexpected answers; cleanup {cleaned:?} {freed} {:?}", unmapped.map_err(Status::name));
        return 1;
    }
    println!("xmem-misuse-device: 6 misuses made");
    0
}
