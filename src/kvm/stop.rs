//! The VM-wide stop request: the first cause wins, everyone is told.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::report::ExitCause;
use crate::sync::lock;

/// Set once, read by every vCPU thread before it enters the guest.
#[derive(Debug)]
pub struct Stop {
    stopping: AtomicBool,
    cause: Mutex<Option<ExitCause>>,
    wake: Arc<EventFd>,
    /// Why the eventfd could not be written, if it could not.
    wake_failure: Mutex<Option<std::io::Error>>,
}

impl Stop {
    /// Not stopping yet.
    pub fn new() -> std::io::Result<Stop> {
        Ok(Stop {
            stopping: AtomicBool::new(false),
            cause: Mutex::new(None),
            wake: Arc::new(EventFd::new(EFD_NONBLOCK)?),
            wake_failure: Mutex::new(None),
        })
    }

    /// Not stopping any more, for the next run of a VM that was put back to
    /// a snapshot: no thread of the run that ended is left to see the change.
    pub fn reset(&mut self) {
        *self.stopping.get_mut() = false;
        *lock(&self.cause) = None;
        *lock(&self.wake_failure) = None;
        // The wake-up of the stop that ended the run, if any; nothing to
        // read (WouldBlock) when it never came.
        let _ = self.wake.read();
    }

    /// Asks the VM to stop for `cause`; returns false if another cause came first.
    pub fn request(&self, cause: ExitCause) -> bool {
        let mut slot = lock(&self.cause);
        if slot.is_some() {
            return false;
        }
        *slot = Some(cause);
        self.stopping.store(true, Ordering::SeqCst);
        match self.wake.write(1) {
            Ok(()) => {}
            // A full counter means the main thread is already being woken.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // The main thread still sees the flag at its next poll (50 ms);
            // the failure is kept for it to print.
            Err(e) => *lock(&self.wake_failure) = Some(e),
        }
        true
    }

    /// Why the stop request could not wake the main thread, once.
    pub fn take_wake_failure(&self) -> Option<std::io::Error> {
        lock(&self.wake_failure).take()
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The winning cause.
    pub fn cause(&self) -> Option<ExitCause> {
        lock(&self.cause).clone()
    }

    /// Readable once a stop is requested (for the main thread's event loop).
    pub fn wake_fd(&self) -> Arc<EventFd> {
        self.wake.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_wins() {
        let stop = Stop::new().expect("stop");
        assert!(!stop.is_stopping());
        assert!(stop.request(ExitCause::GuestExit { code: 3 }));
        assert!(!stop.request(ExitCause::Timeout { seconds: 1.0 }));
        assert!(stop.is_stopping());
        assert_eq!(stop.cause(), Some(ExitCause::GuestExit { code: 3 }));
        assert_eq!(stop.wake_fd().read().expect("woken"), 1);
    }

    #[test]
    fn a_reset_stop_is_a_new_one_with_the_same_eventfd() {
        let mut stop = Stop::new().expect("stop");
        let fd = stop.wake_fd();
        assert!(stop.request(ExitCause::GuestExit { code: 3 }));
        stop.reset();
        assert!(!stop.is_stopping());
        assert_eq!(stop.cause(), None);
        assert!(fd.read().is_err(), "the wake-up of the stop before the reset is drained");
        assert!(stop.request(ExitCause::Timeout { seconds: 1.0 }), "the next stop's cause wins");
        assert_eq!(stop.cause(), Some(ExitCause::Timeout { seconds: 1.0 }));
        assert_eq!(fd.read().expect("woken through the same eventfd"), 1);
    }
}
