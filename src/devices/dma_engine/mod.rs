//! The DMA engine: the device behind the register window of
//! `kmemvisor_abi::dma`, a bus-master that copies between guest RAM and its
//! own memory, and reports every transfer that touches a page the driver did
//! not hand off.
//!
//! Device time is virtual: it counts guest exits, of every vCPU. A doorbell
//! queues its transfer to run `--dma-latency` (plus a seeded share of
//! `--dma-jitter`) exits later, and the vCPU thread whose exit reaches that
//! count runs it ([`DmaEngine::advance`]) — no device thread, no host clock,
//! so the same guest and options give the same device events on every run.
//! At the doorbell the frames the transfer will touch go into the frame
//! ledger, so a driver that ends a hand-off too early is caught at that call
//! whatever the timing.

mod channel;
mod delay;
#[cfg(test)]
mod testing;
mod transfer;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kmemvisor_abi::dma::*;

use self::channel::{Channel, Op, Register};
pub use self::delay::Delays;
use self::transfer::{Transfer, TransferError};
use crate::checker::{Leak, ViolationKind};
use crate::memory_model::ledger::TransferRanges;
use crate::sync::lock;

/// The default latency: a transfer runs at the end of the exit after its
/// doorbell's, so it is still queued when the next call is handled.
pub const DEFAULT_LATENCY: u64 = 1;
/// The largest latency or jitter, in exits (a run that long would take years).
pub const MAX_EXITS: u64 = 1 << 40;

/// Latency, jitter and seed of the engine (`--dma-latency`, `--dma-jitter`,
/// `--seed`), in guest exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaConfig {
    /// The fewest exits from a doorbell to its transfer.
    pub latency: u64,
    /// The most exits added to the latency, drawn uniformly per transfer.
    pub jitter: u64,
    /// Seeds the jitter draws: a seed reproduces the same delays.
    pub seed: u64,
}

impl Default for DmaConfig {
    fn default() -> DmaConfig {
        DmaConfig { latency: DEFAULT_LATENCY, jitter: 0, seed: 1 }
    }
}

impl DmaConfig {
    /// The delays of successive transfers under this configuration.
    pub fn delays(&self) -> Delays {
        Delays::new(*self)
    }
}

/// What the engine needs from the VM. The VM state implements it.
pub trait DmaHost: Sync {
    /// Guest RAM, through the VMM's own mapping (reachable even while a page is hidden from the vCPUs).
    fn memory(&self) -> &crate::memory_model::ram::GuestMemoryMmap;
    /// Whether the guest-physical page at `page` (4 KiB aligned) is currently
    /// handed off to the device: hidden with xmemdma (AIX), or wired (DG/UX).
    fn handed_off(&self, page: u64) -> bool;
    /// Why the device may never touch the guest-physical page at `page`, if
    /// it may not: its frame's role forbids DMA (page tables, CPU tables, the
    /// image, …; the frame ledger decides).
    fn refusal(&self, page: u64) -> Option<String>;
    /// Records a violation of the rule `kind`, under the tag `dma`, on
    /// behalf of the register access (a doorbell's, for a transfer) that
    /// caused it; `args` are register values.
    fn violation(&self, kind: ViolationKind, access: Access, args: &[u64], message: String);
    /// A queued transfer will touch these guest-physical ranges.
    fn begin_transfer(&self, ranges: &TransferRanges);
    /// `channel`'s transfer ended and its `REG_INTERRUPT` asked for the
    /// completion interrupt on `vcpu`, the doorbell's.
    fn raise_interrupt(&self, vcpu: usize, channel: usize);
    /// The transfer rung at device time `rung` on `channel` ran (`error` 0)
    /// or failed with that `ERROR_*` code; `registers` are its source,
    /// destination, length and direction.
    fn transfer_ran(&self, channel: usize, rung: u64, error: u64, registers: [u64; 4]);
    /// The transfer announced with `ranges`, rung on `channel` by the
    /// access `doorbell`, is over: it ran and the device wrote `ranges.writes`
    /// (`wrote`), or it failed and touched nothing.
    fn end_transfer(&self, ranges: &TransferRanges, wrote: bool, channel: usize, doorbell: Access);
}

