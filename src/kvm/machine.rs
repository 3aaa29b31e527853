//! One run of a guest: build the VM, start the vCPU threads, serve events on
//! the main thread until the VM stops, and account for what happened.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use kvm_ioctls::VcpuFd;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::signal::{Killable, register_signal_handler};

use crate::devices::hiding::touches::{STALL_POLL, StallWatch, TouchServer};
use crate::kvm::bus::PortBus;
use crate::kvm::events::{ConsoleFlusher, ConsoleSink, SignalWatcher, Wakeup, Watchdog};
use crate::kvm::vcpu::{self, kick_signal};
use crate::kvm::vcpu_pool::Schedule;
use crate::kvm::vm::{self, KvmError, Vm};
use crate::report::{Determinism, ExitCause, ExitReport, Report};
use crate::state::{SetupError, VmConfig, VmState};
use crate::symbols::Symbols;
use crate::sync::lock;

/// How long the main loop sleeps between looks at the vCPU threads.
const POLL_MS: i32 = 50;
/// How often a stopping VM's vCPUs are kicked until they leave KVM_RUN.
const KICK_MS: i32 = 5;
/// How much CPU time the holder of the serial schedule's turn may use without
/// an exit while another vCPU could run, before the spin fallback takes the
/// turn back: far above what a vCPU's first entry or a burst of page faults
/// costs on the PVM flavour of KVM.
const SPIN_LIMIT: Duration = Duration::from_millis(50);
/// How long a stopping VM's vCPU threads get to end. A thread still running
/// after that is stuck where no kick reaches (it should never happen); it is
/// left behind so that the run still ends, with its report.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// What to run and how.
pub struct RunOptions {
    /// The guest's name in the report (a bundled name or a path).
    pub name: String,
    /// The guest ELF image.
    pub elf: Vec<u8>,
    /// The VM configuration.
    pub vm: VmConfig,
    /// Stop the guest after this long.
    pub timeout: Option<Duration>,
    /// Where console lines go.
    pub console: Box<dyn Write + Send>,
    /// Turn SIGINT/SIGTERM into a clean stop (for the command line).
    pub handle_signals: bool,
}

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The report.
    pub report: Report,
    /// The process exit status that goes with it.
    pub status: u8,
    /// The event trace as Chrome trace-event JSON, when it was kept.
    pub chrome_trace: Option<Vec<u8>>,
    /// The behaviour the run reached (`VmConfig::coverage`; else empty).
    pub features: Vec<u64>,
}

/// Why a run could not happen or be completed.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The VM state could not be built.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// KVM refused something.
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// A thread, signalfd, timerfd or eventfd could not be created.
    #[error("Cannot set up the {0}")]
    Host(&'static str, #[source] std::io::Error),
    /// The event loop failed.
    #[error("The event loop failed: {0:?}")]
    Events(event_manager::Error),
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

fn install_kick_handler() -> Result<(), MachineError> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| {
        result = register_signal_handler(kick_signal(), on_kick)
            .map_err(|e| MachineError::Host("vCPU kick signal", std::io::Error::from_raw_os_error(e.errno())));
    });
    result
}

type Subscriber = Arc<Mutex<dyn MutEventSubscriber + Send>>;

fn subscriber(s: impl MutEventSubscriber + Send + 'static) -> Subscriber {
    Arc::new(Mutex::new(s))
}

/// Runs a guest to its end.
pub fn run(options: RunOptions) -> Result<RunOutcome, MachineError> {
    let mut machine = Machine::boot(options.vm, &options.elf)?;
    let sink: ConsoleSink = Arc::new(Mutex::new(options.console));
    machine.drive(&sink, options.timeout, options.handle_signals)?;
    Ok(machine.outcome(options.name))
}

/// A built VM — its state and its KVM objects — that runs until it stops,
/// and can be run again from where it stopped (`crate::snapshot` restores
/// it in between).
pub struct Machine {
    /// The state the vCPU threads share.
    pub state: Arc<VmState>,
    /// The KVM VM.
    pub vm: Vm,
    /// One fd per vCPU, while no thread runs it; empty once a thread was
    /// left behind stuck (the machine cannot run again).
    pub vcpus: Vec<VcpuFd>,
    created: Instant,
    ended: Instant,
}

impl Machine {
    /// Builds the VM state for `elf` and the KVM VM, ready at the guest's first instruction.
    pub fn boot(config: VmConfig, elf: &[u8]) -> Result<Machine, MachineError> {
        let created = Instant::now();
        install_kick_handler()?;
        let state = Arc::new(VmState::new(config, elf)?);
        let (vm, vcpus) = vm::create(&state)?;
        Ok(Machine { state, vm, vcpus, created, ended: created })
    }

