//! The VMM's non-vCPU events, run by event-manager on the main thread:
//! console flushing, the `--timeout` watchdog, SIGINT/SIGTERM, and wake-ups
//! for the stop request and for vCPU threads that end.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

use crate::report::ExitCause;
use crate::state::VmState;
use crate::sync::lock;

/// Where the guest console goes.
pub type ConsoleSink = Arc<Mutex<Box<dyn Write + Send>>>;

/// Watches `fd`. An event the main loop cannot watch (the watchdog, the
/// signals, the stop request…) would let a run go on past its end, so a
/// failure stops the run with a VMM failure that names it.
pub(crate) fn watch(ops: &mut EventOps, fd: &impl AsRawFd, what: &str, state: &VmState) {
    if let Err(e) = ops.add(Events::new(fd, EventSet::IN)) {
        let what = format!("cannot watch the {what}: {e:?}");
        state.stop.request(ExitCause::VmFailure { vcpu: 0, what, registers: None });
    }
}

/// Reads an eventfd-like counter that woke the loop. Nothing to read is
/// fine (another reader came first); any other failure leaves `fd` readable,
/// so the run stops rather than spin on it.
pub(crate) fn drain(state: &VmState, what: &str, read: std::io::Result<u64>) {
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => {
            let what = format!("cannot read the {what}: {e}");
            state.stop.request(ExitCause::VmFailure { vcpu: 0, what, registers: None });
        }
    }
}

/// Writes queued console lines to the sink.
pub struct ConsoleFlusher {
    state: Arc<VmState>,
    sink: ConsoleSink,
}

impl ConsoleFlusher {
    /// Flushes `state`'s console to `sink`.
    pub fn new(state: Arc<VmState>, sink: ConsoleSink) -> ConsoleFlusher {
        ConsoleFlusher { state, sink }
    }
}

impl MutEventSubscriber for ConsoleFlusher {
    fn init(&mut self, ops: &mut EventOps) {
        watch(ops, self.state.console.wake_fd(), "console", &self.state);
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let mut sink = lock(&self.sink);
        // A closed stdout must not stop the guest; what is lost is lost.
        let _ = self.state.console.flush_to(&mut **sink);
    }
}

/// Stops the VM when `--timeout` expires.
pub struct Watchdog {
    state: Arc<VmState>,
    timer: TimerFd,
    limit: Duration,
}

impl Watchdog {
    /// A watchdog that fires after `limit`.
    pub fn new(state: Arc<VmState>, limit: Duration) -> std::io::Result<Watchdog> {
        let mut timer = TimerFd::new()?;
        timer.reset(limit, None)?;
        Ok(Watchdog { state, timer, limit })
    }
}

impl MutEventSubscriber for Watchdog {
    fn init(&mut self, ops: &mut EventOps) {
        watch(ops, &self.timer, "watchdog timer", &self.state);
    }

    fn process(&mut self, _events: Events, ops: &mut EventOps) {
        // The timer is readable only once it expired: the timeout stands
        // whatever the read says, and once stopped the run ends anyway.
        self.state.stop.request(ExitCause::Timeout { seconds: self.limit.as_secs_f64() });
        if let Err(e) = self.timer.wait() {
            eprintln!("kmemvisor: cannot read the watchdog timer: {e}");
        }
        if let Err(e) = ops.remove(Events::new(&self.timer, EventSet::IN)) {
            eprintln!("kmemvisor: cannot stop watching the watchdog timer: {e:?}");
        }
    }
}

/// Turns SIGINT and SIGTERM into a stop; the signals are blocked while it lives.
pub struct SignalWatcher {
    state: Arc<VmState>,
    fd: OwnedFd,
    previous_mask: libc::sigset_t,
}

impl SignalWatcher {
    /// Blocks SIGINT and SIGTERM in this thread (threads spawned later inherit
    /// the mask) and reads them from a signalfd instead.
    pub fn new(state: Arc<VmState>) -> std::io::Result<SignalWatcher> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above; both sets are initialised before use.
        let mut previous_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` and `previous_mask` are valid sigset_t objects owned by this frame.
        let built = unsafe {
            libc::sigemptyset(&mut set) | libc::sigaddset(&mut set, libc::SIGINT) | libc::sigaddset(&mut set, libc::SIGTERM)
        };
        if built != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Unblocked, SIGINT and SIGTERM would kill the process with no report.
        // SAFETY: `set` and `previous_mask` are valid sigset_t objects owned by this frame.
        let masked = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous_mask) };
        if masked != 0 {
            return Err(std::io::Error::from_raw_os_error(masked));
        }
        // SAFETY: `set` is a valid sigset_t; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            let error = std::io::Error::last_os_error();
            // SAFETY: restores the mask just saved, a valid sigset_t.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous_mask, std::ptr::null_mut()) };
            return Err(error);
        }
        // SAFETY: signalfd returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalWatcher { state, fd, previous_mask })
    }
}

impl MutEventSubscriber for SignalWatcher {
    fn init(&mut self, ops: &mut EventOps) {
        watch(ops, &self.fd, "signals", &self.state);
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is a writable buffer of exactly `size` bytes.
        let read = unsafe { libc::read(self.fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if read == size as isize {
            self.state.stop.request(ExitCause::Interrupted { signal: info.ssi_signo as i32 });
            return;
        }
        let error = std::io::Error::last_os_error();
        if read < 0 && matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) {
            return;
        }
        // A signal arrived but cannot be told: stop all the same, saying why.
        let what = if read < 0 {
            format!("cannot read the signalfd: {error}")
        } else {
            format!("short read of the signalfd: {read} bytes")
        };
        self.state.stop.request(ExitCause::VmFailure { vcpu: 0, what, registers: None });
    }
}

impl Drop for SignalWatcher {
    fn drop(&mut self) {
        // Teardown, after the run: a failure leaves the signals blocked in a
        // thread that no longer waits for them, which changes nothing.
        // SAFETY: restores the mask saved in `new`, a valid sigset_t.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous_mask, std::ptr::null_mut()) };
    }
}

/// Wakes the main loop: when a stop is requested (it then kicks the vCPUs)
/// and when a vCPU thread ends (it then joins the threads without waiting for
/// its next poll).
pub struct Wakeup {
    state: Arc<VmState>,
    fd: Arc<EventFd>,
    what: &'static str,
}

impl Wakeup {
    /// Wakes the loop of `state`'s run whenever `fd` is written.
    pub fn new(state: Arc<VmState>, fd: Arc<EventFd>, what: &'static str) -> Wakeup {
        Wakeup { state, fd, what }
    }
}

impl MutEventSubscriber for Wakeup {
    fn init(&mut self, ops: &mut EventOps) {
        watch(ops, &*self.fd, self.what, &self.state);
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        drain(&self.state, self.what, self.fd.read());
    }
}