/// Who touched the register window (for violations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// The vCPU that made the access.
    pub vcpu: usize,
    /// Guest RIP at the exit of the access.
    pub rip: u64,
    /// RIP is past the accessing instruction: KVM completes an MMIO store
    /// before it exits (a load waits for its value, so RIP is still at it).
    pub completed: bool,
}

impl Access {
    /// An address within the accessing instruction, for looking up its
    /// line: the byte before RIP when RIP is past it.
    pub fn site(&self) -> u64 {
        if self.completed { self.rip.wrapping_sub(1) } else { self.rip }
    }
}

/// A rung doorbell waiting for its exit.
#[derive(Clone, Debug)]
struct Job {
    channel: usize,
    access: Access,
    transfer: Transfer,
    /// Device time of the doorbell.
    rung: u64,
    /// The exit count at whose end it runs.
    due: u64,
    /// The guest ranges it reads and writes, as announced to the host.
    ranges: TransferRanges,
}

/// What the vCPUs share, under one short-held lock.
#[derive(Clone, Debug)]
struct State {
    channels: [Channel; DMA_CHANNELS as usize],
    // FIFO over all channels: the jobs run in doorbell order.
    queue: VecDeque<Job>,
    delays: Delays,
}

/// The DMA engine device.
pub struct DmaEngine {
    config: DmaConfig,
    state: Mutex<State>,
    /// Exits handled so far, on all vCPUs: device time.
    clock: AtomicU64,
    /// The `due` of the first queued job, `u64::MAX` with none: lets an exit
    /// with nothing due skip the lock.
    next_due: AtomicU64,
    device_memory: Mutex<Vec<u8>>,
    /// A transfer to the device ran (and may have written device memory)
    /// since the engine was built or restored: a restore copies device
    /// memory back only then.
    transferred: AtomicBool,
}

impl Clone for DmaEngine {
    fn clone(&self) -> DmaEngine {
        DmaEngine {
            config: self.config,
            state: Mutex::new(lock(&self.state).clone()),
            clock: AtomicU64::new(self.clock.load(Ordering::SeqCst)),
            next_due: AtomicU64::new(self.next_due.load(Ordering::SeqCst)),
            device_memory: Mutex::new(lock(&self.device_memory).clone()),
            transferred: AtomicBool::new(self.transferred.load(Ordering::SeqCst)),
        }
    }
}

impl fmt::Debug for DmaEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaEngine").field("config", &self.config).finish_non_exhaustive()
    }
}

impl DmaEngine {
    /// An idle engine with zeroed device memory.
    pub fn new(config: DmaConfig) -> DmaEngine {
        let state = State { channels: Default::default(), queue: VecDeque::new(), delays: config.delays() };
        DmaEngine {
            config,
            state: Mutex::new(state),
            clock: AtomicU64::new(0),
            next_due: AtomicU64::new(u64::MAX),
            device_memory: Mutex::new(vec![0; DMA_DEVICE_MEMORY as usize]),
            transferred: AtomicBool::new(false),
        }
    }

    /// Everything the engine holds, as text (for state fingerprints).
    pub fn describe(&self) -> String {
        let memory = crate::snapshot::fingerprint::fnv1a(&lock(&self.device_memory));
        format!(
            "{:?} clock {} next_due {} memory {memory:#x} {:?}",
            lock(&self.state),
            self.clock.load(Ordering::SeqCst),
            self.next_due.load(Ordering::SeqCst),
            self.config
        )
    }

    /// Whether a transfer's delay was drawn from the seed so far.
    pub fn delays_drawn(&self) -> bool {
        lock(&self.state).delays.drawn()
    }

