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
}

impl Stop {
    /// Not stopping yet.
    pub fn new() -> std::io::Result<Stop> {
        Ok(Stop { stopping: AtomicBool::new(false), cause: Mutex::new(None), wake: Arc::new(EventFd::new(EFD_NONBLOCK)?) })
    }

    /// Asks the VM to stop for `cause`; returns false if another cause came first.
    pub fn request(&self, cause: ExitCause) -> bool {
        let mut slot = lock(&self.cause);
        if slot.is_some() {
            return false;
        }
        *slot = Some(cause);
        self.stopping.store(true, Ordering::SeqCst);
        // A full counter means the main thread is already being woken.
        let _ = self.wake.write(1);
        true
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
}