    /// Runs the vCPUs until the VM stops, console lines going to `sink`.
    /// Afterwards every thread and event subscriber is gone: the state is
    /// the machine's alone again, unless a vCPU thread was stuck (then
    /// `vcpus` is empty).
    pub fn drive(&mut self, sink: &ConsoleSink, timeout: Option<Duration>, handle_signals: bool) -> Result<(), MachineError> {
        let state = &self.state;
        let mut events: EventManager<Subscriber> = EventManager::new().map_err(MachineError::Events)?;
        events.add_subscriber(subscriber(ConsoleFlusher::new(state.clone(), sink.clone())));
        events.add_subscriber(subscriber(Wakeup::new(state.clone(), state.stop.wake_fd(), "stop request")));
        let thread_ended = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(|e| MachineError::Host("vCPU thread wake-up", e))?);
        events.add_subscriber(subscriber(Wakeup::new(state.clone(), thread_ended.clone(), "vCPU thread ends")));
        if let Some(limit) = timeout {
            let watchdog = Watchdog::new(state.clone(), limit).map_err(|e| MachineError::Host("watchdog timer", e))?;
            events.add_subscriber(subscriber(watchdog));
        }
        let signals = if handle_signals {
            let watcher = subscriber(SignalWatcher::new(state.clone()).map_err(|e| MachineError::Host("signal handling", e))?);
            events.add_subscriber(watcher.clone());
            Some(watcher)
        } else {
            None
        };

        events.add_subscriber(subscriber(TouchServer::new(state.clone())));
        let bus = Arc::new(PortBus::default());
        let mut threads: Vec<VcpuThread> = Vec::new();
        for (id, fd) in std::mem::take(&mut self.vcpus).into_iter().enumerate() {
            let ended = EndedGuard { ended: Arc::new(AtomicBool::new(false)), wake: thread_ended.clone() };
            let flag = ended.ended.clone();
            let (shared, bus) = (state.clone(), bus.clone());
            let spawned = std::thread::Builder::new().name(format!("vcpu{id}")).spawn(move || {
                let _ended = ended;
                vcpu::run(id, fd, shared, bus)
            });
            match spawned {
                Ok(handle) => threads.push(VcpuThread { handle, ended: flag }),
                Err(e) => {
                    state.stop.request(ExitCause::VmFailure {
                        vcpu: id,
                        what: format!("cannot start its thread: {e}"),
                        registers: None,
                    });
                    break;
                }
            }
        }

        let stuck = serve(&mut events, state, &threads)?;
        if let Some(e) = state.stop.take_wake_failure() {
            eprintln!("kmemvisor: the stop request could not wake the main thread ({e}); it saw the stop at its next poll");
        }
        if !stuck.is_empty() {
            let list: Vec<String> = stuck.iter().map(|v| v.to_string()).collect();
            eprintln!(
                "kmemvisor: vCPU(s) {} did not end within {STOP_GRACE:?} of the stop; their threads are left behind",
                list.join(", ")
            );
        }
        let mut fds = Vec::with_capacity(threads.len());
        for (id, thread) in threads.into_iter().enumerate() {
            // Dropping the handle of a stuck thread detaches it; the process ends it.
            if stuck.contains(&id) {
                continue;
            }
            match thread.handle.join() {
                Ok(fd) => fds.push(fd),
                Err(_) => {
                    state.stop.request(ExitCause::VmFailure { vcpu: id, what: "its thread panicked".into(), registers: None });
                }
            }
        }
        // A vCPU whose thread is gone cannot run again: neither can the machine.
        if fds.len() == self.state.config.vcpus {
            self.vcpus = fds;
        }
        self.ended = Instant::now();
        drop(signals);
        drop(events);
        state.console.close_lines();
        let mut sink = lock(sink);
        let _ = state.console.flush_to(&mut **sink);
        Ok(())
    }

    /// The report of the run that ended last.
    pub fn outcome(&self, name: String) -> RunOutcome {
        account(&self.state, name, self.vm.slot_zap_all_disabled, self.created, self.ended)
    }
}

/// A vCPU thread and whether it has ended.
struct VcpuThread<T = VcpuFd> {
    handle: JoinHandle<T>,
    ended: Arc<AtomicBool>,
}