    /// Makes this engine what `saved` is, but with `seed` drawing the
    /// delays: the engine of a run with that seed, as long as `saved` drew
    /// none yet ([`DmaEngine::delays_drawn`]). Device memory is copied in
    /// place, and only if a transfer to the device ran since (it is 1 MiB).
    pub fn restore(&mut self, saved: &DmaEngine, seed: u64) {
        self.config = DmaConfig { seed, ..saved.config };
        let mut state = lock(&saved.state).clone();
        state.delays = self.config.delays();
        *self.state.get_mut().unwrap_or_else(|e| e.into_inner()) = state;
        self.clock.store(saved.clock.load(Ordering::SeqCst), Ordering::SeqCst);
        self.next_due.store(saved.next_due.load(Ordering::SeqCst), Ordering::SeqCst);
        if self.transferred.swap(false, Ordering::SeqCst) || saved.transferred.load(Ordering::SeqCst) {
            self.device_memory.get_mut().unwrap_or_else(|e| e.into_inner()).copy_from_slice(&lock(&saved.device_memory));
        }
    }

    /// An MMIO load of `size` bytes at `offset` into the window (0..DMA_ENGINE_SIZE). Misuse (size other than 8,
    /// unaligned offset, offset past the last channel or at an unknown register) is recorded through `host.violation`
    /// and reads as all-ones.
    pub fn mmio_read(&self, host: &dyn DmaHost, access: Access, offset: u64, size: usize) -> u64 {
        match channel::decode(offset, size, Op::Load) {
            Ok((channel, reg)) => lock(&self.state).channels.get_mut(channel).map_or(u64::MAX, |c| c.read(reg)),
            Err(misuse) => {
                host.violation(misuse.kind(), access, &[offset, size as u64], misuse.to_string());
                u64::MAX
            }
        }
    }

    /// An MMIO store. Same misuse rules; stores to read-only registers are misuse (violation, ignored).
    pub fn mmio_write(&self, host: &dyn DmaHost, access: Access, offset: u64, size: usize, value: u64) {
        match channel::decode(offset, size, Op::Store(value)) {
            Ok((channel, Register::Doorbell)) => self.ring(host, access, channel),
            Ok((channel, reg)) => {
                if let Some(c) = lock(&self.state).channels.get_mut(channel) {
                    c.write(reg, value);
                }
            }
            Err(misuse) => host.violation(misuse.kind(), access, &[offset, size as u64, value], misuse.to_string()),
        }
    }

    fn ring(&self, host: &dyn DmaHost, access: Access, channel: usize) {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let Some(c) = state.channels.get_mut(channel) else { return };
        match c.ring() {
            Some(transfer) => {
                let delay = state.delays.next().unwrap_or(self.config.latency);
                // This exit ends at clock + 1; a delay of 0 runs the job then.
                let rung = self.clock.load(Ordering::SeqCst);
                let due = (rung + 1).saturating_add(delay);
                let ranges = transfer::touched(host.memory(), &transfer);
                // Announced under the engine lock, before the job can run:
                // lock order is always engine, then the host's.
                host.begin_transfer(&ranges);
                if state.queue.is_empty() {
                    self.next_due.store(due, Ordering::SeqCst);
                }
                state.queue.push_back(Job { channel, access, transfer, rung, due, ranges });
            }
            None => {
                // Recorded outside the lock: the host may stop the VM.
                drop(guard);
                let message = format!("doorbell rang on channel {channel} while its transfer was in flight");
                host.violation(ViolationKind::DmaDoorbellWhileBusy, access, &[channel as u64], message);
            }
        }
    }

