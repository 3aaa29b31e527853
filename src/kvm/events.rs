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

pub(crate) fn watch(ops: &mut EventOps, fd: &impl AsRawFd, what: &str) {
    if let Err(e) = ops.add(Events::new(fd, EventSet::IN)) {
        eprintln!("kmemvisor: cannot watch the {what}: {e}");
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
        watch(ops, self.state.console.wake_fd(), "console");
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
        watch(ops, &self.timer, "watchdog timer");
    }

    fn process(&mut self, _events: Events, ops: &mut EventOps) {
        let _ = self.timer.wait();
        let _ = ops.remove(Events::new(&self.timer, EventSet::IN));
        self.state.stop.request(ExitCause::Timeout { seconds: self.limit.as_secs_f64() });
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
        let fd = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous_mask);
            libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalWatcher { state, fd, previous_mask })
    }
}

impl MutEventSubscriber for SignalWatcher {
    fn init(&mut self, ops: &mut EventOps) {
        watch(ops, &self.fd, "signals");
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is a writable buffer of exactly `size` bytes.
        let read = unsafe { libc::read(self.fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if read == size as isize {
            self.state.stop.request(ExitCause::Interrupted { signal: info.ssi_signo as i32 });
        }
    }
}

impl Drop for SignalWatcher {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`, a valid sigset_t.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous_mask, std::ptr::null_mut()) };
    }
}

/// Wakes the main loop: when a stop is requested (it then kicks the vCPUs)
/// and when a vCPU thread ends (it then joins the threads without waiting for
/// its next poll).
pub struct Wakeup {
    fd: Arc<EventFd>,
    what: &'static str,
}

impl Wakeup {
    /// Wakes the loop whenever `fd` is written.
    pub fn new(fd: Arc<EventFd>, what: &'static str) -> Wakeup {
        Wakeup { fd, what }
    }
}

impl MutEventSubscriber for Wakeup {
    fn init(&mut self, ops: &mut EventOps) {
        watch(ops, &*self.fd, self.what);
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.fd.read();
    }
}