/// Marks a vCPU thread ended and wakes the main loop when the thread's work
/// is over, panics included: the loop then joins at once instead of sleeping
/// until its next poll (`JoinHandle::is_finished` turns true only later).
struct EndedGuard {
    ended: Arc<AtomicBool>,
    wake: Arc<EventFd>,
}

impl Drop for EndedGuard {
    fn drop(&mut self) {
        self.ended.store(true, Ordering::SeqCst);
        // Best effort: without the wake-up the main loop sees the flag at its
        // next poll (5 ms while stopping).
        let _ = self.wake.write(1);
    }
}

/// Serves events until every vCPU thread has ended, or until the stop's
/// grace period is over; returns the vCPUs whose threads are stuck.
///
/// On a stop, every round kicks each vCPU thread still alive out of KVM_RUN,
/// then releases the vCPUs stalled on hidden pages (after the kick, so that
/// a released vCPU leaves KVM_RUN instead of running on) and wakes those
/// blocked in `vcpu_wait` or idle.
fn serve<T>(
    events: &mut EventManager<Subscriber>,
    state: &VmState,
    threads: &[VcpuThread<T>],
) -> Result<Vec<usize>, MachineError> {
    let mut stopping_since: Option<Instant> = None;
    let mut reported_kick = false;
    let mut stalls = StallWatch::default();
    loop {
        let stopping = state.stop.is_stopping();
        // Serial schedules are watched for spinning holders at the kick pace,
        // and stalls on trapped pages at theirs.
        let pace = if stopping || state.config.vcpus > 1 {
            KICK_MS
        } else if state.trap_used() {
            STALL_POLL.as_millis() as i32
        } else {
            POLL_MS
        };
        events.run_with_timeout(pace).map_err(MachineError::Events)?;
        if !state.stop.is_stopping() && state.trap_used() {
            stalls.check(state);
        }
        let running: Vec<(usize, &VcpuThread<T>)> =
            threads.iter().enumerate().filter(|(_, t)| !t.ended.load(Ordering::SeqCst)).collect();
        if running.is_empty() {
            return Ok(Vec::new());
        }
        if running.len() < threads.len() && !state.stop.is_stopping() {
            // A vCPU thread ends only on a stop; one that ended otherwise failed.
            state.stop.request(ExitCause::VmFailure {
                vcpu: 0,
                what: "a vCPU thread ended unexpectedly".into(),
                registers: None,
            });
        }
        if !state.stop.is_stopping() {
            // The spin fallback: a holder of the turn that makes no exit is
            // kicked so that the others can run.
            if let Some(id) = state.vcpus.overdue(SPIN_LIMIT, |vcpu| state.cpu_time(vcpu))
                && let Some(thread) = threads.get(id)
            {
                let _ = thread.handle.kill(kick_signal());
            }
            continue;
        }
        if stopping_since.get_or_insert_with(Instant::now).elapsed() > STOP_GRACE {
            return Ok(running.into_iter().map(|(id, _)| id).collect());
        }
        for &(id, thread) in &running {
            // A thread between two KVM_RUNs misses the kick; the next round repeats it.
            match thread.handle.kill(kick_signal()) {
                Ok(()) => {}
                // The thread has just ended.
                Err(e) if e.errno() == libc::ESRCH => {}
                Err(e) if !reported_kick => {
                    reported_kick = true;
                    eprintln!("kmemvisor: cannot kick vCPU {id} out of KVM_RUN: {e}");
                }
                Err(_) => {}
            }
        }
        if let Err(e) = state.hiding.release_all() {
            eprintln!("kmemvisor: cannot release the vCPUs waiting for hidden pages: {e}");
        }
        state.vcpus.wake_all();
    }
}