    /// One more exit has been handled: device time moves on by one, and the
    /// jobs due by now run on the calling thread, in doorbell order.
    pub fn advance(&self, host: &dyn DmaHost) {
        let now = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        if now < self.next_due.load(Ordering::SeqCst) {
            return;
        }
        loop {
            let job = {
                let mut state = lock(&self.state);
                if state.queue.front().is_none_or(|job| job.due > now) {
                    return;
                }
                let job = state.queue.pop_front();
                self.next_due.store(state.queue.front().map_or(u64::MAX, |next| next.due), Ordering::SeqCst);
                job
            };
            let Some(job) = job else { return };
            self.transferred.fetch_or(job.transfer.direction == DIR_TO_DEVICE, Ordering::SeqCst);
            let result = transfer::run(host, job.access, &self.device_memory, &job.transfer).map_err(TransferError::code);
            let t = &job.transfer;
            host.transfer_ran(job.channel, job.rung, result.err().unwrap_or(0), [t.source, t.destination, t.length, t.direction]);
            host.end_transfer(&job.ranges, result.is_ok(), job.channel, job.access);
            let interrupt = match lock(&self.state).channels.get_mut(job.channel) {
                Some(c) => {
                    c.finish(result);
                    c.interrupts()
                }
                None => false,
            };
            if interrupt {
                host.raise_interrupt(job.access.vcpu, job.channel);
            }
        }
    }

    /// What the driver left undone at exit: transfers still queued, and
    /// completions whose STATUS it never read.
    pub fn leaks(&self) -> Vec<Leak> {
        let state = lock(&self.state);
        let queued = state.queue.iter().map(|job| Leak {
            kind: ViolationKind::LeakDmaTransfer,
            service: "dma",
            address: job.channel as u64,
            vcpu: job.access.vcpu,
            rip: job.access.rip,
            stack: vec![job.access.site()],
            message: format!(
                "the transfer rung on channel {} at device time {} was still queued at exit: the device would still read \
                 or write guest memory",
                job.channel, job.rung
            ),
        });
        let unacknowledged = state.channels.iter().enumerate().filter(|(_, c)| c.unacknowledged()).map(|(n, _)| Leak {
            kind: ViolationKind::DmaCompletionNotAcknowledged,
            service: "dma",
            address: n as u64,
            vcpu: 0,
            rip: 0,
            stack: Vec::new(),
            message: format!(
                "channel {n} finished a transfer whose REG_STATUS the driver never read: a completion never acknowledged"
            ),
        });
        queued.chain(unacknowledged).collect()
    }

    /// Device time: exits handled so far.
    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Runs one transfer now, on the calling thread, with no latency (for `kmemvisor bench` and tests): the same
    /// checks and copy a queued transfer gets. Returns Ok(()) or Err(error code ERROR_*).
    pub fn transfer_now(
        &self,
        host: &dyn DmaHost,
        access: Access,
        source: u64,
        destination: u64,
        length: u64,
        direction: u64,
    ) -> Result<(), u64> {
        let transfer = Transfer { source, destination, length, direction };
        self.transferred.fetch_or(direction == DIR_TO_DEVICE, Ordering::SeqCst);
        transfer::run(host, access, &self.device_memory, &transfer).map_err(TransferError::code)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ACCESS, Announced, TestHost};
    use super::*;

    fn at(channel: u64, reg: u64) -> u64 {
        channel * DMA_CHANNEL_STRIDE + reg
    }

    fn read(engine: &DmaEngine, host: &TestHost, channel: u64, reg: u64) -> u64 {
        engine.mmio_read(host, ACCESS, at(channel, reg), 8)
    }

    fn start(engine: &DmaEngine, host: &TestHost, channel: u64, regs: [u64; 4]) {
        for (reg, value) in [REG_SOURCE, REG_DESTINATION, REG_LENGTH, REG_DIRECTION].into_iter().zip(regs) {
            engine.mmio_write(host, ACCESS, at(channel, reg), 8, value);
        }
        engine.mmio_write(host, ACCESS, at(channel, REG_DOORBELL), 8, 0);
    }

