//! One run of a guest: build the VM, start the vCPU threads, serve events on
//! the main thread until the VM stops, and account for what happened.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::signal::{Killable, register_signal_handler};

use crate::bus::PortBus;
use crate::checker::Violation;
use crate::events::{ConsoleFlusher, ConsoleSink, SignalWatcher, Wakeup, Watchdog};
use crate::helpers::HelperStarter;
use crate::report::{ExitCause, ExitReport, Report};
use crate::state::{SetupError, VmConfig, VmState};
use crate::sync::lock;
use crate::vcpu::{self, kick_signal};
use crate::vm::{self, KvmError};

/// How long the main loop sleeps between looks at the vCPU threads.
const POLL_MS: i32 = 50;
/// How often a stopping VM's vCPUs are kicked until they leave KVM_RUN.
const KICK_MS: i32 = 5;

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
    let created = Instant::now();
    install_kick_handler()?;
    let state = Arc::new(VmState::new(options.vm, &options.elf)?);
    let (vm, vcpu_fds) = vm::create(&state)?;
    let sink: ConsoleSink = Arc::new(Mutex::new(options.console));

    let mut events: EventManager<Subscriber> = EventManager::new().map_err(MachineError::Events)?;
    events.add_subscriber(subscriber(ConsoleFlusher::new(state.clone(), sink.clone())));
    events.add_subscriber(subscriber(Wakeup::new(state.stop.wake_fd(), "stop request")));
    let thread_ended = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(|e| MachineError::Host("vCPU thread wake-up", e))?);
    events.add_subscriber(subscriber(Wakeup::new(thread_ended.clone(), "vCPU thread ends")));
    if let Some(limit) = options.timeout {
        let watchdog = Watchdog::new(state.clone(), limit).map_err(|e| MachineError::Host("watchdog timer", e))?;
        events.add_subscriber(subscriber(watchdog));
    }
    let signals = if options.handle_signals {
        let watcher = subscriber(SignalWatcher::new(state.clone()).map_err(|e| MachineError::Host("signal handling", e))?);
        events.add_subscriber(watcher.clone());
        Some(watcher)
    } else {
        None
    };

    let helpers = Arc::new(Mutex::new(None));
    events.add_subscriber(subscriber(HelperStarter::new(state.clone(), helpers.clone())));
    let bus = Arc::new(PortBus::default());
    let mut threads: Vec<VcpuThread> = Vec::new();
    for (id, fd) in vcpu_fds.into_iter().enumerate() {
        let ended = EndedGuard { ended: Arc::new(AtomicBool::new(false)), wake: thread_ended.clone() };
        let flag = ended.ended.clone();
        let (shared, bus) = (state.clone(), bus.clone());
        let spawned = std::thread::Builder::new().name(format!("vcpu{id}")).spawn(move || {
            let _ended = ended;
            vcpu::run(id, fd, shared, bus);
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

    serve(&mut events, &state, &threads)?;
    for (id, thread) in threads.into_iter().enumerate() {
        if thread.handle.join().is_err() {
            state.stop.request(ExitCause::VmFailure { vcpu: id, what: "its thread panicked".into(), registers: None });
        }
    }
    if let Some(helpers) = lock(&helpers).take() {
        helpers.join(&state);
    }
    let ended = Instant::now();
    drop(signals);
    let slot_zap_all_quirk_disabled = vm.slot_zap_all_disabled;
    drop(vm);
    state.console.close_lines();
    {
        let mut sink = lock(&sink);
        let _ = state.console.flush_to(&mut **sink);
    }
    Ok(account(&state, options.name, slot_zap_all_quirk_disabled, created, ended))
}

/// A vCPU thread and whether it has ended.
struct VcpuThread {
    handle: JoinHandle<()>,
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
        let _ = self.wake.write(1);
    }
}

/// Serves events until every vCPU thread has ended.
fn serve(events: &mut EventManager<Subscriber>, state: &VmState, threads: &[VcpuThread]) -> Result<(), MachineError> {
    loop {
        let stopping = state.stop.is_stopping();
        events.run_with_timeout(if stopping { KICK_MS } else { POLL_MS }).map_err(MachineError::Events)?;
        let running: Vec<&VcpuThread> = threads.iter().filter(|t| !t.ended.load(Ordering::SeqCst)).collect();
        if running.is_empty() {
            return Ok(());
        }
        if running.len() < threads.len() && !state.stop.is_stopping() {
            // A vCPU thread ends only on a stop; one that ended otherwise failed.
            state.stop.request(ExitCause::VmFailure {
                vcpu: 0,
                what: "a vCPU thread ended unexpectedly".into(),
                registers: None,
            });
        }
        if state.stop.is_stopping() {
            for thread in running {
                // A thread between two KVM_RUNs misses the kick; the next round repeats it.
                let _ = thread.handle.kill(kick_signal());
            }
        }
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
        let leaks = kernel.dgux.leaks().into_iter().chain(kernel.aix.leaks()).chain(kernel.xmem.leaks());
        // Under --strict only the first leak is kept; the cause stays the guest's exit.
        for (service, address, vcpu, rip, message) in leaks {
            state.record_violation(Violation::new(service, &[address], vcpu, rip, message));
        }
    }
    let violations = state.checker.violations();
    let status = cause.exit_status(violations.len());
    let first_entry = state.first_entry.get().copied().unwrap_or(ended);
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let report = Report {
        kmemvisor_version: env!("CARGO_PKG_VERSION"),
        guest: name,
        vcpus: state.config.vcpus,
        memory_bytes: state.ram.size(),
        slot_zap_all_quirk_disabled,
        exit: ExitReport { summary: cause.to_string(), cause, status },
        boot_time_us: micros(first_entry.saturating_duration_since(created)),
        run_time_us: micros(ended.saturating_duration_since(first_entry)),
        calls: state.calls.snapshot().into_iter().map(|(s, n)| (s.name(), n)).collect(),
        unknown_calls: state.calls.unknown(),
        violations,
        dgux: kernel.dgux.report(&kernel.frames),
    };
    RunOutcome { report, status }
}