fn account(state: &VmState, name: String, slot_zap_all_quirk_disabled: bool, created: Instant, ended: Instant) -> RunOutcome {
    let cause = state.stop.cause().unwrap_or(ExitCause::VmFailure {
        vcpu: 0,
        what: "the VM stopped without a cause".into(),
        registers: None,
    });
    let kernel = lock(&state.kernel);
    // What a guest that exits by itself leaves behind is misuse too.
    if matches!(cause, ExitCause::GuestExit { .. }) {
        state.record_leaks(&kernel);
    }
    let violations = state.checker.violations();
    let status = cause.exit_status(violations.len());
    let first_entry = state.first_entry.get().copied().unwrap_or(ended);
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let determinism = determinism(state, &cause);
    let report = Report {
        kmemvisor_version: env!("CARGO_PKG_VERSION"),
        guest: name,
        vcpus: state.config.vcpus,
        memory_bytes: state.ram.size(),
        slot_zap_all_quirk_disabled,
        // Places are looked up by whoever shows the report (`Report::locate`).
        exit: ExitReport::new(cause, status, &Symbols::new(&[])),
        boot_time_us: micros(first_entry.saturating_duration_since(created)),
        run_time_us: micros(ended.saturating_duration_since(first_entry)),
        calls: state.calls.snapshot().into_iter().map(|(s, n)| (s.name(), n)).collect(),
        unknown_calls: state.calls.unknown(),
        violations,
        dgux: kernel.dgux.report(&kernel.frames, kernel.pager.counts().injected_pagein_failures),
        pager: kernel.pager.counts(),
        determinism,
        invocation: None,
    };
    let chrome_trace = state.config.keep_trace.then(|| {
        let mut out = Vec::new();
        // Writing to memory fails only on a serialization bug; the bytes say so.
        if let Err(e) = state.trace.write_chrome(&mut out, state.config.vcpus, kmemvisor_abi::dma::DMA_CHANNELS as usize) {
            out = format!("{{\"error\": \"{e}\"}}").into_bytes();
        }
        out
    });
    RunOutcome { report, status, chrome_trace, features: features(state) }
}

/// What the run reached, for a fuzzing campaign: the edges of its trace,
/// and the guest's own edge counters if it named them (`fuzz_coverage`).
fn features(state: &VmState) -> Vec<u64> {
    let mut features = state.trace.features();
    if state.config.coverage
        && let Some(counters) = crate::services::fuzz::coverage_counters(state)
    {
        features.extend(crate::coverage::guest_features(&counters));
        features.sort_unstable();
    }
    features
}

/// How the run was scheduled, and why its verdict may not repeat.
fn determinism(state: &VmState, cause: &ExitCause) -> Determinism {
    let (schedule, seed) = match state.config.schedule {
        _ if state.config.vcpus == 1 => ("single vCPU", state.config.dma.seed),
        Schedule::Serial { seed, .. } => ("serial", seed),
        Schedule::Parallel => ("parallel", state.config.dma.seed),
    };
    let preemptions = state.vcpus.preemptions();
    let mut timing_dependent = Vec::new();
    if schedule == "parallel" {
        timing_dependent.push("the vCPUs ran in parallel (--schedule parallel): the host ordered their exits".to_owned());
    }
    if preemptions > 0 {
        timing_dependent.push(format!(
            "{preemptions} turn(s) were taken back, on host time, from a vCPU that ran without an exit (it spun, waiting for another)"
        ));
    }
    let unstopped = state.vcpus.unstopped_stalls();
    if unstopped > 0 {
        timing_dependent.push(format!(
            "{unstopped} vCPU(s) stalled on a hidden page could not be stopped before the page came back, and may have run \
             beside the holder of the turn"
        ));
    }
    if matches!(cause, ExitCause::Timeout { .. } | ExitCause::Interrupted { .. }) {
        timing_dependent.push("the run ended on host time (--timeout or a signal)".to_owned());
    }
    Determinism {
        schedule,
        seed,
        scheduling_points: state.vcpus.scheduling_points(),
        preemptions,
        reproducible: timing_dependent.is_empty(),
        timing_dependent,
        trace: state.trace.summary(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::VmConfig;

    /// A "vCPU thread" that ends only when told to, or never.
    fn thread(release: std::sync::mpsc::Receiver<()>) -> VcpuThread<()> {
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        let handle = std::thread::spawn(move || {
            let _ = release.recv();
            flag.store(true, Ordering::SeqCst);
        });
        VcpuThread { handle, ended }
    }

    #[test]
    fn a_thread_stuck_past_the_grace_period_is_left_behind_and_the_others_are_not() {
        install_kick_handler().expect("kick handler");
        let state = Arc::new(crate::testing::state_with(VmConfig { vcpus: 2, ..VmConfig::default() }));
        let mut events: EventManager<Subscriber> = EventManager::new().expect("event manager");
        events.add_subscriber(subscriber(Wakeup::new(state.clone(), state.stop.wake_fd(), "stop request")));
        let (stuck_forever, stuck) = std::sync::mpsc::channel();
        let (end, ends) = std::sync::mpsc::channel();
        let threads = [thread(stuck), thread(ends)];
        state.stop.request(ExitCause::Timeout { seconds: 1.0 });
        end.send(()).expect("end");
        assert_eq!(serve(&mut events, &state, &threads).expect("serve"), vec![0]);
        assert!(state.hiding.released(), "the stop released the hidden pages");
        drop(stuck_forever);
    }
}