    /// Status and error of `channel` once the device ran its queue.
    fn outcome(engine: &DmaEngine, host: &TestHost, channel: u64) -> (u64, u64) {
        while !lock(&engine.state).queue.is_empty() {
            engine.advance(host);
        }
        (read(engine, host, channel, REG_STATUS), read(engine, host, channel, REG_ERROR))
    }

    #[test]
    fn registers_read_back_and_every_channel_has_the_id() {
        let host = TestHost::new();
        let engine = DmaEngine::new(DmaConfig::default());
        for (i, reg) in [REG_SOURCE, REG_DESTINATION, REG_LENGTH, REG_DIRECTION].into_iter().enumerate() {
            engine.mmio_write(&host, ACCESS, at(5, reg), 8, 0x1111 * (i as u64 + 1));
        }
        for (i, reg) in [REG_SOURCE, REG_DESTINATION, REG_LENGTH, REG_DIRECTION].into_iter().enumerate() {
            assert_eq!(read(&engine, &host, 5, reg), 0x1111 * (i as u64 + 1));
            assert_eq!(read(&engine, &host, 4, reg), 0);
        }
        for channel in 0..DMA_CHANNELS {
            assert_eq!(read(&engine, &host, channel, REG_ID), DMA_ENGINE_ID);
            assert_eq!(read(&engine, &host, channel, REG_STATUS), STATUS_IDLE);
            assert_eq!(read(&engine, &host, channel, REG_ERROR), 0);
            assert_eq!(read(&engine, &host, channel, REG_COMPLETED), 0);
        }
        assert!(host.messages().is_empty(), "{:?}", host.messages());
    }

    #[test]
    fn misuse_is_a_violation_and_reads_all_ones() {
        let host = TestHost::new();
        let engine = DmaEngine::new(DmaConfig::default());
        let cases = [
            (REG_SOURCE, 4, "of 4 bytes at offset 0x8", "dma.register-access-size"),
            (REG_SOURCE + 4, 8, "at offset 0xc, which is not 8-byte aligned", "dma.register-unaligned"),
            (
                at(DMA_CHANNELS, REG_ID),
                8,
                "at offset 0x800, past the last channel (the 8 channels end at 0x800)",
                "dma.register-past-channels",
            ),
            (at(2, 0x50), 8, "at offset 0x250: channel 2 has no register at 0x50", "dma.unknown-register"),
        ];
        for (i, &(offset, size, expected, kind)) in cases.iter().enumerate() {
            assert_eq!(engine.mmio_read(&host, ACCESS, offset, size), u64::MAX);
            engine.mmio_write(&host, ACCESS, offset, size, 0x55);
            let recorded = host.recorded();
            assert_eq!(recorded.len(), 2 * i + 2);
            let (load, store) = (&recorded[2 * i], &recorded[2 * i + 1]);
            assert!(load.3.contains(&format!("DMA engine load {expected}")), "{}", load.3);
            assert!(store.3.contains(&format!("DMA engine store of 0x55 {expected}")), "{}", store.3);
            assert_eq!((load.0, load.1, load.2.clone()), (ACCESS.vcpu, ACCESS.rip, vec![offset, size as u64]));
            assert_eq!(store.2, vec![offset, size as u64, 0x55]);
            assert_eq!((load.4.as_str(), store.4.as_str()), (kind, kind));
        }
        // Ignored stores left the registers alone.
        assert_eq!(read(&engine, &host, 0, REG_SOURCE), 0);
        for (reg, name) in
            [(REG_ID, "REG_ID"), (REG_STATUS, "REG_STATUS"), (REG_ERROR, "REG_ERROR"), (REG_COMPLETED, "REG_COMPLETED")]
        {
            engine.mmio_write(&host, ACCESS, at(3, reg), 8, 9);
            let message = host.messages().pop().unwrap_or_default();
            assert_eq!(host.kinds().pop().map(|k| k.as_str()), Some("dma.read-only-register-store"));
            assert_eq!(message, format!("DMA engine store of 0x9 to the read-only register {name} of channel 3"));
        }
        assert_eq!(read(&engine, &host, 3, REG_ID), DMA_ENGINE_ID);
        assert_eq!(read(&engine, &host, 3, REG_STATUS), STATUS_IDLE);
        assert_eq!(read(&engine, &host, 3, REG_COMPLETED), 0);
        assert_eq!(host.messages().len(), 12);
    }

    #[test]
    fn doorbells_move_bytes_in_all_directions_and_count() {
        let host = TestHost::handing_off_all();
        let engine = DmaEngine::new(DmaConfig::default());
        host.fill_pattern(0x2_0000, 0x1800, 5);
        start(&engine, &host, 1, [0x2_0000, 0x4000, 0x1800, DIR_TO_DEVICE]);
        assert_eq!(read(&engine, &host, 1, REG_STATUS), STATUS_BUSY);
        assert_eq!(outcome(&engine, &host, 1), (STATUS_DONE, 0));
        start(&engine, &host, 1, [0x4000, 0x3_0000, 0x1800, DIR_FROM_DEVICE]);
        start(&engine, &host, 6, [0x3_0000, 0x5_0000, 0x1800, DIR_MEMORY_TO_MEMORY]);
        assert_eq!(outcome(&engine, &host, 1), (STATUS_DONE, 0));
        assert_eq!(outcome(&engine, &host, 6), (STATUS_DONE, 0));
        assert_eq!(host.bytes(0x3_0000, 0x1800), host.bytes(0x2_0000, 0x1800));
        assert_eq!(host.bytes(0x5_0000, 0x1800), host.bytes(0x2_0000, 0x1800));
        assert_eq!(read(&engine, &host, 1, REG_COMPLETED), 2);
        assert_eq!(read(&engine, &host, 6, REG_COMPLETED), 1);
        assert!(host.messages().is_empty(), "{:?}", host.messages());
    }

    #[test]
    fn failed_transfers_show_their_code_and_touch_nothing() {
        let host = TestHost::handing_off_all();
        let engine = DmaEngine::new(DmaConfig::default());
        host.fill_pattern(0, 2 << 20, 4);
        let before = host.bytes(0, 2 << 20);
        let cases = [
            ([0x1000, 0, 0x10, 0], ERROR_BAD_DIRECTION),
            ([0x1000, 0, 0, DIR_TO_DEVICE], ERROR_BAD_LENGTH),
            ([0x1000, 0, DMA_MAX_TRANSFER + 1, DIR_TO_DEVICE], ERROR_BAD_LENGTH),
            ([0, (2 << 20) - 0x10, 0x20, DIR_FROM_DEVICE], ERROR_OUTSIDE_RAM),
            ([0x1000, u64::MAX - 0xf, 0x20, DIR_MEMORY_TO_MEMORY], ERROR_OUTSIDE_RAM),
            ([DMA_DEVICE_MEMORY, 0x1000, 0x20, DIR_FROM_DEVICE], ERROR_OUTSIDE_DEVICE_MEMORY),
        ];
        for (regs, code) in cases {
            start(&engine, &host, 0, regs);
            assert_eq!(outcome(&engine, &host, 0), (STATUS_ERROR, code), "{regs:x?}");
        }
        assert_eq!(read(&engine, &host, 0, REG_COMPLETED), 0);
        assert_eq!(host.bytes(0, 2 << 20), before);
        assert!(host.messages().is_empty(), "{:?}", host.messages());
    }

    #[test]
    fn doorbell_while_busy_finishes_the_first_then_shows_error_busy() {
        let host = TestHost::handing_off_all();
        let engine = DmaEngine::new(DmaConfig::default());
        host.fill_pattern(0x1000, 0x100, 2);
        start(&engine, &host, 4, [0x1000, 0x2000, 0x100, DIR_MEMORY_TO_MEMORY]);
        // Latched: these stores do not change the transfer in flight.
        start(&engine, &host, 4, [0x1000, 0x9000, 0x100, DIR_MEMORY_TO_MEMORY]);
        assert_eq!(host.messages(), vec!["doorbell rang on channel 4 while its transfer was in flight".to_string()]);
        assert_eq!(host.recorded()[0].2, vec![4]);
        assert_eq!(host.kinds()[0].as_str(), "dma.doorbell-while-busy");
        assert_eq!(outcome(&engine, &host, 4), (STATUS_ERROR, ERROR_BUSY));
        assert_eq!(host.bytes(0x2000, 0x100), host.bytes(0x1000, 0x100));
        assert_eq!(host.bytes(0x9000, 0x100), vec![0; 0x100]);
        assert_eq!(read(&engine, &host, 4, REG_COMPLETED), 1);
        assert_eq!(read(&engine, &host, 4, REG_DESTINATION), 0x9000);
        // The next doorbell starts afresh.
        engine.mmio_write(&host, ACCESS, at(4, REG_DOORBELL), 8, 1);
        assert_eq!((read(&engine, &host, 4, REG_STATUS), read(&engine, &host, 4, REG_ERROR)), (STATUS_BUSY, 0));
        assert_eq!(outcome(&engine, &host, 4), (STATUS_DONE, 0));
        assert_eq!(host.bytes(0x9000, 0x100), host.bytes(0x1000, 0x100));
    }

    #[test]
    fn a_transfer_runs_at_the_end_of_the_exit_its_latency_names() {
        let host = TestHost::handing_off_all();
        let engine = DmaEngine::new(DmaConfig { latency: 3, jitter: 0, seed: 0 });
        host.fill_pattern(0x1000, 0x40, 3);
        engine.advance(&host);
        // Rung during exit 2: due at the end of exit 2 + 3.
        start(&engine, &host, 7, [0x1000, 0x2ff0, 0x40, DIR_MEMORY_TO_MEMORY]);
        let ranges = TransferRanges { reads: Some(0x1000..0x1040), writes: Some(0x2ff0..0x3030) };
        assert_eq!(host.announced(), vec![Announced::Begin(ranges.clone())]);
        for exit in 2..=4 {
            engine.advance(&host);
            assert_eq!(read(&engine, &host, 7, REG_STATUS), STATUS_BUSY, "after exit {exit}");
            assert_eq!(host.bytes(0x2ff0, 0x40), vec![0; 0x40]);
        }
        engine.advance(&host);
        assert_eq!((engine.now(), read(&engine, &host, 7, REG_STATUS)), (5, STATUS_DONE));
        assert_eq!(host.bytes(0x2ff0, 0x40), host.bytes(0x1000, 0x40));
        assert_eq!(host.announced()[1], Announced::End(ranges, true));
    }

    #[test]
    fn latency_zero_runs_at_the_doorbells_own_exit_and_failures_announce_nothing() {
        let host = TestHost::handing_off_all();
        let engine = DmaEngine::new(DmaConfig { latency: 0, jitter: 0, seed: 0 });
        start(&engine, &host, 0, [0x1000, 0, 0x10, DIR_TO_DEVICE]);
        engine.advance(&host);
        assert_eq!(read(&engine, &host, 0, REG_STATUS), STATUS_DONE);
        start(&engine, &host, 1, [0x1000, 0, 0, DIR_TO_DEVICE]);
        engine.advance(&host);
        assert_eq!((read(&engine, &host, 1, REG_STATUS), read(&engine, &host, 1, REG_ERROR)), (STATUS_ERROR, ERROR_BAD_LENGTH));
        assert_eq!(
            host.announced(),
            vec![
                Announced::Begin(TransferRanges { reads: Some(0x1000..0x1010), writes: None }),
                Announced::End(TransferRanges { reads: Some(0x1000..0x1010), writes: None }, true),
                Announced::Begin(TransferRanges::default()),
                Announced::End(TransferRanges::default(), false)
            ]
        );
    }

    #[test]
    fn transfers_queued_and_completions_unread_at_exit_are_leaks() {
        let host = TestHost::handing_off_all();
        let engine = DmaEngine::new(DmaConfig { latency: 5, jitter: 0, seed: 0 });
        start(&engine, &host, 3, [0x1000, 0, 0x10, DIR_TO_DEVICE]);
        let leaks = engine.leaks();
        assert_eq!(leaks.len(), 1);
        assert_eq!(
            (leaks[0].kind, leaks[0].vcpu, leaks[0].rip, leaks[0].address),
            (ViolationKind::LeakDmaTransfer, ACCESS.vcpu, ACCESS.rip, 3)
        );
        assert_eq!(
            leaks[0].message,
            "the transfer rung on channel 3 at device time 0 was still queued at exit: the device would still read or write guest memory"
        );
        while !lock(&engine.state).queue.is_empty() {
            engine.advance(&host);
        }
        let leaks = engine.leaks();
        assert_eq!(leaks.iter().map(|l| l.kind).collect::<Vec<_>>(), vec![ViolationKind::DmaCompletionNotAcknowledged]);
        assert_eq!(
            leaks[0].message,
            "channel 3 finished a transfer whose REG_STATUS the driver never read: a completion never acknowledged"
        );
        assert_eq!(read(&engine, &host, 3, REG_ERROR), 0, "reading another register acknowledges nothing");
        assert_eq!(engine.leaks().len(), 1);
        assert_eq!(read(&engine, &host, 3, REG_STATUS), STATUS_DONE);
        assert!(engine.leaks().is_empty());
    }

    #[test]
    fn jobs_run_in_doorbell_order_whatever_their_delays() {
        let host = TestHost::handing_off_all();
        let engine = DmaEngine::new(DmaConfig { latency: 1, jitter: 40, seed: 5 });
        let delays: Vec<u64> = engine.config.delays().take(2).collect();
        host.fill_pattern(0x1000, 0x10, 1);
        start(&engine, &host, 0, [0x1000, 0, 0x10, DIR_TO_DEVICE]);
        start(&engine, &host, 1, [0x1000, 0x20, 0x10, DIR_TO_DEVICE]);
        let mut done_at = [0u64; 2];
        while done_at.contains(&0) {
            engine.advance(&host);
            for (channel, at) in done_at.iter_mut().enumerate() {
                if *at == 0 && read(&engine, &host, channel as u64, REG_STATUS) == STATUS_DONE {
                    *at = engine.now();
                }
            }
        }
        assert_eq!(done_at[0], 1 + delays[0]);
        assert_eq!(done_at[1], (1 + delays[1]).max(done_at[0]));
    }

    #[test]
    fn transfer_now_copies_without_touching_channels() {
        let host = TestHost::new();
        let engine = DmaEngine::new(DmaConfig { latency: MAX_EXITS, ..DmaConfig::default() });
        host.fill_pattern(0x6000, 0x20, 8);
        assert_eq!(engine.transfer_now(&host, ACCESS, 0x6000, 0x10, 0x20, DIR_TO_DEVICE), Ok(()));
        assert_eq!(engine.transfer_now(&host, ACCESS, 0x10, 0x7000, 0x20, DIR_FROM_DEVICE), Ok(()));
        assert_eq!(host.bytes(0x7000, 0x20), host.bytes(0x6000, 0x20));
        assert_eq!(engine.transfer_now(&host, ACCESS, 0, 0, 0, 9), Err(ERROR_BAD_DIRECTION));
        assert_eq!(read(&engine, &host, 0, REG_STATUS), STATUS_IDLE);
        let messages = host.messages();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("DMA from a page the driver did not hand off: page 0x6000"));
        assert!(messages[1].starts_with("DMA to a page the driver did not hand off: page 0x7000"));
    }
}
